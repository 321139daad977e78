/* stats: one worker's counters. Only the worker that owns a struct stats writes
 * it, with a relaxed load and store (a plain add, no locked instruction, no cache
 * line shared between writers); the control thread reads every worker's and sums
 * them when /metrics is scraped. Values may be a few requests stale: never torn. */
#ifndef RG_STATS_H
#define RG_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "sock.h"
#include "topology.h"

/* Where a request went: the master, a replica, or answered by respgate itself. */
enum stats_route { STATS_MASTER, STATS_REPLICA, STATS_LOCAL, STATS_ROUTES };

/* What kind of command it was, from its flags (first match wins, in this order). */
enum stats_class {
    STATS_PUBSUB,
    STATS_BLOCKING,
    STATS_TRANSACTION,
    STATS_SCRIPT,
    STATS_CONNECTION,
    STATS_READ,
    STATS_WRITE,
    STATS_OTHER,
    STATS_CLASSES
};

/* Why a client got an error respgate made (not Redis' own errors). */
enum stats_error {
    STATS_ERR_NO_MASTER,  /* held past failover.hold_ms, or too many held */
    STATS_ERR_UPSTREAM,   /* its connection to Redis failed with the request in flight */
    STATS_ERR_NO_REPLICA, /* routing.no_replica "error" and none eligible */
    STATS_ERR_SESSION,    /* a pinned session ended (the master changed, its node failed) */
    STATS_ERR_DENIED,     /* deny_commands */
    STATS_ERR_AUTH,       /* NOAUTH, WRONGPASS */
    STATS_ERR_PROTOCOL,   /* malformed RESP: the connection is closed */
    STATS_ERR_LIMIT,      /* limits.*: query buffer, max_clients */
    STATS_ERRORS
};

/* Why respgate closed a client itself. */
enum stats_close {
    STATS_CLOSE_OUTPUT_LIMIT, /* limits.client_output_limit_bytes */
    STATS_CLOSE_QUERY_LIMIT,  /* limits.max_query_buffer_bytes (or 64 KiB before AUTH) */
    STATS_CLOSE_PROTOCOL,     /* malformed RESP */
    STATS_CLOSE_IDLE,         /* limits.client_idle_timeout_ms, or a slow unauthenticated one */
    STATS_CLOSE_KILLED,       /* CLIENT KILL */
    STATS_CLOSES
};

/* Upper bounds of the latency buckets, in microseconds; the last bucket is +Inf. */
#define STATS_BUCKETS 15
extern const int64_t stats_bucket_us[STATS_BUCKETS - 1];

struct stats_hist {
    _Atomic uint64_t bucket[STATS_BUCKETS]; /* not cumulative: summed on output */
    _Atomic uint64_t sum_ns;
};

struct stats {
    _Atomic uint64_t requests[STATS_ROUTES][STATS_CLASSES];
    _Atomic uint64_t errors[STATS_ERRORS];
    _Atomic uint64_t clients_accepted;
    _Atomic uint64_t closed[STATS_CLOSES]; /* clients respgate closed, by reason */
    _Atomic uint64_t clients;              /* connected now */
    _Atomic uint64_t held; /* requests held for a master or waiting to be resent, now */
    /* Request to reply on shared connections, per node (sessions and blocking
     * commands excluded: their time is the application's). */
    struct stats_hist latency[TOPO_MAX_NODES];
    _Atomic uint64_t reads[TOPO_MAX_NODES]; /* read commands sent to each node: by region */
    /* durability.min_replicas: writes whose replies waited for replicas, those now
     * waiting, those released short (on_timeout reply) or failed (error, or the
     * connection lost first), and the WAIT round trip. */
    _Atomic uint64_t durable_held, durable_waiting, durable_short_released, durable_failed;
    _Atomic uint64_t tls_clients; /* TLS client connections open now */
    /* by side and result, as sock_loop_tls_counts (as of the last second) */
    _Atomic uint64_t tls_handshakes[SOCK_TLS_SIDES][SOCK_TLS_RESULTS];
    _Atomic uint64_t tls_resumed[SOCK_TLS_SIDES];
    struct stats_hist durable_wait;
};

/* For the owning thread only. */
static inline void stats_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline void stats_set(_Atomic uint64_t *c, uint64_t v)
{
    atomic_store_explicit(c, v, memory_order_relaxed);
}

void stats_observe(struct stats_hist *h, int64_t ns);
enum stats_class stats_class_of(unsigned cmd_flags);

/* Adds what from holds into into (a private copy: any thread). */
void stats_sum(struct stats *into, const struct stats *from);

const char *stats_route_name(enum stats_route r);
const char *stats_class_name(enum stats_class c);
const char *stats_error_name(enum stats_error e);
const char *stats_close_name(enum stats_close c);

#endif
