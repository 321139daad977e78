/* info: see info.h. INFO is "key:value" lines ending in CRLF, "# Section" headers. */
#include "info.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

static int field_is(const char *line, size_t n, const char *key, const char **value, size_t *vlen)
{
    size_t k = strlen(key);
    if (n <= k || line[k] != ':' || memcmp(line, key, k) != 0) return 0;
    *value = line + k + 1;
    *vlen = n - k - 1;
    return 1;
}

static int parse_ll(const char *v, size_t n, long long *out)
{
    char buf[32];
    if (n == 0 || n >= sizeof(buf)) return -1;
    memcpy(buf, v, n);
    buf[n] = '\0';
    char *end;
    *out = strtoll(buf, &end, 10);
    return *end == '\0' ? 0 : -1;
}

static int equals(const char *v, size_t n, const char *s)
{
    return n == strlen(s) && memcmp(v, s, n) == 0;
}

/* "slaveN:ip=10.0.0.2,port=6380,state=online,offset=...,lag=0": the address, if the
 * replica is online (one still syncing has nothing to serve). */
static void parse_replica(const char *v, size_t n, struct info_replication *out)
{
    char ip[CONFIG_HOST_MAX] = "";
    long long port = 0;
    int online = 0;
    for (const char *p = v, *end = v + n; p < end;) {
        const char *comma = memchr(p, ',', (size_t)(end - p)), *eq;
        size_t fn = (size_t)((comma ? comma : end) - p);
        if ((eq = memchr(p, '=', fn))) {
            size_t kn = (size_t)(eq - p), vn = fn - kn - 1;
            if (kn == 2 && memcmp(p, "ip", 2) == 0 && vn < sizeof(ip)) {
                memcpy(ip, eq + 1, vn);
                ip[vn] = '\0';
            } else if (kn == 4 && memcmp(p, "port", 4) == 0) {
                if (parse_ll(eq + 1, vn, &port)) port = 0;
            } else if (kn == 5 && memcmp(p, "state", 5) == 0) {
                online = equals(eq + 1, vn, "online");
            }
        }
        p = comma ? comma + 1 : end;
    }
    if (!ip[0] || port < 1 || port > 65535 || !online || out->nreplicas >= INFO_REPLICAS_MAX)
        return;
    struct config_addr *a = &out->replicas[out->nreplicas++];
    memcpy(a->host, ip, sizeof(ip));
    a->port = (int)port;
}

int info_parse(const char *text, size_t len, struct info_replication *out)
{
    long long master_offset = -1, replica_offset = -1, port = 0;
    int have_role = 0;
    memset(out, 0, sizeof(*out));
    out->priority = -1;

    for (const char *p = text, *end = text + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((nl ? nl : end) - p);
        const char *line = p, *v;
        size_t vn;
        p = nl ? nl + 1 : end;
        if (n && line[n - 1] == '\r') n--;

        if (field_is(line, n, "role", &v, &vn)) {
            have_role = 1;
            out->role = equals(v, vn, "master")  ? TOPO_MASTER
                        : equals(v, vn, "slave") ? TOPO_REPLICA
                                                 : TOPO_UNKNOWN;
        } else if (field_is(line, n, "master_host", &v, &vn)) {
            if (vn == 0 || vn >= sizeof(out->master.host)) return -1;
            memcpy(out->master.host, v, vn);
            out->master.host[vn] = '\0';
        } else if (field_is(line, n, "master_port", &v, &vn)) {
            if (parse_ll(v, vn, &port) || port < 1 || port > 65535) return -1;
        } else if (field_is(line, n, "master_link_status", &v, &vn)) {
            out->link_up = equals(v, vn, "up");
        } else if (field_is(line, n, "master_sync_in_progress", &v, &vn)) {
            out->syncing = equals(v, vn, "1");
        } else if (field_is(line, n, "slave_priority", &v, &vn)) {
            long long prio;
            if (parse_ll(v, vn, &prio) || prio < 0 || prio > INT_MAX) return -1;
            out->priority = (int)prio;
        } else if (field_is(line, n, "loading", &v, &vn)) {
            out->loading = equals(v, vn, "1");
        } else if (field_is(line, n, "master_repl_offset", &v, &vn)) {
            if (parse_ll(v, vn, &master_offset)) return -1;
        } else if (field_is(line, n, "slave_repl_offset", &v, &vn)) {
            if (parse_ll(v, vn, &replica_offset)) return -1;
        } else if (n > 6 && memcmp(line, "slave", 5) == 0 && line[5] >= '0' && line[5] <= '9' &&
                   (v = memchr(line, ':', n))) {
            v++;
            parse_replica(v, (size_t)(line + n - v), out);
        }
    }
    if (!have_role) return -1;
    out->master.port = (int)port;
    out->offset = out->role == TOPO_REPLICA ? replica_offset : master_offset;
    if (out->offset < 0) out->offset = 0;
    return 0;
}

void info_hello_version(const char *reply, size_t len, char *out, size_t outlen)
{
    static const char key[] = "$7\r\nversion\r\n$";
    const char *at = memmem(reply, len, key, sizeof(key) - 1);
    if (!at) return;
    at += sizeof(key) - 1;
    const char *end = reply + len, *crlf = memchr(at, '\r', (size_t)(end - at));
    if (!crlf) return;
    size_t n = (size_t)strtoul(at, NULL, 10);
    if (n == 0 || n >= outlen || crlf + 2 + n > end) return;
    memcpy(out, crlf + 2, n);
    out[n] = '\0';
}
