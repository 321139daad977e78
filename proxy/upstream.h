/* upstream: a worker's connections to Redis, shared (pooled, pipelined, replies
 * matched FIFO) and pinned (one client's session, or a tunnel). It knows nothing
 * of clients: what happens on a connection goes up through w->ops. A pinned
 * connection that is let go is freed at the end of the loop pass (pass.h). */
#ifndef RG_UPSTREAM_H
#define RG_UPSTREAM_H

#include "dataplane.h"

int upstream_pool_init(struct worker *w);
/* At thread exit: every connection closed and freed. */
void upstream_pool_deinit(struct worker *w);
/* A shared connection to node speaking RESP proto (2 or 3) for a client whose current
 * one (may be NULL) is down or to another node; NULL if the node has no usable
 * connection. The first RESP3 request for a node opens its RESP3 connections. */
struct upconn *upstream_pick(struct worker *w, int node, struct upconn *current, int proto);
/* Like upstream_pick, for the master: only a connection that is up and whose ROLE
 * said master since the master last changed. NULL: hold the request. Both prefer a
 * connection that is not stalled, when current is NULL. */
struct upconn *upstream_pick_master(struct worker *w, int node, struct upconn *current, int proto);
/* A new topology (old may be NULL): pools for new nodes, and after a master change,
 * every connection is verified again before it carries a write. */
void upstream_topology_changed(struct worker *w, const struct topology *old,
                               const struct topology *t);
/* Whether u's oldest request has waited long enough to call u stalled. */
int upstream_stalled(const struct upconn *u);
/* The node stopped answering: close its connections so nothing waits on it. */
void upstream_node_lost(struct worker *w, int node);
/* Whether a connection to the master, of either protocol, is up and verified. */
int upstream_master_ok(struct worker *w);
/* Why node's connections are down, for error replies. */
const char *upstream_why(struct worker *w, int node);
const char *upstream_node_name(struct worker *w, int node);

/* A connection of its own to node for owner, in its RESP version: a clean idle one
 * if there is one (not for a tunnel), else a new one. NULL only when out of memory. */
struct upconn *upstream_pin_get(struct worker *w, int node, struct client *owner, int tunnel);
/* Learns u's Redis id (CLIENT ID, ahead of what is sent next); ops->identified says
 * when. Nothing if known already. */
void upstream_pin_identify(struct upconn *u);
/* A pinned connection whose session ended cleanly: kept for reuse, or let go. */
void upstream_pin_put(struct upconn **u);
/* Lets go of a pinned connection: what is in flight on it gets an error naming why;
 * the owner is not told (it let go). Freed at the end of the pass. */
void upstream_pin_close(struct upconn **u, const char *why);
/* Ends a pinned or tunnel connection as if it had dropped: its owner is told
 * (ops->pin_lost) and what is in flight on it gets an error naming why. */
void upstream_pin_abort(struct upconn *u, const char *why);
/* Frees a connection let go earlier in this pass (pass.h). */
void upstream_free(struct upconn *u);

/* Appends a request of len bytes taken from src (or copied from data when src is NULL)
 * and, when r is not NULL, takes r: it waits in u's in-flight queue for its reply, or
 * for the error that ends it if u cannot carry it (a connect that failed at once). */
void upstream_send(struct upconn *u, struct req *r, struct evbuffer *src, const char *data,
                   size_t len);
size_t upstream_output_len(const struct upconn *u);
/* End of the pass: one WAIT on every shared connection that carried durable writes in
 * it (durability.min_replicas, upstream_durable.c). */
void upstream_durable_flush(struct worker *w);
void upstream_pause_reading(struct upconn *u, int paused);

#endif
