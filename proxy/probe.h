/* probe: the control thread that finds out what each node is. Every
 * probe_interval_ms it sends INFO (replication, persistence) to every node over
 * hiredis' async API on its own event loop, and after every answer (or silence)
 * builds a new topology snapshot and hands it to publish(). A node that has not
 * answered within 1.5 intervals is unreachable. The nodes are the configured ones
 * plus those Sentinel (sentinel.c) or the master's replica list name; with
 * Sentinel, the master is the one Sentinel names, once it reports role master. */
#ifndef RG_PROBE_H
#define RG_PROBE_H

#include <stddef.h>

#include "config.h"
#include "topology.h"

struct probe;

/* publish() runs on the probe thread and takes a reference to t (release it). */
typedef void (*probe_publish_fn)(void *arg, struct topology *t);

/* Starts the probe thread. NULL with a message in err on failure. */
struct probe *probe_start(const struct config *cfg, probe_publish_fn publish, void *arg, char *err,
                          size_t errlen);
/* Waits up to timeout_ms for a first answer (or failure) from every node, and
 * returns the newest snapshot (a reference) or NULL. For startup only. */
struct topology *probe_wait_first(struct probe *p, int timeout_ms);
/* Asks for a new look at every node (and Sentinel) now; safe from any thread. */
void probe_refresh(struct probe *p);
void probe_stop(struct probe **p);

#endif
