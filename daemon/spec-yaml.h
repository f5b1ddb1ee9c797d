/* spec-yaml.h: YAML text → a small node tree with source marks.
 *
 * libyaml's event parser feeds a tree builder that keeps, for every node,
 * its line and column (counted from 1) and whether a scalar was plain
 * (unquoted), so the schema layer can tell `true` from "true". Aliases and
 * tags other than !!str are refused, which also rules out alias-expansion
 * bombs; nesting depth and node count are capped. Duplicate mapping keys
 * are errors.
 *
 * Pure and non-logging: errors come back as located messages.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cleanup.h"

typedef enum SpecNodeType {
        SPEC_NODE_SCALAR,
        SPEC_NODE_SEQUENCE,
        SPEC_NODE_MAPPING,
        _SPEC_NODE_TYPE_MAX,
        _SPEC_NODE_TYPE_INVALID = -EINVAL,
} SpecNodeType;

typedef struct SpecNode SpecNode;
struct SpecNode {
        SpecNodeType type;
        unsigned line, column;      /* from 1 */
        /* SCALAR */
        char *value;                /* NUL-terminated, no NUL inside; part of the node's allocation */
        size_t length;
        bool plain;                 /* plain style and no !!str tag: YAML core schema resolution applies */
        /* SEQUENCE: items[0..n_items); MAPPING: items[2i] key, items[2i+1] value */
        SpecNode **items;
        size_t n_items;             /* SEQUENCE: items; MAPPING: pairs */
};

/* One error found while parsing. message is owned. */
typedef struct SpecYamlError {
        unsigned line, column;
        char *message;
} SpecYamlError;

typedef struct SpecYamlErrors {
        SpecYamlError *errors;
        size_t n;
} SpecYamlErrors;

void spec_yaml_errors_done(SpecYamlErrors *e);

typedef struct SpecYamlLimits {
        unsigned max_depth;         /* nesting of collections */
        size_t max_nodes;           /* nodes in one file */
        size_t max_documents;       /* documents in one file */
} SpecYamlLimits;

/* Parses every document of buf. On success *ret_docs is an array of
 * *ret_n roots (empty documents are kept as NULL entries), owned by the
 * caller (spec_yaml_documents_free). Returns 0; -EINVAL when the text
 * has errors (each appended to errors; a syntax error stops the parse,
 * so there is then at most one, while duplicate keys, aliases and tags
 * are all collected); -ENOMEM. */
int spec_yaml_parse(const char *buf, size_t size, const SpecYamlLimits *limits,
                    SpecNode ***ret_docs, size_t *ret_n, SpecYamlErrors *errors);

/* Takes one document's root (NULL for an empty document), borrowed for
 * the call; a negative errno stops the parse. */
typedef int (*spec_yaml_each_t)(const SpecNode *doc, void *userdata);

/* The same parse, the same checks and errors, but each document goes to
 * each as soon as it ends and is freed after: one document's tree is in
 * memory, not the file's (2 MB for 1,000 workers in one file). Documents
 * are handed over before the errors of later ones are known, so a caller
 * that must not use any document of a file with errors checks it first
 * with each NULL. Returns 0, -EINVAL (errors), -ENOMEM, or what each
 * returned. */
int spec_yaml_parse_each(const char *buf, size_t size, const SpecYamlLimits *limits, spec_yaml_each_t each,
                         void *userdata, SpecYamlErrors *errors);

SpecNode *spec_node_free(SpecNode *n);
DEFINE_TRIVIAL_CLEANUP_FUNC(SpecNode *, spec_node_free);
void spec_yaml_documents_free(SpecNode **docs, size_t n);

/* The value of key in a mapping node, or NULL. With ret_key, the key node. */
const SpecNode *spec_node_get(const SpecNode *map, const char *key, const SpecNode **ret_key);

/* YAML 1.2 core schema resolution of plain scalars. */
bool spec_node_is_null(const SpecNode *n) _pure_;
/* "a string", "a mapping", "a sequence", "null", "a boolean", "a number". */
const char *spec_node_describe(const SpecNode *n) _pure_;
/* 1 true, 0 false, -EINVAL not a boolean. */
int spec_node_bool(const SpecNode *n) _pure_;
/* A plain decimal integer; -EINVAL if not one, -ERANGE if out of int64. */
int spec_node_int(const SpecNode *n, int64_t *ret);
/* A plain number (integer or float, incl. .inf/.nan); -EINVAL if not one. */
int spec_node_double(const SpecNode *n, double *ret);
