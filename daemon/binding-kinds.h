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
#include <stddef.h>
#include <stdint.h>

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

/* How a metadata field's value reads in the canonical form plan.c compares
 * (desired against observed, so that Cloudflare's defaults and ours agree). */
typedef enum BindingCanon {
        BINDING_CANON_NONEMPTY,     /* left out when absent or empty */
        BINDING_CANON_TEXT,         /* "" when absent */
        BINDING_CANON_JURISDICTION, /* left out when absent, empty or "default" */
        BINDING_CANON_ENVIRONMENT,  /* left out when absent, empty or "production" */
        BINDING_CANON_SCRIPT,       /* left out when absent, empty or the binding's own worker */
} BindingCanon;

/* Where a metadata field's value comes from. */
#define BINDING_FROM_RESOLVED SIZE_MAX          /* the target's resolved id or name */
#define BINDING_FROM_STORE_ID (SIZE_MAX - 1)    /* the resolved Secrets Store id */

/* One field of a binding's Cloudflare metadata (besides type and name). */
typedef struct BindingField {
        const char *api;            /* metadata field: namespace_id, class_name, ... */
        size_t from;                /* offsetof(Binding, member), or BINDING_FROM_* */
        BindingCanon canon;
        const char *alias;          /* another name observed metadata may use (d1: id); NULL: none */
} BindingField;

#define BINDING_MAX_FIELDS 3

typedef struct BindingKindInfo {
        BindingKind kind;
        const char *spec_key;       /* the kind key in a spec's bindings: kv_namespace */
        const char *api_type;       /* Cloudflare metadata type: kv_namespace */
        ResourceKind target;        /* the document a reference names; _RESOURCE_KIND_INVALID: none */
        bool by_name;               /* the metadata names the target by its Cloudflare name (R2,
                                     * queue), not by its id */
        const char *ts_type;        /* TypeScript type in Env; NULL: from the value (text, json) */
        BindingForm form;
        const char *const *keys;    /* keys of the mapping form, NULL-terminated; NULL: no mapping */
        /* The metadata fields in upload order; they are also the canonical
         * form compared against Cloudflare's. Unset entries have api NULL.
         * json and secret_text are special (a JSON value; not metadata). */
        BindingField fields[BINDING_MAX_FIELDS];
        /* The validation hook of a direct id (the value of keys[0] of a
         * reference or of a hyperdrive binding); NULL: any string. The
         * message reads "<id_prefix>'<id>'<id_suffix>". */
        bool (*valid_id)(const char *s);
        const char *id_prefix, *id_suffix;
} BindingKindInfo;

/* The descriptor of k; NULL for an invalid kind. */
const BindingKindInfo *binding_kind_info(BindingKind k) _pure_;

/* The value of field f for binding b: a member of b, or resolved/store_id. */
const char *binding_field_value(const BindingField *f, const Binding *b, const char *resolved,
                                const char *store_id) _pure_;

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
