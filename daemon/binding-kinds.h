/* binding-kinds.h: one descriptor per binding kind. What bindery knows
 * about a kind — its key in a spec, its Cloudflare metadata `type`, the
 * document a reference names, its TypeScript type, its spec form and keys,
 * the metadata field that carries a resolved id, the rule for a direct
 * id — is one row of one table, read by the loader (spec.c), the validator
 * (spec-validate.c), the model (model.c), the planner (plan.c), the
 * applier's upload metadata (apply.c), `types` (types.c) and the JSON
 * Schema (schema.c). Adding a kind is one row, plus whatever is truly
 * special about it (its parser in spec.c, its metadata in apply.c). */
#pragma once

#include <stdbool.h>

#include "model.h"

/* How a binding's value reads in a spec (bindery-spec(5)). */
typedef enum BindingForm {
        BINDING_FORM_TEXT,          /* a string: `text: ...` or a bare scalar */
        BINDING_FORM_JSON,          /* any YAML value, kept as canonical JSON */
        BINDING_FORM_SECRET,        /* a secret reference */
        BINDING_FORM_REFERENCE,     /* a document name, or {keys[0]: direct id, ...} */
        BINDING_FORM_SERVICE,       /* a worker name, or a mapping of keys */
        BINDING_FORM_MAPPING,       /* a mapping of keys */
        BINDING_FORM_EMPTY,         /* {} or nothing */
        _BINDING_FORM_MAX,
} BindingForm;

typedef struct BindingKindInfo {
        BindingKind kind;
        const char *spec_key;       /* the kind key in a spec's bindings: kv_namespace */
        const char *api_type;       /* Cloudflare metadata type: kv_namespace */
        ResourceKind target;        /* the document a reference names; _RESOURCE_KIND_INVALID: none */
        const char *ts_type;        /* TypeScript type in Env; NULL: from the value (text, json) */
        BindingForm form;
        const char *const *keys;    /* keys of the mapping form, NULL-terminated; NULL: no mapping */
        const char *api_id_field;   /* metadata field for the resolved target (namespace_id); NULL: none */
        /* The validation hook of a direct id (the value of keys[0] of a
         * reference or of a hyperdrive binding); NULL: any string. The
         * message reads "<id_prefix>'<id>'<id_suffix>". */
        bool (*valid_id)(const char *s);
        const char *id_prefix, *id_suffix;
} BindingKindInfo;

/* The descriptor of k; NULL for an invalid kind. */
const BindingKindInfo *binding_kind_info(BindingKind k) _pure_;

/* Fills ret with the spec keys of every kind in table order, NULL-terminated
 * (for "did you mean"). */
void binding_spec_keys(const char *ret[static _BINDING_KIND_MAX + 1]);

BindingKind binding_kind_from_spec_key(const char *s) _pure_;

/* The document kind a binding of kind k names by reference, or
 * _RESOURCE_KIND_INVALID. */
ResourceKind binding_kind_target(BindingKind k) _pure_;

/* Pure id rules used as validation hooks (also by the loader for the
 * documents themselves). */
bool binding_valid_hex32(const char *s) _pure_;
bool binding_valid_uuid(const char *s) _pure_;
