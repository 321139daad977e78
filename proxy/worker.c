/* worker: see worker.h. A worker thread runs its event loop until it is told to
 * stop on its control pipe: 'd' stops accepting and lets in-flight replies go out
 * (bounded by shutdown_timeout_ms), 'f' closes everything at once. Each pass of
 * its loop ends in pass_end(): woken clients resume, closed clients and let-go
 * pinned connections are freed. */
#include "worker.h"
#include "client.h"
#include "command.h"
#include "dataplane.h"
#include "hold.h"
#include "idmap.h"
#include "clientlist.h"
#include "roster.h"
#include "listen.h"
#include "log.h"
#include "pass.h"
#include "req.h"
#include "session.h"
#include "upstream.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

struct worker_group {
    int n;
    struct worker *workers;
    pthread_t *threads;
    int nthreads; /* started */
    struct shared shared;
    atomic_int running;
};

/* What main ('d', 'f') and the control thread ('t', 'c') send a worker on its
 * control pipe. Smaller than PIPE_BUF, so each write is atomic. */
struct control_msg {
    char cmd;           /* 'd' drain, 'f' force close, 't' new topology, 'c' new config,
                           'r' a roster question or answer */
    struct topology *t; /* with 't': a reference the worker takes over */
};

/* The end of one loop pass (pass.h): woken clients resume, in the order woken (a
 * resume may wake others, or close them); then what was closed is freed, since no
 * callback on it is on the stack any more. Returns whether it did anything. */
static int pass_end(void *arg)
{
    struct worker *w = arg;
    int did = 0;
    struct client *c;
    if (!TAILQ_EMPTY(&w->ready)) w->now_ns = topo_now_ns();
    while ((c = TAILQ_FIRST(&w->ready))) {
        TAILQ_REMOVE(&w->ready, c, ready);
        c->flags &= ~(unsigned)C_READY;
        client_resume(c);
        did = 1;
    }
    upstream_durable_flush(w); /* after what the clients just sent: one WAIT each */
    if (w->draining == 2) {    /* the drain timed out: the held got their replies above */
        w->draining = 3;       /* and they are written before everyone is closed */
        return 1;
    }
    if (w->draining == 3) {
        if (w->nclients) log_warn("drain timeout: closing %d client connections", w->nclients);
        client_close_all(w);
        w->draining = 4;
    }
    while ((c = TAILQ_FIRST(&w->dead))) {
        client_destroy(c);
        did = 1;
    }
    struct upconn *u;
    while ((u = TAILQ_FIRST(&w->dead_ups))) {
        TAILQ_REMOVE(&w->dead_ups, u, link);
        upstream_free(u);
        did = 1;
    }
    if (w->draining && w->nclients == 0) event_base_loopexit(w->base, NULL);
    return did;
}

/* How many clients the open-files limit leaves room for, as Redis lowers maxclients
 * to its descriptors: what respgate's own connections may take is kept aside (shared
 * ones of both RESP versions, idle session ones, the control thread's, the listeners
 * and logs: 64), and a quarter of the rest for clients' own session connections. A
 * reload may raise the limit: read once a second. */
static void fit_fd_cap(struct worker *w)
{
    const struct config *cfg = w->cfg;
    struct rlimit rl;
    w->fd_cap = INT_MAX;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY) return;
    long long nodes = 0;
    for (size_t r = 0; r < cfg->nregions; r++)
        nodes += (long long)cfg->regions[r].nnodes;
    if (nodes < 3) nodes = 3; /* Sentinel finds the replicas */
    long long own =
        64 + nodes * (cfg->threads * (2LL * cfg->upstream.connections_per_node + 16) + 2);
    long long left = (long long)rl.rlim_cur - own;
    w->fd_cap = left > 4 ? (int)(left * 3 / 4 < INT_MAX ? left * 3 / 4 : INT_MAX) : 1;
}

static void cron_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker *w = arg;
    struct sock_tls_counts tls;
    fit_fd_cap(w);
    client_cron(w);
    sock_loop_tls_counts(w->io, &tls); /* counted by sock.c, published once a second */
    for (int side = 0; side < SOCK_TLS_SIDES; side++) {
        for (int k = 0; k < SOCK_TLS_RESULTS; k++)
            stats_set(&w->stats->tls_handshakes[side][k], tls.n[side][k]);
        stats_set(&w->stats->tls_resumed[side], tls.resumed[side]);
    }
}

/* shutdown_timeout_ms passed: requests still waiting for a master get -TRYAGAIN,
 * then the end of the pass writes them and closes every client. */
static void drain_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker *w = arg;
    w->now_ns = topo_now_ns();
    w->draining = 2;
    hold_expire_all(w);
}

/* A new snapshot: route with it from now on. A replica that stopped answering
 * (frozen, say) would hold the reads in flight to it forever: they end now. The
 * master is left alone: a busy master is not a dead one. When the master moves,
 * sessions on the old one end, and every connection proves with ROLE that it
 * reaches a master before it carries a write; held clients go once one has. */
static void set_topology(struct worker *w, struct topology *t)
{
    struct topology *old = w->topo;
    w->topo = t;
    upstream_topology_changed(w, old, t);
    for (size_t i = 0; i < t->nnodes; i++)
        if ((int)i != t->master && !t->nodes[i].reachable &&
            (!old || i >= old->nnodes || old->nodes[i].reachable))
            upstream_node_lost(w, (int)i);
    if (old && old->master >= 0 && old->master != t->master) session_master_moved(w, old->master);
    topo_release(&old);
    if (w->nheld || w->nresend) hold_release_all(w);
}

static unsigned char *deny_table(const struct config *cfg);

/* A reloaded config: from the next request on. Clients already connected keep
 * their authentication and their parser's bulk limit. */
static int set_config(struct worker *w, struct config *cfg)
{
    unsigned char *denied = deny_table(cfg);
    if (!denied) {
        config_release(&cfg);
        return -1;
    }
    free(w->denied);
    w->denied = denied;
    config_release(&w->cfg);
    w->cfg = cfg;
    w->policy = route_policy_of(cfg);
    sock_loop_set_busy_poll(w->io, cfg->busy_poll_us);
    return 0;
}

static void start_stopping(struct worker *w, int how)
{
    listen_close(w);
    if (how == 2) {
        client_close_all(w); /* freed at the end of this pass */
        event_base_loopexit(w->base, NULL);
    } else if (!w->draining) {
        w->draining = 1;
        struct timeval tv = {w->cfg->shutdown_timeout_ms / 1000,
                             (w->cfg->shutdown_timeout_ms % 1000) * 1000};
        w->drain_timer = evtimer_new(w->base, drain_timeout_cb, w);
        if (w->drain_timer) evtimer_add(w->drain_timer, &tv);
        client_start_drain(w);
    }
}

static void control_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct worker *w = arg;
    struct control_msg m;
    w->now_ns = topo_now_ns();
    while (read(fd, &m, sizeof(m)) == (ssize_t)sizeof(m)) {
        if (m.cmd == 't') set_topology(w, m.t);
        /* 'c', 'd', 'f', 'r' only wake: the mailboxes below say what */
    }
    struct roster_query *q;
    int back;
    while ((q = roster_next(w->shared->roster, w->id, &back))) {
        if (back)
            clientlist_reply(w, q);
        else
            clientlist_answer(w, q);
    }
    struct config *cfg = atomic_exchange(&w->next_cfg, NULL);
    if (cfg && set_config(w, cfg)) log_error("out of memory applying a reloaded config");
    int stop = atomic_load(&w->stop_asked);
    if (stop > w->stopping) {
        w->stopping = stop;
        start_stopping(w, stop);
    }
}

/* Never blocks: a message is smaller than PIPE_BUF, so it goes whole or not at
 * all, and a full pipe means the worker has messages to read anyway, after which
 * it looks at its mailboxes. Only a topology can be lost that way, and the next
 * one replaces it. */
static void send_control(struct worker *w, char cmd, struct topology *t, struct config *cfg)
{
    if (cmd == 'c') {
        struct config *old = atomic_exchange(&w->next_cfg, cfg);
        config_release(&old); /* not taken yet: superseded */
    } else if (cmd == 'd' || cmd == 'f') {
        int want = cmd == 'f' ? 2 : 1, have = atomic_load(&w->stop_asked);
        while (have < want && !atomic_compare_exchange_weak(&w->stop_asked, &have, want))
            ;
    }
    struct control_msg m;
    memset(&m, 0, sizeof(m)); /* padding too: it goes through a pipe */
    m.cmd = cmd;
    m.t = t;
    if (write(w->ctl_fd[1], &m, sizeof(m)) != (ssize_t)sizeof(m)) topo_release(&m.t);
}

/* Any worker: a question about clients waits in w's roster mailbox. */
static void roster_wake(void *arg)
{
    send_control(arg, 'r', NULL, NULL);
}

/* Runs on the control thread: every worker gets its own reference. */
static void publish_topology(void *arg, struct topology *t)
{
    struct worker_group *g = arg;
    for (int i = 0; i < g->n; i++)
        send_control(&g->workers[i], 't', topo_acquire(t), NULL);
    topo_release(&t);
}

/* Runs on the control thread, before the snapshot that goes with it. */
static void apply_config(void *arg, struct config *cfg)
{
    struct worker_group *g = arg;
    for (int i = 0; i < g->n; i++)
        send_control(&g->workers[i], 'c', NULL, config_acquire(cfg));
}

/* Runs on the control thread at scrape time. */
static void sum_stats(void *arg, struct stats *sum)
{
    struct worker_group *g = arg;
    for (int i = 0; i < g->n; i++)
        stats_sum(sum, g->workers[i].stats);
}

/* Runs on the control thread (/readyz): every worker has a verified connection to
 * the writable master, so a client lands where writes work, whichever it lands on. */
static int all_ready(void *arg)
{
    struct worker_group *g = arg;
    for (int i = 0; i < g->n; i++)
        if (!atomic_load_explicit(&g->workers[i].master_ok, memory_order_relaxed)) return 0;
    return g->n > 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char name[16];
    snprintf(name, sizeof(name), "worker-%d", w->id);
    log_set_thread_name(name);

    sock_loop_run(w->io);

    client_close_all(w);
    pass_end(w); /* frees them */
    hold_deinit(w);
    upstream_pool_deinit(w);
    topo_release(&w->topo);
    atomic_fetch_sub(w->running, 1);
    return NULL;
}

static void worker_deinit(struct worker *w)
{
    listen_close(w);
    if (w->ctl_ev) event_free(w->ctl_ev);
    if (w->drain_timer) event_free(w->drain_timer);
    if (w->cron) event_free(w->cron);
    hold_deinit(w);
    upstream_pool_deinit(w);
    topo_release(&w->topo);
    struct control_msg m;
    while (w->ctl_fd[0] >= 0 && read(w->ctl_fd[0], &m, sizeof(m)) == (ssize_t)sizeof(m))
        topo_release(&m.t); /* sent after the loop stopped */
    struct config *next = atomic_exchange(&w->next_cfg, NULL);
    config_release(&next);
    config_release(&w->cfg);
    free(w->denied);
    free(w->stats);
    req_cache_destroy(&w->reqs);
    for (int i = 0; i < 2; i++)
        if (w->ctl_fd[i] >= 0) close(w->ctl_fd[i]);
    sock_loop_destroy(&w->io);
    if (w->base) event_base_free(w->base);
}

static int worker_init(struct worker *w, int id, struct config *cfg, struct shared *sh,
                       atomic_int *running, const struct addrinfo *listen_ai,
                       const struct addrinfo *tls_ai, char *err, size_t errlen)
{
    w->id = id;
    w->spare_fd = -1;
    w->cfg = config_acquire(cfg);
    fit_fd_cap(w);
    w->policy = route_policy_of(cfg);
    w->denied = deny_table(cfg);
    /* Its own cache lines: the control thread reads them, no other worker writes near. */
    w->stats = aligned_alloc(64, (sizeof(struct stats) + 63) / 64 * 64);
    w->reqs = req_cache_create();
    w->ops = &client_upstream_ops;
    if (!w->denied || !w->stats || !w->reqs) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memset(w->stats, 0, sizeof(*w->stats));
    w->shared = sh;
    w->running = running;
    roster_set_wake(sh->roster, id, roster_wake, w);
    w->ctl_fd[0] = w->ctl_fd[1] = -1;
    TAILQ_INIT(&w->clients);
    TAILQ_INIT(&w->held);
    TAILQ_INIT(&w->resend);
    TAILQ_INIT(&w->ready);
    TAILQ_INIT(&w->dead);
    TAILQ_INIT(&w->dead_ups);
    TAILQ_INIT(&w->wait_ups);

    /* Only this thread touches its base: no locking inside libevent either. */
    struct event_config *ec = event_config_new();
    if (ec) event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
    w->base = ec ? event_base_new_with_config(ec) : NULL;
    if (ec) event_config_free(ec);
    w->io = w->base ? sock_loop_create(w->base) : NULL;
    if (!w->io || pipe2(w->ctl_fd, O_NONBLOCK | O_CLOEXEC) < 0) {
        snprintf(err, errlen, "worker %d: cannot create its event loop", id);
        return -1;
    }
    sock_loop_set_pass_end(w->io, pass_end, w);
    sock_loop_set_busy_poll(w->io, cfg->busy_poll_us);
    struct timeval second = {1, 0};
    if (!(w->cron = event_new(w->base, -1, EV_PERSIST, cron_cb, w)) ||
        event_add(w->cron, &second) < 0) {
        snprintf(err, errlen, "worker %d: cannot start its timer", id);
        return -1;
    }
    w->ctl_ev = event_new(w->base, w->ctl_fd[0], EV_READ | EV_PERSIST, control_cb, w);
    if (!w->ctl_ev || event_add(w->ctl_ev, NULL) < 0) {
        snprintf(err, errlen, "worker %d: cannot watch its control pipe", id);
        return -1;
    }
    if (listen_open(w, listen_ai, tls_ai, err, errlen)) return -1;
    if (upstream_pool_init(w)) {
        snprintf(err, errlen, "worker %d: cannot create upstream connections", id);
        return -1;
    }
    return 0;
}

static int resolve(const struct config_addr *a, int passive, struct addrinfo **out, char *err,
                   size_t errlen)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = passive ? AI_PASSIVE : 0};
    char port[8];
    snprintf(port, sizeof(port), "%d", a->port);
    int rc = getaddrinfo(a->host, port, &hints, out);
    if (rc) snprintf(err, errlen, "%s:%d: %s", a->host, a->port, gai_strerror(rc));
    return rc ? -1 : 0;
}

/* SO_REUSEPORT would let us share a port with another running respgate without a
 * word; a plain bind first finds out whether anything holds it. */
static int check_port_free(const struct addrinfo *ai, const char *key, const struct config_addr *a,
                           char *err, size_t errlen)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, rc = -1;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        rc = bind(fd, ai->ai_addr, ai->ai_addrlen);
        if (rc < 0) snprintf(err, errlen, "%s %s:%d: %s", key, a->host, a->port, strerror(errno));
        close(fd);
    } else {
        snprintf(err, errlen, "socket: %s", strerror(errno));
    }
    return rc;
}

static struct worker_group *group_free(struct worker_group *g)
{
    for (int i = 0; i < g->n; i++)
        worker_deinit(&g->workers[i]);
    free(g->workers);
    free(g->threads);
    idmap_destroy(&g->shared.ids);
    roster_destroy(&g->shared.roster); /* questions still going: their requests are no cache's */
    free(g);
    return NULL;
}

/* Every configured node must resolve at startup: a typo fails loudly here. */
static int check_nodes_resolve(const struct config *cfg, char *err, size_t errlen)
{
    for (size_t r = 0; r < cfg->nregions; r++)
        for (size_t k = 0; k < cfg->regions[r].nnodes; k++) {
            struct addrinfo *ai;
            char why[512];
            if (resolve(&cfg->regions[r].nodes[k], 0, &ai, why, sizeof(why))) {
                snprintf(err, errlen, "regions[%zu].nodes[%zu]: %s", r, k, why);
                return -1;
            }
            freeaddrinfo(ai);
        }
    return 0;
}

/* deny_commands as a table over the command-table rows, so the check per request
 * is one byte read after the lookup dispatch does anyway. */
static unsigned char *deny_table(const struct config *cfg)
{
    unsigned char *t = calloc(cmd_count(), 1);
    for (size_t i = 0; t && i < cfg->ndeny; i++) {
        const char *name = cfg->deny[i], *bar = strchr(name, '|');
        const struct cmd_info *c = cmd_lookup(name, strlen(name));
        if (c) t[cmd_index(c)] = 1;
        if (bar && (c = cmd_lookup(name, (size_t)(bar - name))) && !t[cmd_index(c)])
            t[cmd_index(c)] = 2;
    }
    return t;
}

struct worker_group *workers_create(struct config *cfg, char *err, size_t errlen)
{
    struct addrinfo *listen_ai = NULL, *tls_ai = NULL;
    struct worker_group *g = calloc(1, sizeof(*g));
    if (!g) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (resolve(&cfg->listen, 1, &listen_ai, err, errlen) ||
        check_nodes_resolve(cfg, err, errlen) ||
        check_port_free(listen_ai, "listen", &cfg->listen, err, errlen) ||
        (cfg->tls.enabled &&
         (resolve(&cfg->tls.listen, 1, &tls_ai, err, errlen) ||
          check_port_free(tls_ai, "tls.listen", &cfg->tls.listen, err, errlen))))
        goto fail;

    g->workers = calloc((size_t)cfg->threads, sizeof(*g->workers));
    g->threads = calloc((size_t)cfg->threads, sizeof(*g->threads));
    g->shared.ids = idmap_create();
    g->shared.roster = roster_create(cfg->threads);
    if (!g->workers || !g->threads || !g->shared.ids || !g->shared.roster) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (g->n = 0; g->n < cfg->threads; g->n++)
        if (worker_init(&g->workers[g->n], g->n, cfg, &g->shared, &g->running, listen_ai, tls_ai,
                        err, errlen)) {
            g->n++; /* so it is cleaned up */
            goto fail;
        }
    freeaddrinfo(listen_ai);
    if (tls_ai) freeaddrinfo(tls_ai);
    return g;

fail:
    if (listen_ai) freeaddrinfo(listen_ai);
    if (tls_ai) freeaddrinfo(tls_ai);
    return group_free(g);
}

struct control_hooks workers_hooks(struct worker_group *g)
{
    return (struct control_hooks){g, publish_topology, apply_config, sum_stats, all_ready};
}

int workers_run(struct worker_group *g, struct probe *probe, struct avail *avail, char *err,
                size_t errlen)
{
    g->shared.probe = probe;
    g->shared.avail = avail;
    /* Start with a picture of the nodes, if they answer soon; respgate also starts
     * without one (Redis down), and routes once the probe learns more. */
    const struct config *cfg = g->workers[0].cfg;
    struct topology *first =
        probe_wait_first(probe, cfg->upstream.connect_timeout_ms + 2 * cfg->probe_interval_ms);
    for (int i = 0; first && i < g->n; i++)
        set_topology(&g->workers[i], topo_acquire(first));
    topo_release(&first);

    for (int i = 0; i < g->n; i++) {
        atomic_fetch_add(&g->running, 1);
        if (pthread_create(&g->threads[i], NULL, worker_main, &g->workers[i])) {
            atomic_fetch_sub(&g->running, 1);
            snprintf(err, errlen, "cannot start worker thread %d", i);
            return -1; /* the caller stops and joins those started */
        }
        g->nthreads++;
    }
    log_info("listening on %s:%d with %d worker threads", cfg->listen.host, cfg->listen.port, g->n);
    return 0;
}

int workers_running(struct worker_group *g)
{
    return atomic_load(&g->running);
}

void workers_stop(struct worker_group *g, int force)
{
    for (int i = 0; i < g->n; i++)
        send_control(&g->workers[i], force ? 'f' : 'd', NULL, NULL);
}

void workers_join(struct worker_group **gp)
{
    struct worker_group *g = *gp;
    if (!g) return;
    for (int i = 0; i < g->nthreads; i++)
        pthread_join(g->threads[i], NULL);
    *gp = group_free(g);
}
