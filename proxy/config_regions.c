/* config_regions: the regions of a config - their nodes and Sentinels, and the
 * addresses in them. Part of the config module (config.c reads the rest). */
#include "config.h"
#include "config_json.h"
#include "config_tls.h"
#include "config_regions.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int config_parse_addr(const char *s, struct config_addr *out, char *err, size_t errlen)
{
    const char *host = s, *colon;
    size_t hostlen;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return config_json_fail(err, errlen, "expected \"[ipv6]:port\"");
        host = s + 1;
        hostlen = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon) return config_json_fail(err, errlen, "expected \"host:port\"");
        hostlen = (size_t)(colon - s);
        if (memchr(s, ':', hostlen))
            return config_json_fail(err, errlen, "IPv6 addresses need brackets");
    }
    if (hostlen == 0) return config_json_fail(err, errlen, "empty host");
    if (hostlen >= CONFIG_HOST_MAX) return config_json_fail(err, errlen, "host too long");

    const char *p = colon + 1;
    long port = 0;
    if (*p == '\0') return config_json_fail(err, errlen, "missing port");
    for (; *p; p++) {
        if (*p < '0' || *p > '9' || port > 65535)
            return config_json_fail(err, errlen, "port must be a number from 1 to 65535");
        port = port * 10 + (*p - '0');
    }
    if (port < 1 || port > 65535)
        return config_json_fail(err, errlen, "port must be a number from 1 to 65535");

    memcpy(out->host, host, hostlen);
    out->host[hostlen] = '\0';
    out->port = (int)port;
    return 0;
}

/* An array of "host:port" strings with no duplicates: *out gets n addresses. */
static int parse_addr_list(json_t *list, const char *path, struct config_addr **out, size_t *n,
                           char *err, size_t errlen)
{
    *n = json_array_size(list);
    if (!(*out = calloc(*n ? *n : 1, sizeof(**out))))
        return config_json_fail(err, errlen, "out of memory");
    for (size_t j = 0; j < *n; j++) {
        json_t *v = json_array_get(list, j);
        char why[128];
        if (!json_is_string(v))
            return config_json_fail(err, errlen, "%s[%zu]: expected a \"host:port\" string", path,
                                    j);
        if (config_parse_addr(json_string_value(v), &(*out)[j], why, sizeof(why)))
            return config_json_fail(err, errlen, "%s[%zu]: %s", path, j, why);
        for (size_t k = 0; k < j; k++)
            if (strcmp((*out)[k].host, (*out)[j].host) == 0 && (*out)[k].port == (*out)[j].port)
                return config_json_fail(err, errlen, "%s[%zu]: duplicate of [%zu]", path, j, k);
    }
    return 0;
}

static int parse_sentinel(json_t *s, const char *rpath, struct config_region *reg, char *err,
                          size_t errlen)
{
    static const char *const keys[] = {"addresses", "master_name", "username",
                                       "password",  "tls",         NULL};
    char path[80];
    snprintf(path, sizeof(path), "%s.sentinel", rpath);
    if (!json_is_object(s)) return config_json_fail(err, errlen, "%s: expected an object", path);
    if (config_json_keys(s, path, keys, err, errlen)) return -1;
    json_t *list = json_object_get(s, "addresses");
    char lpath[96];
    snprintf(lpath, sizeof(lpath), "%s.addresses", path);
    if (!json_is_array(list) || json_array_size(list) == 0)
        return config_json_fail(err, errlen, "%s: expected a non-empty array of \"host:port\"",
                                lpath);
    if (parse_addr_list(list, lpath, &reg->sentinels, &reg->nsentinels, err, errlen) ||
        config_json_string(s, path, "master_name", &reg->master_name, err, errlen) ||
        config_json_string(s, path, "username", &reg->sentinel_username, err, errlen) ||
        config_json_string(s, path, "password", &reg->sentinel_password, err, errlen) ||
        config_parse_tls_out(s, path, &reg->sentinel_tls, err, errlen))
        return -1;
    if (!reg->master_name)
        return config_json_fail(err, errlen,
                                "%s.master_name: required (the name Sentinel monitors)", path);
    if (strlen(reg->master_name) > CONFIG_HOST_MAX - 1 || strpbrk(reg->master_name, " \r\n"))
        return config_json_fail(err, errlen, "%s.master_name: must be one word", path);
    if (reg->sentinel_username && !reg->sentinel_password)
        return config_json_fail(err, errlen, "%s.password: required with a username", path);
    return 0;
}

/* "10.1.0.0/16", "fd00::/8", or a host-name suffix ("east.example.com", ".east"). */
static int parse_match_one(const char *s, struct config_match *m)
{
    char addr[INET6_ADDRSTRLEN];
    const char *slash = strchr(s, '/');
    if (slash) {
        size_t n = (size_t)(slash - s);
        char *end;
        long bits = strtol(slash + 1, &end, 10);
        if (n == 0 || n >= sizeof(addr) || *end || end == slash + 1) return -1;
        memcpy(addr, s, n);
        addr[n] = '\0';
        m->family = strchr(addr, ':') ? AF_INET6 : AF_INET;
        if (inet_pton(m->family, addr, m->addr) != 1) return -1;
        if (bits < 0 || bits > (m->family == AF_INET ? 32 : 128)) return -1;
        m->bits = (int)bits;
        return 0;
    }
    if (*s == '.') s++;
    size_t n = strlen(s);
    if (n == 0 || n >= sizeof(m->suffix)) return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!isalnum(ch) && ch != '-' && ch != '.' && ch != '_') return -1;
        m->suffix[i] = (char)tolower(ch);
    }
    m->suffix[n] = '\0';
    return 0;
}

static int parse_match(json_t *list, const char *rpath, struct config_region *reg, char *err,
                       size_t errlen)
{
    if (!list || json_is_null(list)) return 0;
    if (!json_is_array(list))
        return config_json_fail(err, errlen,
                                "%s.match: expected an array of CIDR blocks (\"10.1.0.0/16\") or "
                                "host-name suffixes (\"east.example.com\")",
                                rpath);
    reg->nmatch = json_array_size(list);
    if (!(reg->match = calloc(reg->nmatch ? reg->nmatch : 1, sizeof(*reg->match))))
        return config_json_fail(err, errlen, "out of memory");
    for (size_t j = 0; j < reg->nmatch; j++) {
        const char *v = json_string_value(json_array_get(list, j));
        if (!v || parse_match_one(v, &reg->match[j]))
            return config_json_fail(err, errlen,
                                    "%s.match[%zu]: expected a CIDR block like \"10.1.0.0/16\" or "
                                    "a host-name suffix like \"east.example.com\"",
                                    rpath, j);
    }
    return 0;
}

static int parse_region(json_t *r, size_t i, struct config_region *reg, char *err, size_t errlen)
{
    static const char *const keys[] = {"name", "priority", "nodes", "sentinel", "match", NULL};
    char path[64];
    snprintf(path, sizeof(path), "regions[%zu]", i);

    if (!json_is_object(r)) return config_json_fail(err, errlen, "%s: expected an object", path);
    if (config_json_keys(r, path, keys, err, errlen)) return -1;

    json_t *name = json_object_get(r, "name");
    if (!json_is_string(name) || json_string_length(name) == 0)
        return config_json_fail(err, errlen, "%s.name: expected a non-empty string", path);
    reg->name = strdup(json_string_value(name));
    if (!reg->name) return config_json_fail(err, errlen, "out of memory");

    reg->priority = 0;
    if (config_json_int(r, path, "priority", 0, 1000000, &reg->priority, err, errlen) ||
        parse_match(json_object_get(r, "match"), path, reg, err, errlen))
        return -1;

    json_t *sentinel = json_object_get(r, "sentinel");
    if (sentinel && !json_is_null(sentinel) && parse_sentinel(sentinel, path, reg, err, errlen))
        return -1;
    /* With Sentinel, the nodes are discovered; listed ones are probed from the start. */
    json_t *nodes = json_object_get(r, "nodes");
    char npath[80];
    snprintf(npath, sizeof(npath), "%s.nodes", path);
    if (!nodes && reg->nsentinels) return 0;
    if (!json_is_array(nodes) || (json_array_size(nodes) == 0 && !reg->nsentinels))
        return config_json_fail(err, errlen, "%s: expected a non-empty array of \"host:port\"%s",
                                npath, " (or a \"sentinel\" object in the region)");
    return parse_addr_list(nodes, npath, &reg->nodes, &reg->nnodes, err, errlen);
}

/* local_region, or RESPGATE_REGION in its place (sidecars share one file across
 * regions and learn theirs from the pod); then routing.prefer's default. */
static int parse_local_region(json_t *root, struct config *cfg, char *err, size_t errlen)
{
    const char *env = getenv("RESPGATE_REGION"), *name = NULL, *from = "local_region";
    json_t *v = json_object_get(root, "local_region");
    if (v && !json_is_null(v) && (!json_is_string(v) || !json_string_length(v)))
        return config_json_fail(err, errlen, "local_region: expected a region's name");
    if (v && json_is_string(v)) name = json_string_value(v);
    if (env && *env) {
        name = env;
        from = "RESPGATE_REGION (in place of local_region)";
    }
    cfg->local_region = -1;
    for (size_t i = 0; name && i < cfg->nregions; i++)
        if (strcmp(cfg->regions[i].name, name) == 0) cfg->local_region = (int)i;
    if (name && cfg->local_region < 0)
        return config_json_fail(err, errlen, "%s: \"%.64s\" is not the name of a region", from,
                                name);
    if (cfg->routing.prefer_local < 0) cfg->routing.prefer_local = cfg->local_region >= 0;
    if (cfg->routing.prefer_local && cfg->local_region < 0)
        return config_json_fail(err, errlen,
                                "routing.prefer: \"local\" needs local_region (or "
                                "RESPGATE_REGION)");
    int sentinel = 0;
    for (size_t i = 0; i < cfg->nregions; i++)
        sentinel |= cfg->regions[i].nsentinels > 0;
    /* Sentinel promotes by replica-priority: without it set by region, a failback
     * could land anywhere. */
    if (cfg->failover.failback_after_ms &&
        (!sentinel || cfg->failover.region_priority == CONFIG_RP_OFF))
        return config_json_fail(err, errlen,
                                "failover.failback_after_ms: needs Sentinel and "
                                "failover.region_priority \"apply\" (or \"check\" with "
                                "replica-priority set by hand)");
    return 0;
}

int config_parse_regions(json_t *root, struct config *cfg, char *err, size_t errlen)
{
    json_t *regions = json_object_get(root, "regions");
    if (!regions) return config_json_fail(err, errlen, "regions: required");
    if (!json_is_array(regions) || json_array_size(regions) == 0)
        return config_json_fail(err, errlen, "regions: expected a non-empty array");
    if (json_array_size(regions) > CONFIG_REGIONS_MAX)
        return config_json_fail(err, errlen, "regions: at most %d", CONFIG_REGIONS_MAX);

    cfg->regions = calloc(json_array_size(regions), sizeof(*cfg->regions));
    if (!cfg->regions) return config_json_fail(err, errlen, "out of memory");
    for (size_t i = 0; i < json_array_size(regions); i++) {
        cfg->nregions = i + 1; /* so destroy frees what was filled */
        if (parse_region(json_array_get(regions, i), i, &cfg->regions[i], err, errlen)) return -1;
        for (size_t k = 0; k < i; k++)
            if (strcmp(cfg->regions[k].name, cfg->regions[i].name) == 0)
                return config_json_fail(err, errlen, "regions[%zu].name: duplicate of regions[%zu]",
                                        i, k);
    }
    /* Regions are parts of one replication group: their Sentinels watch one master. */
    const struct config_region *first = NULL;
    for (size_t i = 0; i < cfg->nregions; i++) {
        const struct config_region *r = &cfg->regions[i];
        if (!r->master_name) continue;
        if (first && strcmp(first->master_name, r->master_name) != 0)
            return config_json_fail(err, errlen,
                                    "regions[%zu].sentinel.master_name: \"%s\" differs from \"%s\" "
                                    "elsewhere; respgate follows one master",
                                    i, r->master_name, first->master_name);
        if (!first) first = r;
    }
    return parse_local_region(root, cfg, err, errlen);
}

const struct config_region *config_primary_region(const struct config *cfg)
{
    const struct config_region *best = &cfg->regions[0];
    for (size_t i = 1; i < cfg->nregions; i++)
        if (cfg->regions[i].priority < best->priority) best = &cfg->regions[i];
    return best;
}
