/* cmd-daemon.c: "binderyd [daemon] [--config FILE]": load the
 * configuration, then hand everything to the manager's event loop. */
#include <unistd.h>

#include "cmd-config.h"
#include "commands.h"
#include "config.h"
#include "log.h"
#include "manager.h"
#include "util.h"

int cmd_daemon(const Options *o) {
        _cleanup_(manager_freep) Manager *m = NULL;
        Config *c = NULL;
        int r;

        r = cmd_load_config(o, &c);
        if (r < 0)
                return EXIT_FAILED;
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
