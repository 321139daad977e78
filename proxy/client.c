/* client: one client connection on one worker. It frames the client's requests,
 * sends them on its upstream connection (one per client, so Redis runs them in the
 * client's order), and writes replies back strictly in command order. Session
 * commands (MULTI, blocking, pub/sub, SELECT, AUTH...) move the client, once its
 * in-flight replies are back, onto a pinned connection that relays bytes as they are.
 * Every buffer is bounded: a client that pipelines too much, or reads too slowly,
 * is simply not read until it catches up. */
#include "command.h"
#include "dataplane.h"
#include "frame.h"
#include "log.h"

#include <ctype.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define CLIENT_OUT_HIGH (8u << 20)   /* stop reading a client that does not read its replies */
#define UPSTREAM_OUT_HIGH (8u << 20) /* stop reading clients while Redis is not taking bytes */

enum {
    C_PAUSED_PENDING = 1 << 0, /* max_pending_per_client replies outstanding */
    C_PAUSED_UP = 1 << 1,      /* its upstream's output is over the high mark */
    C_PAUSED_OUT = 1 << 2,     /* its own output is over the high mark */
    C_HELD = 1 << 3,           /* a parsed session command waits for pending replies */
    C_CLOSING = 1 << 4,        /* no more input: close once replies are out */
    C_NOINPUT = 1 << 5,        /* QUIT went through the tunnel: wait for the server to close */
    C_LINGER = 1 << 6,         /* after a protocol error: half-close, then drain the input */
    C_SHUT = 1 << 7,           /* half-closed; waiting for EOF or the linger timeout */
    C_TX_ABORTED = 1 << 8,     /* its MULTI died with its connection: refuse until EXEC/DISCARD */
    C_WATCH_LOST = 1 << 9,     /* its WATCH died with its connection: the next EXEC fails */
    C_WAIT_MASTER = 1 << 10,   /* its parsed request waits for a writable master */
};
#define LINGER_SECONDS 1
#define C_NOREAD                                                                                   \
    (C_PAUSED_PENDING | C_PAUSED_UP | C_PAUSED_OUT | C_HELD | C_CLOSING | C_NOINPUT | C_WAIT_MASTER)
#define HOLD_CHECK_MS 20 /* how often held requests are checked for their deadline */

struct client {
    struct worker *w;
    struct sock *sock;
    TAILQ_ENTRY(client) link;
    struct req_queue pending; /* in command order */
    int npending;
    struct upconn *up;      /* shared connection: all this client's requests go here */
    struct upconn *pin;     /* its own connection, once in a session */
    struct upconn *waiting; /* with C_PAUSED_UP: whose output it waits on */
    struct resp_parser rp;
    size_t scanned;
    unsigned flags;
    int reading;
    struct route_horizon horizon;  /* read-your-writes: where its last write is visible */
    int writes_inflight;           /* writes sent and not answered yet */
    unsigned session;              /* S_*: state its pinned connection holds */
    int authed;                    /* passed respgate's own AUTH (or none is asked) */
    unsigned long long id;         /* CLIENT ID */
    char *name;                    /* CLIENT SETNAME */
    unsigned long long write_conn; /* id of the connection that carried its last write */
    int sent_since_unsub;          /* pub/sub: commands sent after its last (P|S)UNSUBSCRIBE */
    TAILQ_ENTRY(client) hold_link; /* with C_WAIT_MASTER: in its worker's held list */
    enum stats_class cls;          /* of the request being dispatched, for the metrics */
    int64_t hold_until;            /* when its wait for a master ends; 0: not waiting. It stays set
                                      after a timeout, so requests behind fail at once, until a
                                      request reaches a master again */
};

#define ARGS_MAX_BYTES 4096 /* commands respgate reads whole (AUTH, HELLO, CLIENT SETNAME) */
#define ARGS_MAX 8

/* What keeps a client on its pinned connection once the replies are back. */
enum {
    S_MULTI = 1 << 0,  /* inside MULTI ... EXEC/DISCARD */
    S_WATCH = 1 << 1,  /* keys watched */
    S_DB = 1 << 2,     /* SELECT of a database other than 0 */
    S_STICKY = 1 << 3, /* AUTH, HELLO, READONLY...: state we cannot undo; pinned for good */
};

static int client_process(struct client *c);
static int client_sub_is_stateful(const char *sub);
static void dispatch(struct client *c);

static struct evbuffer *output(struct client *c)
{
    return sock_output(c->sock);
}

static struct evbuffer *input(struct client *c)
{
    return sock_input(c->sock);
}

static void update_reading(struct client *c)
{
    int want = !(c->flags & C_NOREAD);
    if (want == c->reading) return;
    c->reading = want;
    sock_read(c->sock, want);
}

/* Stops waiting for u's output to drain (u is going away or being let go). */
static void unwait(struct client *c, struct upconn *u)
{
    if ((c->flags & C_PAUSED_UP) && c->waiting == u) {
        c->flags &= ~(unsigned)C_PAUSED_UP;
        u->nwaiting--;
    }
}

static void client_free(struct client *c)
{
    struct worker *w = c->w;
    struct req *r;

    while ((r = TAILQ_FIRST(&c->pending))) {
        TAILQ_REMOVE(&c->pending, r, cq);
        if (!r->done) { /* still in an upstream's queue: its reply will be dropped */
            r->client = NULL;
            continue;
        }
        if (r->reply) evbuffer_free(r->reply);
        worker_req_put(w, r);
    }
    if (c->flags & C_PAUSED_UP) c->waiting->nwaiting--;
    if (c->flags & C_WAIT_MASTER) {
        TAILQ_REMOVE(&w->held, c, hold_link);
        w->nheld--;
        worker_held_changed(w);
    }
    upstream_pin_destroy(&c->pin); /* it may carry session state: never reused */
    resp_deinit(&c->rp);
    free(c->name);
    sock_destroy(&c->sock);
    TAILQ_REMOVE(&w->clients, c, link);
    w->nclients--;
    stats_set(&w->stats->clients, (uint64_t)w->nclients);
    atomic_fetch_sub(&w->shared->nclients, 1);
    free(c);
    worker_maybe_finish(w);
}

/* Closes a closing client once all its replies are written. Returns -1 if freed.
 * Closing a socket with unread input makes the kernel send a reset, which can
 * destroy the error reply before the client reads it; so after a protocol error we
 * half-close and discard input until EOF or LINGER_SECONDS. */
static int maybe_finish(struct client *c)
{
    if (!(c->flags & C_CLOSING) || c->npending || evbuffer_get_length(output(c))) return 0;
    if (c->flags & C_SHUT) return 0;
    if (c->flags & C_LINGER) {
        c->flags |= C_SHUT;
        sock_shutdown_write(c->sock);
        sock_read_timeout(c->sock, LINGER_SECONDS * 1000);
        c->reading = 1;
        return 0;
    }
    client_free(c);
    return -1;
}

/* A reply made here, queued behind the client's pending replies. */
static void local_reply(struct client *c, const char *s, size_t n)
{
    if (TAILQ_EMPTY(&c->pending)) {
        evbuffer_add(output(c), s, n);
        sock_flush(c->sock);
        return;
    }
    struct req *r = worker_req_get(c->w);
    r->client = c;
    r->up = NULL;
    r->reply = evbuffer_new();
    r->done = 1;
    evbuffer_add(r->reply, s, n);
    TAILQ_INSERT_TAIL(&c->pending, r, cq);
    c->npending++;
}

static void local_error(struct client *c, const char *fmt, const char *arg)
{
    char msg[512];
    int n = snprintf(msg, sizeof(msg), fmt, arg);
    if (n >= (int)sizeof(msg)) n = (int)sizeof(msg) - 1;
    local_reply(c, msg, (size_t)n);
}

static void next_message(struct client *c)
{
    resp_reset(&c->rp);
    c->scanned = 0;
}

/* Drops the framed message from the input without sending it. */
static void discard_message(struct client *c)
{
    evbuffer_drain(input(c), c->rp.len);
    next_message(c);
}

/* Malformed input: the stream cannot be trusted past this point. Redis answers
 * with an error and closes; an HTTP request gets no answer at all. Returns -1 if
 * the client was freed. */
static int protocol_error(struct client *c, const char *what)
{
    log_debug("client: protocol error (%s), closing", what);
    stats_add(&c->w->stats->errors[STATS_ERR_PROTOCOL], 1);
    if (c->rp.http) {
        client_free(c);
        return -1;
    }
    local_error(c, "-ERR Protocol error: %s\r\n", what);
    c->flags |= C_CLOSING | C_LINGER;
    evbuffer_drain(input(c), evbuffer_get_length(input(c)));
    update_reading(c);
    return maybe_finish(c);
}

/* Sends the framed message on u, queueing r (NULL for a tunnel). */
static void send_message(struct client *c, struct upconn *u, struct req *r)
{
    struct worker *w = c->w;
    if (r && r->write) c->write_conn = u->id;
    w->sent = 1;
    enum stats_route route =
        u->kind != UP_SHARED || u->node == route_write(w->topo) ? STATS_MASTER : STATS_REPLICA;
    stats_add(&w->stats->requests[route][c->cls], 1);
    struct evbuffer *in = input(c);
    if (c->rp.inl) {
        evbuffer_drain(in, c->rp.len);
        upstream_send(u, r, NULL, c->rp.inl, c->rp.inl_len);
    } else {
        upstream_send(u, r, in, NULL, c->rp.len);
    }
    next_message(c);
    if (upstream_output_len(u) > UPSTREAM_OUT_HIGH && !(c->flags & C_PAUSED_UP)) {
        c->flags |= C_PAUSED_UP;
        c->waiting = u;
        u->nwaiting++;
    }
}

/* A request in the client's queue, its reply to come from an upstream. */
static struct req *enqueue(struct client *c, int write)
{
    struct req *r = worker_req_get(c->w);
    r->client = c;
    r->write = write;
    c->writes_inflight += write;
    TAILQ_INSERT_TAIL(&c->pending, r, cq);
    if (++c->npending >= c->w->cfg->limits.max_pending_per_client) c->flags |= C_PAUSED_PENDING;
    return r;
}

static int is_read(unsigned flags)
{
    return (flags & CMD_READONLY) && !(flags & CMD_WRITE);
}

/* Why there is no writable master to send to, for held and failed requests. */
static const char *no_master_why(struct worker *w)
{
    const struct topology *t = w->topo;
    if (!t) return "no topology yet: no node has answered";
    if (t->master < 0) return t->why_no_master ? t->why_no_master : "no writable master";
    return upstream_why(w, t->master);
}

static void hold_timer_cb(evutil_socket_t fd, short what, void *arg);
static void resend_waiting(struct worker *w, int64_t now);

static void arm_hold_timer(struct worker *w)
{
    if (!w->hold_timer) w->hold_timer = event_new(w->base, -1, EV_PERSIST, hold_timer_cb, w);
    if (w->hold_timer && !evtimer_pending(w->hold_timer, NULL)) {
        struct timeval tv = {0, HOLD_CHECK_MS * 1000};
        event_add(w->hold_timer, &tv);
    }
}

/* No writable master (failing over, or its connections being re-established): the
 * request waits, and the client's later ones behind it, up to failover.hold_ms,
 * then fails with -TRYAGAIN. Requests of other clients go on meanwhile. */
static void hold(struct client *c)
{
    struct worker *w = c->w;
    const struct config *cfg = w->cfg;
    int64_t now = topo_now_ns();
    int cap = (cfg->failover.max_held_requests + cfg->threads - 1) / cfg->threads;
    char msg[512];
    int first = !c->hold_until; /* a held request is tried again each time a master may be back */
    if (first) c->hold_until = now + (int64_t)cfg->failover.hold_ms * 1000000;
    if (!w->outage_since) w->outage_since = now; /* writes wait: an outage, as clients see it */
    if (now >= c->hold_until || w->nheld >= cap) {
        stats_add(&w->stats->errors[STATS_ERR_NO_MASTER], 1);
        int n = snprintf(
            msg, sizeof(msg),
            now >= c->hold_until ? "-TRYAGAIN upstream unavailable: no writable master within "
                                   "failover.hold_ms (%d ms): %s\r\n"
                                 : "-TRYAGAIN upstream unavailable: too many requests wait for a "
                                   "writable master (failover.max_held_requests %d): %s\r\n",
            now >= c->hold_until ? cfg->failover.hold_ms : cfg->failover.max_held_requests,
            no_master_why(w));
        worker_write_stalled(w, 1, no_master_why(w));
        discard_message(c);
        local_reply(c, msg, n < (int)sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
        return;
    }
    arm_hold_timer(w);
    c->flags |= C_WAIT_MASTER;
    TAILQ_INSERT_TAIL(&w->held, c, hold_link);
    w->nheld++;
    worker_held_changed(w);
    if (first) worker_write_stalled(w, 0, no_master_why(w));
}

/* Takes the client off the held list and tries its request again. */
static void unhold_and_retry(struct client *c)
{
    struct worker *w = c->w;
    TAILQ_REMOVE(&w->held, c, hold_link);
    w->nheld--;
    worker_held_changed(w);
    c->flags &= ~(unsigned)C_WAIT_MASTER;
    dispatch(c);
    if (!(c->flags & C_WAIT_MASTER)) client_process(c); /* the rest of its pipeline */
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
        if (now >= c->hold_until) unhold_and_retry(c); /* it fails, unless a master is back */
    }
    if (!w->nheld && !w->nresend) event_del(w->hold_timer);
}

void client_release_held(struct worker *w)
{
    if (w->nresend) resend_waiting(w, topo_now_ns());
    /* Each gets one try, in the order they came; those still waiting queue again. */
    TAILQ_HEAD(, client) batch = TAILQ_HEAD_INITIALIZER(batch);
    TAILQ_CONCAT(&batch, &w->held, hold_link);
    struct client *c;
    while ((c = TAILQ_FIRST(&batch))) {
        TAILQ_REMOVE(&batch, c, hold_link);
        TAILQ_INSERT_TAIL(&w->held, c, hold_link); /* where unhold expects it */
        unhold_and_retry(c);
    }
}

void client_master_moved(struct worker *w, int old)
{
    struct client *c, *next;
    for (c = TAILQ_FIRST(&w->clients); c; c = next) {
        next = TAILQ_NEXT(c, link);
        if (c->pin && c->pin->node == old) upstream_pin_abort(c->pin, "the master changed");
    }
}

enum { NODE_ANSWERED = -2 }; /* choose_node queued an error reply */

/* Where a request goes: reads (commands Redis flags read-only) by the router,
 * everything else - writes, scripts, unknown commands - to the master. Returns a
 * node; ROUTE_NONE if it needs a master and none is writable now (it waits);
 * NODE_ANSWERED with an error reply queued. */
static int choose_node(struct client *c, int read)
{
    struct worker *w = c->w;
    int ryw = w->cfg->routing.read_your_writes;
    if (!read || (ryw && c->writes_inflight))
        return route_write(w->topo); /* reads behind its own write: on the same connection */
    if (ryw) route_horizon_update(&c->horizon, w->topo);
    int node = route_read(w->topo, &w->policy, ryw ? &c->horizon : NULL, w->outstanding, &w->rr);
    if (node == ROUTE_NONE && route_write(w->topo) != ROUTE_NONE) {
        stats_add(&w->stats->errors[STATS_ERR_NO_REPLICA], 1);
        local_error(c, "-ERR no replica is eligible for reads %s\r\n",
                    "(routing.no_replica is \"error\")");
        return NODE_ANSWERED;
    }
    return node;
}

#define RETRY_COPY_MAX (16 * 1024) /* larger requests are not sent twice */

/* A request keeps a copy of itself, so that it can be sent once more: a read whose
 * replica dies before answering, a request a node refuses because it is not what
 * the topology said (a demoted master, a replica that lost its master). */
static void keep_copy(struct client *c, struct req *r)
{
    size_t len = c->rp.inl ? c->rp.inl_len : c->rp.len;
    /* A write is sent again only after a -READONLY, which fencing makes rare: a
     * larger one is not worth a malloc and a copy on every write. */
    if (len > RETRY_COPY_MAX || (r->write && len > sizeof(r->small))) return;
    if (!(r->copy = len <= sizeof(r->small) ? r->small : malloc(len))) return;
    r->copy_len = len;
    if (c->rp.inl)
        memcpy(r->copy, c->rp.inl, len);
    else
        evbuffer_copyout(input(c), r->copy, len);
}

/* Sends r's copy again: a read to an eligible replica other than avoid, or the
 * master; anything else to the master, over a verified connection. 0 if there is
 * nowhere to send it now. */
static int resend(struct worker *w, struct req *r, int avoid)
{
    struct client *c = r->client;
    int master = route_write(w->topo), node = master;
    if (!r->write) {
        int n =
            route_read(w->topo, &w->policy, w->cfg->routing.read_your_writes ? &c->horizon : NULL,
                       w->outstanding, &w->rr);
        if (n != ROUTE_NONE && n != avoid) node = n;
    }
    if (node == ROUTE_NONE || node == avoid) return 0;
    struct upconn *u =
        node == master ? upstream_pick_master(w, node, c->up) : upstream_pick(w, node, NULL);
    if (!u) return 0;
    log_debug("client: request sent again, to %s", upstream_node_name(w, node));
    if (node == master) c->up = u;
    if (r->write) c->write_conn = u->id;
    upstream_send(u, r, NULL, r->copy, r->copy_len);
    return 1;
}

static void arm_hold_timer(struct worker *w);

/* r waits on the worker's resend list until it can be sent, or hold_ms passes. */
static void wait_to_resend(struct worker *w, struct req *r)
{
    arm_hold_timer(w);
    TAILQ_INSERT_TAIL(&w->resend, r, uq);
    w->nresend++;
    worker_held_changed(w);
}

/* A read that was in flight on a node that died is sent elsewhere, or waits for a
 * node to send it to (the master, once its replacement is verified). */
int client_retry(struct worker *w, struct req *r)
{
    if (!r->client || !r->copy || r->write) return 0;
    int64_t now = topo_now_ns();
    if (!r->resend_until) r->resend_until = now + (int64_t)w->cfg->failover.hold_ms * 1000000;
    if (now >= r->resend_until) return 0;
    if (!resend(w, r, r->node)) wait_to_resend(w, r);
    return 1;
}

int client_redirect(struct worker *w, struct req *r, struct evbuffer *in, size_t len)
{
    if (!r->client) return 0;
    if (r->write && !w->outage_since) w->outage_since = w->now_ns;
    evbuffer_drain(in, len);
    if (!r->resend_until)
        r->resend_until = topo_now_ns() + (int64_t)w->cfg->failover.hold_ms * 1000000;
    if (!resend(w, r, r->node)) wait_to_resend(w, r);
    return 1;
}

/* Requests a demoted master refused go, in order, where they can go now. */
static void resend_waiting(struct worker *w, int64_t now)
{
    struct req_queue again = TAILQ_HEAD_INITIALIZER(again);
    struct req *r;
    int nagain = 0;
    while ((r = TAILQ_FIRST(&w->resend))) {
        TAILQ_REMOVE(&w->resend, r, uq); /* first: sending links it into a connection */
        w->nresend--;
        if (!r->client) {
            worker_req_put(w, r);
        } else if (now >= r->resend_until) {
            stats_add(&w->stats->errors[STATS_ERR_NO_MASTER], 1);
            if (r->write) worker_write_stalled(w, 1, "its node failed or refused it");
            client_fail(w, r,
                        "-TRYAGAIN upstream unavailable: its node failed or refused it, and no "
                        "other could take it within failover.hold_ms\r\n");
        } else if (!resend(w, r, -1)) {
            TAILQ_INSERT_TAIL(&again, r, uq);
            nagain++;
        }
    }
    TAILQ_CONCAT(&w->resend, &again, uq);
    w->nresend += nagain;
    worker_held_changed(w);
}

static void forward_shared(struct client *c, unsigned flags)
{
    int read = is_read(flags);
    int node = choose_node(c, read);
    if (node == NODE_ANSWERED) {
        discard_message(c);
        return;
    }
    /* Whatever goes to the master stays on one connection per client, so Redis runs
     * the client's commands in its order and a WAIT covers its writes; reads to
     * replicas spread over the replica's pool. */
    int master = route_write(c->w->topo);
    struct upconn *u = NULL;
    if (node != ROUTE_NONE && node != master && !(u = upstream_pick(c->w, node, NULL)))
        node = master; /* the replica went away before the probe noticed: the master has it */
    if (!u) {
        if (master == ROUTE_NONE || !(u = upstream_pick_master(c->w, master, c->up))) {
            hold(c);
            return;
        }
        c->up = u;
        c->hold_until = 0;
    }
    struct req *r = enqueue(c, !read);
    keep_copy(c, r);
    send_message(c, u, r);
}

/* Copies the framed command's arguments into buf (cap bytes); argv/lens get up to
 * ARGS_MAX of them. Returns the argument count, or -1 if the command is too large
 * to read whole (the commands read here are small). */
static int message_args(struct client *c, char *buf, size_t cap, const char **argv, size_t *lens)
{
    size_t len = c->rp.inl ? c->rp.inl_len : c->rp.len;
    if (len > cap) return -1;
    if (c->rp.inl)
        memcpy(buf, c->rp.inl, len);
    else
        evbuffer_copyout(input(c), buf, len);
    /* The framer has checked the shape: *N CRLF, then $len CRLF data CRLF each. */
    const char *p = memchr(buf, '\n', len) + 1, *end = buf + len;
    int argc = 0;
    while (p < end && argc < ARGS_MAX) {
        size_t n = strtoul(p + 1, NULL, 10);
        p = memchr(p, '\n', (size_t)(end - p)) + 1;
        argv[argc] = p;
        lens[argc++] = n;
        p += n + 2;
    }
    return argc;
}

/* Replaces the framed command with argv[0..argc) and frames it again: HELLO without
 * its AUTH, WAIT within the timeout cap. */
static void reframe(struct client *c, const char *const *argv, const size_t *lens, int argc)
{
    struct evbuffer *rebuilt = evbuffer_new();
    evbuffer_add_printf(rebuilt, "*%d\r\n", argc);
    for (int k = 0; k < argc; k++) {
        evbuffer_add_printf(rebuilt, "$%zu\r\n", lens[k]);
        evbuffer_add(rebuilt, argv[k], lens[k]);
        evbuffer_add(rebuilt, "\r\n", 2);
    }
    evbuffer_drain(input(c), c->rp.len);
    evbuffer_prepend_buffer(input(c), rebuilt);
    evbuffer_free(rebuilt);
    next_message(c);
}

/* Compares without an early exit, so timing does not tell how much matched. */
static int secret_equals(const char *secret, const char *given, size_t n)
{
    size_t len = strlen(secret);
    unsigned char diff = len != n;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(given[i] ^ secret[i % (len ? len : 1)]);
    return diff == 0;
}

/* AUTH [user] password against auth.password (the default user) and auth.users. */
static int credentials_ok(const struct config *cfg, const char *user, size_t ulen, const char *pass,
                          size_t plen)
{
    if (!user || (ulen == 7 && memcmp(user, "default", 7) == 0))
        return cfg->auth.password && secret_equals(cfg->auth.password, pass, plen);
    for (size_t i = 0; i < cfg->auth.nusers; i++) {
        const struct config_user *u = &cfg->auth.users[i];
        if (strlen(u->name) == ulen && memcmp(u->name, user, ulen) == 0)
            return secret_equals(u->password, pass, plen);
    }
    return 0;
}

/* Read per command, not once per connection: a reload may add or drop auth.* */
static int auth_required(const struct config *cfg)
{
    return cfg->auth.password || cfg->auth.nusers;
}

static const char wrongpass[] =
    "-WRONGPASS invalid username-password pair or user is disabled.\r\n";

/* respgate's own authentication, when auth.* is configured: AUTH is answered here
 * and never forwarded; HELLO's AUTH option is checked here and HELLO forwarded
 * without it. Returns 1 if the command was answered. */
static int auth_command(struct client *c)
{
    const struct config *cfg = c->w->cfg;
    char buf[ARGS_MAX_BYTES];
    const char *argv[ARGS_MAX];
    size_t lens[ARGS_MAX];
    int hello = strcmp(c->rp.name, "hello") == 0;
    if (!hello && strcmp(c->rp.name, "auth") != 0) return 0;
    int argc = message_args(c, buf, sizeof(buf), argv, lens);

    if (!hello) {
        discard_message(c);
        if (argc < 2 || argc > 3) {
            local_error(c, "-ERR %s\r\n", "wrong number of arguments for 'auth' command");
        } else if (credentials_ok(cfg, argc == 3 ? argv[1] : NULL, argc == 3 ? lens[1] : 0,
                                  argv[argc - 1], lens[argc - 1])) {
            c->authed = 1;
            local_reply(c, "+OK\r\n", 5);
        } else {
            stats_add(&c->w->stats->errors[STATS_ERR_AUTH], 1);
            local_reply(c, wrongpass, sizeof(wrongpass) - 1);
        }
        return 1;
    }
    for (int i = 2; i + 2 < argc; i++) { /* HELLO protover [AUTH user pass] [SETNAME n] */
        if (lens[i] != 4 || strncasecmp(argv[i], "auth", 4) != 0) continue;
        if (!credentials_ok(cfg, argv[i + 1], lens[i + 1], argv[i + 2], lens[i + 2])) {
            stats_add(&c->w->stats->errors[STATS_ERR_AUTH], 1);
            discard_message(c);
            local_reply(c, wrongpass, sizeof(wrongpass) - 1);
            return 1;
        }
        c->authed = 1;
        /* Forward HELLO without its AUTH: respgate, not Redis, checked it. */
        for (int k = i + 3; k < argc; k++) {
            argv[k - 3] = argv[k];
            lens[k - 3] = lens[k];
        }
        reframe(c, argv, lens, argc - 3);
        return 1;
    }
    if (!c->authed) {
        stats_add(&c->w->stats->errors[STATS_ERR_AUTH], 1);
        discard_message(c);
        local_error(c, "-NOAUTH %s\r\n",
                    "HELLO must be called with the client already "
                    "authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can "
                    "be used to authenticate the client and select the RESP protocol version at "
                    "the same time");
        return 1;
    }
    return 0;
}

/* WAIT counts the replicas that have every write made on the connection it runs
 * on, so it must run where this client's writes went; if that connection is gone
 * (reconnected, master changed, or a transaction's connection since let go), no
 * count would be true: it gets an error. On a shared connection it also stalls the
 * clients behind it, so its timeout is capped (a smaller count on time-out is an
 * answer WAIT may always give). Returns 1 if answered or rewritten here. */
static int wait_command(struct client *c)
{
    struct worker *w = c->w;
    int master = route_write(w->topo);
    struct upconn *target = c->pin                 ? c->pin
                            : master == ROUTE_NONE ? NULL
                                                   : upstream_pick_master(w, master, c->up);
    if (c->write_conn && (!target || target->id != c->write_conn)) {
        discard_message(c);
        local_error(c, "-ERR %s\r\n",
                    "WAIT cannot count replicas for this client's writes: "
                    "the connection that carried them is gone (reconnected, the master "
                    "changed, or a transaction ended)");
        return 1;
    }
    char buf[ARGS_MAX_BYTES];
    const char *argv[ARGS_MAX];
    size_t lens[ARGS_MAX];
    int argc = message_args(c, buf, sizeof(buf), argv, lens);
    if (argc < 3 || lens[argc - 1] > 18) return 0; /* Redis answers a malformed WAIT */
    char num[20];
    memcpy(num, argv[argc - 1], lens[argc - 1]);
    num[lens[argc - 1]] = '\0';
    long long timeout = strtoll(num, NULL, 10), cap = w->cfg->limits.max_wait_ms;
    if (c->pin || (timeout > 0 && timeout <= cap)) return 0;
    argv[argc - 1] = num;
    lens[argc - 1] = (size_t)snprintf(num, sizeof(num), "%lld", cap);
    reframe(c, argv, lens, argc);
    return 1;
}

/* A session that died with its connection must not go on silently elsewhere:
 * commands queued in the client's mind would run at once, and a transaction
 * would run without its WATCH. Returns 1 if the command was answered here. */
static int session_lost(struct client *c)
{
    const char *n = c->rp.name;
    int exec = strcmp(n, "exec") == 0, discard = strcmp(n, "discard") == 0;
    if (c->flags & C_TX_ABORTED) {
        stats_add(&c->w->stats->errors[STATS_ERR_SESSION], 1);
        discard_message(c);
        if (exec || discard) c->flags &= ~(unsigned)(C_TX_ABORTED | C_WATCH_LOST);
        static const char execabort[] =
            "-EXECABORT Transaction discarded because its connection to Redis was lost.\r\n";
        if (exec)
            local_reply(c, execabort, sizeof(execabort) - 1);
        else if (discard)
            local_reply(c, "+OK\r\n", 5);
        else
            local_error(c, "-ERR %s\r\n",
                        "transaction aborted: its connection to Redis was "
                        "lost; send EXEC or DISCARD");
        return 1;
    }
    if ((c->flags & C_WATCH_LOST) && (discard || strcmp(n, "unwatch") == 0))
        c->flags &= ~(unsigned)C_WATCH_LOST;
    return 0;
}

/* Follows the state the command leaves on the pinned connection. */
static void track_session(struct client *c)
{
    const char *n = c->rp.name;
    if (strcmp(n, "multi") == 0)
        c->session |= S_MULTI;
    else if (strcmp(n, "exec") == 0 || strcmp(n, "discard") == 0)
        c->session &= ~(unsigned)(S_MULTI | S_WATCH);
    else if (strcmp(n, "watch") == 0)
        c->session |= S_WATCH;
    else if (strcmp(n, "unwatch") == 0)
        c->session &= ~(unsigned)S_WATCH;
    else if (strcmp(n, "select") == 0)
        c->session =
            strcmp(c->rp.arg1, "0") == 0 ? c->session & ~(unsigned)S_DB : c->session | S_DB;
    else if (strcmp(n, "reset") == 0)
        c->session = 0;
    else if (strcmp(n, "auth") == 0 || strcmp(n, "readonly") == 0 || strcmp(n, "readwrite") == 0 ||
             (strcmp(n, "client") == 0 && client_sub_is_stateful(c->rp.arg1)))
        c->session |= S_STICKY;
}

static void forward_pinned(struct client *c, unsigned flags)
{
    struct req *r = enqueue(c, !is_read(flags));
    if ((c->flags & C_WATCH_LOST) && strcmp(c->rp.name, "exec") == 0) {
        /* The watch is gone, so the keys may have changed: do what Redis does when
         * a watched key changed - run nothing, answer nil. */
        c->flags &= ~(unsigned)C_WATCH_LOST;
        discard_message(c);
        r->instead = "*-1\r\n";
        c->session &= ~(unsigned)(S_MULTI | S_WATCH);
        static const char discard[] = "*1\r\n$7\r\nDISCARD\r\n";
        upstream_send(c->pin, r, NULL, discard, sizeof(discard) - 1);
        return;
    }
    track_session(c);
    send_message(c, c->pin, r);
}

static int is_unsubscribe(const char *n)
{
    return strcmp(n, "unsubscribe") == 0 || strcmp(n, "punsubscribe") == 0 ||
           strcmp(n, "sunsubscribe") == 0;
}

static int is_subscribe(const char *n)
{
    return strcmp(n, "subscribe") == 0 || strcmp(n, "psubscribe") == 0 ||
           strcmp(n, "ssubscribe") == 0;
}

static void forward_tunnel(struct client *c, unsigned flags)
{
    const char *n = c->rp.name;
    /* Anything but pub/sub (MONITOR, HELLO, CLIENT REPLY) keeps it a tunnel for good. */
    if (!is_subscribe(n) && !is_unsubscribe(n) && strcmp(n, "ping") != 0) c->pin->frame_tunnel = 0;
    c->sent_since_unsub = is_unsubscribe(n) ? 0 : c->sent_since_unsub + 1;
    send_message(c, c->pin, NULL);
    if (flags & CMD_QUIT) c->flags |= C_NOINPUT; /* Redis answers and closes */
}

/* Commands whose replies cannot be framed one per request: pushes, MONITOR's
 * stream, CLIENT REPLY OFF/SKIP, RESP3 after HELLO, replication. */
static int needs_tunnel(const struct client *c, unsigned flags)
{
    return (flags & CMD_TUNNEL) || ((flags & CMD_CLIENT) && strcasecmp(c->rp.arg1, "reply") == 0);
}

/* Session commands need a connection of their own; they wait until the client's
 * replies from shared connections are all back, so order is kept. */
static void start_session(struct client *c, unsigned flags, int tunnel)
{
    if (c->npending) {
        c->flags |= C_HELD;
        return;
    }
    int master = route_write(c->w->topo);
    if (master == ROUTE_NONE || !upstream_pick_master(c->w, master, NULL)) {
        hold(c); /* a session starts only on a master a connection has just verified */
        return;
    }
    c->hold_until = 0;
    if (!(c->pin = upstream_pin_get(c->w, master, c, tunnel))) {
        discard_message(c);
        local_error(c, "-ERR %s\r\n", "out of memory");
        return;
    }
    c->pin->frame_tunnel = tunnel && is_subscribe(c->rp.name);
    log_debug("client: '%s' starts a session on a connection of its own", c->rp.name);
    if (tunnel)
        forward_tunnel(c, flags);
    else
        forward_pinned(c, flags);
}

/* A tunnel is for good; a pinned connection goes back to the pool once the
 * session state is gone and every reply is in. */
static void maybe_unpin(struct client *c)
{
    if (!c->pin || c->pin->kind != UP_PINNED || c->session || c->npending) return;
    unwait(c, c->pin);
    upstream_pin_put(&c->pin);
}

static void addr_text(const struct sockaddr_storage *sa, char *out, size_t n)
{
    char host[INET6_ADDRSTRLEN], port[8];
    if (getnameinfo((const struct sockaddr *)sa, sizeof(*sa), host, sizeof(host), port,
                    sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV) == 0)
        snprintf(out, n, sa->ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
}

/* CLIENT INFO for the client's own connection to respgate. */
static void client_info(struct client *c)
{
    struct sockaddr_storage peer, local;
    socklen_t plen = sizeof(peer), llen = sizeof(local);
    char paddr[INET6_ADDRSTRLEN + 8] = "?", laddr[INET6_ADDRSTRLEN + 8] = "?", line[512];
    evutil_socket_t fd = sock_fd(c->sock);
    if (getpeername(fd, (struct sockaddr *)&peer, &plen) == 0)
        addr_text(&peer, paddr, sizeof(paddr));
    if (getsockname(fd, (struct sockaddr *)&local, &llen) == 0)
        addr_text(&local, laddr, sizeof(laddr));
    int n = snprintf(line, sizeof(line),
                     "id=%llu addr=%s laddr=%s name=%s db=%d multi=%d sub=%d "
                     "proxy=respgate pinned=%s\n",
                     c->id, paddr, laddr, c->name ? c->name : "", (c->session & S_DB) ? -1 : 0,
                     (c->session & S_MULTI) ? 1 : -1, c->pin && c->pin->kind == UP_TUNNEL,
                     !c->pin                     ? "no"
                     : c->pin->kind == UP_TUNNEL ? "tunnel"
                                                 : "session");
    char hdr[32];
    int h = snprintf(hdr, sizeof(hdr), "$%d\r\n", n);
    discard_message(c);
    local_reply(c, hdr, (size_t)h);
    local_reply(c, line, (size_t)n);
    local_reply(c, "\r\n", 2);
}

/* RESET: what Redis does to a connection, done to the client's view. Its pinned
 * connection, if any, is closed rather than reused (RESET there would have logged
 * respgate's own connection out), and respgate's authentication is asked again. */
static void reset_command(struct client *c)
{
    if (c->npending) { /* after the replies in flight, in order */
        c->flags |= C_HELD;
        return;
    }
    discard_message(c);
    if (c->pin) {
        unwait(c, c->pin);
        upstream_pin_destroy(&c->pin); /* in-flight replies on it are answered with errors */
    }
    c->session = 0;
    c->flags &= ~(unsigned)(C_TX_ABORTED | C_WATCH_LOST);
    free(c->name);
    c->name = NULL;
    c->authed = !auth_required(c->w->cfg);
    local_reply(c, "+RESET\r\n", 8);
}

/* Which CLIENT subcommands keep state on the connection: those pin the client. */
static int client_sub_is_stateful(const char *sub)
{
    static const char *const stateful[] = {"tracking", "caching",  "no-evict",
                                           "no-touch", "getredir", "trackinginfo"};
    for (size_t i = 0; i < sizeof(stateful) / sizeof(stateful[0]); i++)
        if (strcasecmp(sub, stateful[i]) == 0) return 1;
    return 0;
}

/* CLIENT subcommands about the client itself, answered for its own view (a shared
 * connection's name and id belong to respgate). Returns 1 if answered here. */
static int client_command_local(struct client *c)
{
    const char *sub = c->rp.arg1;
    char buf[ARGS_MAX_BYTES], reply[64];
    const char *argv[ARGS_MAX];
    size_t lens[ARGS_MAX];
    if (strcasecmp(sub, "setinfo") == 0 && c->rp.argc == 4) {
        discard_message(c); /* library name and version: nothing to keep per client yet */
        local_reply(c, "+OK\r\n", 5);
    } else if (strcasecmp(sub, "getname") == 0 && c->rp.argc == 2) {
        discard_message(c);
        if (!c->name) {
            local_reply(c, "$-1\r\n", 5);
        } else {
            int n = snprintf(reply, sizeof(reply), "$%zu\r\n", strlen(c->name));
            local_reply(c, reply, (size_t)n);
            local_reply(c, c->name, strlen(c->name));
            local_reply(c, "\r\n", 2);
        }
    } else if (strcasecmp(sub, "id") == 0 && c->rp.argc == 2) {
        discard_message(c);
        int n = snprintf(reply, sizeof(reply), ":%llu\r\n", c->id);
        local_reply(c, reply, (size_t)n);
    } else if (strcasecmp(sub, "info") == 0 && c->rp.argc == 2) {
        client_info(c);
    } else if (strcasecmp(sub, "setname") == 0 && c->rp.argc == 3) {
        int argc = message_args(c, buf, sizeof(buf), argv, lens);
        discard_message(c);
        int ok = argc == 3;
        for (size_t i = 0; ok && i < lens[2]; i++)
            ok = argv[2][i] > ' ' && argv[2][i] <= '~';
        if (!ok) {
            local_error(c, "-ERR %s\r\n",
                        "Client names cannot contain spaces, newlines or special characters.");
            return 1;
        }
        free(c->name);
        c->name = lens[2] ? strndup(argv[2], lens[2]) : NULL;
        local_reply(c, "+OK\r\n", 5);
    } else {
        return 0;
    }
    return 1;
}

/* XREAD and XREADGROUP block only with BLOCK (which comes before STREAMS); without
 * it they are an ordinary read (XREAD) or write (XREADGROUP). A command too large to
 * look at whole counts as blocking. */
static int stream_read_blocks(struct client *c)
{
    char buf[ARGS_MAX_BYTES];
    const char *argv[ARGS_MAX];
    size_t lens[ARGS_MAX];
    int argc = message_args(c, buf, sizeof(buf), argv, lens);
    if (argc < 0) return 1;
    for (int i = 1; i < argc; i++) {
        if (lens[i] == 7 && strncasecmp(argv[i], "streams", 7) == 0) return 0;
        if (lens[i] == 5 && strncasecmp(argv[i], "block", 5) == 0) return 1;
    }
    return argc == ARGS_MAX; /* STREAMS not seen among the arguments read */
}

/* deny_commands: by the table built at startup, by name for commands the table
 * does not know (module commands). */
static int denied(const struct client *c, const struct cmd_info *ci)
{
    const unsigned char *table = c->w->denied;
    if (ci) {
        unsigned char d = table[cmd_index(ci)];
        if (d != 2) return d;
        char full[RESP_NAME_MAX + RESP_ARG1_MAX + 2];
        int n = snprintf(full, sizeof(full), "%s|%s", c->rp.name, c->rp.arg1);
        for (int i = (int)c->rp.name_len + 1; i < n; i++)
            full[i] = (char)tolower((unsigned char)full[i]);
        const struct cmd_info *sub = cmd_lookup(full, (size_t)n);
        return sub && table[cmd_index(sub)] == 1;
    }
    for (size_t i = 0; i < c->w->cfg->ndeny; i++)
        if (strcmp(c->w->cfg->deny[i], c->rp.name) == 0) return 1;
    return 0;
}

static void route_request(struct client *c)
{
    struct resp_parser *p = &c->rp;
    if (p->argc == 0) { /* an empty command: Redis sends nothing back either */
        discard_message(c);
        return;
    }
    const struct cmd_info *ci =
        p->name_len <= RESP_NAME_MAX ? cmd_lookup(p->name, p->name_len) : NULL;
    /* Names the built-in table lacks may be known to the master (modules, newer Redis). */
    const struct cmd_info *fi =
        ci || !c->w->topo ? ci : cmd_overlay_lookup(c->w->topo->commands, p->name, p->name_len);
    unsigned flags = cmd_flags_of(fi, p->name, p->name_len);
    c->cls = stats_class_of(flags);
    if ((flags & CMD_BLOCKING) && p->name[0] == 'x' && !stream_read_blocks(c))
        flags &= ~(unsigned)(CMD_BLOCKING | CMD_SESSION);
    const struct config *cfg = c->w->cfg;
    if (auth_required(cfg) && auth_command(c)) return;
    /* As Redis: nothing else is said before AUTH. */
    if (!c->authed && auth_required(cfg) && !(flags & CMD_QUIT)) {
        stats_add(&c->w->stats->errors[STATS_ERR_AUTH], 1);
        discard_message(c);
        local_error(c, "-NOAUTH %s\r\n", "Authentication required.");
        return;
    }
    if (denied(c, ci)) {
        stats_add(&c->w->stats->errors[STATS_ERR_DENIED], 1);
        local_error(c, "-ERR command '%s' is not allowed through respgate (deny_commands)\r\n",
                    c->rp.name); /* before the message, and its name, are dropped */
        discard_message(c);
        return;
    }
    if ((c->flags & (C_TX_ABORTED | C_WATCH_LOST)) && session_lost(c)) return;
    if ((flags & CMD_WAIT) && wait_command(c)) return;
    if (c->pin && c->pin->kind == UP_TUNNEL) {
        forward_tunnel(c, flags);
    } else if (flags & CMD_QUIT) {
        discard_message(c);
        local_reply(c, "+OK\r\n", 5);
        c->flags |= C_CLOSING;
    } else if ((flags & CMD_CLIENT) && client_command_local(c)) {
        /* answered */
    } else if (flags & CMD_RESET) {
        reset_command(c);
    } else if (needs_tunnel(c, flags)) {
        if (c->npending) {
            c->flags |= C_HELD; /* after the replies in flight, in order */
        } else if (c->pin) {
            c->pin->kind = UP_TUNNEL; /* nothing in flight: it becomes a tunnel */
            c->pin->frame_tunnel = is_subscribe(c->rp.name);
            forward_tunnel(c, flags);
        } else {
            start_session(c, flags, 1);
        }
    } else if (c->pin) {
        forward_pinned(c, flags);
    } else if ((flags & CMD_SESSION) ||
               ((flags & CMD_CLIENT) && client_sub_is_stateful(c->rp.arg1))) {
        start_session(c, flags, 0);
    } else {
        forward_shared(c, flags);
    }
}

/* Every request is counted once: where it went when it is sent, or as answered
 * here ("local") when it was not and is not waiting to be. */
static void dispatch(struct client *c)
{
    struct worker *w = c->w;
    w->sent = 0;
    route_request(c);
    if (!w->sent && !(c->flags & (C_WAIT_MASTER | C_HELD)))
        stats_add(&w->stats->requests[STATS_LOCAL][c->cls], 1);
}

/* Frames and sends what the client has sent, as far as its limits allow.
 * Returns -1 if the client was freed. */
static int client_process(struct client *c)
{
    struct evbuffer *in = input(c);
    while (!(c->flags & C_NOREAD)) {
        int rc = frame_next(&c->rp, in, &c->scanned);
        if (rc == RESP_EPROTO) return protocol_error(c, c->rp.err);
        if (rc == RESP_MORE) {
            if ((long long)evbuffer_get_length(in) > c->w->cfg->limits.max_query_buffer_bytes) {
                stats_add(&c->w->stats->errors[STATS_ERR_LIMIT], 1);
                return protocol_error(c, "query buffer limit exceeded");
            }
            break;
        }
        dispatch(c);
    }
    update_reading(c);
    return maybe_finish(c);
}

/* Writes out the replies at the head of the queue that are complete. */
static int release_replies(struct client *c)
{
    struct req *r;
    while ((r = TAILQ_FIRST(&c->pending)) && r->done) {
        TAILQ_REMOVE(&c->pending, r, cq);
        c->npending--;
        evbuffer_add_buffer(output(c), r->reply);
        evbuffer_free(r->reply);
        worker_req_put(c->w, r);
    }
    sock_flush(c->sock);
    if ((c->flags & C_PAUSED_PENDING) &&
        c->npending <= c->w->cfg->limits.max_pending_per_client / 2)
        c->flags &= ~(unsigned)C_PAUSED_PENDING;
    if (evbuffer_get_length(output(c)) > CLIENT_OUT_HIGH) c->flags |= C_PAUSED_OUT;
    maybe_unpin(c);
    if ((c->flags & C_HELD) && c->npending == 0) {
        c->flags &= ~(unsigned)C_HELD;
        dispatch(c);
    }
    return client_process(c);
}

/* Moves r's reply (the first len bytes of src) to dst, or what replaces it. */
static void take_reply(const struct req *r, struct evbuffer *src, size_t len, struct evbuffer *dst)
{
    if (r->instead) {
        evbuffer_drain(src, len);
        evbuffer_add(dst, r->instead, strlen(r->instead));
    } else {
        evbuffer_remove_buffer(src, dst, len);
    }
}

void client_deliver(struct worker *w, struct req *r, struct evbuffer *src, size_t len)
{
    struct client *c = r->client;
    if (r->timed) stats_observe(&w->stats->latency[r->node], w->now_ns - r->sent_ns);
    if (!c) { /* the client left: drop its reply */
        evbuffer_drain(src, len);
        worker_req_put(w, r);
        return;
    }
    if (r->write) {
        c->writes_inflight--;
        c->horizon.write_done_ns = topo_now_ns();
    }
    if (r != TAILQ_FIRST(&c->pending)) { /* an earlier reply is still out: keep this one */
        r->reply = evbuffer_new();
        take_reply(r, src, len, r->reply);
        r->done = 1;
        return;
    }
    TAILQ_REMOVE(&c->pending, r, cq);
    c->npending--;
    take_reply(r, src, len, output(c));
    worker_req_put(w, r);
    release_replies(c);
}

void client_fail(struct worker *w, struct req *r, const char *msg)
{
    struct client *c = r->client;
    if (!c) {
        worker_req_put(w, r);
        return;
    }
    stats_add(&w->stats->errors[STATS_ERR_UPSTREAM], 1);
    if (r->write) { /* it may have run */
        c->writes_inflight--;
        c->horizon.write_done_ns = topo_now_ns();
    }
    r->reply = evbuffer_new();
    evbuffer_add(r->reply, msg, strlen(msg));
    r->done = 1;
    if (r == TAILQ_FIRST(&c->pending)) release_replies(c);
}

/* "*3 $11 unsubscribe <channel> :0": the subscription count fell to zero. */
static int subscriptions_ended(struct evbuffer *msg, size_t len)
{
    static const char *const heads[] = {"*3\r\n$11\r\nunsubscribe\r\n",
                                        "*3\r\n$12\r\npunsubscribe\r\n",
                                        "*3\r\n$12\r\nsunsubscribe\r\n"};
    char head[24], tail[6];
    struct evbuffer_ptr at;
    if (len < sizeof(head) || evbuffer_copyout(msg, head, sizeof(head)) != sizeof(head)) return 0;
    int match = 0;
    for (size_t i = 0; i < 3; i++)
        match |= strncasecmp(head, heads[i], strlen(heads[i])) == 0;
    if (!match || evbuffer_ptr_set(msg, &at, len - sizeof(tail), EVBUFFER_PTR_SET) < 0 ||
        evbuffer_copyout_from(msg, &at, tail, sizeof(tail)) != sizeof(tail))
        return 0;
    return memcmp(tail, "\r\n:0\r\n", 6) == 0;
}

int client_tunnel_message(struct client *c, struct evbuffer *src, size_t len)
{
    int ended = subscriptions_ended(src, len);
    evbuffer_remove_buffer(src, output(c), len);
    sock_flush(c->sock);
    if (evbuffer_get_length(output(c)) > CLIENT_OUT_HIGH) upstream_pause_reading(c->pin, 1);
    /* Out of pub/sub with nothing else asked since: the connection is idle and clean. */
    if (!ended || c->sent_since_unsub) return 0;
    log_debug("client: no subscriptions left, back to multiplexing");
    c->pin->kind = UP_PINNED;
    c->pin->frame_tunnel = 0;
    maybe_unpin(c);
    return 1;
}

void client_tunnel_data(struct client *c, struct evbuffer *src)
{
    evbuffer_add_buffer(output(c), src);
    sock_flush(c->sock);
    if (evbuffer_get_length(output(c)) > CLIENT_OUT_HIGH) upstream_pause_reading(c->pin, 1);
}

void client_pin_lost(struct client *c, const char *why)
{
    struct upconn *pin = c->pin;
    int tunnel = pin->kind == UP_TUNNEL;
    unwait(c, pin);
    c->pin = NULL; /* the caller destroys it */
    stats_add(&c->w->stats->errors[STATS_ERR_SESSION], 1);
    if (tunnel && !pin->got_data) local_error(c, "-ERR upstream unavailable (%s)\r\n", why);
    /* A tunnel cannot be resumed mid-stream, nor a session whose database or
     * authentication we could not carry to another connection: close the client.
     * Otherwise the session simply ended (its requests get errors) and the client's
     * next command runs normally. */
    if (tunnel || (c->session & (S_DB | S_STICKY))) {
        log_debug("client: session connection lost (%s), closing the client", why);
        c->flags |= C_CLOSING;
        update_reading(c);
    } else if (c->session & S_MULTI) {
        c->flags |= C_TX_ABORTED;
    } else if (c->session & S_WATCH) {
        c->flags |= C_WATCH_LOST;
    }
    c->session = 0;
    maybe_finish(c);
}

void client_upstream_drained(struct upconn *u)
{
    struct client *c, *next;
    for (c = TAILQ_FIRST(&u->w->clients); c && u->nwaiting; c = next) {
        next = TAILQ_NEXT(c, link);
        if (!(c->flags & C_PAUSED_UP) || c->waiting != u) continue;
        c->flags &= ~(unsigned)C_PAUSED_UP;
        u->nwaiting--;
        client_process(c);
    }
}

static void client_readcb(void *arg)
{
    struct client *c = arg;
    c->w->now_ns = topo_now_ns(); /* one clock read for all the requests read now */
    if (c->flags & C_SHUT) {      /* lingering: the input means nothing any more */
        evbuffer_drain(input(c), evbuffer_get_length(input(c)));
        return;
    }
    client_process(c);
}

/* The output is written out. */
static void client_writecb(void *arg)
{
    struct client *c = arg;
    if (c->pin) upstream_pause_reading(c->pin, 0);
    if (c->flags & C_PAUSED_OUT) {
        c->flags &= ~(unsigned)C_PAUSED_OUT;
        client_process(c);
        return;
    }
    maybe_finish(c);
}

static void client_closecb(void *arg, int err)
{
    (void)err; /* EOF, error or the linger timeout: either way the client is gone */
    client_free(arg);
}

static void client_connectedcb(void *arg)
{
    (void)arg; /* accepted sockets are connected already */
}

static const struct sock_handlers client_handlers = {
    .on_read = client_readcb,
    .on_drained = client_writecb,
    .on_connected = client_connectedcb,
    .on_close = client_closecb,
};

void client_accept(struct worker *w, evutil_socket_t fd)
{
    static const char full[] = "-ERR max number of clients reached\r\n";
    int one = 1;

    if (w->draining || atomic_fetch_add(&w->shared->nclients, 1) >= w->cfg->limits.max_clients) {
        if (!w->draining) atomic_fetch_sub(&w->shared->nclients, 1);
        stats_add(&w->stats->errors[STATS_ERR_LIMIT], 1);
        ssize_t rc = send(fd, full, sizeof(full) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)rc;
        evutil_closesocket(fd);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    struct client *c = calloc(1, sizeof(*c));
    if (!c) {
        evutil_closesocket(fd);
        atomic_fetch_sub(&w->shared->nclients, 1);
        return;
    }
    if (!(c->sock = sock_create(w->io, fd, &client_handlers, c))) { /* it closed fd */
        free(c);
        atomic_fetch_sub(&w->shared->nclients, 1);
        return;
    }
    c->w = w;
    c->reading = 1;
    c->authed = !auth_required(w->cfg);
    c->id = atomic_fetch_add(&w->shared->next_client_id, 1) + 1;
    TAILQ_INIT(&c->pending);
    long long max_bulk = w->cfg->limits.max_query_buffer_bytes;
    resp_init(&c->rp, RESP_REQUEST,
              max_bulk < RESP_MAX_BULK_DEFAULT ? max_bulk : RESP_MAX_BULK_DEFAULT);
    TAILQ_INSERT_TAIL(&w->clients, c, link);
    w->nclients++;
    stats_add(&w->stats->clients_accepted, 1);
    stats_set(&w->stats->clients, (uint64_t)w->nclients);
}

void client_start_drain(struct worker *w)
{
    struct client *c, *next;
    for (c = TAILQ_FIRST(&w->clients); c; c = next) {
        next = TAILQ_NEXT(c, link);
        c->flags |= C_CLOSING; /* in-flight replies still go out */
        update_reading(c);
        maybe_finish(c);
    }
}

void client_close_all(struct worker *w)
{
    struct client *c;
    while ((c = TAILQ_FIRST(&w->clients)))
        client_free(c);
}
