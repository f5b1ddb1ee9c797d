/* spec-yaml.c: see spec-yaml.h. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#include "spec-yaml.h"
#include "util.h"

#define TAG_STR "tag:yaml.org,2002:str"
#define TAG_MAP "tag:yaml.org,2002:map"
#define TAG_SEQ "tag:yaml.org,2002:seq"

void spec_yaml_errors_done(SpecYamlErrors *e) {
        if (!e)
                return;
        for (size_t i = 0; i < e->n; i++)
                free(e->errors[i].message);
        free(e->errors);
        e->errors = NULL;
        e->n = 0;
}

_printf_(4, 5)
static int add_error(SpecYamlErrors *e, unsigned line, unsigned column, const char *fmt, ...) {
        SpecYamlError *n;
        va_list ap;
        char *m;
        int k;

        va_start(ap, fmt);
        k = vasprintf(&m, fmt, ap);
        va_end(ap);
        if (k < 0)
                return -ENOMEM;
        n = realloc(e->errors, sizeof(SpecYamlError) * (e->n + 1));
        if (!n) {
                free(m);
                return -ENOMEM;
        }
        e->errors = n;
        e->errors[e->n++] = (SpecYamlError) { .line = line, .column = column, .message = m };
        return 0;
}

SpecNode *spec_node_free(SpecNode *n) {
        if (!n)
                return NULL;
        /* A scalar's value lives in the same allocation as the node. */
        if (n->type != SPEC_NODE_SCALAR) {
                size_t k = n->type == SPEC_NODE_MAPPING ? n->n_items * 2 : n->n_items;

                for (size_t i = 0; i < k; i++)
                        spec_node_free(n->items[i]);
                free(n->items);
        }
        free(n);
        return NULL;
}

void spec_yaml_documents_free(SpecNode **docs, size_t n) {
        for (size_t i = 0; i < n; i++)
                spec_node_free(docs[i]);
        free(docs);
}

/* The parse's state, fed one libyaml event at a time (builder_event).
 * While building, children of the open collections wait on one shared
 * stack (pending); each open collection remembers where its children start
 * and gets its items array, exactly sized, when it ends. */
typedef struct Builder {
        SpecNode **stack;           /* open collections */
        size_t *starts;             /* their first child in pending */
        size_t depth;
        size_t stack_alloc;
        SpecNode **pending;
        size_t n_pending, pending_alloc;
        SpecNode *root;             /* the document being built */
        SpecNode **docs;            /* the documents finished */
        size_t n_docs;
        size_t n_nodes;
        const SpecYamlLimits *limits;
        SpecYamlErrors *errors;
        bool failed;                /* an error that is not a syntax error */
        bool one_by_one;            /* spec_yaml_parse_each: no list of documents */
        spec_yaml_each_t each;
        void *userdata;
} Builder;

static int builder_attach(Builder *b, SpecNode *n) {
        if (b->depth == 0) {
                b->root = n;
                return 0;
        }
        if (b->n_pending >= b->pending_alloc) {
                size_t na = b->pending_alloc ? b->pending_alloc * 2 : 64;
                SpecNode **p = realloc(b->pending, sizeof(SpecNode *) * na);

                if (!p)
                        return -ENOMEM;
                b->pending = p;
                b->pending_alloc = na;
        }
        b->pending[b->n_pending++] = n;
        return 0;
}

/* Moves the children of the innermost open collection into it. */
static int builder_close(Builder *b) {
        SpecNode *top = b->stack[b->depth - 1];
        size_t start = b->starts[b->depth - 1], n = b->n_pending - start;

        if (n > 0) {
                top->items = malloc(sizeof(SpecNode *) * n);
                if (!top->items)
                        return -ENOMEM;
                memcpy(top->items, b->pending + start, sizeof(SpecNode *) * n);
        }
        top->n_items = top->type == SPEC_NODE_MAPPING ? n / 2 : n;
        b->n_pending = start;
        b->depth--;
        return 0;
}

/* A node; for scalars with room for a value of extra bytes right after it. */
static SpecNode *node_new(SpecNodeType t, const yaml_mark_t *m, size_t extra) {
        SpecNode *n = malloc(sizeof(SpecNode) + extra);

        if (!n)
                return NULL;
        memset(n, 0, sizeof(SpecNode));
        if (extra > 0)
                n->value = (char *) (n + 1);
        n->type = t;
        n->line = (unsigned) m->line + 1;
        n->column = (unsigned) m->column + 1;
        return n;
}

typedef struct KeyRef {
        const SpecNode *key;
        size_t index;
} KeyRef;

static int cmp_keyref(const void *a, const void *b) {
        const KeyRef *x = a, *y = b;
        int r = strcmp(x->key->value, y->key->value);

        if (r != 0)
                return r;
        return x->index < y->index ? -1 : x->index > y->index;
}

/* Every key must be a scalar, and unique. Reports at the later key. */
static int check_mapping(Builder *b, const SpecNode *map) {
        _cleanup_free_ KeyRef *refs = NULL;
        size_t n = 0;
        int r;

        if (map->n_items == 0)
                return 0;
        refs = calloc(map->n_items, sizeof(KeyRef));
        if (!refs)
                return -ENOMEM;
        for (size_t i = 0; i < map->n_items; i++) {
                const SpecNode *k = map->items[2 * i];

                if (k->type != SPEC_NODE_SCALAR) {
                        r = add_error(b->errors, k->line, k->column, "mapping keys must be scalars");
                        if (r < 0)
                                return r;
                        b->failed = true;
                        continue;
                }
                refs[n++] = (KeyRef) { .key = k, .index = i };
        }
        qsort(refs, n, sizeof(KeyRef), cmp_keyref);
        for (size_t i = 1; i < n; i++)
                if (streq(refs[i].key->value, refs[i - 1].key->value)) {
                        const SpecNode *first = refs[i - 1].key;
                        size_t j = i - 1;

                        /* Point at the first occurrence of the run. */
                        while (j > 0 && streq(refs[j - 1].key->value, refs[i].key->value))
                                j--;
                        first = refs[j].key;
                        r = add_error(b->errors, refs[i].key->line, refs[i].key->column,
                                      "duplicate key '%s' (first at line %u)",
                                      refs[i].key->value, first->line);
                        if (r < 0)
                                return r;
                        b->failed = true;
                }
        return 0;
}

static unsigned offset_to_line(const char *buf, size_t size, size_t offset, unsigned *ret_column) {
        unsigned line = 1, column = 1;

        for (size_t i = 0; i < offset && i < size; i++) {
                if (buf[i] == '\n') {
                        line++;
                        column = 1;
                } else if (((unsigned char) buf[i] & 0xC0) != 0x80)
                        column++;
        }
        *ret_column = column;
        return line;
}

static int syntax_error(const yaml_parser_t *p, const char *buf, size_t size, SpecYamlErrors *errors) {
        unsigned line, column;

        if (p->error == YAML_MEMORY_ERROR)
                return -ENOMEM;
        if (p->error == YAML_READER_ERROR) {
                line = offset_to_line(buf, size, p->problem_offset, &column);
                return add_error(errors, line, column, "invalid text: %s", strna(p->problem));
        }
        line = (unsigned) p->problem_mark.line + 1;
        column = (unsigned) p->problem_mark.column + 1;
        if (p->context)
                return add_error(errors, line, column, "syntax error: %s (%s at line %u)",
                                 strna(p->problem), p->context,
                                 (unsigned) p->context_mark.line + 1);
        return add_error(errors, line, column, "syntax error: %s", strna(p->problem));
}

static bool tag_ok(const yaml_char_t *tag, const char *allowed) {
        return !tag || streq((const char *) tag, "!") || streq((const char *) tag, allowed);
}

/* A new document: refused past the limit. */
static int on_document_start(Builder *b, const yaml_event_t *ev) {
        int r;

        if (b->n_docs >= b->limits->max_documents) {
                r = add_error(b->errors, (unsigned) ev->start_mark.line + 1,
                              (unsigned) ev->start_mark.column + 1,
                              "too many documents in one file (limit %zu)",
                              b->limits->max_documents);
                return r < 0 ? r : -EINVAL;
        }
        b->root = NULL;
        return 0;
}

/* A finished document: its root (NULL for an empty one) joins the list,
 * or goes to each and is freed. */
static int on_document_end(Builder *b) {
        SpecNode **d;

        if (b->one_by_one) {
                _cleanup_(spec_node_freep) SpecNode *root = TAKE_PTR(b->root);

                b->n_docs++;
                return b->each ? b->each(root, b->userdata) : 0;
        }
        d = realloc(b->docs, sizeof(SpecNode *) * (b->n_docs + 1));
        if (!d)
                return -ENOMEM;
        b->docs = d;
        b->docs[b->n_docs++] = TAKE_PTR(b->root);
        return 0;
}

/* An alias is an error; an empty plain scalar stands in its place so the
 * tree keeps its shape and the parse goes on collecting errors. */
static int on_alias(Builder *b, const yaml_event_t *ev, SpecNode **ret) {
        SpecNode *n;
        int r;

        r = add_error(b->errors, (unsigned) ev->start_mark.line + 1,
                      (unsigned) ev->start_mark.column + 1,
                      "YAML aliases are not supported");
        if (r < 0)
                return r;
        b->failed = true;
        n = node_new(SPEC_NODE_SCALAR, &ev->start_mark, 1);
        if (!n)
                return -ENOMEM;
        n->value[0] = 0;
        n->plain = true;
        *ret = n;
        return 0;
}

/* A scalar node; a tag other than !!str, or a NUL inside, is an error. */
static int on_scalar(Builder *b, const yaml_event_t *ev, SpecNode **ret) {
        const yaml_char_t *tag = ev->data.scalar.tag;
        SpecNode *n;
        int r = 0;

        n = node_new(SPEC_NODE_SCALAR, &ev->start_mark, ev->data.scalar.length + 1);
        if (!n)
                return -ENOMEM;
        n->length = ev->data.scalar.length;
        memcpy(n->value, ev->data.scalar.value, n->length);
        n->value[n->length] = 0;
        n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !tag;
        if (!tag_ok(tag, TAG_STR)) {
                r = add_error(b->errors, n->line, n->column,
                              "YAML tag '%s' is not supported", (const char *) tag);
                b->failed = true;
        } else if (memchr(n->value, 0, n->length)) {
                r = add_error(b->errors, n->line, n->column,
                              "strings must not contain NUL characters");
                b->failed = true;
        }
        if (r < 0) {
                spec_node_free(n);
                return r;
        }
        *ret = n;
        return 0;
}

/* A sequence or mapping node (still empty); nesting past the limit ends
 * the parse, a tag other than its own is an error. */
static int on_collection_start(Builder *b, const yaml_event_t *ev, SpecNode **ret) {
        bool seq = ev->type == YAML_SEQUENCE_START_EVENT;
        const yaml_char_t *tag = seq ? ev->data.sequence_start.tag : ev->data.mapping_start.tag;
        SpecNode *n;
        int r;

        if (b->depth >= b->limits->max_depth) {
                r = add_error(b->errors, (unsigned) ev->start_mark.line + 1,
                              (unsigned) ev->start_mark.column + 1,
                              "nesting deeper than %u levels", b->limits->max_depth);
                return r < 0 ? r : -EINVAL;
        }
        n = node_new(seq ? SPEC_NODE_SEQUENCE : SPEC_NODE_MAPPING, &ev->start_mark, 0);
        if (!n)
                return -ENOMEM;
        if (!tag_ok(tag, seq ? TAG_SEQ : TAG_MAP)) {
                r = add_error(b->errors, n->line, n->column,
                              "YAML tag '%s' is not supported", (const char *) tag);
                if (r < 0) {
                        spec_node_free(n);
                        return r;
                }
                b->failed = true;
        }
        *ret = n;
        return 0;
}

/* The innermost collection ends: it takes its children; a mapping's keys
 * are checked. */
static int on_collection_end(Builder *b) {
        SpecNode *top = b->stack[b->depth - 1];
        int r;

        r = builder_close(b);
        if (r >= 0 && top->type == SPEC_NODE_MAPPING)
                r = check_mapping(b, top);
        return r;
}

/* Makes collection n the innermost open one. */
static int builder_open(Builder *b, SpecNode *n) {
        if (b->depth >= b->stack_alloc) {
                size_t na = b->stack_alloc ? b->stack_alloc * 2 : 16;
                SpecNode **s = realloc(b->stack, sizeof(SpecNode *) * na);
                size_t *st;

                if (!s)
                        return -ENOMEM;
                b->stack = s;
                st = realloc(b->starts, sizeof(size_t) * na);
                if (!st)
                        return -ENOMEM;
                b->starts = st;
                b->stack_alloc = na;
        }
        b->starts[b->depth] = b->n_pending;
        b->stack[b->depth++] = n;
        return 0;
}

/* Takes n into the tree: counted against the node limit, attached to the
 * innermost open collection (or made the root), and opened when it is a
 * collection. n is freed if it could not be attached. */
static int builder_add(Builder *b, SpecNode *n) {
        int r;

        if (++b->n_nodes > b->limits->max_nodes) {
                r = add_error(b->errors, n->line, n->column,
                              "too many YAML nodes in one file (limit %zu)",
                              b->limits->max_nodes);
                spec_node_free(n);
                return r < 0 ? r : -EINVAL;
        }
        r = builder_attach(b, n);
        if (r < 0) {
                spec_node_free(n);
                return r;
        }
        if (n->type == SPEC_NODE_SCALAR)
                return 0;
        return builder_open(b, n);
}

/* One parser event. Negative ends the parse. */
static int builder_event(Builder *b, const yaml_event_t *ev) {
        SpecNode *n = NULL;
        int r;

        switch (ev->type) {
        case YAML_DOCUMENT_START_EVENT:
                return on_document_start(b, ev);
        case YAML_DOCUMENT_END_EVENT:
                return on_document_end(b);
        case YAML_ALIAS_EVENT:
                r = on_alias(b, ev, &n);
                break;
        case YAML_SCALAR_EVENT:
                r = on_scalar(b, ev, &n);
                break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
                r = on_collection_start(b, ev, &n);
                break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
                return on_collection_end(b);
        default:
                return 0;
        }
        if (r < 0)
                return r;
        return builder_add(b, n);
}

/* Frees whatever the builder still holds. A root still under construction
 * is owned by b->root; the open collections on the stack hang below it.
 * Open mappings still count raw items (and may end in a key without its
 * value): settle them so spec_node_free() sees pairs. */
static void builder_done(Builder *b) {
        while (b->depth > 0) {
                SpecNode *top = b->stack[b->depth - 1];
                size_t start = b->starts[b->depth - 1];

                /* A mapping may end in a key without its value. */
                if (top->type == SPEC_NODE_MAPPING && (b->n_pending - start) % 2 == 1)
                        spec_node_free(b->pending[--b->n_pending]);
                if (builder_close(b) < 0) {
                        /* No memory to attach them: free the children here. */
                        for (size_t i = start; i < b->n_pending; i++)
                                spec_node_free(b->pending[i]);
                        b->n_pending = start;
                        b->depth--;
                }
        }
        spec_node_free(b->root);
        free(b->stack);
        free(b->starts);
        free(b->pending);
        if (!b->one_by_one)     /* there n_docs only counts */
                spec_yaml_documents_free(b->docs, b->n_docs);
}

static int builder_run(Builder *b, const char *buf, size_t size) {
        yaml_parser_t p;
        bool done = false;
        int r = 0;

        if (!yaml_parser_initialize(&p))
                return -ENOMEM;
        yaml_parser_set_input_string(&p, (const unsigned char *) buf, size);
        yaml_parser_set_encoding(&p, YAML_UTF8_ENCODING);

        while (!done && r >= 0) {
                yaml_event_t ev;

                if (!yaml_parser_parse(&p, &ev)) {
                        r = syntax_error(&p, buf, size, b->errors);
                        if (r >= 0)
                                r = -EINVAL;
                        break;
                }
                done = ev.type == YAML_STREAM_END_EVENT;
                r = builder_event(b, &ev);
                yaml_event_delete(&ev);
        }
        yaml_parser_delete(&p);
        if (r >= 0 && b->failed)
                r = -EINVAL;
        return r;
}

int spec_yaml_parse(const char *buf, size_t size, const SpecYamlLimits *limits,
                    SpecNode ***ret_docs, size_t *ret_n, SpecYamlErrors *errors) {
        Builder b = { .limits = limits, .errors = errors };
        int r = builder_run(&b, buf, size);

        if (r >= 0) {
                *ret_docs = TAKE_PTR(b.docs);
                *ret_n = b.n_docs;
                b.n_docs = 0;
                r = 0;
        }
        builder_done(&b);
        return r;
}

int spec_yaml_parse_each(const char *buf, size_t size, const SpecYamlLimits *limits, spec_yaml_each_t each,
                         void *userdata, SpecYamlErrors *errors) {
        Builder b = { .limits = limits, .errors = errors, .one_by_one = true, .each = each, .userdata = userdata };
        int r = builder_run(&b, buf, size);

        builder_done(&b);
        return r < 0 ? r : 0;
}

const SpecNode *spec_node_get(const SpecNode *map, const char *key, const SpecNode **ret_key) {
        if (!map || map->type != SPEC_NODE_MAPPING)
                return NULL;
        for (size_t i = 0; i < map->n_items; i++) {
                const SpecNode *k = map->items[2 * i];

                if (k->type == SPEC_NODE_SCALAR && streq(k->value, key)) {
                        if (ret_key)
                                *ret_key = k;
                        return map->items[2 * i + 1];
                }
        }
        return NULL;
}

bool spec_node_is_null(const SpecNode *n) {
        if (!n)
                return true;
        return n->type == SPEC_NODE_SCALAR && n->plain &&
               (n->length == 0 || streq(n->value, "~") || streq(n->value, "null") ||
                streq(n->value, "Null") || streq(n->value, "NULL"));
}

int spec_node_bool(const SpecNode *n) {
        if (!n || n->type != SPEC_NODE_SCALAR || !n->plain)
                return -EINVAL;
        if (streq(n->value, "true") || streq(n->value, "True") || streq(n->value, "TRUE"))
                return 1;
        if (streq(n->value, "false") || streq(n->value, "False") || streq(n->value, "FALSE"))
                return 0;
        return -EINVAL;
}

int spec_node_int(const SpecNode *n, int64_t *ret) {
        const char *s;
        char *end;
        long long v;

        if (!n || n->type != SPEC_NODE_SCALAR || !n->plain)
                return -EINVAL;
        s = n->value;
        if (*s == '-' || *s == '+')
                s++;
        if (!isdigit((unsigned char) *s) || strspn(s, "0123456789") != strlen(s))
                return -EINVAL;
        errno = 0;
        v = strtoll(n->value, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        *ret = v;
        return 0;
}

int spec_node_double(const SpecNode *n, double *ret) {
        const char *s;
        char *end;
        size_t k;

        if (!n || n->type != SPEC_NODE_SCALAR || !n->plain)
                return -EINVAL;
        s = n->value;
        if (*s == '-' || *s == '+')
                s++;
        if (streq(s, ".inf") || streq(s, ".Inf") || streq(s, ".INF") ||
            streq(n->value, ".nan") || streq(n->value, ".NaN") || streq(n->value, ".NAN")) {
                if (s[1] == 'n' || s[1] == 'N')
                        *ret = NAN;
                else
                        *ret = n->value[0] == '-' ? -INFINITY : INFINITY;
                return 0;
        }
        /* [0-9]* ( . [0-9]* )? ( [eE] [-+]? [0-9]+ )?, with at least one digit */
        k = strspn(s, "0123456789");
        if (s[k] == '.')
                k += 1 + strspn(s + k + 1, "0123456789");
        if (k == 0 || (k == 1 && s[0] == '.'))
                return -EINVAL;
        if (s[k] == 'e' || s[k] == 'E') {
                size_t e = k + 1;

                if (s[e] == '-' || s[e] == '+')
                        e++;
                if (!isdigit((unsigned char) s[e]))
                        return -EINVAL;
                k = e + strspn(s + e, "0123456789");
        }
        if (s[k])
                return -EINVAL;
        errno = 0;
        *ret = strtod(n->value, &end);
        return 0;
}

const char *spec_node_describe(const SpecNode *n) {
        double d;

        if (!n || spec_node_is_null(n))
                return "null";
        switch (n->type) {
        case SPEC_NODE_MAPPING:
                return "a mapping";
        case SPEC_NODE_SEQUENCE:
                return "a sequence";
        default:
                break;
        }
        if (spec_node_bool(n) >= 0)
                return "a boolean";
        if (spec_node_double(n, &d) >= 0)
                return "a number";
        return "a string";
}
