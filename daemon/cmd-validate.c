/* cmd-validate.c: placeholder until its owner lands the real command. */
#include "commands.h"
#include "log.h"

int cmd_validate(const Options *o) {
        log_error("validate: not implemented yet.");
        return EXIT_FAILED;
}

int cmd_types(const Options *o) {
        log_error("types: not implemented yet.");
        return EXIT_FAILED;
}
