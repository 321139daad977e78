/* probe: see probe.h. Runs on the control thread's event_base; nothing here is
 * shared with the workers except the snapshots it publishes (and, at startup, the
 * first one, handed over under a mutex). */
#include "probe_int.h"
#include "command.h"
#include "overlay.h"
#include "info.h"
#include "log.h"
#include "region.h"
#include "sentinel.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROBE_STALL_FACTOR 1.5       /* intervals without an answer: unreachable */
#define PROBE_RESET_FACTOR 10        /* intervals without an answer: reconnect */
#define LISTED_NS (5LL * 1000000000) /* a discovered node no source lists is dropped after */

#define COMMANDS_REFRESH_NS (60LL * 1000000000) /* and whenever the master changes */

static const char *role_name(enum topo_role r)
{
    return r == TOPO_MASTER ? "master" : r == TOPO_REPLICA ? "replica" : "unknown";
}

/* The node an address names (by name or resolved address), or -1. */
int pr_node_index(struct probe *p, const struct config_addr *a)
{
    for (size_t i = 0; i < p->nnodes; i++) {
        struct probe_node *n = &p->nodes[i];
        if (n->addr.port == a->port &&
            (strcmp(n->addr.host, a->host) == 0 || strcmp(n->numeric, a->host) == 0))
            return (int)i;
    }
    return -1;
}

/* Resolves the address once: workers connect to the result, INFO matches by it. */
static void resolve_node(struct probe_node *n)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    char port[8];
    snprintf(port, sizeof(port), "%d", n->addr.port);
    snprintf(n->state.name, sizeof(n->state.name), "%s:%d", n->addr.host, n->addr.port);
    if (getaddrinfo(n->addr.host, port, &hints, &ai) != 0) return;
    getnameinfo(ai->ai_addr, ai->ai_addrlen, n->numeric, sizeof(n->numeric), NULL, 0,
                NI_NUMERICHOST);
    if (ai->ai_addrlen <= sizeof(n->state.sa)) {
        memcpy(&n->state.sa, ai->ai_addr, ai->ai_addrlen);
        n->state.salen = ai->ai_addrlen;
    }
    freeaddrinfo(ai);
}

/* The region of a node found through Sentinel or a master's replica list and not
 * listed in the file: the one regions[].match places it in; with one region, that
 * one; otherwise -1, unknown, until the file lists or matches it. */
static int discovered_region(const struct config *cfg, const struct probe_node *n)
{
    return cfg->nregions == 1 ? 0 : region_match(cfg, n->addr.host, n->numeric);
}

/* The node for an address, added if new (and there is room). -1 if not. */
static int node_add(struct probe *p, const struct config_addr *a, int region, int configured)
{
    int i = pr_node_index(p, a);
    if (i >= 0) return i;
    if (p->nnodes >= TOPO_MAX_NODES) {
        static int warned;
        if (!warned++)
            log_error("more than %d nodes: %s:%d and later ones are not followed", TOPO_MAX_NODES,
                      a->host, a->port);
        return -1;
    }
    struct probe_node *n = &p->nodes[p->nnodes];
    memset(n, 0, sizeof(*n));
    n->p = p;
    n->index = p->nnodes;
    n->addr = *a;
    n->configured = configured;
    n->state.addr = *a;
    n->state.follows = -1;
    n->state.priority = -1;
    resolve_node(n);
    n->state.region = region >= 0 ? region : discovered_region(p->cfg, n);
    if (!configured) log_info("node %s:%d discovered", a->host, a->port);
    return (int)p->nnodes++;
}

/* Which nodes are part of the set now: configured ones, and discovered ones that
 * Sentinel or the master listed lately. Nodes no longer listed are not probed. */
static void update_listed(struct probe *p)
{
    int64_t now = topo_now_ns();
    if (p->sentinel) {
        const struct sentinel_view *v = sentinel_view(p->sentinel);
        int i;
        if (v->known && (i = node_add(p, &v->master, -1, 0)) >= 0) p->nodes[i].seen_ns = now;
        if (v->promoting && (i = node_add(p, &v->promoted, -1, 0)) >= 0) p->nodes[i].seen_ns = now;
        for (size_t k = 0; k < v->nreplicas; k++)
            if ((i = node_add(p, &v->replicas[k], -1, 0)) >= 0) p->nodes[i].seen_ns = now;
    }
    for (size_t i = 0; i < p->nnodes; i++) {
        struct probe_node *n = &p->nodes[i];
        int listed = n->configured || now - n->seen_ns < LISTED_NS;
        if (listed != n->state.listed)
            log_info("node %s:%d %s", n->addr.host, n->addr.port,
                     listed ? "joins the set" : "is no longer listed; not following it");
        n->state.listed = listed;
    }
}

static void fetch_commands(struct probe *p, int master);

/* Records the reference master's newest offset, once per probe of it. */
static void remember_offset(struct probe *p, const struct topology *t)
{
    if (t->reference < 0) return;
    const struct topo_node *m = &t->nodes[t->reference];
    if (p->history_node != t->reference) p->nhistory = 0; /* another master: start over */
    p->history_node = t->reference;
    if (!m->probed_ns || m->role != TOPO_MASTER) return;
    int newest = (p->history_head + PROBE_HISTORY - 1) % PROBE_HISTORY;
    if (p->nhistory && p->history[newest].at_ns >= m->probed_ns) return;
    p->history[p->history_head].offset = m->offset;
    p->history[p->history_head].at_ns = m->probed_ns;
    p->history_head = (p->history_head + 1) % PROBE_HISTORY;
    if (p->nhistory < PROBE_HISTORY) p->nhistory++;
}

/* How old replica i's data may be: the master had at most its offset when it was
 * probed at some time T, so everything before T is there. From the newest such T:
 * the replica's own probe time minus T (an upper bound); -1 if nothing is known. */
static int64_t replica_lag_ns(const struct probe *p, const struct topology *t, size_t i)
{
    const struct topo_node *n = &t->nodes[i];
    if ((int)i == t->reference) return 0;
    if (n->role != TOPO_REPLICA || !p->nhistory || !n->probed_ns) return -1;
    for (int k = 1; k <= p->nhistory; k++) {
        int at = (p->history_head + PROBE_HISTORY - k) % PROBE_HISTORY;
        if (p->history[at].offset <= n->offset) {
            int64_t lag = n->probed_ns - p->history[at].at_ns;
            return k == 1 || lag < 0 ? 0 : lag;
        }
    }
    /* Behind every offset kept: at least as old as the oldest of them. */
    int oldest = (p->history_head + PROBE_HISTORY - p->nhistory) % PROBE_HISTORY;
    return n->probed_ns - p->history[oldest].at_ns;
}

void pr_publish(struct probe *p)
{
    update_listed(p);
    struct topology *t = topo_create(p->nnodes);
    if (!t) return;
    t->generation = ++p->generation;
    t->commands = cmd_overlay_acquire(p->commands);
    for (size_t i = 0; i < p->nnodes; i++)
        t->nodes[i] = p->nodes[i].state;
    const char *why = NULL;
    t->master = pr_choose_master(p, t, &why, &t->master_reason);
    int was = p->reference;
    if (t->master >= 0) p->reference = t->master;
    if (t->master != p->master) p->master_since_ns = topo_now_ns();
    t->master_since_ns = p->master_since_ns;
    t->reference = p->reference;
    t->why_no_master = t->master < 0 ? why : NULL;
    remember_offset(p, t);
    for (size_t i = 0; i < t->nnodes; i++)
        t->nodes[i].lag_ns = replica_lag_ns(p, t, i);

    if (log_enabled(LOG_DEBUG))
        for (size_t i = 0; i < t->nnodes; i++)
            log_debug("snapshot %llu: %s:%d %s%s reachable=%d link=%d offset=%lld lag=%lld",
                      (unsigned long long)t->generation, t->nodes[i].addr.host,
                      t->nodes[i].addr.port, role_name(t->nodes[i].role),
                      (int)i == t->master ? " (master)" : "", t->nodes[i].reachable,
                      t->nodes[i].link_up, t->nodes[i].offset, topo_lag(t, i));
    if (t->master != p->master) {
        if (t->master >= 0 && (was < 0 || was == t->master)) /* a move: master_switch says it */
            log_warn("master is %s%s: %s", t->nodes[t->master].name, was < 0 ? "" : " again",
                     t->master_reason);
        else if (t->master < 0)
            log_warn("no writable master: %s", why);
        p->master = t->master;
        p->commands_at = 0; /* the new master may know other commands */
    }
    if (t->master >= 0 && !p->commands_pending &&
        (!p->commands_at || topo_now_ns() - p->commands_at > COMMANDS_REFRESH_NS))
        fetch_commands(p, t->master);

    pthread_mutex_lock(&p->lock);
    int all = !p->sentinel || p->master >= 0;
    for (size_t i = 0; i < p->nnodes; i++)
        all &= p->nodes[i].answered || !p->nodes[i].state.listed;
    if (all && !p->first_ready) {
        p->first = topo_acquire(t);
        p->first_ready = 1;
        pthread_cond_broadcast(&p->cond);
    }
    pthread_mutex_unlock(&p->lock);

    topo_release(&p->latest);
    p->latest = topo_acquire(t);
    p->publish(p->arg, t);
}

static void on_command(struct rconn *rc, redisReply *reply, void *arg)
{
    (void)rc;
    struct probe *p = arg;
    p->commands_pending = 0;
    struct cmd_overlay *o = overlay_from_command(reply);
    if (!o) return;
    if (cmd_overlay_count(o) != cmd_overlay_count(p->commands))
        log_info("the master knows %zu commands the built-in table does not; routing them by "
                 "its COMMAND flags",
                 cmd_overlay_count(o));
    cmd_overlay_release(&p->commands);
    p->commands = o;
    p->commands_at = topo_now_ns();
    pr_publish(p);
}

static void fetch_commands(struct probe *p, int master)
{
    struct probe_node *n = &p->nodes[master];
    if (n->rc && rconn_command(n->rc, on_command, p, "COMMAND") == 0) p->commands_pending = 1;
}

static void set_unreachable(struct probe_node *n, const char *why)
{
    if (n->state.reachable || !n->answered)
        log_warn("node %s:%d (%s) unreachable: %s", n->addr.host, n->addr.port,
                 role_name(n->state.role), why);
    snprintf(n->err, sizeof(n->err), "%s", why);
    n->state.reachable = 0;
    n->answered = 1;
}

static void on_info(struct rconn *rc, redisReply *reply, void *arg)
{
    (void)rc;
    struct probe_node *n = arg;
    int64_t sent = n->sent_ns;
    n->sent_ns = 0;
    if (!reply) return; /* disconnected: on_down handles it */

    struct info_replication info;
    if (reply->type != REDIS_REPLY_STRING) {
        set_unreachable(n, reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected INFO reply");
    } else if (info_parse(reply->str, reply->len, &info) < 0) {
        set_unreachable(n, "unreadable INFO reply");
    } else {
        struct topo_node *s = &n->state;
        if (!s->reachable || s->role != info.role)
            log_info("node %s:%d is %s", n->addr.host, n->addr.port, role_name(info.role));
        s->reachable = 1;
        s->role = info.role;
        s->offset = info.offset;
        s->link_up = info.role == TOPO_REPLICA && info.link_up && !info.syncing && !info.loading;
        s->follows = info.role == TOPO_REPLICA ? pr_node_index(n->p, &info.master) : -1;
        s->priority = info.role == TOPO_REPLICA ? info.priority : -1;
        s->probed_ns = sent;
        pr_fit_priority(n);
        n->answered = 1;
        n->redialed = 0;
        n->err[0] = '\0';
        /* The master's own replica list: a replica added shows here well before
         * Sentinel, which reads a master's INFO every ten seconds, lists it. */
        struct probe *p = n->p;
        for (size_t k = 0; (int)n->index == p->master && k < info.nreplicas; k++) {
            size_t before = p->nnodes;
            int i = node_add(p, &info.replicas[k], -1, 0);
            if (i < 0) continue;
            p->nodes[i].seen_ns = topo_now_ns();
            if (p->nnodes > before) pr_probe_now(&p->nodes[i]);
        }
    }
    pr_publish(n->p);
}

static void on_down(struct rconn *rc, void *ctx, const char *why)
{
    struct probe_node *n = ctx;
    int was_up = rconn_connected(rc);
    n->rc = NULL;
    n->sent_ns = 0;
    /* Sentinel kills the client connections of every node it reconfigures: one drop
     * is not an outage. Ask again at once; a node that is gone refuses the connect. */
    if (was_up && n->state.reachable && !n->redialed) {
        n->redialed = 1;
        pr_probe_now(n);
        return;
    }
    set_unreachable(n, why);
    pr_publish(n->p);
}

static void node_connect(struct probe_node *n)
{
    char err[sizeof(n->err)];
    const struct config *cfg = n->p->cfg; /* the credentials at the time of connecting */
    n->rc = rconn_open(n->p->io, &n->addr, &cfg->upstream.tls, on_down, n, err, sizeof(err));
    if (!n->rc) {
        set_unreachable(n, err);
        return;
    }
    if (cfg->upstream.password && cfg->upstream.username)
        rconn_command(n->rc, NULL, NULL, "AUTH %s %s", cfg->upstream.username,
                      cfg->upstream.password);
    else if (cfg->upstream.password)
        rconn_command(n->rc, NULL, NULL, "AUTH %s", cfg->upstream.password);
}

/* Lets go of the connection (the INFO in flight, if any, is forgotten). */
static void node_disconnect(struct probe_node *n)
{
    rconn_close(&n->rc);
    n->sent_ns = 0;
}

/* Sends INFO now, connecting first if needed (nothing if one is in flight). */
void pr_probe_now(struct probe_node *n)
{
    if (n->sent_ns) return;
    if (!n->rc) node_connect(n);
    if (n->rc && rconn_command(n->rc, on_info, n, "INFO replication persistence") == 0)
        n->sent_ns = topo_now_ns();
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct probe *p = arg;
    int64_t now = topo_now_ns(), interval = (int64_t)p->cfg->probe_interval_ms * 1000000;

    for (size_t i = 0; i < p->nnodes; i++) {
        struct probe_node *n = &p->nodes[i];
        if (!n->state.listed && n->answered) { /* no longer part of the set */
            node_disconnect(n);
            n->state.reachable = 0;
            continue;
        }
        if (n->sent_ns) { /* the last INFO is still unanswered */
            int64_t waited = now - n->sent_ns;
            if (waited > (int64_t)(interval * PROBE_STALL_FACTOR) && n->state.reachable) {
                set_unreachable(n, "no answer to INFO in time");
                pr_publish(p);
            }
            if (waited > interval * PROBE_RESET_FACTOR && n->rc)
                node_disconnect(n); /* reconnect on a later tick */
            continue;
        }
        pr_probe_now(n);
    }
}

/* A worker saw a node answer against the topology (READONLY, ROLE): look again now. */
static void on_poke(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct probe *p = arg;
    for (size_t i = 0; i < p->nnodes; i++)
        if (p->nodes[i].state.listed) pr_probe_now(&p->nodes[i]);
    if (p->sentinel) sentinel_refresh(p->sentinel);
}

void probe_refresh(struct probe *p)
{
    if (p) event_active(p->poke_ev, 0, 0); /* the probe base locks: any thread may call */
}

/* Sentinel's view moved: new nodes are probed at once, and routing follows. */
static void on_sentinel(void *arg, const char *why)
{
    struct probe *p = arg;
    size_t before = p->nnodes;
    log_debug("sentinel view changed (%s)", why);
    update_listed(p);
    for (size_t i = before; i < p->nnodes; i++)
        pr_probe_now(&p->nodes[i]);
    pr_publish(p);
}

void probe_begin(struct probe *p)
{
    p->sentinel = sentinel_create(p->io, p->cfg, on_sentinel, p);
    on_tick(-1, 0, p);
}

struct topology *probe_wait_first(struct probe *p, int timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&p->lock);
    while (!p->first_ready)
        if (pthread_cond_timedwait(&p->cond, &p->lock, &deadline) == ETIMEDOUT) break;
    struct topology *t = topo_acquire(p->first);
    pthread_mutex_unlock(&p->lock);
    return t;
}

struct topology *probe_latest(struct probe *p)
{
    return topo_acquire(p->latest);
}

struct sentinel *probe_sentinel(struct probe *p)
{
    return p->sentinel;
}

void probe_destroy(struct probe **pp)
{
    struct probe *p = *pp;
    if (!p) return;
    p->destroying = 1;
    sentinel_destroy(&p->sentinel);
    sentinel_destroy(&p->next);
    for (size_t i = 0; p->nodes && i < p->nnodes; i++)
        rconn_close(&p->nodes[i].rc); /* the callbacks see NULL and p->destroying */
    if (p->tick) event_free(p->tick);
    if (p->poke_ev) event_free(p->poke_ev);
    topo_release(&p->latest);
    topo_release(&p->first);
    cmd_overlay_release(&p->commands);
    config_release(&p->cfg);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    free(p->nodes);
    free(p);
    *pp = NULL;
}

static void set_interval(struct probe *p)
{
    struct timeval tv = {p->cfg->probe_interval_ms / 1000,
                         (p->cfg->probe_interval_ms % 1000) * 1000};
    event_add(p->tick, &tv);
}

/* Configured nodes are probed from the start, whatever else lists them. */
static void add_configured(struct probe *p)
{
    for (size_t r = 0; r < p->cfg->nregions; r++)
        for (size_t k = 0; k < p->cfg->regions[r].nnodes; k++) {
            int i = node_add(p, &p->cfg->regions[r].nodes[k], (int)r, 1);
            if (i < 0) continue;
            p->nodes[i].configured = 1;
            p->nodes[i].state.region = (int)r;
        }
}

struct probe *probe_create(struct sock_loop *io, struct config *cfg, probe_publish_fn publish_fn,
                           void *arg, char *err, size_t errlen)
{
    struct probe *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    p->cfg = config_acquire(cfg);
    p->io = io;
    p->base = sock_loop_base(io);
    p->publish = publish_fn;
    p->arg = arg;
    p->master = p->reference = -1;
    p->promoted.node = -1;
    p->nodes = calloc(TOPO_MAX_NODES, sizeof(*p->nodes));
    p->tick = event_new(p->base, -1, EV_PERSIST, on_tick, p);
    p->poke_ev = event_new(p->base, -1, 0, on_poke, p);
    if (!p->nodes || !p->tick || !p->poke_ev) {
        snprintf(err, errlen, "out of memory");
        probe_destroy(&p);
        return NULL;
    }
    add_configured(p);
    update_listed(p);
    set_interval(p);
    return p;
}

static int same_sentinels(const struct config *a, const struct config *b)
{
    if (a->nregions != b->nregions) return 0;
    for (size_t r = 0; r < a->nregions; r++) {
        const struct config_region *x = &a->regions[r], *y = &b->regions[r];
        if (x->nsentinels != y->nsentinels ||
            (x->nsentinels &&
             memcmp(x->sentinels, y->sentinels, x->nsentinels * sizeof(*x->sentinels)) != 0))
            return 0;
        const struct config_tls_out *xt = &x->sentinel_tls, *yt = &y->sentinel_tls;
        if (xt->enabled != yt->enabled || xt->verify != yt->verify) return 0;
        const char *xs[7] = {x->master_name, x->sentinel_username, x->sentinel_password,
                             xt->ca_file,    xt->cert_file,        xt->key_file,
                             xt->server_name};
        const char *ys[7] = {y->master_name, y->sentinel_username, y->sentinel_password,
                             yt->ca_file,    yt->cert_file,        yt->key_file,
                             yt->server_name};
        for (int i = 0; i < 7; i++)
            if ((xs[i] == NULL) != (ys[i] == NULL) || (xs[i] && strcmp(xs[i], ys[i]) != 0))
                return 0;
    }
    return 1;
}

#define SENTINEL_SWAP_NS (5LL * 1000000000) /* new Sentinels silent this long: use them anyway */

/* The Sentinels a reload named: they take over once they have named a master (or
 * after a while), so routing never goes a moment without one. */
static void on_next_sentinel(void *arg, const char *why)
{
    struct probe *p = arg;
    const struct sentinel_view *v = sentinel_view(p->next);
    if (!v->known && topo_now_ns() - p->next_since < SENTINEL_SWAP_NS) return;
    log_info("config reload: following the new Sentinels now (%s)", why);
    sentinel_destroy(&p->sentinel);
    p->sentinel = p->next;
    p->next = NULL;
    sentinel_set_callback(p->sentinel, on_sentinel, p);
    on_sentinel(p, why);
}

void probe_set_config(struct probe *p, struct config *cfg)
{
    struct config *old = p->cfg;
    p->cfg = config_acquire(cfg);
    int64_t now = topo_now_ns();
    /* Nodes no longer in the file stay a little, as if discovered: Sentinel or the
     * master may still list them. */
    for (size_t i = 0; i < p->nnodes; i++)
        if (p->nodes[i].configured) {
            p->nodes[i].configured = 0;
            p->nodes[i].seen_ns = now;
        }
    for (size_t i = 0; i < p->nnodes; i++)
        p->nodes[i].state.region = discovered_region(cfg, &p->nodes[i]);
    add_configured(p);
    if (!same_sentinels(old, cfg)) {
        sentinel_destroy(&p->next);
        if (!p->sentinel) {
            p->sentinel = sentinel_create(p->io, cfg, on_sentinel, p);
        } else if (!(p->next = sentinel_create(p->io, cfg, on_next_sentinel, p))) {
            log_info("config reload: no Sentinel configured any more; the nodes' roles decide");
            sentinel_destroy(&p->sentinel);
        }
        p->next_since = now;
    } else { /* the same Sentinels: their new connections get cfg's TLS contexts */
        if (p->sentinel) sentinel_set_config(p->sentinel, cfg);
        if (p->next) sentinel_set_config(p->next, cfg);
    }
    if (old->probe_interval_ms != cfg->probe_interval_ms) set_interval(p);
    config_release(&old);
    pr_publish(p);
}
