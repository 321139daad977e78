/* upstream_int: what upstream.c (connections) and upstream_pool.c (pools, picks,
 * topology) share inside the module; nothing outside includes it. */
#ifndef RG_UPSTREAM_INT_H
#define RG_UPSTREAM_INT_H

#include "dataplane.h"

/* A shared connection whose oldest request has waited this long is stalled (a long
 * script, DEBUG SLEEP, a big KEYS): clients with nothing in flight move off it, so
 * that they reach Redis and get what Redis says (-BUSY), not a wait behind it. */
#define UP_STALL_NS (500 * 1000000LL)

/* A write in flight on a master when it was fenced, answered later than this, ran
 * too late to be sure it reached the replica being promoted: Sentinel promotes one
 * timer tick (50-100 ms) after it names the replica, which is when respgate fences. */
#define FENCE_GRACE_NS (50 * 1000000LL)

int up_init(struct upconn *u, struct worker *w, int node, enum up_kind kind, struct client *owner,
            int proto);
void up_deinit(struct upconn *u);
/* r leaves u's in-flight queue (answered, or lost with u). */
void up_unqueue(struct upconn *u, struct req *r);
/* Consecutive plain replies at the start of in, to clients' next requests, each
 * client's run moved in one call (upstream_run.c). 1 if any were taken. */
int up_take_runs(struct upconn *u, struct evbuffer *in);
void up_connect(struct upconn *u);
/* upstream.tls (upstream_pool.c): makes a connecting u TLS, offering the session its
 * node last gave (-1 if TLS cannot start); after Redis first answers, keeps u's
 * session for the node's next connect, so a wave of reconnects (a restart, a
 * failover) skips the certificate exchange. */
int up_pool_start_tls(struct upconn *u);
void up_pool_keep_tls_session(struct upconn *u);
void up_failed(struct upconn *u, const char *why);
/* Every request in flight on u gets msg (or is sent again elsewhere: ops->lost). */
void up_fail_inflight(struct upconn *u, const char *msg);
void up_arm_timer(struct upconn *u, int ms);
/* Arms it for ms from now unless it is due sooner already (a READY connection's
 * timer serves the fence and the lost-node watch both). */
void up_arm_timer_soon(struct upconn *u, int ms);
void up_send_role(struct upconn *u);
/* A request of respgate's own on u, in flight: its reply is consumed here. */
struct req *up_own_request(struct upconn *u);
/* A pinned or tunnel connection leaves its owner (or pool): closed now, freed at the
 * end of the pass; what is in flight gets msg. */
void up_pin_let_go(struct upconn *u, const char *msg);
/* u on a node the probes lost: failed once stalled, else looked at again by its
 * timer (upstream_pool.c). Returns 1 if it failed. */
int up_watch_lost(struct upconn *u);
/* Every connection to node proves again with ROLE that it reaches a master. */
void up_reverify_node(struct worker *w, int node);
/* /readyz's view of this worker: whether it can write to the master now. */
void up_note_master(struct worker *w);

/* durability.min_replicas (upstream_durable.c). A durable write went out on u. */
void up_durable_sent(struct upconn *u);
/* r's reply (of type, len bytes of in) is held until a WAIT answers: 1 if taken. */
int up_durable_hold(struct upconn *u, struct req *r, char type, struct evbuffer *in, size_t len);
/* r, respgate's own WAIT, answered: the replies held on u go to their clients. */
void up_durable_answered(struct upconn *u, struct req *r, struct evbuffer *in, size_t len);
/* u is going: the replies it holds become errors. */
void up_durable_lost(struct upconn *u);

#endif
