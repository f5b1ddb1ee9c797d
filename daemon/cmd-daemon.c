/* cmd-daemon.c: "binderyd [daemon] [--config FILE]": load the
 * configuration, then hand everything to the manager's event loop. */
#include <unistd.h>

#include "commands.h"
#include "config.h"
#include "log.h"
#include "manager.h"
#include "util.h"

int cmd_daemon(const Options *o) {
        _cleanup_(manager_freep) Manager *m = NULL;
        ConfigError *errs = NULL;
        size_t n_errs = 0;
        const char *path = o->config_path;
        Config *c = NULL;
        int r;

        /* Without --config, a missing default file means "flags only". */
        if (!o->config_given && access(path, F_OK) < 0)
                path = NULL;

        r = config_load(path, o, &c, &errs, &n_errs);
        if (r < 0) {
                for (size_t i = 0; i < n_errs; i++)
                        if (errs[i].line > 0)
                                log_error("%s:%u:%u: %s", strna(path), errs[i].line, errs[i].column, errs[i].message);
                        else
                                log_error("%s: %s", path ? path : "binderyd", errs[i].message);
                config_errors_free(errs, n_errs);
                if (n_errs == 0)
                        log_error_errno(r, "Failed to read configuration '%s': %m", strna(path));
                return EXIT_FAILED;
        }
        if (!o->log_level)
                log_set_max_level(c->log_level);

        r = manager_new(&m, c, o);
        if (r < 0)
                return EXIT_FAILED;
        r = manager_start(m);
        if (r < 0)
                return EXIT_FAILED;
        return manager_run(m);
}
