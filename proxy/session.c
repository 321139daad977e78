/* session: see session.h. */
#include "session.h"
#include "command.h"
#include "hold.h"
#include "idmap.h"
#include "log.h"
#include "message.h"
#include "pass.h"
#include "pubsub.h"
#include "replyq.h"
#include "req.h"
#include "upstream.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int is_read(unsigned flags)
{
    return (flags & CMD_READONLY) && !(flags & CMD_WRITE);
}

int session_client_sub_is_stateful(const char *sub)
{
    static const char *const stateful[] = {"tracking", "caching",  "no-evict",
                                           "no-touch", "getredir", "trackinginfo"};
    for (size_t i = 0; i < sizeof(stateful) / sizeof(stateful[0]); i++)
        if (strcasecmp(sub, stateful[i]) == 0) return 1;
    return 0;
}

/* Commands whose replies cannot be framed one per request: pushes, MONITOR's
 * stream, CLIENT REPLY OFF/SKIP, RESP3 after HELLO, replication. */
int session_needs_tunnel(const struct client *c, unsigned flags)
{
    return (flags & CMD_TUNNEL) || ((flags & CMD_CLIENT) && strcasecmp(c->rp.arg1, "reply") == 0) ||
           /* RESP3 tracking pushes invalidations among the replies: Redis orders them */
           ((flags & CMD_CLIENT) && c->proto == 3 && strcasecmp(c->rp.arg1, "tracking") == 0) ||
           /* the connection then debugs its next script: redis-cli --ldb */
           ((flags & CMD_CONTAINER) && strcmp(c->rp.name, "script") == 0 &&
            strcasecmp(c->rp.arg1, "debug") == 0);
}

/* Sends CLIENT SETNAME name on the client's connection, its reply dropped (a
 * request of no client's). */
static void send_setname(struct client *c, const char *name)
{
    char head[64];
    size_t n = strlen(name);
    int h = snprintf(head, sizeof(head), "*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$%zu\r\n", n);
    struct evbuffer *cmd = evbuffer_new();
    if (!cmd) return;
    evbuffer_add(cmd, head, (size_t)h);
    evbuffer_add(cmd, name, n);
    evbuffer_add(cmd, "\r\n", 2);
    upstream_send(c->pin, req_get(c->w->reqs), cmd, NULL, evbuffer_get_length(cmd));
    evbuffer_free(cmd);
}

/* A tunnel hands CLIENT GETNAME to Redis, and a session may become one: the name
 * respgate kept goes to the connection as a session starts (before its first
 * command, so never into a MULTI), and is taken off when the connection goes back
 * to the pool. Not before SCRIPT DEBUG, which Redis refuses behind a reply not yet
 * sent: that debugging tunnel goes without the name. */
static void carry_name(struct client *c)
{
    if (!c->name || c->pin->named || strcmp(c->rp.name, "script") == 0) return;
    send_setname(c, c->name);
    c->pin->named = 1;
}

/* CLIENT UNBLOCK, TRACKING REDIRECT... name the client by respgate's id: while it has
 * a connection of its own, idmap.c says which Redis connection that is. Not before
 * SCRIPT DEBUG (see carry_name). */
static void identify(struct client *c)
{
    if (c->pin->redis_id)
        idmap_set(c->w->shared->ids, c->id, c->pin->redis_id);
    else if (strcmp(c->rp.name, "script") != 0)
        upstream_pin_identify(c->pin);
}

void session_identified(struct client *c, struct upconn *u)
{
    if (c->pin == u) idmap_set(c->w->shared->ids, c->id, u->redis_id);
}

static void forget_id(struct client *c)
{
    if (c->pin && c->pin->redis_id) idmap_del(c->w->shared->ids, c->id);
}

void session_renamed(struct client *c)
{
    if (!c->pin || (!c->pin->named && !c->name)) return;
    send_setname(c, c->name ? c->name : "");
    c->pin->named = c->name != NULL;
}

/* Stops waiting for u's output to drain (u is going away or being let go). */
static void unwait(struct client *c, struct upconn *u)
{
    if ((c->flags & C_PAUSED_UP) && c->waiting == u) {
        c->flags &= ~(unsigned)C_PAUSED_UP;
        u->nwaiting--;
    }
}

/* SELECT's index for CLIENT LIST's db=, when it is one (Redis refuses the rest; an
 * index past its databases is not known here and shows as asked). */
static void note_db(struct client *c)
{
    char *end;
    long db = strtol(c->rp.arg1, &end, 10);
    if (c->rp.arg1_len && c->rp.arg1_len <= RESP_ARG1_MAX && !*end && db >= 0 && db <= INT_MAX)
        c->db = (int)db;
}

/* Follows the state the command leaves on the pinned connection. Only a command
 * Redis runs may clear a state: one with the wrong number of arguments is refused,
 * and one queued inside MULTI may never run (DISCARD). Setting a state that did not
 * take (a bad SELECT index) only keeps the connection a while longer. */
static void track(struct client *c)
{
    const char *n = c->rp.name;
    long long argc = c->rp.argc;
    int multi = (c->session & S_MULTI) != 0;
    if (multi && strcmp(n, "exec") != 0 && strcmp(n, "discard") != 0 && strcmp(n, "multi") != 0 &&
        strcmp(n, "watch") != 0)
        c->multi_queued++; /* CLIENT LIST's multi= */
    if (strcmp(n, "multi") == 0) {
        if (argc == 1 && !multi) c->multi_queued = 0;
        if (argc == 1) c->session |= S_MULTI;
    } else if (strcmp(n, "exec") == 0) {
        /* Inside MULTI, EXEC ends the transaction even when refused (EXECABORT);
         * outside, it is refused and the keys stay watched. */
        if (multi) c->session &= ~(unsigned)(S_MULTI | S_WATCH);
    } else if (strcmp(n, "discard") == 0) {
        if (argc == 1 && multi) c->session &= ~(unsigned)(S_MULTI | S_WATCH);
    } else if (strcmp(n, "watch") == 0) {
        c->session |= S_WATCH;
    } else if (strcmp(n, "unwatch") == 0) {
        if (argc == 1 && !multi) c->session &= ~(unsigned)S_WATCH;
    } else if (strcmp(n, "select") == 0) {
        if (argc == 2 && !multi && c->rp.arg1_len == 1 && c->rp.arg1[0] == '0')
            c->session &= ~(unsigned)S_DB;
        else if (argc == 2)
            c->session |= S_DB;
        if (argc == 2 && !multi) note_db(c);
    } else if (strcmp(n, "reset") == 0) {
        if (argc == 1) c->session = 0;
        if (argc == 1) c->db = 0;
    } else if (strcmp(n, "auth") == 0 || strcmp(n, "readonly") == 0 ||
               strcmp(n, "readwrite") == 0 ||
               (strcmp(n, "client") == 0 && session_client_sub_is_stateful(c->rp.arg1))) {
        c->session |= S_STICKY;
    }
}

/* EXEC that must not run: DISCARD goes in its place (the transaction is over on
 * the connection too), and the client gets reply. */
static void exec_instead(struct client *c, struct req *r, const char *reply)
{
    static const char discard[] = "*1\r\n$7\r\nDISCARD\r\n";
    message_discard(c);
    r->instead = reply;
    c->session &= ~(unsigned)(S_MULTI | S_WATCH);
    c->sent = 1;
    upstream_send(c->pin, r, NULL, discard, sizeof(discard) - 1);
}

static void forward_pinned(struct client *c, unsigned flags)
{
    struct req *r = replyq_push(c, !is_read(flags));
    r->durable = message_durable(c, flags); /* before track(): EXEC still inside MULTI */
    r->redirect = (flags & CMD_CLIENT) && (strcasecmp(c->rp.arg1, "getredir") == 0 ||
                                           strcasecmp(c->rp.arg1, "trackinginfo") == 0);
    int exec = strcmp(c->rp.name, "exec") == 0, discard = strcmp(c->rp.name, "discard") == 0;
    if (exec && c->rp.argc != 1) { /* Redis refuses it, and in MULTI aborts the transaction */
        if (c->session & S_MULTI) c->flags &= ~(unsigned)(C_TX_DIRTY | C_WATCH_LOST);
        exec = 0;
    }
    discard = discard && c->rp.argc == 1;
    if ((c->flags & C_TX_DIRTY) && (exec || discard)) {
        c->flags &= ~(unsigned)C_TX_DIRTY;
        if (exec) { /* respgate refused a command queued here: like Redis, run nothing */
            c->flags &= ~(unsigned)C_WATCH_LOST;
            exec_instead(c, r, "-EXECABORT Transaction discarded because of previous errors.\r\n");
            return;
        }
    }
    if ((c->flags & C_WATCH_LOST) && exec) {
        /* The watch is gone, so the keys may have changed: do what Redis does when
         * a watched key changed - run nothing, answer nil. */
        c->flags &= ~(unsigned)C_WATCH_LOST;
        exec_instead(c, r, c->proto == 3 ? "_\r\n" : "*-1\r\n");
        return;
    }
    track(c);
    message_send(c, c->pin, r);
}

static void forward_tunnel(struct client *c, unsigned flags)
{
    /* Anything but pub/sub (MONITOR, HELLO, CLIENT REPLY) keeps it a tunnel for good. */
    if (c->pin->frame_tunnel && !pubsub_sent(&c->pubsub, c->rp.name, c->rp.argc))
        c->pin->frame_tunnel = 0;
    message_send(c, c->pin, NULL);
    if (flags & CMD_QUIT) c->flags |= C_NOINPUT; /* Redis answers and closes */
}

void session_forward(struct client *c, unsigned flags)
{
    if (c->pin->kind == UP_TUNNEL)
        forward_tunnel(c, flags);
    else
        forward_pinned(c, flags);
}

void session_start(struct client *c, unsigned flags, int tunnel)
{
    if (c->npending) {
        c->flags |= C_WAIT_REPLIES; /* after the replies in flight, in order */
        return;
    }
    if (c->pin && tunnel) { /* nothing in flight: the session becomes a tunnel */
        c->pin->kind = UP_TUNNEL;
        /* Inside MULTI, Redis answers QUEUED: nothing pubsub.c could count. */
        c->pin->frame_tunnel = !(c->session & S_MULTI) && c->proto == 2;
        memset(&c->pubsub, 0, sizeof(c->pubsub));
        forward_tunnel(c, flags);
        return;
    }
    int master = route_write(c->w->topo);
    if (master == ROUTE_NONE || !upstream_pick_master(c->w, master, NULL, c->proto)) {
        hold_client(c); /* a session starts only on a master a connection has just verified */
        return;
    }
    c->hold_until = 0;
    if (!(c->pin = upstream_pin_get(c->w, master, c, tunnel))) {
        message_discard(c);
        replyq_error(c, "-ERR %s\r\n", "out of memory");
        return;
    }
    /* pubsub.c follows RESP2 pub/sub; a RESP3 one mixes pushes with any command's
     * replies and stays a tunnel for the client's life. */
    c->pin->frame_tunnel = tunnel && c->proto == 2;
    memset(&c->pubsub, 0, sizeof(c->pubsub));
    log_debug("client: '%s' starts a session on a connection of its own", c->rp.name);
    carry_name(c);
    identify(c);
    if (tunnel)
        forward_tunnel(c, flags);
    else
        forward_pinned(c, flags);
}

int session_lost(struct client *c)
{
    const char *n = c->rp.name;
    int exec = strcmp(n, "exec") == 0, discard = strcmp(n, "discard") == 0;
    if (c->flags & C_TX_ABORTED) {
        stats_add(&c->w->stats->errors[STATS_ERR_SESSION], 1);
        message_discard(c);
        if (exec || discard) c->flags &= ~(unsigned)(C_TX_ABORTED | C_WATCH_LOST | C_TX_DIRTY);
        static const char execabort[] =
            "-EXECABORT Transaction discarded because its connection to Redis was lost.\r\n";
        if (exec)
            replyq_local(c, execabort, sizeof(execabort) - 1);
        else if (discard)
            replyq_local(c, "+OK\r\n", 5);
        else
            replyq_error(c, "-ERR %s\r\n",
                         "transaction aborted: its connection to Redis was "
                         "lost; send EXEC or DISCARD");
        return 1;
    }
    if ((c->flags & C_WATCH_LOST) && (discard || strcmp(n, "unwatch") == 0))
        c->flags &= ~(unsigned)C_WATCH_LOST;
    return 0;
}

void session_maybe_unpin(struct client *c)
{
    if (!c->pin || c->pin->kind != UP_PINNED || c->session || c->npending) return;
    unwait(c, c->pin);
    forget_id(c);
    if (c->pin->named) {
        send_setname(c, "");
        c->pin->named = 0;
    }
    upstream_pin_put(&c->pin);
}

void session_end(struct client *c, const char *why)
{
    if (!c->pin) return;
    unwait(c, c->pin);
    forget_id(c);
    upstream_pin_close(&c->pin, why);
    c->session = 0;
}

void session_master_moved(struct worker *w, int old)
{
    struct client *c;
    TAILQ_FOREACH(c, &w->clients, link)
    if (c->pin && c->pin->node == old) upstream_pin_abort(c->pin, "the master changed");
}

void session_pin_lost(struct client *c, const char *why)
{
    struct upconn *pin = c->pin;
    int tunnel = pin->kind == UP_TUNNEL;
    unwait(c, pin);
    forget_id(c);
    c->pin = NULL; /* upstream.c lets it go */
    stats_add(&c->w->stats->errors[STATS_ERR_SESSION], 1);
    if (tunnel && !pin->got_data) replyq_error(c, "-ERR upstream unavailable (%s)\r\n", why);
    /* A tunnel cannot be resumed mid-stream, nor a session whose database or
     * authentication we could not carry to another connection: close the client.
     * Otherwise the session simply ended (its requests get errors) and the client's
     * next command runs normally. */
    if (tunnel || (c->session & (S_DB | S_STICKY))) {
        log_debug("client: session connection lost (%s), closing the client", why);
        c->flags |= C_CLOSING;
    } else if (c->session & S_MULTI) {
        c->flags |= C_TX_ABORTED;
    } else if (c->session & S_WATCH) {
        c->flags |= C_WATCH_LOST;
    }
    c->session = 0;
    pass_wake(c);
}

/* Whether this message from Redis ends the pub/sub session (pubsub.h). */
static int pubsub_over(struct client *c, struct evbuffer *msg, size_t len)
{
    char head[32], tail[32];
    size_t hlen = len < sizeof(head) ? len : sizeof(head),
           tlen = len < sizeof(tail) ? len : sizeof(tail);
    struct evbuffer_ptr at;
    if (evbuffer_copyout(msg, head, hlen) != (ev_ssize_t)hlen ||
        evbuffer_ptr_set(msg, &at, len - tlen, EVBUFFER_PTR_SET) < 0 ||
        evbuffer_copyout_from(msg, &at, tail, tlen) != (ev_ssize_t)tlen)
        return 0;
    return pubsub_received(&c->pubsub, head, hlen, tail, tlen);
}

int session_tunnel(struct client *c, struct evbuffer *src, size_t len, int framed)
{
    struct evbuffer *out = sock_output(c->sock);
    int ended = framed && pubsub_over(c, src, len);
    if (framed)
        evbuffer_remove_buffer(src, out, len);
    else
        evbuffer_add_buffer(out, src);
    sock_flush(c->sock);
    if (evbuffer_get_length(out) > CLIENT_OUT_HIGH) upstream_pause_reading(c->pin, 1);
    replyq_check_limit(c);
    /* Out of pub/sub with every reply back: the connection is idle and clean, and
     * goes back to the pool at the end of the pass. */
    if (!ended) return 0;
    log_debug("client: no subscriptions left, back to multiplexing");
    c->pin->kind = UP_PINNED;
    c->pin->frame_tunnel = 0;
    pass_wake(c);
    return 1;
}
