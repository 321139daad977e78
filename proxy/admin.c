/* admin: see admin.h. Runs on the control thread's event_base; reads only what
 * the control thread owns, so it needs no lock and touches no worker. */
#include "admin.h"
#include "log.h"
#include "route.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <jansson.h>
#include <stdio.h>
#include <sys/queue.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A POST /failover waiting for Sentinel's answer; its client may leave first. */
struct pending {
    struct evhttp_request *req; /* NULL once answered for */
    char who[CONFIG_HOST_MAX + 8];
    int region; /* a region failover: who is the node promoted, not a Sentinel */
    LIST_ENTRY(pending) link;
};

struct admin {
    struct config *cfg; /* a reference */
    struct evhttp *http;
    struct route_policy policy;
    struct admin_ops ops;
    LIST_HEAD(, pending) pending;
};

#define ACCEPT_RETRY_MS 100

static void accept_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    evconnlistener_enable(arg);
}

/* Without this evhttp retries a failing accept (EMFILE) at once, for ever: a
 * spinning control thread, and the workers' descriptors taken. Its argument is
 * evhttp's, so the timer carries the listener; the listener outlives it, as it
 * is freed only once the control thread's loop has stopped. */
static void accept_error(struct evconnlistener *l, void *arg)
{
    (void)arg;
    log_warn("admin: accept failed: %s; pausing accepts for %d ms",
             evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()), ACCEPT_RETRY_MS);
    evconnlistener_disable(l);
    struct timeval tv = {0, ACCEPT_RETRY_MS * 1000};
    event_base_once(evconnlistener_get_base(l), -1, EV_TIMEOUT, accept_resume, l, &tv);
}

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
            nodes,
            json_pack("{s:s, s:s, s:s, s:b, s:b, s:b, s:I, s:o, s:o, s:o, s:b, s:b, s:f}",
                      "address", n->name, "region",
                      (size_t)n->region < a->cfg->nregions ? a->cfg->regions[n->region].name : "",
                      "role", role_name(n->role), "listed", n->listed, "reachable", n->reachable,
                      "link_up", n->link_up, "offset", (json_int_t)n->offset, "lag_bytes",
                      lag >= 0 ? json_integer(lag) : json_null(), "lag_ms",
                      n->lag_ns >= 0 ? json_integer(n->lag_ns / 1000000) : json_null(), "follows",
                      n->follows >= 0 ? json_string(t->nodes[n->follows].name) : json_null(),
                      "master", (int)i == t->master, "eligible_for_reads",
                      route_read_eligible(t, &a->policy, i), "probed_seconds_ago",
                      n->probed_ns ? (double)(now - n->probed_ns) / 1e9 : -1.0));
    }
    for (size_t i = 0; i < t->nnodes; i++) { /* failover.region_priority */
        const struct topo_node *n = &t->nodes[i];
        json_t *o = json_array_get(nodes, i);
        json_object_set_new(o, "replica_priority",
                            n->priority >= 0 ? json_integer(n->priority) : json_null());
        json_object_set_new(o, "replica_priority_wanted",
                            n->priority_want ? json_integer(n->priority_want) : json_null());
    }
    int m = t->master;
    json_t *regions = json_array();
    for (size_t r = 0; r < a->cfg->nregions; r++) {
        const struct config_region *cr = &a->cfg->regions[r];
        json_array_append_new(
            regions, json_pack("{s:s, s:I, s:I, s:I, s:b}", "name", cr->name, "priority",
                               (json_int_t)cr->priority, "nodes_configured", (json_int_t)cr->nnodes,
                               "sentinels_configured", (json_int_t)cr->nsentinels, "has_master",
                               m >= 0 && t->nodes[m].region == (int)r));
    }
    double since = m >= 0 && t->master_since_ns ? (double)(now - t->master_since_ns) / 1e9 : -1;
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    json_t *o = json_pack(
        "{s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "generation", (json_int_t)t->generation,
        "master", m >= 0 ? json_string(t->nodes[m].name) : json_null(), "master_since",
        since >= 0 ? json_real((double)wall.tv_sec + wall.tv_nsec / 1e9 - since) : json_null(),
        "master_for_seconds", since >= 0 ? json_real(since) : json_null(), "why_no_master",
        t->why_no_master ? json_string(t->why_no_master) : json_null(), "master_reason",
        m >= 0 && t->master_reason ? json_string(t->master_reason) : json_null(), "regions",
        regions, "nodes", nodes);
    int local = a->cfg->local_region;
    json_object_set_new(o, "local_region",
                        local >= 0 ? json_string(a->cfg->regions[local].name) : json_null());
    return o;
}

static void reply_json(struct evhttp_request *req, int code, json_t *j)
{
    char *text = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
    if (text) {
        size_t n = strlen(text);
        text[n] = '\0';
        struct evbuffer *out = evbuffer_new();
        if (out) {
            evbuffer_add(out, text, n);
            evbuffer_add(out, "\n", 1);
            evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                              "application/json");
            evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
            evhttp_send_reply(req, code, NULL, out);
            evbuffer_free(out);
        } else {
            evhttp_send_error(req, 500, NULL);
        }
    } else {
        evhttp_send_error(req, 500, NULL);
    }
    free(text);
    json_decref(j);
}

static void readyz(struct admin *a, struct evhttp_request *req)
{
    char body[512];
    struct topology *t = a->ops.snapshot(a->ops.arg);
    int known = t && t->master >= 0 && t->nodes[t->master].reachable;
    /* Known to the probe is not enough: a worker may not have reconnected yet. */
    int ready = known && a->ops.ready(a->ops.arg);
    if (ready)
        snprintf(body, sizeof(body), "ready: master %s\n", t->nodes[t->master].name);
    else
        snprintf(body, sizeof(body), "not ready: %s\n",
                 !t                 ? "no node has answered yet"
                 : known            ? "the workers have no verified connection to the master yet"
                 : t->master >= 0   ? "the master does not answer"
                 : t->why_no_master ? t->why_no_master
                                    : "no writable master");
    reply(req, ready ? 200 : 503, "text/plain", body);
    topo_release(&t);
}

static void metrics(struct admin *a, struct evhttp_request *req)
{
    struct evbuffer *out = evbuffer_new();
    if (!out) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    a->ops.metrics(a->ops.arg, out);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

static void failover_done(void *arg, int ok, const char *msg)
{
    struct pending *p = arg;
    LIST_REMOVE(p, link);
    if (p->req) /* if its client left, evhttp detached it: replying frees it */
        reply_json(p->req, ok ? 202 : 502,
                   json_pack("{s:b, s:s, s:s}", "ok", ok, p->region ? "promoted" : "sentinel",
                             p->who, "reply", msg));
    free(p);
}

/* The body of POST /failover: empty (Sentinel fails over), or {"region": name} with
 * an optional "force": true. 0, or -1 with the reason in why. */
static int failover_body(struct evhttp_request *req, char *region, size_t rlen, int *force,
                         char *why, size_t whylen)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    region[0] = '\0';
    *force = 0;
    if (n == 0) return 0;
    if (n > 4096) {
        snprintf(why, whylen, "body too large");
        return -1;
    }
    json_error_t jerr;
    json_t *j = json_loadb((const char *)evbuffer_pullup(in, -1), n, JSON_REJECT_DUPLICATES, &jerr);
    const char *key;
    json_t *v;
    int bad = !json_is_object(j);
    json_object_foreach(j, key, v)
    {
        if (strcmp(key, "region") == 0 && json_is_string(v) && json_string_length(v) < rlen)
            snprintf(region, rlen, "%s", json_string_value(v));
        else if (strcmp(key, "force") == 0 && json_is_boolean(v))
            *force = json_is_true(v);
        else
            bad = 1;
    }
    json_decref(j);
    if (bad || (*force && !region[0])) {
        snprintf(why, whylen,
                 "expected no body, or {\"region\": \"<name>\"} with an optional "
                 "\"force\": true");
        return -1;
    }
    return 0;
}

static void failover(struct admin *a, struct evhttp_request *req)
{
    struct pending *p = calloc(1, sizeof(*p));
    if (!p) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    p->req = req;
    char region[128], why[512];
    int force, rc;
    if (failover_body(req, region, sizeof(region), &force, why, sizeof(why))) {
        free(p);
        reply_json(req, 400, json_pack("{s:b, s:s}", "ok", 0, "reply", why));
        return;
    }
    if (region[0]) { /* respgate promotes: for when Sentinel has no majority left */
        p->region = 1;
        rc = a->ops.promote(a->ops.arg, region, force, failover_done, p, why, sizeof(why));
        if (rc < 0) {
            free(p);
            reply_json(req, rc == -2 ? 400 : 409, json_pack("{s:b, s:s}", "ok", 0, "reply", why));
            return;
        }
        snprintf(p->who, sizeof(p->who), "%.*s", (int)sizeof(p->who) - 1, why);
        LIST_INSERT_HEAD(&a->pending, p, link);
        return;
    }
    rc = a->ops.failover(a->ops.arg, failover_done, p, p->who, sizeof(p->who));
    if (rc < 0) {
        free(p);
        reply_json(req, rc == -2 ? 409 : 503,
                   json_pack("{s:b, s:s}", "ok", 0, "reply",
                             rc == -2 ? "no Sentinel configured: respgate does not promote "
                                        "replicas itself"
                                      : "no Sentinel answers now"));
        return;
    }
    /* The answer comes later. A client that leaves first does not free req: evhttp
     * leaves a request it handed out to its owner, whose reply frees it. */
    LIST_INSERT_HEAD(&a->pending, p, link);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    static const struct {
        const char *path;
        enum evhttp_cmd_type method;
    } routes[] = {{"/healthz", EVHTTP_REQ_GET},          {"/readyz", EVHTTP_REQ_GET},
                  {"/metrics", EVHTTP_REQ_GET},          {"/topology", EVHTTP_REQ_GET},
                  {"/status", EVHTTP_REQ_GET},           {"/config", EVHTTP_REQ_GET},
                  {"/reload", EVHTTP_REQ_POST},          {"/failover", EVHTTP_REQ_POST},
                  {"/backup", EVHTTP_REQ_POST},          {"/backups", EVHTTP_REQ_GET},
                  {"/backups/*/verify", EVHTTP_REQ_POST}};
    struct admin *a = arg;
    struct evhttp_uri *parsed = evhttp_uri_parse(evhttp_request_get_uri(req));
    const char *path = parsed ? evhttp_uri_get_path(parsed) : NULL;
    if (!path) path = "";
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (method == EVHTTP_REQ_HEAD) method = EVHTTP_REQ_GET;
    int known = -1;
    char id[64] = "";
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]) && known < 0; i++)
        if (strcmp(path, routes[i].path) == 0) known = (int)i;
    if (known < 0 && sscanf(path, "/backups/%63[^/]/verify", id) == 1 &&
        strlen(path) == strlen("/backups//verify") + strlen(id))
        known = 10;
    int open = known == 0 || known == 1;

    if (known < 0) {
        reply(req, 404, "text/plain",
              "not found: try /healthz, /readyz, /metrics, /topology, /status, /config, "
              "/backups, POST /reload, /failover, /backup or /backups/ID/verify\n");
    } else if (method != routes[known].method) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
                          routes[known].method == EVHTTP_REQ_GET ? "GET, HEAD" : "POST");
        reply(req, 405, "text/plain", "method not allowed\n");
    } else if (!open && !token_ok(a, req)) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", "Bearer");
        reply(req, 401, "text/plain", "admin.token required: Authorization: Bearer <token>\n");
    } else if (known == 0) {
        reply(req, 200, "text/plain", "ok\n");
    } else if (known == 1) {
        readyz(a, req);
    } else if (known == 2) {
        metrics(a, req);
    } else if (known == 3) {
        struct topology *t = a->ops.snapshot(a->ops.arg);
        reply_json(req, 200,
                   t ? topology_json(a, t)
                     : json_pack("{s:n, s:s, s:[]}", "master", "why_no_master",
                                 "no node has answered yet", "nodes"));
        topo_release(&t);
    } else if (known == 4) {
        reply_json(req, 200, a->ops.status(a->ops.arg));
    } else if (known == 5) {
        reply_json(req, 200, a->ops.config(a->ops.arg));
    } else if (known == 6) {
        json_t *r = a->ops.reload(a->ops.arg);
        reply_json(req, json_is_true(json_object_get(r, "ok")) ? 200 : 422, r);
    } else if (known == 7) {
        failover(a, req);
    } else if (known == 9) {
        reply_json(req, 200, a->ops.backups(a->ops.arg));
    } else { /* POST /backup, POST /backups/ID/verify: started, answered at once */
        char why[512], started[64];
        int rc = known == 8 ? a->ops.backup(a->ops.arg, started, sizeof(started), why, sizeof(why))
                            : a->ops.verify(a->ops.arg, id, why, sizeof(why));
        if (known == 10) snprintf(started, sizeof(started), "%s", id);
        reply_json(req, rc ? 409 : 202,
                   rc ? json_pack("{s:b, s:s}", "ok", 0, "reply", why)
                      : json_pack("{s:b, s:s}", "ok", 1, "id", started));
    }
    if (parsed) evhttp_uri_free(parsed);
}

struct admin *admin_start(struct event_base *base, struct config *cfg, const struct admin_ops *ops,
                          char *err, size_t errlen)
{
    err[0] = '\0';
    if (!cfg->admin.enabled) return NULL;
    struct admin *a = calloc(1, sizeof(*a));
    if (!a || !(a->http = evhttp_new(base))) {
        snprintf(err, errlen, "admin: out of memory");
        free(a);
        return NULL;
    }
    a->cfg = config_acquire(cfg);
    LIST_INIT(&a->pending);
    a->ops = *ops;
    a->policy = route_policy_of(cfg);
    /* Bounded: the endpoint must not become a way to exhaust memory or sockets. */
    evhttp_set_max_headers_size(a->http, 8192);
    evhttp_set_max_body_size(a->http, 65536);
    evhttp_set_timeout(a->http, 10);
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD);
    evhttp_set_gencb(a->http, on_request, a);
    struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(
        a->http, cfg->admin.listen.host, (ev_uint16_t)cfg->admin.listen.port);
    if (!bound) {
        snprintf(err, errlen, "admin.listen %s:%d: cannot bind (in use?)", cfg->admin.listen.host,
                 cfg->admin.listen.port);
        admin_stop(&a);
        return NULL;
    }
    evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(bound), accept_error);
    log_info("admin endpoint on http://%s:%d%s", cfg->admin.listen.host, cfg->admin.listen.port,
             cfg->admin.token ? " (bearer token required)" : "");
    return a;
}

void admin_set_config(struct admin *a, struct config *cfg)
{
    if (!a) return;
    config_release(&a->cfg);
    a->cfg = config_acquire(cfg);
    a->policy = route_policy_of(cfg);
}

void admin_stop(struct admin **ap)
{
    struct admin *a = *ap;
    if (!a) return;
    struct pending *p;
    while ((p = LIST_FIRST(&a->pending))) { /* Sentinel answers after this go nowhere */
        LIST_REMOVE(p, link);
        if (p->req && !evhttp_request_get_connection(p->req))
            evhttp_request_free(p->req); /* its client left: it is ours */
        p->req = NULL;          /* otherwise evhttp_free below frees it with its connection */
        p->link.le_next = NULL; /* so failover_done's LIST_REMOVE touches only p */
        p->link.le_prev = &p->link.le_next;
    }
    if (a->http) evhttp_free(a->http);
    config_release(&a->cfg);
    free(a);
    *ap = NULL;
}
