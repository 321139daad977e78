/* sock: see sock.h. */
#include "sock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#define SOCK_READ_MAX (64 * 1024)
#define TLS_RECORD_MAX (16 * 1024) /* the most one TLS record carries */

struct sock {
    struct sock_loop *loop;
    evutil_socket_t fd;
    struct event *rev, *wev;
    struct evbuffer *in, *out;
    const struct sock_handlers *h;
    void *ctx;
    TAILQ_ENTRY(sock) dirty;
    int queued; /* in the loop's dirty list */
    int connecting;
    int reading;            /* the owner wants input */
    int wpending;           /* the write event is armed: the kernel was full */
    struct event *deadline; /* sock_close_after: one-shot, not moved by reads */
    SSL *ssl;               /* TLS: every byte goes through it; NULL for plaintext */
    int tls_done;           /* the handshake completed */
    int read_wants_write;   /* SSL_read asked for the socket to be writable */
    int write_wants_read;   /* SSL_write asked for input first (mid-handshake) */
    char *tls_why;          /* why the TLS session failed, for the owner's log */
};

struct sock_loop {
    struct event_base *base;
    TAILQ_HEAD(, sock) dirty;
    struct sock_tls_counts tls; /* handshakes, for the owner's counters */
    int (*pass_end)(void *arg);
    void *pass_arg;
    long long busy_poll_ns; /* after a pass that wrote, poll without sleeping this long */
    char rbuf[SOCK_READ_MAX];
};

struct sock_loop *sock_loop_create(struct event_base *base)
{
    struct sock_loop *l = calloc(1, sizeof(*l));
    if (!l) return NULL;
    l->base = base;
    l->pass_end = NULL;
    TAILQ_INIT(&l->dirty);
    return l;
}

struct event_base *sock_loop_base(const struct sock_loop *l)
{
    return l->base;
}

void sock_loop_set_pass_end(struct sock_loop *l, int (*fn)(void *arg), void *arg)
{
    l->pass_end = fn;
    l->pass_arg = arg;
}

void sock_loop_set_busy_poll(struct sock_loop *l, int us)
{
    l->busy_poll_ns = (long long)us * 1000;
}

void sock_loop_destroy(struct sock_loop **lp)
{
    free(*lp);
    *lp = NULL;
}

static void arm_read(struct sock *s)
{
    if (s->connecting) return;
    if (s->reading)
        event_add(s->rev, NULL);
    else
        event_del(s->rev);
}

static int tls_side(const struct sock *s)
{
    return SSL_is_server(s->ssl) ? SOCK_TLS_ACCEPTED : SOCK_TLS_CONNECTED;
}

/* Keeps why the session failed, and counts a failed handshake by its reason. */
static void tls_failed(struct sock *s, int e)
{
    char why[256] = "";
    long v = SSL_get_verify_result(s->ssl);
    int reason = SOCK_TLS_FAIL_PROTOCOL;
    if (v != X509_V_OK && !s->tls_done) {
        snprintf(why, sizeof(why), "certificate verify failed: %s",
                 X509_verify_cert_error_string(v));
        reason = SOCK_TLS_FAIL_CERTIFICATE;
    } else if (e == SSL_ERROR_SSL && ERR_peek_last_error()) {
        unsigned long code = ERR_peek_last_error();
        ERR_error_string_n(code, why, sizeof(why));
        /* The peer refused ours: an alert about a certificate. */
        if (ERR_GET_REASON(code) >= SSL_R_SSLV3_ALERT_BAD_CERTIFICATE &&
            ERR_GET_REASON(code) <= SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN)
            reason = SOCK_TLS_FAIL_CERTIFICATE;
        else if (ERR_GET_REASON(code) == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED ||
                 ERR_GET_REASON(code) == SSL_R_TLSV1_ALERT_UNKNOWN_CA)
            reason = SOCK_TLS_FAIL_CERTIFICATE;
    } else if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN) {
        snprintf(why, sizeof(why), "the peer closed the connection%s",
                 s->tls_done ? "" : " during the TLS handshake");
        reason = SOCK_TLS_FAIL_CLOSED;
    }
    if (!s->tls_why && why[0]) s->tls_why = strdup(why);
    if (!s->tls_done) s->loop->tls.n[tls_side(s)][reason]++;
}

/* After an SSL call that failed: 0 to wait (for readability, or for writability
 * when *want_write is set), or an errno (EPROTO: the TLS session failed) that closes
 * the connection; ECONNRESET-like errors are EOF (-1). */
static int tls_wait(struct sock *s, int rc, int *want_write)
{
    int e = SSL_get_error(s->ssl, rc);
    *want_write = e == SSL_ERROR_WANT_WRITE;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
    if (!s->tls_done || e == SSL_ERROR_SSL) tls_failed(s, e);
    s->tls_done = 1;   /* counted once */
    ERR_clear_error(); /* the queue is per thread: the next connection's must be clean */
    if (e == SSL_ERROR_ZERO_RETURN) return -1;
    if (e == SSL_ERROR_SYSCALL) return errno ? errno : -1;
    return EPROTO;
}

static void tls_note_done(struct sock *s)
{
    if (!s->tls_done && SSL_is_init_finished(s->ssl)) {
        s->tls_done = 1;
        s->loop->tls.n[tls_side(s)][SOCK_TLS_OK]++;
        if (SSL_session_reused(s->ssl)) s->loop->tls.resumed[tls_side(s)]++;
        if (!SSL_is_server(s->ssl)) s->h->on_connected(s->ctx); /* must not destroy s */
    }
}

/* TLS: the output through SSL_write, a chunk at a time (OpenSSL takes partial
 * writes). 0 (what is left waits for the write event, or for input when OpenSSL
 * needs to read first), or an errno. */
static int tls_write(struct sock *s)
{
    if (!s->tls_done && !SSL_is_server(s->ssl) && !evbuffer_get_length(s->out)) {
        ERR_clear_error(); /* a client speaks first, with or without bytes of its own */
        int n = SSL_do_handshake(s->ssl);
        if (n == 1) {
            tls_note_done(s);
            return 0;
        }
        int want_write, rc = tls_wait(s, n, &want_write);
        if (rc) return rc < 0 ? EPIPE : rc;
        s->write_wants_read = !want_write;
        return 0;
    }
    size_t left;
    while ((left = evbuffer_get_length(s->out))) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(s->out, -1, NULL, &v, 1) < 1) break;
        /* Requests queued one by one leave many small chunks, and each SSL_write is a
         * record and a send(): gather up to a full record first. */
        size_t record = left < TLS_RECORD_MAX ? left : TLS_RECORD_MAX;
        if (v.iov_len < record) {
            if (!(v.iov_base = evbuffer_pullup(s->out, (ev_ssize_t)record))) return ENOMEM;
            v.iov_len = record;
        }
        ERR_clear_error();
        int n = SSL_write(s->ssl, v.iov_base, (int)(v.iov_len > (1 << 20) ? 1 << 20 : v.iov_len));
        if (n > 0) {
            evbuffer_drain(s->out, (size_t)n);
            tls_note_done(s);
            continue;
        }
        int want_write, rc = tls_wait(s, n, &want_write);
        if (rc) return rc < 0 ? EPIPE : rc;
        s->write_wants_read = !want_write; /* no write event then: it would spin */
        return 0;
    }
    return 0;
}

/* Writes what the kernel takes. Returns -1 if a handler ran (s may be gone). */
static int do_write(struct sock *s)
{
    if (s->ssl) {
        int rc = tls_write(s);
        if (rc) {
            s->h->on_close(s->ctx, rc);
            return -1;
        }
        if (s->write_wants_read) return 0; /* the next read flushes it again */
    }
    while (!s->ssl && evbuffer_get_length(s->out)) {
        int n = evbuffer_write(s->out, s->fd);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
            s->h->on_close(s->ctx, errno);
            return -1;
        }
        if (n == 0) break;
    }
    if (evbuffer_get_length(s->out)) {
        if (!s->wpending) event_add(s->wev, NULL);
        s->wpending = 1;
        return 0;
    }
    if (s->wpending) event_del(s->wev);
    s->wpending = 0;
    s->h->on_drained(s->ctx);
    return -1;
}

/* Writes every sock with new output once. Returns whether there were any. */
static int flush_dirty(struct sock_loop *l)
{
    struct sock *s;
    int any = 0;
    /* Handlers may queue more writes (or destroy socks): take one at a time. */
    while ((s = TAILQ_FIRST(&l->dirty))) {
        TAILQ_REMOVE(&l->dirty, s, dirty);
        s->queued = 0;
        any = 1;
        if (!s->wpending && !s->connecting) do_write(s);
    }
    return any;
}

static long long mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void sock_loop_run(struct sock_loop *l)
{
    long long wrote_at = 0; /* the last pass that wrote, while busy polling */
    while (!event_base_got_exit(l->base) && !event_base_got_break(l->base)) {
        /* Busy polling: a write is usually answered within microseconds (Redis' reply
         * to a forwarded request, a client's next request), and a thread that went to
         * sleep in epoll_wait takes a wake-up to see it: on a virtual machine that is
         * most of a hop's latency. */
        int flags = EVLOOP_ONCE;
        if (l->busy_poll_ns && mono_ns() - wrote_at < l->busy_poll_ns) {
            flags = EVLOOP_NONBLOCK;
            /* On cores shared with Redis or the clients, the process whose answer is
             * awaited may be waiting for this one's core: it goes first. */
            sched_yield();
        }
        if (event_base_loop(l->base, flags) < 0) break;
        /* The end of the pass, then the writes; a write's handler may leave more for
         * the end of the pass (a client closed, a paused one to resume). */
        for (;;) {
            int more = l->pass_end ? l->pass_end(l->pass_arg) : 0;
            int wrote = flush_dirty(l);
            if (wrote && l->busy_poll_ns) wrote_at = mono_ns();
            if (!wrote && !more) break;
        }
    }
}

/* TLS: everything OpenSSL can give now (it may hold decrypted bytes the socket no
 * longer shows as readable, so it is read until it wants more). 0, -1 on EOF, or an
 * errno. */
static int tls_read(struct sock *s, size_t max)
{
    size_t got = 0;
    while (got < max) {
        ERR_clear_error();
        int n = SSL_read(s->ssl, s->loop->rbuf, SOCK_READ_MAX);
        if (n > 0) {
            evbuffer_add(s->in, s->loop->rbuf, (size_t)n);
            got += (size_t)n;
            continue;
        }
        tls_note_done(s);
        int want_write, rc = tls_wait(s, n, &want_write);
        if (rc) return got && rc == -1 ? 0 : rc;  /* the bytes first; EOF on the next read */
        if (want_write && !s->read_wants_write) { /* the handshake's answer did not fit */
            s->read_wants_write = 1;
            event_add(s->wev, NULL);
        }
        return 0;
    }
    /* Stopped at max: the rest of a record OpenSSL holds would not wake the socket
     * (a paused reader gets it when sock_read resumes it). */
    if (s->reading && SSL_pending(s->ssl) > 0) event_active(s->rev, EV_READ, 0);
    return 0;
}

static void on_tls_readable(struct sock *s)
{
    size_t before = evbuffer_get_length(s->in);
    int rc = tls_read(s, 4 * SOCK_READ_MAX);
    if (s->write_wants_read && !rc) { /* what waited for this read goes out now */
        s->write_wants_read = 0;
        sock_flush(s);
    }
    if (evbuffer_get_length(s->in) > before) {
        s->h->on_read(s->ctx); /* it may destroy s */
        return;
    }
    if (rc) s->h->on_close(s->ctx, rc < 0 ? 0 : rc);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct sock *s = arg;
    if (s->ssl) {
        on_tls_readable(s);
        return;
    }
    ssize_t n = recv(fd, s->loop->rbuf, SOCK_READ_MAX, 0);
    if (n > 0) {
        evbuffer_add(s->in, s->loop->rbuf, (size_t)n);
        s->h->on_read(s->ctx);
    } else if (n == 0) {
        s->h->on_close(s->ctx, 0);
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        s->h->on_close(s->ctx, errno);
    }
}

int sock_fill(struct sock *s, size_t max)
{
    if (s->ssl) return tls_read(s, max) ? -1 : 0;
    size_t got = 0;
    while (got < max) {
        ssize_t n = recv(s->fd, s->loop->rbuf, SOCK_READ_MAX, MSG_DONTWAIT);
        if (n > 0) {
            evbuffer_add(s->in, s->loop->rbuf, (size_t)n);
            got += (size_t)n;
        } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            return -1;
        } else {
            break;
        }
    }
    return 0;
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct sock *s = arg;
    if (s->connecting) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
        if (err == EINPROGRESS) return;
        event_del(s->wev);
        if (err) {
            s->h->on_close(s->ctx, err);
            return;
        }
        s->connecting = 0;
        arm_read(s);
        if (!s->ssl) s->h->on_connected(s->ctx); /* TLS: once the handshake is done */
    }
    if (s->read_wants_write) { /* the handshake goes on: read again, now it can write */
        s->read_wants_write = 0;
        if (!s->wpending) event_del(s->wev);
        on_tls_readable(s);
        return;
    }
    /* The write event stays armed (EV_PERSIST) while output waits; do_write takes it
     * off once all is out. (Clearing wpending first left it armed on an empty
     * buffer: a worker spun on EPOLLOUT until the socket closed.) */
    do_write(s);
}

static struct sock *sock_new(struct sock_loop *l, evutil_socket_t fd, const struct sock_handlers *h,
                             void *ctx)
{
    struct sock *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->loop = l;
    s->fd = fd;
    s->h = h;
    s->ctx = ctx;
    s->reading = 1;
    s->rev = event_new(l->base, fd, EV_READ | EV_PERSIST, on_readable, s);
    s->wev = event_new(l->base, fd, EV_WRITE | EV_PERSIST, on_writable, s);
    s->in = evbuffer_new();
    s->out = evbuffer_new();
    if (!s->rev || !s->wev || !s->in || !s->out) {
        s->fd = -1; /* the caller closes it */
        sock_destroy(&s);
    }
    return s;
}

struct sock *sock_create(struct sock_loop *l, evutil_socket_t fd, const struct sock_handlers *h,
                         void *ctx)
{
    struct sock *s;
    if (evutil_make_socket_nonblocking(fd) < 0 || !(s = sock_new(l, fd, h, ctx))) {
        evutil_closesocket(fd);
        return NULL;
    }
    arm_read(s);
    return s;
}

struct sock *sock_connect(struct sock_loop *l, const struct sockaddr *sa, socklen_t salen,
                          const struct sock_handlers *h, void *ctx, int *err)
{
    evutil_socket_t fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = errno;
        return NULL;
    }
    if (connect(fd, sa, salen) < 0 && errno != EINPROGRESS) {
        *err = errno;
        close(fd);
        return NULL;
    }
    struct sock *s = sock_new(l, fd, h, ctx);
    if (!s) {
        *err = ENOMEM;
        close(fd);
        return NULL;
    }
    /* Completion, even an immediate one, is reported from the loop, never from here. */
    s->connecting = 1;
    event_add(s->wev, NULL);
    return s;
}

void sock_destroy(struct sock **sp)
{
    struct sock *s = *sp;
    if (!s) return;
    if (s->queued) TAILQ_REMOVE(&s->loop->dirty, s, dirty);
    if (s->rev) event_free(s->rev);
    if (s->wev) event_free(s->wev);
    if (s->deadline) event_free(s->deadline);
    if (s->ssl) SSL_free(s->ssl);
    free(s->tls_why);
    if (s->in) evbuffer_free(s->in);
    if (s->out) evbuffer_free(s->out);
    if (s->fd >= 0) close(s->fd);
    free(s);
    *sp = NULL;
}

struct evbuffer *sock_input(struct sock *s)
{
    return s->in;
}

struct evbuffer *sock_output(struct sock *s)
{
    return s->out;
}

evutil_socket_t sock_fd(const struct sock *s)
{
    return s->fd;
}

void sock_flush(struct sock *s)
{
    if (s->queued || s->wpending) return;
    s->queued = 1;
    TAILQ_INSERT_TAIL(&s->loop->dirty, s, dirty);
}

void sock_read(struct sock *s, int enable)
{
    if (s->reading == !!enable) return;
    s->reading = !!enable;
    arm_read(s);
    /* Bytes OpenSSL decrypted before the pause make the socket look idle: read them. */
    if (enable && s->ssl && SSL_pending(s->ssl) > 0) event_active(s->rev, EV_READ, 0);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sock *s = arg;
    s->h->on_close(s->ctx, ETIMEDOUT);
}

int sock_close_after(struct sock *s, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (!s->deadline && !(s->deadline = evtimer_new(s->loop->base, on_deadline, s))) return -1;
    return evtimer_add(s->deadline, &tv);
}

void sock_shutdown_write(struct sock *s)
{
    if (s->ssl && s->tls_done) {
        ERR_clear_error();
        SSL_shutdown(s->ssl); /* close_notify, if it fits now; never waits */
        ERR_clear_error();
    }
    shutdown(s->fd, SHUT_WR);
}

int sock_tls_accept(struct sock *s, void *ssl_ctx)
{
    if (!(s->ssl = SSL_new(ssl_ctx)) || SSL_set_fd(s->ssl, s->fd) != 1) {
        ERR_clear_error();
        return -1;
    }
    SSL_set_accept_state(s->ssl); /* the handshake runs inside the first reads */
    return 0;
}

static int is_address(const char *name)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

int sock_tls_peer(void *ssl_obj, const char *server_name, int verify)
{
    SSL *ssl = ssl_obj;
    int ip = is_address(server_name);
    SSL_set_connect_state(ssl);
    if (!ip && SSL_set_tlsext_host_name(ssl, server_name) != 1) return -1;
    if (!verify) return 0;
    X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    return (ip ? X509_VERIFY_PARAM_set1_ip_asc(param, server_name)
               : SSL_set1_host(ssl, server_name)) == 1
               ? 0
               : -1;
}

int sock_tls_connect(struct sock *s, void *ssl_ctx, const char *server_name, int verify)
{
    if (!(s->ssl = SSL_new(ssl_ctx)) || SSL_set_fd(s->ssl, s->fd) != 1 ||
        sock_tls_peer(s->ssl, server_name, verify)) {
        ERR_clear_error();
        return -1;
    }
    return 0;
}

void sock_tls_resume(struct sock *s, void *session)
{
    if (s->ssl && session) SSL_set_session(s->ssl, session);
}

void *sock_tls_session(const struct sock *s, const void *ssl_ctx)
{
    if (!s->ssl || !s->tls_done || !SSL_is_init_finished(s->ssl) ||
        SSL_get_SSL_CTX(s->ssl) != ssl_ctx)
        return NULL;
    /* A copy: OpenSSL marks a connection's own session unresumable when that
     * connection ends without close_notify, as a killed or reset one does. */
    SSL_SESSION *live = SSL_get0_session(s->ssl);
    return live && SSL_SESSION_is_resumable(live) ? SSL_SESSION_dup(live) : NULL;
}

const char *sock_tls_error(const struct sock *s)
{
    return s->tls_why;
}

int sock_is_tls(const struct sock *s)
{
    return s->ssl != NULL;
}

void sock_loop_tls_counts(const struct sock_loop *l, struct sock_tls_counts *out)
{
    *out = l->tls;
}
