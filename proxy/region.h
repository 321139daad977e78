/* region: what the regions of a config mean for one node - which region a node
 * found through Sentinel or a replica list is in (regions[].match), how near a
 * region is for reads (routing.prefer), and the replica-priority its replicas
 * should have so that Sentinel promotes in the preferred region
 * (failover.region_priority). Pure. */
#ifndef RG_REGION_H
#define RG_REGION_H

#include "config.h"

/* The region a node's host name or numeric address matches (its first match, in
 * the file's order), or -1. numeric may be NULL or empty. */
int region_match(const struct config *cfg, const char *host, const char *numeric);
/* For reads: 0 the local region (with routing.prefer "local"), then the others by
 * priority (equal priorities share a rank); every region 0 without a preference.
 * A node with no region (-1) comes last. */
int region_rank(const struct config *cfg, int region);
/* The replica-priority for a replica of the region: 10 for the preferred
 * priority, 20 for the next, and so on (Sentinel promotes the lowest; 0 means
 * never, which respgate never sets). 0 for no region: leave it alone. */
int region_replica_priority(const struct config *cfg, int region);

#endif
