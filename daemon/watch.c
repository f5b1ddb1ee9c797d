/* watch.c: see watch.h. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include "log.h"
#include "util.h"
#include "watch.h"

#define WATCH_MAX_DIRS 4096
#define WATCH_MAX_DEPTH 16
#define WATCH_DIR_MASK (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | \
                        IN_DELETE_SELF | IN_MOVE_SELF | IN_ATTRIB | IN_ONLYDIR | IN_DONT_FOLLOW)

typedef struct WatchDir {
        int wd;
        char *path;
        unsigned depth;
} WatchDir;

struct Watch {
        sd_event *event;
        char *root;                 /* the resolved spec directory */
        char *path;                 /* as configured (maybe a symlink that a deploy flips) */
        char *path_name;            /* its last component */
        int parent_wd;              /* the directory holding path: a flip is a rename there */
        int fd;
        sd_event_source *io;
        sd_event_source *timer;
        uint64_t debounce_usec;
        uint64_t max_delay_usec;
        uint64_t first_usec;        /* first event not yet reported; 0: none */
        bool rescan;                /* lost a watch or the queue overflowed */
        WatchDir *dirs;
        size_t n_dirs;
        watch_changed_t changed;
        void *userdata;
};

bool watch_name_ignored(const char *name) {
        if (isempty(name) || name[0] == '.')
                return true;                    /* hidden, ".#lock", ".file.swp" */
        if (endswith(name, "~") || endswith(name, ".swp") || endswith(name, ".swx") ||
            endswith(name, ".tmp") || endswith(name, ".part") || endswith(name, ".orig") ||
            endswith(name, ".rej"))
                return true;
        if (name[0] == '#' && endswith(name, "#"))
                return true;                    /* emacs autosave */
        if (streq(name, "4913"))
                return true;                    /* vim's write test */
        return false;
}

static void dirs_clear(Watch *w) {
        for (size_t i = 0; i < w->n_dirs; i++) {
                if (w->fd >= 0 && w->dirs[i].wd >= 0)
                        (void) inotify_rm_watch(w->fd, w->dirs[i].wd);
                free(w->dirs[i].path);
        }
        w->dirs = mfree(w->dirs);
        w->n_dirs = 0;
}

static WatchDir *dir_by_wd(Watch *w, int wd) {
        for (size_t i = 0; i < w->n_dirs; i++)
                if (w->dirs[i].wd == wd)
                        return &w->dirs[i];
        return NULL;
}

static void dir_forget(Watch *w, int wd) {
        for (size_t i = 0; i < w->n_dirs; i++)
                if (w->dirs[i].wd == wd) {
                        free(w->dirs[i].path);
                        w->dirs[i] = w->dirs[--w->n_dirs];
                        return;
                }
}

/* Watches path and every directory below it. */
static int add_tree(Watch *w, const char *path, unsigned depth) {
        _cleanup_free_ char *copy = NULL;
        WatchDir *n;
        DIR *d;
        struct dirent *de;
        int wd;

        if (depth > WATCH_MAX_DEPTH || w->n_dirs >= WATCH_MAX_DIRS)
                return 0;
        wd = inotify_add_watch(w->fd, path, WATCH_DIR_MASK);
        if (wd < 0)
                return -errno;
        if (!dir_by_wd(w, wd)) {
                copy = strdup(path);
                if (!copy)
                        return -ENOMEM;
                n = realloc(w->dirs, sizeof(WatchDir) * (w->n_dirs + 1));
                if (!n)
                        return -ENOMEM;
                w->dirs = n;
                w->dirs[w->n_dirs++] = (WatchDir) { .wd = wd, .path = TAKE_PTR(copy), .depth = depth };
        }

        d = opendir(path);
        if (!d)
                return errno == ENOENT ? 0 : -errno;
        while ((de = readdir(d))) {
                _cleanup_free_ char *sub = NULL;
                struct stat st;

                if (watch_name_ignored(de->d_name))
                        continue;
                if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)
                        continue;
                sub = path_join(path, de->d_name);
                if (!sub) {
                        closedir(d);
                        return -ENOMEM;
                }
                if (lstat(sub, &st) < 0 || !S_ISDIR(st.st_mode))
                        continue;
                if (add_tree(w, sub, depth + 1) == -ENOMEM) {
                        closedir(d);
                        return -ENOMEM;
                }
        }
        closedir(d);
        return 0;
}

static int watch_rescan(Watch *w) {
        dirs_clear(w);
        return add_tree(w, w->root, 0);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Watch *w = userdata;
        int r;

        w->first_usec = 0;
        if (w->rescan) {
                w->rescan = false;
                r = watch_rescan(w);
                if (r < 0)
                        log_debug_errno(r, "Re-watching '%s' failed, ignoring: %m", w->root);
        }
        w->changed(w, w->userdata);
        return 0;
}

static void schedule(Watch *w) {
        uint64_t now = now_monotonic_usec(), when;

        if (w->first_usec == 0)
                w->first_usec = now;
        when = now + w->debounce_usec;
        if (when > w->first_usec + w->max_delay_usec)
                when = w->first_usec + w->max_delay_usec;
        (void) sd_event_source_set_time(w->timer, when);
        (void) sd_event_source_set_enabled(w->timer, SD_EVENT_ONESHOT);
}

/* Re-resolves the configured path; true if it names another directory. */
static bool root_changed(Watch *w) {
        _cleanup_free_ char *now = realpath(w->path, NULL);

        if (!now || streq_ptr(now, w->root))
                return false;
        free(w->root);
        w->root = TAKE_PTR(now);
        return true;
}

static int on_inotify(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Watch *w = userdata;
        union {
                struct inotify_event ev;
                char buf[16 * (sizeof(struct inotify_event) + NAME_MAX + 1)];
        } u;
        bool relevant = false;
        ssize_t n;

        for (;;) {
                n = read(w->fd, u.buf, sizeof(u.buf));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        break;  /* EAGAIN: drained */
                }
                for (char *p = u.buf; p < u.buf + n;) {
                        struct inotify_event *e = (struct inotify_event *) p;
                        const char *name = e->len > 0 ? e->name : NULL;
                        WatchDir *d;

                        p += sizeof(struct inotify_event) + e->len;

                        if (e->mask & IN_Q_OVERFLOW) {
                                w->rescan = relevant = true;
                                continue;
                        }
                        if (e->mask & IN_IGNORED) {
                                dir_forget(w, e->wd);
                                continue;
                        }
                        if (e->wd == w->parent_wd) {
                                /* "ln -s new tmp && mv -T tmp spec": the configured
                                 * path now names another directory. */
                                if (name && streq(name, w->path_name) && root_changed(w)) {
                                        log_debug("Spec directory '%s' now resolves to '%s'.", w->path, w->root);
                                        w->rescan = relevant = true;
                                }
                                continue;
                        }
                        d = dir_by_wd(w, e->wd);
                        if (!d)
                                continue;
                        if (e->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
                                if (d->depth == 0)
                                        w->rescan = true;  /* the root itself went away */
                                relevant = true;
                                continue;
                        }
                        if (!name || watch_name_ignored(name))
                                continue;
                        if ((e->mask & IN_ISDIR) && (e->mask & (IN_CREATE | IN_MOVED_TO))) {
                                _cleanup_free_ char *sub = path_join(d->path, name);

                                if (sub && add_tree(w, sub, d->depth + 1) < 0)
                                        w->rescan = true;
                        }
                        log_debug("Spec change: %s/%s (mask 0x%x).", d->path, name, e->mask);
                        relevant = true;
                }
        }
        if (relevant)
                schedule(w);
        return 0;
}

int watch_new(Watch **ret, sd_event *event, const char *dir, uint64_t debounce_usec,
              watch_changed_t changed, void *userdata) {
        _cleanup_(watch_freep) Watch *w = NULL;
        int r;

        w = calloc(1, sizeof(Watch));
        if (!w)
                return -ENOMEM;
        w->fd = -EBADF;
        w->parent_wd = -1;
        w->event = sd_event_ref(event);
        w->debounce_usec = debounce_usec;
        w->max_delay_usec = 5 * debounce_usec;
        w->changed = changed;
        w->userdata = userdata;
        /* The root may be a symlink (a deploy that flips a "current" link
         * is common): watch what it points to. Everything below the root is
         * watched with IN_DONT_FOLLOW, as the spec loader refuses links that
         * leave the spec directory. */
        w->root = realpath(dir, NULL);
        if (!w->root && errno != ENOMEM)
                w->root = strdup(dir);
        if (!w->root)
                return -ENOMEM;
        w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (w->fd < 0)
                return -errno;
        r = add_tree(w, w->root, 0);
        if (r < 0)
                return r;
        /* The directory holding the configured path, for atomic flips of a
         * symlink (or a directory renamed into place). Best effort. */
        w->path = strdup(dir);
        if (!w->path)
                return -ENOMEM;
        {
                _cleanup_free_ char *copy = strdup(dir), *parent = NULL;
                char *slash;

                if (!copy)
                        return -ENOMEM;
                while (endswith(copy, "/") && strlen(copy) > 1)
                        copy[strlen(copy) - 1] = 0;
                slash = strrchr(copy, '/');
                parent = slash ? strndup(copy, slash == copy ? 1 : (size_t) (slash - copy)) : strdup(".");
                w->path_name = strdup(slash ? slash + 1 : copy);
                if (!parent || !w->path_name)
                        return -ENOMEM;
                w->parent_wd = inotify_add_watch(w->fd, parent, IN_CREATE | IN_MOVED_TO | IN_ONLYDIR);
                if (w->parent_wd < 0)
                        log_debug_errno(errno, "Cannot watch '%s' for flips of '%s', ignoring: %m", parent, dir);
        }
        r = sd_event_add_io(event, &w->io, w->fd, EPOLLIN, on_inotify, w);
        if (r < 0)
                return r;
        r = sd_event_add_time(event, &w->timer, CLOCK_MONOTONIC, USEC_INFINITY, USEC_PER_MSEC, on_timer, w);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(w->timer, SD_EVENT_OFF);
        *ret = TAKE_PTR(w);
        return 0;
}

Watch *watch_free(Watch *w) {
        if (!w)
                return NULL;
        sd_event_source_disable_unref(w->io);
        sd_event_source_disable_unref(w->timer);
        dirs_clear(w);
        if (w->fd >= 0)
                close(w->fd);
        free(w->root);
        free(w->path);
        free(w->path_name);
        sd_event_unref(w->event);
        return mfree(w);
}
