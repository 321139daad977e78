/* failback: puts the master back in the preferred region. When the master sits in
 * a region of worse priority and a replica of a better one has been healthy and
 * caught up for failover.failback_after_ms, respgate asks Sentinel for a planned
 * failover (SENTINEL FAILOVER), which it carries apps through like any other; the
 * replica Sentinel promotes is the one replica-priority prefers, which
 * failover.region_priority sets. At most one ask per failback_min_interval_ms; many
 * respgates (sidecars) each wait a jitter of their own and look again before asking,
 * and Sentinel answers -INPROG to all but the first. Control thread only. */
#ifndef RG_FAILBACK_H
#define RG_FAILBACK_H

#include <stdint.h>

#include "config.h"
#include "route.h"
#include "sentinel.h"
#include "topology.h"

struct failback;

struct failback *failback_create(void);
void failback_destroy(struct failback **f);
/* After every snapshot: asks s for a failover when it is time (s may be NULL). */
void failback_observe(struct failback *f, const struct topology *t, const struct config *cfg,
                      struct sentinel *s);
/* Failovers asked for (and taken on by a Sentinel) so far. */
uint64_t failback_count(const struct failback *f);
/* When a Sentinel last took one on (topo_now_ns()); 0 never. */
int64_t failback_asked_ns(const struct failback *f);

/* The region a failback would go to now: the best-priority region, better than the
 * master's, with a replica of the master that is reachable, linked and within the
 * routing lag bounds; -1 if none. Pure. */
int failback_region(const struct topology *t, const struct config *cfg,
                    const struct route_policy *p);

#endif
