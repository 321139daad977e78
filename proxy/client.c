/* client: see client.h. Every buffer is bounded: a client that pipelines too much,
 * or reads too slowly, is simply not read until it catches up. The request path
 * here never runs from an upstream callback: those go through client_upstream_ops,
 * whose entries only fill reply slots, queue resends and wake clients. */
#include "client.h"
#include "dispatch.h"
#include "frame.h"
#include "hold.h"
#include "intercept.h"
#include "log.h"
#include "message.h"
#include "pass.h"
#include "replyq.h"
#include "session.h"
#include "upstream.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>

/* After a protocol error the reply gets out before the close: the input is read and
 * dropped for at most this long, and at most this much of it. */
#define LINGER_SECONDS 1
#define LINGER_MAX_BYTES (64 * 1024)
#define UNAUTH_PARTIAL_MS 10000 /* an unauthenticated request must arrive whole by then */

static void update_reading(struct client *c)
{
    int want = !(c->flags & C_NOREAD);
    if (want == c->reading) return;
    c->reading = want;
    sock_read(c->sock, want);
}

/* Closes c: everything that refers to it lets go now, the struct and its socket go
 * at the end of the pass. Replies still to come are dropped when they arrive. */
static void client_close(struct client *c)
{
    if (c->flags & C_DEAD) return;
    replyq_detach(c);
    if (c->flags & C_PAUSED_UP) {
        c->waiting->nwaiting--;
        c->flags &= ~(unsigned)C_PAUSED_UP;
    }
    hold_forget(c);
    session_end(c, "its client closed"); /* it may carry session state: never reused */
    pass_bury_client(c);
    c->reading = 0;
    sock_read(c->sock, 0);
}

void client_destroy(struct client *c)
{
    struct worker *w = c->w;
    TAILQ_REMOVE(&w->dead, c, ready);
    resp_deinit(&c->rp);
    free(c->name);
    free(c->user);
    if (sock_is_tls(c->sock))
        stats_set(&w->stats->tls_clients,
                  atomic_load_explicit(&w->stats->tls_clients, memory_order_relaxed) - 1);
    sock_destroy(&c->sock);
    TAILQ_REMOVE(&w->clients, c, link);
    w->nclients--;
    stats_set(&w->stats->clients, (uint64_t)w->nclients);
    atomic_fetch_sub(&w->shared->nclients, 1);
    free(c);
}

/* Closes a closing client once all its replies are written and no request of its
 * waits. Closing a socket with unread input makes the kernel send a reset, which
 * can destroy the error reply before the client reads it; so after a protocol error
 * we half-close and discard input until EOF or LINGER_SECONDS. */
static void maybe_finish(struct client *c)
{
    if (!(c->flags & C_CLOSING) || (c->flags & (C_DEAD | C_SHUT)) || c->npending || c->framed ||
        evbuffer_get_length(sock_output(c->sock)))
        return;
    if (c->flags & C_LINGER) {
        c->flags |= C_SHUT;
        sock_shutdown_write(c->sock);
        if (sock_close_after(c->sock, LINGER_SECONDS * 1000)) {
            client_close(c);
            return;
        }
        sock_read(c->sock, 1);
        c->reading = 1;
        return;
    }
    client_close(c);
}

/* Malformed input: the stream cannot be trusted past this point. Redis answers
 * with an error and closes; an HTTP request gets no answer at all. */
static void protocol_error(struct client *c, const char *what, enum stats_close why)
{
    log_debug("client: protocol error (%s), closing", what);
    stats_add(&c->w->stats->errors[STATS_ERR_PROTOCOL], 1);
    stats_add(&c->w->stats->closed[why], 1);
    if (c->rp.http) {
        client_close(c);
        return;
    }
    replyq_error(c, "-ERR Protocol error: %s\r\n", what);
    c->flags |= C_CLOSING | C_LINGER;
    evbuffer_drain(sock_input(c->sock), evbuffer_get_length(sock_input(c->sock)));
    message_next(c);
    update_reading(c);
    maybe_finish(c);
}

/* How much unparsed input the client may send: before it authenticated (when
 * respgate asks for AUTH), little more than an AUTH takes, as Redis does. */
static long long query_limit(const struct client *c)
{
    const struct config *cfg = c->w->cfg;
    if (!c->authed && intercept_auth_required(cfg) && cfg->limits.max_query_buffer_bytes > 65536)
        return 65536;
    return cfg->limits.max_query_buffer_bytes;
}

/* Frames and dispatches what the client has sent, as far as its limits allow. A
 * request framed before a pause or a drain is still dispatched: only new input
 * waits. */
static void client_process(struct client *c)
{
    struct evbuffer *in = sock_input(c->sock);
    while (!(c->flags & (C_WAIT_MASTER | C_WAIT_REPLIES | C_WAIT_READS | C_DEAD))) {
        if (!c->framed) {
            if (c->flags & C_NOREAD) break;
            int rc = frame_next(&c->rp, in, &c->scanned);
            if (rc == RESP_EPROTO) {
                protocol_error(c, c->rp.err, STATS_CLOSE_PROTOCOL);
                return;
            }
            if (rc == RESP_MORE) {
                if ((long long)evbuffer_get_length(in) > query_limit(c)) {
                    stats_add(&c->w->stats->errors[STATS_ERR_LIMIT], 1);
                    protocol_error(c, "query buffer limit exceeded", STATS_CLOSE_QUERY_LIMIT);
                    return;
                }
                break;
            }
            c->framed = 1;
        }
        dispatch(c);
    }
    if (c->flags & C_DEAD) return;
    update_reading(c);
    maybe_finish(c);
}

void client_resume(struct client *c)
{
    if (c->flags & C_OVERLIMIT) {
        log_warn("client id=%llu closed: %zu bytes of replies it has not read, over "
                 "limits.client_output_limit_bytes (%lld), or over "
                 "limits.client_output_soft_limit_bytes (%lld) for %d s",
                 c->id, c->stored + evbuffer_get_length(sock_output(c->sock)),
                 c->w->cfg->limits.client_output_limit_bytes,
                 c->w->cfg->limits.client_output_soft_limit_bytes,
                 c->w->cfg->limits.client_output_soft_seconds);
        stats_add(&c->w->stats->closed[STATS_CLOSE_OUTPUT_LIMIT], 1);
        client_close(c);
        return;
    }
    if (c->flags & C_KILLED) {
        stats_add(&c->w->stats->closed[STATS_CLOSE_KILLED], 1);
        client_close(c);
        return;
    }
    replyq_release(c);
    session_maybe_unpin(c);
    if ((c->flags & C_WAIT_REPLIES) && c->npending == 0) c->flags &= ~(unsigned)C_WAIT_REPLIES;
    if ((c->flags & C_WAIT_READS) && c->replica_reads == 0) c->flags &= ~(unsigned)C_WAIT_READS;
    if (c->flags & C_SHUT) return;
    client_process(c);
}

static void client_readcb(void *arg)
{
    struct client *c = arg;
    if (c->flags & C_DEAD) return;
    c->w->now_ns = topo_now_ns(); /* one clock read for all the requests read now */
    c->active_ns = c->w->now_ns;
    if (c->flags & C_SHUT) { /* lingering: the input means nothing any more */
        struct evbuffer *in = sock_input(c->sock);
        c->lingered += evbuffer_get_length(in);
        evbuffer_drain(in, evbuffer_get_length(in));
        if (c->lingered > LINGER_MAX_BYTES) client_close(c); /* still sending: enough */
        return;
    }
    client_process(c);
}

/* The output is written out. */
static void client_writecb(void *arg)
{
    struct client *c = arg;
    if (c->flags & C_DEAD) return;
    if (c->pin) upstream_pause_reading(c->pin, 0);
    if (c->flags & C_CLOSING) pass_wake(c); /* to close now that the replies are out */
}

static void client_closecb(void *arg, int err)
{
    (void)err; /* EOF, error or the linger timeout: either way the client is gone */
    client_close(arg);
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

/* Requests a client sent before the drain began are served: what the kernel holds
 * for it is read and dispatched first; then it is read no more, and closes once its
 * replies are out. */
void client_start_drain(struct worker *w)
{
    struct client *c;
    TAILQ_FOREACH(c, &w->clients, link)
    {
        if (c->flags & (C_DEAD | C_SHUT)) continue;
        if (sock_fill(c->sock, 1 << 20) < 0) {
            client_close(c);
            continue;
        }
        if (!(c->flags & C_NOREAD)) client_process(c);
        c->flags |= C_CLOSING; /* in-flight replies still go out */
        update_reading(c);
        pass_wake(c);
    }
}

void client_close_all(struct worker *w)
{
    struct client *c;
    TAILQ_FOREACH(c, &w->clients, link)
    client_close(c);
}

/* Once a second (worker.c): as Redis' clientsCron, clients idle past
 * limits.client_idle_timeout_ms are closed (not those in pub/sub or MONITOR, nor
 * those waiting for a reply: a blocked command is not idleness), and so is a client
 * that has not authenticated, when respgate asks for it, and keeps a request
 * unfinished for UNAUTH_PARTIAL_MS. */
void client_cron(struct worker *w)
{
    const long long idle = w->cfg->limits.client_idle_timeout_ms;
    const int auth = intercept_auth_required(w->cfg);
    int64_t now = topo_now_ns();
    struct client *c;
    TAILQ_FOREACH(c, &w->clients, link)
    {
        if (c->flags & (C_DEAD | C_SHUT)) continue;
        int64_t quiet = now - c->active_ns;
        int tunnel = c->pin && c->pin->kind == UP_TUNNEL;
        if (idle && !tunnel && !c->npending && !c->framed && quiet > idle * 1000000) {
            log_debug("client id=%llu closed: idle for %lld ms", c->id,
                      (long long)(quiet / 1000000));
            stats_add(&w->stats->closed[STATS_CLOSE_IDLE], 1);
            client_close(c);
        } else if (auth && !c->authed && evbuffer_get_length(sock_input(c->sock)) &&
                   quiet > UNAUTH_PARTIAL_MS * 1000000LL) {
            stats_add(&w->stats->closed[STATS_CLOSE_IDLE], 1);
            client_close(c);
        }
    }
}

/* The upstream side's reports (dataplane.h), each only recording. */

static void up_lost(struct worker *w, struct req *r, const char *msg)
{
    if (!hold_retry(w, r)) replyq_fail(w, r, msg);
}

static void up_drained(struct upconn *u)
{
    struct client *c;
    TAILQ_FOREACH(c, &u->w->clients, link)
    {
        if (!u->nwaiting) break;
        if (!(c->flags & C_PAUSED_UP) || c->waiting != u) continue;
        c->flags &= ~(unsigned)C_PAUSED_UP;
        u->nwaiting--;
        pass_wake(c);
    }
}

const struct upstream_ops client_upstream_ops = {
    .reply = replyq_fill,
    .reply_joins = replyq_joins,
    .reply_run = replyq_fill_run,
    .lost = up_lost,
    .refused = hold_redirect,
    .tunnel = session_tunnel,
    .pin_lost = session_pin_lost,
    .drained = up_drained,
    .master_ready = hold_release_all,
    .identified = session_identified,
};
void client_refuse(struct worker *w, evutil_socket_t fd)
{
    static const char full[] = "-ERR max number of clients reached\r\n";
    stats_add(&w->stats->errors[STATS_ERR_LIMIT], 1);
    ssize_t rc = send(fd, full, sizeof(full) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    /* What it already sent would turn the close into a reset, which can destroy
     * the error before it is read: read it away first, and say we are done. */
    shutdown(fd, SHUT_WR);
    char sink[4096];
    for (int i = 0; i < 64 && (rc = recv(fd, sink, sizeof(sink), MSG_DONTWAIT)) > 0; i++)
        ;
    evutil_closesocket(fd);
}

void client_accept(struct worker *w, evutil_socket_t fd, void *tls_ctx)
{
    int one = 1;

    int cap = w->cfg->limits.max_clients < w->fd_cap ? w->cfg->limits.max_clients : w->fd_cap;
    if (w->draining || atomic_fetch_add(&w->shared->nclients, 1) >= cap) {
        if (!w->draining) atomic_fetch_sub(&w->shared->nclients, 1);
        client_refuse(w, fd);
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
    if (tls_ctx && sock_tls_accept(c->sock, tls_ctx)) {
        sock_destroy(&c->sock);
        free(c);
        atomic_fetch_sub(&w->shared->nclients, 1);
        return;
    }
    if (tls_ctx) stats_add(&w->stats->tls_clients, 1);
    c->w = w;
    c->reading = 1;
    c->authed = !intercept_auth_required(w->cfg);
    c->id = atomic_fetch_add(&w->shared->next_client_id, 1) + 1;
    c->proto = 2;
    c->active_ns = c->created_ns = topo_now_ns();
    TAILQ_INIT(&c->pending);
    long long max_bulk = w->cfg->limits.max_query_buffer_bytes;
    resp_init(&c->rp, RESP_REQUEST,
              max_bulk < RESP_MAX_BULK_DEFAULT ? max_bulk : RESP_MAX_BULK_DEFAULT);
    TAILQ_INSERT_TAIL(&w->clients, c, link);
    w->nclients++;
    stats_add(&w->stats->clients_accepted, 1);
    stats_set(&w->stats->clients, (uint64_t)w->nclients);
}
