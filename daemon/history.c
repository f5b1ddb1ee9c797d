/* history.c: the run history on disk (see history.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "history.h"
#include "util.h"

struct History {
        char *path, *path_old;
        int fd;                     /* HISTORY_FILE, O_APPEND */
        uint64_t seg;               /* the segment fd holds; seg - 1 is in path_old */
        uint64_t size, size_old;
        uint64_t max;
};

static int open_current(History *h) {
        struct stat st;
        char last;

        h->fd = open(h->path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (h->fd < 0)
                return -errno;
        if (fstat(h->fd, &st) < 0)
                return -errno;
        h->size = (uint64_t) st.st_size;
        /* A line torn by a crash: end it, so the next record starts on
         * a line of its own (the torn one is skipped when read). */
        if (h->size > 0 && pread(h->fd, &last, 1, (off_t) h->size - 1) == 1 && last != '\n') {
                if (write(h->fd, "\n", 1) != 1)
                        return -errno;
                h->size++;
        }
        return 0;
}

int history_open(History **ret, const char *dir, uint64_t max_bytes) {
        _cleanup_(history_freep) History *h = NULL;
        struct stat st;
        int r;

        h = calloc(1, sizeof(History));
        if (!h)
                return -ENOMEM;
        h->fd = -EBADF;
        h->seg = 1;
        h->max = max_bytes > 0 ? max_bytes : HISTORY_DEFAULT_MAX;
        h->path = path_join(dir, HISTORY_FILE);
        h->path_old = path_join(dir, HISTORY_FILE_OLD);
        if (!h->path || !h->path_old)
                return -ENOMEM;
        r = open_current(h);
        if (r < 0)
                return r;
        if (stat(h->path_old, &st) == 0)
                h->size_old = (uint64_t) st.st_size;
        *ret = TAKE_PTR(h);
        return 0;
}

History *history_free(History *h) {
        if (!h)
                return NULL;
        if (h->fd >= 0)
                (void) close(h->fd);
        free(h->path);
        free(h->path_old);
        return mfree(h);
}

uint64_t history_bytes(const History *h) {
        return h ? h->size + h->size_old : 0;
}

static int rotate(History *h) {
        if (rename(h->path, h->path_old) < 0)
                return -errno;
        (void) close(h->fd);
        h->fd = -EBADF;
        h->size_old = h->size;
        h->seg++;
        return open_current(h);
}

int history_append(History *h, json_object *record, HistoryRef *ret) {
        const char *text;
        size_t n;
        ssize_t w;
        int r;

        text = json_object_to_json_string_ext(record, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!text)
                return -ENOMEM;
        n = strlen(text);
        if (n + 1 > h->max / 2 || n > UINT32_MAX)
                return -EFBIG;
        if (h->size > 0 && h->size + n + 1 > h->max / 2) {
                r = rotate(h);
                if (r < 0)
                        return r;
        }
        /* One write of record and newline: a crash tears at most this line. */
        {
                _cleanup_free_ char *line = malloc(n + 1);

                if (!line)
                        return -ENOMEM;
                memcpy(line, text, n);
                line[n] = '\n';
                w = write(h->fd, line, n + 1);
        }
        if (w < 0)
                return -errno;
        if ((size_t) w != n + 1) {
                h->size += (uint64_t) w;
                return -EIO;
        }
        if (ret)
                *ret = (HistoryRef) { .seg = h->seg, .offset = h->size, .size = (uint32_t) n };
        h->size += n + 1;
        return 0;
}

int history_read(History *h, const HistoryRef *ref, json_object **ret) {
        _cleanup_free_ char *buf = NULL;
        int fd = -EBADF;
        ssize_t k;
        json_object *j;

        if (!ref || ref->size == 0)
                return -ENOENT;
        if (ref->seg == h->seg)
                fd = h->fd;
        else if (ref->seg + 1 == h->seg) {
                fd = open(h->path_old, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                if (fd < 0)
                        return errno == ENOENT ? -ENOENT : -errno;
        } else
                return -ENOENT;
        buf = malloc((size_t) ref->size + 1);
        if (!buf) {
                if (fd != h->fd)
                        (void) close(fd);
                return -ENOMEM;
        }
        k = pread(fd, buf, ref->size, (off_t) ref->offset);
        if (fd != h->fd)
                (void) close(fd);
        if (k < 0)
                return -errno;
        if ((size_t) k != ref->size)
                return -ENOENT;
        buf[k] = '\0';
        j = json_tokener_parse(buf);
        if (!j)
                return -EBADMSG;
        *ret = j;
        return 0;
}

/* Streams one segment's lines to each. */
static int load_file(const char *path, uint64_t seg, history_each_t each, void *userdata) {
        _cleanup_free_ char *line = NULL;
        size_t cap = 0;
        uint64_t offset = 0;
        ssize_t n;
        FILE *f;
        int count = 0;

        f = fopen(path, "re");
        if (!f)
                return errno == ENOENT ? 0 : -errno;
        while ((n = getline(&line, &cap, f)) > 0) {
                HistoryRef ref = { .seg = seg, .offset = offset, .size = (uint32_t) n };
                json_object *j;

                offset += (uint64_t) n;
                if (line[n - 1] != '\n')
                        break;          /* torn: the last line */
                line[--n] = '\0';
                ref.size = (uint32_t) n;
                j = n > 0 ? json_tokener_parse(line) : NULL;
                if (!j || !json_object_is_type(j, json_type_object)) {
                        json_object_put(j);
                        continue;
                }
                each(j, &ref, userdata);
                json_object_put(j);
                count++;
        }
        (void) fclose(f);
        return count;
}

/* Moves the older version's runs.json (one array) into the new file. */
static int load_legacy(History *h, const char *dir) {
        _cleanup_(json_object_putp) json_object *a = NULL;
        _cleanup_free_ char *path = path_join(dir, HISTORY_LEGACY_FILE), *text = NULL;
        size_t size = 0;
        int r;

        if (!path)
                return -ENOMEM;
        r = read_full_file(path, 64U * 1024 * 1024 + 1024, &text, &size);
        if (r == -ENOENT)
                return 0;
        if (r >= 0) {
                a = json_tokener_parse(text);
                text = mfree(text);
                for (size_t i = 0; a && json_object_is_type(a, json_type_array) &&
                                   i < json_object_array_length(a); i++) {
                        r = history_append(h, json_object_array_get_idx(a, i), NULL);
                        if (r < 0 && r != -EFBIG)
                                return r;
                }
        }
        /* Moved (or unreadable: history is not state). */
        return unlink(path) < 0 ? -errno : 0;
}

static char *dir_of(const char *path) {
        const char *slash = strrchr(path, '/');

        return slash ? strndup(path, (size_t) (slash - path)) : strdup(".");
}

int history_load(History *h, history_each_t each, void *userdata) {
        _cleanup_free_ char *dir = dir_of(h->path);
        int r, n;

        if (!dir)
                return -ENOMEM;
        r = load_legacy(h, dir);
        if (r < 0)
                return r;
        n = load_file(h->path_old, h->seg - 1, each, userdata);
        if (n < 0)
                return n;
        r = load_file(h->path, h->seg, each, userdata);
        if (r < 0)
                return r;
        return n + r;
}
