/* bindery-toml.cc: the TOML reader "binderyd import" runs for a
 * wrangler.toml (installed in $(pkglibexecdir); the protocol is in
 * import-toml.h, the caller is import-toml.c). The tree's one C++ program:
 * toml++ (C++17) turns the document on standard input into one JSON
 * document on standard output, the config and its key path -> line map or
 * the syntax error with its line and column. It takes no arguments, does
 * no other I/O, writes nothing to standard error and lets no exception
 * out; its exit status says which answer it wrote.
 *
 * Why a program of its own: linked into binderyd, toml++ made every daemon
 * map libstdc++, libtomlplusplus, libgcc_s and libm (~1.3 MiB of RSS) for a
 * command the daemon never runs. */
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <sstream>
#include <string_view>

#include <unistd.h>

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

/* How deep a wrangler.toml may nest: far beyond any wrangler key, well
 * within toml++'s own limit (TOML_MAX_NESTED_VALUES, 256). */
constexpr unsigned MAX_DEPTH = 64;

/* A new json-c object for n, NULL on OOM or, with *too_deep set to the
 * node, when n nests deeper than MAX_DEPTH. Records lines of every key. */
json_object *to_json(const toml::node &n, const std::string &path, json_object *lines, unsigned depth,
                     const toml::node **too_deep) {
        if (depth > MAX_DEPTH) {
                *too_deep = &n;
                return nullptr;
        }
        if (const toml::table *t = n.as_table()) {
                json_object *o = json_object_new_object();

                if (!o)
                        return nullptr;
                for (const auto &[k, v] : *t) {
                        std::string p = child_path(path, k.str());
                        json_object *c = to_json(v, p, lines, depth + 1, too_deep);

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
                        json_object *c = to_json(v, p, lines, depth + 1, too_deep);

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

/* Appends all of standard input to text: false on a read error, or with
 * *too_large when there is more than max bytes. */
bool read_input(std::string &text, size_t max, bool *too_large) {
        char buf[65536];

        *too_large = false;
        for (;;) {
                ssize_t k = read(STDIN_FILENO, buf, sizeof buf);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return false;
                }
                if (k == 0)
                        return true;
                if ((size_t) k > max - text.size()) {
                        *too_large = true;
                        return false;
                }
                text.append(buf, (size_t) k);
        }
}

bool write_all(const char *p, size_t n) {
        while (n > 0) {
                ssize_t k = write(STDOUT_FILENO, p, n);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return false;
                }
                p += k;
                n -= (size_t) k;
        }
        return true;
}

/* Writes doc and a newline to standard output and frees doc. Returns the
 * exit status: status, or IMPORT_TOML_EXIT_NOMEM / _IO. */
int write_doc(json_object *doc, int status) {
        const char *s;
        size_t n;
        int r;

        if (!doc)
                return IMPORT_TOML_EXIT_NOMEM;
        s = json_object_to_json_string_length(doc, JSON_C_TO_STRING_PLAIN, &n);
        if (!s)
                r = IMPORT_TOML_EXIT_NOMEM;
        else
                r = write_all(s, n) && write_all("\n", 1) ? status : IMPORT_TOML_EXIT_IO;
        json_object_put(doc);
        return r;
}

/* Sets o[k] = v (takes v); false on OOM, v freed. */
bool set(json_object *o, const char *k, json_object *v) {
        if (!v || json_object_object_add(o, k, v) < 0) {
                json_object_put(v);
                return false;
        }
        return true;
}

/* {"error": {"line": L, "column": C, "message": M}}, exit status 1. */
int answer_error(unsigned line, unsigned column, const char *message) {
        json_object *doc = json_object_new_object(), *e = json_object_new_object();

        if (!doc || !set(doc, "error", e) || !set(e, "line", json_object_new_int64(line)) ||
            !set(e, "column", json_object_new_int64(column)) ||
            !set(e, "message", json_object_new_string(message))) {
                json_object_put(doc);
                return IMPORT_TOML_EXIT_NOMEM;
        }
        return write_doc(doc, IMPORT_TOML_EXIT_NOT_TOML);
}

/* {"config": ..., "lines": ...}, exit status 0. */
int answer_parsed(const toml::table &t) {
        const toml::node *too_deep = nullptr;
        json_object *doc = json_object_new_object(), *lines = json_object_new_object();
        json_object *config = lines ? to_json(t, std::string(), lines, 0, &too_deep) : nullptr;

        if (!doc || !config) {
                json_object_put(config);
                json_object_put(lines);
                json_object_put(doc);
                if (too_deep)
                        return answer_error((unsigned) too_deep->source().begin.line,
                                            (unsigned) too_deep->source().begin.column,
                                            "tables and arrays nest deeper than 64 levels");
                return IMPORT_TOML_EXIT_NOMEM;
        }
        if (!set(doc, "config", config)) {
                json_object_put(lines);
                json_object_put(doc);
                return IMPORT_TOML_EXIT_NOMEM;
        }
        if (!set(doc, "lines", lines)) {
                json_object_put(doc);
                return IMPORT_TOML_EXIT_NOMEM;
        }
        return write_doc(doc, IMPORT_TOML_EXIT_PARSED);
}

} // namespace

int main(int argc, char **argv) {
        (void) argv;
        if (argc > 1)
                return IMPORT_TOML_EXIT_IO;
        try {
                std::string text;
                bool too_large;

                if (!read_input(text, IMPORT_TOML_MAX_INPUT, &too_large))
                        return too_large ? answer_error(0, 0, "file too large") : IMPORT_TOML_EXIT_IO;
                try {
                        toml::table t = toml::parse(std::string_view(text));

                        return answer_parsed(t);
                } catch (const toml::parse_error &e) {
                        return answer_error((unsigned) e.source().begin.line, (unsigned) e.source().begin.column,
                                            std::string(e.description()).c_str());
                }
        } catch (const std::bad_alloc &) {
                return IMPORT_TOML_EXIT_NOMEM;
        } catch (...) {
                return answer_error(0, 0, "cannot parse TOML");
        }
}
