/* fuzz-state.c: libFuzzer target for the state loader — the file store
 * (snapshot and journal) and the ledger's record codec. A state file is
 * trusted more than network input, but a corrupt or hand-edited one must
 * be refused with a message, never crash the daemon (which would then be
 * restarted into the same crash by systemd).
 *
 * The input is the snapshot (state.json); when it holds a line "--\n",
 * what follows is the journal (state.journal). What loads must encode
 * and load back to the same records. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ledger.h"
#include "store-file.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *dir, *snap, *journal;

static void put(const char *path, const void *p, size_t n) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        if (fd < 0 || (n > 0 && write(fd, p, n) != (ssize_t) n))
                abort();
}

static int check_record(const char *key, const char *value, void *userdata) {
        Ledger *l = userdata;
        _cleanup_(ledger_freep) Ledger *m = ledger_new();
        _cleanup_free_ char *a = NULL, *b = NULL;

        /* Each record the ledger took re-encodes to a text that loads
         * back to the same text. */
        if (!m || ledger_encode_record(l, key, &a) < 0)
                abort();
        if (!a)
                return 0;       /* a retired record type, or a raw key moved */
        if (ledger_load_record(m, key, a, NULL) < 0 || ledger_encode_record(m, key, &b) < 0 || !b ||
            strcmp(a, b) != 0)
                abort();
        (void) value;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(store_freep) Store *s = NULL;
        _cleanup_(ledger_freep) Ledger *l = NULL;
        _cleanup_free_ char *err = NULL;
        const uint8_t *sep = NULL;

        if (!dir) {
                char tmpl[] = "/tmp/bindery-fuzz-state-XXXXXX";

                if (!mkdtemp(tmpl))
                        abort();
                dir = strdup(tmpl);
                snap = path_join(dir, "state.json");
                journal = path_join(dir, "state.journal");
                if (!dir || !snap || !journal)
                        abort();
        }
        for (size_t i = 0; i + 3 <= size; i++)
                if (memcmp(data + i, "--\n", 3) == 0 && (i == 0 || data[i - 1] == '\n')) {
                        sep = data + i;
                        break;
                }
        put(snap, data, sep ? (size_t) (sep - data) : size);
        if (sep)
                put(journal, sep + 3, size - (size_t) (sep + 3 - data));
        else
                (void) unlink(journal);

        /* Read-only open, as `binderyd plan` does: no lock, no key file. */
        if (store_file_open(dir, false, &s, &err) < 0)
                return 0;
        err = mfree(err);
        if (ledger_load(s, &l, &err) < 0)
                return 0;
        if (store_load(s, check_record, l, NULL) < 0)
                abort();
        return 0;
}
