/* secrets.h: resolving secret references (model.h SecretRef) to values,
 * at apply time only.
 *
 *   credential NAME  $CREDENTIALS_DIRECTORY/NAME (systemd LoadCredential=);
 *                    NAME must be non-empty, contain no '/', and not be
 *                    "." or ".."
 *   file PATH        a regular file that is not readable or writable by
 *                    group or others (mode & 0066 == 0, as ssh requires of
 *                    keys): a secret file anyone on the host can read is
 *                    a configuration error worth stopping for. Relative
 *                    paths are resolved against base_dir.
 *   env VAR          getenv(VAR)
 *
 * Files and credentials: at most SECRETS_MAX_SIZE bytes (-EFBIG), must be
 * regular files (-EBADFD otherwise; symlinks are followed), and one
 * trailing "\n" (or "\r\n") is stripped. A value may not be empty
 * (-ENODATA) or contain a NUL byte (-EBADMSG).
 *
 * Every value returned is also registered with log_register_secret(), so
 * the log layer redacts it even if some code formats it by mistake.
 * Values are returned in a buffer the caller wipes: erase_and_free(value,
 * size) or the _cleanup_erase_free_ guard (values never contain NUL).
 * Error messages name the reference, never the value. Non-logging.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "model.h"

#define SECRETS_MAX_SIZE (64U * 1024U)

/* Resolves ref. On success *ret_value is a NUL-terminated copy (caller
 * wipes and frees) and *ret_size its length. base_dir: for relative file
 * paths (NULL: the current directory). On failure returns a negative errno
 * and, if reterr_message is non-NULL, a message such as
 * "credential 'api-key': not found in $CREDENTIALS_DIRECTORY" (caller
 * frees):
 *   -ENXIO   $CREDENTIALS_DIRECTORY is not set (credential)
 *   -ENOENT  no such credential / file / variable
 *   -EINVAL  bad credential name or reference
 *   -EPERM   file readable or writable by group or others
 *   -EBADFD  not a regular file
 *   -EFBIG   larger than SECRETS_MAX_SIZE
 *   -ENODATA empty value
 *   -EBADMSG value contains a NUL byte
 *   or the errno of open/read, -ENOMEM. */
int secrets_resolve(const SecretRef *ref, const char *base_dir, char **ret_value,
                    size_t *ret_size, char **reterr_message);

/* Checks a credential name: non-empty, no '/', not "." or "..", no control
 * character, at most 255 bytes (systemd's rule, keeping ':' and non-ASCII
 * bytes). The one rule of config.c, spec.c and secrets_resolve(). */
bool secrets_credential_name_is_valid(const char *name) _pure_;
