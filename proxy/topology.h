/* topology: an immutable snapshot of what the control plane knows about the nodes
 * (roles, offsets, link state) at one moment. The control thread builds a new one
 * after every probe round and hands it to the workers; nobody changes a published
 * snapshot, so workers read it without locks. Freed when the last holder lets go. */
#ifndef RG_TOPOLOGY_H
#define RG_TOPOLOGY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"

enum topo_role { TOPO_UNKNOWN = 0, TOPO_MASTER, TOPO_REPLICA };

/* Nodes are configured or discovered (from Sentinel, or a master's replica list);
 * a node keeps its index for the life of the process, so this bounds how many
 * distinct addresses respgate will ever follow. */
#define TOPO_MAX_NODES 64

struct topo_node {
    struct config_addr addr;
    char name[CONFIG_HOST_MAX + 8]; /* "host:port", for messages */
    struct sockaddr_storage sa;     /* resolved by the control thread */
    socklen_t salen;                /* 0: the address did not resolve */
    int region;                     /* index into the config's regions */
    int listed; /* part of the set now: configured, or listed by Sentinel or the master */
    enum topo_role role;
    int reachable;     /* answered the last probe in time */
    int link_up;       /* replica: link to its master up, not syncing, not loading */
    long long offset;  /* master: master_repl_offset; replica: its processed offset */
    int follows;       /* replica: index of the node it replicates from; -1 if none or unknown */
    int64_t probed_ns; /* CLOCK_MONOTONIC when the probe that measured this was sent */
    int64_t lag_ns;    /* replica: how old the newest master offset it holds may be (an upper
                          bound, from the master's offsets over time); 0 master; -1 unknown */
    int priority;      /* replica: its replica-priority, as INFO said; -1 unknown */
    int priority_want; /* what failover.region_priority gives its region; 0: nothing */
};

struct cmd_overlay;

struct topology {
    atomic_int refs;
    struct cmd_overlay *commands; /* the master's commands the built-in table lacks */
    uint64_t generation;
    int master;    /* index of the writable master; -1 while none is (unknown, failing over) */
    int reference; /* the master replicas are measured against: master, or the last one */
    const char *why_no_master; /* with master -1: a static string saying why */
    const char *master_reason; /* why this node is the master: a static string */
    int64_t master_since_ns;   /* topo_now_ns() when the master last changed */
    size_t nnodes;
    struct topo_node nodes[]; /* configured ones first; an index never changes meaning */
};

struct topology *topo_create(size_t nnodes);
struct topology *topo_acquire(struct topology *t);
void topo_release(struct topology **t);

/* CLOCK_MONOTONIC in nanoseconds: the clock probes and read-your-writes share. */
int64_t topo_now_ns(void);

/* Bytes node i is behind the reference master, or -1 if it is not its replica. */
long long topo_lag(const struct topology *t, size_t i);

#endif
