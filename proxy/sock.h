/* sock: a non-blocking TCP connection with an input and an output evbuffer, run
 * by one worker's event loop. Unlike a bufferevent it does not arm a write event
 * for every reply: the worker writes every connection that has output once, at the
 * end of each loop pass (as Redis does before it sleeps), and arms a write event
 * only when the kernel did not take everything. Reads use plain recv() without
 * FIONREAD. A round trip costs two system calls instead of five. */
#ifndef RG_SOCK_H
#define RG_SOCK_H

#include <event2/buffer.h>
#include <event2/event.h>
#include <sys/socket.h>

struct sock;
struct sock_loop;

/* Handlers run from the event loop. After calling one, sock.c never touches the
 * sock again, so a handler may destroy it (the data plane marks its owner instead,
 * and destroys it at the end of the pass). */
struct sock_handlers {
    void (*on_read)(void *ctx);           /* new bytes in the input */
    void (*on_drained)(void *ctx);        /* everything queued was written */
    void (*on_connected)(void *ctx);      /* sock_connect() (and TLS) done; must not destroy */
    void (*on_close)(void *ctx, int err); /* EOF (0), an errno, or ETIMEDOUT (read timeout) */
};

struct sock_loop *sock_loop_create(struct event_base *base);
void sock_loop_destroy(struct sock_loop **l);
struct event_base *sock_loop_base(const struct sock_loop *l);
/* fn runs after each pass of the loop, before the writes, and again after them
 * until it returns 0 and nothing was written: the worker's end of the pass. */
void sock_loop_set_pass_end(struct sock_loop *l, int (*fn)(void *arg), void *arg);
/* After a pass that wrote, poll for up to us microseconds without sleeping (0: never):
 * lower latency for a core's worth of CPU while traffic lasts. */
void sock_loop_set_busy_poll(struct sock_loop *l, int us);
/* Runs the loop until event_base_loopexit(): one pass, its end, then the writes it
 * queued. */
void sock_loop_run(struct sock_loop *l);

/* Takes ownership of an accepted socket. NULL on failure (fd is then closed). */
struct sock *sock_create(struct sock_loop *l, evutil_socket_t fd, const struct sock_handlers *h,
                         void *ctx);
/* Starts a non-blocking connect. NULL with *err set if it failed at once. */
struct sock *sock_connect(struct sock_loop *l, const struct sockaddr *sa, socklen_t salen,
                          const struct sock_handlers *h, void *ctx, int *err);
void sock_destroy(struct sock **s);

struct evbuffer *sock_input(struct sock *s);
struct evbuffer *sock_output(struct sock *s);
evutil_socket_t sock_fd(const struct sock *s);
/* Call after adding to the output: it is written at the end of this loop pass. */
void sock_flush(struct sock *s);
void sock_read(struct sock *s, int enable);
/* Reads what the kernel holds now (up to about max bytes) into the input, without
 * calling a handler. -1 on EOF or an error (the caller closes). */
int sock_fill(struct sock *s, size_t max);
/* on_close(ETIMEDOUT) in ms, whatever is read meanwhile; -1 if it cannot be armed. */
int sock_close_after(struct sock *s, int ms);
void sock_shutdown_write(struct sock *s);
/* The connection is TLS from now on, as the server side, with ssl_ctx (an SSL_CTX,
 * which the SSL object keeps its own reference to): the handshake runs inside the
 * first reads, and every byte after goes through OpenSSL. -1 if it cannot start. */
int sock_tls_accept(struct sock *s, void *ssl_ctx);
/* Right after sock_connect: the connection is TLS, as the client side. The
 * handshake starts once the connect completes, and on_connected waits for its end. server_name goes
 * out as SNI (unless it is an address); with verify, the server's chain must check against
 * ssl_ctx's CAs and its certificate must name server_name (a DNS name, or an IP address). -1 if it
 * cannot start. */
int sock_tls_connect(struct sock *s, void *ssl_ctx, const char *server_name, int verify);
/* Resumes session (an SSL_SESSION of the same ssl_ctx and server) if the server
 * agrees: no certificate exchange, no key signature. Call after sock_tls_connect. */
void sock_tls_resume(struct sock *s, void *session);
/* The session to resume next time (a reference: SSL_SESSION_free it), once the
 * handshake is done and the server gave a resumable one, if the connection started
 * from ssl_ctx (a session is only resumed under the context that verified it). */
void *sock_tls_session(const struct sock *s, const void *ssl_ctx);
/* The same for any client SSL object (the backup thread's blocking one). */
int sock_tls_peer(void *ssl, const char *server_name, int verify);
int sock_is_tls(const struct sock *s);
/* Why the TLS session failed ("certificate verify failed: ..."), once on_close was
 * called for it; NULL if it did not fail in TLS. */
const char *sock_tls_error(const struct sock *s);

/* Handshakes on this loop's connections so far: n[side][0] completed, n[side][1 +
 * reason] failed. Sides: accepted (clients) and connected (Redis, Sentinel). */
enum sock_tls_side { SOCK_TLS_ACCEPTED = 0, SOCK_TLS_CONNECTED, SOCK_TLS_SIDES };
enum sock_tls_result {
    SOCK_TLS_OK = 0,
    SOCK_TLS_FAIL_CERTIFICATE, /* the peer's certificate was refused */
    SOCK_TLS_FAIL_PROTOCOL,    /* no common version or cipher, an alert, not TLS at all */
    SOCK_TLS_FAIL_CLOSED,      /* the peer closed or reset mid-handshake */
    SOCK_TLS_RESULTS
};
struct sock_tls_counts {
    unsigned long n[SOCK_TLS_SIDES][SOCK_TLS_RESULTS];
    unsigned long resumed[SOCK_TLS_SIDES]; /* of the completed, those that resumed a session */
};
void sock_loop_tls_counts(const struct sock_loop *l, struct sock_tls_counts *out);

#endif
