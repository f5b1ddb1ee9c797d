/* secrets.c: secret references to values; see secrets.h. */
#include <assert.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>

#include "log.h"
#include "secrets.h"
#include "util.h"

/* systemd's credential_name_valid(): a valid file name (non-empty, not "."
 * or "..", no '/', at most NAME_MAX bytes) without control characters. The
 * one rule for every credential name bindery reads (binderyd.conf, specs,
 * resolve). systemd also refuses ':' and non-ASCII bytes, as LoadCredential=
 * cannot name them; specs have always accepted both (a credentials
 * directory can hold them), so they stay valid here. */
bool secrets_credential_name_is_valid(const char *name) {
        if (isempty(name) || strlen(name) > 255 || streq(name, ".") || streq(name, ".."))
                return false;
        for (const char *p = name; *p; p++)
                if (*p == '/' || (unsigned char) *p < 0x20 || *p == 0x7f)
                        return false;
        return true;
}

static int fail(char **reterr, int error, const char *fmt, ...) _printf_(3, 4);
static int fail(char **reterr, int error, const char *fmt, ...) {
        va_list ap;

        if (reterr) {
                va_start(ap, fmt);
                if (vasprintf(reterr, fmt, ap) < 0)
                        *reterr = NULL;
                va_end(ap);
        }
        return error;
}

/* Reads a secret file: regular, bounded, optionally private. The value is
 * wiped on every failure path. */
static int read_secret_file(const char *path, bool check_mode, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        char *buf;
        size_t size = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if (check_mode && (st.st_mode & 0066))
                return -EPERM;
        if ((uint64_t) st.st_size > SECRETS_MAX_SIZE)
                return -EFBIG;

        buf = secret_malloc(SECRETS_MAX_SIZE + 2);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t k = read(fd, buf + size, SECRETS_MAX_SIZE + 1 - size);

                if (k < 0) {
                        int r = -errno;

                        if (errno == EINTR)
                                continue;
                        erase_and_free(buf, SECRETS_MAX_SIZE + 2);
                        return r;
                }
                if (k == 0)
                        break;
                size += (size_t) k;
                if (size > SECRETS_MAX_SIZE) {
                        /* It grew while we read it. */
                        erase_and_free(buf, SECRETS_MAX_SIZE + 2);
                        return -EFBIG;
                }
        }
        buf[size] = 0;
        *ret = buf;
        *ret_size = size;
        return 0;
}

static void strip_newline(char *v, size_t *size) {
        if (*size > 0 && v[*size - 1] == '\n') {
                v[--*size] = 0;
                if (*size > 0 && v[*size - 1] == '\r')
                        v[--*size] = 0;
        }
}

/* Why reading a credential or file failed, for the operator. */
static const char *read_error_reason(int r, SecretSource source) {
        switch (r) {
        case -ENOENT:
                return source == SECRET_SOURCE_CREDENTIAL ? "not found in $CREDENTIALS_DIRECTORY" : "no such file";
        case -EPERM:
                return "readable or writable by group or others; chmod 600 it";
        case -EBADFD:
                return "not a regular file";
        case -EFBIG:
                return "larger than 64 KiB";
        default:
                return strerror(-r);
        }
}

/* A credential: $CREDENTIALS_DIRECTORY/<name>. */
static int read_credential(const SecretRef *ref, char **ret_value, size_t *ret_size, char **reterr_message) {
        const char *dir = getenv("CREDENTIALS_DIRECTORY");
        _cleanup_free_ char *path = NULL;
        int r;

        if (!secrets_credential_name_is_valid(ref->ref))
                return fail(reterr_message, -EINVAL,
                            "credential '%s': invalid name (no '/' or control character, not '.' or '..')", ref->ref);
        if (isempty(dir))
                return fail(reterr_message, -ENXIO,
                            "credential '%s': $CREDENTIALS_DIRECTORY is not set (use LoadCredential=)",
                            ref->ref);
        path = path_join(dir, ref->ref);
        if (!path)
                return -ENOMEM;
        /* systemd makes credentials private to the service; their mode is
         * not ours to judge. */
        r = read_secret_file(path, false, ret_value, ret_size);
        if (r < 0)
                return fail(reterr_message, r, "%s '%s': %s", secret_source_to_string(ref->source),
                            ref->ref, read_error_reason(r, ref->source));
        return 0;
}

/* A file, relative to base_dir unless absolute; it must be private. */
static int read_file(const SecretRef *ref, const char *base_dir, char **ret_value, size_t *ret_size,
                     char **reterr_message) {
        _cleanup_free_ char *path = NULL;
        int r;

        if (ref->ref[0] != '/' && !isempty(base_dir))
                path = path_join(base_dir, ref->ref);
        else
                path = strdup(ref->ref);
        if (!path)
                return -ENOMEM;
        r = read_secret_file(path, true, ret_value, ret_size);
        if (r < 0)
                return fail(reterr_message, r, "file '%s': %s", path, read_error_reason(r, ref->source));
        return 0;
}

/* An environment variable, copied into secret memory. */
static int read_env(const SecretRef *ref, char **ret_value, size_t *ret_size, char **reterr_message) {
        const char *v = getenv(ref->ref);
        size_t size;
        char *value;

        if (!v)
                return fail(reterr_message, -ENOENT, "env '%s': variable is not set", ref->ref);
        size = strlen(v);
        if (size > SECRETS_MAX_SIZE)
                return fail(reterr_message, -EFBIG, "env '%s': longer than %u bytes", ref->ref,
                            SECRETS_MAX_SIZE);
        value = secret_malloc(size + 1);
        if (!value)
                return -ENOMEM;
        memcpy(value, v, size + 1);
        *ret_value = value;
        *ret_size = size;
        return 0;
}

int secrets_resolve(const SecretRef *ref, const char *base_dir, char **ret_value,
                    size_t *ret_size, char **reterr_message) {
        const char *what;
        char *value = NULL;
        size_t size = 0, alloc;
        int r;

        if (reterr_message)
                *reterr_message = NULL;
        assert(ref && ret_value && ret_size);
        what = secret_source_to_string(ref->source);
        if (!what || isempty(ref->ref))
                return fail(reterr_message, -EINVAL, "invalid secret reference");

        switch (ref->source) {
        case SECRET_SOURCE_CREDENTIAL:
                r = read_credential(ref, &value, &size, reterr_message);
                break;
        case SECRET_SOURCE_FILE:
                r = read_file(ref, base_dir, &value, &size, reterr_message);
                break;
        case SECRET_SOURCE_ENV:
                r = read_env(ref, &value, &size, reterr_message);
                break;
        default:
                return fail(reterr_message, -EINVAL, "invalid secret reference");
        }
        if (r < 0)
                return r;
        alloc = size + 1;

        if (ref->source != SECRET_SOURCE_ENV)
                strip_newline(value, &size);
        if (size == 0) {
                erase_and_free(value, alloc);
                return fail(reterr_message, -ENODATA, "%s '%s': empty value", what, ref->ref);
        }
        if (memchr(value, 0, size)) {
                erase_and_free(value, alloc);
                return fail(reterr_message, -EBADMSG, "%s '%s': value contains a NUL byte", what, ref->ref);
        }

        /* The second guard: the log layer redacts it wherever it appears. */
        r = log_register_secret(value, size);
        if (r < 0) {
                erase_and_free(value, alloc);
                return fail(reterr_message, r, "%s '%s': cannot register the value for redaction: %s",
                            what, ref->ref, strerror(-r));
        }

        *ret_value = value;
        *ret_size = size;
        return 0;
}
