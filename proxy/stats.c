/* stats: see stats.h. */
#include "stats.h"
#include "command.h"

#include <string.h>

const int64_t stats_bucket_us[STATS_BUCKETS - 1] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000};

void stats_observe(struct stats_hist *h, int64_t ns)
{
    int64_t us = ns / 1000;
    int b = 0;
    while (b < STATS_BUCKETS - 1 && us > stats_bucket_us[b])
        b++;
    stats_add(&h->bucket[b], 1);
    stats_add(&h->sum_ns, ns > 0 ? (uint64_t)ns : 0);
}

enum stats_class stats_class_of(unsigned f)
{
    if (f & CMD_PUBSUB) return STATS_PUBSUB;
    if (f & CMD_BLOCKING) return STATS_BLOCKING;
    if (f & CMD_TRANSACTION) return STATS_TRANSACTION;
    if (f & CMD_SCRIPTING) return STATS_SCRIPT;
    if (f & CMD_CONNECTION) return STATS_CONNECTION;
    if ((f & CMD_READONLY) && !(f & CMD_WRITE)) return STATS_READ;
    if (f & CMD_WRITE) return STATS_WRITE;
    return STATS_OTHER;
}

static uint64_t get(const _Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

void stats_sum(struct stats *into, const struct stats *from)
{
    for (int r = 0; r < STATS_ROUTES; r++)
        for (int c = 0; c < STATS_CLASSES; c++)
            stats_add(&into->requests[r][c], get(&from->requests[r][c]));
    for (int e = 0; e < STATS_ERRORS; e++)
        stats_add(&into->errors[e], get(&from->errors[e]));
    stats_add(&into->clients_accepted, get(&from->clients_accepted));
    for (int k = 0; k < STATS_CLOSES; k++)
        stats_add(&into->closed[k], get(&from->closed[k]));
    stats_add(&into->clients, get(&from->clients));
    stats_add(&into->held, get(&from->held));
    for (int n = 0; n < TOPO_MAX_NODES; n++) {
        for (int b = 0; b < STATS_BUCKETS; b++)
            stats_add(&into->latency[n].bucket[b], get(&from->latency[n].bucket[b]));
        stats_add(&into->latency[n].sum_ns, get(&from->latency[n].sum_ns));
        stats_add(&into->reads[n], get(&from->reads[n]));
    }
    stats_add(&into->durable_held, get(&from->durable_held));
    stats_add(&into->durable_waiting, get(&from->durable_waiting));
    stats_add(&into->durable_short_released, get(&from->durable_short_released));
    stats_add(&into->durable_failed, get(&from->durable_failed));
    stats_add(&into->tls_clients, get(&from->tls_clients));
    for (int side = 0; side < SOCK_TLS_SIDES; side++) {
        for (int k = 0; k < SOCK_TLS_RESULTS; k++)
            stats_add(&into->tls_handshakes[side][k], get(&from->tls_handshakes[side][k]));
        stats_add(&into->tls_resumed[side], get(&from->tls_resumed[side]));
    }
    for (int b = 0; b < STATS_BUCKETS; b++)
        stats_add(&into->durable_wait.bucket[b], get(&from->durable_wait.bucket[b]));
    stats_add(&into->durable_wait.sum_ns, get(&from->durable_wait.sum_ns));
}

const char *stats_route_name(enum stats_route r)
{
    static const char *const names[STATS_ROUTES] = {"master", "replica", "local"};
    return names[r];
}

const char *stats_class_name(enum stats_class c)
{
    static const char *const names[STATS_CLASSES] = {
        "pubsub", "blocking", "transaction", "script", "connection", "read", "write", "other"};
    return names[c];
}

const char *stats_close_name(enum stats_close c)
{
    static const char *const names[STATS_CLOSES] = {"output_limit", "query_limit", "protocol",
                                                    "idle", "killed"};
    return names[c];
}

const char *stats_error_name(enum stats_error e)
{
    static const char *const names[STATS_ERRORS] = {
        "no_master", "upstream", "no_replica", "session", "denied", "auth", "protocol", "limit"};
    return names[e];
}
