/* probe_int: the probe's own types and the functions its files share (probe.c:
 * the node table, polling and publishing; probe_master.c: which node is the master,
 * and what respgate sets on the nodes for it). Internal to the probe module; the
 * "pr_" prefix marks what is shared between its files. */
#ifndef RG_PROBE_INT_H
#define RG_PROBE_INT_H

#include <netinet/in.h>
#include <pthread.h>

#include "probe.h"
#include "rconn.h"

#include <hiredis/hiredis.h>

struct probe_node {
    struct probe *p;
    size_t index;
    struct config_addr addr;
    char numeric[INET6_ADDRSTRLEN]; /* the address resolved once, to match INFO's master_host */
    int configured;                 /* from the config file: always part of the set */
    int64_t seen_ns;                /* discovered: when Sentinel or the master last listed it */
    struct rconn *rc;               /* NULL: not connected */
    int64_t sent_ns;                /* when the INFO in flight was sent; 0: none in flight */
    int answered;                   /* has answered (or failed) at least once */
    int redialed; /* reconnected once after a drop, before calling it unreachable */
    struct topo_node state;
    char err[128];
    int64_t priority_sent_ns; /* the last CONFIG SET replica-priority sent */
    int priority_warned;      /* the mismatch was logged (failover.region_priority check) */
};

#define PROBE_HISTORY 256 /* master offsets kept: 25 s at the default probe interval */

struct probe {
    struct config *cfg; /* a reference */
    struct event_base *base;
    struct sock_loop *io; /* the control thread's: connections to the nodes */
    struct event *tick;
    struct event *poke_ev; /* a worker saw a node contradict the topology */
    size_t nnodes;
    struct probe_node *nodes;  /* TOPO_MAX_NODES of them; the first nnodes in use */
    struct sentinel *sentinel; /* NULL without Sentinel in the config */
    struct sentinel *next;     /* a reload changed the Sentinels: these, once they answer */
    int64_t next_since;
    uint64_t generation;
    int master;    /* index chosen in the last snapshot */
    int reference; /* the last master there was */
    int64_t master_since_ns;
    struct topology *latest; /* the newest snapshot, for the admin endpoint */
    probe_publish_fn publish;
    void *arg;
    pthread_mutex_t lock; /* guards first and first_ready only */
    pthread_cond_t cond;
    struct topology *first;
    int first_ready;
    struct cmd_overlay *commands; /* from the master's COMMAND: what the built-in table lacks */
    int64_t commands_at;          /* when it was fetched; 0: never */
    int commands_pending;
    /* The reference master's offset over time, newest last: how old a replica's data
     * may be follows from the newest of these its offset has reached. */
    struct {
        long long offset;
        int64_t at_ns;
    } history[PROBE_HISTORY];
    int nhistory, history_head;
    int history_node;
    int destroying; /* probe_destroy runs: callbacks with no reply publish nothing */
    /* POST /failover {"region"}: the node respgate promoted itself, the master while
     * Sentinel names what it named then (probe_master.c). */
    struct {
        int node;    /* -1: none */
        int pending; /* REPLICAOF NO ONE sent, no answer yet */
        int region, force, old;
        int sentinel_known; /* what Sentinel named when it was asked */
        struct config_addr sentinel_master;
        sentinel_reply_fn done;
        void *arg;
        unsigned long count; /* promotions done */
    } promoted;
};

/* The node an address names (by name or resolved address), or -1. */
int pr_node_index(struct probe *p, const struct config_addr *a);
/* Sends INFO to n now, connecting first if needed (nothing if one is in flight). */
void pr_probe_now(struct probe_node *n);
/* Builds a snapshot from what is known and hands it on. */
void pr_publish(struct probe *p);
/* The writable master for the snapshot t being built (-1: none, with why), and why
 * it is the one. */
int pr_choose_master(struct probe *p, const struct topology *t, const char **why,
                     const char **reason);
/* After n's INFO: its replica-priority fitted to its region (failover.region_priority). */
void pr_fit_priority(struct probe_node *n);

#endif
