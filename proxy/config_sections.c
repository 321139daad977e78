/* config_sections: see config_sections.h. */
#include "config_sections.h"
#include "config_json.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int config_parse_auth(json_t *root, struct config *cfg, char *err, size_t errlen)
{
    static const char *const keys[] = {"password", "users", NULL};
    static const char *const user_keys[] = {"name", "password", NULL};
    json_t *obj;
    if (config_json_object(root, "", "auth", &obj, err, errlen)) return -1;
    if (!obj) return 0;
    if (config_json_keys(obj, "auth", keys, err, errlen) ||
        config_json_string(obj, "auth", "password", &cfg->auth.password, err, errlen))
        return -1;
    json_t *users = json_object_get(obj, "users");
    if (!users || json_is_null(users)) return 0;
    if (!json_is_array(users))
        return config_json_fail(err, errlen, "auth.users: expected an array");
    cfg->auth.users = calloc(json_array_size(users) + 1, sizeof(*cfg->auth.users));
    if (!cfg->auth.users) return config_json_fail(err, errlen, "out of memory");
    for (size_t i = 0; i < json_array_size(users); i++) {
        json_t *u = json_array_get(users, i);
        char path[48];
        snprintf(path, sizeof(path), "auth.users[%zu]", i);
        if (!json_is_object(u))
            return config_json_fail(err, errlen, "%s: expected an object", path);
        struct config_user *cu = &cfg->auth.users[cfg->auth.nusers++];
        if (config_json_keys(u, path, user_keys, err, errlen) ||
            config_json_string(u, path, "name", &cu->name, err, errlen) ||
            config_json_string(u, path, "password", &cu->password, err, errlen))
            return -1;
        if (!cu->name || !cu->password)
            return config_json_fail(err, errlen, "%s: needs \"name\" and \"password\"", path);
    }
    return 0;
}

/* Commands that would break respgate's view of the nodes, or other clients'. */
static const char *const default_deny[] = {
    "replicaof",      "slaveof", "failover", "shutdown", "debug", "client|pause",
    "client|unpause", "sync",    "psync",    "replconf", NULL};

static int add_deny(struct config *cfg, const char *name)
{
    char *copy = strdup(name);
    if (!copy) return -1;
    for (char *p = copy; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    cfg->deny[cfg->ndeny++] = copy;
    return 0;
}

int config_parse_deny(json_t *root, struct config *cfg, char *err, size_t errlen)
{
    static const char name_chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                     "0123456789_.|-";
    json_t *list = json_object_get(root, "deny_commands");
    size_t n = 0;
    if (list && !json_is_array(list))
        return config_json_fail(err, errlen, "deny_commands: expected an array of command names");
    if (list)
        n = json_array_size(list);
    else
        while (default_deny[n])
            n++;
    if (!(cfg->deny = calloc(n + 1, sizeof(*cfg->deny))))
        return config_json_fail(err, errlen, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *name = list ? json_string_value(json_array_get(list, i)) : default_deny[i];
        if (!name || !*name || strlen(name) > 64 || strspn(name, name_chars) != strlen(name))
            return config_json_fail(
                err, errlen,
                "deny_commands[%zu]: expected a command name like \"shutdown\" or "
                "\"client|kill\"",
                i);
        if (add_deny(cfg, name)) return config_json_fail(err, errlen, "out of memory");
    }
    return 0;
}

int config_parse_routing(json_t *root, struct config *cfg, char *err, size_t errlen)
{
    static const char *const keys[] = {
        "reads", "max_lag_bytes", "max_lag_ms", "read_your_writes", "no_replica", "prefer", NULL};
    static const char *const prefer[] = {"none", "local", NULL};
    static const char *const reads[] = {"replica", "master", "any", NULL}; /* enum route_reads */
    static const char *const no_replica[] = {"master", "error", NULL};
    json_t *obj;
    if (config_json_object(root, "", "routing", &obj, err, errlen)) return -1;
    if (!obj) return 0;
    if (config_json_keys(obj, "routing", keys, err, errlen) ||
        config_json_choice(obj, "routing", "reads", reads, &cfg->routing.reads, err, errlen) ||
        config_json_choice(obj, "routing", "no_replica", no_replica, &cfg->routing.no_replica_error,
                           err, errlen) ||
        config_json_int(obj, "routing", "max_lag_bytes", 0, 1LL << 40, &cfg->routing.max_lag_bytes,
                        err, errlen) ||
        config_json_int(obj, "routing", "max_lag_ms", 0, 3600000, &cfg->routing.max_lag_ms, err,
                        errlen) ||
        config_json_choice(obj, "routing", "prefer", prefer, &cfg->routing.prefer_local, err,
                           errlen))
        return -1;
    json_t *ryw = json_object_get(obj, "read_your_writes");
    if (ryw && !json_is_boolean(ryw))
        return config_json_fail(err, errlen, "routing.read_your_writes: expected true or false");
    if (ryw) cfg->routing.read_your_writes = json_is_true(ryw);
    return 0;
}

/* "http://host[:port][/path]": plain HTTP, as evhttp speaks it. */
static int parse_webhook(struct config *cfg, char *err, size_t errlen)
{
    const char *u = cfg->notify.webhook, *scheme = "http://";
    if (strncmp(u, scheme, strlen(scheme)) != 0)
        return config_json_fail(err, errlen,
                                "notify.webhook: expected an http:// URL (no TLS: put a local "
                                "relay in front of an https endpoint)");
    const char *host = u + strlen(scheme), *slash = strchr(host, '/');
    size_t hostlen = slash ? (size_t)(slash - host) : strlen(host);
    char hostport[CONFIG_HOST_MAX + 8], why[128];
    if (hostlen == 0 || hostlen >= sizeof(hostport) - 4)
        return config_json_fail(err, errlen, "notify.webhook: expected http://host[:port]/path");
    memcpy(hostport, host, hostlen);
    hostport[hostlen] = '\0';
    /* Without a port (and not a bare IPv6 literal with one), HTTP's own. */
    const char *close = strrchr(hostport, ']'), *colon = strrchr(hostport, ':');
    if (!colon || (close && colon < close)) strcat(hostport, ":80");
    if (config_parse_addr(hostport, &cfg->notify.webhook_addr, why, sizeof(why)))
        return config_json_fail(err, errlen, "notify.webhook: %s", why);
    if (!(cfg->notify.webhook_path = strdup(slash ? slash : "/")))
        return config_json_fail(err, errlen, "out of memory");
    for (const char *p = u; *p; p++)
        if ((unsigned char)*p <= ' ')
            return config_json_fail(err, errlen,
                                    "notify.webhook: spaces and control characters not allowed");
    return 0;
}

int config_parse_notify(json_t *root, struct config *cfg, char *err, size_t errlen)
{
    static const char *const keys[] = {"command", "webhook", "timeout_ms", NULL};
    json_t *obj;
    long long v = cfg->notify.timeout_ms;
    if (config_json_object(root, "", "notify", &obj, err, errlen)) return -1;
    if (!obj) return 0;
    if (config_json_keys(obj, "notify", keys, err, errlen) ||
        config_json_int(obj, "notify", "timeout_ms", 10, 600000, &v, err, errlen) ||
        config_json_string(obj, "notify", "webhook", &cfg->notify.webhook, err, errlen))
        return -1;
    cfg->notify.timeout_ms = (int)v;
    if (cfg->notify.webhook && parse_webhook(cfg, err, errlen)) return -1;
    json_t *cmd = json_object_get(obj, "command");
    if (!cmd || json_is_null(cmd)) return 0;
    if (!json_is_array(cmd) || json_array_size(cmd) == 0 || json_array_size(cmd) > 64)
        return config_json_fail(err, errlen,
                                "notify.command: expected an argv array like [\"/path/to/hook\", "
                                "\"arg\"] (the event's fields are appended)");
    size_t n = json_array_size(cmd);
    if (!(cfg->notify.command = calloc(n + 1, sizeof(char *))))
        return config_json_fail(err, errlen, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *a = json_string_value(json_array_get(cmd, i));
        if (!a || (i == 0 && !*a))
            return config_json_fail(err, errlen, "notify.command[%zu]: expected a%s string", i,
                                    i ? "" : " non-empty");
        if (!(cfg->notify.command[i] = strdup(a)))
            return config_json_fail(err, errlen, "out of memory");
        cfg->notify.ncommand = i + 1;
    }
    return 0;
}

int config_parse_durability(json_t *root, struct config *cfg, char *err, size_t errlen)
{
    static const char *const keys[] = {"min_replicas", "timeout_ms", "on_timeout",
                                       "min_replicas_in_other_regions", NULL};
    static const char *const on_timeout[] = {"error", "reply", NULL}; /* config_durable_timeout */
    json_t *obj;
    long long n = cfg->durability.min_replicas, t = cfg->durability.timeout_ms,
              o = cfg->durability.min_replicas_in_other_regions;
    if (config_json_object(root, "", "durability", &obj, err, errlen)) return -1;
    if (!obj) return 0;
    if (config_json_keys(obj, "durability", keys, err, errlen) ||
        config_json_int(obj, "durability", "min_replicas", 0, 16, &n, err, errlen) ||
        config_json_int(obj, "durability", "timeout_ms", 1, 60000, &t, err, errlen) ||
        config_json_int(obj, "durability", "min_replicas_in_other_regions", 0, 16, &o, err,
                        errlen) ||
        config_json_choice(obj, "durability", "on_timeout", on_timeout, &cfg->durability.on_timeout,
                           err, errlen))
        return -1;
    cfg->durability.min_replicas = (int)n;
    cfg->durability.timeout_ms = (int)t;
    cfg->durability.min_replicas_in_other_regions = (int)o;
    if (o > n)
        return config_json_fail(err, errlen,
                                "durability.min_replicas_in_other_regions: at most "
                                "durability.min_replicas (%lld)",
                                n);
    return 0;
}

int config_parse_backup(json_t *root, struct config *cfg, char *err, size_t errlen)
{
    static const char *const keys[] = {"dir",    "interval_ms",  "retention", "source",
                                       "verify", "redis_server", NULL};
    static const char *const rkeys[] = {"count", "max_age_ms", NULL};
    static const char *const sources[] = {"replica", "master", NULL};
    json_t *obj, *ret;
    long long count = cfg->backup.retention_count;
    if (config_json_object(root, "", "backup", &obj, err, errlen)) return -1;
    if (!obj) return 0;
    if (config_json_keys(obj, "backup", keys, err, errlen) ||
        config_json_string(obj, "backup", "dir", &cfg->backup.dir, err, errlen) ||
        config_json_string(obj, "backup", "redis_server", &cfg->backup.redis_server, err, errlen) ||
        config_json_int(obj, "backup", "interval_ms", 0, 86400000LL * 365, &cfg->backup.interval_ms,
                        err, errlen) ||
        config_json_choice(obj, "backup", "source", sources, &cfg->backup.from_master, err,
                           errlen) ||
        config_json_object(obj, "backup", "retention", &ret, err, errlen))
        return -1;
    if (ret && (config_json_keys(ret, "backup.retention", rkeys, err, errlen) ||
                config_json_int(ret, "backup.retention", "count", 1, 100000, &count, err, errlen) ||
                config_json_int(ret, "backup.retention", "max_age_ms", 0, 86400000LL * 3650,
                                &cfg->backup.retention_max_age_ms, err, errlen)))
        return -1;
    cfg->backup.retention_count = (int)count;
    json_t *v = json_object_get(obj, "verify");
    if (v && !json_is_boolean(v))
        return config_json_fail(err, errlen, "backup.verify: expected true or false");
    if (v) cfg->backup.verify = json_is_true(v);
    if ((cfg->backup.interval_ms || cfg->backup.verify) && !cfg->backup.dir)
        return config_json_fail(err, errlen,
                                "backup.dir: required with backup.interval_ms or "
                                "backup.verify");
    return 0;
}

int config_parse_slo(json_t *root, struct config *cfg, char *err, size_t errlen)
{
    static const char *const keys[] = {"availability", NULL};
    json_t *obj;
    if (config_json_object(root, "", "slo", &obj, err, errlen)) return -1;
    if (!obj) return 0;
    if (config_json_keys(obj, "slo", keys, err, errlen)) return -1;
    json_t *a = json_object_get(obj, "availability");
    if (!a) return 0;
    if (!json_is_number(a) || json_number_value(a) <= 0 || json_number_value(a) >= 1)
        return config_json_fail(err, errlen,
                                "slo.availability: expected a number between 0 and 1, "
                                "like 0.9999 (\"four nines\")");
    cfg->slo.availability = json_number_value(a);
    return 0;
}
