/* cmd-config.c: see cmd-config.h. */
#include <unistd.h>

#include "cmd-config.h"
#include "log.h"
#include "util.h"

void config_log_errors(const char *path, int r, const ConfigError *errs, size_t n_errs) {
        const char *shown = path ?: "binderyd";

        for (size_t i = 0; i < n_errs; i++)
                if (errs[i].line > 0)
                        log_error("%s:%u:%u: %s", shown, errs[i].line, errs[i].column, errs[i].message);
                else
                        log_error("%s: %s", shown, errs[i].message);
        if (n_errs == 0 && r < 0)
                log_error_errno(r, "Failed to read configuration '%s': %m", shown);
}

int cmd_load_config(const Options *o, Config **ret) {
        const char *path = o->config_path ?: BINDERY_DEFAULT_CONFIG;
        ConfigError *errs = NULL;
        size_t n_errs = 0;
        int r;

        if (!o->config_given && access(path, F_OK) < 0)
                path = NULL;
        r = config_load(path, o, ret, &errs, &n_errs);
        if (r < 0) {
                config_log_errors(path, r, errs, n_errs);
                config_errors_free(errs, n_errs);
                return r;
        }
        return 0;
}
