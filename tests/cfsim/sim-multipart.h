/* sim-multipart.h: multipart/form-data decoding for cfsim (RFC 7578).
 *
 * Pure code: no MHD, no state, no logging, so the fuzz harness links it
 * alone. Parts point into the caller's body; nothing is copied. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Limits on untrusted input. */
#define SIM_FORM_PARTS_MAX       1024
#define SIM_FORM_HEADERS_MAX     16
#define SIM_FORM_HEADER_LINE_MAX 4096
#define SIM_FORM_NAME_MAX        1024

typedef struct SimFormPart {
        char *name;             /* Content-Disposition name=, owned */
        char *filename;         /* filename=, owned, NULL if absent */
        char *content_type;     /* owned, NULL if absent */
        const char *data;       /* points into the body */
        size_t size;
} SimFormPart;

typedef struct SimForm {
        SimFormPart *parts;
        size_t n_parts;
} SimForm;

/* Extracts the boundary parameter of a multipart/form-data Content-Type
 * into ret (NUL-terminated, at most 70 characters + NUL).
 * Returns 0, -EMEDIUMTYPE if the type is not multipart/form-data, or
 * -EINVAL for a missing or malformed boundary. */
int sim_form_boundary(const char *content_type, char ret[static 71]);

/* Parses body as multipart/form-data with the boundary taken from
 * content_type. On success *ret holds the parts, which point into body:
 * body must outlive the form. Caller frees with sim_form_done().
 * Returns 0, -EMEDIUMTYPE, -EINVAL (malformed), -E2BIG (limits), -ENOMEM. */
int sim_form_parse(const char *content_type, const char *body, size_t size, SimForm *ret);

/* Frees the parts array and its strings; leaves the form empty. */
void sim_form_done(SimForm *form);

/* Finds a part whose name equals name, or (if by_filename) whose
 * filename equals name. Returns NULL if none. */
const SimFormPart *sim_form_find(const SimForm *form, const char *name, bool by_filename);
