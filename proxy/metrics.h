/* metrics: GET /metrics in the Prometheus text exposition format (0.0.4), from
 * what the control thread gathers at scrape time: the workers' counters summed,
 * the newest topology snapshot, the availability totals and the control plane's
 * own counters. Every family is documented in docs/operations.md. */
#ifndef RG_METRICS_H
#define RG_METRICS_H

#include <event2/buffer.h>

#include "avail.h"
#include "backup.h"
#include "config.h"
#include "route.h"
#include "stats.h"
#include "topology.h"

/* Counters the control thread keeps itself. */
struct control_counters {
    unsigned long reloads_ok, reloads_error;
    unsigned long notify_ok[2], notify_error[2]; /* [0] command, [1] webhook */
    unsigned long notify_dropped;
    double last_reload_time; /* Unix time of the last successful reload (or start) */
    int restart_pending;     /* a reload changed keys that need a restart */
};

struct metrics_input {
    const struct stats *stats;   /* summed over the workers */
    const struct topology *topo; /* may be NULL before the first snapshot */
    const struct config *cfg;
    const struct route_policy *policy;
    const struct avail_totals *avail;
    const struct avail_window *day, *month;
    const struct control_counters *counters;
    unsigned long long failbacks;        /* failovers asked for by failback.c */
    unsigned long long region_failovers; /* promotions by POST /failover {"region"} */
    const struct backup_stats *backup;
    int sentinels_known, sentinels_reachable;
    struct sock_tls_counts control_tls; /* the control plane's handshakes (probes, Sentinel) */
    double start_time;                  /* Unix time */
};

void metrics_render(struct evbuffer *out, const struct metrics_input *in);

#endif
