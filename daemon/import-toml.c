/* import-toml.c: import_toml_parse() (import-toml.h) runs the TOML reader,
 * bindery-toml, and reads its answer back into the json-c objects import.c
 * takes. The text goes in through a memfd (so nothing can deadlock on a
 * full pipe), the answer comes out of a pipe, bounded, and the reader is
 * reaped before we return. Non-logging: failures come back as a message. */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cleanup.h"
#include "import-toml.h"
#include "import.h"
#include "util.h"

_Static_assert(IMPORT_TOML_MAX_INPUT == IMPORT_MAX_CONFIG_SIZE, "bindery-toml takes what cmd-import reads");
_Static_assert(IMPORT_TOML_MAX_OUTPUT < INT_MAX, "json_tokener_parse_ex takes an int length");

/* json-c's default nesting limit is 32; a TOML document nests up to 65
 * levels in the answer (bindery-toml's to_json cap), plus the wrapper. */
#define ANSWER_MAX_DEPTH 128

extern char **environ;

int import_toml_helper_path(char **ret) {
        static const char installed[] = BINDERY_SBINDIR "/binderyd";
        char exe[PATH_MAX], *p = NULL, *slash;
        size_t li = strlen(installed);
        ssize_t n;

        n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n > 0 && (size_t) n < sizeof exe - 1) { /* else unknown or cut short */
                exe[n] = '\0';
                if ((size_t) n >= li && streq(exe + n - li, installed)) {
                        /* Installed (or staged below a DESTDIR): the same root. */
                        if (asprintf(&p, "%.*s%s/%s", (int) ((size_t) n - li), exe, BINDERY_PKGLIBEXECDIR,
                                     IMPORT_TOML_HELPER) < 0)
                                return -ENOMEM;
                        *ret = p;
                        return 0;
                }
                slash = strrchr(exe, '/');
                if (slash) {
                        *slash = '\0';
                        p = path_join(exe, IMPORT_TOML_HELPER);
                        if (!p)
                                return -ENOMEM;
                        if (access(p, X_OK) == 0) {
                                *ret = p;
                                return 0;
                        }
                        free(p);
                }
        }
        p = strdup(BINDERY_PKGLIBEXECDIR "/" IMPORT_TOML_HELPER);
        if (!p)
                return -ENOMEM;
        *ret = p;
        return 0;
}

/* A sealed-off copy of the text to hand over as standard input. */
static int input_fd(const char *text, size_t size) {
        _cleanup_close_ int fd = -EBADF;

        fd = memfd_create("bindery-toml-input", MFD_CLOEXEC);
        if (fd < 0)
                return -errno;
        while (size > 0) {
                ssize_t k = write(fd, text, size);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                text += k;
                size -= (size_t) k;
        }
        if (lseek(fd, 0, SEEK_SET) < 0)
                return -errno;
        return TAKE_FD(fd);
}

/* Runs helper with standard input from in_fd and standard output to
 * out_fd; standard error is ours, every other descriptor is closed. */
static int spawn_helper(const char *helper, int in_fd, int out_fd, pid_t *ret_pid) {
        char *argv[] = { (char *) IMPORT_TOML_HELPER, NULL };
        posix_spawn_file_actions_t fa;
        int r;

        r = posix_spawn_file_actions_init(&fa);
        if (r != 0)
                return -r;
        r = posix_spawn_file_actions_adddup2(&fa, in_fd, STDIN_FILENO);
        if (r == 0)
                r = posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO);
        if (r == 0)
                r = posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);
        if (r == 0)
                r = posix_spawn(ret_pid, helper, &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        return -r;
}

static int wait_child(pid_t pid, int *ret_status) {
        for (;;) {
                if (waitpid(pid, ret_status, 0) >= 0)
                        return 0;
                if (errno != EINTR)
                        return -errno;
        }
}

/* The one JSON object of the answer (json-c's own checks, whitespace only
 * after it), or NULL. */
static json_object *answer_parse(const char *buf, size_t size) {
        json_tokener *tok = json_tokener_new_ex(ANSWER_MAX_DEPTH);
        json_object *o;
        size_t end;

        if (!tok)
                return NULL;
        o = json_tokener_parse_ex(tok, buf, (int) size);
        end = json_tokener_get_parse_end(tok);
        if (o && json_tokener_get_error(tok) == json_tokener_success && end <= size &&
            strspn(buf + end, " \t\r\n") == size - end && json_object_is_type(o, json_type_object)) {
                json_tokener_free(tok);
                return o;
        }
        json_tokener_free(tok);
        json_object_put(o);
        return NULL;
}

/* answer is the document of exit status 0 or 1; returns 0 (parsed),
 * -EINVAL (not TOML) or -EPROTO (not the protocol's document). */
static int answer_take(json_object *answer, bool parsed, json_object **ret, json_object **ret_lines,
                       char **ret_error, unsigned *ret_line, unsigned *ret_column) {
        json_object *config, *lines, *e, *line, *column, *message;

        if (parsed) {
                if (!json_object_object_get_ex(answer, "config", &config) ||
                    !json_object_is_type(config, json_type_object) ||
                    !json_object_object_get_ex(answer, "lines", &lines) ||
                    !json_object_is_type(lines, json_type_object))
                        return -EPROTO;
                *ret = json_object_get(config);
                *ret_lines = json_object_get(lines);
                return 0;
        }
        if (!json_object_object_get_ex(answer, "error", &e) || !json_object_object_get_ex(e, "line", &line) ||
            !json_object_is_type(line, json_type_int) || !json_object_object_get_ex(e, "column", &column) ||
            !json_object_is_type(column, json_type_int) || !json_object_object_get_ex(e, "message", &message) ||
            !json_object_is_type(message, json_type_string))
                return -EPROTO;
        if (json_object_get_int64(line) < 0 || json_object_get_int64(line) > UINT_MAX ||
            json_object_get_int64(column) < 0 || json_object_get_int64(column) > UINT_MAX)
                return -EPROTO;
        *ret_error = strdup(json_object_get_string(message));
        if (!*ret_error)
                return -ENOMEM;
        *ret_line = (unsigned) json_object_get_int64(line);
        *ret_column = (unsigned) json_object_get_int64(column);
        return -EINVAL;
}

/* Sets *ret_error to "cannot read TOML: " and the message, and returns r,
 * never -EINVAL (that means "not TOML" to the caller); -ENOMEM when the
 * message cannot be made. */
_printf_(3, 4) static int failure(int r, char **ret_error, const char *fmt, ...) {
        _cleanup_free_ char *m = NULL;
        va_list ap;
        int k;

        va_start(ap, fmt);
        k = vasprintf(&m, fmt, ap);
        va_end(ap);
        if (k < 0 || asprintf(ret_error, "cannot read TOML: %s", m) < 0) {
                *ret_error = NULL;
                return -ENOMEM;
        }
        return r == -EINVAL ? -EIO : r;
}

/* The reader answered outside the protocol (r: -EFBIG or -EPROTO). */
static int helper_failed(int r, const char *helper, int status, char **ret_error) {
        if (r == -EFBIG)
                return failure(r, ret_error, "'%s' answered more than %d bytes", helper, IMPORT_TOML_MAX_OUTPUT);
        if (WIFSIGNALED(status))
                return failure(r, ret_error, "'%s' was killed by signal SIG%s", helper,
                               sigabbrev_np(WTERMSIG(status)) ?: "?");
        if (WEXITSTATUS(status) == IMPORT_TOML_EXIT_NOMEM)
                return failure(-ENOMEM, ret_error, "'%s' ran out of memory", helper);
        if (WEXITSTATUS(status) == IMPORT_TOML_EXIT_IO)
                return failure(-EIO, ret_error, "'%s' could not read its input or write its answer", helper);
        if (WEXITSTATUS(status) > IMPORT_TOML_EXIT_IO)
                return failure(r, ret_error, "'%s' exited with status %d", helper, WEXITSTATUS(status));
        return failure(r, ret_error, "'%s' gave an answer that is not its protocol's", helper);
}

int import_toml_parse(const char *text, size_t size, json_object **ret, json_object **ret_lines,
                      char **ret_error, unsigned *ret_line, unsigned *ret_column) {
        _cleanup_free_ char *helper = NULL, *buf = NULL;
        _cleanup_close_ int in = -EBADF, out_r = -EBADF, out_w = -EBADF;
        _cleanup_(json_object_putp) json_object *answer = NULL;
        int pipefd[2], status = 0, r, rr;
        size_t n = 0;
        pid_t pid;

        r = import_toml_helper_path(&helper);
        if (r < 0)
                return r;
        in = input_fd(text, size);
        if (in < 0)
                return failure(in, ret_error, "cannot hand the text to '%s': %s", helper, strerror(-in));
        if (pipe2(pipefd, O_CLOEXEC) < 0) {
                r = -errno;
                return failure(r, ret_error, "cannot make a pipe for '%s': %s", helper, strerror(-r));
        }
        out_r = pipefd[0];
        out_w = pipefd[1];

        r = spawn_helper(helper, in, out_w, &pid);
        if (r == -ENOENT)
                return failure(r, ret_error, "'%s' is missing (binderyd's TOML reader)", helper);
        if (r < 0)
                return failure(r, ret_error, "cannot run '%s': %s", helper, strerror(-r));
        /* Ours closed, the reader's end of the pipe is the only writer left. */
        closep(&out_w);
        out_w = -EBADF;
        closep(&in);
        in = -EBADF;

        r = read_full_stream(out_r, IMPORT_TOML_MAX_OUTPUT, &buf, &n);
        if (r < 0)
                (void) kill(pid, SIGKILL);
        closep(&out_r);
        out_r = -EBADF;
        rr = wait_child(pid, &status);
        if (rr < 0)
                return failure(rr, ret_error, "cannot wait for '%s': %s", helper, strerror(-rr));
        if (r == -ENOMEM)
                return r;
        if (r < 0 && r != -EFBIG)
                return failure(r, ret_error, "cannot read the answer of '%s': %s", helper, strerror(-r));
        if (r == 0 && WIFEXITED(status) &&
            (WEXITSTATUS(status) == IMPORT_TOML_EXIT_PARSED || WEXITSTATUS(status) == IMPORT_TOML_EXIT_NOT_TOML)) {
                answer = answer_parse(buf, n);
                if (answer) {
                        r = answer_take(answer, WEXITSTATUS(status) == IMPORT_TOML_EXIT_PARSED, ret, ret_lines,
                                        ret_error, ret_line, ret_column);
                        if (r != -EPROTO)
                                return r;
                }
                r = -EPROTO;
        } else if (r == 0)
                r = -EPROTO;
        return helper_failed(r, helper, status, ret_error);
}
