/* avail: measured write availability. Writes are unavailable while no writable
 * master is known (the control thread sees every snapshot), and while a worker's
 * clients see writes wait or fail (workers report each such span when the first
 * write after it succeeds). The union of those spans is the downtime; from it come
 * the availability ratio, its "nines", the error budget left against slo, and the
 * RTO of each failover (the downtime span around the switch). Each failover also
 * gets an RPO estimate: how far the promoted replica was behind the old master at
 * the last probe before the switch, in bytes and in seconds of the master's
 * writes. Thread-safe (one mutex): workers report rarely, the control thread
 * observes each snapshot and reads on scrape. */
#ifndef RG_AVAIL_H
#define RG_AVAIL_H

#include <stdint.h>
#include <time.h>

#include "config.h"
#include "topology.h"

#define AVAIL_FAILOVERS_KEPT 32

struct avail_failover {
    int64_t at_ns; /* topo_now_ns() of the switch */
    time_t wall;   /* the same moment, for people */
    char from[CONFIG_HOST_MAX + 8], to[CONFIG_HOST_MAX + 8];
    char from_region[64], to_region[64];
    char reason[512]; /* what happened to the old master, and why this one */
    double rto_s;     /* the downtime span around the switch (0: none was seen) */
    int rpo_known;    /* the promoted node had been probed as a replica of the old master */
    long long rpo_bytes;
    double rpo_s;
};

struct avail_window {
    double seconds;  /* the window's length: a day, 30 days */
    double observed; /* how much of it respgate has been running */
    double downtime;
    double availability; /* 1 - downtime / observed */
    double budget;       /* (1 - slo) * seconds: the downtime the objective allows */
    double budget_left;  /* budget - downtime; negative once the objective is missed */
};

struct avail_totals {
    double seconds;   /* since start */
    double available; /* of which writes could be served */
    int writable;     /* now */
    unsigned long failovers;
    double last_rto_s; /* of the newest failover; 0 before the first */
};

/* What avail_observe saw happen, for notifications. */
struct avail_event {
    int switched;       /* the master moved to another node */
    int region_changed; /* ...in another region */
    struct avail_failover f;
};

struct avail;

struct avail *avail_create(void);
void avail_destroy(struct avail **a);

/* Any thread: a worker's writes failed or waited from since_ns to until_ns. */
void avail_report(struct avail *a, int64_t since_ns, int64_t until_ns);
/* Control thread: a new snapshot. Region names come from cfg. Returns 1 and fills
 * ev if the master moved; asked (or NULL) says who asked for the move, if anyone. */
int avail_observe(struct avail *a, const struct topology *t, const struct config *cfg,
                  const char *asked, struct avail_event *ev);

void avail_totals(struct avail *a, struct avail_totals *out);
void avail_window(struct avail *a, double seconds, double slo, struct avail_window *out);
/* Copies up to max failovers, newest first, with their RTO as now known. */
int avail_failovers(struct avail *a, struct avail_failover *out, int max);

/* "Nines" of an availability ratio: 0.999 is 3; -1 when there was no downtime. */
double avail_nines(double availability);

#endif
