/* notify: see notify.h. */
#include "notify.h"
#include "log.h"
#include "topology.h"

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/http.h>
#include <jansson.h>
#include <signal.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HOOKS_MAX 8 /* running at once, per kind; more are dropped (and counted) */
#define REAP_MS 20

extern char **environ;

struct child {
    pid_t pid; /* 0: free slot; also its process group */
    int64_t deadline_ns;
    int killed; /* past the deadline: SIGKILL sent to its group, not reaped yet */
};

struct post {
    struct notify *n;
    struct evhttp_connection *conn; /* NULL: free slot */
    struct evhttp_request *req;     /* until answered or abandoned */
    struct event *deadline;         /* evhttp's timeouts only count silence */
    int done;
};

struct notify {
    struct event_base *base;
    struct control_counters *counters;
    struct child children[HOOKS_MAX];
    struct post posts[HOOKS_MAX];
    struct event *reaper;   /* runs while a child runs */
    struct event *cleanup;  /* frees finished webhook connections, outside their callbacks */
    struct evdns_base *dns; /* without it evhttp resolves the webhook's host name blocking;
                               made for the first webhook post, so that a host without a
                               resolv.conf (a container with no network) starts fine */
};

static void reap(evutil_socket_t fd, short what, void *arg);
static void cleanup(evutil_socket_t fd, short what, void *arg);

struct notify *notify_create(struct event_base *base, struct control_counters *counters)
{
    struct notify *n = calloc(1, sizeof(*n));
    if (!n) return NULL;
    n->base = base;
    n->counters = counters;
    n->reaper = event_new(base, -1, EV_PERSIST, reap, n);
    n->cleanup = event_new(base, -1, 0, cleanup, n);
    if (!n->reaper || !n->cleanup) notify_destroy(&n);
    return n;
}

static void finish_child(struct notify *n, struct child *c, int status, int timed_out)
{
    int ok = !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (ok) {
        n->counters->notify_ok[0]++;
        log_info("notify.command (pid %d) done", (int)c->pid);
    } else {
        n->counters->notify_error[0]++;
        if (timed_out)
            log_warn("notify.command (pid %d) still running after notify.timeout_ms: killed",
                     (int)c->pid);
        else if (WIFEXITED(status))
            log_warn("notify.command (pid %d) failed: exit status %d", (int)c->pid,
                     WEXITSTATUS(status));
        else
            log_warn("notify.command (pid %d) failed: killed by signal %d", (int)c->pid,
                     WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    }
    c->pid = 0;
}

static void reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct notify *n = arg;
    int64_t now = topo_now_ns();
    int running = 0;
    for (int i = 0; i < HOOKS_MAX; i++) {
        struct child *c = &n->children[i];
        if (!c->pid) continue;
        int status = 0;
        pid_t r = waitpid(c->pid, &status, WNOHANG);
        if (r == c->pid) {
            finish_child(n, c, status, c->killed);
        } else if (r < 0) { /* not ours any more: nothing to wait for */
            c->pid = 0;
        } else if (now >= c->deadline_ns && !c->killed) {
            kill(-c->pid, SIGKILL); /* and whatever it started; reaped on a later tick */
            c->killed = 1;
            running++;
        } else {
            running++;
        }
    }
    if (!running) event_del(n->reaper);
}

static void run_command(struct notify *n, const struct config *cfg, const char *const *extra,
                        const char *json)
{
    struct child *slot = NULL;
    for (int i = 0; i < HOOKS_MAX && !slot; i++)
        if (!n->children[i].pid) slot = &n->children[i];
    if (!slot) {
        n->counters->notify_dropped++;
        log_warn("notify.command: %d hooks still running; this event is not passed on", HOOKS_MAX);
        return;
    }
    size_t nenv = 0;
    while (environ[nenv])
        nenv++;
    char **argv = calloc(cfg->notify.ncommand + 6, sizeof(char *));
    char **envp = calloc(nenv + 2, sizeof(char *));
    size_t evlen = strlen(json) + sizeof("RESPGATE_EVENT=");
    char *ev = malloc(evlen);
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int spawned = -1;
    if (argv && envp && ev && posix_spawn_file_actions_init(&fa) == 0) {
        if (posix_spawnattr_init(&attr) == 0) {
            for (size_t i = 0; i < cfg->notify.ncommand; i++)
                argv[i] = cfg->notify.command[i];
            for (size_t i = 0; i < 5; i++)
                argv[cfg->notify.ncommand + i] = (char *)extra[i];
            memcpy(envp, environ, nenv * sizeof(char *));
            snprintf(ev, evlen, "RESPGATE_EVENT=%s", json);
            envp[nenv] = ev;
            /* The hook starts clean: default signals, none blocked (respgate blocks
             * its shutdown signals in every thread), no client sockets, no stdin. */
            sigset_t none, all;
            sigemptyset(&none);
            sigfillset(&all);
            posix_spawnattr_setsigmask(&attr, &none);
            posix_spawnattr_setsigdefault(&attr, &all);
            /* Its own process group: a timeout kills what it started too. */
            posix_spawnattr_setpgroup(&attr, 0);
            posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                                POSIX_SPAWN_SETPGROUP);
            posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
            posix_spawn_file_actions_addclosefrom_np(&fa, 3);
            spawned = posix_spawn(&slot->pid, argv[0], &fa, &attr, argv, envp);
            posix_spawnattr_destroy(&attr);
        }
        posix_spawn_file_actions_destroy(&fa);
    }
    if (spawned != 0) {
        slot->pid = 0;
        n->counters->notify_error[0]++;
        log_warn("notify.command: cannot run %s: %s", cfg->notify.command[0],
                 spawned > 0 ? strerror(spawned) : "out of memory");
    } else {
        slot->deadline_ns = topo_now_ns() + (int64_t)cfg->notify.timeout_ms * 1000000;
        slot->killed = 0;
        log_info("notify.command: started %s (pid %d)", argv[0], (int)slot->pid);
        struct timeval tv = {0, REAP_MS * 1000};
        if (!event_pending(n->reaper, EV_TIMEOUT, NULL)) event_add(n->reaper, &tv);
    }
    free(argv);
    free(envp);
    free(ev);
}

static void cleanup(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct notify *n = arg;
    for (int i = 0; i < HOOKS_MAX; i++)
        if (n->posts[i].conn && n->posts[i].done) {
            evhttp_connection_free(n->posts[i].conn);
            event_free(n->posts[i].deadline);
            n->posts[i] = (struct post){0};
        }
}

static void post_over(struct post *p)
{
    p->req = NULL;
    p->done = 1;
    event_active(p->n->cleanup, 0, 0);
}

/* notify.timeout_ms passed with the answer not in: a receiver trickling bytes
 * must not hold a slot for ever. */
static void post_expired(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct post *p = arg;
    evhttp_cancel_request(p->req); /* frees it; posted is not called */
    p->n->counters->notify_error[1]++;
    log_warn("notify.webhook: no whole answer within notify.timeout_ms; abandoned");
    post_over(p);
}

static void posted(struct evhttp_request *req, void *arg)
{
    struct post *p = arg;
    struct notify *n = p->n;
    event_del(p->deadline);
    int code = req ? evhttp_request_get_response_code(req) : 0;
    if (code >= 200 && code < 300) {
        n->counters->notify_ok[1]++;
        log_info("notify.webhook: delivered (HTTP %d)", code);
    } else {
        n->counters->notify_error[1]++;
        if (code)
            log_warn("notify.webhook: the receiver answered HTTP %d", code);
        else
            log_warn("notify.webhook: no answer (refused, or notify.timeout_ms passed)");
    }
    post_over(p);
}

static void post_webhook(struct notify *n, const struct config *cfg, const char *json)
{
    struct post *slot = NULL;
    for (int i = 0; i < HOOKS_MAX && !slot; i++)
        if (!n->posts[i].conn) slot = &n->posts[i];
    if (!slot) {
        n->counters->notify_dropped++;
        log_warn("notify.webhook: %d posts still pending; this event is not passed on", HOOKS_MAX);
        return;
    }
    const struct config_addr *a = &cfg->notify.webhook_addr;
    if (!n->dns && !(n->dns = evdns_base_new(n->base, EVDNS_BASE_INITIALIZE_NAMESERVERS)))
        log_warn("notify.webhook: no DNS resolver (/etc/resolv.conf?): %s must be an address",
                 a->host);
    struct evhttp_connection *conn =
        evhttp_connection_base_new(n->base, n->dns, a->host, (ev_uint16_t)a->port);
    struct evhttp_request *req = conn ? evhttp_request_new(posted, slot) : NULL;
    struct event *deadline = req ? evtimer_new(n->base, post_expired, slot) : NULL;
    if (!deadline) {
        if (req) evhttp_request_free(req);
        if (conn) evhttp_connection_free(conn);
        n->counters->notify_error[1]++;
        char shown[512];
        config_redact_url(cfg->notify.webhook, shown, sizeof(shown)); /* no ?token= in logs */
        log_warn("notify.webhook: cannot reach %s", shown);
        return;
    }
    *slot = (struct post){.n = n, .conn = conn, .req = req, .deadline = deadline};
    struct timeval tv = {cfg->notify.timeout_ms / 1000, (cfg->notify.timeout_ms % 1000) * 1000};
    evhttp_connection_set_timeout_tv(conn, &tv);
    evhttp_connection_set_retries(conn, 0);
    evhttp_connection_set_max_headers_size(conn, 8192); /* the answer is not read: bounded */
    evhttp_connection_set_max_body_size(conn, 4096);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char host[CONFIG_HOST_MAX + 16];
    snprintf(host, sizeof(host), strchr(a->host, ':') ? "[%s]:%d" : "%s:%d", a->host, a->port);
    evhttp_add_header(h, "Host", host);
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "User-Agent", "respgate/" RG_VERSION);
    evbuffer_add(evhttp_request_get_output_buffer(req), json, strlen(json));
    if (evhttp_make_request(conn, req, EVHTTP_REQ_POST, cfg->notify.webhook_path) != 0) {
        /* the request is freed by evhttp on failure */
        post_over(slot);
        n->counters->notify_error[1]++;
        char shown[512];
        config_redact_url(cfg->notify.webhook, shown, sizeof(shown)); /* no ?token= in logs */
        log_warn("notify.webhook: cannot send to %s", shown);
        return;
    }
    evtimer_add(deadline, &tv);
}

void notify_send(struct notify *n, const struct config *cfg, const char *event,
                 const char *old_master, const char *new_master, const char *region,
                 const char *old_region, const char *reason)
{
    if (!n || (!cfg->notify.ncommand && !cfg->notify.webhook)) return;
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
#define OR_NULL(s) ((s) && *(s) ? json_string(s) : json_null())
    json_t *j =
        json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:o}", "event", event, "time", when, "old_master",
                  OR_NULL(old_master), "new_master", OR_NULL(new_master), "region", OR_NULL(region),
                  "old_region", OR_NULL(old_region), "reason", OR_NULL(reason));
#undef OR_NULL
    char *json = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!json) return;
    if (cfg->notify.ncommand) {
        const char *extra[5] = {event, old_master ? old_master : "", new_master ? new_master : "",
                                region ? region : "", reason ? reason : ""};
        run_command(n, cfg, extra, json);
    }
    if (cfg->notify.webhook) post_webhook(n, cfg, json);
    free(json);
}

void notify_destroy(struct notify **np)
{
    struct notify *n = *np;
    if (!n) return;
    for (int i = 0; i < HOOKS_MAX; i++) {
        if (n->children[i].pid) {
            int status;
            kill(-n->children[i].pid, SIGKILL);
            waitpid(n->children[i].pid, &status, 0); /* at exit: a killed process goes */
        }
        if (n->posts[i].conn) {
            evhttp_connection_free(n->posts[i].conn); /* frees a request still pending */
            event_free(n->posts[i].deadline);
        }
    }
    if (n->reaper) event_free(n->reaper);
    if (n->cleanup) event_free(n->cleanup);
    if (n->dns) evdns_base_free(n->dns, 0);
    free(n);
    *np = NULL;
}
