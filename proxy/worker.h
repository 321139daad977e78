/* worker: the data-plane threads. Each worker has its own event_base, its own
 * SO_REUSEPORT listener and its own upstream connections; they share nothing on the
 * request path. Other threads talk to them only through a control pipe and its
 * mailboxes, and read only their counters and master_ok; the control plane reaches
 * them through the hooks (control.h). */
#ifndef RG_WORKER_H
#define RG_WORKER_H

#include <stddef.h>

#include "avail.h"
#include "config.h"
#include "control.h"
#include "probe.h"

struct worker_group;

/* Resolves addresses and binds every listener; no thread runs yet. NULL with a
 * message in err if anything fails. The group keeps its own references to cfg. */
struct worker_group *workers_create(struct config *cfg, char *err, size_t errlen);
/* What the control plane calls to reach the workers: snapshots, configs, stats,
 * readiness. */
struct control_hooks workers_hooks(struct worker_group *g);
/* Waits briefly for a first topology from probe, then starts the threads. -1 with
 * a message in err if a thread cannot start (stop and join the group then). */
int workers_run(struct worker_group *g, struct probe *probe, struct avail *avail, char *err,
                size_t errlen);
/* Asks every worker to stop accepting and drain (force = 0) or to close everything now. */
void workers_stop(struct worker_group *g, int force);
/* How many worker threads are still running. */
int workers_running(struct worker_group *g);
/* Waits for the workers to finish and frees the group. */
void workers_join(struct worker_group **g);

#endif
