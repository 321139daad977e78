/* failback: see failback.h. */
#include "failback.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define JITTER_MAX_NS (2000LL * 1000000) /* spread between respgates, at most */

struct failback {
    int region;       /* the candidate region being timed; -1 none */
    int64_t since_ns; /* since when it has been a candidate */
    int64_t asked_ns; /* the last ask; 0 never */
    int64_t jitter_ns;
    int pending; /* an ask waits for Sentinel's answer */
    uint64_t count;
    int64_t taken_ns; /* a Sentinel took the last one on */
};

struct failback *failback_create(void)
{
    struct failback *f = calloc(1, sizeof(*f));
    if (!f) return NULL;
    f->region = -1;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned seed = (unsigned)ts.tv_nsec ^ (unsigned)getpid() * 2654435761u;
    f->jitter_ns = (int64_t)(rand_r(&seed) % 1000) * (JITTER_MAX_NS / 1000);
    return f;
}

void failback_destroy(struct failback **f)
{
    free(*f);
    *f = NULL;
}

uint64_t failback_count(const struct failback *f)
{
    return f ? f->count : 0;
}

int64_t failback_asked_ns(const struct failback *f)
{
    return f ? f->taken_ns : 0;
}

int failback_region(const struct topology *t, const struct config *cfg,
                    const struct route_policy *p)
{
    if (!t || t->master < 0) return -1;
    int mr = t->nodes[t->master].region, best = -1;
    if (mr < 0) return -1; /* nothing says where the master is: better than what? */
    for (size_t i = 0; i < t->nnodes; i++) {
        const struct topo_node *n = &t->nodes[i];
        if (n->region < 0 || n->role != TOPO_REPLICA || n->follows != t->master || !n->link_up ||
            !route_read_eligible(t, p, i))
            continue;
        long long prio = cfg->regions[n->region].priority;
        if (prio >= cfg->regions[mr].priority) continue;
        if (best < 0 || prio < cfg->regions[best].priority) best = n->region;
    }
    return best;
}

static void answered(void *arg, int ok, const char *msg)
{
    struct failback *f = arg;
    f->pending = 0;
    if (ok) {
        f->count++;
        f->taken_ns = topo_now_ns(); /* just after the Sentinel view's failover_asked_ns */
        log_warn("failback: Sentinel took on the failover (%s)", msg);
    } else if (strstr(msg, "INPROG")) {
        log_info("failback: a failover is already in progress (%s)", msg);
    } else {
        log_warn("failback: Sentinel refused the failover: %s", msg);
    }
}

void failback_observe(struct failback *f, const struct topology *t, const struct config *cfg,
                      struct sentinel *s)
{
    if (!f || !cfg->failover.failback_after_ms || !s) return;
    struct route_policy p = route_policy_of(cfg);
    p.reads = ROUTE_READS_REPLICA; /* "caught up" is the lag bounds, whatever reads do */
    int region = failback_region(t, cfg, &p);
    int64_t now = topo_now_ns();
    if (region != f->region) {
        f->region = region;
        f->since_ns = now;
    }
    if (region < 0 || f->pending) return;
    const struct sentinel_view *v = sentinel_view(s);
    if (v->promoting) return; /* a failover is under way */
    int64_t wait = cfg->failover.failback_after_ms * 1000000 + f->jitter_ns;
    if (now - f->since_ns < wait) return;
    if (f->asked_ns && now - f->asked_ns < cfg->failover.failback_min_interval_ms * 1000000) return;
    char who[CONFIG_HOST_MAX + 8] = "";
    f->asked_ns = now;
    if (sentinel_failover(s, answered, f, who, sizeof(who)) < 0) {
        log_warn("failback to region %s: no Sentinel answers", cfg->regions[region].name);
        return;
    }
    f->pending = 1;
    log_warn("failback: the master %s is in region %s; region %s (priority %lld) has had a "
             "caught-up replica for %lld ms: asking Sentinel %s for a failover",
             t->nodes[t->master].name, cfg->regions[t->nodes[t->master].region].name,
             cfg->regions[region].name, cfg->regions[region].priority,
             (long long)((now - f->since_ns) / 1000000), who);
}
