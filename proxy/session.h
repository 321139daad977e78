/* session: clients on a connection of their own. Commands that leave state on a
 * connection (MULTI, WATCH, SELECT, blocking commands, AUTH...) pin the client to
 * a connection to the master for as long as the state lasts; its replies are framed
 * one per request into the client's reply queue, as on a shared connection.
 * Commands whose replies are not one per request (pub/sub, MONITOR, CLIENT REPLY)
 * turn it into a tunnel, relayed as it comes. A session starts only once the client's earlier
 * replies are back, so its order holds. */
#ifndef RG_SESSION_H
#define RG_SESSION_H

#include "dataplane.h"

/* Whether the framed command needs a tunnel (by its flags and subcommand). */
int session_needs_tunnel(const struct client *c, unsigned flags);
/* Whether a CLIENT subcommand keeps state on the connection. */
int session_client_sub_is_stateful(const char *sub);
/* The framed command starts a session (tunnel: a tunnel) on a pinned connection. */
void session_start(struct client *c, unsigned flags, int tunnel);
/* The framed command goes on the client's pinned connection (a session, or a tunnel
 * when the pin is one). */
void session_forward(struct client *c, unsigned flags);
/* A session that died with its connection must not go on silently elsewhere.
 * Returns 1 if the framed command was answered here. */
int session_lost(struct client *c);
/* A pinned connection goes back to the pool once the session state is gone and
 * every reply is in. */
void session_maybe_unpin(struct client *c);
/* The client lets go of its pinned connection (RESET, or the client closing). */
void session_end(struct client *c, const char *why);
/* The master moved away from node old: sessions pinned there end. */
void session_master_moved(struct worker *w, int old);
/* ops->pin_lost and ops->tunnel (see dataplane.h). */
void session_pin_lost(struct client *c, const char *why);
int session_tunnel(struct client *c, struct evbuffer *src, size_t len, int framed);
/* ops->identified: the client's own connection told its Redis id. */
void session_identified(struct client *c, struct upconn *u);
/* CLIENT SETNAME changed c->name: its session connection follows. */
void session_renamed(struct client *c);

#endif
