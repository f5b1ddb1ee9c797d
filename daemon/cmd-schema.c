/* cmd-schema.c: `binderyd schema` prints the JSON Schema of the spec
 * language (binderyd(8), schema.h). */
#include <stdio.h>

#include <json-c/json.h>

#include "commands.h"
#include "log.h"
#include "schema.h"

int cmd_schema(const Options *o) {
        json_object *s = NULL;
        int r;

        r = schema_build(&s);
        if (r < 0)
                return log_error_errno(r, "schema: cannot build the schema: %m"), EXIT_FAILED;
        printf("%s\n", json_object_to_json_string_ext(s, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                              JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(s);
        return EXIT_OK;
}
