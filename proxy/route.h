/* route: which node serves a request, decided over a topology snapshot. Pure: no
 * sockets, no clocks; the caller passes what it knows (outstanding requests per
 * node, the client's read-your-writes horizon). */
#ifndef RG_ROUTE_H
#define RG_ROUTE_H

#include <stdint.h>

#include "topology.h"

struct route_policy {
    enum route_reads reads;
    long long max_lag_bytes; /* a replica further behind is not eligible */
    long long lag_tie_bytes; /* lags this close count as equal, so load spreads */
    int no_replica_error;    /* no eligible replica: error instead of the master */
    int64_t max_lag_ns;      /* a replica whose data may be older than this neither; 0: none */
    /* How near each region is for reads (region.h); a node with no region is last. */
    unsigned char rank[CONFIG_REGIONS_MAX];
    unsigned char rank_unknown;
};

/* A client's read-your-writes horizon. After a write, reads may go only where that
 * write is visible: the master, or a replica whose offset has reached the master's
 * offset measured by a probe sent after the write's reply arrived (a safe
 * over-estimate of the write's own offset). */
struct route_horizon {
    int64_t write_done_ns; /* when the client's last write was answered; 0: none pending */
    long long offset;      /* master offset it must see, once known; 0: none */
};

enum { ROUTE_NONE = -1 };

/* Lags this close count as equal when choosing a replica, so reads spread. */
#define ROUTE_LAG_TIE_BYTES (64 * 1024)

/* The routing.* part of a config, as route_read() takes it. */
struct route_policy route_policy_of(const struct config *cfg);

/* The node for a read: an index into t->nodes, or ROUTE_NONE. Among the eligible,
 * the nearest region first, then the least lag, then the fewest requests in flight
 * (outstanding[i], the caller's count for node i); *rr is a round-robin cursor. */
int route_read(const struct topology *t, const struct route_policy *p,
               const struct route_horizon *h, const unsigned *outstanding, unsigned *rr);
/* Whether node i may take reads now (no read-your-writes horizon), for reports. */
int route_read_eligible(const struct topology *t, const struct route_policy *p, size_t i);
/* The node for a write: the master, reachable or not; ROUTE_NONE if none is known. */
int route_write(const struct topology *t);
/* Updates h with what t shows: once a probe sent after the write has measured the
 * master, the horizon becomes that offset. */
void route_horizon_update(struct route_horizon *h, const struct topology *t);

#endif
