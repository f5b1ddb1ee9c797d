/* notify.c: see notify.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <curl/curl.h>

#include "curl-glue.h"
#include "httpd.h"
#include "log.h"
#include "notify.h"
#include "secrets.h"

#define NOTIFY_CONNECT_TIMEOUT_MS 5000L
#define NOTIFY_TIMEOUT_MS 10000L
#define NOTIFY_BACKOFF_BASE_USEC (1 * USEC_PER_SEC)
#define NOTIFY_BACKOFF_MAX_USEC (60 * USEC_PER_SEC)
#define NOTIFY_RESPONSE_MAX 4096

/* ---- pure parts ---- */

/* The resources an event is about: failed and blocked ones for failed and
 * blocked, drifted ones for drift, none for recovered. */
static bool resource_wanted(NotifyEvent ev, const char *state) {
        if (!state)
                return false;
        switch (ev) {
        case NOTIFY_FAILED:
        case NOTIFY_BLOCKED:
                return streq(state, "failed") || streq(state, "blocked");
        case NOTIFY_DRIFT:
                return streq(state, "drifted");
        default:
                return false;
        }
}

/* sha256 of "event\nkind/name state reason\n..." for repeat suppression. */
static void event_key(NotifyEvent ev, const NotifyRun *run, char ret[static 65]) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        if (!f) {
                ret[0] = 0;
                return;
        }
        fprintf(f, "%s\n", notify_event_to_string(ev));
        for (size_t i = 0; run->resources && i < json_object_array_length(run->resources); i++) {
                json_object *x = json_object_array_get_idx(run->resources, i);

                if (resource_wanted(ev, json_get_str(x, "state")))
                        fprintf(f, "%s/%s %s %s\n", strna(json_get_str(x, "kind")), strna(json_get_str(x, "name")),
                                strna(json_get_str(x, "state")), strna(json_get_str(x, "reason")));
        }
        if (fclose(f) != 0) {
                free(buf);
                ret[0] = 0;
                return;
        }
        sha256_hex(buf, size, ret);
        free(buf);
}

static bool any_drifted(const NotifyRun *run) {
        for (size_t i = 0; run->resources && i < json_object_array_length(run->resources); i++)
                if (resource_wanted(NOTIFY_DRIFT, json_get_str(json_object_array_get_idx(run->resources, i), "state")))
                        return true;
        return false;
}

unsigned notify_events(const NotifyRun *run, NotifyMemory *memory) {
        unsigned ev = 0;
        bool bad = run->failed || run->blocked;
        char key[65];

        if (bad) {
                NotifyEvent e = run->failed ? NOTIFY_FAILED : NOTIFY_BLOCKED;

                event_key(e, run, key);
                if (!streq(key, memory->last))
                        ev |= 1U << e;
                snprintf(memory->last, sizeof(memory->last), "%s", key);
        } else {
                if (memory->bad)
                        ev |= 1U << NOTIFY_RECOVERED;
                memory->last[0] = 0;
        }
        if (any_drifted(run)) {
                event_key(NOTIFY_DRIFT, run, key);
                if (!streq(key, memory->last_drift))
                        ev |= 1U << NOTIFY_DRIFT;
                snprintf(memory->last_drift, sizeof(memory->last_drift), "%s", key);
        } else
                memory->last_drift[0] = 0;
        memory->bad = bad;
        return ev;
}

/* A copy of s, at most max bytes (cut on a UTF-8 boundary), newlines as spaces. */
static char *one_line(const char *s, size_t max) {
        size_t n = strlen(s ?: "");
        char *r;

        if (n > max) {
                n = max;
                while (n > 0 && ((unsigned char) s[n] & 0xC0) == 0x80)
                        n--;
        }
        r = strndup(s ?: "", n);
        for (char *p = r; p && *p; p++)
                if (*p == '\n' || *p == '\r' || *p == '\t')
                        *p = ' ';
        return r;
}

/* The text's head: what happened to which run, at which generation. */
static void put_text_head(FILE *f, NotifyEvent ev, const NotifyRun *run) {
        if (ev == NOTIFY_RECOVERED)
                fprintf(f, "bindery: reconcile %s recovered (%s)", strna(run->run_id), strna(run->result));
        else if (ev == NOTIFY_DRIFT)
                fprintf(f, "bindery: reconcile %s found drift", strna(run->run_id));
        else
                fprintf(f, "bindery: reconcile %s %s", strna(run->run_id), notify_event_to_string(ev));
        if (run->generation)
                fprintf(f, " at generation %.12s", run->generation);
}

/* One resource of the run for the list: kind, name, state and its reason
 * (one line, bounded, redacted); *ret_reason keeps the reason. */
static json_object *resource_entry(json_object *x, char **ret_reason) {
        _cleanup_free_ char *raw = one_line(json_get_str(x, "reason"), NOTIFY_REASON_MAX), *reason = NULL;
        json_object *r;

        /* Reasons never hold a secret; redact anyway, as the log does. */
        reason = raw ? log_redact(raw) : NULL;
        r = json_object_new_object();
        if (!r || !reason) {
                json_object_put(r);
                return NULL;
        }
        json_object_object_add(r, "kind", json_object_new_string(strna(json_get_str(x, "kind"))));
        json_object_object_add(r, "name", json_object_new_string(strna(json_get_str(x, "name"))));
        json_object_object_add(r, "state", json_object_new_string(strna(json_get_str(x, "state"))));
        json_object_object_add(r, "reason", json_object_new_string(reason));
        *ret_reason = TAKE_PTR(reason);
        return r;
}

/* The resources the event is about into arr (at most
 * NOTIFY_RESOURCES_MAX); the text names the first and counts the rest. */
static void add_resources(NotifyEvent ev, const NotifyRun *run, json_object *arr, FILE *f) {
        unsigned n = 0, more = 0;

        for (size_t i = 0; run->resources && i < json_object_array_length(run->resources); i++) {
                json_object *x = json_object_array_get_idx(run->resources, i), *r;
                _cleanup_free_ char *reason = NULL;

                if (!resource_wanted(ev, json_get_str(x, "state")))
                        continue;
                if (n >= NOTIFY_RESOURCES_MAX) {
                        more++;
                        continue;
                }
                r = resource_entry(x, &reason);
                if (!r)
                        break;
                json_object_array_add(arr, r);
                if (n == 0)
                        fprintf(f, ": %s/%s %s: %.300s", strna(json_get_str(x, "kind")), strna(json_get_str(x, "name")),
                                strna(json_get_str(x, "state")), reason);
                n++;
        }
        if (n + more > 1)
                fprintf(f, " (and %u more)", n + more - 1);
}

char *notify_body(NotifyEvent ev, const NotifyRun *run) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *arr = json_object_new_array();
        _cleanup_free_ char *text = NULL, *line = NULL;
        size_t text_size = 0;
        FILE *f;

        if (!o || !arr) {
                json_object_put(arr);
                return NULL;
        }
        f = open_memstream(&text, &text_size);
        if (!f) {
                json_object_put(arr);
                return NULL;
        }
        put_text_head(f, ev, run);
        add_resources(ev, run, arr, f);
        if (fclose(f) != 0) {
                json_object_put(arr);
                return NULL;
        }
        json_object_object_add(o, "event", json_object_new_string(notify_event_to_string(ev)));
        json_object_object_add(o, "run_id", json_object_new_string(strna(run->run_id)));
        json_object_object_add(o, "result", json_object_new_string(strna(run->result)));
        json_object_object_add(o, "generation", run->generation ? json_object_new_string(run->generation) : NULL);
        json_object_object_add(o, "resources", arr);
        line = one_line(text, 2000);
        if (!line)
                return NULL;
        json_object_object_add(o, "text", json_object_new_string(line));
        return strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* ---- delivery ---- */

typedef struct Delivery Delivery;

struct Notifier {
        sd_event *event;
        CurlGlue *glue;
        bool curl_initialized;
        NotifyMemory memory;
        Delivery *head;
        unsigned n;
        unsigned long sent, failed, dropped;
};

struct Delivery {
        Notifier *notifier;
        Delivery *next, *prev;
        char *url;
        SecretRef secret;
        bool has_secret;
        char *event;
        char *body;
        size_t body_size;
        unsigned attempt;
        uint64_t first_usec;
        sd_event_source *timer;
        CURL *easy;
        struct curl_slist *headers;
        size_t resp_size;
};

static void delivery_free(Delivery *d) {
        Notifier *n;

        if (!d)
                return;
        n = d->notifier;
        if (d->prev)
                d->prev->next = d->next;
        else if (n->head == d)
                n->head = d->next;
        if (d->next)
                d->next->prev = d->prev;
        n->n--;
        if (d->easy) {
                (void) curl_glue_remove(n->glue, d->easy);
                curl_easy_cleanup(d->easy);
        }
        curl_slist_free_all(d->headers);
        if (d->timer)
                (void) sd_event_source_disable_unref(d->timer);
        free(d->url);
        free(d->secret.ref);
        free(d->event);
        free(d->body);
        free(d);
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata) {
        Delivery *d = userdata;

        /* The answer is not used; only its size is bounded. */
        (void) ptr;
        d->resp_size += size * nmemb;
        return d->resp_size > NOTIFY_RESPONSE_MAX ? 0 : size * nmemb;
}

static int delivery_schedule(Delivery *d, uint64_t delay_usec);

static void on_done(CurlGlue *g, CURL *easy, CURLcode result, void *userdata) {
        Delivery *d = userdata;
        Notifier *n = d->notifier;
        long status = 0;
        bool retry;
        uint64_t delay, jitter = 0;

        (void) g;
        (void) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(easy);
        d->easy = NULL;
        curl_slist_free_all(d->headers);
        d->headers = NULL;

        if (result == CURLE_OK && status >= 200 && status < 300) {
                n->sent++;
                log_debug("Notification %s to %s delivered (HTTP %ld).", d->event, d->url, status);
                delivery_free(d);
                return;
        }
        retry = result != CURLE_OK || status == 408 || status == 429 || status >= 500;
        delay = NOTIFY_BACKOFF_BASE_USEC << (d->attempt < 7 ? d->attempt : 7);
        if (delay > NOTIFY_BACKOFF_MAX_USEC)
                delay = NOTIFY_BACKOFF_MAX_USEC;
        (void) getrandom(&jitter, sizeof(jitter), GRND_NONBLOCK);
        delay = delay - delay / 10 + (delay / 5 ? jitter % (delay / 5) : 0);
        if (!retry || now_monotonic_usec() + delay > d->first_usec + NOTIFY_RETRY_WINDOW_USEC) {
                n->failed++;
                if (result != CURLE_OK)
                        log_warning("Notification %s to %s not delivered after %u attempts: %s.", d->event, d->url,
                                    d->attempt + 1, curl_easy_strerror(result));
                else
                        log_warning("Notification %s to %s not delivered: HTTP %ld%s.", d->event, d->url, status,
                                    retry ? " (retries exhausted)" : "");
                delivery_free(d);
                return;
        }
        if (d->attempt == 0)
                log_info("Notification %s to %s: %s; retrying with backoff.", d->event, d->url,
                         result != CURLE_OK ? curl_easy_strerror(result) : "server error");
        d->attempt++;
        if (delivery_schedule(d, delay) < 0) {
                n->failed++;
                delivery_free(d);
        }
}

static int delivery_send(Delivery *d) {
        Notifier *n = d->notifier;
        _cleanup_free_ char *err = NULL;
        char sig[72], hdr[128];
        int r;

        d->easy = curl_easy_init();
        if (!d->easy)
                return -ENOMEM;
        d->headers = curl_slist_append(NULL, "Content-Type: application/json");
        if (d->headers)
                d->headers = curl_slist_append(d->headers, "User-Agent: binderyd/" PACKAGE_VERSION);
        snprintf(hdr, sizeof(hdr), "X-Bindery-Event: %s", d->event);
        if (d->headers)
                d->headers = curl_slist_append(d->headers, hdr);
        if (!d->headers)
                return -ENOMEM;
        if (d->has_secret) {
                _cleanup_erase_free_ char *key = NULL;
                size_t key_size = 0;

                /* Read now, wiped at the end of this block. */
                r = secrets_resolve(&d->secret, NULL, &key, &key_size, &err);
                if (r < 0) {
                        log_warning("Notification %s to %s not sent: its secret: %s.", d->event, d->url,
                                    err ? err : "cannot be read");
                        return -ENOKEY;
                }
                r = httpd_webhook_signature(key, key_size, d->body, d->body_size, sig);
                if (r < 0)
                        return r;
                snprintf(hdr, sizeof(hdr), "X-Bindery-Signature-256: %s", sig);
                d->headers = curl_slist_append(d->headers, hdr);
                if (!d->headers)
                        return -ENOMEM;
        }
        d->resp_size = 0;
        if (curl_easy_setopt(d->easy, CURLOPT_URL, d->url) != CURLE_OK ||
            curl_easy_setopt(d->easy, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
            curl_easy_setopt(d->easy, CURLOPT_POSTFIELDS, d->body) != CURLE_OK ||
            curl_easy_setopt(d->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) d->body_size) != CURLE_OK ||
            curl_easy_setopt(d->easy, CURLOPT_HTTPHEADER, d->headers) != CURLE_OK ||
            curl_easy_setopt(d->easy, CURLOPT_CONNECTTIMEOUT_MS, NOTIFY_CONNECT_TIMEOUT_MS) != CURLE_OK ||
            curl_easy_setopt(d->easy, CURLOPT_TIMEOUT_MS, NOTIFY_TIMEOUT_MS) != CURLE_OK ||
            curl_easy_setopt(d->easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
            curl_easy_setopt(d->easy, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK ||
            curl_easy_setopt(d->easy, CURLOPT_WRITEDATA, d) != CURLE_OK)
                return -EIO;
        r = curl_glue_add(n->glue, d->easy, on_done, d);
        if (r < 0)
                return r;
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Delivery *d = userdata;

        (void) s;
        (void) usec;
        if (delivery_send(d) < 0) {
                if (d->easy) {
                        curl_easy_cleanup(d->easy);
                        d->easy = NULL;
                }
                d->notifier->failed++;
                delivery_free(d);
        }
        return 0;
}

static int delivery_schedule(Delivery *d, uint64_t delay_usec) {
        uint64_t when = now_monotonic_usec() + delay_usec;
        int r;

        if (!d->timer) {
                r = sd_event_add_time(d->notifier->event, &d->timer, CLOCK_MONOTONIC, when, 1000, on_timer, d);
                if (r < 0)
                        return r;
                (void) sd_event_source_set_description(d->timer, "notify-delivery");
                return sd_event_source_set_enabled(d->timer, SD_EVENT_ONESHOT);
        }
        r = sd_event_source_set_time(d->timer, when);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(d->timer, SD_EVENT_ONESHOT);
}

int notifier_new(Notifier **ret, sd_event *event) {
        _cleanup_(notifier_freep) Notifier *n = calloc(1, sizeof(Notifier));
        int r;

        if (!n)
                return -ENOMEM;
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return -EIO;
        n->curl_initialized = true;
        n->event = sd_event_ref(event);
        r = curl_glue_new(&n->glue, event);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(n);
        return 0;
}

Notifier *notifier_free(Notifier *n) {
        if (!n)
                return NULL;
        if (n->n > 0)
                log_debug("Dropping %u undelivered notifications.", n->n);
        while (n->head)
                delivery_free(n->head);
        curl_glue_free(n->glue);
        sd_event_unref(n->event);
        if (n->curl_initialized)
                curl_global_cleanup();
        return mfree(n);
}

static int queue_one(Notifier *n, const NotifyTarget *t, NotifyEvent ev, const char *body) {
        Delivery *d;
        int r;

        if (n->n >= NOTIFY_QUEUE_MAX) {
                n->dropped++;
                log_warning("Notification %s to %s dropped: %u deliveries already wait.", notify_event_to_string(ev),
                            t->url, n->n);
                return 0;
        }
        d = calloc(1, sizeof(Delivery));
        if (!d)
                return -ENOMEM;
        d->notifier = n;
        d->next = n->head;
        if (n->head)
                n->head->prev = d;
        n->head = d;
        n->n++;
        d->url = strdup(t->url);
        d->event = strdup(notify_event_to_string(ev));
        d->body = strdup(body);
        d->body_size = strlen(body);
        d->has_secret = t->secret_set;
        d->secret.source = t->secret.source;
        d->secret.ref = t->secret_set && t->secret.ref ? strdup(t->secret.ref) : NULL;
        d->first_usec = now_monotonic_usec();
        if (!d->url || !d->event || !d->body || (t->secret_set && !d->secret.ref)) {
                delivery_free(d);
                return -ENOMEM;
        }
        /* Sent from the loop, never from inside the run's callback. */
        r = delivery_schedule(d, 0);
        if (r < 0) {
                delivery_free(d);
                return r;
        }
        return 1;
}

int notifier_run_finished(Notifier *n, const Config *config, const NotifyRun *run) {
        unsigned events = notify_events(run, &n->memory);
        int queued = 0, r;

        if (!config || config->n_notify == 0 || events == 0)
                return 0;
        for (int ev = 0; ev < _NOTIFY_EVENT_MAX; ev++) {
                _cleanup_free_ char *body = NULL;

                if (!(events & (1U << ev)))
                        continue;
                body = notify_body((NotifyEvent) ev, run);
                if (!body)
                        return -ENOMEM;
                for (size_t i = 0; i < config->n_notify; i++) {
                        if (!(config->notify[i].events & (1U << ev)))
                                continue;
                        r = queue_one(n, &config->notify[i], (NotifyEvent) ev, body);
                        if (r < 0)
                                return r;
                        queued += r;
                }
        }
        return queued;
}

void notifier_counts(const Notifier *n, unsigned long *sent, unsigned long *failed, unsigned long *dropped) {
        *sent = n ? n->sent : 0;
        *failed = n ? n->failed : 0;
        *dropped = n ? n->dropped : 0;
}
