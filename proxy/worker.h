/* worker: the data-plane threads. Each worker has its own event_base, its own
 * SO_REUSEPORT listener and its own upstream connections; they share nothing on the
 * request path. The main thread talks to them only through a control pipe. */
#ifndef RG_WORKER_H
#define RG_WORKER_H

#include <stddef.h>

#include "config.h"

struct worker_group;

/* Resolves addresses, binds every listener and starts the threads (and the control
 * thread). NULL with a message in err if anything fails (nothing is left running).
 * The group keeps its own references to cfg; path is watched for changes. */
struct worker_group *workers_start(struct config *cfg, const char *path, char *err, size_t errlen);
/* Reloads the config file (SIGHUP); a bad file leaves everything as it was. */
void workers_reload(struct worker_group *g);
/* Asks every worker to stop accepting and drain (force = 0) or to close everything now. */
void workers_stop(struct worker_group *g, int force);
/* How many worker threads are still running. */
int workers_running(struct worker_group *g);
/* Waits for the workers to finish and frees the group. */
void workers_join(struct worker_group **g);

#endif
