/* hold: see hold.h. */
#include "hold.h"
#include "log.h"
#include "message.h"
#include "outage.h"
#include "pass.h"
#include "replyq.h"
#include "req.h"
#include "upstream.h"

#include <stdio.h>

#define HOLD_CHECK_MS 20 /* how often held requests are checked for their deadline */

static void hold_timer_cb(evutil_socket_t fd, short what, void *arg);

static void arm_hold_timer(struct worker *w)
{
    if (!w->hold_timer) w->hold_timer = event_new(w->base, -1, EV_PERSIST, hold_timer_cb, w);
    if (w->hold_timer && !evtimer_pending(w->hold_timer, NULL)) {
        struct timeval tv = {0, HOLD_CHECK_MS * 1000};
        event_add(w->hold_timer, &tv);
    }
}

/* Why there is no writable master to send to, for held and failed requests. */
static const char *hold_no_master_why(struct worker *w)
{
    const struct topology *t = w->topo;
    if (w->draining > 1) return "respgate is shutting down";
    if (!t) return "no topology yet: no node has answered";
    if (t->master < 0) return t->why_no_master ? t->why_no_master : "no writable master";
    return upstream_why(w, t->master);
}

/* The framed request gets -TRYAGAIN instead of waiting. */
static void refuse(struct client *c, int64_t now)
{
    struct worker *w = c->w;
    const struct config *cfg = w->cfg;
    char msg[512];
    int n;
    stats_add(&w->stats->errors[STATS_ERR_NO_MASTER], 1);
    if (w->draining > 1)
        n = snprintf(msg, sizeof(msg),
                     "-TRYAGAIN upstream unavailable: no writable master "
                     "before respgate shut down\r\n");
    else if (now >= c->hold_until)
        n = snprintf(msg, sizeof(msg),
                     "-TRYAGAIN upstream unavailable: no writable master within "
                     "failover.hold_ms (%d ms): %s\r\n",
                     cfg->failover.hold_ms, hold_no_master_why(w));
    else
        n = snprintf(msg, sizeof(msg),
                     "-TRYAGAIN upstream unavailable: too many requests wait for a writable "
                     "master (failover.max_held_requests %d): %s\r\n",
                     cfg->failover.max_held_requests, hold_no_master_why(w));
    outage_stalled(w, 1, hold_no_master_why(w));
    message_discard(c);
    replyq_local(c, msg, n < (int)sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
}

void hold_client(struct client *c)
{
    struct worker *w = c->w;
    const struct config *cfg = w->cfg;
    int64_t now = topo_now_ns();
    int cap = (cfg->failover.max_held_requests + cfg->threads - 1) / cfg->threads;
    int first = !c->hold_until; /* a held request is tried again each time a master may be back */
    if (first) c->hold_until = now + (int64_t)cfg->failover.hold_ms * 1000000;
    w->now_ns = now;
    /* Writes wait: an outage, as clients see it; unless the master is writable and
     * only the connections of this client's protocol are still coming up. */
    int warming = upstream_master_ok(w);
    if (!warming) outage_begin(w);
    if (now >= c->hold_until || w->nheld >= cap || w->draining > 1) {
        refuse(c, now);
        return;
    }
    arm_hold_timer(w);
    c->flags |= C_WAIT_MASTER;
    TAILQ_INSERT_TAIL(&w->held, c, hold_link);
    w->nheld++;
    outage_held_changed(w);
    if (first && !warming) outage_stalled(w, 0, hold_no_master_why(w));
}

/* Off the held list; woken, it dispatches its request again. */
static void unhold(struct client *c)
{
    struct worker *w = c->w;
    TAILQ_REMOVE(&w->held, c, hold_link);
    w->nheld--;
    outage_held_changed(w);
    c->flags &= ~(unsigned)C_WAIT_MASTER;
    pass_wake(c);
}

void hold_forget(struct client *c)
{
    if (!(c->flags & C_WAIT_MASTER)) return;
    TAILQ_REMOVE(&c->w->held, c, hold_link);
    c->w->nheld--;
    c->flags &= ~(unsigned)C_WAIT_MASTER;
    outage_held_changed(c->w);
}

/* Sends r's copy again: a read to an eligible replica other than avoid, or the
 * master; anything else to the master, over a verified connection. 0 if there is
 * nowhere to send it now. */
static int resend(struct worker *w, struct req *r, int avoid)
{
    struct client *c = r->client;
    int master = route_write(w->topo), node = master;
    if (!r->write && !r->master_only) {
        int n =
            route_read(w->topo, &w->policy, w->cfg->routing.read_your_writes ? &c->horizon : NULL,
                       w->outstanding, &w->rr);
        if (n != ROUTE_NONE && n != avoid) node = n;
    }
    if (node == ROUTE_NONE || node == avoid) return 0;
    struct upconn *u = node == master ? upstream_pick_master(w, node, c->up, c->proto)
                                      : upstream_pick(w, node, NULL, c->proto);
    if (!u) return 0;
    log_debug("client: request sent again, to %s", upstream_node_name(w, node));
    r->fenced_ns = 0; /* a fenced write refused by its old master: it did not run */
    if (node == master) c->up = u;
    if (r->write) c->write_conn = u->id;
    upstream_send(u, r, NULL, r->copy, r->copy_len);
    return 1;
}

/* r waits on the worker's resend list until it can be sent, or hold_ms passes. */
static void wait_to_resend(struct worker *w, struct req *r)
{
    r->up = NULL;
    arm_hold_timer(w);
    TAILQ_INSERT_TAIL(&w->resend, r, uq);
    w->nresend++;
    outage_held_changed(w);
}

/* Whether a write the client sent after r went on r's connection: it may have run
 * before the connection died, and r sent again now would see it. */
static int later_write_went_along(const struct req *r)
{
    for (const struct req *n = TAILQ_NEXT(r, cq); n; n = TAILQ_NEXT(n, cq))
        if (n->write && !n->done && n->up == r->up) return 1;
    return 0;
}

int hold_retry(struct worker *w, struct req *r)
{
    if (!r->client || !r->copy || r->write || later_write_went_along(r)) return 0;
    int64_t now = topo_now_ns();
    if (!r->resend_until) r->resend_until = now + (int64_t)w->cfg->failover.hold_ms * 1000000;
    if (now >= r->resend_until || w->draining > 1) return 0;
    if (!resend(w, r, r->node)) wait_to_resend(w, r);
    return 1;
}

int hold_redirect(struct worker *w, struct req *r, struct evbuffer *in, size_t len)
{
    if (r->write) outage_begin(w);
    evbuffer_drain(in, len);
    if (!r->resend_until)
        r->resend_until = topo_now_ns() + (int64_t)w->cfg->failover.hold_ms * 1000000;
    if (!resend(w, r, r->node)) wait_to_resend(w, r);
    return 1;
}

/* Requests waiting to be resent go, in order, where they can go now. */
static void resend_waiting(struct worker *w, int64_t now)
{
    struct req_queue again = TAILQ_HEAD_INITIALIZER(again);
    struct req *r;
    int nagain = 0;
    while ((r = TAILQ_FIRST(&w->resend))) {
        TAILQ_REMOVE(&w->resend, r, uq); /* first: sending links it into a connection */
        w->nresend--;
        if (!r->client) {
            req_put(w->reqs, r);
        } else if (now >= r->resend_until || w->draining > 1) {
            stats_add(&w->stats->errors[STATS_ERR_NO_MASTER], 1);
            if (r->write) outage_stalled(w, 1, "its node failed or refused it");
            replyq_fail(w, r,
                        "-TRYAGAIN upstream unavailable: its node failed or refused it, and no "
                        "other could take it within failover.hold_ms\r\n");
        } else if (!resend(w, r, -1)) {
            TAILQ_INSERT_TAIL(&again, r, uq);
            nagain++;
        }
    }
    TAILQ_CONCAT(&w->resend, &again, uq);
    w->nresend += nagain;
    outage_held_changed(w);
}

static void hold_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker *w = arg;
    int64_t now = topo_now_ns();
    struct client *c, *next;
    w->now_ns = now;
    resend_waiting(w, now);
    for (c = TAILQ_FIRST(&w->held); c; c = next) {
        next = TAILQ_NEXT(c, hold_link);
        if (now >= c->hold_until) unhold(c); /* it fails, unless a master is back */
    }
    if (!w->nheld && !w->nresend) event_del(w->hold_timer);
}

void hold_release_all(struct worker *w)
{
    if (w->nresend) resend_waiting(w, topo_now_ns());
    struct client *c;
    while ((c = TAILQ_FIRST(&w->held)))
        unhold(c);
}

void hold_expire_all(struct worker *w)
{
    resend_waiting(w, topo_now_ns());
    struct client *c;
    while ((c = TAILQ_FIRST(&w->held)))
        unhold(c); /* with w->draining > 1 it is refused */
}

void hold_deinit(struct worker *w)
{
    struct req *r;
    while ((r = TAILQ_FIRST(&w->resend))) { /* their clients are gone now */
        TAILQ_REMOVE(&w->resend, r, uq);
        req_put(w->reqs, r);
    }
    w->nresend = 0;
    if (w->hold_timer) event_free(w->hold_timer);
    w->hold_timer = NULL;
}
