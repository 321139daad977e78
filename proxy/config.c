/* config: JSON (jansson) to struct config. Validation is complete before anything
 * is returned, so a caller never sees half a config. */
#include "config.h"
#include "config_json.h"
#include "config_regions.h"
#include "config_sections.h"
#include "config_tls.h"
#include "config_syntax.h"
#include "log.h"

#include <jansson.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if JANSSON_VERSION_HEX < 0x020b00
#error "jansson 2.11 or later is needed (json_error_code)"
#endif

#define THREADS_MAX 256

static int parse_root(json_t *root, struct config *cfg, char *err, size_t errlen)
{
    static const char *const keys[] = {"listen",
                                       "threads",
                                       "log",
                                       "shutdown_timeout_ms",
                                       "regions",
                                       "upstream",
                                       "limits",
                                       "probe_interval_ms",
                                       "local_region",
                                       "routing",
                                       "auth",
                                       "deny_commands",
                                       "failover",
                                       "admin",
                                       "notify",
                                       "slo",
                                       "durability",
                                       "tls",
                                       "backup",
                                       "busy_poll_us",
                                       NULL};
    static const char *const upstream_keys[] = {
        "connections_per_node", "connect_timeout_ms", "username", "password", "tls", NULL};
    static const char *const limits_keys[] = {"max_clients",
                                              "max_query_buffer_bytes",
                                              "max_pending_per_client",
                                              "max_wait_ms",
                                              "client_output_limit_bytes",
                                              "client_output_soft_limit_bytes",
                                              "client_output_soft_seconds",
                                              "client_idle_timeout_ms",
                                              NULL};
    static const char *const log_keys[] = {"level", "format", NULL};
    static const char *const log_formats[] = {"text", "json", NULL};
    long long v;
    json_t *obj;

    if (!json_is_object(root))
        return config_json_fail(err, errlen, "the top level must be an object");
    if (config_json_keys(root, "", keys, err, errlen)) return -1;

    json_t *listen = json_object_get(root, "listen");
    if (listen) {
        char why[128];
        if (!json_is_string(listen))
            return config_json_fail(err, errlen, "listen: expected \"host:port\"");
        if (config_parse_addr(json_string_value(listen), &cfg->listen, why, sizeof(why)))
            return config_json_fail(err, errlen, "listen: %s", why);
    }

    v = cfg->threads;
    if (config_json_int(root, "", "threads", 1, THREADS_MAX, &v, err, errlen)) return -1;
    cfg->threads = (int)v;
    v = cfg->shutdown_timeout_ms;
    if (config_json_int(root, "", "shutdown_timeout_ms", 0, 600000, &v, err, errlen)) return -1;
    cfg->shutdown_timeout_ms = (int)v;
    v = cfg->busy_poll_us;
    if (config_json_int(root, "", "busy_poll_us", 0, 10000, &v, err, errlen)) return -1;
    cfg->busy_poll_us = (int)v;

    v = cfg->probe_interval_ms;
    if (config_json_int(root, "", "probe_interval_ms", 10, 60000, &v, err, errlen)) return -1;
    cfg->probe_interval_ms = (int)v;
    if (config_parse_routing(root, cfg, err, errlen)) return -1;

    if (config_json_object(root, "", "log", &obj, err, errlen)) return -1;
    if (obj) {
        if (config_json_keys(obj, "log", log_keys, err, errlen)) return -1;
        json_t *lvl = json_object_get(obj, "level");
        if (lvl && (!json_is_string(lvl) || log_level_parse(json_string_value(lvl)) < 0))
            return config_json_fail(
                err, errlen, "log.level: expected \"debug\", \"info\", \"warn\" or \"error\"");
        if (lvl) cfg->log_level = log_level_parse(json_string_value(lvl));
        if (config_json_choice(obj, "log", "format", log_formats, &cfg->log_format, err, errlen))
            return -1;
    }

    if (config_json_object(root, "", "upstream", &obj, err, errlen)) return -1;
    if (obj) {
        if (config_json_keys(obj, "upstream", upstream_keys, err, errlen)) return -1;
        v = cfg->upstream.connections_per_node;
        if (config_json_int(obj, "upstream", "connections_per_node", 1, 64, &v, err, errlen))
            return -1;
        cfg->upstream.connections_per_node = (int)v;
        v = cfg->upstream.connect_timeout_ms;
        if (config_json_int(obj, "upstream", "connect_timeout_ms", 1, 60000, &v, err, errlen))
            return -1;
        cfg->upstream.connect_timeout_ms = (int)v;
        if (config_json_string(obj, "upstream", "username", &cfg->upstream.username, err, errlen) ||
            config_json_string(obj, "upstream", "password", &cfg->upstream.password, err, errlen) ||
            config_parse_tls_out(obj, "upstream", &cfg->upstream.tls, err, errlen))
            return -1;
    }
    if (config_parse_auth(root, cfg, err, errlen) || config_parse_deny(root, cfg, err, errlen))
        return -1;

    if (config_json_object(root, "", "limits", &obj, err, errlen)) return -1;
    if (obj) {
        if (config_json_keys(obj, "limits", limits_keys, err, errlen)) return -1;
        v = cfg->limits.max_clients;
        if (config_json_int(obj, "limits", "max_clients", 1, 1000000, &v, err, errlen)) return -1;
        cfg->limits.max_clients = (int)v;
        if (config_json_int(obj, "limits", "max_query_buffer_bytes", 1024, 4LL << 30,
                            &cfg->limits.max_query_buffer_bytes, err, errlen))
            return -1;
        v = cfg->limits.max_pending_per_client;
        if (config_json_int(obj, "limits", "max_pending_per_client", 1, 1000000, &v, err, errlen))
            return -1;
        cfg->limits.max_pending_per_client = (int)v;
        v = cfg->limits.max_wait_ms;
        if (config_json_int(obj, "limits", "max_wait_ms", 1, 600000, &v, err, errlen)) return -1;
        cfg->limits.max_wait_ms = (int)v;
        if (config_json_int(obj, "limits", "client_output_limit_bytes", 0, 64LL << 30,
                            &cfg->limits.client_output_limit_bytes, err, errlen) ||
            config_json_int(obj, "limits", "client_output_soft_limit_bytes", 0, 64LL << 30,
                            &cfg->limits.client_output_soft_limit_bytes, err, errlen))
            return -1;
        if (config_json_int(obj, "limits", "client_idle_timeout_ms", 0, 86400000LL * 365,
                            &cfg->limits.client_idle_timeout_ms, err, errlen))
            return -1;
        v = cfg->limits.client_output_soft_seconds;
        if (config_json_int(obj, "limits", "client_output_soft_seconds", 1, 3600, &v, err, errlen))
            return -1;
        cfg->limits.client_output_soft_seconds = (int)v;
    }

    static const char *const admin_keys[] = {"listen", "token", NULL};
    if (config_json_object(root, "", "admin", &obj, err, errlen)) return -1;
    if (obj) {
        if (config_json_keys(obj, "admin", admin_keys, err, errlen) ||
            config_json_string(obj, "admin", "token", &cfg->admin.token, err, errlen))
            return -1;
        json_t *l = json_object_get(obj, "listen");
        char why[128];
        if (l && json_is_null(l)) {
            cfg->admin.enabled = 0;
        } else if (l && (!json_is_string(l) ||
                         config_parse_addr(json_string_value(l), &cfg->admin.listen, why,
                                           sizeof(why)))) {
            return config_json_fail(err, errlen, "admin.listen: %s",
                                    json_is_string(l) ? why : "expected \"host:port\" or null");
        }
    }
    static const char *const failover_keys[] = {
        "hold_ms",           "max_held_requests",        "region_priority",
        "failback_after_ms", "failback_min_interval_ms", NULL};
    static const char *const region_priority[] = {"off", "apply", "check", NULL};
    if (config_json_object(root, "", "failover", &obj, err, errlen)) return -1;
    if (obj) {
        if (config_json_keys(obj, "failover", failover_keys, err, errlen)) return -1;
        v = cfg->failover.hold_ms;
        if (config_json_int(obj, "failover", "hold_ms", 0, 600000, &v, err, errlen)) return -1;
        cfg->failover.hold_ms = (int)v;
        v = cfg->failover.max_held_requests;
        if (config_json_int(obj, "failover", "max_held_requests", 0, 100000000, &v, err, errlen))
            return -1;
        cfg->failover.max_held_requests = (int)v;
        if (config_json_choice(obj, "failover", "region_priority", region_priority,
                               &cfg->failover.region_priority, err, errlen) ||
            config_json_int(obj, "failover", "failback_after_ms", 0, 86400000,
                            &cfg->failover.failback_after_ms, err, errlen) ||
            config_json_int(obj, "failover", "failback_min_interval_ms", 1000, 86400000LL * 7,
                            &cfg->failover.failback_min_interval_ms, err, errlen))
            return -1;
    }

    if (config_parse_notify(root, cfg, err, errlen) || config_parse_slo(root, cfg, err, errlen) ||
        config_parse_durability(root, cfg, err, errlen) ||
        config_parse_backup(root, cfg, err, errlen) || config_parse_tls(root, cfg, err, errlen))
        return -1;
    return config_parse_regions(root, cfg, err, errlen);
}

/* The CPUs respgate really gets: those it may run on (a cpuset, taskset), and no more
 * than a container's CPU quota (cgroup v2 cpu.max, or v1's CFS quota), rounded up. A
 * sidecar on a big node must not start a worker per host CPU. */
static long available_cpus(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) cpus = CPU_COUNT(&set);
    long long quota = -1, period = 0;
    FILE *f = fopen("/sys/fs/cgroup/cpu.max", "r");
    if (f) {
        char q[32] = "";
        if (fscanf(f, "%31s %lld", q, &period) == 2 && strcmp(q, "max") != 0) quota = atoll(q);
        fclose(f);
    } else if ((f = fopen("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "r"))) {
        if (fscanf(f, "%lld", &quota) != 1) quota = -1;
        fclose(f);
        if ((f = fopen("/sys/fs/cgroup/cpu/cpu.cfs_period_us", "r"))) {
            if (fscanf(f, "%lld", &period) != 1) period = 0;
            fclose(f);
        }
    }
    if (quota > 0 && period > 0) {
        long limit = (long)((quota + period - 1) / period);
        if (limit < cpus) cpus = limit;
    }
    return cpus;
}

static void set_defaults(struct config *cfg)
{
    strcpy(cfg->listen.host, "127.0.0.1");
    cfg->listen.port = 7379;
    long cpus = available_cpus();
    cfg->threads = cpus < 1 ? 1 : cpus > THREADS_MAX ? THREADS_MAX : (int)cpus;
    cfg->log_level = LOG_INFO;
    cfg->shutdown_timeout_ms = 5000;
    cfg->probe_interval_ms = 100;
    cfg->routing.reads = ROUTE_READS_REPLICA;
    cfg->routing.max_lag_bytes = 1 << 20;
    cfg->routing.max_lag_ms = 5000;
    cfg->routing.read_your_writes = 1;
    cfg->routing.no_replica_error = 0;
    cfg->routing.prefer_local = -1; /* local when local_region is set (config_regions.c) */
    cfg->local_region = -1;
    cfg->failover.failback_min_interval_ms = 600000;
    cfg->upstream.connections_per_node = 2;
    cfg->upstream.connect_timeout_ms = 1000;
    cfg->limits.max_clients = 10000;
    cfg->limits.max_query_buffer_bytes = 1LL << 30; /* Redis' client-query-buffer-limit */
    cfg->limits.max_pending_per_client = 1024;
    /* Redis' normal clients have no limit; a proxy in front of many apps bounds them:
     * the hard limit fits the largest values people store, the soft one catches a
     * client that stopped reading. */
    cfg->limits.client_output_limit_bytes = 512LL << 20;
    cfg->limits.client_output_soft_limit_bytes = 64LL << 20;
    cfg->limits.client_output_soft_seconds = 10;
    cfg->limits.max_wait_ms = 1000;
    cfg->failover.hold_ms = 15000;
    cfg->admin.enabled = 1;
    strcpy(cfg->admin.listen.host, "127.0.0.1");
    cfg->admin.listen.port = 7380;
    cfg->failover.max_held_requests = 100000;
    cfg->notify.timeout_ms = 5000;
    cfg->slo.availability = 0.9999;
    cfg->durability.timeout_ms = 1000;
    cfg->backup.retention_count = 7;
}

/* Takes root (which may be NULL after a JSON syntax error described in jerr). */
static struct config *config_from_json(json_t *root, const json_error_t *jerr, char *err,
                                       size_t errlen)
{
    if (!root) {
        config_syntax_error(jerr, err, errlen);
        return NULL;
    }
    struct config *cfg = calloc(1, sizeof(*cfg));
    if (!cfg) {
        config_json_fail(err, errlen, "out of memory");
    } else {
        atomic_init(&cfg->refs, 1);
        set_defaults(cfg);
        if (parse_root(root, cfg, err, errlen)) config_destroy(&cfg);
    }
    json_decref(root);
    return cfg;
}

struct config *config_load_string(const char *json, char *err, size_t errlen)
{
    json_error_t jerr;
    return config_from_json(json_loads(json, JSON_REJECT_DUPLICATES, &jerr), &jerr, err, errlen);
}

struct config *config_load_file(const char *path, char *err, size_t errlen)
{
    json_error_t jerr;
    return config_from_json(json_load_file(path, JSON_REJECT_DUPLICATES, &jerr), &jerr, err,
                            errlen);
}

void config_destroy(struct config **cfgp)
{
    struct config *cfg = *cfgp;
    if (!cfg) return;
    for (size_t i = 0; i < cfg->nregions; i++) {
        free(cfg->regions[i].name);
        free(cfg->regions[i].match);
        free(cfg->regions[i].nodes);
        free(cfg->regions[i].sentinels);
        free(cfg->regions[i].master_name);
        free(cfg->regions[i].sentinel_username);
        free(cfg->regions[i].sentinel_password);
        config_tls_out_free(&cfg->regions[i].sentinel_tls);
    }
    free(cfg->regions);
    for (size_t i = 0; i < cfg->ndeny; i++)
        free(cfg->deny[i]);
    free(cfg->deny);
    for (size_t i = 0; i < cfg->auth.nusers; i++) {
        free(cfg->auth.users[i].name);
        free(cfg->auth.users[i].password);
    }
    free(cfg->auth.users);
    free(cfg->auth.password);
    free(cfg->admin.token);
    free(cfg->upstream.username);
    free(cfg->upstream.password);
    for (size_t i = 0; i < cfg->notify.ncommand; i++)
        free(cfg->notify.command[i]);
    free(cfg->notify.command);
    free(cfg->notify.webhook);
    free(cfg->notify.webhook_path);
    config_tls_free(cfg);
    free(cfg->backup.dir);
    free(cfg->backup.redis_server);
    free(cfg);
    *cfgp = NULL;
}

struct config *config_acquire(struct config *cfg)
{
    if (cfg) atomic_fetch_add_explicit(&cfg->refs, 1, memory_order_relaxed);
    return cfg;
}

void config_release(struct config **cfgp)
{
    struct config *cfg = *cfgp;
    *cfgp = NULL;
    if (cfg && atomic_fetch_sub_explicit(&cfg->refs, 1, memory_order_acq_rel) == 1)
        config_destroy(&cfg);
}
