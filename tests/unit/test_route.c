/* The router as a pure function over topology snapshots, and the INFO parser that
 * feeds those snapshots. */
#include <criterion/criterion.h>
#include <string.h>

#include "info.h"
#include "route.h"
#include "topology.h"

/* node 0 is the master at offset 1000; nodes 1..n-1 its replicas at the given lags. */
static struct topology *snapshot(size_t n, const long long *lags)
{
    struct topology *t = topo_create(n);
    t->master = t->reference = 0;
    for (size_t i = 0; i < n; i++) {
        struct topo_node *node = &t->nodes[i];
        node->listed = 1;
        strcpy(node->addr.host, "127.0.0.1");
        node->addr.port = 7000 + (int)i;
        node->reachable = 1;
        node->probed_ns = 100;
        if (i == 0) {
            node->role = TOPO_MASTER;
            node->offset = 1000;
        } else {
            node->role = TOPO_REPLICA;
            node->link_up = 1;
            node->offset = 1000 - lags[i];
            node->follows = 0;
        }
    }
    return t;
}

static const struct route_policy replicas = {
    .reads = ROUTE_READS_REPLICA, .max_lag_bytes = 1 << 20, .lag_tie_bytes = 1};
static unsigned none[8];

Test(route, read_goes_to_the_least_lagged_replica)
{
    long long lags[] = {0, 500, 10, 300};
    struct topology *t = snapshot(4, lags);
    unsigned rr = 0;
    for (int k = 0; k < 10; k++)
        cr_assert_eq(route_read(t, &replicas, NULL, none, &rr), 2);
    topo_release(&t);
}

Test(route, equal_lags_go_to_fewest_outstanding_then_round_robin)
{
    long long lags[] = {0, 0, 0};
    struct topology *t = snapshot(3, lags);
    unsigned rr = 0, busy1[] = {0, 5, 1};
    cr_assert_eq(route_read(t, &replicas, NULL, busy1, &rr), 2);
    int seen[3] = {0};
    for (int k = 0; k < 20; k++)
        seen[route_read(t, &replicas, NULL, none, &rr)]++;
    cr_assert_eq(seen[0], 0, "the master takes no reads while replicas are eligible");
    cr_assert_eq(seen[1], 10);
    cr_assert_eq(seen[2], 10);
    topo_release(&t);
}

Test(route, lags_within_the_tie_width_count_as_equal)
{
    long long lags[] = {0, 100, 4000};
    struct topology *t = snapshot(3, lags);
    struct route_policy p = replicas;
    p.lag_tie_bytes = 65536;
    unsigned rr = 0, busy[] = {0, 3, 0};
    cr_assert_eq(route_read(t, &p, NULL, busy, &rr), 2);
    topo_release(&t);
}

Test(route, a_replica_beyond_max_lag_is_not_eligible)
{
    long long lags[] = {0, 600, 5000};
    struct topology *t = snapshot(3, lags);
    struct route_policy p = replicas;
    p.max_lag_bytes = 1000;
    unsigned rr = 0;
    for (int k = 0; k < 5; k++)
        cr_assert_eq(route_read(t, &p, NULL, none, &rr), 1);
    p.max_lag_bytes = 100;
    cr_assert_eq(route_read(t, &p, NULL, none, &rr), 0, "no eligible replica: the master");
    p.no_replica_error = 1;
    cr_assert_eq(route_read(t, &p, NULL, none, &rr), ROUTE_NONE);
    topo_release(&t);
}

Test(route, unreachable_syncing_or_foreign_replicas_are_not_eligible)
{
    long long lags[] = {0, 0, 0, 0};
    struct topology *t = snapshot(4, lags);
    t->nodes[1].reachable = 0;
    t->nodes[2].link_up = 0;
    t->nodes[3].follows = -1; /* follows a node we do not know */
    unsigned rr = 0;
    cr_assert_eq(route_read(t, &replicas, NULL, none, &rr), 0);
    topo_release(&t);
}

Test(route, reads_master_sends_every_read_to_the_master)
{
    long long lags[] = {0, 0};
    struct topology *t = snapshot(2, lags);
    struct route_policy p = replicas;
    p.reads = ROUTE_READS_MASTER;
    unsigned rr = 0;
    cr_assert_eq(route_read(t, &p, NULL, none, &rr), 0);
    topo_release(&t);
}

Test(route, reads_any_spreads_over_master_and_replicas)
{
    long long lags[] = {0, 50, 0};
    struct topology *t = snapshot(3, lags);
    struct route_policy p = replicas;
    p.reads = ROUTE_READS_ANY;
    unsigned rr = 0;
    int seen[3] = {0};
    for (int k = 0; k < 30; k++)
        seen[route_read(t, &p, NULL, none, &rr)]++;
    cr_assert(seen[0] == 10 && seen[1] == 10 && seen[2] == 10);
    topo_release(&t);
}

Test(route, writes_go_to_the_master_even_while_it_is_slow_to_answer_probes)
{
    long long lags[] = {0, 0};
    struct topology *t = snapshot(2, lags);
    cr_assert_eq(route_write(t), 0);
    t->nodes[0].reachable = 0; /* busy is not dead: Sentinel decides that */
    cr_assert_eq(route_write(t), 0);
    t->master = -1;
    t->reference = -1;
    cr_assert_eq(route_write(t), ROUTE_NONE);
    unsigned rr = 0;
    cr_assert_eq(route_read(t, &replicas, NULL, none, &rr), ROUTE_NONE,
                 "with no master ever known, no replica can be shown to be current");
    cr_assert_eq(route_write(NULL), ROUTE_NONE);
    topo_release(&t);
}

Test(route, while_the_master_is_gone_its_replicas_keep_serving_reads)
{
    long long lags[] = {0, 0, 4096};
    struct topology *t = snapshot(3, lags);
    unsigned rr = 0;
    t->master = -1; /* failing over: no writable master, the last one is the reference */
    t->nodes[0].reachable = 0;
    t->nodes[1].link_up = t->nodes[2].link_up = 0; /* their master is dead */
    cr_assert_eq(route_write(t), ROUTE_NONE);
    cr_assert_eq(route_read(t, &replicas, NULL, none, &rr), 1, "the least lagged one");
    t->nodes[0].reachable = 1; /* a live master and a down link: that replica is adrift */
    cr_assert_eq(route_read(t, &replicas, NULL, none, &rr), ROUTE_NONE);
    t->nodes[0].reachable = 0;
    t->nodes[1].listed = t->nodes[2].listed = 0; /* no longer part of the set */
    cr_assert_eq(route_read(t, &replicas, NULL, none, &rr), ROUTE_NONE);
    topo_release(&t);
}

Test(route, after_a_write_reads_stay_on_the_master_until_a_probe_measures_it)
{
    long long lags[] = {0, 0, 0};
    struct topology *t = snapshot(3, lags);
    struct route_horizon h = {.write_done_ns = 150, .offset = 0};
    unsigned rr = 0;
    route_horizon_update(&h, t); /* the snapshot's probe (100) predates the write (150) */
    cr_assert_eq(h.write_done_ns, 150);
    cr_assert_eq(route_read(t, &replicas, &h, none, &rr), 0);

    /* A later probe: the master is at 1200; replica 1 has it, replica 2 does not. */
    t->nodes[0].probed_ns = 200;
    t->nodes[0].offset = 1200;
    t->nodes[1].offset = 1200;
    t->nodes[2].offset = 1100;
    route_horizon_update(&h, t);
    cr_assert_eq(h.write_done_ns, 0);
    cr_assert_eq(h.offset, 1200);
    for (int k = 0; k < 6; k++)
        cr_assert_eq(route_read(t, &replicas, &h, none, &rr), 1);
    t->nodes[1].offset = 1199; /* nobody is current: the master */
    cr_assert_eq(route_read(t, &replicas, &h, none, &rr), 0);
    topo_release(&t);
}

Test(topology, lag_is_measured_against_the_current_master)
{
    long long lags[] = {0, 250};
    struct topology *t = snapshot(2, lags);
    cr_assert_eq(topo_lag(t, 1), 250);
    cr_assert_eq(topo_lag(t, 0), -1, "the master is not a replica");
    t->nodes[1].offset = 2000; /* measured after the master: never negative */
    cr_assert_eq(topo_lag(t, 1), 0);
    struct topology *held = topo_acquire(t);
    topo_release(&t);
    cr_assert_eq(held->nnodes, 2, "a holder keeps the snapshot alive");
    topo_release(&held);
    cr_assert_null(held);
}

Test(info, a_replica_reports_its_master_link_and_offset)
{
    const char *text = "# Replication\r\nrole:slave\r\nmaster_host:10.0.0.5\r\nmaster_port:6380\r\n"
                       "master_link_status:up\r\nmaster_sync_in_progress:0\r\n"
                       "slave_read_repl_offset:4242\r\nslave_repl_offset:4242\r\n"
                       "master_repl_offset:4242\r\n\r\n# Persistence\r\nloading:0\r\n";
    struct info_replication r;
    cr_assert_eq(info_parse(text, strlen(text), &r), 0);
    cr_assert_eq(r.role, TOPO_REPLICA);
    cr_assert_str_eq(r.master.host, "10.0.0.5");
    cr_assert_eq(r.master.port, 6380);
    cr_assert(r.link_up && !r.syncing && !r.loading);
    cr_assert_eq(r.offset, 4242);
}

Test(info, a_master_reports_its_replication_offset)
{
    const char *text = "# Replication\r\nrole:master\r\nconnected_slaves:1\r\n"
                       "slave0:ip=127.0.0.1,port=7001,state=online,offset=90,lag=0\r\n"
                       "master_repl_offset:100\r\n# Persistence\r\nloading:1\r\n";
    struct info_replication r;
    cr_assert_eq(info_parse(text, strlen(text), &r), 0);
    cr_assert_eq(r.role, TOPO_MASTER);
    cr_assert_eq(r.offset, 100);
    cr_assert(r.loading);
    cr_assert_eq(r.nreplicas, 1);
    cr_assert_str_eq(r.replicas[0].host, "127.0.0.1");
    cr_assert_eq(r.replicas[0].port, 7001);
}

Test(info, a_master_lists_only_its_online_replicas)
{
    const char *text = "role:master\r\n"
                       "slave0:ip=10.0.0.2,port=6380,state=wait_bgsave,offset=0,lag=0\r\n"
                       "slave1:ip=10.0.0.3,port=6381,state=online,offset=7,lag=1\r\n"
                       "slave2:ip=10.0.0.4,port=http,state=online\r\n"
                       "slave_read_only:1\r\nmaster_repl_offset:7\r\n";
    struct info_replication r;
    cr_assert_eq(info_parse(text, strlen(text), &r), 0);
    cr_assert_eq(r.nreplicas, 1);
    cr_assert_str_eq(r.replicas[0].host, "10.0.0.3");
    cr_assert_eq(r.replicas[0].port, 6381);
}

Test(info, text_without_a_role_or_with_bad_numbers_is_rejected)
{
    struct info_replication r;
    cr_assert_eq(info_parse("# Replication\r\nconnected_slaves:0\r\n", 36, &r), -1);
    const char *bad = "role:slave\r\nmaster_port:http\r\n";
    cr_assert_eq(info_parse(bad, strlen(bad), &r), -1);
    const char *bad2 = "role:master\r\nmaster_repl_offset:12x\r\n";
    cr_assert_eq(info_parse(bad2, strlen(bad2), &r), -1);
}

/* routing.prefer "local": nodes 1, 2 in region 1 (remote), 3 in region 0 (local). */
Test(route, reads_stay_in_the_nearest_region_while_it_has_an_eligible_replica)
{
    long long lags[] = {0, 0, 0, 500000};
    struct topology *t = snapshot(4, lags);
    t->nodes[0].region = t->nodes[1].region = t->nodes[2].region = 1;
    t->nodes[3].region = 0;
    struct route_policy p = replicas;
    p.lag_tie_bytes = 1024;
    p.rank[0] = 0;
    p.rank[1] = 2;
    p.rank_unknown = 17;
    unsigned rr = 0;
    for (int k = 0; k < 10; k++)
        cr_assert_eq(route_read(t, &p, NULL, none, &rr), 3, "the local replica, though it lags");
    t->nodes[3].reachable = 0; /* the local one gone: the next region, by lag */
    int seen[4] = {0};
    for (int k = 0; k < 10; k++)
        seen[route_read(t, &p, NULL, none, &rr)]++;
    cr_assert_eq(seen[1] + seen[2], 10);
    t->nodes[3].reachable = 1; /* past the lag bound, it is not eligible at all */
    p.max_lag_bytes = 1000;
    cr_assert_neq(route_read(t, &p, NULL, none, &rr), 3);
    struct route_horizon h = {.offset = 1000}; /* read-your-writes holds across regions */
    p.max_lag_bytes = 1 << 20;
    cr_assert_neq(route_read(t, &p, &h, none, &rr), 3);
    topo_release(&t);
}
