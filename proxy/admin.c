/* admin: see admin.h. Runs on the control thread's event_base; reads only the
 * snapshots the probe publishes, so it needs no lock and touches no worker. */
#include "admin.h"
#include "log.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct admin {
    const struct config *cfg;
    struct evhttp *http;
    struct route_policy policy;
    admin_snapshot_fn snapshot;
    void *arg;
};

static void reply(struct evhttp_request *req, int code, const char *type, const char *body)
{
    struct evbuffer *out = evbuffer_new();
    if (!out) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    evbuffer_add(out, body, strlen(body));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
    evhttp_send_reply(req, code, code == 200 ? "OK" : NULL, out);
    evbuffer_free(out);
}

/* Compares without an early exit, so timing does not tell how much matched. */
static int token_ok(const struct admin *a, struct evhttp_request *req)
{
    if (!a->cfg->admin.token) return 1;
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (!h || strncmp(h, "Bearer ", 7) != 0) return 0;
    const char *given = h + 7, *want = a->cfg->admin.token;
    size_t n = strlen(given), len = strlen(want);
    unsigned char diff = n != len;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(given[i] ^ want[i % (len ? len : 1)]);
    return diff == 0;
}

static const char *role_name(enum topo_role r)
{
    return r == TOPO_MASTER ? "master" : r == TOPO_REPLICA ? "replica" : "unknown";
}

static json_t *topology_json(const struct admin *a, const struct topology *t)
{
    json_t *nodes = json_array();
    int64_t now = topo_now_ns();
    for (size_t i = 0; i < t->nnodes; i++) {
        const struct topo_node *n = &t->nodes[i];
        long long lag = topo_lag(t, i);
        json_array_append_new(
            nodes, json_pack("{s:s, s:s, s:s, s:b, s:b, s:b, s:I, s:o, s:o, s:b, s:b, s:f}",
                             "address", n->name, "region", a->cfg->regions[n->region].name, "role",
                             role_name(n->role), "listed", n->listed, "reachable", n->reachable,
                             "link_up", n->link_up, "offset", (json_int_t)n->offset, "lag_bytes",
                             lag >= 0 ? json_integer(lag) : json_null(), "follows",
                             n->follows >= 0 ? json_string(t->nodes[n->follows].name) : json_null(),
                             "master", (int)i == t->master, "eligible_for_reads",
                             route_read_eligible(t, &a->policy, i), "probed_seconds_ago",
                             n->probed_ns ? (double)(now - n->probed_ns) / 1e9 : -1.0));
    }
    return json_pack(
        "{s:I, s:o, s:o, s:o, s:o}", "generation", (json_int_t)t->generation, "master",
        t->master >= 0 ? json_string(t->nodes[t->master].name) : json_null(), "master_for_seconds",
        t->master >= 0 && t->master_since_ns ? json_real((double)(now - t->master_since_ns) / 1e9)
                                             : json_null(),
        "why_no_master", t->why_no_master ? json_string(t->why_no_master) : json_null(), "nodes",
        nodes);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct admin *a = arg;
    const char *uri = evhttp_request_get_uri(req);
    struct evhttp_uri *parsed = evhttp_uri_parse(uri);
    const char *path = parsed ? evhttp_uri_get_path(parsed) : NULL;
    char body[512];
    if (!path) path = "";
    int is_get = evhttp_request_get_command(req) == EVHTTP_REQ_GET;
    int open = strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0;

    if (!open && !token_ok(a, req)) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", "Bearer");
        reply(req, 401, "text/plain", "admin.token required: Authorization: Bearer <token>\n");
    } else if (strcmp(path, "/healthz") == 0 && is_get) {
        reply(req, 200, "text/plain", "ok\n");
    } else if (strcmp(path, "/readyz") == 0 && is_get) {
        struct topology *t = a->snapshot(a->arg);
        int ready = t && t->master >= 0 && t->nodes[t->master].reachable;
        if (ready)
            snprintf(body, sizeof(body), "ready: master %s\n", t->nodes[t->master].name);
        else
            snprintf(body, sizeof(body), "not ready: %s\n",
                     !t                 ? "no node has answered yet"
                     : t->master >= 0   ? "the master does not answer"
                     : t->why_no_master ? t->why_no_master
                                        : "no writable master");
        reply(req, ready ? 200 : 503, "text/plain", body);
        topo_release(&t);
    } else if (strcmp(path, "/topology") == 0 && is_get) {
        struct topology *t = a->snapshot(a->arg);
        json_t *j = t ? topology_json(a, t)
                      : json_pack("{s:n, s:s, s:[]}", "master", "why_no_master",
                                  "no node has answered yet", "nodes");
        char *text = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
        if (text) {
            reply(req, 200, "application/json", text);
        } else {
            evhttp_send_error(req, 500, NULL);
        }
        free(text);
        json_decref(j);
        topo_release(&t);
    } else if (strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0 ||
               strcmp(path, "/topology") == 0) {
        reply(req, 405, "text/plain", "method not allowed\n");
    } else {
        reply(req, 404, "text/plain", "not found: try /healthz, /readyz or /topology\n");
    }
    if (parsed) evhttp_uri_free(parsed);
}

struct admin *admin_start(struct event_base *base, const struct config *cfg,
                          admin_snapshot_fn snapshot, void *arg, char *err, size_t errlen)
{
    err[0] = '\0';
    if (!cfg->admin.enabled) return NULL;
    struct admin *a = calloc(1, sizeof(*a));
    if (!a || !(a->http = evhttp_new(base))) {
        snprintf(err, errlen, "admin: out of memory");
        free(a);
        return NULL;
    }
    a->cfg = cfg;
    a->snapshot = snapshot;
    a->arg = arg;
    a->policy = (struct route_policy){.reads = (enum route_reads)cfg->routing.reads,
                                      .max_lag_bytes = cfg->routing.max_lag_bytes,
                                      .lag_tie_bytes = ROUTE_LAG_TIE_BYTES,
                                      .no_replica_error = cfg->routing.no_replica_error};
    /* Bounded: the endpoint must not become a way to exhaust memory or sockets. */
    evhttp_set_max_headers_size(a->http, 8192);
    evhttp_set_max_body_size(a->http, 65536);
    evhttp_set_timeout(a->http, 10);
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD);
    evhttp_set_gencb(a->http, on_request, a);
    if (!evhttp_bind_socket_with_handle(a->http, cfg->admin.listen.host,
                                        (ev_uint16_t)cfg->admin.listen.port)) {
        snprintf(err, errlen, "admin.listen %s:%d: cannot bind (in use?)", cfg->admin.listen.host,
                 cfg->admin.listen.port);
        admin_stop(&a);
        return NULL;
    }
    log_info("admin endpoint on http://%s:%d%s", cfg->admin.listen.host, cfg->admin.listen.port,
             cfg->admin.token ? " (bearer token required)" : "");
    return a;
}

void admin_stop(struct admin **ap)
{
    struct admin *a = *ap;
    if (!a) return;
    if (a->http) evhttp_free(a->http);
    free(a);
    *ap = NULL;
}
