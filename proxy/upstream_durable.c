/* upstream_durable: durability.min_replicas on the connections (part of the upstream
 * module). A durable write's reply - one that succeeded: an error, or the reply put in
 * place of a fenced write's, goes at once - is held on its connection. At the end of
 * the loop pass in which durable writes went out on a shared connection (group
 * commit: one WAIT for all of them), or right behind each one on a connection of a
 * client's own, respgate sends WAIT <min_replicas> <timeout_ms>. Its answer releases
 * every reply held on that connection, all sent before it since replies come in
 * order: to the client as Redis gave it when enough replicas acknowledged, otherwise
 * as durability.on_timeout says. A connection lost first fails them: the master that
 * ran them may be the one that died. Releases go up through ops->reply like any
 * reply, so the client's own order is kept. */
#include "log.h"
#include "req.h"
#include "upstream.h"
#include "upstream_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A per-worker gauge, written by its worker only. */
static void gauge_add(_Atomic uint64_t *g, int delta)
{
    stats_set(g, atomic_load_explicit(g, memory_order_relaxed) + (uint64_t)(int64_t)delta);
}

/* How many acknowledgements to WAIT for. With min_replicas_in_other_regions K, every
 * replica of the master's own region that could answer is counted in: WAIT for L + K
 * (L of them) proves K came from elsewhere, whichever L answered. Replicas whose region
 * is not known count as the master's; so do all when the master's is not known. */
static int wait_need(const struct worker *w)
{
    const struct config *cfg = w->cfg;
    int need = cfg->durability.min_replicas, k = cfg->durability.min_replicas_in_other_regions;
    const struct topology *t = w->topo;
    if (!k || !t || t->master < 0) return need;
    int region = t->nodes[t->master].region, local = 0;
    for (size_t i = 0; i < t->nnodes; i++) {
        const struct topo_node *n = &t->nodes[i];
        if ((int)i != t->master && n->listed && n->reachable && n->role == TOPO_REPLICA &&
            (region < 0 || n->region < 0 || n->region == region))
            local++;
    }
    return local + k > need ? local + k : need;
}

static void send_wait(struct upconn *u)
{
    const struct config *cfg = u->w->cfg;
    char cmd[96], n[16], t[16];
    int need = wait_need(u->w);
    int nl = snprintf(n, sizeof(n), "%d", need),
        tl = snprintf(t, sizeof(t), "%d", cfg->durability.timeout_ms);
    int len =
        snprintf(cmd, sizeof(cmd), "*3\r\n$4\r\nWAIT\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", nl, n, tl, t);
    struct req *r = req_get(u->w->reqs);
    r->durable_wait = 1;
    r->wait_need = need;
    u->unwaited = 0;
    upstream_send(u, r, NULL, cmd, (size_t)len);
}

void up_durable_sent(struct upconn *u)
{
    u->unwaited++;
    if (u->kind != UP_SHARED) { /* one client: nothing to group, and MULTI could follow */
        send_wait(u);
        return;
    }
    if (!u->wait_listed) {
        u->wait_listed = 1;
        TAILQ_INSERT_TAIL(&u->w->wait_ups, u, wait_link);
    }
}

void upstream_durable_flush(struct worker *w)
{
    struct upconn *u;
    while ((u = TAILQ_FIRST(&w->wait_ups))) {
        TAILQ_REMOVE(&w->wait_ups, u, wait_link);
        u->wait_listed = 0;
        if (u->unwaited && u->sock && !u->dead) send_wait(u);
    }
}

int up_durable_hold(struct upconn *u, struct req *r, char type, struct evbuffer *in, size_t len)
{
    struct worker *w = u->w;
    if (!r->durable || r->instead || type == '-') return 0;
    if (!r->reply && !(r->reply = evbuffer_new())) return 0;
    if (r->timed) { /* the node's latency is the reply's, not the replicas' */
        stats_observe(&w->stats->latency[r->node], w->now_ns - r->sent_ns);
        r->timed = 0;
    }
    evbuffer_remove_buffer(in, r->reply, len);
    TAILQ_INSERT_TAIL(&u->held, r, uq);
    stats_add(&w->stats->durable_held, 1);
    gauge_add(&w->stats->durable_waiting, 1);
    return 1;
}

/* Every reply held on u goes to its client: as it was if acks reached need, else as
 * on_timeout says (lost: the connection went first, always an error). */
static void release_all(struct upconn *u, int acks, int need, int lost)
{
    struct worker *w = u->w;
    const struct config *cfg = w->cfg;
    struct req *r;
    while ((r = TAILQ_FIRST(&u->held))) {
        TAILQ_REMOVE(&u->held, r, uq);
        gauge_add(&w->stats->durable_waiting, -1);
        struct evbuffer *reply = r->reply;
        r->reply = NULL;
        if (!lost && acks < need && cfg->durability.on_timeout == CONFIG_DURABLE_REPLY) {
            stats_add(&w->stats->durable_short_released, 1);
        } else if (lost || acks < need) {
            stats_add(&w->stats->durable_failed, 1);
            evbuffer_drain(reply, evbuffer_get_length(reply));
            if (lost)
                evbuffer_add_printf(reply,
                                    "-NOREPLICAS the write ran on the master, but the connection "
                                    "to it was lost before %d replica%s acknowledged it "
                                    "(durability.min_replicas): it may be lost\r\n",
                                    need, need == 1 ? "" : "s");
            else
                evbuffer_add_printf(reply,
                                    "-NOREPLICAS the write ran on the master but reached %d of %d "
                                    "replicas within %d ms (durability.min_replicas): it may be "
                                    "lost in a failover\r\n",
                                    acks < 0 ? 0 : acks, need, cfg->durability.timeout_ms);
        }
        w->ops->reply(w, r, reply, evbuffer_get_length(reply));
        evbuffer_free(reply);
    }
}

void up_durable_answered(struct upconn *u, struct req *r, struct evbuffer *in, size_t len)
{
    struct worker *w = u->w;
    char head[24] = "";
    evbuffer_copyout(in, head, len < sizeof(head) - 1 ? len : sizeof(head) - 1);
    int acks = head[0] == ':' ? atoi(head + 1) : -1; /* an error: nothing acknowledged */
    if (acks < 0 && head[0] == '-')
        log_warn("upstream %s: WAIT refused: %.*s", upstream_node_name(w, u->node),
                 (int)strcspn(head, "\r\n"), head);
    stats_observe(&w->stats->durable_wait, w->now_ns - r->sent_ns);
    evbuffer_drain(in, len);
    release_all(u, acks, r->wait_need, 0);
    req_put(w->reqs, r);
}

void up_durable_lost(struct upconn *u)
{
    u->unwaited = 0;
    release_all(u, -1, u->w->cfg->durability.min_replicas, 1);
}
