/* sentinel: see sentinel.h. Two connections (rconn.c) per Sentinel: one for
 * queries, one subscribed to every event. */
#include "sentinel.h"
#include "log.h"
#include "topology.h"

#include "rconn.h"

#include <hiredis/hiredis.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define QUERY_INTERVAL_MS 1000            /* a missed event costs at most this */
#define REFRESH_MIN_MS 100                /* forced rounds, at most this often */
#define FRESH_NS (3LL * 1000000000)       /* an answer older than this does not count */
#define ABORT_GUESS_NS (2LL * 1000000000) /* promoting, yet no Sentinel says failover */
/* At startup the first master is taken from a majority of the known Sentinels, or,
 * when fewer answer, from the highest epoch seen once this has passed: one stale
 * Sentinel (it missed a failover while the others are down or slow) must not send a
 * fresh respgate back to an old master. */
#define STARTUP_WAIT_NS (2LL * 1000000000)
#define STUCK_NS (1500LL * 1000000) /* a round or a connect unanswered this long */
#define QUERIES_PER_ROUND 3

struct peer {
    struct sentinel *s;
    struct config_addr addr;
    int region; /* whose sentinel.tls it is reached with */
    struct rconn *cmd, *sub;
    int64_t cmd_since, sub_since; /* when each was opened */
    int inflight;                 /* replies of the current round still to come */
    int64_t round_ns;             /* when the current round was sent */
    int64_t answered_ns;          /* when a round was last answered in full */
    int has_master;
    struct config_addr master;
    long long epoch;
    int failover_in_progress;
    size_t nreplicas;
    struct config_addr replicas[SENTINEL_REPLICAS_MAX];
    int down; /* logged as unreachable */
};

struct sentinel {
    struct config *cfg; /* a reference: name and credentials point into it */
    struct sock_loop *io;
    int region; /* the first region with Sentinels: name, credentials */
    const char *name, *username, *password;
    struct peer peers[SENTINEL_PEERS_MAX];
    int npeers;
    struct sentinel_view view;
    int64_t promoting_since;
    int64_t created_ns;
    int ever_answered;
    struct event *tick, *soon;
    int64_t last_forced;
    int all_down_logged;
    sentinel_changed_fn changed;
    void *arg;
};

static int same_addr(const struct config_addr *a, const struct config_addr *b)
{
    return a->port == b->port && strcmp(a->host, b->host) == 0;
}

static int set_addr(struct config_addr *a, const char *host, const char *port)
{
    long p = strtol(port, NULL, 10);
    if (!host || strlen(host) >= sizeof(a->host) || p < 1 || p > 65535) return -1;
    memset(a, 0, sizeof(*a)); /* whole: views are compared with memcmp */
    strcpy(a->host, host);
    a->port = (int)p;
    return 0;
}

/* The value of key in a flat [k1, v1, k2, v2...] array reply, or NULL. */
static const char *field(const redisReply *r, const char *key)
{
    if (!r || r->type != REDIS_REPLY_ARRAY) return NULL;
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING && strcmp(r->element[i]->str, key) == 0)
            return r->element[i + 1]->type == REDIS_REPLY_STRING ? r->element[i + 1]->str : NULL;
    return NULL;
}

static int has_flag(const char *flags, const char *flag)
{
    size_t n = strlen(flag);
    for (const char *p = flags; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && memcmp(p, flag, n) == 0) return 1;
        p = comma ? comma + 1 : NULL;
    }
    return 0;
}

/* A Sentinel discovered (SENTINEL SENTINELS) is reached as the first region's are. */
static int add_peer(struct sentinel *s, const struct config_addr *a, int region)
{
    for (int i = 0; i < s->npeers; i++)
        if (same_addr(&s->peers[i].addr, a)) return 0;
    if (s->npeers >= SENTINEL_PEERS_MAX) return 0;
    struct peer *p = &s->peers[s->npeers++];
    memset(p, 0, sizeof(*p));
    p->s = s;
    p->addr = *a;
    p->region = region;
    return 1;
}

static int fresh(const struct peer *p, int64_t now)
{
    return p->answered_ns && now - p->answered_ns < FRESH_NS;
}

/* Folds what the Sentinels said into the view, and tells the caller if it moved. */
static void recompute(struct sentinel *s, const char *why)
{
    int64_t now = topo_now_ns();
    struct sentinel_view old = s->view, *v = &s->view;
    struct peer *best = NULL;
    int any_failover = 0, naming = 0;
    v->nreachable = 0;
    for (int i = 0; i < s->npeers; i++) {
        struct peer *p = &s->peers[i];
        if (!fresh(p, now)) continue;
        v->nreachable++;
        any_failover |= p->failover_in_progress;
        /* A leader in the middle of a failover reports the new config epoch with the
         * old master's address until the very end: it says nothing reliable. */
        if (!p->has_master || p->failover_in_progress) continue;
        naming++;
        /* The highest epoch wins; on a tie, the master we already follow. */
        if (!best || p->epoch > best->epoch ||
            (p->epoch == best->epoch && same_addr(&p->master, &v->master)))
            best = p;
    }
    v->npeers = s->npeers;
    /* An equal epoch naming another master is a Sentinel that has not heard of the
     * switch we were told about: never go back to it. */
    if (best && !v->known) {
        int majority = naming * 2 > s->npeers, waited = now - s->created_ns >= STARTUP_WAIT_NS;
        if (!majority && !waited)
            best = NULL; /* wait for more of them, a little */
        else
            log_info("sentinel: %s named by %d of %d Sentinels (config epoch %lld)%s", s->name,
                     naming, s->npeers, best->epoch,
                     majority ? "" : "; not a majority after 2 s: following the highest epoch");
    }
    if (best && (!v->known || best->epoch > v->epoch)) {
        v->known = 1;
        v->master = best->master;
        v->epoch = best->epoch;
    }
    if (best && same_addr(&best->master, &v->master)) {
        v->nreplicas = best->nreplicas;
        memcpy(v->replicas, best->replicas, best->nreplicas * sizeof(v->replicas[0]));
    }
    if (v->promoting && same_addr(&v->promoted, &v->master)) v->promoting = 0; /* switched */
    if (v->promoting && !any_failover && now - s->promoting_since > ABORT_GUESS_NS) {
        log_warn("sentinel: no Sentinel reports a failover of %s any more; %s:%d was not promoted, "
                 "unfencing %s:%d",
                 s->name, v->promoted.host, v->promoted.port, v->master.host, v->master.port);
        v->promoting = 0;
    }
    if (v->nreachable) s->ever_answered = 1;
    int all_tried = 1;
    for (int i = 0; i < s->npeers; i++)
        all_tried &= s->peers[i].down;
    if (v->nreachable == 0 && (s->ever_answered || all_tried) && !s->all_down_logged) {
        log_warn("sentinel: no Sentinel answers; routing on the last known topology");
        s->all_down_logged = 1;
    } else if (v->nreachable) {
        s->all_down_logged = 0;
    }
    if (memcmp(&old, v, sizeof(old)) != 0) s->changed(s->arg, why);
}

static void round_done(struct peer *p)
{
    if (--p->inflight > 0) return;
    p->answered_ns = topo_now_ns();
    if (p->down) log_info("sentinel %s:%d answers again", p->addr.host, p->addr.port);
    p->down = 0;
    recompute(p->s, "query");
}

/* Replies on a context that has since been replaced or freed are ignored. */
static struct peer *current(struct rconn *rc, void *arg)
{
    struct peer *p = arg;
    return p->cmd == rc ? p : NULL;
}

static void on_master(struct rconn *rc, redisReply *r, void *arg)
{
    struct peer *p = current(rc, arg);
    if (!p || !r) return;
    const char *ip = field(r, "ip"), *port = field(r, "port"), *epoch = field(r, "config-epoch");
    p->has_master = ip && port && set_addr(&p->master, ip, port) == 0;
    p->epoch = epoch ? strtoll(epoch, NULL, 10) : 0;
    p->failover_in_progress = has_flag(field(r, "flags"), "failover_in_progress");
    if (r->type == REDIS_REPLY_ERROR)
        log_warn("sentinel %s:%d: SENTINEL MASTER %s: %s", p->addr.host, p->addr.port, p->s->name,
                 r->str);
    round_done(p);
}

static void on_replicas(struct rconn *rc, redisReply *r, void *arg)
{
    struct peer *p = current(rc, arg);
    if (!p || !r) return;
    p->nreplicas = 0;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *e = r->element[i];
        const char *flags = field(e, "flags"), *link = field(e, "master-link-status");
        if (!flags || has_flag(flags, "s_down") || has_flag(flags, "o_down") ||
            has_flag(flags, "disconnected") || !link || strcmp(link, "ok") != 0)
            continue;
        if (p->nreplicas < SENTINEL_REPLICAS_MAX &&
            set_addr(&p->replicas[p->nreplicas], field(e, "ip"),
                     field(e, "port") ? field(e, "port") : "") == 0)
            p->nreplicas++;
    }
    round_done(p);
}

static void on_sentinels(struct rconn *rc, redisReply *r, void *arg)
{
    struct peer *p = current(rc, arg);
    if (!p || !r) return;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const char *ip = field(r->element[i], "ip"), *port = field(r->element[i], "port");
        struct config_addr a;
        if (ip && port && set_addr(&a, ip, port) == 0 && add_peer(p->s, &a, p->s->region))
            log_info("sentinel: discovered Sentinel %s:%d", a.host, a.port);
    }
    round_done(p);
}

/* "+switch-master name oldip oldport newip newport", instance events "slave ip:port ip
 * port @ name mip mport", master events "master name ip port". */
static void on_event(struct rconn *rc, redisReply *r, void *arg)
{
    struct peer *p = arg;
    if (!r || p->sub != rc || r->type != REDIS_REPLY_ARRAY || r->elements != 4 ||
        r->element[2]->type != REDIS_REPLY_STRING || r->element[3]->type != REDIS_REPLY_STRING)
        return;
    struct sentinel *s = p->s;
    const char *channel = r->element[2]->str;
    char text[512], *w[12] = {0};
    int n = 0;
    snprintf(text, sizeof(text), "%s", r->element[3]->str);
    for (char *save = NULL, *t = strtok_r(text, " ", &save); t && n < 12;
         t = strtok_r(NULL, " ", &save))
        w[n++] = t;
    int ours = (n > 0 && strcmp(w[0], s->name) == 0) ||
               (n > 1 && strcmp(w[0], "master") == 0 && strcmp(w[1], s->name) == 0) ||
               (n > 5 && strcmp(w[4], "@") == 0 && strcmp(w[5], s->name) == 0);
    if (!ours) return;
    struct sentinel_view *v = &s->view;
    struct config_addr a;
    /* Events carry no epoch: a late one from an older, overlapping failover must not
     * undo a newer one. So a switch is taken at once only if it completes the
     * promotion the view already follows; otherwise the queries it sets off decide. */
    if (strcmp(channel, "+switch-master") == 0 && n >= 5) {
        log_warn("sentinel %s:%d: +switch-master %s from %s:%s to %s:%s", p->addr.host,
                 p->addr.port, s->name, w[1], w[2], w[3], w[4]);
        if (v->promoting && set_addr(&a, w[3], w[4]) == 0 && same_addr(&a, &v->promoted)) {
            v->master = a;
            v->promoting = 0;
            s->changed(s->arg, "+switch-master");
        }
    } else if ((strcmp(channel, "+selected-slave") == 0 ||
                strcmp(channel, "+failover-state-send-slaveof-noone") == 0 ||
                strcmp(channel, "+promoted-slave") == 0) &&
               n >= 8 && strcmp(w[0], "slave") == 0) {
        struct config_addr to;
        if (set_addr(&to, w[2], w[3]) == 0 && (!v->promoting || !same_addr(&to, &v->promoted))) {
            log_warn("sentinel: %s: %s:%d is being promoted; fencing the master %s:%d", channel,
                     to.host, to.port, v->master.host, v->master.port);
            v->promoting = 1;
            v->promoted = to;
            s->promoting_since = topo_now_ns();
            s->changed(s->arg, channel);
        }
    } else if (strncmp(channel, "-failover-abort", 15) == 0 && v->promoting && n >= 4 &&
               set_addr(&a, w[2], w[3]) == 0 && same_addr(&a, &v->master)) {
        log_warn("sentinel: %s: %s:%d stays the master", channel, v->master.host, v->master.port);
        v->promoting = 0;
        s->changed(s->arg, channel);
    } else {
        log_info("sentinel %s:%d: %s %s", p->addr.host, p->addr.port, channel, r->element[3]->str);
    }
    sentinel_refresh(s);
}

static void on_down(struct rconn *rc, void *ctx, const char *why)
{
    struct peer *p = ctx;
    int was_up = rconn_connected(rc);
    if (p->cmd == rc) {
        p->cmd = NULL;
        p->inflight = 0;
    }
    if (p->sub == rc) p->sub = NULL;
    if (!p->down)
        log_warn("sentinel %s:%d %s: %s", p->addr.host, p->addr.port,
                 was_up ? "connection lost" : "unreachable", why);
    p->down = 1;
}

static struct rconn *open_conn(struct peer *p)
{
    struct sentinel *s = p->s;
    char err[160];
    struct rconn *rc = rconn_open(s->io, &p->addr, &s->cfg->regions[p->region].sentinel_tls,
                                  on_down, p, err, sizeof(err));
    if (!rc) {
        if (!p->down) log_warn("sentinel %s:%d: %s", p->addr.host, p->addr.port, err);
        p->down = 1;
        return NULL;
    }
    if (s->password && s->username)
        rconn_command(rc, NULL, NULL, "AUTH %s %s", s->username, s->password);
    else if (s->password)
        rconn_command(rc, NULL, NULL, "AUTH %s", s->password);
    return rc;
}

static int connected(const struct rconn *rc)
{
    return rc && rconn_connected(rc);
}

static void query_round(struct sentinel *s)
{
    int64_t now = topo_now_ns();
    for (int i = 0; i < s->npeers; i++) {
        struct peer *p = &s->peers[i];
        /* A Sentinel that neither connects nor answers (frozen, black-holed) is let
         * go of; freeing the context answers its callbacks with NULL. */
        if (p->cmd && ((p->inflight && now - p->round_ns > STUCK_NS) ||
                       (!connected(p->cmd) && now - p->cmd_since > STUCK_NS))) {
            if (!p->down) log_warn("sentinel %s:%d does not answer", p->addr.host, p->addr.port);
            p->down = 1;
            p->inflight = 0;
            rconn_close(&p->cmd); /* its callbacks see NULL: no longer current */
        }
        if (p->sub && !connected(p->sub) && now - p->sub_since > STUCK_NS) rconn_close(&p->sub);
        if (!p->sub && (p->sub = open_conn(p))) {
            p->sub_since = now;
            rconn_subscribe(p->sub, on_event, p, "PSUBSCRIBE *");
        }
        if (!p->cmd && (p->cmd = open_conn(p))) p->cmd_since = now;
        if (!p->cmd || p->inflight) continue;
        p->inflight = QUERIES_PER_ROUND;
        p->round_ns = now;
        rconn_command(p->cmd, on_master, p, "SENTINEL MASTER %s", s->name);
        rconn_command(p->cmd, on_replicas, p, "SENTINEL REPLICAS %s", s->name);
        rconn_command(p->cmd, on_sentinels, p, "SENTINEL SENTINELS %s", s->name);
    }
    recompute(s, "query");
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    query_round(arg);
}

static void on_soon(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sentinel *s = arg;
    s->last_forced = topo_now_ns();
    query_round(s);
}

void sentinel_refresh(struct sentinel *s)
{
    if (evtimer_pending(s->soon, NULL)) return;
    int64_t wait = s->last_forced + REFRESH_MIN_MS * 1000000LL - topo_now_ns();
    struct timeval tv = {0, wait > 0 ? (long)(wait / 1000) : 0};
    evtimer_add(s->soon, &tv);
}

void sentinel_set_callback(struct sentinel *s, sentinel_changed_fn changed, void *arg)
{
    s->changed = changed;
    s->arg = arg;
}

const struct sentinel_view *sentinel_view(const struct sentinel *s)
{
    return &s->view;
}

void sentinel_set_config(struct sentinel *s, struct config *cfg)
{
    struct config *old = s->cfg;
    s->cfg = config_acquire(cfg);
    const struct config_region *with = &cfg->regions[s->region];
    s->name = with->master_name;
    s->username = with->sentinel_username;
    s->password = with->sentinel_password;
    config_release(&old);
}

struct sentinel *sentinel_create(struct sock_loop *io, struct config *cfg,
                                 sentinel_changed_fn changed, void *arg)
{
    int with = -1;
    for (size_t r = 0; r < cfg->nregions && with < 0; r++)
        if (cfg->regions[r].nsentinels) with = (int)r;
    if (with < 0) return NULL;
    struct sentinel *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->region = with;
    sentinel_set_config(s, cfg);
    s->io = io;
    s->created_ns = topo_now_ns();
    s->changed = changed;
    s->arg = arg;
    for (size_t r = 0; r < cfg->nregions; r++)
        for (size_t k = 0; k < cfg->regions[r].nsentinels; k++)
            add_peer(s, &cfg->regions[r].sentinels[k], (int)r);
    struct event_base *base = sock_loop_base(io);
    struct timeval tv = {QUERY_INTERVAL_MS / 1000, (QUERY_INTERVAL_MS % 1000) * 1000};
    s->tick = event_new(base, -1, EV_PERSIST, on_tick, s);
    s->soon = evtimer_new(base, on_soon, s);
    if (!s->tick || !s->soon || event_add(s->tick, &tv) < 0) {
        sentinel_destroy(&s);
        return NULL;
    }
    sentinel_refresh(s); /* the first round, from the loop: never call back from here */
    return s;
}

void sentinel_destroy(struct sentinel **sp)
{
    struct sentinel *s = *sp;
    if (!s) return;
    for (int i = 0; i < s->npeers; i++) {
        struct peer *p = &s->peers[i];
        rconn_close(&p->cmd); /* NULL first: the callbacks this makes ignore them */
        rconn_close(&p->sub);
    }
    if (s->tick) event_free(s->tick);
    if (s->soon) event_free(s->soon);
    config_release(&s->cfg);
    free(s);
    *sp = NULL;
}

struct failover_call {
    struct sentinel *s;
    sentinel_reply_fn done;
    void *arg;
    char who[CONFIG_HOST_MAX + 8]; /* the Sentinel asked */
};

static void on_failover(struct rconn *rc, redisReply *r, void *arg)
{
    (void)rc;
    struct failover_call *call = arg;
    if (!r) { /* also while the sentinel is destroyed: nothing else is touched */
        call->done(call->arg, 0, "the Sentinel connection closed before it answered");
    } else if (r->type == REDIS_REPLY_ERROR) {
        call->done(call->arg, 0, r->str);
    } else {
        struct sentinel_view *v = &call->s->view;
        v->failover_asked_ns = topo_now_ns();
        memcpy(v->failover_asked_of, call->who, sizeof(call->who));
        call->done(call->arg, 1, r->type == REDIS_REPLY_STATUS ? r->str : "OK");
    }
    free(call);
}

int sentinel_failover(struct sentinel *s, sentinel_reply_fn done, void *arg, char *who,
                      size_t wholen)
{
    /* The Sentinel that answered last with the highest epoch: it knows the newest
     * configuration, and is likely to win the vote it starts. */
    struct peer *best = NULL;
    int64_t now = topo_now_ns();
    for (int i = 0; i < s->npeers; i++) {
        struct peer *p = &s->peers[i];
        if (!p->cmd || !connected(p->cmd) || !fresh(p, now)) continue;
        if (!best || p->epoch > best->epoch) best = p;
    }
    if (!best) return -1;
    struct failover_call *call = malloc(sizeof(*call));
    if (!call) return -1;
    *call = (struct failover_call){.s = s, .done = done, .arg = arg};
    snprintf(call->who, sizeof(call->who), "%s:%d", best->addr.host, best->addr.port);
    if (rconn_command(best->cmd, on_failover, call, "SENTINEL FAILOVER %s", s->name) != 0) {
        free(call);
        return -1;
    }
    snprintf(who, wholen, "%s", call->who);
    log_warn("asked Sentinel %s:%d for a failover of \"%s\"", best->addr.host, best->addr.port,
             s->name);
    return 0;
}
