/* The operations keys of the config, its redacted dump and restart-only keys, the
 * per-worker counters, and the availability arithmetic. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "avail.h"
#include "command.h"
#include "config.h"
#include "stats.h"

static char err[512];

#define REGION "\"regions\": [{\"name\": \"a\", \"nodes\": [\"127.0.0.1:6379\"]}]"

static struct config *load(const char *json)
{
    err[0] = '\0';
    return config_load_string(json, err, sizeof(err));
}

Test(config, operations_keys_load_with_their_defaults)
{
    struct config *cfg = load("{" REGION "}");
    cr_assert_not_null(cfg, "%s", err);
    cr_assert_eq(cfg->log_format, CONFIG_LOG_TEXT);
    cr_assert_float_eq(cfg->slo.availability, 0.9999, 1e-12);
    cr_assert_eq(cfg->notify.ncommand, 0);
    cr_assert_null(cfg->notify.webhook);
    cr_assert_eq(cfg->notify.timeout_ms, 5000);
    config_release(&cfg);

    cfg = load("{" REGION ", \"log\": {\"format\": \"json\"}, \"slo\": {\"availability\": 0.999},"
               "\"notify\": {\"command\": [\"/bin/hook\", \"x\"], \"webhook\": "
               "\"http://[::1]:8080/a/b?c=d\", \"timeout_ms\": 250}}");
    cr_assert_not_null(cfg, "%s", err);
    cr_assert_eq(cfg->log_format, CONFIG_LOG_JSON);
    cr_assert_float_eq(cfg->slo.availability, 0.999, 1e-12);
    cr_assert_eq(cfg->notify.ncommand, 2);
    cr_assert_str_eq(cfg->notify.command[1], "x");
    cr_assert_str_eq(cfg->notify.webhook_addr.host, "::1");
    cr_assert_eq(cfg->notify.webhook_addr.port, 8080);
    cr_assert_str_eq(cfg->notify.webhook_path, "/a/b?c=d");
    cr_assert_eq(cfg->notify.timeout_ms, 250);
    config_release(&cfg);

    cfg = load("{" REGION ", \"notify\": {\"webhook\": \"http://hooks.local\"}}");
    cr_assert_not_null(cfg, "%s", err);
    cr_assert_eq(cfg->notify.webhook_addr.port, 80);
    cr_assert_str_eq(cfg->notify.webhook_path, "/");
    config_release(&cfg);
}

Test(config, bad_operations_keys_are_named)
{
    static const char *const cases[][2] = {
        {"\"log\": {\"format\": \"xml\"}", "log.format"},
        {"\"slo\": {\"availability\": 1}", "slo.availability"},
        {"\"slo\": {\"availability\": \"high\"}", "slo.availability"},
        {"\"slo\": {\"target\": 0.9}", "slo.target"},
        {"\"notify\": {\"command\": []}", "notify.command"},
        {"\"notify\": {\"command\": \"/bin/hook\"}", "notify.command"},
        {"\"notify\": {\"command\": [\"\"]}", "notify.command[0]"},
        {"\"notify\": {\"webhook\": \"https://x/\"}", "notify.webhook"},
        {"\"notify\": {\"webhook\": \"http://a b/\"}", "notify.webhook"},
        {"\"notify\": {\"webhook\": \"http://h:99999/\"}", "notify.webhook"},
        {"\"notify\": {\"timeout_ms\": 1}", "notify.timeout_ms"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char json[512];
        snprintf(json, sizeof(json), "{" REGION ", %s}", cases[i][0]);
        struct config *cfg = load(json);
        cr_assert_null(cfg, "accepted: %s", json);
        cr_assert_not_null(strstr(err, cases[i][1]), "\"%s\" does not name %s", err, cases[i][1]);
    }
}

Test(config, the_dump_redacts_every_secret_and_shows_defaults)
{
    struct config *cfg = load(
        "{\"regions\": [{\"name\": \"a\", \"sentinel\": {\"addresses\": [\"s:1\"], "
        "\"master_name\": \"m\", \"password\": \"sentinel-pw\"}}],"
        "\"upstream\": {\"password\": \"up-pw\"}, \"auth\": {\"password\": \"app-pw\", \"users\": "
        "[{\"name\": \"u\", \"password\": \"user-pw\"}]}, \"admin\": {\"token\": \"tok-zz9\"}}");
    cr_assert_not_null(cfg, "%s", err);
    json_t *j = config_to_json(cfg, 1);
    cr_assert_not_null(j);
    char *text = json_dumps(j, JSON_COMPACT);
    for (const char *secret = "sentinel-pw\0up-pw\0app-pw\0user-pw\0tok-zz9\0"; *secret;
         secret += strlen(secret) + 1)
        cr_assert_null(strstr(text, secret), "%s shows in %s", secret, text);
    cr_assert_not_null(strstr(text, "\"name\":\"u\""));
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "failover"), "hold_ms")),
                 15000);
    /* What the dump says loads back to the same config (secrets aside). */
    json_object_del(j, "auth");
    json_object_set_new(json_object_get(j, "admin"), "token", json_null());
    json_object_set_new(json_object_get(j, "upstream"), "password", json_null());
    json_t *region = json_array_get(json_object_get(j, "regions"), 0);
    json_object_set_new(json_object_get(region, "sentinel"), "password", json_null());
    char *again = json_dumps(j, 0);
    struct config *back = load(again);
    cr_assert_not_null(back, "%s: %s", err, again);
    config_release(&back);
    free(again);
    free(text);
    json_decref(j);
    config_release(&cfg);
}

Test(config, restart_only_keys_are_named_and_keep_their_running_values)
{
    struct config *old = load("{" REGION ", \"threads\": 2, \"listen\": \"127.0.0.1:7000\"}");
    struct config *next = load("{" REGION ", \"threads\": 4, \"listen\": \"127.0.0.1:7001\","
                               "\"routing\": {\"reads\": \"master\"}}");
    cr_assert(old && next, "%s", err);
    char keys[128];
    config_carry_restart_keys(old, next, keys, sizeof(keys));
    cr_assert_str_eq(keys, "listen, threads");
    cr_assert_eq(next->threads, 2);
    cr_assert_eq(next->listen.port, 7000);
    cr_assert_eq(next->routing.reads, 1, "the rest applies");
    config_carry_restart_keys(old, next, keys, sizeof(keys));
    cr_assert_str_eq(keys, "");
    struct config *held = config_acquire(old);
    config_release(&old);
    cr_assert_null(old);
    cr_assert_eq(held->threads, 2, "alive while referenced");
    config_release(&held);
    config_release(&next);
}

Test(stats, histogram_buckets_and_classes)
{
    static struct stats s, sum;
    stats_observe(&s.latency[3], 50 * 1000);    /* 50 us: first bucket */
    stats_observe(&s.latency[3], 100 * 1000);   /* on the bound: still the first */
    stats_observe(&s.latency[3], 3 * 1000000);  /* 3 ms: the 5 ms bucket */
    stats_observe(&s.latency[3], 9000000000LL); /* 9 s: +Inf */
    cr_assert_eq(s.latency[3].bucket[0], 2);
    cr_assert_eq(s.latency[3].bucket[5], 1);
    cr_assert_eq(s.latency[3].bucket[STATS_BUCKETS - 1], 1);
    stats_add(&s.requests[STATS_REPLICA][STATS_READ], 7);
    stats_sum(&sum, &s);
    stats_sum(&sum, &s);
    cr_assert_eq(sum.requests[STATS_REPLICA][STATS_READ], 14);
    cr_assert_eq(sum.latency[3].bucket[0], 4);
    cr_assert_eq(sum.latency[3].sum_ns, 2 * (50000 + 100000 + 3000000 + 9000000000ULL));
    cr_assert_eq(stats_class_of(cmd_flags("get", 3)), STATS_READ);
    cr_assert_eq(stats_class_of(cmd_flags("set", 3)), STATS_WRITE);
    cr_assert_eq(stats_class_of(cmd_flags("blpop", 5)), STATS_BLOCKING);
    cr_assert_eq(stats_class_of(cmd_flags("multi", 5)), STATS_TRANSACTION);
    cr_assert_eq(stats_class_of(cmd_flags("subscribe", 9)), STATS_PUBSUB);
    cr_assert_eq(stats_class_of(cmd_flags("eval", 4)), STATS_SCRIPT);
}

static struct topology *topo(int master, int reachable)
{
    struct topology *t = topo_create(2);
    t->master = t->reference = master;
    for (int i = 0; i < 2; i++) {
        t->nodes[i].role = i == master ? TOPO_MASTER : TOPO_REPLICA;
        t->nodes[i].reachable = reachable;
        t->nodes[i].follows = i == master ? -1 : master;
        snprintf(t->nodes[i].name, sizeof(t->nodes[i].name), "n%d:1", i);
    }
    return t;
}

Test(avail, spans_merge_and_windows_count_them_once)
{
    struct config *cfg = load("{" REGION "}");
    struct avail *a = avail_create();
    struct avail_event ev;
    struct topology *t = topo(0, 1);
    cr_assert_eq(avail_observe(a, t, cfg, NULL, &ev), 0, "the first master is no failover");
    struct avail_window w;
    avail_window(a, 86400, 0.999, &w);
    double startup = w.downtime; /* no master known until the first snapshot: how long
                                    that took depends on the machine, not on the code */
    int64_t now = topo_now_ns();
    const int64_t ms = 1000000;
    /* Three overlapping reports and one apart: 40 ms + 10 ms of downtime. */
    avail_report(a, now + 10 * ms, now + 30 * ms);
    avail_report(a, now + 20 * ms, now + 50 * ms);
    avail_report(a, now + 5 * ms, now + 15 * ms);
    avail_report(a, now + 100 * ms, now + 110 * ms);
    avail_report(a, now + 120 * ms, now + 120 * ms); /* empty: ignored */
    struct timespec nap = {0, 150 * ms};
    nanosleep(&nap, NULL);
    avail_window(a, 86400, 0.999, &w);
    cr_assert_float_eq(w.downtime - startup, 0.055, 1e-6, "%f", w.downtime);
    cr_assert_float_eq(w.budget, 86.4, 1e-9);
    cr_assert_float_eq(w.budget_left, 86.4 - w.downtime, 1e-9);
    cr_assert_lt(w.availability, 1.0);
    struct avail_totals tot;
    avail_totals(a, &tot);
    cr_assert(tot.writable);
    cr_assert_float_eq(tot.seconds - tot.available, w.downtime, 1e-6);
    cr_assert_float_eq(avail_nines(0.999), 3.0, 1e-9);
    cr_assert_eq(avail_nines(1.0), -1);

    /* The master moves: a failover, its RTO the span around the switch. */
    struct topology *down = topo(-1, 1);
    avail_observe(a, down, cfg, NULL, &ev);
    nanosleep(&(struct timespec){0, 30 * ms}, NULL);
    struct topology *moved = topo(1, 1);
    cr_assert_eq(avail_observe(a, moved, cfg, NULL, &ev), 1);
    cr_assert_str_eq(ev.f.from, "n0:1");
    cr_assert_str_eq(ev.f.to, "n1:1");
    cr_assert_eq(ev.region_changed, 0);
    cr_assert(strstr(ev.f.reason, "the old master was demoted to replica; "), "%s", ev.f.reason);
    /* A worker saw more, on both sides: it covers everything before (however long
     * the nap above really took). */
    avail_report(a, ev.f.at_ns - 1000 * ms, ev.f.at_ns + 5 * ms);
    struct avail_failover f;
    cr_assert_eq(avail_failovers(a, &f, 1), 1);
    cr_assert_float_eq(f.rto_s, 1.005, 1e-6, "%f", f.rto_s);
    avail_totals(a, &tot);
    cr_assert_eq(tot.failovers, 1);
    cr_assert_float_eq(tot.last_rto_s, f.rto_s, 1e-9);
    topo_release(&t);
    topo_release(&down);
    topo_release(&moved);
    avail_destroy(&a);
    config_release(&cfg);
}

Test(avail, a_region_change_needs_both_regions_known)
{
    struct config *cfg = load("{\"regions\": [{\"name\": \"eu\", \"nodes\": [\"127.0.0.1:1\"]},"
                              " {\"name\": \"us\", \"nodes\": [\"127.0.0.1:2\"]}]}");
    struct avail *a = avail_create();
    struct avail_event ev;
    struct topology *t0 = topo(0, 1), *t1 = topo(1, 0), *back = topo(0, 1);
    t0->nodes[1].region = t1->nodes[1].region = 1;
    back->nodes[1].region = -1; /* discovered, in no region listed */
    t1->nodes[0].reachable = 0;
    t1->nodes[1].reachable = 1;
    avail_observe(a, t0, cfg, NULL, &ev);
    cr_assert_eq(avail_observe(a, t1, cfg, "asked", &ev), 1);
    cr_assert_eq(ev.region_changed, 1);
    cr_assert_str_eq(ev.f.from_region, "eu");
    cr_assert_str_eq(ev.f.to_region, "us");
    cr_assert(strncmp(ev.f.reason, "asked; ", 7) == 0, "%s", ev.f.reason);
    back->nodes[1].reachable = 0;
    cr_assert_eq(avail_observe(a, back, cfg, NULL, &ev), 1);
    cr_assert_eq(ev.region_changed, 0, "from a node in no known region: a plain switch");
    cr_assert(strstr(ev.f.reason, "the old master does not answer"), "%s", ev.f.reason);
    topo_release(&t0);
    topo_release(&t1);
    topo_release(&back);
    avail_destroy(&a);
    config_release(&cfg);
}
