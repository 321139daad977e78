/* rconn: one control-plane connection to a Redis or a Sentinel (INFO probes,
 * CONFIG SET, REPLICAOF, the Sentinel queries and their event subscription).
 * Commands go out in order and their replies come back, in order, to the callback
 * given with each, as hiredis trees. It runs on sock.c, so it speaks TLS exactly as
 * the data plane does (upstream.tls, regions[].sentinel.tls); hiredis is only used
 * for what needs no socket: formatting commands and reading replies.
 *
 * Lifetime, as with hiredis' async contexts: when the connection fails or drops,
 * every pending callback gets a NULL reply, then the down handler runs once, and
 * the rconn is freed when it returns. rconn_close() frees it at the owner's request
 * (pending callbacks get NULL, the down handler does not run); called from one of
 * its own callbacks, it only marks it and the rconn goes once the callback returns. */
#ifndef RG_RCONN_H
#define RG_RCONN_H

#include <stddef.h>

#include "config.h"
#include "sock.h"

struct rconn;
struct redisReply;

/* reply is NULL when the connection went before it came; it is freed after. */
typedef void (*rconn_reply_fn)(struct rconn *rc, struct redisReply *reply, void *arg);
/* The connection failed (never connected) or dropped; why says how. */
typedef void (*rconn_down_fn)(struct rconn *rc, void *ctx, const char *why);

/* Starts connecting to addr (resolved here, like hiredis: this blocks on DNS), over
 * TLS when tls is enabled. NULL with a message in err if it failed at once. */
struct rconn *rconn_open(struct sock_loop *l, const struct config_addr *addr,
                         const struct config_tls_out *tls, rconn_down_fn down, void *ctx, char *err,
                         size_t errlen);
/* Queues a command (printf-like, as redisCommand: each %s is one argument).
 * fn may be NULL (the reply is read and dropped). -1 if the rconn is closing. */
int rconn_command(struct rconn *rc, rconn_reply_fn fn, void *arg, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* As rconn_command, for SUBSCRIBE and PSUBSCRIBE: fn gets that reply and every
 * reply after it (the messages). */
int rconn_subscribe(struct rconn *rc, rconn_reply_fn fn, void *arg, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The TCP connection (and TLS handshake) completed. */
int rconn_connected(const struct rconn *rc);
void rconn_close(struct rconn **rcp);

#endif
