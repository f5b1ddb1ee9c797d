/* sim-json.c: see sim-json.h. */
#include <errno.h>
#include <string.h>

#include "sim-json.h"

int sim_json_parse(const char *data, size_t size, json_object **ret) {
        struct json_tokener *tok;
        json_object *o;
        size_t used;
        int finished = 0;

        if (size > (size_t) INT32_MAX - 1 || memchr(data, 0, size))
                return -EBADMSG;
        tok = json_tokener_new_ex(SIM_JSON_DEPTH_MAX);
        if (!tok)
                return -ENOMEM;
        o = json_tokener_parse_ex(tok, data, (int) size);
        if (!o && json_tokener_get_error(tok) == json_tokener_continue)
                /* Incomplete at end of input; a bare number such as "12"
                 * completes when the tokener is told the input ended. */
                o = json_tokener_parse_ex(tok, "", 1), finished = 1;
        if (!o || json_tokener_get_error(tok) != json_tokener_success) {
                json_object_put(o);
                json_tokener_free(tok);
                return -EBADMSG;
        }
        used = finished ? size : json_tokener_get_parse_end(tok);
        json_tokener_free(tok);
        for (size_t i = used; i < size; i++)
                if (!strchr(" \t\r\n", data[i])) {
                        json_object_put(o);
                        return -EBADMSG;
                }
        *ret = o;
        return 0;
}

const char *sim_json_str(json_object *o, const char *key) {
        json_object *v;

        if (!o || !json_object_is_type(o, json_type_object) ||
            !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

json_object *sim_json_obj(json_object *o, const char *key) {
        json_object *v;

        if (!o || !json_object_is_type(o, json_type_object) ||
            !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_object))
                return NULL;
        return v;
}

json_object *sim_json_arr(json_object *o, const char *key) {
        json_object *v;

        if (!o || !json_object_is_type(o, json_type_object) ||
            !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_array))
                return NULL;
        return v;
}

int sim_json_bool(json_object *o, const char *key, int dflt) {
        json_object *v;

        if (!o || !json_object_is_type(o, json_type_object) ||
            !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_boolean))
                return dflt;
        return json_object_get_boolean(v);
}
