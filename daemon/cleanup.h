/* cleanup.h: scope-bound cleanup (GCC/Clang cleanup attribute) and
 * explicit ownership hand-off, after systemd's alloc-util.h.
 *
 *   _cleanup_free_ char *s = strdup(x);
 *   ...
 *   *ret = TAKE_PTR(s);      hand-off: the cleanup now frees NULL
 */
#pragma once

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _warn_unused_result_ __attribute__((warn_unused_result))
#define _pure_ __attribute__((pure))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

/* Takes the pointer out of a variable, leaving NULL behind. */
#define TAKE_PTR(p)                             \
        ({                                      \
                __typeof__(p) _ptr_ = (p);      \
                (p) = NULL;                     \
                _ptr_;                          \
        })

/* Takes an fd out of a variable, leaving -EBADF behind. */
#define TAKE_FD(fd)                             \
        ({                                      \
                int _fd_ = (fd);                \
                (fd) = -EBADF;                  \
                _fd_;                           \
        })

static inline void *mfree(void *p) {
        free(p);
        return NULL;
}

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd) {
        if (*fd >= 0) {
                int saved = errno;
                (void) close(*fd);
                errno = saved;
        }
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f) {
        if (*f)
                (void) fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Wipes and frees a buffer that held a secret. */
static inline void *erase_and_free(void *p, size_t n) {
        if (p) {
                explicit_bzero(p, n);
                free(p);
        }
        return NULL;
}

/* Wipes and frees a NUL-terminated secret string. */
static inline void *erase_and_free_str(char *s) {
        return s ? erase_and_free(s, strlen(s)) : NULL;
}
static inline void erase_and_freep(char **s) {
        erase_and_free_str(*s);
}
#define _cleanup_erase_free_ _cleanup_(erase_and_freep)

/* Defines name##p(type *p) calling func(*p) when *p is non-NULL. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)         \
        static inline void func##p(type *p) {           \
                if (*p)                                 \
                        func(*p);                       \
        }                                               \
        struct __useless_struct_to_allow_trailing_semicolon__

/* Drops a json-c reference: _cleanup_(json_object_putp) json_object *j = ...; */
DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put);
