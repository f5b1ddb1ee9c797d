/* test-ha.c: the role state machine against a real etcd started by this
 * test on free loopback ports: two candidates on one loop, exactly one
 * leads; the fence is the leader key's create revision; resign hands over
 * at once; a stopped (SIGSTOP) etcd makes the leader stop writing within
 * the lease TTL, and leadership resumes by itself when etcd continues; a
 * follower learns of a new leader from its observe stream.
 * Exits 77, saying so, when etcd is not installed. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <systemd/sd-event.h>

#include "etcd-harness.h"
#include "etcd.h"
#include "ha.h"
#include "util.h"

static EtcdHarness harness;

typedef struct Host {
        Etcd *etcd;
        HA *ha;
        unsigned leads, follows;
        char name[16];
} Host;

static void on_role(HA *ha, HARole role, const char *reason, void *userdata) {
        Host *h = userdata;

        ck_assert_ptr_nonnull(reason);
        if (role == HA_ROLE_LEADER)
                h->leads++;
        else
                h->follows++;
}

static void host_init_ttl(Host *h, sd_event *event, const char *name, const char *election, unsigned ttl_sec) {
        char *eps[2] = { harness.url, NULL };
        EtcdOptions eo = { .endpoints = eps };
        char url[64];
        HAOptions o = { .election = election, .name = name, .advertise_url = url,
                        .lease_ttl_usec = ttl_sec * USEC_PER_SEC };

        (void) snprintf(url, sizeof url, "http://127.0.0.1:1/%s", name);
        memset(h, 0, sizeof *h);
        (void) snprintf(h->name, sizeof h->name, "%s", name);
        ck_assert_int_eq(etcd_new(&h->etcd, event, &eo), 0);
        ck_assert_int_eq(ha_new(&h->ha, event, h->etcd, &o, on_role, h), 0);
        ck_assert_int_eq(ha_start(h->ha), 0);
}

static void host_init(Host *h, sd_event *event, const char *name, const char *election) {
        host_init_ttl(h, event, name, election, 2);
}

static void host_done(Host *h) {
        h->ha = ha_free(h->ha);
        h->etcd = etcd_free(h->etcd);
}

static unsigned n_leaders(Host *a, Host *b) {
        return (ha_role(a->ha) == HA_ROLE_LEADER) + (ha_role(b->ha) == HA_ROLE_LEADER);
}

/* Runs the loop until exactly one of a, b leads (true) or max_ms pass;
 * checks all the while that never both may write. */
static bool run_until_one_leader(sd_event *event, Host *a, Host *b, unsigned max_ms) {
        uint64_t until = now_monotonic_usec() + max_ms * USEC_PER_MSEC;

        while (now_monotonic_usec() < until) {
                ck_assert_int_ge(sd_event_run(event, 50 * USEC_PER_MSEC), 0);
                ck_assert(!(ha_may_write(a->ha) && ha_may_write(b->ha)));
                if (n_leaders(a, b) == 1)
                        return true;
        }
        return false;
}

static void run_for(sd_event *event, Host *a, Host *b, unsigned ms) {
        uint64_t until = now_monotonic_usec() + ms * USEC_PER_MSEC;

        while (now_monotonic_usec() < until) {
                ck_assert_int_ge(sd_event_run(event, 50 * USEC_PER_MSEC), 0);
                ck_assert(!(ha_may_write(a->ha) && ha_may_write(b->ha)));
        }
}

START_TEST(test_one_leader_and_resign) {
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        Host a, b, *leader, *follower;
        const char *key = NULL;
        int64_t rev = 0;

        ck_assert_int_ge(sd_event_new(&event), 0);
        host_init(&a, event, "a", "/t/one/election");
        host_init(&b, event, "b", "/t/one/election");
        ck_assert(!ha_may_write(a.ha));
        ck_assert_int_eq(ha_fence(a.ha, &key, &rev), -ESTALE);

        ck_assert(run_until_one_leader(event, &a, &b, 5000));
        /* Stable: still one leader a few keepalives later. */
        run_for(event, &a, &b, 1500);
        ck_assert_uint_eq(n_leaders(&a, &b), 1);
        leader = ha_role(a.ha) == HA_ROLE_LEADER ? &a : &b;
        follower = leader == &a ? &b : &a;
        ck_assert(ha_may_write(leader->ha));
        ck_assert(!ha_may_write(follower->ha));
        ck_assert_int_eq(ha_fence(leader->ha, &key, &rev), 0);
        ck_assert(startswith(key, "/t/one/election/"));
        ck_assert_int_gt(rev, 0);
        ck_assert_int_eq(ha_fence(follower->ha, &key, &rev), -ESTALE);
        /* The follower knows who leads and where. */
        ck_assert_str_eq(ha_leader_name(follower->ha), leader->name);
        ck_assert(endswith(ha_leader_url(follower->ha), leader->name));

        /* Resign: the key goes at once (no waiting for the TTL), and the
         * follower is elected. */
        ck_assert_int_eq(ha_fence(leader->ha, &key, &rev), 0);
        {
                _cleanup_free_ char *gone = strdup(key);
                _cleanup_(json_object_putp) json_object *body = json_object_new_object(), *answer = NULL;
                json_object *kv;
                EtcdKeyValue k = {};
                int r;

                ck_assert_int_eq(ha_resign(leader->ha, USEC_PER_SEC), 0);
                json_object_object_add(body, "name", etcd_json_b64("/t/one/election"));
                r = etcd_call_sync(follower->etcd, "/v3/election/leader", body, USEC_PER_SEC, &answer, NULL);
                if (r == 0) {
                        ck_assert(json_object_object_get_ex(answer, "kv", &kv));
                        ck_assert_int_eq(etcd_decode_key_value(kv, 256, 256, &k), 0);
                        ck_assert_str_ne(k.key, gone);
                        etcd_key_value_done(&k);
                } else
                        ck_assert_int_eq(r, -ENOENT);
        }
        ck_assert(!ha_may_write(leader->ha));
        ck_assert_uint_eq(leader->follows, 1);
        {
                uint64_t until = now_monotonic_usec() + 5 * USEC_PER_SEC;  /* not a timing bound: see ha-basic.sh */

                while (ha_role(follower->ha) != HA_ROLE_LEADER && now_monotonic_usec() < until)
                        ck_assert_int_ge(sd_event_run(event, 50 * USEC_PER_MSEC), 0);
        }
        ck_assert_int_eq(ha_role(follower->ha), HA_ROLE_LEADER);
        ck_assert(ha_may_write(follower->ha));
        /* The resigned host never campaigns again. */
        run_for(event, &a, &b, 1000);
        ck_assert_int_eq(ha_role(leader->ha), HA_ROLE_FOLLOWER);
        host_done(&a);
        host_done(&b);
}
END_TEST

START_TEST(test_etcd_stopped) {
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        Host a, b, *leader;
        uint64_t stopped;

        ck_assert_int_ge(sd_event_new(&event), 0);
        host_init(&a, event, "a", "/t/stop/election");
        host_init(&b, event, "b", "/t/stop/election");
        ck_assert(run_until_one_leader(event, &a, &b, 5000));
        leader = ha_role(a.ha) == HA_ROLE_LEADER ? &a : &b;

        /* etcd stops answering: within the TTL nobody may write. Not a
         * timing assertion: the last keepalive answered was sent before
         * the stop, so the window ends before stop + TTL by construction. */
        ck_assert_int_eq(kill(harness.pid, SIGSTOP), 0);
        stopped = now_monotonic_usec();
        while (ha_may_write(leader->ha)) {
                ck_assert_int_ge(sd_event_run(event, 50 * USEC_PER_MSEC), 0);
                ck_assert_uint_lt(now_monotonic_usec() - stopped, 2 * USEC_PER_SEC);
        }
        run_for(event, &a, &b, 2500);
        ck_assert_uint_eq(n_leaders(&a, &b), 0);
        ck_assert_str_ne(ha_reason(leader->ha), "");

        /* etcd continues: a leader again, by itself. */
        ck_assert_int_eq(kill(harness.pid, SIGCONT), 0);
        ck_assert(run_until_one_leader(event, &a, &b, 15000));
        run_for(event, &a, &b, 1000);
        ck_assert_uint_eq(n_leaders(&a, &b), 1);
        host_done(&a);
        host_done(&b);
}
END_TEST

/* Offline tools (state import) take leadership synchronously: refused
 * while a daemon leads, and while they hold it a daemon follows. */
START_TEST(test_oneshot) {
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(etcd_freep) Etcd *e = NULL;
        char *eps[2] = { harness.url, NULL };
        EtcdOptions eo = { .endpoints = eps };
        HAOneShot h = {}, h2 = {};
        const char *key = NULL;
        int64_t rev = 0;
        char *err = NULL;
        Host a;

        ck_assert_int_ge(sd_event_new(&event), 0);
        ck_assert_int_eq(etcd_new(&e, NULL, &eo), 0);
        ck_assert_int_eq(ha_oneshot_fence(&h, &key, &rev), -ESTALE);
        ck_assert_int_eq(ha_oneshot_acquire(e, "/t/os/election", "import", 30, 2 * USEC_PER_SEC, &h, NULL), 0);
        ck_assert_int_eq(ha_oneshot_fence(&h, &key, &rev), 0);
        ck_assert(startswith(key, "/t/os/election/"));
        ck_assert_int_eq(ha_oneshot_refresh(&h), 0);
        ck_assert_int_eq(ha_oneshot_acquire(e, "/t/os/election", "again", 30, 2 * USEC_PER_SEC, &h2, &err), -EBUSY);
        ck_assert_ptr_nonnull(strstr(err, "import"));
        free(err);

        /* A daemon started meanwhile follows until the tool lets go. */
        host_init(&a, event, "a", "/t/os/election");
        run_for(event, &a, &a, 1000);
        ck_assert_int_eq(ha_role(a.ha), HA_ROLE_FOLLOWER);
        ha_oneshot_release(&h);
        ck_assert_int_eq(ha_oneshot_fence(&h, &key, &rev), -ESTALE);
        {
                uint64_t until = now_monotonic_usec() + 3 * USEC_PER_SEC;

                while (ha_role(a.ha) != HA_ROLE_LEADER && now_monotonic_usec() < until)
                        ck_assert_int_ge(sd_event_run(event, 50 * USEC_PER_MSEC), 0);
        }
        ck_assert_int_eq(ha_role(a.ha), HA_ROLE_LEADER);
        /* And now the tool is refused. */
        ck_assert_int_eq(ha_oneshot_acquire(e, "/t/os/election", "late", 30, 2 * USEC_PER_SEC, &h2, NULL), -EBUSY);
        host_done(&a);
}
END_TEST

/* Followers learn of a new leader from their observe stream, not from a
 * look-up at their next tick: three hosts with a 60 s lease tick at
 * start and then every 20 s, so a follower that names the new leader
 * before 20 s have passed since it started learned it from the stream. */
START_TEST(test_follower_observes) {
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        Host h[3];
        Host *leader = NULL, *next = NULL, *other = NULL;
        uint64_t started = now_monotonic_usec(), until;
        const char *names[3] = { "a", "b", "c" };

        ck_assert_int_ge(sd_event_new(&event), 0);
        for (unsigned i = 0; i < 3; i++)
                host_init_ttl(&h[i], event, names[i], "/t/observe/election", 60);
        until = now_monotonic_usec() + 5 * USEC_PER_SEC;
        while (!leader && now_monotonic_usec() < until) {
                ck_assert_int_ge(sd_event_run(event, 50 * USEC_PER_MSEC), 0);
                for (unsigned i = 0; i < 3; i++)
                        if (ha_role(h[i].ha) == HA_ROLE_LEADER)
                                leader = &h[i];
        }
        ck_assert_ptr_nonnull(leader);
        ck_assert_int_eq(ha_resign(leader->ha, USEC_PER_SEC), 0);
        until = now_monotonic_usec() + 5 * USEC_PER_SEC;
        while (!next && now_monotonic_usec() < until) {
                ck_assert_int_ge(sd_event_run(event, 50 * USEC_PER_MSEC), 0);
                for (unsigned i = 0; i < 3; i++)
                        if (&h[i] != leader && ha_role(h[i].ha) == HA_ROLE_LEADER)
                                next = &h[i];
        }
        ck_assert_ptr_nonnull(next);
        for (unsigned i = 0; i < 3; i++)
                if (&h[i] != leader && &h[i] != next)
                        other = &h[i];
        until = now_monotonic_usec() + 5 * USEC_PER_SEC;
        while (!streq_ptr(ha_leader_name(other->ha), next->name) && now_monotonic_usec() < until)
                ck_assert_int_ge(sd_event_run(event, 50 * USEC_PER_MSEC), 0);
        ck_assert_str_eq(ha_leader_name(other->ha), next->name);
        ck_assert(endswith(ha_leader_url(other->ha), next->name));
        /* No second tick could have looked it up (see above). */
        ck_assert_uint_lt(now_monotonic_usec() - started, 20 * USEC_PER_SEC);
        ck_assert_int_eq(ha_role(other->ha), HA_ROLE_FOLLOWER);
        for (unsigned i = 0; i < 3; i++)
                host_done(&h[i]);
}
END_TEST

int main(void) {
        Suite *s;
        TCase *tc;

        s = suite_create("ha");
        tc = tcase_create("election");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_one_leader_and_resign);
        tcase_add_test(tc, test_oneshot);
        tcase_add_test(tc, test_etcd_stopped);
        tcase_add_test(tc, test_follower_observes);
        suite_add_tcase(s, tc);
        return etcd_harness_run("test-ha", &harness, s);
}
