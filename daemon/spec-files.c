/* spec-files.c: the spec loader's file and directory I/O, apart from its
 * parsing (spec.c): which files are spec files, the sorted and bounded
 * walk of the spec directory, opening and reading beneath the root
 * (openat2(RESOLVE_BENEATH), else realpath), errors at the file. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "spec-internal.h"
#include "util.h"

/* Opens rel (relative to the root) for reading without leaving the root:
 * openat2(RESOLVE_BENEATH) where the kernel has it, realpath otherwise
 * (then O_NOFOLLOW on the resolved path). Always O_NONBLOCK, so a FIFO
 * or device cannot block the loop: callers fstat() before any read.
 * Returns an fd, or -EXDEV when a symlink leads out, -ELOOP for a symlink
 * loop, or -errno. */
int spec_open_beneath(SpecCtx *c, const char *rel) {
        _cleanup_free_ char *abs = NULL, *real = NULL;
        size_t lroot = strlen(c->root);
        int fd;

        if (c->root_fd >= 0 && !c->no_openat2) {
                struct open_how how = {
                        .flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
                        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
                };

                fd = (int) syscall(SYS_openat2, c->root_fd, rel, &how, sizeof(how));
                if (fd >= 0)
                        return fd;
                /* EXDEV: an absolute symlink, which may still point inside;
                 * the realpath check below decides. */
                if (errno != ENOSYS && errno != EPERM && errno != EXDEV)
                        return -errno;
                if (errno != EXDEV)
                        c->no_openat2 = true; /* old kernel or a seccomp filter */
        }
        abs = path_join(c->root, rel);
        if (!abs)
                return -ENOMEM;
        real = realpath(abs, NULL);
        if (!real)
                return -errno;
        if (strncmp(real, c->root, lroot) != 0 || (real[lroot] != '/' && !streq(c->root, "/")))
                return -EXDEV;
        fd = open(real, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW);
        return fd < 0 ? -errno : fd;
}

/* Reads a whole spec file through spec_open_beneath(): fstat first, regular
 * files only (-EBADFD), at most max bytes (-EFBIG). */
static int read_beneath(SpecCtx *c, const char *rel, size_t max, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t size = 0;

        fd = spec_open_beneath(c, rel);
        if (fd < 0)
                return fd;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if ((uint64_t) st.st_size > max)
                return -EFBIG;
        buf = malloc((size_t) st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        /* What fstat promised, no more: a file growing meanwhile is cut. */
        while (size < (size_t) st.st_size) {
                ssize_t k = read(fd, buf + size, (size_t) st.st_size - size);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                size += (size_t) k;
        }
        buf[size] = 0;
        *ret = TAKE_PTR(buf);
        *ret_size = size;
        return 0;
}

/* What a non-regular file is, for messages. */
const char *spec_file_type_name(mode_t m) {
        return S_ISFIFO(m) ? "a FIFO" : S_ISSOCK(m) ? "a socket" : S_ISCHR(m) ? "a character device" :
               S_ISBLK(m) ? "a block device" : S_ISDIR(m) ? "a directory" : "not a regular file";
}

/* Reads spec file rel for parsing: errors reported at the file, the total
 * of YAML bytes counted against its limit, a UTF-8 BOM refused. */
bool spec_read_file(SpecCtx *c, const char *rel, char **ret, size_t *ret_size) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        int r;

        r = read_beneath(c, rel, c->limits->max_file_size, &buf, &size);
        if (r == -EBADFD) {
                spec_errorf(c, rel, 0, 0, "not a regular file; spec files must be regular files");
                return false;
        }
        if (r == -ELOOP) {
                spec_errorf(c, rel, 0, 0, "symlink loop");
                return false;
        }
        if (r == -EXDEV) {
                spec_errorf(c, rel, 0, 0, "symlink leaves the spec directory");
                return false;
        }
        if (r == -EFBIG) {
                spec_errorf(c, rel, 1, 1, "file is larger than the limit of %zu bytes",
                            c->limits->max_file_size);
                return false;
        }
        if (r == -ENOMEM) {
                c->oom = true;
                return false;
        }
        if (r < 0) {
                spec_errorf(c, rel, 1, 1, "cannot read file: %s", strerror(-r));
                return false;
        }
        if (c->limits->max_total_yaml > 0 && c->total_yaml + size > c->limits->max_total_yaml) {
                if (!c->total_yaml_exceeded)
                        spec_errorf(c, rel, 1, 1, "the spec files exceed %llu bytes in total",
                                    (unsigned long long) c->limits->max_total_yaml);
                c->total_yaml_exceeded = true;
                return false;
        }
        c->total_yaml += size;
        if (size >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0) {
                spec_errorf(c, rel, 1, 1, "file starts with a UTF-8 byte order mark (BOM); "
                            "save it as UTF-8 without BOM");
                return false;
        }
        *ret = TAKE_PTR(buf);
        *ret_size = size;
        return true;
}

static bool spec_file_name(const char *name) {
        if (name[0] == '.' || name[0] == '#' || endswith(name, "~"))
                return false;
        return endswith(name, ".yaml") || endswith(name, ".yml");
}

static int dirent_not_hidden(const struct dirent *de) {
        return de->d_name[0] != '.';
}

static int cmp_dirent_name(const struct dirent **a, const struct dirent **b) {
        return strcmp((*a)->d_name, (*b)->d_name);
}

/* A symlink at child (cabs from /): when it is a spec file inside the
 * tree, *st becomes its target's and the answer true. A directory is not
 * followed (inside the tree its files are read at their real path); one
 * leading out of the tree, or a spec file's link that is dangling or loops
 * or leads out, is reported. */
static bool follow_symlink(SpecCtx *c, const char *child, const char *cabs, const char *name,
                           struct stat *st) {
        _cleanup_free_ char *real = NULL;
        size_t lr = strlen(c->root);
        bool inside;

        real = realpath(cabs, NULL);
        if (!real || stat(real, st) < 0) {
                if (spec_file_name(name))
                        spec_errorf(c, child, 1, 1, errno == ELOOP ? "symlink loop" :
                                    "dangling symlink");
                return false;
        }
        inside = strncmp(real, c->root, lr) == 0 && real[lr] == '/';
        if (S_ISDIR(st->st_mode)) {
                if (!inside)
                        spec_errorf(c, child, 1, 1, "symlink leaves the spec directory");
                return false;
        }
        if (!spec_file_name(name))
                return false;
        if (!inside) {
                spec_errorf(c, child, 1, 1, "symlink leaves the spec directory");
                return false;
        }
        return true;
}

/* One directory entry below rel: a directory is scanned, a regular file
 * named like a spec joins *files (up to the limit). */
static void scan_entry(SpecCtx *c, const char *rel, unsigned depth, const struct dirent *de,
                       char ***files, size_t *n_files) {
        _cleanup_free_ char *child = NULL, *cabs = NULL;
        const char *name = de->d_name;
        struct stat st;

        /* Most entries of a bundle directory are not spec files: skip
         * those without a stat when readdir tells the type. */
        if (de->d_type == DT_REG && !spec_file_name(name))
                return;
        if (asprintf(&child, "%s%s%s", rel, *rel ? "/" : "", name) < 0) {
                child = NULL;
                c->oom = true;
                return;
        }
        cabs = path_join(c->root, child);
        if (!cabs) {
                c->oom = true;
                return;
        }
        if (lstat(cabs, &st) < 0)
                return;
        if (S_ISLNK(st.st_mode) && !follow_symlink(c, child, cabs, name, &st))
                return;
        if (S_ISDIR(st.st_mode)) {
                if (depth + 1 > c->limits->max_dir_depth)
                        spec_errorf(c, child, 1, 1, "directory nesting deeper than %u levels",
                                    c->limits->max_dir_depth);
                else
                        spec_scan_dir(c, child, depth + 1, files, n_files);
                return;
        }
        if (!spec_file_name(name))
                return;
        if (!S_ISREG(st.st_mode)) {
                /* A FIFO, socket or device named like a spec: its
                 * documents would silently vanish. */
                spec_errorf(c, child, 0, 0, "%s, not a regular file; spec files must be regular files",
                            spec_file_type_name(st.st_mode));
                return;
        }
        if (*n_files >= c->limits->max_files) {
                if (*n_files == c->limits->max_files)
                        spec_errorf(c, child, 1, 1, "too many spec files (limit %zu)",
                                    c->limits->max_files);
                (*n_files)++;
                return;
        }
        if (strv_consume(files, TAKE_PTR(child)) < 0)
                c->oom = true;
        else
                (*n_files)++;
}

/* Collects spec files below root/rel into *files (relative paths), in
 * name order, which keeps "too many files" deterministic. */
void spec_scan_dir(SpecCtx *c, const char *rel, unsigned depth, char ***files, size_t *n_files) {
        _cleanup_free_ char *abs = NULL;
        struct dirent **ents = NULL;
        int n;

        abs = *rel ? path_join(c->root, rel) : strdup(c->root);
        if (!abs) {
                c->oom = true;
                return;
        }
        n = scandir(abs, &ents, dirent_not_hidden, cmp_dirent_name);
        if (n < 0) {
                if (errno == ENOMEM)
                        c->oom = true;
                else
                        spec_errorf(c, *rel ? rel : ".", 1, 1, "cannot read directory: %s",
                                    strerror(errno));
                return;
        }
        for (int i = 0; i < n; i++) {
                if (!c->oom)
                        scan_entry(c, rel, depth, ents[i], files, n_files);
                free(ents[i]);
        }
        free(ents);
}
