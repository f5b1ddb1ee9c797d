/* cmd-engine.c: placeholder until its owner lands the real command. */
#include "commands.h"
#include "log.h"

int cmd_plan(const Options *o) {
        log_error("plan: not implemented yet.");
        return EXIT_FAILED;
}

int cmd_apply(const Options *o) {
        log_error("apply: not implemented yet.");
        return EXIT_FAILED;
}
