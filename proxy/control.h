/* control: the control thread. One event loop carries the probe (and Sentinel),
 * the admin endpoint, configuration reloads (SIGHUP, the file changing, POST
 * /reload), availability accounting and failover notifications. Workers hear
 * from it only through the hooks: a new snapshot, a new config; main.c composes
 * the two planes. */
#ifndef RG_CONTROL_H
#define RG_CONTROL_H

#include <stddef.h>

#include "avail.h"
#include "config.h"
#include "probe.h"
#include "stats.h"
#include "topology.h"

struct control_hooks {
    void *arg;
    /* A new snapshot for the workers; takes the reference to t. */
    void (*publish)(void *arg, struct topology *t);
    /* A reloaded config for the workers; each takes its own reference. */
    void (*apply)(void *arg, struct config *cfg);
    /* Adds every worker's counters into sum. */
    void (*stats)(void *arg, struct stats *sum);
    /* Whether every worker holds a ROLE-verified connection to the master (/readyz). */
    int (*ready)(void *arg);
};

struct control;

/* Binds the admin endpoint, sets up the probe and starts the thread. path is the
 * file cfg came from, watched for changes. NULL with a message in err. */
struct control *control_start(struct config *cfg, const char *path,
                              const struct control_hooks *hooks, char *err, size_t errlen);
struct probe *control_probe(struct control *c);
struct avail *control_avail(struct control *c);
/* Any thread (SIGHUP): reload the config file soon. */
void control_reload(struct control *c);
void control_stop(struct control **c);
/* Raises the open-files limit to what limits.max_clients needs, or says it cannot. */
void control_fit_fd_limit(const struct config *cfg);

#endif
