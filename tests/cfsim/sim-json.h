/* sim-json.h: bounded JSON request-body decoding for cfsim.
 *
 * Pure code (json-c only), linked alone by the fuzz harness. */
#pragma once

#include <stddef.h>
#include <json-c/json.h>

#define SIM_JSON_DEPTH_MAX 64

/* Parses exactly one JSON value from data (whitespace around it allowed,
 * anything else is an error), with nesting limited to SIM_JSON_DEPTH_MAX.
 * Embedded NULs are rejected. On success *ret owns a new reference.
 * Returns 0, -EBADMSG (not JSON) or -ENOMEM. */
int sim_json_parse(const char *data, size_t size, json_object **ret);

/* Typed getters: return the member when present with the right type,
 * else NULL / the default. Never allocate. */
const char *sim_json_str(json_object *o, const char *key);
json_object *sim_json_obj(json_object *o, const char *key);
json_object *sim_json_arr(json_object *o, const char *key);
int sim_json_bool(json_object *o, const char *key, int dflt);
