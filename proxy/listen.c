/* listen: see listen.h. */
#include "listen.h"
#include "client.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define LISTEN_BACKLOG 511
#define ACCEPT_RETRY_MS 100

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
    (void)l;
    (void)sa;
    (void)len;
    client_accept(arg, fd, NULL);
}

/* The TLS listener's clients: the handshake starts inside their first reads, with the
 * certificate of the config running now (a reload's new one for new clients). */
static void accept_tls_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                          int len, void *arg)
{
    (void)l;
    (void)sa;
    (void)len;
    struct worker *w = arg;
    client_accept(w, fd, w->cfg->tls.ctx);
}

static void accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker *w = arg;
    if (w->listener) evconnlistener_enable(w->listener);
    if (w->tls_listener) evconnlistener_enable(w->tls_listener);
}

/* Out of descriptors, the clients waiting in the backlog would wait there, or be
 * reset, without a word: the spare descriptor lets each in just long enough to
 * hear the max_clients error, as Redis says it. Returns how many were refused. */
static int refuse_backlog(struct worker *w, struct evconnlistener *l)
{
    int n = 0;
    evutil_socket_t fd;
    close(w->spare_fd);
    while (n < 64 && (fd = accept(evconnlistener_get_fd(l), NULL, NULL)) >= 0) {
        client_refuse(w, fd);
        n++;
    }
    w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (n && w->now_ns - w->refused_logged_ns > 1000000000LL) {
        log_warn("out of file descriptors: clients refused with 'max number of clients "
                 "reached' (raise the open-files limit, or lower limits.max_clients)");
        w->refused_logged_ns = w->now_ns;
    }
    return n;
}

/* Out of file descriptors, typically: refuse the waiting clients, then pause
 * accepting instead of spinning. */
static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    struct worker *w = arg;
    int err = EVUTIL_SOCKET_ERROR();
    w->now_ns = topo_now_ns();
    if (w->spare_fd < 0) w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC); /* taken back */
    if ((err == EMFILE || err == ENFILE) && w->spare_fd >= 0 && refuse_backlog(w, l)) return;
    log_warn("accept failed: %s; pausing accepts for %d ms", evutil_socket_error_to_string(err),
             ACCEPT_RETRY_MS);
    evconnlistener_disable(l);
    struct timeval tv = {0, ACCEPT_RETRY_MS * 1000};
    event_base_once(w->base, -1, EV_TIMEOUT, accept_resume_cb, w, &tv);
}

/* This worker's listener on ai (SO_REUSEPORT: the kernel spreads connections over
 * the workers). key names the config key in errors. */
static struct evconnlistener *listen_on(struct worker *w, evconnlistener_cb cb,
                                        const struct addrinfo *ai, const char *key,
                                        const struct config_addr *a, char *err, size_t errlen)
{
    struct evconnlistener *l = evconnlistener_new_bind(
        w->base, cb, w,
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT,
        LISTEN_BACKLOG, ai->ai_addr, (int)ai->ai_addrlen);
    if (!l)
        snprintf(err, errlen, "%s %s:%d: %s", key, a->host, a->port, strerror(errno));
    else
        evconnlistener_set_error_cb(l, accept_error_cb);
    return l;
}

int listen_open(struct worker *w, const struct addrinfo *ai, const struct addrinfo *tls_ai,
                char *err, size_t errlen)
{
    const struct config *cfg = w->cfg;
    w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (!(w->listener = listen_on(w, accept_cb, ai, "listen", &cfg->listen, err, errlen)))
        return -1;
    if (tls_ai && !(w->tls_listener = listen_on(w, accept_tls_cb, tls_ai, "tls.listen",
                                                &cfg->tls.listen, err, errlen)))
        return -1;
    return 0;
}

void listen_close(struct worker *w)
{
    if (w->listener) evconnlistener_free(w->listener);
    if (w->tls_listener) evconnlistener_free(w->tls_listener);
    w->listener = w->tls_listener = NULL;
    if (w->spare_fd >= 0) close(w->spare_fd);
    w->spare_fd = -1;
}
