/* import-toml.cc: toml++ behind the C interface of import-toml.h. The one
 * C++ translation unit of the tree; see the header for why. */
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <sstream>
#include <string_view>

#include <toml++/toml.h>

#include "import-toml.h"

namespace {

/* The key path of a child, as import.c spells it. */
std::string child_path(const std::string &parent, std::string_view key) {
        if (parent.empty())
                return std::string(key);
        return parent + "." + std::string(key);
}

bool add_line(json_object *lines, const std::string &path, const toml::node &n) {
        json_object *l = json_object_new_int64((int64_t) n.source().begin.line);

        if (!l)
                return false;
        if (json_object_object_add(lines, path.c_str(), l) < 0) {
                json_object_put(l);
                return false;
        }
        return true;
}

/* A new json-c object for n, NULL on OOM. Records lines of every key. */
json_object *to_json(const toml::node &n, const std::string &path, json_object *lines, unsigned depth) {
        if (depth > 64)
                return json_object_new_null();
        if (const toml::table *t = n.as_table()) {
                json_object *o = json_object_new_object();

                if (!o)
                        return nullptr;
                for (const auto &[k, v] : *t) {
                        std::string p = child_path(path, k.str());
                        json_object *c = to_json(v, p, lines, depth + 1);

                        if (!c || json_object_object_add(o, std::string(k.str()).c_str(), c) < 0 ||
                            !add_line(lines, p, v)) {
                                json_object_put(c);
                                json_object_put(o);
                                return nullptr;
                        }
                }
                return o;
        }
        if (const toml::array *a = n.as_array()) {
                json_object *o = json_object_new_array();
                size_t i = 0;

                if (!o)
                        return nullptr;
                for (const toml::node &v : *a) {
                        std::string p = path + "[" + std::to_string(i++) + "]";
                        json_object *c = to_json(v, p, lines, depth + 1);

                        if (!c || json_object_array_add(o, c) < 0 || !add_line(lines, p, v)) {
                                json_object_put(c);
                                json_object_put(o);
                                return nullptr;
                        }
                }
                return o;
        }
        if (const auto *s = n.as_string())
                return json_object_new_string_len(s->get().data(), (int) s->get().size());
        if (const auto *i = n.as_integer())
                return json_object_new_int64(i->get());
        if (const auto *f = n.as_floating_point())
                return json_object_new_double(f->get());
        if (const auto *b = n.as_boolean())
                return json_object_new_boolean(b->get());
        /* Dates and times: their TOML text. */
        std::string text;
        if (const auto *d = n.as_date()) {
                std::ostringstream os;
                os << d->get();
                text = os.str();
        } else if (const auto *t = n.as_time()) {
                std::ostringstream os;
                os << t->get();
                text = os.str();
        } else if (const auto *dt = n.as_date_time()) {
                std::ostringstream os;
                os << dt->get();
                text = os.str();
        }
        return json_object_new_string(text.c_str());
}

} // namespace

extern "C" int import_toml_parse(const char *text, size_t size, json_object **ret, json_object **ret_lines,
                                 char **ret_error, unsigned *ret_line, unsigned *ret_column) {
        try {
                toml::table t = toml::parse(std::string_view(text, size));
                json_object *lines = json_object_new_object();
                json_object *o;

                if (!lines)
                        return -ENOMEM;
                o = to_json(t, std::string(), lines, 0);
                if (!o) {
                        json_object_put(lines);
                        return -ENOMEM;
                }
                *ret = o;
                *ret_lines = lines;
                return 0;
        } catch (const toml::parse_error &e) {
                *ret_line = (unsigned) e.source().begin.line;
                *ret_column = (unsigned) e.source().begin.column;
                *ret_error = strdup(std::string(e.description()).c_str());
                return *ret_error ? -EINVAL : -ENOMEM;
        } catch (const std::bad_alloc &) {
                return -ENOMEM;
        } catch (...) {
                *ret_line = 0;
                *ret_column = 0;
                *ret_error = strdup("cannot parse TOML");
                return *ret_error ? -EINVAL : -ENOMEM;
        }
}
