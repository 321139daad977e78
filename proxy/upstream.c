/* upstream: a worker's connections to Redis. Shared connections carry many
 * clients' requests pipelined, replies matched FIFO; they reconnect at once after
 * a drop (Sentinel and operators kill client connections as a matter of course)
 * and back off exponentially while connects fail. A pinned connection carries one
 * client's session, framed like a shared one (or relayed as it is, for a tunnel);
 * it is never re-established. Everything that happens goes up through w->ops, which
 * only record it: nothing here is freed while one of its callbacks runs. */
#include "upstream.h"
#include "upstream_int.h"
#include "frame.h"
#include "info.h"
#include "log.h"
#include "outage.h"
#include "pass.h"
#include "probe.h"
#include "req.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UP_BACKOFF_MIN_MS 50
#define UP_BACKOFF_MAX_MS 2000

static const char fenced_reply[] =
    "-ERR upstream master replaced before the reply, the command may or may not have run "
    "(respgate fenced the old master)\r\n";

static int is_pinned(const struct upconn *u)
{
    return u->kind != UP_SHARED;
}

static const char *node_name(const struct upconn *u)
{
    return u->w->pools[u->node].name;
}

/* r leaves u's in-flight queue. */
void up_unqueue(struct upconn *u, struct req *r)
{
    TAILQ_REMOVE(&u->inflight, r, uq);
    u->w->outstanding[u->node]--;
    u->scripts -= r->script;
}

void up_arm_timer(struct upconn *u, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(u->timer, &tv);
}

void up_arm_timer_soon(struct upconn *u, int ms)
{
    struct timeval when, now, at, tv = {ms / 1000, (ms % 1000) * 1000};
    if (evtimer_pending(u->timer, &when) && event_base_gettimeofday_cached(u->w->base, &now) == 0) {
        timeradd(&now, &tv, &at);
        if (timercmp(&when, &at, <)) return; /* an earlier look is due anyway */
    }
    evtimer_add(u->timer, &tv);
}

static void set_sockopts(struct sock *s)
{
    int one = 1;
    evutil_socket_t fd = sock_fd(s);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
}

/* Every request in flight on u gets msg (or is sent again elsewhere: ops->lost). */
void up_fail_inflight(struct upconn *u, const char *msg)
{
    struct req *r;
    up_durable_lost(u); /* answered before those in flight, as they were sent */
    while ((r = TAILQ_FIRST(&u->inflight))) {
        up_unqueue(u, r); /* r->up still says where it was, for ops->lost */
        u->w->ops->lost(u->w, r, msg);
    }
}

/* The connection is gone (or never came up): answer what was in flight, then
 * reconnect (shared) or end the client's session (pinned). */
void up_failed(struct upconn *u, const char *why)
{
    struct worker *w = u->w;
    /* Over TLS 1.3 a server that refuses respgate's certificate says so after the
     * handshake, at the first read: until a reply came, it is a failed connect
     * (backoff), not a lost connection (at once). */
    int was_ready = u->state == UP_READY && (u->replied || !u->sock || !sock_is_tls(u->sock)),
        had_inflight = !TAILQ_EMPTY(&u->inflight);
    char msg[512];
    if (u->dead) return;
    w->now_ns = topo_now_ns(); /* a close callback is a callback too */

    snprintf(u->why, sizeof(u->why), "%s: %s", node_name(u), why);
    sock_destroy(&u->sock);
    evtimer_del(u->timer);
    u->state = UP_DOWN;
    u->verified = u->role_pending = 0;
    resp_reset(&u->rp);
    u->scanned = 0;
    if (u->pushes) evbuffer_drain(u->pushes, evbuffer_get_length(u->pushes));

    if (was_ready)
        snprintf(msg, sizeof(msg),
                 "-ERR upstream connection lost before the reply, the command may or may not "
                 "have run (%s)\r\n",
                 u->why);
    else
        snprintf(msg, sizeof(msg), "-ERR upstream unavailable (%s)\r\n", u->why);
    if (is_pinned(u)) {
        /* The owner lets go first (its session ends), then its requests get errors. */
        if (u->owner) w->ops->pin_lost(u->owner, u->why);
        up_pin_let_go(u, msg);
        return;
    }
    up_fail_inflight(u, msg);
    if (was_ready) {
        log_warn("upstream %s: connection lost, reconnecting now", u->why);
        u->backoff_ms = 0;
        /* The master's other connections may be dead too, their EOF not read yet:
         * a write sent there would fail as well. They carry writes again once a
         * ROLE goes round (one round trip if the master is fine). */
        if (w->topo && u->node == w->topo->master) {
            if (had_inflight) outage_begin(w); /* writes failed */
            up_reverify_node(w, u->node);
        }
    } else {
        if (u->backoff_ms == 0)
            log_warn("upstream %s: connect failed, retrying with backoff", u->why);
        u->backoff_ms = u->backoff_ms ? u->backoff_ms * 2 : UP_BACKOFF_MIN_MS;
        if (u->backoff_ms > UP_BACKOFF_MAX_MS) u->backoff_ms = UP_BACKOFF_MAX_MS;
    }
    up_note_master(w);
    up_arm_timer(u, u->backoff_ms);
}

/* The reply to respgate's AUTH or HELLO. Refused: the connection fails like a
 * failed connect, so it backs off instead of retrying in a loop (a RESP2 connection
 * does without HELLO: it only tells the server's version). Returns 1 if so. */
static int setup_refused(struct upconn *u, struct req *r, struct evbuffer *in, size_t len)
{
    char text[512];
    size_t n = evbuffer_copyout(in, text, len < sizeof(text) - 1 ? len : sizeof(text) - 1);
    int hello = r->hello;
    evbuffer_drain(in, len);
    req_put(u->w->reqs, r);
    text[n] = '\0';
    if (n && text[0] != '-') {
        if (hello && (!u->w->topo || u->node == u->w->topo->master)) /* not a replica's */
            info_hello_version(text, n, u->w->redis_version, sizeof(u->w->redis_version));
        return 0;
    }
    if (hello && u->proto == 2) return 0;
    text[strcspn(text, "\r\n")] = '\0';
    if (hello)
        log_error("upstream %s: HELLO 3 refused: %s (RESP3 needs Redis 6 or later)", node_name(u),
                  text + 1);
    else
        log_error("upstream %s: AUTH refused: %s (check upstream.username/password)", node_name(u),
                  text + 1);
    u->state = UP_CONNECTING;
    up_failed(u, hello ? "HELLO 3 refused" : "AUTH refused");
    return 1;
}

/* The reply to respgate's CLIENT ID on a connection of a client's own. */
static void conn_id_answered(struct upconn *u, struct req *r, struct evbuffer *in, size_t len)
{
    char text[32];
    size_t n = evbuffer_copyout(in, text, len < sizeof(text) - 1 ? len : sizeof(text) - 1);
    evbuffer_drain(in, len);
    req_put(u->w->reqs, r);
    text[n] = '\0';
    if (text[0] != ':') return;
    u->redis_id = strtoull(text + 1, NULL, 10);
    if (u->owner) u->w->ops->identified(u->owner, u);
}

/* The reply to respgate's ROLE. Writes go only over connections where it said
 * master since the master last changed; a node the topology calls master that says
 * otherwise makes the control thread look again at once. */
static void role_answered(struct upconn *u, struct req *r, struct evbuffer *in, size_t len)
{
    static const char master[] = "*3\r\n$6\r\nmaster\r\n";
    char head[sizeof(master) - 1];
    struct worker *w = u->w;
    u->verified = len > sizeof(head) && evbuffer_copyout(in, head, sizeof(head)) == sizeof(head) &&
                  memcmp(head, master, sizeof(head)) == 0;
    u->role_pending = 0;
    evbuffer_drain(in, len);
    req_put(w->reqs, r);
    if (!w->topo || w->topo->master != u->node) return;
    up_note_master(w);
    if (u->verified) {
        w->ops->master_ready(w);
        /* Writes can be served again; with none waiting, no write will say so. */
        if (w->outage_since && !w->nheld && !w->nresend) outage_over(w);
    } else {
        log_warn("upstream %s: ROLE says it is not a master; holding writes and looking again",
                 node_name(u));
        probe_refresh(w->shared->probe);
    }
}

/* An error reply saying the node is not (or not yet) what the topology makes it: a
 * replica refusing a write, a replica whose master is down, a node loading. */
static int refused_by_role(struct upconn *u, struct evbuffer *in, size_t len)
{
    char head[12];
    size_t n = evbuffer_copyout(in, head, len < sizeof(head) ? len : sizeof(head));
    int readonly = n >= 10 && memcmp(head, "-READONLY ", 10) == 0;
    if (!readonly && !(n >= 12 && memcmp(head, "-MASTERDOWN ", 12) == 0) &&
        !(n >= 9 && memcmp(head, "-LOADING ", 9) == 0))
        return 0;
    struct worker *w = u->w;
    /* A session's connection is never verified itself: it counts while the node's
     * shared ones still are. */
    if (readonly && w->topo && w->topo->master == u->node &&
        (u->verified || (is_pinned(u) && upstream_master_ok(w)))) {
        log_warn("upstream %s: refused a write as a replica; holding writes and looking again",
                 node_name(u));
        /* Each connection proves itself again: once ROLE says master (the probe
         * catching up, or a manual switch back), writes flow again. Sessions wait
         * for that too; idle session connections there are not reused. */
        up_reverify_node(w, u->node);
        struct upconn *idle;
        while ((idle = TAILQ_FIRST(&w->pools[u->node].idle)))
            upstream_pin_close(&idle, "the node refused a write as a replica");
        up_note_master(w);
        probe_refresh(w->shared->probe);
    }
    return 1;
}

/* EVALSHA_RO or FCALL_RO on a replica whose script cache or functions lack what the
 * master has (SCRIPT LOAD went to the master; a new replica): the master answers. */
static int lacks_script(const struct upconn *u, const struct req *r, struct evbuffer *in,
                        size_t len)
{
    static const char noscript[] = "-NOSCRIPT ", nofunction[] = "-ERR Function not found";
    char head[sizeof(nofunction) - 1];
    /* From the master (once sent there, or a read that went there), the client's. */
    if (!r->replica_read || r->master_only || (u->w->topo && u->node == u->w->topo->master))
        return 0;
    size_t n = evbuffer_copyout(in, head, len < sizeof(head) ? len : sizeof(head));
    return (n >= sizeof(noscript) - 1 && memcmp(head, noscript, sizeof(noscript) - 1) == 0) ||
           (n == sizeof(head) && memcmp(head, nofunction, sizeof(head)) == 0);
}

/* A push Redis sent ahead of a reply (DEBUG PROTOCOL push; tracking and pub/sub
 * have tunnels of their own) belongs to the request that reply answers: kept, and
 * delivered with it. Without a client's request waiting, it is dropped. Returns 0 if
 * the connection failed. */
static int keep_push(struct upconn *u, const struct req *r, struct evbuffer *in, size_t len)
{
    if (!r || !r->client || r->auth || r->role || r->hello) {
        log_warn("upstream %s: a push message with no client's request to go with, dropped",
                 node_name(u));
        evbuffer_drain(in, len);
        return 1;
    }
    if (!u->pushes && !(u->pushes = evbuffer_new())) {
        up_failed(u, "out of memory");
        return 0;
    }
    evbuffer_remove_buffer(in, u->pushes, len);
    return 1;
}

static void restored(struct upconn *u)
{
    if (u->backoff_ms) log_info("upstream %s: connection restored", node_name(u));
    u->backoff_ms = 0;
}

/* Reads every complete reply; each goes up through w->ops, which only records it
 * (a reply fills its request and wakes its client). The connection cannot be freed
 * before this returns, but it may be let go or fail: then the loop stops. */
static void up_readcb(void *arg)
{
    struct upconn *u = arg;
    struct worker *w = u->w;
    w->now_ns = topo_now_ns(); /* one clock read for all the replies read now */

    while (u->sock && !u->dead) {
        struct evbuffer *in = sock_input(u->sock);
        /* A tunnel relays bytes as they are, once respgate's own AUTH is answered;
         * a pub/sub one message by message, to see when the last subscription ends. */
        if (u->kind == UP_TUNNEL && TAILQ_EMPTY(&u->inflight) && !u->frame_tunnel) {
            if (evbuffer_get_length(in)) {
                u->got_data = 1;
                w->ops->tunnel(u->owner, in, 0, 0);
            }
            return;
        }
        if (up_take_runs(u, in)) {
            if (!evbuffer_get_length(in)) return; /* all taken: nothing to frame */
            continue;
        }
        int rc = frame_next(&u->rp, in, &u->scanned);
        if (rc == RESP_MORE) return;
        if (rc == RESP_EPROTO) {
            log_error("upstream %s: malformed reply (%s), closing the connection", node_name(u),
                      u->rp.err);
            up_failed(u, "malformed reply");
            return;
        }
        size_t len = u->rp.len;
        char type = u->rp.type;
        resp_reset(&u->rp);
        if (!u->replied) {
            u->replied = 1;
            restored(u);
            up_pool_keep_tls_session(u);
        }
        u->scanned = 0;
        if (u->kind == UP_TUNNEL && TAILQ_EMPTY(&u->inflight)) {
            u->got_data = 1;
            if (w->ops->tunnel(u->owner, in, len, 1)) return;
            continue;
        }
        struct req *r = TAILQ_FIRST(&u->inflight);
        if (type == '>') { /* RESP3 push: it goes out just ahead of the next reply */
            if (!keep_push(u, r, in, len)) return;
            continue;
        }
        if (!r) {
            log_error("upstream %s: a reply with no request waiting for it, closing the connection",
                      node_name(u));
            up_failed(u, "unexpected reply");
            return;
        }
        up_unqueue(u, r);
        r->up = NULL;
        if (r->auth || r->hello) {
            if (setup_refused(u, r, in, len)) return;
            continue;
        }
        if (r->role) {
            role_answered(u, r, in, len);
            continue;
        }
        if (r->conn_id) {
            conn_id_answered(u, r, in, len);
            continue;
        }
        if (r->durable_wait) {
            up_durable_answered(u, r, in, len);
            continue;
        }
        /* Every error reply is looked at: a node that refuses because of its role is
         * verified again whether or not the request can be sent again. */
        int again = type == '-' && r->copy && r->client && refused_by_role(u, in, len);
        if (!again && type == '-' && r->copy && r->client && lacks_script(u, r, in, len))
            again = r->master_only = 1;
        if (again && w->ops->refused(w, r, in, len)) {
            if (u->pushes) /* they went with a request that is to run again */
                evbuffer_drain(u->pushes, evbuffer_get_length(u->pushes));
            continue;
        }
        if (u->pushes && evbuffer_get_length(u->pushes)) { /* ahead of the reply they came before */
            evbuffer_remove_buffer(in, u->pushes, len);
            in = u->pushes;
            len = evbuffer_get_length(in);
        }
        if (r->fenced_ns && w->now_ns - r->fenced_ns > FENCE_GRACE_NS) r->instead = fenced_reply;
        /* The first write to succeed after writes failed or waited ends the outage
         * this worker saw: that span is the RTO its clients lived through. */
        if (r->write && !r->instead && type != '-' && w->outage_since &&
            r->sent_ns >= w->outage_since)
            outage_over(w);
        if (up_durable_hold(u, r, type, in, len)) continue;
        w->ops->reply(w, r, in, len);
    }
}

static void up_writecb(void *arg)
{
    struct upconn *u = arg;
    if (u->nwaiting && !u->dead) u->w->ops->drained(u);
}

static void up_connectedcb(void *arg)
{
    struct upconn *u = arg;
    evtimer_del(u->timer);
    set_sockopts(u->sock);
    u->state = UP_READY;
    if (!sock_is_tls(u->sock)) restored(u); /* TLS: once Redis has answered (up_failed) */
}

static void up_closecb(void *arg, int err)
{
    struct upconn *u = arg;
    const char *tls = sock_tls_error(u->sock);
    up_failed(u, tls ? tls : err ? strerror(err) : "connection closed by the server");
}

static const struct sock_handlers up_handlers = {
    .on_read = up_readcb,
    .on_drained = up_writecb,
    .on_connected = up_connectedcb,
    .on_close = up_closecb,
};

/* A fenced write still unanswered after the grace: whatever the old master says
 * later will be an error (up_readcb), so its clients need not wait for it (a frozen
 * master may never answer). Returns 1 if u failed; re-arms the timer while a fenced
 * write is within its grace (libevent may wake a timer a little early). */
static int fail_fenced(struct upconn *u)
{
    const struct req *r;
    int64_t first = 0;
    TAILQ_FOREACH(r, &u->inflight, uq)
    if (r->fenced_ns && (!first || r->fenced_ns < first)) first = r->fenced_ns;
    if (!first) return 0;
    if (u->w->now_ns - first > FENCE_GRACE_NS) {
        up_failed(u, "fenced as the old master, and its writes not answered in time");
        return 1;
    }
    up_arm_timer_soon(u, (int)((first + FENCE_GRACE_NS - u->w->now_ns) / 1000000) + 1);
    return 0;
}

static void up_timercb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct upconn *u = arg;
    u->w->now_ns = topo_now_ns();
    if (u->state == UP_CONNECTING)
        up_failed(u, u->sock ? "connect timeout" : u->err);
    else if (u->state == UP_DOWN)
        up_connect(u);
    else if (u->state == UP_READY && !fail_fenced(u))
        up_watch_lost(u); /* fails it, or looks again later */
}

/* A request of respgate's own on u: its reply is consumed here, no client waits. */
struct req *up_own_request(struct upconn *u)
{
    struct req *r = req_get(u->w->reqs);
    r->up = u;
    r->sent_ns = u->w->now_ns; /* not stalled from the start */
    TAILQ_INSERT_TAIL(&u->inflight, r, uq);
    u->w->outstanding[u->node]++;
    return r;
}

void up_send_role(struct upconn *u)
{
    static const char role[] = "*1\r\n$4\r\nROLE\r\n";
    evbuffer_add(sock_output(u->sock), role, sizeof(role) - 1);
    up_own_request(u)->role = 1;
    u->role_pending = 1;
    sock_flush(u->sock);
}

/* AUTH goes first on every connection; its reply is consumed here. */
static void send_auth(struct upconn *u)
{
    const struct config *cfg = u->w->cfg;
    const char *user = cfg->upstream.username, *pass = cfg->upstream.password;
    struct evbuffer *out = sock_output(u->sock);
    evbuffer_add_printf(out, "*%d\r\n$4\r\nAUTH\r\n", user ? 3 : 2);
    if (user) evbuffer_add_printf(out, "$%zu\r\n%s\r\n", strlen(user), user);
    evbuffer_add_printf(out, "$%zu\r\n%s\r\n", strlen(pass), pass);
    up_own_request(u)->auth = 1;
    sock_flush(u->sock);
}

/* HELLO after AUTH: the connection speaks the RESP version of the clients it serves,
 * and the reply tells the server's version (for the HELLO respgate answers). */
static void send_hello(struct upconn *u)
{
    evbuffer_add_printf(sock_output(u->sock), "*2\r\n$5\r\nHELLO\r\n$1\r\n%d\r\n", u->proto);
    up_own_request(u)->hello = 1;
    sock_flush(u->sock);
}

void up_connect(struct upconn *u)
{
    struct worker *w = u->w;
    const struct pool *p = &w->pools[u->node];
    int err = EADDRNOTAVAIL;

    u->state = UP_CONNECTING;
    u->replied = 0;
    u->id = ++w->next_conn_id;
    u->sock = p->salen ? sock_connect(w->io, (const struct sockaddr *)&p->sa, p->salen,
                                      &up_handlers, u, &err)
                       : NULL;
    if (!u->sock) {
        snprintf(u->err, sizeof(u->err), "connect: %s",
                 p->salen ? strerror(err) : "the address did not resolve");
        up_arm_timer(u, 0); /* fail from the loop, not from inside our caller */
        return;
    }
    if (up_pool_start_tls(u)) {
        sock_destroy(&u->sock);
        snprintf(u->err, sizeof(u->err), "connect: cannot start TLS");
        up_arm_timer(u, 0);
        return;
    }
    up_arm_timer(u, w->cfg->upstream.connect_timeout_ms);
    u->lazy = 0;
    if (w->cfg->upstream.password) send_auth(u);
    /* A connection of one client's own speaks RESP2 without being told, and a reply
     * pending ahead of its first command would make SCRIPT DEBUG refuse to run. */
    if (u->proto == 3 || u->kind == UP_SHARED) send_hello(u);
    if (u->kind == UP_SHARED) up_send_role(u); /* pins are opened to a verified master only */
}

int up_init(struct upconn *u, struct worker *w, int node, enum up_kind kind, struct client *owner,
            int proto)
{
    memset(u, 0, sizeof(*u));
    u->w = w;
    u->node = node;
    u->kind = kind;
    u->proto = proto;
    u->owner = owner;
    u->state = UP_DOWN;
    TAILQ_INIT(&u->inflight);
    TAILQ_INIT(&u->held);
    resp_init(&u->rp, RESP_REPLY, LLONG_MAX);
    snprintf(u->why, sizeof(u->why), "%s: not connected yet", node_name(u));
    u->timer = evtimer_new(w->base, up_timercb, u);
    return u->timer ? 0 : -1;
}

void up_deinit(struct upconn *u)
{
    up_fail_inflight(u, "-ERR respgate is shutting down\r\n"); /* only orphans at shutdown */
    sock_destroy(&u->sock);
    if (u->timer) event_free(u->timer);
    if (u->pushes) evbuffer_free(u->pushes);
    u->pushes = NULL;
    resp_deinit(&u->rp);
    u->timer = NULL;
}

int upstream_stalled(const struct upconn *u)
{
    const struct req *head = TAILQ_FIRST(&u->inflight);
    return head && u->w->now_ns - head->sent_ns > UP_STALL_NS;
}

void upstream_free(struct upconn *u)
{
    up_deinit(u);
    free(u);
}

void upstream_send(struct upconn *u, struct req *r, struct evbuffer *src, const char *data,
                   size_t len)
{
    if (u->sock) {
        struct evbuffer *out = sock_output(u->sock);
        if (src)
            evbuffer_remove_buffer(src, out, len);
        else
            evbuffer_add(out, data, len);
        sock_flush(u->sock);
    } else if (src) {             /* a pinned connection whose connect failed at once: its timer */
        evbuffer_drain(src, len); /* fails it from the loop, answering r */
    }
    if (r) {
        r->up = u;
        r->node = u->node;
        r->sent_ns = u->w->now_ns;
        r->timed = u->kind == UP_SHARED && !r->auth && !r->role && !r->hello && !r->conn_id &&
                   !r->durable_wait;
        TAILQ_INSERT_TAIL(&u->inflight, r, uq);
        u->w->outstanding[u->node]++;
        u->scripts += r->script;
        if (r->durable) up_durable_sent(u);
    }
}

size_t upstream_output_len(const struct upconn *u)
{
    return u->sock ? evbuffer_get_length(sock_output(u->sock)) : 0;
}

void upstream_pause_reading(struct upconn *u, int paused)
{
    if (u->sock) sock_read(u->sock, !paused);
}
