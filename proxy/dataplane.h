/* dataplane: the types one worker thread's data plane is made of, shared by
 * worker.c (thread, listener, control), client.c (client connections, reply
 * ordering) and upstream.c (pooled and pinned connections to Redis). Nothing
 * outside those three files includes this header; everything here is owned by
 * exactly one worker thread and touched by no other.
 *
 * Vocabulary (after twemproxy): a client sends requests; each request is a
 * struct req in its client's queue, in command order, and - once sent - in one
 * upstream connection's in-flight queue. Replies pair with the head of that
 * in-flight queue; a client is written only in its own command order. */
#ifndef RG_DATAPLANE_H
#define RG_DATAPLANE_H

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "config.h"
#include "resp.h"
#include "route.h"
#include "sock.h"
#include "stats.h"
#include "topology.h"

struct client;
struct upconn;
struct worker;

#define REQ_SMALL_COPY 112 /* copies up to this size live inside the request */

struct req {
    TAILQ_ENTRY(req) cq;    /* in the client's queue, in command order */
    TAILQ_ENTRY(req) uq;    /* in the upstream's in-flight queue, once sent */
    struct client *client;  /* NULL once the client is gone: the reply is dropped */
    struct upconn *up;      /* where it was sent; NULL for a reply made here */
    struct evbuffer *reply; /* a reply that is ready before the client can take it */
    int done;
    int write;           /* not known to be read-only: its reply moves the client's
                            read-your-writes horizon */
    const char *instead; /* a reply to give the client in place of the upstream's */
    int auth;            /* respgate's own AUTH on a new connection: no client waits */
    int role;            /* respgate's own ROLE, to verify the node is a master */
    char *copy;          /* the request (up to 16 KiB), to send it again: a read whose
                            replica failed, a request a demoted master refused */
    size_t copy_len;
    int64_t resend_until;       /* refused by a demoted master: how long it may wait for another */
    int node;                   /* where it was sent */
    int timed;                  /* on a shared connection: its latency is measured */
    int64_t sent_ns;            /* the worker's clock when it was sent */
    char small[REQ_SMALL_COPY]; /* copy points here for most requests: no malloc. Last:
                                   a request is cleared up to it, not through it */
};
TAILQ_HEAD(req_queue, req);

enum up_state { UP_DOWN, UP_CONNECTING, UP_READY };

enum up_kind {
    UP_SHARED, /* many clients, replies framed and matched FIFO */
    UP_PINNED, /* one client's session (MULTI, WATCH, SELECT, blocking...), framed the same way */
    UP_TUNNEL, /* one client, bytes relayed as they are (pub/sub, MONITOR, CLIENT REPLY) */
};

struct upconn {
    struct worker *w;
    int node;              /* index into the topology's nodes (and w->pools) */
    unsigned long long id; /* unique in its worker per (re)connect: WAIT's coverage */
    struct sock *sock;     /* NULL while down */
    enum up_state state;
    enum up_kind kind;
    struct client *owner; /* pinned or tunnel: its client; NULL while idle in the pool */
    TAILQ_ENTRY(upconn) idle_link;
    int frame_tunnel; /* a pub/sub tunnel: relayed message by message, watched for its end */
    struct req_queue inflight;
    struct resp_parser rp; /* frames replies (shared connections only) */
    size_t scanned;
    struct event *timer; /* connect timeout, reconnect backoff */
    int backoff_ms;
    int got_data;     /* pinned: bytes were relayed to the client */
    int verified;     /* ROLE said master on this connection since the master last changed */
    int role_pending; /* a ROLE is in flight */
    int nwaiting;     /* clients paused until this connection's output drains */
    char err[96];     /* a connect error seen before any callback could run */
    char why[400];    /* the last failure, for error replies */
};

struct probe;

/* Shared by all workers; set up before they start, read-only after (but nclients). */
struct shared {
    atomic_int nclients;
    atomic_ullong next_client_id; /* CLIENT ID: unique across workers, taken on accept */
    struct probe *probe;          /* told when a node contradicts the topology */
    struct avail *avail;          /* told when writes could not be served, and since when */
};

/* A worker's connections to one node; set up when a topology first lists it. */
struct pool {
    struct sockaddr_storage sa; /* the node's address, as the control thread resolved it */
    socklen_t salen;
    char name[CONFIG_HOST_MAX + 8]; /* "host:port", for messages */
    struct upconn *conns; /* cfg->upstream.connections_per_node of them; NULL until used */
    int n;
    unsigned next;             /* round-robin */
    TAILQ_HEAD(, upconn) idle; /* clean pinned connections kept for the next session */
    int nidle;
};

struct worker {
    int id;
    struct event_base *base;
    struct sock_loop *io;
    struct config *cfg;         /* a reference; a reload sends a new one */
    struct route_policy policy; /* from cfg */
    /* Per command-table row: 1 refused (deny_commands), 2 a container with refused
     * subcommands; built from cfg. Unknown names are checked by name. */
    unsigned char *denied;
    struct shared *shared;
    struct stats *stats;  /* written only here; summed by the control thread */
    int64_t now_ns;       /* topo_now_ns() at the start of the current callback */
    int sent;             /* dispatch: the request went upstream */
    int64_t outage_since; /* a write failed or waited for a master at; 0: writes work */
    unsigned outage_held, outage_failed; /* requests held, failed -TRYAGAIN: for the log */
    struct evconnlistener *listener;
    struct pool *pools;        /* TOPO_MAX_NODES, by topology index */
    unsigned *outstanding;     /* requests in flight to node i from this worker */
    TAILQ_HEAD(, client) held; /* waiting for a writable master, in the order they came */
    int nheld;
    struct req_queue resend; /* requests refused by a demoted master, waiting for the next */
    int nresend;
    struct event *hold_timer; /* runs while anything is held: expires the overdue */
    struct topology *topo;    /* the newest snapshot; NULL until the first */
    unsigned rr;              /* round-robin cursor for reads */
    unsigned long long next_conn_id;
    TAILQ_HEAD(, client) clients;
    int nclients;
    struct req *free_reqs; /* a small cache; linked through cq.tqe_next */
    int nfree_reqs;
    int ctl_fd[2]; /* control pipe: the main thread writes, the worker reads */
    struct event *ctl_ev;
    /* Mailboxes the pipe only wakes the worker for, so that a full pipe loses
     * nothing: the newest reloaded config (a reference), and 1 drain, 2 close. */
    _Atomic(struct config *) next_cfg;
    atomic_int stop_asked;
    struct event *drain_timer;
    int draining;
    int stopping;        /* the stop_asked last acted on */
    atomic_int *running; /* the group's count of live worker threads */
};

/* client.c */
void client_accept(struct worker *w, evutil_socket_t fd);
/* A reply for r is the first len bytes of src; takes r. */
void client_deliver(struct worker *w, struct req *r, struct evbuffer *src, size_t len);
/* An error reply for r (its upstream failed); takes r. */
void client_fail(struct worker *w, struct req *r, const char *msg);
/* r was in flight on a connection that failed: a read is sent again elsewhere, or
 * waits (up to failover.hold_ms) for a node to take it. Returns 1 if r was taken, 0 if
 * it must be answered with an error (a write, or a read too large to have a copy). */
int client_retry(struct worker *w, struct req *r);
/* r got -READONLY, -MASTERDOWN or -LOADING (the first len bytes of in): the node is
 * not what the topology says. Returns 1 if r was taken to be sent again (now, or
 * once a master is verified), 0 if the reply must go to the client as it is. */
int client_redirect(struct worker *w, struct req *r, struct evbuffer *in, size_t len);
/* Tunnels relay bytes straight through. */
void client_tunnel_data(struct client *c, struct evbuffer *src);
/* A pub/sub tunnel relays one framed message (the first len bytes of src). Returns 1
 * if the subscription ended and the connection is a tunnel no more: stop reading it. */
int client_tunnel_message(struct client *c, struct evbuffer *src, size_t len);
/* The client's pinned or tunnel connection failed: the client lets go of it (the
 * caller answers its requests with errors and destroys it) and ends the session. */
void client_pin_lost(struct client *c, const char *why);
/* Output room came back on u: resume clients that waited for it. */
void client_upstream_drained(struct upconn *u);
void client_start_drain(struct worker *w);
/* A writable master may be there now: held clients try again, in order. */
void client_release_held(struct worker *w);
/* The master moved away from node old: sessions pinned there end (their next command
 * runs on the new master); a write there now would be lost. */
void client_master_moved(struct worker *w, int old);
void client_close_all(struct worker *w);

/* upstream.c */
int upstream_pool_init(struct worker *w);
void upstream_pool_deinit(struct worker *w);
/* A shared connection to node for a client whose current one (may be NULL) is down
 * or to another node; NULL if the node has no usable connection. */
struct upconn *upstream_pick(struct worker *w, int node, struct upconn *current);
/* Like upstream_pick, for the master: only a connection that is up and whose ROLE
 * said master since the master last changed. NULL: hold the request. */
struct upconn *upstream_pick_master(struct worker *w, int node, struct upconn *current);
/* A new topology (old may be NULL): pools for new nodes, and after a master change,
 * every connection is verified again before it carries a write. */
void upstream_topology_changed(struct worker *w, const struct topology *old,
                               const struct topology *t);
/* A connection of its own to node for owner: a clean idle one if there is one (not
 * for a tunnel), else a new one. */
struct upconn *upstream_pin_get(struct worker *w, int node, struct client *owner, int tunnel);
/* A pinned connection whose session ended cleanly: kept for reuse, or closed. */
void upstream_pin_put(struct upconn **u);
/* The node stopped answering: close its connections so nothing waits on it. */
void upstream_node_lost(struct worker *w, int node);
/* The node refused a write as a replica: none of its connections carries one until
 * ROLE says master again. */
void upstream_node_unverify(struct worker *w, int node);
/* Why node's connections are down, for error replies. */
const char *upstream_why(struct worker *w, int node);
const char *upstream_node_name(struct worker *w, int node);
void upstream_pin_destroy(struct upconn **u);
/* Ends a pinned or tunnel connection as if it had dropped: its client's session
 * ends and what is in flight on it gets an error naming why. */
void upstream_pin_abort(struct upconn *u, const char *why);
/* Appends a request of len bytes taken from src (or copied from data when src is NULL)
 * and, for a shared connection, queues r for its reply. -1 if u has no socket. */
int upstream_send(struct upconn *u, struct req *r, struct evbuffer *src, const char *data,
                  size_t len);
size_t upstream_output_len(const struct upconn *u);
void upstream_pause_reading(struct upconn *u, int paused);

/* worker.c */
struct req *worker_req_get(struct worker *w);
void worker_req_put(struct worker *w, struct req *r);
void worker_maybe_finish(struct worker *w);
/* The first write since w->outage_since succeeded: reports the span for the
 * availability figures (rare: a mutex is fine). */
void worker_outage_over(struct worker *w);
/* w->nheld or w->nresend changed: the gauge follows. */
void worker_held_changed(struct worker *w);
/* A write could not be served now: held (failed 0) or refused -TRYAGAIN (1). The
 * first of an outage is logged, with why. */
void worker_write_stalled(struct worker *w, int failed, const char *why);

#endif
