/* spec-grammar.h: the key and value tables of the spec loader (spec.c),
 * exported read-only so that `binderyd schema` (schema.c) generates its
 * JSON Schema from the very tables the loader checks documents with,
 * never from a second copy. Every list is NULL-terminated; kinds and their
 * key lists are in the loader's order. The binding kinds, their forms and
 * keys come from the binding-kind table (binding-kinds.h). */
#pragma once

#include "model.h"

typedef struct SpecGrammar {
        const char *const *kind_names;                  /* by ResourceKind */
        const char *const *const *document_keys;        /* by ResourceKind */
        const char *const *secret_ref_keys;
        const char *const *module_keys;
        const char *const *module_types;
        const char *const *consumer_keys;
        const char *const *consumer_settings_keys;
        const char *const *do_section_keys;
        const char *const *do_class_keys;
        const char *const *do_storage;
        const char *const *migration_keys;
        const char *const *rename_keys;
        const char *const *observability_keys;
        const char *const *logs_keys;
        const char *const *deletion_policies;
        const char *const *drift_policies;
        const char *const *location_hints;
        const char *const *r2_storage_classes;
        const char *const *r2_jurisdictions;            /* R2Bucket documents */
        const char *const *r2_binding_jurisdictions;    /* r2_bucket binding references */
        const char *const *d1_jurisdictions;
        const char *const *secret_scopes;
} SpecGrammar;

extern const SpecGrammar spec_grammar;
