/* outage: see outage.h. */
#include "outage.h"
#include "avail.h"
#include "log.h"

void outage_begin(struct worker *w)
{
    if (!w->outage_since) w->outage_since = w->now_ns;
}

void outage_stalled(struct worker *w, int failed, const char *why)
{
    if (!w->outage_held && !w->outage_failed)
        log_warn("requests %s: %s", failed ? "fail with -TRYAGAIN" : "wait for a writable master",
                 why);
    else if (failed && !w->outage_failed)
        log_warn("requests waited failover.hold_ms (%d ms) and now fail with -TRYAGAIN: %s",
                 w->cfg->failover.hold_ms, why);
    if (failed)
        w->outage_failed++;
    else
        w->outage_held++;
}

void outage_over(struct worker *w)
{
    avail_report(w->shared->avail, w->outage_since, w->now_ns);
    if (w->outage_held || w->outage_failed)
        log_warn("writes flow again after %.3f s: %u requests were held, %u failed with -TRYAGAIN",
                 (double)(w->now_ns - w->outage_since) / 1e9, w->outage_held, w->outage_failed);
    w->outage_since = 0;
    w->outage_held = w->outage_failed = 0;
}

void outage_held_changed(struct worker *w)
{
    stats_set(&w->stats->held, (uint64_t)w->nheld + (uint64_t)w->nresend);
}
