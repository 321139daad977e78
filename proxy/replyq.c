/* replyq: see replyq.h. */
#include "replyq.h"
#include "idmap.h"
#include "scan.h"
#include "pass.h"
#include "req.h"
#include "upstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct req *replyq_push(struct client *c, int write)
{
    struct req *r = req_get(c->w->reqs);
    r->client = c;
    r->write = write;
    c->writes_inflight += write;
    TAILQ_INSERT_TAIL(&c->pending, r, cq);
    c->npending++;
    if (++c->ninflight >= c->w->cfg->limits.max_pending_per_client) c->flags |= C_PAUSED_PENDING;
    return r;
}

/* Every kind of reply counts against client_output_limit_bytes: past it the client
 * is closed when it resumes (as Redis' client-output-buffer-limit), never paused,
 * so that a client that writes before it reads never deadlocks. */
static void check_limit(struct client *c)
{
    const struct config *cfg = c->w->cfg;
    long long have = (long long)(c->stored + evbuffer_get_length(sock_output(c->sock)));
    long long hard = cfg->limits.client_output_limit_bytes,
              soft = cfg->limits.client_output_soft_limit_bytes;
    int64_t now = c->w->now_ns;
    if (soft && have > soft) {
        if (!c->soft_since) c->soft_since = now;
    } else {
        c->soft_since = 0;
    }
    if ((hard && have > hard) ||
        (c->soft_since &&
         now - c->soft_since > (int64_t)cfg->limits.client_output_soft_seconds * 1000000000)) {
        c->flags |= C_OVERLIMIT;
        pass_wake(c);
    }
}

void replyq_check_limit(struct client *c)
{
    check_limit(c);
}

/* A tunnel has no reply slots: Redis' replies stream through as they come, so one
 * made here would overtake those still on their way (after HELLO 3, MONITOR, CLIENT
 * REPLY). Redis itself gives it back instead, in order, through a script that returns
 * it: honoured by CLIENT REPLY OFF, refused like any command in RESP2 pub/sub. */
static int tunnel_echo(struct client *c, const char *s, size_t n)
{
    static const char err[] = "return redis.error_reply(ARGV[1])",
                      ok[] = "return redis.status_reply(ARGV[1])";
    struct upconn *pin = c->pin;
    if (!pin || pin->kind != UP_TUNNEL || pin->dead || n < 3 || (s[0] != '-' && s[0] != '+'))
        return 0;
    const char *script = s[0] == '-' ? err : ok;
    size_t slen = strlen(script), mlen = n - 3; /* no type byte, no CRLF */
    char head[96];
    struct evbuffer *cmd = evbuffer_new();
    if (!cmd) return 0;
    int h = snprintf(head, sizeof(head), "*4\r\n$4\r\nEVAL\r\n$%zu\r\n", slen);
    evbuffer_add(cmd, head, (size_t)h);
    evbuffer_add(cmd, script, slen);
    h = snprintf(head, sizeof(head), "\r\n$1\r\n0\r\n$%zu\r\n", mlen);
    evbuffer_add(cmd, head, (size_t)h);
    evbuffer_add(cmd, s + 1, mlen);
    evbuffer_add(cmd, "\r\n", 2);
    upstream_send(pin, NULL, cmd, NULL, evbuffer_get_length(cmd));
    evbuffer_free(cmd);
    pin->frame_tunnel = 0; /* a reply pubsub.c cannot count: a tunnel for good */
    return 1;
}

void replyq_local(struct client *c, const char *s, size_t n)
{
    if (tunnel_echo(c, s, n)) return;
    if (TAILQ_EMPTY(&c->pending)) {
        evbuffer_add(sock_output(c->sock), s, n);
        sock_flush(c->sock);
        check_limit(c);
        return;
    }
    struct req *r = req_get(c->w->reqs);
    r->client = c;
    r->reply = evbuffer_new();
    r->done = 1;
    evbuffer_add(r->reply, s, n);
    TAILQ_INSERT_TAIL(&c->pending, r, cq);
    c->npending++;
    c->stored += n;
    check_limit(c);
}

void replyq_null(struct client *c)
{
    if (c->proto == 3)
        replyq_local(c, "_\r\n", 3);
    else
        replyq_local(c, "$-1\r\n", 5);
}

void replyq_error(struct client *c, const char *fmt, const char *arg)
{
    /* As Redis does when it rejects a command queued in a transaction: EXEC will
     * abort it, nothing in it runs. */
    if (c->session & S_MULTI) c->flags |= C_TX_DIRTY;
    char msg[512];
    int n = snprintf(msg, sizeof(msg), fmt, arg);
    if (n >= (int)sizeof(msg)) n = (int)sizeof(msg) - 1;
    replyq_local(c, msg, (size_t)n);
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

/* A write answered (or failed, so it may have run): the read-your-writes horizon
 * moves to now_ns, which must not be earlier than the moment Redis ran it (only
 * probes sent after it count). A read answered by a replica no longer holds the
 * client's writes back. */
static void answered(struct client *c, const struct req *r, int64_t now_ns)
{
    c->ninflight--;
    if (r->replica_read) c->replica_reads--;
    if (!r->write) return;
    c->writes_inflight--;
    c->horizon.write_done_ns = now_ns;
}

static int type_is_array(struct evbuffer *src)
{
    char t;
    return evbuffer_copyout(src, &t, 1) == 1 && t == '*';
}

/* CLIENT GETREDIR (":<id>") and TRACKINGINFO ("redirect" then ":<id>") name the
 * redirect target by Redis' id of its connection: the client it belongs to is named
 * by respgate's id instead, as CLIENT ID gave it. Returns the reply, rewritten into
 * *tmp when it changed (len updated), or src. */
static struct evbuffer *redirect_ids(struct client *c, struct evbuffer *src, size_t *len,
                                     struct evbuffer **tmp)
{
    static const char key[] = "$8\r\nredirect\r\n:";
    char buf[512];
    if (*len >= sizeof(buf) || evbuffer_copyout(src, buf, *len) != (ev_ssize_t)*len) return src;
    buf[*len] = '\0';
    char *at = buf[0] == ':' ? buf + 1 : strstr(buf, key);
    if (!at) return src;
    if (at != buf + 1) at += sizeof(key) - 1;
    char *end;
    unsigned long long redis_id = strtoull(at, &end, 10);
    unsigned long long id =
        at[0] != '-' && redis_id ? idmap_client_of(c->w->shared->ids, redis_id) : 0;
    if (!id || !(*tmp = evbuffer_new())) return src;
    evbuffer_add(*tmp, buf, (size_t)(at - buf));
    evbuffer_add_printf(*tmp, "%llu", id);
    evbuffer_add(*tmp, end, *len - (size_t)(end - buf));
    evbuffer_drain(src, *len);
    *len = evbuffer_get_length(*tmp);
    return *tmp;
}

void replyq_fill(struct worker *w, struct req *r, struct evbuffer *src, size_t len)
{
    struct evbuffer *tmp = NULL;
    struct client *c = r->client;
    if (r->timed) stats_observe(&w->stats->latency[r->node], w->now_ns - r->sent_ns);
    if (!c) { /* the client left: drop its reply */
        evbuffer_drain(src, len);
        req_put(w->reqs, r);
        return;
    }
    /* The pass's clock: read when the reply's bytes were already in, so after Redis
     * ran the write (a reply comes only through a read callback, which sets it). */
    answered(c, r, w->now_ns);
    if (r->scan && type_is_array(src)) scan_note(c, src, len, r->node);
    if (r->redirect) src = redirect_ids(c, src, &len, &tmp);
    if (r == TAILQ_FIRST(&c->pending)) { /* the common case: straight to the output */
        TAILQ_REMOVE(&c->pending, r, cq);
        c->npending--;
        take_reply(r, src, len, sock_output(c->sock));
        sock_flush(c->sock);
        req_put(w->reqs, r);
    } else { /* an earlier reply is still out: keep this one */
        r->reply = evbuffer_new();
        take_reply(r, src, len, r->reply);
        r->done = 1;
        c->stored += evbuffer_get_length(r->reply);
    }
    if (tmp) evbuffer_free(tmp);
    check_limit(c);
    pass_wake(c);
}

int replyq_joins(const struct req *r, const struct req *prev)
{
    const struct client *c = r->client;
    if (!c || r->redirect || r->scan) return 0;
    return prev ? prev->client == c && TAILQ_NEXT(prev, cq) == r : TAILQ_FIRST(&c->pending) == r;
}

void replyq_fill_run(struct worker *w, struct req *first, size_t count, struct evbuffer *src,
                     size_t len)
{
    struct client *c = first->client;
    for (size_t i = 0; i < count; i++) {
        struct req *r = TAILQ_FIRST(&c->pending); /* first, then the ones behind it */
        if (r->timed) stats_observe(&w->stats->latency[r->node], w->now_ns - r->sent_ns);
        answered(c, r, w->now_ns);
        TAILQ_REMOVE(&c->pending, r, cq);
        c->npending--;
        req_put(w->reqs, r);
    }
    evbuffer_remove_buffer(src, sock_output(c->sock), len);
    sock_flush(c->sock);
    check_limit(c);
    pass_wake(c);
}

void replyq_fail(struct worker *w, struct req *r, const char *msg)
{
    struct client *c = r->client;
    if (!c) {
        req_put(w->reqs, r);
        return;
    }
    stats_add(&w->stats->errors[STATS_ERR_UPSTREAM], 1);
    answered(c, r, topo_now_ns()); /* failures come from anywhere: a fresh clock */
    if (!r->reply) r->reply = evbuffer_new();
    evbuffer_add(r->reply, msg, strlen(msg));
    r->done = 1;
    c->stored += strlen(msg);
    check_limit(c);
    pass_wake(c);
}

void replyq_release(struct client *c)
{
    struct evbuffer *out = sock_output(c->sock);
    struct req *r;
    int any = 0;
    while ((r = TAILQ_FIRST(&c->pending)) && r->done) {
        TAILQ_REMOVE(&c->pending, r, cq);
        c->npending--;
        c->stored -= evbuffer_get_length(r->reply);
        evbuffer_add_buffer(out, r->reply);
        req_put(c->w->reqs, r);
        any = 1;
    }
    if (any) sock_flush(c->sock);
    if ((c->flags & C_PAUSED_PENDING) &&
        c->ninflight <= c->w->cfg->limits.max_pending_per_client / 2)
        c->flags &= ~(unsigned)C_PAUSED_PENDING;
}

void replyq_detach(struct client *c)
{
    struct req *r;
    while ((r = TAILQ_FIRST(&c->pending))) {
        TAILQ_REMOVE(&c->pending, r, cq);
        if (!r->done) { /* in an upstream's queue or the resend list: dropped from there */
            r->client = NULL;
            continue;
        }
        req_put(c->w->reqs, r);
    }
    c->npending = c->ninflight = 0;
    c->stored = 0;
}
