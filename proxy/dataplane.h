/* dataplane: the types one worker thread's data plane is made of (types only;
 * the functions live with their modules: req, pass, outage, upstream, replyq,
 * message, hold, session, intercept, dispatch, client, worker). Everything here is owned by
 * exactly one worker thread and touched by no other, except the few atomics
 * marked as such.
 *
 * Vocabulary (after twemproxy): a client sends requests; each request is a
 * struct req in its client's queue, in command order, and - once sent - in one
 * upstream connection's in-flight queue. Replies pair with the head of that
 * in-flight queue; a client is written only in its own command order.
 *
 * One loop pass (pass.h): callbacks only record what happened. A reply fills its
 * request and wakes the client; a connection or client that must go is marked and
 * freed at the end of the pass, when no callback on it is on the stack. */
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
#include "pubsub.h"
#include "resp.h"
#include "route.h"
#include "sock.h"
#include "stats.h"
#include "topology.h"

struct client;
struct cmd_info;
struct upconn;
struct worker;

#define CLIENT_OUT_HIGH (8u << 20)   /* stop reading a client that does not read its replies */
#define UPSTREAM_OUT_HIGH (8u << 20) /* stop reading clients while Redis is not taking bytes */
#define REQ_SMALL_COPY 112           /* copies up to this size live inside the request */

struct req {
    TAILQ_ENTRY(req) cq;    /* in the client's queue, in command order */
    TAILQ_ENTRY(req) uq;    /* in an upstream's in-flight queue, or the resend list */
    struct client *client;  /* NULL once the client is gone: the reply is dropped */
    struct upconn *up;      /* where it is in flight; NULL otherwise */
    struct evbuffer *reply; /* a reply that is ready before the client can take it */
    int done;
    int write;           /* not known to be read-only: its reply moves the client's
                            read-your-writes horizon */
    const char *instead; /* a reply to give the client in place of the upstream's */
    int auth;            /* respgate's own AUTH on a new connection: no client waits */
    int hello;           /* respgate's own HELLO <proto> on a new connection, likewise */
    int conn_id;         /* respgate's own CLIENT ID on a connection of a client's own */
    int role;            /* respgate's own ROLE, to verify the node is a master */
    char *copy;          /* the request, to send it again: a read whose replica failed, a
                            request a node refused because of its role (REQ_COPY_MAX) */
    size_t copy_len;
    int64_t resend_until; /* refused or lost: how long it may wait for another node */
    int node;             /* where it was sent */
    int timed;            /* on a shared connection: its latency is measured */
    int replica_read;     /* a read sent to a replica: its client's writes wait for it */
    int master_only;      /* sent again, to the master only (a script the replica lacks) */
    int scan;             /* SCAN and kin: its reply's cursor is remembered (scan.c) */
    int script;           /* EVAL, FCALL...: may run long (upconn.scripts counts them) */
    int redirect;         /* CLIENT GETREDIR/TRACKINGINFO: Redis' id in it made ours */
    int durable;          /* a write whose reply waits for durability.min_replicas */
    int durable_wait;     /* respgate's own WAIT after such writes: wait_need acks */
    int wait_need;
    int64_t sent_ns;            /* the worker's clock when it was sent */
    int64_t fenced_ns;          /* a write in flight on a master when it was fenced, then */
    char small[REQ_SMALL_COPY]; /* copy points here for most requests: no malloc. Last:
                                   a request is cleared up to it, not through it */
};
TAILQ_HEAD(req_queue, req);

#define REQ_COPY_MAX (16 * 1024) /* larger requests keep no copy: never sent twice */

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
    int proto;                /* 2 or 3: the RESP version it speaks (HELLO on connect) */
    int lazy;                 /* not connected yet: RESP3 ones wait for a RESP3 client */
    struct client *owner;     /* pinned or tunnel: its client; NULL while idle in the pool */
    TAILQ_ENTRY(upconn) link; /* idle in its pool, or on the worker's list to free */
    int idle;                 /* pinned, in its pool's idle list */
    int dead;                 /* pinned or tunnel, let go: freed at the end of the pass */
    int frame_tunnel; /* a pub/sub tunnel: relayed message by message, watched for its end */
    int named;        /* pinned or tunnel: carries its client's CLIENT SETNAME */
    unsigned long long redis_id; /* pinned or tunnel: Redis' CLIENT ID for it; 0 unknown */
    struct req_queue inflight;
    struct req_queue held; /* durable writes answered, waiting for the next WAIT */
    int unwaited;          /* durable writes sent since the last WAIT */
    int wait_listed;       /* on the worker's wait_ups: a WAIT goes at the pass end */
    TAILQ_ENTRY(upconn) wait_link;
    struct resp_parser rp;   /* frames replies (not for a raw tunnel) */
    struct evbuffer *pushes; /* RESP3 pushes read ahead of the next reply: its client's */
    size_t scanned;
    struct event *timer; /* connect timeout, reconnect backoff */
    int backoff_ms;
    int got_data;     /* tunnel: bytes were relayed to the client */
    int replied;      /* a reply came on this connection (TLS: it was accepted) */
    int verified;     /* ROLE said master on this connection since the master last changed */
    int role_pending; /* a ROLE is in flight */
    int nwaiting;     /* clients paused until this connection's output drains */
    int scripts;      /* scripts in flight: what is sent behind one waits for it to end */
    char err[96];     /* a connect error seen before any callback could run */
    char why[400];    /* the last failure, for error replies */
};
TAILQ_HEAD(upconn_list, upconn);

/* How upstream.c tells its owners what happened, without knowing them: the data
 * plane fills it in (client.c). Each one only records, wakes clients or sends a
 * request again (hold.c); none may resume a client or free an upstream connection
 * or a client. */
struct upstream_ops {
    /* r's reply is the first len bytes of src: r goes to its client's queue. */
    void (*reply)(struct worker *w, struct req *r, struct evbuffer *src, size_t len);
    /* The same in bulk (upstream_run.c): whether r may follow prev (NULL: r starts a
     * run) in one move, and the move of count requests' replies from first on. */
    int (*reply_joins)(const struct req *r, const struct req *prev);
    void (*reply_run)(struct worker *w, struct req *first, size_t count, struct evbuffer *src,
                      size_t len);
    /* r was in flight on a connection that failed: sent again, or answered with msg. */
    void (*lost)(struct worker *w, struct req *r, const char *msg);
    /* r was refused because of the node's role (-READONLY, -MASTERDOWN, -LOADING):
     * returns 1 if r was taken to be sent again, 0 to give the client the reply. */
    int (*refused)(struct worker *w, struct req *r, struct evbuffer *src, size_t len);
    /* A tunnel's bytes (len of them, or all of src when len is 0 and framed is 0).
     * Returns 1 if the tunnel ended and the connection must not be read further. */
    int (*tunnel)(struct client *c, struct evbuffer *src, size_t len, int framed);
    /* The client's pinned or tunnel connection failed: its session ends. */
    void (*pin_lost)(struct client *c, const char *why);
    /* u's output went below the high mark: clients that waited for it go on. */
    void (*drained)(struct upconn *u);
    /* A connection to the master proved it is one: held requests may go now. */
    void (*master_ready)(struct worker *w);
    /* The client's own connection learned its Redis id (u->redis_id). */
    void (*identified)(struct client *c, struct upconn *u);
};

/* A worker's connections to one node; set up when a topology first lists it. */
struct pool {
    struct sockaddr_storage sa; /* the node's address, as the control thread resolved it */
    socklen_t salen;
    char name[CONFIG_HOST_MAX + 8]; /* "host:port", for messages */
    char host[CONFIG_HOST_MAX];     /* the name TLS verifies, without upstream.tls.server_name */
    void *tls_session;              /* upstream.tls: resumed by the next connect (SSL_SESSION) */
    const void *tls_session_ctx;    /* the SSL_CTX it came from: a reload drops it */
    struct upconn *conns; /* cfg->upstream.connections_per_node of them; NULL until used */
    int n;
    unsigned next;           /* round-robin */
    struct upconn_list idle; /* clean pinned connections kept for the next session */
    int nidle;
};

/* Client flags. */
enum {
    C_PAUSED_PENDING = 1 << 0, /* max_pending_per_client requests in flight */
    C_PAUSED_UP = 1 << 1,      /* its upstream's output is over the high mark */
    C_OVERLIMIT = 1 << 2,      /* its unread replies passed client_output_limit_bytes */
    C_WAIT_REPLIES = 1 << 3,   /* a framed session command or RESET waits for earlier replies */
    C_CLOSING = 1 << 4,        /* no more input: close once replies are out */
    C_NOINPUT = 1 << 5,        /* QUIT went through the tunnel: wait for the server to close */
    C_LINGER = 1 << 6,         /* after a protocol error: half-close, then drain the input */
    C_SHUT = 1 << 7,           /* half-closed; waiting for EOF or the linger timeout */
    C_TX_ABORTED = 1 << 8,     /* its MULTI died with its connection: refuse until EXEC/DISCARD */
    C_WATCH_LOST = 1 << 9,     /* its WATCH died with its connection: the next EXEC fails */
    C_WAIT_MASTER = 1 << 10,   /* its framed request waits on the worker's held list */
    C_READY = 1 << 11,         /* on the worker's ready list: resumed at the end of the pass */
    C_DEAD = 1 << 12,          /* closed: freed at the end of the pass */
    C_WAIT_READS = 1 << 13,    /* a framed write waits for its reads in flight on replicas */
    C_TX_DIRTY = 1 << 14,      /* respgate refused a command queued in its MULTI: EXECABORT */
    C_IDS_DONE = 1 << 15,      /* the request's client ids were translated: send it as is */
    C_KILLED = 1 << 16,        /* CLIENT KILL named it: closed when it resumes */
};
#define C_NOREAD                                                                                   \
    (C_PAUSED_PENDING | C_PAUSED_UP | C_OVERLIMIT | C_WAIT_REPLIES | C_CLOSING | C_NOINPUT |       \
     C_WAIT_MASTER | C_WAIT_READS | C_DEAD)

/* What keeps a client on its pinned connection once the replies are back. */
enum {
    S_MULTI = 1 << 0,  /* inside MULTI ... EXEC/DISCARD */
    S_WATCH = 1 << 1,  /* keys watched */
    S_DB = 1 << 2,     /* SELECT of a database other than 0 */
    S_STICKY = 1 << 3, /* AUTH, HELLO, READONLY...: state we cannot undo; pinned for good */
};

#define SCAN_KEPT 8 /* a client's scans going on at once, each from its own node */

struct client {
    struct worker *w;
    struct sock *sock;
    TAILQ_ENTRY(client) link;  /* in the worker's clients */
    TAILQ_ENTRY(client) ready; /* with C_READY or C_DEAD: on the ready or the free list */
    struct req_queue pending;  /* in command order */
    int npending;              /* requests in the queue, answered or not */
    int ninflight;             /* of those, not answered yet */
    size_t stored;             /* bytes of answered replies waiting behind an earlier one */
    int64_t soft_since;        /* over client_output_soft_limit_bytes since; 0: not */
    int64_t active_ns;         /* when it last sent anything */
    struct upconn *up;         /* shared connection to the master: all its writes go here.
                                  Picked on its first request for the master, not on accept */
    struct upconn *pin;        /* its own connection, once in a session */
    struct upconn *waiting;    /* with C_PAUSED_UP: whose output it waits on */
    struct resp_parser rp;
    size_t scanned;
    int framed;      /* rp holds a complete request not dispatched yet */
    size_t lingered; /* with C_SHUT: bytes read and dropped since */
    unsigned flags;
    int reading;
    struct route_horizon horizon; /* read-your-writes: where its last write is visible */
    int writes_inflight;          /* writes sent and not answered yet */
    int replica_reads;            /* reads in flight on replicas: a write waits for them, or
                                     a replica could apply it before it ran an earlier read */
    unsigned session;             /* S_*: state its pinned connection holds */
    int authed;                   /* passed respgate's own AUTH (or none is asked) */
    int proto;                    /* 2, or 3 after HELLO 3: its shared connections speak it */
    struct {                      /* SCAN cursors it was given, and by which node (scan.c) */
        unsigned long long cursor[SCAN_KEPT];
        int node[SCAN_KEPT];
        unsigned next;
    } scans;
    unsigned long long id;           /* CLIENT ID */
    char *name;                      /* CLIENT SETNAME */
    char *user;                      /* AUTH'd as (auth.users); NULL: the default user */
    int64_t created_ns;              /* accepted at: CLIENT LIST's age */
    int db;                          /* SELECTed, as far as respgate can tell */
    int multi_queued;                /* commands queued in its MULTI */
    const struct cmd_info *last_cmd; /* the last command, its subcommand's row if any */
    char addr[56], laddr[56];        /* "host:port" of both ends, once CLIENT LIST asked */
    unsigned long long write_conn;   /* id of the connection that carried its last write */
    struct pubsub pubsub;            /* its pub/sub tunnel, followed to its end */
    TAILQ_ENTRY(client) hold_link;   /* with C_WAIT_MASTER: in its worker's held list */
    enum stats_class cls;            /* of the request being dispatched, for the metrics */
    const struct cmd_info *ci;       /* its row in the command table, or NULL */
    int sent;                        /* dispatch: the request went upstream */
    int64_t hold_until; /* when its wait for a master ends; 0: not waiting. It stays set
                           after a timeout, so requests behind fail at once, until a
                           request reaches a master again */
};
TAILQ_HEAD(client_list, client);

struct probe;
struct roster;

/* Shared by all workers; set up before they start, read-only after (but the atomics). */
struct shared {
    atomic_int nclients;
    atomic_ullong next_client_id; /* CLIENT ID: unique across workers, taken on accept */
    struct probe *probe;          /* told when a node contradicts the topology */
    struct avail *avail;          /* told when writes could not be served, and since when */
    struct idmap *ids;            /* client ids to their own Redis connections' ids */
    struct roster *roster;        /* CLIENT LIST and KILL across workers */
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
    const struct upstream_ops *ops;
    struct stats *stats;  /* written only here; summed by the control thread */
    int64_t now_ns;       /* topo_now_ns() at the start of the current callback */
    int64_t outage_since; /* a write failed or waited for a master at; 0: writes work */
    unsigned outage_held, outage_failed; /* requests held, failed -TRYAGAIN: for the log */
    struct evconnlistener *listener;
    struct evconnlistener *tls_listener; /* tls.listen; NULL without */
    struct pool *pools;                  /* TOPO_MAX_NODES, by topology index */
    unsigned *outstanding;               /* requests in flight to node i from this worker */
    struct client_list held;             /* waiting for a writable master, in the order they came */
    int nheld;
    struct req_queue resend; /* requests refused or lost, waiting for a node to take them */
    int nresend;
    struct event *hold_timer; /* runs while anything is held: expires the overdue */
    struct topology *topo;    /* the newest snapshot; NULL until the first */
    unsigned rr;              /* round-robin cursor for reads */
    unsigned long long next_conn_id;
    struct client_list clients;
    int nclients;
    struct client_list ready;    /* to resume at the end of the pass, in the order woken */
    struct client_list dead;     /* closed clients to free at the end of the pass */
    struct upconn_list dead_ups; /* let-go pinned connections to free then */
    struct upconn_list wait_ups; /* sent durable writes this pass: a WAIT each at its end */
    struct req_cache *reqs;
    atomic_int master_ok; /* written here, read by /readyz: a verified connection to the
                             writable master is up */
    int ctl_fd[2];        /* control pipe: main and the control thread write, the worker reads */
    struct event *ctl_ev;
    /* Mailboxes the pipe only wakes the worker for, so that a full pipe loses
     * nothing: the newest reloaded config (a reference), and 1 drain, 2 close. */
    _Atomic(struct config *) next_cfg;
    atomic_int stop_asked;
    struct event *drain_timer;
    struct event *cron;     /* once a second: idle clients, slow unauthenticated ones */
    int draining;           /* 1 draining, 2 the drain timed out: answer the held, then close */
    int stopping;           /* the stop_asked last acted on */
    int spare_fd;           /* kept open to be given up when accept runs out of descriptors */
    int fd_cap;             /* clients the open-files limit leaves room for (worker.c) */
    char redis_version[32]; /* from the upstream HELLO replies, for the HELLO answered here */
    int64_t refused_logged_ns;
    atomic_int *running; /* the group's count of live worker threads */
};

#endif
