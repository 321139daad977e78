/* Which region a failback would go to: a better-priority region with a replica of
 * the master that is reachable, linked and caught up; never a worse one. */
#include <criterion/criterion.h>
#include <string.h>

#include "config.h"
#include "failback.h"
#include "route.h"
#include "topology.h"

static struct config *load(void)
{
    char err[256];
    struct config *cfg = config_load_string(
        "{\"regions\": [{\"name\": \"east\", \"priority\": 1, \"nodes\": [\"h:1\"]},"
        " {\"name\": \"west\", \"priority\": 2, \"nodes\": [\"h:2\"]},"
        " {\"name\": \"dr\", \"priority\": 3, \"nodes\": [\"h:3\"]}]}",
        err, sizeof(err));
    cr_assert(cfg, "%s", err);
    return cfg;
}

/* Node 0 the master in region master_region; nodes 1..3 replicas in east, west, dr. */
static struct topology *layout(int master_region)
{
    struct topology *t = topo_create(4);
    t->master = t->reference = 0;
    for (int i = 0; i < 4; i++) {
        struct topo_node *n = &t->nodes[i];
        n->listed = n->reachable = 1;
        n->probed_ns = 100;
        n->region = i ? i - 1 : master_region;
        n->role = i ? TOPO_REPLICA : TOPO_MASTER;
        n->offset = 1000;
        n->link_up = i > 0;
        n->follows = i ? 0 : -1;
    }
    return t;
}

Test(failback, goes_to_the_best_region_with_a_caught_up_replica)
{
    struct config *cfg = load();
    struct route_policy p = route_policy_of(cfg);
    struct topology *t = layout(2); /* master in dr */
    cr_assert_eq(failback_region(t, cfg, &p), 0);
    t->nodes[1].link_up = 0; /* east's replica not linked: west */
    cr_assert_eq(failback_region(t, cfg, &p), 1);
    t->nodes[2].offset = 1000 - (2 << 20); /* west's lags past max_lag_bytes: nothing */
    cr_assert_eq(failback_region(t, cfg, &p), -1);
    topo_release(&t);
    t = layout(0); /* master in east already */
    cr_assert_eq(failback_region(t, cfg, &p), -1);
    topo_release(&t);
    t = layout(1); /* master in west: east, never dr */
    cr_assert_eq(failback_region(t, cfg, &p), 0);
    t->nodes[1].reachable = 0;
    cr_assert_eq(failback_region(t, cfg, &p), -1);
    t->master = -1;
    cr_assert_eq(failback_region(t, cfg, &p), -1, "no master: nothing to move");
    topo_release(&t);
    config_release(&cfg);
}
