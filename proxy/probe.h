/* probe: finds out what each node is, on the control thread's event_base. Every
 * probe_interval_ms it sends INFO (replication, persistence) to every node over
 * an rconn (plaintext or upstream.tls), and after every answer (or silence) builds a new topology
 * snapshot and hands it to publish(). A node that has not answered within 1.5
 * intervals is unreachable. The nodes are the configured ones plus those Sentinel
 * (sentinel.c) or the master's replica list name; with Sentinel, the master is the
 * one Sentinel names, once it reports role master. */
#ifndef RG_PROBE_H
#define RG_PROBE_H

#include <event2/event.h>
#include <stddef.h>

#include "config.h"
#include "sentinel.h"
#include "sock.h"
#include "topology.h"

struct probe;

/* publish() runs on the control thread and takes a reference to t (release it). */
typedef void (*probe_publish_fn)(void *arg, struct topology *t);

/* Sets up the nodes of cfg (a reference is kept) on io's loop. NULL with a message in err. */
struct probe *probe_create(struct sock_loop *io, struct config *cfg, probe_publish_fn publish,
                           void *arg, char *err, size_t errlen);
/* On the control thread, once its loop runs: connects the Sentinels, first round. */
void probe_begin(struct probe *p);
/* Control thread: a reloaded config. New nodes are probed, dropped ones let go
 * after a while; changed Sentinels take over once they name a master. */
void probe_set_config(struct probe *p, struct config *cfg);
/* Any thread: waits up to timeout_ms for a first answer (or failure) from every
 * node, and returns the newest snapshot (a reference) or NULL. For startup only. */
struct topology *probe_wait_first(struct probe *p, int timeout_ms);
/* Control thread: the newest snapshot (a reference), or NULL before the first. */
struct topology *probe_latest(struct probe *p);
/* Control thread: the Sentinels followed, or NULL without. */
struct sentinel *probe_sentinel(struct probe *p);
/* Asks for a new look at every node (and Sentinel) now; safe from any thread. */
void probe_refresh(struct probe *p);
/* POST /failover {"region": name}: promotes the most caught-up reachable replica of
 * the region (REPLICAOF NO ONE) and points the region's other nodes at it (with
 * force, the old master too), holding writes meanwhile; that node stays the master
 * until Sentinel names another than it named at the time. Refused (-1, why) while
 * the master is reachable and writable unless force, or when the region has no
 * reachable replica; -2 for no such region. 0: done is called later; why gets the
 * node being promoted. For when Sentinel has no majority left: it decides whenever
 * it can. */
int probe_promote_region(struct probe *p, const char *name, int force, sentinel_reply_fn done,
                         void *arg, char *why, size_t whylen);
/* Region failovers done so far. */
unsigned long probe_region_failovers(const struct probe *p);
/* Control thread, after its loop has stopped. */
void probe_destroy(struct probe **p);

#endif
