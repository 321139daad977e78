/* control: see control.h. Everything here runs on the control thread but
 * control_start, control_reload and control_stop, which only create, poke and
 * join it. */
#include "control.h"
#include "admin.h"
#include "backup.h"
#include "failback.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "route.h"
#include "watch.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define DAY_S 86400.0
#define MONTH_S (30 * DAY_S)
#define FAILOVERS_SHOWN 16
#define ASKED_NS (60 * 1000000000LL) /* a switch this soon after POST /failover is its answer */

struct reload_result {
    int ok;
    char source[16]; /* "start", "SIGHUP", "file", "POST /reload" */
    double time;     /* Unix time */
    char message[600];
    char changed[256]; /* top-level keys that changed */
    char restart[128]; /* changed keys that need a restart */
};

/* certificate files watched: the listener's, upstream's, and six regions' Sentinels' */
#define CONTROL_TLS_WATCH_MAX 24

struct control {
    struct event_base *base;
    pthread_t thread;
    struct event *stop_ev, *reload_ev;
    struct config *cfg; /* the running one */
    char *path;
    struct control_hooks hooks;
    struct probe *probe;
    struct admin *admin;
    struct avail *avail;
    struct notify *notify;
    struct watch *watch;
    struct watch *tls_watch[CONTROL_TLS_WATCH_MAX]; /* certificate files: a change reloads */
    struct sock_loop *io; /* the loop's connections: probes and Sentinels (rconn.c) */
    struct failback *failback;
    struct backup *backup;
    struct event *backup_timer;   /* backup.interval_ms */
    long long backup_interval_ms; /* the interval the timer runs at */
    struct control_counters counters;
    struct reload_result last;
    char restart_pending[128]; /* as of the last good reload: a failed one changes nothing */
    double start_time;
    struct stats *sum; /* scratch for scrapes */
    int64_t switch_ns; /* of the last master switch */
};

static double unix_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Each client needs one descriptor, and one more for a pinned upstream connection.
 * Process-wide, so any thread may call it: main at start, a reload later. */
void control_fit_fd_limit(const struct config *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) return;
    rlim_t want = (rlim_t)cfg->limits.max_clients * 2 + 256;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < want)
        log_warn("file descriptor limit %llu is below the %llu that limits.max_clients needs: "
                 "past what it leaves room for, new clients get 'max number of clients "
                 "reached'",
                 (unsigned long long)rl.rlim_cur, (unsigned long long)want);
}

/* The probe published: account for availability, tell people when the master
 * moved, and pass the snapshot on to the workers. */
static void on_snapshot(void *arg, struct topology *t)
{
    struct control *c = arg;
    struct avail_event ev;
    char asked[CONFIG_HOST_MAX + 80] = "";
    struct sentinel *s = probe_sentinel(c->probe);
    const struct sentinel_view *v = s ? sentinel_view(s) : NULL;
    if (v && v->failover_asked_ns && v->failover_asked_ns > c->switch_ns &&
        topo_now_ns() - v->failover_asked_ns < ASKED_NS)
        snprintf(asked, sizeof(asked), "%s (Sentinel %s)",
                 failback_asked_ns(c->failback) >= v->failover_asked_ns
                     ? "failback to a better region asked for"
                     : "failover asked for through POST /failover",
                 v->failover_asked_of);
    int moved = avail_observe(c->avail, t, c->cfg, asked[0] ? asked : NULL, &ev);
    if (moved) c->switch_ns = ev.f.at_ns;        /* an ask is the cause of one switch, not more */
    failback_observe(c->failback, t, c->cfg, s); /* before t goes to the workers */
    c->hooks.publish(c->hooks.arg, t);           /* the workers first: telling people can wait */
    if (moved) {
        const struct avail_failover *f = &ev.f;
        const char *event = ev.region_changed ? "region_change" : "master_switch";
        log_warn("%s: %s (%s) -> %s (%s): %s", event, f->from, f->from_region, f->to, f->to_region,
                 f->reason);
        notify_send(c->notify, c->cfg, event, f->from, f->to, f->to_region, f->from_region,
                    f->reason);
    }
}

/* Top-level keys whose value differs, for the log and /config. */
static void changed_keys(const struct config *a, const struct config *b, char *out, size_t n)
{
    json_t *ja = config_to_json(a, 0), *jb = config_to_json(b, 0); /* a new password counts */
    const char *key;
    json_t *v;
    out[0] = '\0';
    json_object_foreach(jb, key, v)
    {
        if (json_equal(v, json_object_get(ja, key))) continue;
        size_t used = strlen(out);
        snprintf(out + used, n - used, "%s%s", used ? ", " : "", key);
    }
    json_decref(ja);
    json_decref(jb);
}

static void on_file_changed(void *arg);
static void arm_backup_timer(struct control *c);

/* The certificate files are watched like the config: cert-manager and Kubernetes
 * secrets replace them by a symlink swap, and a reload rebuilds the TLS context. */
static void watch_tls_files(struct control *c)
{
    const struct config *cfg = c->cfg;
    const char *files[CONTROL_TLS_WATCH_MAX] = {0};
    int n = 0;
    if (cfg->tls.enabled) {
        files[n++] = cfg->tls.cert_file;
        files[n++] = cfg->tls.key_file;
        files[n++] = cfg->tls.ca_file;
    }
    const struct config_tls_out *out[1 + CONTROL_TLS_WATCH_MAX / 3] = {&cfg->upstream.tls};
    int nout = 1;
    for (size_t r = 0; r < cfg->nregions && nout < (int)(sizeof(out) / sizeof(out[0])); r++)
        out[nout++] = &cfg->regions[r].sentinel_tls;
    for (int k = 0; k < nout && n + 3 <= CONTROL_TLS_WATCH_MAX; k++)
        if (out[k]->enabled) {
            files[n++] = out[k]->cert_file;
            files[n++] = out[k]->key_file;
            files[n++] = out[k]->ca_file;
        }
    for (int i = 0; i < CONTROL_TLS_WATCH_MAX; i++) {
        watch_destroy(&c->tls_watch[i]);
        if (files[i]) c->tls_watch[i] = watch_file(c->base, files[i], on_file_changed, c);
    }
}

/* Turning verification off is allowed, and said each time the config is read. */
static void warn_unverified(const struct config *cfg)
{
    if (cfg->upstream.tls.enabled && !cfg->upstream.tls.verify)
        log_warn("upstream.tls.verify is false: Redis' certificate is not verified; anyone on "
                 "the path can pose as Redis");
    for (size_t r = 0; r < cfg->nregions; r++)
        if (cfg->regions[r].sentinel_tls.enabled && !cfg->regions[r].sentinel_tls.verify)
            log_warn("regions[%zu].sentinel.tls.verify is false: the Sentinels' certificates "
                     "are not verified",
                     r);
}

/* Reads and checks the whole file; only a config that passes replaces the running
 * one, everywhere at once (each worker between two events). */
static void reload(struct control *c, const char *source)
{
    struct reload_result *r = &c->last;
    char err[512];
    memset(r, 0, sizeof(*r));
    snprintf(r->source, sizeof(r->source), "%s", source);
    r->time = unix_now();
    watch_mark_seen(c->watch);
    struct config *next = config_load_file(c->path, err, sizeof(err));
    if (!next) {
        c->counters.reloads_error++;
        snprintf(r->message, sizeof(r->message), "%s: %s", c->path, err);
        log_error("config reload (%s) failed; still running the previous config: %s", source,
                  r->message);
        return;
    }
    r->ok = 1;
    config_carry_restart_keys(c->cfg, next, r->restart, sizeof(r->restart));
    changed_keys(c->cfg, next, r->changed, sizeof(r->changed));
    if (next->tls.enabled && next->tls.not_after != c->cfg->tls.not_after) {
        size_t used = strlen(r->changed); /* the same paths, a new certificate in them */
        snprintf(r->changed + used, sizeof(r->changed) - used, "%stls certificate",
                 used ? ", " : "");
    }
    /* Against the values running since start: a file put back clears it. */
    snprintf(c->restart_pending, sizeof(c->restart_pending), "%s", r->restart);
    c->counters.restart_pending = r->restart[0] != '\0';
    if (r->restart[0]) {
        log_warn("config reload (%s): %s changed, which takes effect only on restart; running on "
                 "with the old value",
                 source, r->restart);
    }
    snprintf(r->message, sizeof(r->message), "%s",
             r->changed[0] ? "applied" : "applied (nothing changed)");
    log_info("config reload (%s) applied: %s", source,
             r->changed[0] ? r->changed : "nothing changed");
    c->counters.reloads_ok++;
    c->counters.last_reload_time = r->time;

    if (next->limits.max_clients > c->cfg->limits.max_clients) control_fit_fd_limit(next);
    log_set_level(next->log_level);
    log_set_json(next->log_format == CONFIG_LOG_JSON);
    config_release(&c->cfg);
    c->cfg = next;
    admin_set_config(c->admin, next);
    c->hooks.apply(c->hooks.arg, next);
    probe_set_config(c->probe, next); /* publishes: the workers get it after the config */
    watch_tls_files(c);
    warn_unverified(c->cfg);
    arm_backup_timer(c);
}

static void on_reload_ev(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    reload(arg, "SIGHUP");
}

static void on_file_changed(void *arg)
{
    reload(arg, "file");
}

/* admin_ops */

static int op_ready(void *arg)
{
    struct control *c = arg;
    return c->hooks.ready(c->hooks.arg);
}

static struct topology *op_snapshot(void *arg)
{
    return probe_latest(((struct control *)arg)->probe);
}

static void op_metrics(void *arg, struct evbuffer *out)
{
    struct control *c = arg;
    memset(c->sum, 0, sizeof(*c->sum));
    c->hooks.stats(c->hooks.arg, c->sum);
    struct avail_totals totals;
    struct avail_window day, month;
    avail_totals(c->avail, &totals);
    avail_window(c->avail, DAY_S, c->cfg->slo.availability, &day);
    avail_window(c->avail, MONTH_S, c->cfg->slo.availability, &month);
    struct route_policy policy = route_policy_of(c->cfg);
    struct topology *t = probe_latest(c->probe);
    struct sentinel *s = probe_sentinel(c->probe);
    struct backup_stats bs;
    backup_get_stats(c->backup, &bs);
    struct metrics_input in = {
        .stats = c->sum,
        .topo = t,
        .cfg = c->cfg,
        .policy = &policy,
        .avail = &totals,
        .day = &day,
        .month = &month,
        .counters = &c->counters,
        .failbacks = failback_count(c->failback),
        .region_failovers = probe_region_failovers(c->probe),
        .backup = &bs,
        .sentinels_known = s ? sentinel_view(s)->npeers : 0,
        .sentinels_reachable = s ? sentinel_view(s)->nreachable : 0,
        .start_time = c->start_time,
    };
    sock_loop_tls_counts(c->io, &in.control_tls);
    metrics_render(out, &in);
    topo_release(&t);
}

static json_t *nines_json(double availability)
{
    double n = avail_nines(availability);
    return n < 0 ? json_null() : json_real(n);
}

static json_t *window_json(const struct avail_window *w)
{
    return json_pack("{s:f, s:f, s:f, s:f, s:o, s:f, s:f, s:f}", "seconds", w->seconds,
                     "observed_seconds", w->observed, "downtime_seconds", w->downtime,
                     "availability", w->availability, "nines", nines_json(w->availability),
                     "error_budget_seconds", w->budget, "error_budget_remaining_seconds",
                     w->budget_left, "error_budget_remaining_ratio",
                     w->budget > 0 ? w->budget_left / w->budget : 0.0);
}

static json_t *failover_json(const struct avail_failover *f)
{
    char when[32];
    struct tm tm;
    gmtime_r(&f->wall, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:f, s:o, s:o}", "time", when, "from", f->from,
                     "to", f->to, "from_region", f->from_region, "to_region", f->to_region,
                     "reason", f->reason, "rto_seconds", f->rto_s, "rpo_bytes",
                     f->rpo_known ? json_integer(f->rpo_bytes) : json_null(), "rpo_seconds",
                     f->rpo_known ? json_real(f->rpo_s) : json_null());
}

static json_t *op_status(void *arg)
{
    struct control *c = arg;
    struct avail_totals totals;
    struct avail_window day, month;
    avail_totals(c->avail, &totals);
    avail_window(c->avail, DAY_S, c->cfg->slo.availability, &day);
    avail_window(c->avail, MONTH_S, c->cfg->slo.availability, &month);
    struct avail_failover f[FAILOVERS_SHOWN];
    int n = avail_failovers(c->avail, f, FAILOVERS_SHOWN);
    json_t *list = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(list, failover_json(&f[i]));
    struct topology *t = probe_latest(c->probe);
    double ratio = totals.seconds > 0 ? totals.available / totals.seconds : 1;
    json_t *j = json_pack("{s:b, s:o, s:f, s:f, s:f, s:f, s:o, s:f, s:{s:o, s:o}, s:I, s:f, s:o}",
                          "writable", totals.writable, "master",
                          t && t->master >= 0 ? json_string(t->nodes[t->master].name) : json_null(),
                          "uptime_seconds", totals.seconds, "write_available_seconds",
                          totals.available, "downtime_seconds", totals.seconds - totals.available,
                          "availability", ratio, "nines", nines_json(ratio), "slo_availability",
                          c->cfg->slo.availability, "windows", "1d", window_json(&day), "30d",
                          window_json(&month), "failovers_total", (json_int_t)totals.failovers,
                          "last_failover_rto_seconds", totals.last_rto_s, "failovers", list);
    topo_release(&t);
    /* The backup RPO: the age of the newest snapshot a restore drill proved. */
    json_t *bl = backup_list(c->backup, c->cfg), *item;
    size_t k;
    double newest = 0;
    json_array_foreach(json_object_get(bl, "backups"), k, item)
    {
        json_t *v = json_object_get(item, "verified");
        double at = json_real_value(json_object_get(item, "time"));
        if (json_is_true(json_object_get(v, "ok")) && at > newest) newest = at;
    }
    json_decref(bl);
    json_object_set_new(j, "backup",
                        json_pack("{s:o}", "rpo_seconds",
                                  newest > 0 ? json_real(unix_now() - newest) : json_null()));
    memset(c->sum, 0, sizeof(*c->sum)); /* durability.*: what the workers counted */
    c->hooks.stats(c->hooks.arg, c->sum);
    json_object_set_new(
        j, "durability",
        json_pack("{s:i, s:I, s:I, s:I, s:I}", "min_replicas", c->cfg->durability.min_replicas,
                  "writes_held_total", (json_int_t)c->sum->durable_held, "waiting_now",
                  (json_int_t)c->sum->durable_waiting, "released_without_replicas_total",
                  (json_int_t)c->sum->durable_short_released, "failed_total",
                  (json_int_t)c->sum->durable_failed));
    return j;
}

static json_t *reload_json(const struct reload_result *r)
{
    return json_pack("{s:b, s:s, s:f, s:s, s:s, s:s}", "ok", r->ok, "source", r->source, "time",
                     r->time, "message", r->message, "changed", r->changed, "restart_required",
                     r->restart);
}

static json_t *op_config(void *arg)
{
    struct control *c = arg;
    return json_pack("{s:s, s:o, s:o, s:s}", "path", c->path, "config", config_to_json(c->cfg, 1),
                     "last_reload", reload_json(&c->last), "restart_required", c->restart_pending);
}

static json_t *op_reload(void *arg)
{
    struct control *c = arg;
    reload(c, "POST /reload");
    return reload_json(&c->last);
}

static int op_failover(void *arg, sentinel_reply_fn done, void *done_arg, char *who, size_t wholen)
{
    struct sentinel *s = probe_sentinel(((struct control *)arg)->probe);
    return s ? sentinel_failover(s, done, done_arg, who, wholen) : -2;
}

static int op_backup(void *arg, char *id, size_t idlen, char *why, size_t whylen)
{
    struct control *c = arg;
    struct topology *t = probe_latest(c->probe);
    int rc = backup_start(c->backup, c->cfg, t, id, idlen, why, whylen);
    topo_release(&t);
    return rc;
}

static int op_verify(void *arg, const char *id, char *why, size_t whylen)
{
    struct control *c = arg;
    return backup_verify(c->backup, c->cfg, id, why, whylen);
}

static json_t *op_backups(void *arg)
{
    struct control *c = arg;
    return backup_list(c->backup, c->cfg);
}

/* backup.interval_ms: a snapshot now, unless one is running. */
static void on_backup_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    char id[64], why[512];
    if (op_backup(arg, id, sizeof(id), why, sizeof(why)))
        log_warn("scheduled backup not started: %s", why);
}

/* The timer follows the config: started, stopped or re-armed by a reload. */
static void arm_backup_timer(struct control *c)
{
    long long ms = c->cfg->backup.dir ? c->cfg->backup.interval_ms : 0;
    if (ms == c->backup_interval_ms) return;
    c->backup_interval_ms = ms;
    evtimer_del(c->backup_timer);
    if (!ms) return;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    event_add(c->backup_timer, &tv);
}

static int op_promote(void *arg, const char *region, int force, sentinel_reply_fn done,
                      void *done_arg, char *why, size_t whylen)
{
    return probe_promote_region(((struct control *)arg)->probe, region, force, done, done_arg, why,
                                whylen);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopexit(((struct control *)arg)->base, NULL);
}

static void *control_main(void *arg)
{
    struct control *c = arg;
    log_set_thread_name("control");
    probe_begin(c->probe);
    sock_loop_run(c->io);
    return NULL;
}

static void control_free(struct control *c)
{
    admin_stop(&c->admin);
    watch_destroy(&c->watch);
    for (int i = 0; i < CONTROL_TLS_WATCH_MAX; i++)
        watch_destroy(&c->tls_watch[i]);
    notify_destroy(&c->notify);
    probe_destroy(&c->probe);
    failback_destroy(&c->failback); /* after the Sentinels: an ask still out answers it */
    if (c->backup_timer) event_free(c->backup_timer);
    backup_destroy(&c->backup); /* waits for a job still running */
    if (c->stop_ev) event_free(c->stop_ev);
    if (c->reload_ev) event_free(c->reload_ev);
    sock_loop_destroy(&c->io); /* after the probe: its connections are gone */
    if (c->base) event_base_free(c->base);
    avail_destroy(&c->avail);
    config_release(&c->cfg);
    free(c->sum);
    free(c->path);
    free(c);
}

struct control *control_start(struct config *cfg, const char *path,
                              const struct control_hooks *hooks, char *err, size_t errlen)
{
    struct control *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->cfg = config_acquire(cfg);
    c->hooks = *hooks;
    c->start_time = unix_now();
    c->counters.last_reload_time = c->start_time;
    c->last = (struct reload_result){.ok = 1, .time = c->start_time};
    strcpy(c->last.source, "start");
    strcpy(c->last.message, "loaded at start");
    c->path = strdup(path ? path : "");
    c->base = event_base_new();
    c->io = c->base ? sock_loop_create(c->base) : NULL;
    c->avail = avail_create();
    c->sum = calloc(1, sizeof(*c->sum));
    c->failback = failback_create();
    c->backup = backup_create();
    if (!c->path || !c->io || !c->avail || !c->sum || !c->failback || !c->backup ||
        !(c->backup_timer = event_new(c->base, -1, EV_PERSIST, on_backup_timer, c)) ||
        !(c->notify = notify_create(c->base, &c->counters)) ||
        !(c->stop_ev = event_new(c->base, -1, 0, on_stop, c)) ||
        !(c->reload_ev = event_new(c->base, -1, 0, on_reload_ev, c))) {
        snprintf(err, errlen, "out of memory");
        control_free(c);
        return NULL;
    }
    const struct admin_ops ops = {c,         op_snapshot, op_metrics,  op_status,
                                  op_config, op_reload,   op_failover, op_promote,
                                  op_backup, op_verify,   op_backups,  op_ready};
    c->admin = admin_start(c->base, cfg, &ops, err, errlen);
    if ((!c->admin && err[0]) ||
        !(c->probe = probe_create(c->io, cfg, on_snapshot, c, err, errlen))) {
        control_free(c);
        return NULL;
    }
    if (path) c->watch = watch_file(c->base, path, on_file_changed, c);
    watch_tls_files(c);
    warn_unverified(cfg);
    arm_backup_timer(c);
    if (pthread_create(&c->thread, NULL, control_main, c)) {
        snprintf(err, errlen, "cannot start the control thread");
        control_free(c);
        return NULL;
    }
    return c;
}

struct probe *control_probe(struct control *c)
{
    return c->probe;
}

struct avail *control_avail(struct control *c)
{
    return c->avail;
}

void control_reload(struct control *c)
{
    event_active(c->reload_ev, 0, 0); /* the base locks: any thread may do this */
}

void control_stop(struct control **cp)
{
    struct control *c = *cp;
    if (!c) return;
    event_active(c->stop_ev, 0, 0);
    pthread_join(c->thread, NULL);
    control_free(c);
    *cp = NULL;
}
