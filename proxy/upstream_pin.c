/* upstream_pin: connections of one client's own - pinned (a session, framed like a
 * shared one) or a tunnel (relayed as it is) - and the per-node pool of clean pinned
 * ones kept for the next session. Never re-established: a failure ends the session. */
#include "upstream.h"
#include "upstream_int.h"
#include "pass.h"

#include <stdio.h>
#include <stdlib.h>

#define PIN_IDLE_MAX 16 /* clean pinned connections a worker keeps per node */

/* Takes an idle pinned connection out of its pool. */
static void unidle(struct upconn *u)
{
    struct pool *p = &u->w->pools[u->node];
    TAILQ_REMOVE(&p->idle, u, link);
    p->nidle--;
    u->idle = 0;
}

struct upconn *upstream_pin_get(struct worker *w, int node, struct client *owner, int tunnel)
{
    struct pool *p = &w->pools[node];
    struct upconn *u;
    TAILQ_FOREACH(u, &p->idle, link)
    if (u->proto == owner->proto) break;
    if (u && !tunnel) {
        unidle(u);
        u->owner = owner;
        return u;
    }
    if (!(u = malloc(sizeof(*u)))) return NULL;
    if (up_init(u, w, node, tunnel ? UP_TUNNEL : UP_PINNED, owner, owner->proto)) {
        free(u);
        return NULL;
    }
    up_connect(u);
    return u;
}

/* u leaves its owner (or its pool) and its socket closes now; the struct lives until
 * the end of the pass, since one of its callbacks may be on the stack. */
void up_pin_let_go(struct upconn *u, const char *msg)
{
    if (u->dead) return;
    if (u->idle) unidle(u);
    u->owner = NULL;
    sock_destroy(&u->sock);
    evtimer_del(u->timer);
    u->state = UP_DOWN;
    up_fail_inflight(u, msg);
    pass_bury_upconn(u);
}

/* Asks Redis for u's id (a request of respgate's own, ahead of the client's). */
void upstream_pin_identify(struct upconn *u)
{
    static const char cmd[] = "*2\r\n$6\r\nCLIENT\r\n$2\r\nID\r\n";
    if (!u->sock || u->redis_id) return;
    evbuffer_add(sock_output(u->sock), cmd, sizeof(cmd) - 1);
    up_own_request(u)->conn_id = 1;
    sock_flush(u->sock);
}

void upstream_pin_put(struct upconn **up)
{
    struct upconn *u = *up;
    struct pool *p = &u->w->pools[u->node];
    *up = NULL;
    const struct req *r;
    int clients_waiting = 0; /* requests of no client's (CLIENT SETNAME "") may be in flight */
    TAILQ_FOREACH(r, &u->inflight, uq)
    clients_waiting |= r->client != NULL;
    if (u->kind != UP_PINNED || !u->sock || u->state != UP_READY || clients_waiting ||
        u->nwaiting || p->nidle >= PIN_IDLE_MAX) {
        upstream_pin_close(&u, "the session ended");
        return;
    }
    u->owner = NULL;
    sock_read(u->sock, 1); /* a client may have paused it */
    TAILQ_INSERT_TAIL(&p->idle, u, link);
    p->nidle++;
    u->idle = 1;
}

void upstream_pin_close(struct upconn **up, const char *why)
{
    struct upconn *u = *up;
    char msg[512];
    if (!u) return;
    *up = NULL;
    snprintf(msg, sizeof(msg), "-ERR upstream connection closed (%s: %s)\r\n",
             upstream_node_name(u->w, u->node), why);
    up_pin_let_go(u, msg);
}

void upstream_pin_abort(struct upconn *u, const char *why)
{
    up_failed(u, why);
}
