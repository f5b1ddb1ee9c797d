/* schema.h: the JSON Schema (draft 2020-12) of one spec document
 * (bindery-spec(5)), for editors: yaml-language-server reads it from a
 * "# yaml-language-server: $schema=FILE" line and checks each document of
 * a file against it. Generated from the loader's tables (spec-grammar.h).
 * Pure: no I/O. */
#pragma once

#include <json-c/json.h>

/* A new schema object in *ret. -ENOMEM; -ENOKEY when a key of the
 * loader's tables has no value type here (a bug the schema test catches). */
int schema_build(json_object **ret);
