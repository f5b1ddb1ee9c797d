/* cmd-daemon.c: placeholder until its owner lands the real command. */
#include "commands.h"
#include "log.h"

int cmd_daemon(const Options *o) {
        log_error("daemon: not implemented yet.");
        return EXIT_FAILED;
}
