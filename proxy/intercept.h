/* intercept: commands answered or rewritten here rather than sent as they are
 * (AUTH, HELLO's AUTH, CLIENT about the client itself, WAIT, RESET), and the
 * checks dispatch makes before it routes (auth required, deny list). Each
 * intercept_* that returns int returns 1 if it answered or rewrote the framed
 * command, 0 if the command goes on as it is. */
#ifndef RG_INTERCEPT_H
#define RG_INTERCEPT_H

#include "command.h"
#include "dataplane.h"

/* Read per command, not once per connection: a reload may add or drop auth.* */
int intercept_auth_required(const struct config *cfg);
/* AUTH's user (NULL: default) and password against respgate's own: sets c->authed,
 * or answers WRONGPASS and returns 0. */
int intercept_credentials_ok(struct client *c, const char *user, size_t ulen, const char *pass,
                             size_t plen);
/* The NOAUTH error of a HELLO sent before authenticating. */
void intercept_noauth_hello(struct client *c);
/* respgate's own AUTH (answered here) and HELLO ... AUTH (checked here, forwarded
 * without it), when auth.* is configured. */
int intercept_auth(struct client *c);
/* WAIT where this client's writes went, its timeout capped on a shared connection. */
int intercept_wait(struct client *c);
/* CLIENT ID, GETNAME, SETNAME, INFO, SETINFO for the client's own view. */
/* CLIENT UNBLOCK, KILL ID, TRACKING REDIRECT name clients by respgate's ids: the
 * command is framed again with the Redis ids of their own connections, on any kind of
 * connection (a tunnel's too). Returns 1 if so. */
int intercept_client_ids(struct client *c);
int intercept_client(struct client *c);
/* RESET: the session ends, authentication is asked again. */
void intercept_reset(struct client *c);
/* (P|S)UNSUBSCRIBE outside pub/sub: what Redis answers a client subscribed to
 * nothing, one reply per channel named (one with a nil channel for none). Redis
 * sends as many replies as channels, so it must never go on a shared connection. */
void intercept_unsubscribe(struct client *c);
/* XREAD / XREADGROUP block only with BLOCK. */
int intercept_stream_read_blocks(struct client *c);
/* deny_commands: 1 if the framed command (ci from the table, or NULL) is refused. */
int intercept_denied(const struct client *c, const struct cmd_info *ci);

#endif
