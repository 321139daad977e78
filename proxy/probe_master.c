/* probe_master: which node is the master - the one Sentinel names, the one that
 * says so without Sentinel, or the one an operator had respgate promote in a region
 * (POST /failover {"region"}) - and what respgate sets on the nodes so that
 * Sentinel's choice lands where the regions say (replica-priority). Part of the
 * probe module (probe_int.h); control thread only. */
#include "log.h"
#include "probe_int.h"
#include "region.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

#define PRIORITY_RETRY_NS (5LL * 1000000000) /* a replica-priority not taken: set again */

/* The writable master: the node that last said it is master, even if it is slow
 * to answer now (busy is not dead: Sentinel decides that). With several (a
 * misconfiguration, or a failover in progress), a reachable one over one that is
 * not, then the one most replicas follow, then the current one (so that a probe
 * late by a moment does not send writes back and forth), then the first in the
 * config. */
static int role_master(const struct topology *t, int current)
{
    int best = -1, best_score = -1;
    for (size_t i = 0; i < t->nnodes; i++) {
        if (t->nodes[i].role != TOPO_MASTER) continue;
        int score = (t->nodes[i].reachable ? 1 << 20 : 0) + ((int)i == current);
        for (size_t k = 0; k < t->nnodes; k++)
            score += 2 * (t->nodes[k].role == TOPO_REPLICA && t->nodes[k].follows == (int)i);
        if (score > best_score) {
            best = (int)i;
            best_score = score;
        }
    }
    return best;
}

/* With Sentinel, the master is the one it names (the highest config epoch, fenced
 * from the moment a failover selects a replica), and only once that node itself
 * reports role master: a Sentinel may name a node not promoted yet, or one that
 * was demoted since. Never a node Sentinel does not name, whatever it says. */
static int sentinel_master(struct probe *p, const struct topology *t, const char **why)
{
    const struct sentinel_view *v = sentinel_view(p->sentinel);
    if (!v->known) {
        *why = "no Sentinel has named a master yet";
        return -1;
    }
    int i = pr_node_index(p, v->promoting ? &v->promoted : &v->master);
    if (v->promoting && (i < 0 || t->nodes[i].role != TOPO_MASTER || !t->nodes[i].reachable)) {
        *why = "failing over: Sentinel is promoting a replica, the old master is fenced";
        return -1;
    }
    if (i < 0 || t->nodes[i].role != TOPO_MASTER) {
        *why = "the master Sentinel names does not report role master (yet)";
        sentinel_refresh(p->sentinel);
        return -1;
    }
    return i;
}

static void on_priority_set(struct rconn *rc, redisReply *reply, void *arg)
{
    (void)rc;
    struct probe_node *n = arg;
    if (reply && reply->type == REDIS_REPLY_ERROR)
        log_warn("node %s: CONFIG SET replica-priority refused: %s", n->state.name, reply->str);
}

/* failover.region_priority: a replica's replica-priority follows its region's
 * priority, so that Sentinel promotes in the preferred region. 0 ("never
 * promote") is the operator's and never overwritten. Looked at after every INFO, so
 * a node that comes back, or a master demoted, is set again. */
void pr_fit_priority(struct probe_node *n)
{
    const struct config *cfg = n->p->cfg;
    struct topo_node *s = &n->state;
    int mode = cfg->failover.region_priority;
    s->priority_want = mode != CONFIG_RP_OFF ? region_replica_priority(cfg, s->region) : 0;
    if (s->role != TOPO_REPLICA || s->priority <= 0 || !s->priority_want ||
        s->priority == s->priority_want) {
        n->priority_warned = 0;
        return;
    }
    if (mode == CONFIG_RP_CHECK) {
        if (!n->priority_warned++)
            log_warn("node %s (region %s) has replica-priority %d, its region's priority "
                     "gives %d (failover.region_priority check)",
                     s->name, cfg->regions[s->region].name, s->priority, s->priority_want);
        return;
    }
    int64_t now = topo_now_ns();
    if (!n->rc || (n->priority_sent_ns && now - n->priority_sent_ns < PRIORITY_RETRY_NS)) return;
    n->priority_sent_ns = now;
    log_info("node %s (region %s): replica-priority %d -> %d (failover.region_priority apply)",
             s->name, cfg->regions[s->region].name, s->priority, s->priority_want);
    rconn_command(n->rc, on_priority_set, n, "CONFIG SET replica-priority %d", s->priority_want);
}

/* POST /failover {"region"} made p->promoted.node the master: it stays the master
 * while Sentinel names what it named then (a Sentinel without a majority keeps naming
 * the lost master); once Sentinel names another, Sentinel decides again. */
static int promoted_master(struct probe *p, const struct topology *t, int chosen, const char **why,
                           const char **reason)
{
    const struct sentinel_view *v = p->sentinel ? sentinel_view(p->sentinel) : NULL;
    int i = p->promoted.node;
    if (v && v->known &&
        (!p->promoted.sentinel_known || v->master.port != p->promoted.sentinel_master.port ||
         strcmp(v->master.host, p->promoted.sentinel_master.host) != 0)) {
        log_warn("Sentinel names %s:%d now: it decides again (after the region failover to %s)",
                 v->master.host, v->master.port, t->nodes[i].name);
        p->promoted.node = -1;
        return chosen;
    }
    if (p->promoted.pending) {
        *why = "a region failover (POST /failover) is promoting a replica";
        return -1;
    }
    if (t->nodes[i].role != TOPO_MASTER || !t->nodes[i].reachable) {
        *why = "the node a region failover (POST /failover) promoted does not report role master";
        return -1;
    }
    *reason = "a region failover (POST /failover) promoted it and Sentinel has not named "
              "another since";
    return i;
}

int pr_choose_master(struct probe *p, const struct topology *t, const char **why,
                     const char **reason)
{
    const struct sentinel_view *v = p->sentinel ? sentinel_view(p->sentinel) : NULL;
    int m = -1;
    *why = "no reachable node reports role master";
    if (v && (v->known || v->nreachable)) {
        m = sentinel_master(p, t, why);
        *reason = "Sentinel names it (highest config epoch) and it reports role master";
    } else if (v && !v->known) {
        *why = "no Sentinel answers and none has named a master";
    } else {
        m = role_master(t, p->master);
        *reason = "it reports role master (no Sentinel configured)";
    }
    return p->promoted.node >= 0 ? promoted_master(p, t, m, why, reason) : m;
}

static void on_repointed(struct rconn *rc, redisReply *reply, void *arg)
{
    (void)rc;
    struct probe_node *n = arg;
    if (!reply || reply->type == REDIS_REPLY_ERROR)
        log_warn("region failover: REPLICAOF on %s failed: %s", n->state.name,
                 reply ? reply->str : "connection lost");
}

static void on_promoted(struct rconn *rc, redisReply *reply, void *arg)
{
    (void)rc;
    struct probe_node *n = arg;
    struct probe *p = n->p;
    char msg[CONFIG_HOST_MAX + 160];
    p->promoted.pending = 0;
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        snprintf(msg, sizeof(msg), "REPLICAOF NO ONE on %s failed: %s", n->state.name,
                 reply ? reply->str : "connection lost");
        log_error("region failover: %s", msg);
        p->promoted.node = -1;
        p->promoted.done(p->promoted.arg, 0, msg);
        if (!p->destroying) pr_publish(p);
        return;
    }
    /* The region's other nodes follow it, and with force the old master too, so that
     * it cannot take writes from clients that bypass respgate. */
    int repointed = 0;
    const char *host = n->numeric[0] ? n->numeric : n->addr.host;
    for (size_t k = 0; k < p->nnodes; k++) {
        struct probe_node *o = &p->nodes[k];
        int old = (int)k == p->promoted.old && p->promoted.force;
        if (o == n || !o->rc || !o->state.listed || !o->state.reachable ||
            (o->state.region != p->promoted.region && !old))
            continue;
        if (rconn_command(o->rc, on_repointed, o, "REPLICAOF %s %d", host, n->addr.port) == 0)
            repointed++;
    }
    p->promoted.count++;
    snprintf(msg, sizeof(msg), "%s promoted (REPLICAOF NO ONE); %d other node%s pointed at it",
             n->state.name, repointed, repointed == 1 ? "" : "s");
    log_warn("region failover: %s", msg);
    p->promoted.done(p->promoted.arg, 1, msg);
    pr_probe_now(n);
    pr_publish(p);
}

int probe_promote_region(struct probe *p, const char *name, int force, sentinel_reply_fn done,
                         void *arg, char *why, size_t whylen)
{
    const struct config *cfg = p->cfg;
    const struct topology *t = p->latest;
    int region = -1;
    for (size_t r = 0; r < cfg->nregions; r++)
        if (strcmp(cfg->regions[r].name, name) == 0) region = (int)r;
    if (region < 0) {
        snprintf(why, whylen, "no region is named \"%.64s\"", name);
        return -2;
    }
    int m = t ? t->master : -1;
    if (p->promoted.pending || (p->sentinel && sentinel_view(p->sentinel)->promoting))
        snprintf(why, whylen, "a failover is already under way");
    else if (!t)
        snprintf(why, whylen, "no node has answered yet");
    else if (m >= 0 && t->nodes[m].region == region)
        snprintf(why, whylen, "the master %s is in region %s already", t->nodes[m].name, name);
    else if (m >= 0 && t->nodes[m].reachable && !force)
        snprintf(why, whylen,
                 "the master %s is reachable and writable: Sentinel decides while it is; "
                 "add \"force\": true to promote anyway (the old master is made a replica)",
                 t->nodes[m].name);
    else
        why[0] = '\0';
    if (why[0]) return -1;
    int best = -1;
    for (size_t i = 0; i < t->nnodes && i < p->nnodes; i++) {
        const struct topo_node *n = &t->nodes[i];
        if (n->region != region || !n->listed || !n->reachable || n->role != TOPO_REPLICA ||
            !p->nodes[i].rc)
            continue;
        if (best < 0 || n->offset > t->nodes[best].offset) best = (int)i;
    }
    if (best < 0) {
        snprintf(why, whylen, "no reachable replica in region %s", name);
        return -1;
    }
    struct probe_node *n = &p->nodes[best];
    if (rconn_command(n->rc, on_promoted, n, "REPLICAOF NO ONE") != 0) {
        snprintf(why, whylen, "cannot send REPLICAOF NO ONE to %s", n->state.name);
        return -1;
    }
    const struct sentinel_view *v = p->sentinel ? sentinel_view(p->sentinel) : NULL;
    p->promoted.node = best;
    p->promoted.pending = 1;
    p->promoted.region = region;
    p->promoted.force = force;
    p->promoted.old = m;
    p->promoted.sentinel_known = v && v->known;
    if (v && v->known) p->promoted.sentinel_master = v->master;
    p->promoted.done = done;
    p->promoted.arg = arg;
    log_warn("region failover to %s asked for (POST /failover%s): promoting %s, the most "
             "caught-up replica there (offset %lld); writes wait meanwhile",
             name, force ? ", forced" : "", n->state.name, t->nodes[best].offset);
    pr_publish(p); /* writes are held from now */
    snprintf(why, whylen, "%s", n->state.name);
    return 0;
}

unsigned long probe_region_failovers(const struct probe *p)
{
    return p->promoted.count;
}
