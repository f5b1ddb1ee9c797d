/* fuzz-state.c: libFuzzer target for the state loader. A state file is
 * trusted more than network input, but a corrupt or hand-edited one must
 * be refused with a message, never crash the daemon (which would then be
 * restarted into the same crash by systemd). */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "state.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *dir, *file;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(state_freep) State *s = NULL;
        _cleanup_free_ char *err = NULL;
        _cleanup_close_ int fd = -EBADF;

        if (!dir) {
                char tmpl[] = "/tmp/bindery-fuzz-state-XXXXXX";

                if (!mkdtemp(tmpl))
                        abort();
                dir = strdup(tmpl);
                file = path_join(dir, "state.json");
                if (!dir || !file)
                        abort();
        }

        fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || (size > 0 && write(fd, data, size) != (ssize_t) size))
                abort();

        /* Read-only open, as `binderyd plan` does: no lock, no key file. */
        if (state_open(dir, false, &s, &err) == 0) {
                _cleanup_(state_freep) State *t = NULL;
                _cleanup_(json_object_putp) json_object *j = state_to_json(s), *k = NULL;
                _cleanup_free_ char *a = NULL;
                const char *text;

                /* What loads is written (as version 2, lifting version 1)
                 * and loads back to the same records. */
                if (!j || !(text = json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN)) ||
                    !(a = strdup(text)))
                        abort();
                (void) close(fd);
                fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                if (fd < 0 || write(fd, a, strlen(a)) != (ssize_t) strlen(a))
                        abort();
                if (state_open(dir, false, &t, NULL) < 0)
                        abort();
                k = state_to_json(t);
                if (!k || strcmp(a, json_object_to_json_string_ext(k, JSON_C_TO_STRING_PLAIN)) != 0)
                        abort();
        }
        return 0;
}
