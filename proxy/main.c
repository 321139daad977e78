/* main: command line, startup, signals and shutdown. It composes the two planes as
 * siblings: the workers (data plane, worker.h) and the control thread (control.h),
 * which reaches them through the workers' hooks. The first SIGTERM or SIGINT stops
 * accepting and drains in-flight requests (shutdown_timeout_ms at most); a second
 * one closes everything at once. */
#include "config.h"
#include "control.h"
#include "healthcheck.h"
#include "log.h"
#include "worker.h"

#include <event2/thread.h>

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f)
{
    fprintf(f, "Usage: respgate [--config FILE] [--check-config [FILE]] [--version] [--help]\n"
               "       respgate --probe URL\n"
               "  -c, --config FILE    JSON configuration (see docs/configuration.md); without\n"
               "                       it, $RESPGATE_CONFIG\n"
               "  -t, --check-config   validate the configuration and exit 0 (good) or 1\n"
               "  -p, --probe URL      GET URL (http://host:port/path, 2 s at most) and exit\n"
               "                       0 on a 2xx answer, 1 otherwise: a container health\n"
               "                       check against the admin endpoint (/healthz, /readyz);\n"
               "                       --probe /readyz takes host and port from the config's\n"
               "                       admin.listen\n"
               "  -v, --version        print the version and exit\n"
               "  -h, --help           print this help and exit\n");
}

/* --probe URL, or --probe /path on the config's admin.listen (a HEALTHCHECK that
 * follows the config instead of repeating its port). Exit status 0 on 2xx. */
static int run_probe(const char *target, const char *path)
{
    char url[CONFIG_HOST_MAX + 1100], why[600];
    if (target[0] == '/') {
        struct config *cfg = path ? config_load_file(path, why, sizeof(why)) : NULL;
        if (!cfg || !cfg->admin.enabled) {
            fprintf(stderr, "respgate --probe %s: %s\n", target,
                    !path  ? "needs --config or RESPGATE_CONFIG to find admin.listen"
                    : !cfg ? why
                           : "admin.listen is null: no admin endpoint");
            config_destroy(&cfg);
            return 1;
        }
        const char *h = cfg->admin.listen.host;
        int v6 = strchr(h, ':') != NULL; /* a wildcard address: the probe asks loopback */
        if (strcmp(h, "0.0.0.0") == 0) h = "127.0.0.1";
        if (strcmp(h, "::") == 0) h = "::1";
        snprintf(url, sizeof(url), v6 ? "http://[%s]:%d%.1024s" : "http://%s:%d%.1024s", h,
                 cfg->admin.listen.port, target);
        config_destroy(&cfg);
    } else {
        snprintf(url, sizeof(url), "%.1100s", target);
    }
    int code = healthcheck_get(url, 2000, why, sizeof(why));
    if (code < 0) fprintf(stderr, "respgate --probe: %s\n", why);
    if (code >= 300) fprintf(stderr, "respgate --probe: %s: HTTP %d\n", url, code);
    return code >= 200 && code < 300 ? 0 : 1;
}

static int run(struct config *cfg, const char *path)
{
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    /* Blocked before the workers start, so only this thread takes them. */
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    control_fit_fd_limit(cfg);

    char err[512];
    struct worker_group *g = workers_create(cfg, err, sizeof(err));
    struct control *ctl = NULL;
    if (g) {
        const struct control_hooks hooks = workers_hooks(g);
        ctl = control_start(cfg, path, &hooks, err, sizeof(err));
    }
    if (!ctl || workers_run(g, control_probe(ctl), control_avail(ctl), err, sizeof(err))) {
        log_error("cannot start: %s", err);
        if (g) workers_stop(g, 1);
        control_stop(&ctl); /* first: it publishes to the workers */
        workers_join(&g);
        return 1;
    }

    int stopping = 0;
    while (workers_running(g) > 0) {
        struct timespec tick = {0, 100 * 1000 * 1000};
        int sig = sigtimedwait(&sigs, NULL, stopping ? &tick : NULL);
        if (sig == SIGHUP && !stopping) {
            log_info("SIGHUP: reloading the configuration");
            control_reload(ctl);
        } else if ((sig == SIGINT || sig == SIGTERM) && !stopping) {
            log_info("%s: no longer accepting; draining in-flight requests for up to "
                     "shutdown_timeout_ms",
                     sig == SIGINT ? "SIGINT" : "SIGTERM");
            workers_stop(g, 0);
            stopping = 1;
        } else if (sig == SIGINT || sig == SIGTERM) {
            log_info("second signal: closing all connections now");
            workers_stop(g, 1);
        }
    }
    control_stop(&ctl); /* no more snapshots while the workers wind down */
    workers_join(&g);
    log_info("stopped");
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"check-config", no_argument, NULL, 't'},
        {"probe", required_argument, NULL, 'p'},  {"version", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    const char *path = NULL, *probe = NULL;
    int check = 0, opt;

    while ((opt = getopt_long(argc, argv, "c:tp:vh", opts, NULL)) != -1) {
        switch (opt) {
        case 'p':
            probe = optarg;
            break;
        case 'c':
            path = optarg;
            break;
        case 't':
            check = 1;
            break;
        case 'v':
            printf("respgate %s\n", RG_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc && !path) path = argv[optind++];
    if (!path && getenv("RESPGATE_CONFIG") && *getenv("RESPGATE_CONFIG"))
        path = getenv("RESPGATE_CONFIG"); /* containers: the image's default, or the pod's */
    if (probe) return run_probe(probe, path);
    if (optind < argc || !path) {
        usage(stderr);
        return 2;
    }

    char err[512];
    struct config *cfg = config_load_file(path, err, sizeof(err));
    if (!cfg) {
        fprintf(stderr, "respgate: %s: %s\n", path, err);
        return 1;
    }
    if (check) {
        printf("respgate: %s: configuration OK\n", path);
        config_destroy(&cfg);
        return 0;
    }
    log_set_level(cfg->log_level);
    log_set_json(cfg->log_format == CONFIG_LOG_JSON);
    /* The control thread is woken from main (reload, stop) and from workers (the
     * probe asked to look again); workers opt out of locking (NOLOCK). */
    evthread_use_pthreads();
    log_info("respgate %s starting with %s", RG_VERSION, path);
    int rc = run(cfg, path);
    config_release(&cfg);
    return rc;
}
