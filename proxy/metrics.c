/* metrics: see metrics.h. Each family is written whole (HELP, TYPE, samples), in
 * a fixed order, so scrapes diff cleanly. */
#include "metrics.h"

#include <math.h>
#include <stdio.h>
#include <time.h>
#include <string.h>

#define LABELS_MAX 512

static void family(struct evbuffer *b, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value with \, " and newline escaped, as the format asks. */
static void escape(char *out, size_t cap, const char *v)
{
    size_t n = 0;
    for (; *v && n + 3 < cap; v++) {
        if (*v == '\\' || *v == '"') {
            out[n++] = '\\';
            out[n++] = *v;
        } else if (*v == '\n') {
            out[n++] = '\\';
            out[n++] = 'n';
        } else {
            out[n++] = *v;
        }
    }
    out[n] = '\0';
}

/* Appends name="value" to a label list being built in out. */
static void label(char *out, size_t cap, const char *name, const char *value)
{
    char esc[LABELS_MAX / 2];
    escape(esc, sizeof(esc), value);
    size_t used = strlen(out);
    snprintf(out + used, cap - used, "%s%s=\"%s\"", used ? "," : "", name, esc);
}

static void sample(struct evbuffer *b, const char *name, const char *labels, double v)
{
    char num[64];
    if (isnan(v))
        snprintf(num, sizeof(num), "NaN");
    else if (isinf(v))
        snprintf(num, sizeof(num), "%sInf", v > 0 ? "+" : "-");
    else if (v == (double)(long long)v && fabs(v) < 1e15)
        snprintf(num, sizeof(num), "%lld", (long long)v);
    else
        snprintf(num, sizeof(num), "%.15g", v); /* a Unix time to 10 µs */
    if (labels && *labels)
        evbuffer_add_printf(b, "%s{%s} %s\n", name, labels, num);
    else
        evbuffer_add_printf(b, "%s %s\n", name, num);
}

static uint64_t get(const _Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static const char *region_of(const struct metrics_input *in, const struct topo_node *n)
{
    return n->region >= 0 && (size_t)n->region < in->cfg->nregions
               ? in->cfg->regions[n->region].name
               : "";
}

static void requests(struct evbuffer *b, const struct metrics_input *in)
{
    family(b, "respgate_requests_total", "counter",
           "Requests by where they went (master, replica, or answered by respgate: local) and "
           "command class.");
    for (int r = 0; r < STATS_ROUTES; r++)
        for (int c = 0; c < STATS_CLASSES; c++) {
            char l[LABELS_MAX] = "";
            label(l, sizeof(l), "route", stats_route_name((enum stats_route)r));
            label(l, sizeof(l), "class", stats_class_name((enum stats_class)c));
            sample(b, "respgate_requests_total", l, (double)get(&in->stats->requests[r][c]));
        }
    family(b, "respgate_request_errors_total", "counter",
           "Error replies respgate made itself, by reason (Redis' own errors are not counted).");
    for (int e = 0; e < STATS_ERRORS; e++) {
        char l[LABELS_MAX] = "";
        label(l, sizeof(l), "reason", stats_error_name((enum stats_error)e));
        sample(b, "respgate_request_errors_total", l, (double)get(&in->stats->errors[e]));
    }
    family(b, "respgate_client_connections", "gauge", "Client connections open now.");
    sample(b, "respgate_client_connections", NULL, (double)get(&in->stats->clients));
    family(b, "respgate_client_connections_total", "counter", "Client connections accepted.");
    sample(b, "respgate_client_connections_total", NULL, (double)get(&in->stats->clients_accepted));
    family(b, "respgate_clients_closed_total", "counter",
           "Client connections respgate closed itself, by reason: output_limit (it did not "
           "read its replies), query_limit (a command too large), protocol (malformed RESP), "
           "idle (limits.client_idle_timeout_ms).");
    for (int k = 0; k < STATS_CLOSES; k++) {
        char l[LABELS_MAX] = "";
        label(l, sizeof(l), "reason", stats_close_name((enum stats_close)k));
        sample(b, "respgate_clients_closed_total", l, (double)get(&in->stats->closed[k]));
    }
    family(b, "respgate_held_requests", "gauge",
           "Requests waiting now for a writable master, or for a node to send them to again.");
    sample(b, "respgate_held_requests", NULL, (double)get(&in->stats->held));
}

static void histogram(struct evbuffer *b, const char *name, const char *labels,
                      const struct stats_hist *h)
{
    char bucket[96], sum[96], count[96];
    snprintf(bucket, sizeof(bucket), "%s_bucket", name);
    snprintf(sum, sizeof(sum), "%s_sum", name);
    snprintf(count, sizeof(count), "%s_count", name);
    uint64_t cum = 0;
    for (int k = 0; k < STATS_BUCKETS; k++) {
        char le[32], l[LABELS_MAX];
        cum += get(&h->bucket[k]);
        if (k < STATS_BUCKETS - 1)
            snprintf(le, sizeof(le), "%g", (double)stats_bucket_us[k] / 1e6);
        else
            snprintf(le, sizeof(le), "+Inf");
        snprintf(l, sizeof(l), "%s", labels ? labels : "");
        label(l, sizeof(l), "le", le);
        sample(b, bucket, l, (double)cum);
    }
    sample(b, sum, labels, (double)get(&h->sum_ns) / 1e9);
    sample(b, count, labels, (double)cum);
}

/* A family of one unlabelled sample. */
static void single(struct evbuffer *b, const char *name, const char *type, const char *help,
                   double v)
{
    family(b, name, type, help);
    sample(b, name, NULL, v);
}

/* Snapshots and restore drills (backup.*). */
static void backups(struct evbuffer *b, const struct metrics_input *in)
{
    const struct backup_stats *s = in->backup;
    if (!s) return;
    double now = (double)time(NULL);
    single(b, "respgate_backup_last_success_timestamp_seconds", "gauge",
           "Unix time of the newest good snapshot this respgate took; 0: none yet.",
           s->last_ok_time);
    single(b, "respgate_backup_age_seconds", "gauge", "Age of that snapshot; -1 before the first.",
           s->last_ok_time ? now - s->last_ok_time : -1);
    single(b, "respgate_backup_last_size_bytes", "gauge", "Its size.", (double)s->last_size);
    single(b, "respgate_backup_last_duration_seconds", "gauge", "How long it took.",
           s->last_duration_s);
    single(b, "respgate_backup_drill_last_seconds", "gauge",
           "The last restore drill's time to load the snapshot; -1 before the first.",
           s->last_drill_s);
    single(b, "respgate_backup_drill_last_ok", "gauge",
           "1 if the last restore drill loaded it with the source's key counts, 0 if not, -1 "
           "before the first.",
           s->last_drill_ok);
    family(b, "respgate_backup_failures_total", "counter",
           "Snapshots and drills that failed, by reason.");
    for (int k = 0; k < 6; k++) {
        char l[LABELS_MAX] = "";
        label(l, sizeof(l), "reason", backup_failure_name(k));
        sample(b, "respgate_backup_failures_total", l, (double)s->failures[k]);
    }
    single(b, "respgate_backup_running", "gauge", "1 while a snapshot or drill runs.", s->running);
}

/* The clients' TLS listener. */
static void tls(struct evbuffer *b, const struct metrics_input *in)
{
    const struct stats *s = in->stats;
    family(b, "respgate_tls_clients", "gauge", "Client connections over TLS open now.");
    sample(b, "respgate_tls_clients", NULL, (double)get(&s->tls_clients));
    static const char *const sides[] = {"client", "upstream"};
    static const char *const results[] = {
        "result=\"ok\"", "result=\"failed\",reason=\"certificate\"",
        "result=\"failed\",reason=\"protocol\"", "result=\"failed\",reason=\"closed\""};
    family(b, "respgate_tls_handshakes_total", "counter",
           "TLS handshakes with clients (side=\"client\") and with Redis and Sentinel "
           "(side=\"upstream\"): completed, or failed by reason - as of the last second.");
    for (int side = 0; side < SOCK_TLS_SIDES; side++)
        for (int k = 0; k < SOCK_TLS_RESULTS; k++) {
            char l[LABELS_MAX];
            snprintf(l, sizeof(l), "side=\"%s\",%s", sides[side], results[k]);
            sample(b, "respgate_tls_handshakes_total", l,
                   (double)get(&s->tls_handshakes[side][k]) + (double)in->control_tls.n[side][k]);
        }
    family(b, "respgate_tls_handshakes_resumed_total", "counter",
           "Of the completed TLS handshakes, those that resumed an earlier session (no "
           "certificate exchange) - as of the last second.");
    for (int side = 0; side < SOCK_TLS_SIDES; side++) {
        char l[LABELS_MAX];
        snprintf(l, sizeof(l), "side=\"%s\"", sides[side]);
        sample(b, "respgate_tls_handshakes_resumed_total", l,
               (double)get(&s->tls_resumed[side]) + (double)in->control_tls.resumed[side]);
    }
    family(b, "respgate_tls_cert_expiry_seconds", "gauge",
           "Unix time the listener's certificate expires (tls.cert_file, as loaded); 0 without.");
    sample(b, "respgate_tls_cert_expiry_seconds", NULL, (double)in->cfg->tls.not_after);
}

/* durability.min_replicas. */
static void durability(struct evbuffer *b, const struct metrics_input *in)
{
    const struct stats *s = in->stats;
    family(b, "respgate_durable_writes_total", "counter",
           "Write replies held until durability.min_replicas replicas acknowledged them.");
    sample(b, "respgate_durable_writes_total", NULL, (double)get(&s->durable_held));
    family(b, "respgate_durable_writes_waiting", "gauge",
           "Write replies held now, waiting for their WAIT.");
    sample(b, "respgate_durable_writes_waiting", NULL, (double)get(&s->durable_waiting));
    family(b, "respgate_durable_shortfalls_total", "counter",
           "Held writes too few replicas acknowledged in time (or whose connection was lost): "
           "released anyway (durability.on_timeout reply) or failed with -NOREPLICAS.");
    sample(b, "respgate_durable_shortfalls_total", "outcome=\"released\"",
           (double)get(&s->durable_short_released));
    sample(b, "respgate_durable_shortfalls_total", "outcome=\"failed\"",
           (double)get(&s->durable_failed));
    family(b, "respgate_durable_wait_seconds", "histogram",
           "Round trip of respgate's WAIT after durable writes (the time replies are held).");
    histogram(b, "respgate_durable_wait_seconds", NULL, &s->durable_wait);
}

static void latency(struct evbuffer *b, const struct metrics_input *in)
{
    const char *name = "respgate_upstream_latency_seconds";
    family(b, name, "histogram",
           "Time from sending a request to a node to its reply, on shared connections "
           "(sessions and blocking commands excluded).");
    if (!in->topo) return;
    for (size_t i = 0; i < in->topo->nnodes; i++) {
        char node[LABELS_MAX] = "";
        label(node, sizeof(node), "node", in->topo->nodes[i].name);
        histogram(b, name, node, &in->stats->latency[i]);
    }
}

static const char *role_name(enum topo_role r)
{
    return r == TOPO_MASTER ? "master" : r == TOPO_REPLICA ? "replica" : "unknown";
}

/* Where the master is, where reads went, and the replica-priority per node. */
static void regions(struct evbuffer *b, const struct metrics_input *in)
{
    const struct topology *t = in->topo;
    const struct config *cfg = in->cfg;
    family(b, "respgate_master_region", "gauge", "1 for the region the master is in now.");
    for (size_t r = 0; r < cfg->nregions; r++) {
        char l[LABELS_MAX] = "";
        label(l, sizeof(l), "region", cfg->regions[r].name);
        sample(b, "respgate_master_region", l,
               t && t->master >= 0 && t->nodes[t->master].region == (int)r);
    }
    double by_region[CONFIG_REGIONS_MAX + 1] = {0}, cross = 0;
    for (size_t i = 0; t && i < t->nnodes; i++) {
        int r = t->nodes[i].region;
        double n = (double)get(&in->stats->reads[i]);
        by_region[r >= 0 && r < CONFIG_REGIONS_MAX ? r : CONFIG_REGIONS_MAX] += n;
        if (cfg->local_region >= 0 && r != cfg->local_region) cross += n;
    }
    family(b, "respgate_reads_total", "counter",
           "Read commands sent upstream, by the region of the node that served them "
           "(\"\": a node with no region).");
    for (size_t r = 0; r <= cfg->nregions && r <= CONFIG_REGIONS_MAX; r++) {
        char l[LABELS_MAX] = "";
        label(l, sizeof(l), "region", r < cfg->nregions ? cfg->regions[r].name : "");
        sample(b, "respgate_reads_total", l, by_region[r < cfg->nregions ? r : CONFIG_REGIONS_MAX]);
    }
    family(b, "respgate_reads_cross_region_total", "counter",
           "Of those, the reads served outside local_region (0 without local_region).");
    sample(b, "respgate_reads_cross_region_total", NULL, cross);
    family(b, "respgate_replica_priority", "gauge",
           "Each replica's replica-priority as it reports it, and (kind=\"wanted\") what "
           "failover.region_priority gives its region.");
    int mismatched = 0;
    for (size_t i = 0; t && i < t->nnodes; i++) {
        const struct topo_node *n = &t->nodes[i];
        if (!n->listed || n->role != TOPO_REPLICA || n->priority < 0) continue;
        char l[LABELS_MAX] = "", w[LABELS_MAX];
        label(l, sizeof(l), "node", n->name);
        label(l, sizeof(l), "region", region_of(in, n));
        snprintf(w, sizeof(w), "%s", l);
        label(l, sizeof(l), "kind", "actual");
        sample(b, "respgate_replica_priority", l, n->priority);
        if (!n->priority_want) continue;
        label(w, sizeof(w), "kind", "wanted");
        sample(b, "respgate_replica_priority", w, n->priority_want);
        mismatched += n->priority && n->priority != n->priority_want;
    }
    family(b, "respgate_failbacks_total", "counter",
           "Failovers this respgate asked Sentinel for to put the master back in a better region "
           "(failover.failback_after_ms), and a Sentinel took on.");
    sample(b, "respgate_failbacks_total", NULL, (double)in->failbacks);
    family(b, "respgate_region_failovers_total", "counter",
           "Replicas respgate promoted itself, asked by POST /failover with a region.");
    sample(b, "respgate_region_failovers_total", NULL, (double)in->region_failovers);
    family(b, "respgate_replica_priority_mismatched", "gauge",
           "Replicas whose replica-priority differs from what their region gives (0 left alone).");
    sample(b, "respgate_replica_priority_mismatched", NULL, mismatched);
}

static void topology(struct evbuffer *b, const struct metrics_input *in)
{
    const struct topology *t = in->topo;
    family(b, "respgate_upstream_up", "gauge",
           "1 if the node answered its last probe in time; by node, the role it reports and its "
           "region. Nodes no longer listed are left out.");
    for (size_t i = 0; t && i < t->nnodes; i++) {
        const struct topo_node *n = &t->nodes[i];
        if (!n->listed) continue;
        char l[LABELS_MAX] = "";
        label(l, sizeof(l), "node", n->name);
        label(l, sizeof(l), "role", role_name(n->role));
        label(l, sizeof(l), "region", region_of(in, n));
        sample(b, "respgate_upstream_up", l, n->reachable);
    }
    family(b, "respgate_upstream_master", "gauge",
           "1 for the node writes go to now (0 for the others).");
    for (size_t i = 0; t && i < t->nnodes; i++) {
        if (!t->nodes[i].listed) continue;
        char l[LABELS_MAX] = "";
        label(l, sizeof(l), "node", t->nodes[i].name);
        sample(b, "respgate_upstream_master", l, (int)i == t->master);
    }
    static const char *const lag_names[2] = {"respgate_replica_lag_bytes",
                                             "respgate_replica_eligible"};
    static const char *const lag_help[2] = {
        "Bytes each replica is behind the master, from the last probes.",
        "1 if the replica may serve reads now (reachable, linked, within max_lag_bytes)."};
    for (int k = 0; k < 2; k++) {
        family(b, lag_names[k], "gauge", lag_help[k]);
        for (size_t i = 0; t && i < t->nnodes; i++) {
            long long lag = topo_lag(t, i);
            if (!t->nodes[i].listed || lag < 0) continue;
            char l[LABELS_MAX] = "";
            label(l, sizeof(l), "node", t->nodes[i].name);
            sample(b, lag_names[k], l, k ? route_read_eligible(t, in->policy, i) : (double)lag);
        }
    }
    regions(b, in);
    family(b, "respgate_writable_master", "gauge",
           "1 while a writable master is known and answers (/readyz also needs every worker "
           "to have a verified connection to it).");
    sample(b, "respgate_writable_master", NULL, in->avail->writable);
    family(b, "respgate_sentinels", "gauge",
           "Sentinels known (configured and discovered) and those that answered the last round.");
    sample(b, "respgate_sentinels", "state=\"known\"", in->sentinels_known);
    sample(b, "respgate_sentinels", "state=\"reachable\"", in->sentinels_reachable);
}

static void availability(struct evbuffer *b, const struct metrics_input *in)
{
    const struct avail_totals *a = in->avail;
    family(b, "respgate_failovers_total", "counter", "Times the master moved to another node.");
    sample(b, "respgate_failovers_total", NULL, (double)a->failovers);
    family(b, "respgate_last_failover_seconds", "gauge",
           "Observed RTO of the last failover: from the first write that waited or failed (or the "
           "master being lost) to the first that succeeded after the switch.");
    sample(b, "respgate_last_failover_seconds", NULL, a->last_rto_s);
    family(b, "respgate_uptime_seconds_total", "counter", "Seconds since respgate started.");
    sample(b, "respgate_uptime_seconds_total", NULL, a->seconds);
    family(b, "respgate_write_available_seconds_total", "counter",
           "Seconds since start during which writes could be served.");
    sample(b, "respgate_write_available_seconds_total", NULL, a->available);
    const struct avail_window *w[2] = {in->day, in->month};
    const char *win[2] = {"window=\"1d\"", "window=\"30d\""};
    family(b, "respgate_availability_ratio", "gauge",
           "Write availability over the window (or as much of it as respgate has run).");
    for (int i = 0; i < 2; i++)
        sample(b, "respgate_availability_ratio", win[i], w[i]->availability);
    family(b, "respgate_error_budget_remaining_seconds", "gauge",
           "Downtime slo.availability still allows in the window; negative once missed.");
    for (int i = 0; i < 2; i++)
        sample(b, "respgate_error_budget_remaining_seconds", win[i], w[i]->budget_left);
    family(b, "respgate_slo_availability", "gauge", "The objective configured (slo.availability).");
    sample(b, "respgate_slo_availability", NULL, in->cfg->slo.availability);
}

static void control(struct evbuffer *b, const struct metrics_input *in)
{
    const struct control_counters *c = in->counters;
    family(b, "respgate_config_reloads_total", "counter",
           "Configuration reloads by result; an error keeps the running config.");
    sample(b, "respgate_config_reloads_total", "result=\"ok\"", (double)c->reloads_ok);
    sample(b, "respgate_config_reloads_total", "result=\"error\"", (double)c->reloads_error);
    family(b, "respgate_config_last_reload_timestamp_seconds", "gauge",
           "Unix time the running config was loaded.");
    sample(b, "respgate_config_last_reload_timestamp_seconds", NULL, c->last_reload_time);
    family(b, "respgate_config_restart_pending", "gauge",
           "1 if a reload changed keys that take effect only on restart.");
    sample(b, "respgate_config_restart_pending", NULL, c->restart_pending);
    family(b, "respgate_notifications_total", "counter",
           "Failover notifications by hook (command, webhook) and result (ok, error); dropped: "
           "too many hooks still running.");
    const char *kinds[2] = {"command", "webhook"};
    for (int k = 0; k < 2; k++) {
        char ok[LABELS_MAX] = "", bad[LABELS_MAX] = "";
        label(ok, sizeof(ok), "hook", kinds[k]);
        label(ok, sizeof(ok), "result", "ok");
        label(bad, sizeof(bad), "hook", kinds[k]);
        label(bad, sizeof(bad), "result", "error");
        sample(b, "respgate_notifications_total", ok, (double)c->notify_ok[k]);
        sample(b, "respgate_notifications_total", bad, (double)c->notify_error[k]);
    }
    sample(b, "respgate_notifications_total", "hook=\"any\",result=\"dropped\"",
           (double)c->notify_dropped);
    family(b, "respgate_start_time_seconds", "gauge", "Unix time respgate started.");
    sample(b, "respgate_start_time_seconds", NULL, in->start_time);
}

void metrics_render(struct evbuffer *out, const struct metrics_input *in)
{
    requests(out, in);
    latency(out, in);
    durability(out, in);
    tls(out, in);
    backups(out, in);
    topology(out, in);
    availability(out, in);
    control(out, in);
}
