/* watch.h: inotify on a spec directory tree, debounced, on the daemon's
 * sd-event loop.
 *
 * inotify is not recursive: every directory below the root gets its own
 * watch, and directories created (or moved in) later are added as they
 * appear. Hidden entries (".git", ".file.swp") and editor temporaries
 * ("file~", "#file#", vim's "4913", "*.swp", "*.tmp") are ignored. Editors
 * and git rename files into place, so IN_MOVED_TO counts like a write.
 *
 * Changes are debounced: the callback runs once debounce_usec after the
 * last relevant event, and at most max_delay_usec after the first one,
 * so a steady stream of writes cannot postpone a reload forever.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "cleanup.h"

typedef struct Watch Watch;

typedef void (*watch_changed_t)(Watch *w, void *userdata);

/* Returns -errno (e.g. -ENOENT if dir is missing). Non-logging except at
 * debug level. */
int watch_new(Watch **ret, sd_event *event, const char *dir, uint64_t debounce_usec,
              watch_changed_t changed, void *userdata);
Watch *watch_free(Watch *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(Watch *, watch_free);

/* True for names the watch (and the spec loader) ignore. */
bool watch_name_ignored(const char *name);
