/* route: see route.h. */
#include "route.h"

#include "region.h"

#include <stddef.h>

#define RANK_SHIFT 40 /* a region's rank weighs more than any lag bucket */

struct route_policy route_policy_of(const struct config *cfg)
{
    struct route_policy p = {
        .reads = (enum route_reads)cfg->routing.reads,
        .max_lag_bytes = cfg->routing.max_lag_bytes,
        .max_lag_ns = cfg->routing.max_lag_ms * 1000000,
        .lag_tie_bytes = ROUTE_LAG_TIE_BYTES,
        .no_replica_error = cfg->routing.no_replica_error,
    };
    for (size_t r = 0; r < cfg->nregions && r < CONFIG_REGIONS_MAX; r++)
        p.rank[r] = (unsigned char)region_rank(cfg, (int)r);
    p.rank_unknown = cfg->routing.prefer_local ? (unsigned char)region_rank(cfg, -1) : 0;
    return p;
}

static long long rank_of(const struct topology *t, const struct route_policy *p, size_t i)
{
    int r = t->nodes[i].region;
    return (long long)(r >= 0 && r < CONFIG_REGIONS_MAX ? p->rank[r] : p->rank_unknown)
           << RANK_SHIFT;
}

/* A master that is slow to answer probes is still the master (a long script or
 * KEYS keeps it busy); deciding it is dead is Sentinel's job, and a dead one
 * refuses connections, which answers its requests with errors anyway. */
int route_write(const struct topology *t)
{
    return t && t->master >= 0 ? t->master : ROUTE_NONE;
}

void route_horizon_update(struct route_horizon *h, const struct topology *t)
{
    if (!h->write_done_ns || !t || t->master < 0) return;
    const struct topo_node *m = &t->nodes[t->master];
    if (m->probed_ns > h->write_done_ns) {
        h->offset = m->offset;
        h->write_done_ns = 0;
    }
}

static int eligible(const struct topology *t, const struct route_policy *p,
                    const struct route_horizon *h, size_t i, long long *lag)
{
    const struct topo_node *n = &t->nodes[i];
    if (!n->listed || !n->reachable) return 0;
    /* A replica whose master is gone has a down link, and everything up to the crash:
     * it keeps serving reads (within max_lag_bytes) while Sentinel elects another. */
    if (!n->link_up && t->nodes[t->reference].reachable) return 0;
    *lag = topo_lag(t, i);
    if (*lag < 0 || *lag > p->max_lag_bytes) return 0;
    /* Bytes say little when the master writes little: a replica that stopped
     * applying (paused, stuck) stays close in bytes while its data grows old. */
    if (p->max_lag_ns && (n->lag_ns < 0 || n->lag_ns > p->max_lag_ns)) return 0;
    if (h && h->offset > n->offset) return 0;
    return 1;
}

int route_read_eligible(const struct topology *t, const struct route_policy *p, size_t i)
{
    long long lag;
    if ((int)i == t->master) return p->reads != ROUTE_READS_REPLICA;
    return p->reads != ROUTE_READS_MASTER && eligible(t, p, NULL, i, &lag);
}

/* Where node i stands for a read: its region's rank, then its lag bucket (lower is
 * better), or -1 if it cannot take reads. */
static long long read_bucket(const struct topology *t, const struct route_policy *p,
                             const struct route_horizon *h, int master, size_t i)
{
    long long lag;
    if ((int)i == t->master)
        return p->reads == ROUTE_READS_ANY && master != ROUTE_NONE ? rank_of(t, p, i) : -1;
    if (!eligible(t, p, h, i, &lag)) return -1;
    if (p->reads == ROUTE_READS_ANY) return rank_of(t, p, i);
    return rank_of(t, p, i) + lag / (p->lag_tie_bytes > 0 ? p->lag_tie_bytes : 1);
}

int route_read(const struct topology *t, const struct route_policy *p,
               const struct route_horizon *h, const unsigned *outstanding, unsigned *rr)
{
    int master = route_write(t);
    if (!t || p->reads == ROUTE_READS_MASTER) return master;
    /* A write whose offset no probe has measured yet: only the master has it. */
    if (h && h->write_done_ns) return master;

    /* The best (lag bucket, outstanding) pair, then round-robin among its ties. */
    long long best_bucket = -1;
    unsigned best_out = 0, ties = 0;
    for (size_t i = 0; i < t->nnodes; i++) {
        long long b = read_bucket(t, p, h, master, i);
        if (b < 0) continue;
        if (best_bucket < 0 || b < best_bucket || (b == best_bucket && outstanding[i] < best_out)) {
            best_bucket = b;
            best_out = outstanding[i];
            ties = 1;
        } else if (b == best_bucket && outstanding[i] == best_out) {
            ties++;
        }
    }
    if (best_bucket < 0) return p->no_replica_error ? ROUTE_NONE : master;
    unsigned pick = (*rr)++ % ties;
    for (size_t i = 0; i < t->nnodes; i++)
        if (read_bucket(t, p, h, master, i) == best_bucket && outstanding[i] == best_out &&
            pick-- == 0)
            return (int)i;
    return master; /* not reached */
}
