/* cmd-config.h: loading binderyd.yaml for the commands and the daemon's
 * reload, with the errors logged once, in one format. config.c itself is
 * non-logging; this is the layer above it that logs. */
#pragma once

#include "commands.h"
#include "config.h"

/* Logs each error as "FILE:LINE:COLUMN: message" ("FILE: message" when
 * the error has no location), or, when there are none, r as "Failed to
 * read configuration 'FILE': %m". path NULL means defaults and flags only
 * and is shown as "binderyd". */
void config_log_errors(const char *path, int r, const ConfigError *errs, size_t n_errs);

/* Loads the configuration for a command: o->config_path, except that
 * without --config a missing default file means defaults and flags only.
 * Logs every error (config_log_errors) and returns -EINVAL or -errno;
 * on success *ret owns the Config. */
int cmd_load_config(const Options *o, Config **ret);
