/* upstream_pool: a worker's pools of shared connections, one per node and RESP
 * version; which connection a request takes; what a new topology does to them (the
 * old master fenced, new nodes' pools opened, every connection to a new master
 * verified with ROLE). */
#include "upstream.h"
#include "upstream_int.h"
#include "log.h"
#include "outage.h"
#include "probe.h"

#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>

/* u is on a node the probes lost: once its oldest request has waited UP_STALL_NS,
 * its requests fail (reads go elsewhere) rather than wait for a node that may never
 * answer; until then its timer looks again (a node merely slow answers first).
 * Returns 1 if u failed. */
int up_watch_lost(struct upconn *u)
{
    const struct topology *t = u->w->topo;
    const struct req *head = TAILQ_FIRST(&u->inflight);
    if (u->state != UP_READY || !head || !t || (size_t)u->node >= t->nnodes ||
        t->nodes[u->node].reachable)
        return 0;
    if (upstream_stalled(u)) {
        up_failed(u, "the node stopped answering probes");
        return 1;
    }
    /* libevent may wake a timer a little early: never less than a millisecond */
    up_arm_timer_soon(u, (int)((head->sent_ns + UP_STALL_NS - u->w->now_ns) / 1000000) + 1);
    return 0;
}

int upstream_pool_init(struct worker *w)
{
    w->pools = calloc(TOPO_MAX_NODES, sizeof(*w->pools));
    w->outstanding = calloc(TOPO_MAX_NODES, sizeof(*w->outstanding));
    if (!w->pools || !w->outstanding) return -1;
    for (size_t i = 0; i < TOPO_MAX_NODES; i++)
        TAILQ_INIT(&w->pools[i].idle);
    return 0;
}

/* The first topology that lists a node opens the worker's connections to it. */
static void pool_open(struct worker *w, int node, const struct topo_node *tn)
{
    struct pool *p = &w->pools[node];
    int n = w->cfg->upstream.connections_per_node;
    memcpy(&p->sa, &tn->sa, sizeof(p->sa));
    p->salen = tn->salen;
    snprintf(p->name, sizeof(p->name), "%s", tn->name);
    snprintf(p->host, sizeof(p->host), "%s", tn->addr.host);
    /* n speaking RESP2, connected now; n speaking RESP3, once a RESP3 client needs one. */
    if (!(p->conns = calloc((size_t)n * 2, sizeof(*p->conns)))) return;
    for (; p->n < n * 2; p->n++) {
        struct upconn *u = &p->conns[p->n];
        if (up_init(u, w, node, UP_SHARED, NULL, p->n < n ? 2 : 3)) break;
        if (u->proto == 2)
            up_connect(u);
        else
            u->lazy = 1;
    }
}

/* The master moved away from old: it is fenced. A write still in flight there may
 * be answered OK by a node whose writes the new master never saw (a master that was
 * frozen, then resumed): such a late reply never reaches a client as a success
 * (up_readcb), and one still unanswered after the grace fails at once (up_timercb).
 * Its clients have waited since the oldest was sent: the outage began then. */
static void fence(struct worker *w, int old)
{
    struct pool *p = &w->pools[old];
    int64_t oldest = 0;
    for (int k = 0; k < p->n; k++) {
        struct req *r;
        int fenced = 0;
        TAILQ_FOREACH(r, &p->conns[k].inflight, uq)
        if (r->write && r->client) {
            r->fenced_ns = w->now_ns;
            fenced = 1;
            if (!oldest || r->sent_ns < oldest) oldest = r->sent_ns;
        }
        if (fenced && p->conns[k].state == UP_READY)
            up_arm_timer_soon(&p->conns[k], (int)(FENCE_GRACE_NS / 1000000) + 1);
    }
    if (oldest && (!w->outage_since || oldest < w->outage_since)) w->outage_since = oldest;
}

void upstream_topology_changed(struct worker *w, const struct topology *old,
                               const struct topology *t)
{
    if (old && old->master >= 0 && old->master != t->master) fence(w, old->master);
    for (size_t i = 0; i < t->nnodes; i++)
        if (t->nodes[i].listed && !w->pools[i].conns) pool_open(w, (int)i, &t->nodes[i]);
    int moved = !old || old->master != t->master;
    for (size_t i = 0; i < t->nnodes; i++) {
        struct pool *p = &w->pools[i];
        struct upconn *u;
        /* Idle session connections may predate the change: a session starts fresh. */
        while (moved && (u = TAILQ_FIRST(&p->idle)))
            upstream_pin_close(&u, "the master changed");
        for (int k = 0; k < p->n; k++) {
            u = &p->conns[k];
            if ((int)i != t->master) {
                if (moved) u->verified = 0;
            } else if (u->state == UP_READY && !u->verified && !u->role_pending) {
                up_send_role(u);
            }
        }
    }
    up_note_master(w);
}

int up_pool_start_tls(struct upconn *u)
{
    const struct config_tls_out *tls = &u->w->cfg->upstream.tls;
    struct pool *p = &u->w->pools[u->node];
    if (!tls->enabled) return 0;
    if (sock_tls_connect(u->sock, tls->ctx, tls->server_name ? tls->server_name : p->host,
                         tls->verify))
        return -1;
    if (p->tls_session_ctx == tls->ctx) sock_tls_resume(u->sock, p->tls_session);
    return 0;
}

/* A session is kept only once Redis has answered, so a refused one never is; and
 * tagged with the context that verified it, so a reload's new files start afresh. */
void up_pool_keep_tls_session(struct upconn *u)
{
    struct pool *p = &u->w->pools[u->node];
    const void *ctx = u->w->cfg->upstream.tls.ctx;
    void *session = ctx ? sock_tls_session(u->sock, ctx) : NULL;
    if (!session) return;
    SSL_SESSION_free(p->tls_session);
    p->tls_session = session;
    p->tls_session_ctx = ctx;
}

void upstream_pool_deinit(struct worker *w)
{
    for (size_t i = 0; w->pools && i < TOPO_MAX_NODES; i++) {
        struct upconn *u;
        while ((u = TAILQ_FIRST(&w->pools[i].idle)))
            upstream_pin_close(&u, "respgate is shutting down");
        for (int k = 0; k < w->pools[i].n; k++)
            up_deinit(&w->pools[i].conns[k]);
        free(w->pools[i].conns);
        SSL_SESSION_free(w->pools[i].tls_session);
    }
    struct upconn *u;
    while ((u = TAILQ_FIRST(&w->dead_ups))) {
        TAILQ_REMOVE(&w->dead_ups, u, link);
        upstream_free(u);
    }
    free(w->pools);
    free(w->outstanding);
    w->pools = NULL;
    w->outstanding = NULL;
}

/* The first RESP3 client a node sees opens its RESP3 connections. */
static void wake_lazy(struct pool *p, int proto)
{
    for (int i = 0; i < p->n; i++)
        if (p->conns[i].proto == proto && p->conns[i].lazy) up_connect(&p->conns[i]);
}

struct upconn *upstream_pick(struct worker *w, int node, struct upconn *current, int proto)
{
    /* A connection with a socket is up or connecting; either takes requests. */
    if (current && current->node == node && current->sock && current->proto == proto)
        return current;
    struct pool *p = &w->pools[node];
    if (!p->n) return NULL;
    wake_lazy(p, proto);
    /* Prefer one that is up and not stalled; then one that is up; one still
     * connecting answers within connect_timeout_ms. */
    for (int pass = 0; pass < 3; pass++) {
        for (int i = 0; i < p->n; i++) {
            struct upconn *u = &p->conns[p->next++ % (unsigned)p->n];
            if (u->proto == proto && u->sock && (pass == 2 || u->state == UP_READY) &&
                (pass || !upstream_stalled(u)))
                return u;
        }
    }
    return NULL;
}

struct upconn *upstream_pick_master(struct worker *w, int node, struct upconn *current, int proto)
{
    if (current && current->node == node && current->state == UP_READY && current->verified &&
        current->proto == proto)
        return current;
    struct pool *p = &w->pools[node];
    wake_lazy(p, proto);
    /* Prefer one with no script running and not stalled, then one not stalled. */
    for (int pass = 0; pass < 3; pass++) {
        for (int i = 0; i < p->n; i++) {
            struct upconn *u = &p->conns[p->next++ % (unsigned)p->n];
            if (u->proto == proto && u->state == UP_READY && u->verified &&
                (pass == 2 || !upstream_stalled(u)) && (pass || !u->scripts))
                return u;
        }
    }
    return NULL;
}

void upstream_node_lost(struct worker *w, int node)
{
    /* Only established connections can be stuck on a frozen node; one still
     * connecting has its own timeout. A probe can go unanswered on a node that is
     * merely slow (a fork, a busy host): a connection whose requests are answered
     * within UP_STALL_NS is left alone; the others are checked again then. */
    struct pool *p = &w->pools[node];
    for (int i = 0; i < p->n; i++) {
        struct upconn *u = &p->conns[i];
        up_watch_lost(u);
    }
}

void up_reverify_node(struct worker *w, int node)
{
    for (int i = 0; i < w->pools[node].n; i++) {
        struct upconn *c = &w->pools[node].conns[i];
        c->verified = 0;
        if (c->state == UP_READY && !c->role_pending) up_send_role(c);
    }
}

/* Whether this worker can write to the master now; /readyz reads it. */
void up_note_master(struct worker *w)
{
    atomic_store_explicit(&w->master_ok, upstream_master_ok(w), memory_order_relaxed);
}

/* Whether a verified connection to the writable master is up now. */
int upstream_master_ok(struct worker *w)
{
    int m = w->topo ? w->topo->master : ROUTE_NONE;
    if (m == ROUTE_NONE) return 0;
    for (int i = 0; i < w->pools[m].n; i++)
        if (w->pools[m].conns[i].state == UP_READY && w->pools[m].conns[i].verified) return 1;
    return 0;
}

const char *upstream_why(struct worker *w, int node)
{
    return w->pools[node].n ? w->pools[node].conns[0].why : "no connection to the node yet";
}

const char *upstream_node_name(struct worker *w, int node)
{
    return w->pools[node].name;
}
