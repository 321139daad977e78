/* rconn: see rconn.h. */
#include "rconn.h"

#include <hiredis/hiredis.h>

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes of one reply not yet complete: INFO and COMMAND are a few hundred KiB at
 * most; anything near this is not a Redis talking. */
#define RCONN_INPUT_MAX (64u << 20)

struct rconn_cb {
    struct rconn_cb *next;
    rconn_reply_fn fn;
    void *arg;
};

struct rconn {
    struct sock *sock;
    redisReader *reader;
    struct rconn_cb *head, *tail; /* waiting for their replies, oldest first */
    struct rconn_cb *sub;         /* subscribed: gets every reply from now on */
    rconn_down_fn down;
    void *ctx;
    int connected;
    int busy;    /* inside a callback of ours: freeing waits for it to return */
    int closing; /* rconn_close() asked, or the connection failed */
    char why[160];
};

static void destroy(struct rconn *rc)
{
    sock_destroy(&rc->sock);
    redisReaderFree(rc->reader);
    free(rc->sub);
    free(rc);
}

/* Every pending callback gets NULL; then, if the connection failed rather than being
 * closed by its owner, the down handler. */
static void finish(struct rconn *rc, int failed)
{
    sock_destroy(&rc->sock); /* nothing more comes in while the callbacks run */
    rc->busy++;
    struct rconn_cb *cb;
    while ((cb = rc->head)) {
        rc->head = cb->next;
        if (cb->fn) cb->fn(rc, NULL, cb->arg);
        free(cb);
    }
    rc->tail = NULL;
    if (rc->sub && rc->sub->fn) rc->sub->fn(rc, NULL, rc->sub->arg);
    if (failed && rc->down) rc->down(rc, rc->ctx, rc->why);
    destroy(rc);
}

static void fail(struct rconn *rc, const char *why)
{
    if (rc->closing) return;
    snprintf(rc->why, sizeof(rc->why), "%s", why);
    rc->closing = 2;
    if (!rc->busy) finish(rc, 1); /* else once the callback running returns */
}

/* Hands each complete reply to its callback: the oldest command's, or, once those
 * are answered, the subscription's. */
static void dispatch(struct rconn *rc)
{
    rc->busy++; /* fail() and rconn_close() only mark it from here on */
    while (!rc->closing) {
        void *reply = NULL;
        if (redisReaderGetReply(rc->reader, &reply) != REDIS_OK) {
            fail(rc, "protocol error in the reply");
            break;
        }
        if (!reply) break;
        struct rconn_cb *cb = rc->head;
        if (cb) {
            rc->head = cb->next;
            if (!rc->head) rc->tail = NULL;
        } else {
            cb = rc->sub;
        }
        if (cb && cb->fn) cb->fn(rc, reply, cb->arg);
        freeReplyObject(reply);
        if (!cb) fail(rc, "a reply to no command");
        if (cb != rc->sub) free(cb);
    }
    if (--rc->busy == 0 && rc->closing) finish(rc, rc->closing == 2);
}

static void on_read(void *arg)
{
    struct rconn *rc = arg;
    struct evbuffer *in = sock_input(rc->sock);
    struct evbuffer_iovec v[8];
    int n;
    while ((n = evbuffer_peek(in, -1, NULL, v, 8)) > 0) {
        size_t took = 0;
        for (int i = 0; i < n && i < 8; i++) {
            if (redisReaderFeed(rc->reader, v[i].iov_base, v[i].iov_len) != REDIS_OK) {
                fail(rc, "out of memory reading a reply");
                return;
            }
            took += v[i].iov_len;
        }
        evbuffer_drain(in, took);
    }
    if (rc->reader->len - rc->reader->pos > RCONN_INPUT_MAX) {
        fail(rc, "a reply larger than 64 MiB");
        return;
    }
    dispatch(rc);
}

static void on_drained(void *arg)
{
    (void)arg;
}

static void on_connected(void *arg)
{
    ((struct rconn *)arg)->connected = 1;
}

static void on_close(void *arg, int err)
{
    struct rconn *rc = arg;
    const char *tls = sock_tls_error(rc->sock);
    fail(rc, tls ? tls : err ? strerror(err) : "connection closed by the server");
}

static const struct sock_handlers handlers = {
    .on_read = on_read,
    .on_drained = on_drained,
    .on_connected = on_connected,
    .on_close = on_close,
};

struct rconn *rconn_open(struct sock_loop *l, const struct config_addr *addr,
                         const struct config_tls_out *tls, rconn_down_fn down, void *ctx, char *err,
                         size_t errlen)
{
    char port[8];
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    snprintf(port, sizeof(port), "%d", addr->port);
    int rc_gai = getaddrinfo(addr->host, port, &hints, &ai);
    if (rc_gai != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", addr->host, gai_strerror(rc_gai));
        return NULL;
    }
    struct rconn *rc = calloc(1, sizeof(*rc));
    int e = ENOMEM;
    if (rc && (rc->reader = redisReaderCreate()))
        rc->sock = sock_connect(l, ai->ai_addr, ai->ai_addrlen, &handlers, rc, &e);
    freeaddrinfo(ai);
    if (!rc || !rc->sock) {
        snprintf(err, errlen, "connect: %s", strerror(e));
        if (rc) destroy(rc);
        return NULL;
    }
    if (tls && tls->enabled &&
        sock_tls_connect(rc->sock, tls->ctx, tls->server_name ? tls->server_name : addr->host,
                         tls->verify)) {
        snprintf(err, errlen, "cannot start TLS");
        destroy(rc);
        return NULL;
    }
    rc->down = down;
    rc->ctx = ctx;
    return rc;
}

static int queue(struct rconn *rc, rconn_reply_fn fn, void *arg, int subscribe, const char *fmt,
                 va_list ap)
{
    if (rc->closing || (rc->sub && !subscribe)) return -1;
    char *cmd = NULL;
    int len = redisvFormatCommand(&cmd, fmt, ap);
    struct rconn_cb *cb = len > 0 ? calloc(1, sizeof(*cb)) : NULL;
    if (!cb) {
        free(cmd);
        return -1;
    }
    evbuffer_add(sock_output(rc->sock), cmd, (size_t)len);
    free(cmd);
    sock_flush(rc->sock);
    cb->fn = fn;
    cb->arg = arg;
    if (subscribe) { /* its confirmation and every message after it */
        free(rc->sub);
        rc->sub = cb;
        return 0;
    }
    if (rc->tail)
        rc->tail->next = cb;
    else
        rc->head = cb;
    rc->tail = cb;
    return 0;
}

int rconn_command(struct rconn *rc, rconn_reply_fn fn, void *arg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc_q = queue(rc, fn, arg, 0, fmt, ap);
    va_end(ap);
    return rc_q;
}

int rconn_subscribe(struct rconn *rc, rconn_reply_fn fn, void *arg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc_q = queue(rc, fn, arg, 1, fmt, ap);
    va_end(ap);
    return rc_q;
}

int rconn_connected(const struct rconn *rc)
{
    return rc->connected;
}

void rconn_close(struct rconn **rcp)
{
    struct rconn *rc = *rcp;
    *rcp = NULL;
    if (!rc || rc->closing) return;
    rc->closing = 1;
    if (!rc->busy) finish(rc, 0);
}
