/* config_dump: the running config as operators see it (GET /config), and what a
 * reload cannot change without a restart. Kept apart from config.c, which only
 * reads JSON. */
#include "config.h"
#include "log.h"

#include <jansson.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REDACTED "(redacted)"

static json_t *addr_json(const struct config_addr *a)
{
    char s[CONFIG_HOST_MAX + 16];
    snprintf(s, sizeof(s), strchr(a->host, ':') ? "[%s]:%d" : "%s:%d", a->host, a->port);
    return json_string(s);
}

static json_t *addr_list(const struct config_addr *a, size_t n)
{
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, addr_json(&a[i]));
    return list;
}

/* A secret shows only whether it is set, unless it is compared, not shown. */
static json_t *secret(const char *s, int redact)
{
    return s ? json_string(redact ? REDACTED : s) : json_null();
}

static json_t *nullable(const char *s)
{
    return s ? json_string(s) : json_null();
}

void config_redact_url(const char *url, char *out, size_t outlen)
{
    const char *sep = strstr(url, "://");
    if (!sep) { /* not a URL we understand: nothing of it is shown */
        snprintf(out, outlen, "%s", REDACTED);
        return;
    }
    const char *auth = sep + 3, *rest = auth + strcspn(auth, "/?#");
    const char *host = auth;
    for (const char *p = auth; p < rest; p++)
        if (*p == '@') host = p + 1; /* the last '@': a password may hold one too */
    const char *tail = rest + strcspn(rest, "?#");
    snprintf(out, outlen, "%.*s%s%s%.*s%.*s%s%s", (int)(auth - url), url,
             host > auth ? REDACTED : "", host > auth ? "@" : "", (int)(rest - host), host,
             (int)(tail - rest), rest, *tail ? (*tail == '?' ? "?" : "#") : "",
             *tail ? REDACTED : "");
}

/* The webhook URL without its userinfo and query (tokens travel there). */
static json_t *webhook_json(const char *url, int redact)
{
    if (!url) return json_null();
    if (!redact) return json_string(url);
    size_t n = strlen(url) + 2 * sizeof(REDACTED) + 8;
    char *s = malloc(n);
    if (!s) return json_string(REDACTED);
    config_redact_url(url, s, n);
    json_t *j = json_string(s);
    free(s);
    return j;
}

static json_t *match_list(const struct config_region *r)
{
    json_t *list = json_array();
    for (size_t i = 0; i < r->nmatch; i++) {
        const struct config_match *m = &r->match[i];
        char addr[INET6_ADDRSTRLEN], text[INET6_ADDRSTRLEN + 8];
        if (!m->family)
            snprintf(text, sizeof(text), "%.*s", (int)sizeof(text) - 1, m->suffix);
        else if (inet_ntop(m->family, m->addr, addr, sizeof(addr)))
            snprintf(text, sizeof(text), "%s/%d", addr, m->bits);
        else
            continue;
        json_array_append_new(list, json_string(text));
    }
    return list;
}

static json_t *tls_out_json(const struct config_tls_out *t)
{
    return json_pack("{s:b, s:o, s:o, s:o, s:o, s:b}", "enabled", t->enabled, "ca_file",
                     nullable(t->ca_file), "cert_file", nullable(t->cert_file), "key_file",
                     nullable(t->key_file), "server_name", nullable(t->server_name), "verify",
                     t->verify);
}

static json_t *region_json(const struct config_region *r, int redact)
{
    json_t *o =
        json_pack("{s:s, s:I, s:o, s:o}", "name", r->name, "priority", (json_int_t)r->priority,
                  "nodes", addr_list(r->nodes, r->nnodes), "match", match_list(r));
    if (r->nsentinels)
        json_object_set_new(o, "sentinel",
                            json_pack("{s:o, s:s, s:o, s:o, s:o}", "addresses",
                                      addr_list(r->sentinels, r->nsentinels), "master_name",
                                      r->master_name, "username", nullable(r->sentinel_username),
                                      "password", secret(r->sentinel_password, redact), "tls",
                                      tls_out_json(&r->sentinel_tls)));
    return o;
}

static json_t *base_json(const struct config *cfg, int redact)
{
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    static const char *const reads[] = {"replica", "master", "any"};
    json_t *regions = json_array(), *deny = json_array(), *users = json_array(),
           *command = json_null();
    for (size_t i = 0; i < cfg->nregions; i++)
        json_array_append_new(regions, region_json(&cfg->regions[i], redact));
    for (size_t i = 0; i < cfg->ndeny; i++)
        json_array_append_new(deny, json_string(cfg->deny[i]));
    for (size_t i = 0; i < cfg->auth.nusers; i++)
        json_array_append_new(users,
                              json_pack("{s:s, s:o}", "name", cfg->auth.users[i].name, "password",
                                        secret(cfg->auth.users[i].password, redact)));
    if (cfg->notify.ncommand) {
        command = json_array();
        /* The program shows; its arguments may be credentials (--token=...). */
        for (size_t i = 0; i < cfg->notify.ncommand; i++)
            json_array_append_new(command, i ? secret(cfg->notify.command[i], redact)
                                             : json_string(cfg->notify.command[i]));
    }
    return json_pack(
        "{s:o, s:i, s:{s:s, s:s}, s:i, s:i, s:o, s:{s:s, s:I, s:I, s:b, s:s}, "
        "s:{s:i, s:i, s:o, s:o}, s:{s:o, s:o}, s:o, "
        "s:{s:i, s:I, s:i, s:i, s:I, s:I, s:i, s:I}, s:{s:i, s:i}, s:{s:o, s:o}, s:{s:o, s:o, "
        "s:i}, "
        "s:{s:f}}",
        "listen", addr_json(&cfg->listen), "threads", cfg->threads, "log", "level",
        levels[cfg->log_level], "format", cfg->log_format == CONFIG_LOG_JSON ? "json" : "text",
        "shutdown_timeout_ms", cfg->shutdown_timeout_ms, "probe_interval_ms",
        cfg->probe_interval_ms, "regions", regions, "routing", "reads", reads[cfg->routing.reads],
        "max_lag_bytes", (json_int_t)cfg->routing.max_lag_bytes, "max_lag_ms",
        (json_int_t)cfg->routing.max_lag_ms, "read_your_writes", cfg->routing.read_your_writes,
        "no_replica", cfg->routing.no_replica_error ? "error" : "master", "upstream",
        "connections_per_node", cfg->upstream.connections_per_node, "connect_timeout_ms",
        cfg->upstream.connect_timeout_ms, "username", nullable(cfg->upstream.username), "password",
        secret(cfg->upstream.password, redact), "auth", "password",
        secret(cfg->auth.password, redact), "users", users, "deny_commands", deny, "limits",
        "max_clients", cfg->limits.max_clients, "max_query_buffer_bytes",
        (json_int_t)cfg->limits.max_query_buffer_bytes, "max_pending_per_client",
        cfg->limits.max_pending_per_client, "max_wait_ms", cfg->limits.max_wait_ms,
        "client_output_limit_bytes", (json_int_t)cfg->limits.client_output_limit_bytes,
        "client_output_soft_limit_bytes", (json_int_t)cfg->limits.client_output_soft_limit_bytes,
        "client_output_soft_seconds", cfg->limits.client_output_soft_seconds,
        "client_idle_timeout_ms", (json_int_t)cfg->limits.client_idle_timeout_ms, "failover",
        "hold_ms", cfg->failover.hold_ms, "max_held_requests", cfg->failover.max_held_requests,
        "admin", "listen", cfg->admin.enabled ? addr_json(&cfg->admin.listen) : json_null(),
        "token", secret(cfg->admin.token, redact), "notify", "command", command, "webhook",
        webhook_json(cfg->notify.webhook, redact), "timeout_ms", cfg->notify.timeout_ms, "slo",
        "availability", cfg->slo.availability);
}

/* The keys about regions, beside the rest (json_pack takes at most so many). */
static void add_region_keys(json_t *o, const struct config *cfg)
{
    static const char *const rp[] = {"off", "apply", "check"};
    json_object_set_new(o, "local_region",
                        cfg->local_region >= 0 ? json_string(cfg->regions[cfg->local_region].name)
                                               : json_null());
    json_object_set_new(json_object_get(o, "routing"), "prefer",
                        json_string(cfg->routing.prefer_local ? "local" : "none"));
    json_t *f = json_object_get(o, "failover");
    json_object_set_new(f, "region_priority", json_string(rp[cfg->failover.region_priority]));
    json_object_set_new(f, "failback_after_ms", json_integer(cfg->failover.failback_after_ms));
    json_object_set_new(f, "failback_min_interval_ms",
                        json_integer(cfg->failover.failback_min_interval_ms));
    json_object_set_new(json_object_get(o, "upstream"), "tls", tls_out_json(&cfg->upstream.tls));
    static const char *const auth[] = {"none", "optional", "required"};
    json_t *protocols = json_array();
    if (cfg->tls.min_version != 0x0304) json_array_append_new(protocols, json_string("TLSv1.2"));
    json_array_append_new(protocols, json_string("TLSv1.3"));
    json_object_set_new(
        o, "tls",
        json_pack("{s:o, s:o, s:o, s:o, s:s, s:o, s:o, s:o}", "listen",
                  cfg->tls.enabled ? addr_json(&cfg->tls.listen) : json_null(), "cert_file",
                  nullable(cfg->tls.cert_file), "key_file", nullable(cfg->tls.key_file), "ca_file",
                  nullable(cfg->tls.ca_file), "client_auth", auth[cfg->tls.client_auth],
                  "protocols", protocols, "ciphers", nullable(cfg->tls.ciphers), "ciphersuites",
                  nullable(cfg->tls.ciphersuites)));
    json_object_set_new(
        o, "backup",
        json_pack("{s:o, s:I, s:{s:i, s:I}, s:s, s:b, s:o}", "dir", nullable(cfg->backup.dir),
                  "interval_ms", (json_int_t)cfg->backup.interval_ms, "retention", "count",
                  cfg->backup.retention_count, "max_age_ms",
                  (json_int_t)cfg->backup.retention_max_age_ms, "source",
                  cfg->backup.from_master ? "master" : "replica", "verify", cfg->backup.verify,
                  "redis_server", nullable(cfg->backup.redis_server)));
    json_object_set_new(
        o, "durability",
        json_pack("{s:i, s:i, s:s, s:i}", "min_replicas", cfg->durability.min_replicas,
                  "timeout_ms", cfg->durability.timeout_ms, "on_timeout",
                  cfg->durability.on_timeout == CONFIG_DURABLE_REPLY ? "reply" : "error",
                  "min_replicas_in_other_regions", cfg->durability.min_replicas_in_other_regions));
    json_object_set_new(o, "busy_poll_us", json_integer(cfg->busy_poll_us));
}

json_t *config_to_json(const struct config *cfg, int redact)
{
    json_t *o = base_json(cfg, redact);
    if (o) add_region_keys(o, cfg);
    return o;
}

static int addr_eq(const struct config_addr *a, const struct config_addr *b)
{
    return a->port == b->port && strcmp(a->host, b->host) == 0;
}

static void add_key(char *out, size_t outlen, const char *key)
{
    size_t used = strlen(out);
    snprintf(out + used, outlen - used, "%s%s", used ? ", " : "", key);
}

/* The listeners are bound once (one SO_REUSEPORT socket per worker), the workers
 * are threads started once, and the pools are sized at startup. */
void config_carry_restart_keys(const struct config *old, struct config *next, char *out,
                               size_t outlen)
{
    out[0] = '\0';
    if (!addr_eq(&old->listen, &next->listen)) add_key(out, outlen, "listen");
    if (old->threads != next->threads) add_key(out, outlen, "threads");
    if (old->admin.enabled != next->admin.enabled ||
        (old->admin.enabled && !addr_eq(&old->admin.listen, &next->admin.listen)))
        add_key(out, outlen, "admin.listen");
    if (old->upstream.connections_per_node != next->upstream.connections_per_node)
        add_key(out, outlen, "upstream.connections_per_node");
    if (old->tls.enabled != next->tls.enabled ||
        (old->tls.enabled && !addr_eq(&old->tls.listen, &next->tls.listen)))
        add_key(out, outlen, "tls.listen");
    next->tls.listen = old->tls.listen; /* the certificates do change: next's context */
    next->tls.enabled = old->tls.enabled;
    next->listen = old->listen;
    next->threads = old->threads;
    next->admin.enabled = old->admin.enabled;
    next->admin.listen = old->admin.listen;
    next->upstream.connections_per_node = old->upstream.connections_per_node;
}
