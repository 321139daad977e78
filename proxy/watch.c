/* watch: see watch.h. The contents are compared by an FNV-1a hash of the file. */
#include "watch.h"
#include "log.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#define SETTLE_MS 200              /* editors write in several steps */
#define SETTLE_MAX_NS 1000000000LL /* ...but a file written on and on is read after this */
#define WATCH_MAX_BYTES (16 << 20) /* a config this large is read in part: still a hash */

struct watch {
    int fd;
    struct event *ev, *settle;
    char *path;
    const char *base; /* the file's name in its directory */
    struct event_base *evbase;
    struct timeval first; /* of the events the settle timer waits out */
    uint64_t seen;        /* hash of the contents last reported (or marked) */
    watch_fn changed;
    void *arg;
};

static uint64_t contents_hash(const char *path)
{
    uint64_t h = 1469598103934665603ULL;
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char buf[8192];
    size_t n, total = 0;
    while (total < WATCH_MAX_BYTES && (n = fread(buf, 1, sizeof(buf), f)) > 0) {
        for (size_t i = 0; i < n; i++)
            h = (h ^ (unsigned char)buf[i]) * 1099511628211ULL;
        total += n;
    }
    fclose(f);
    return h;
}

static void on_settled(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct watch *w = arg;
    uint64_t h = contents_hash(w->path);
    if (!h || h == w->seen) return; /* gone for now (mid-rename), or the same bytes */
    w->seen = h;
    log_info("config file %s changed", w->path);
    w->changed(w->arg);
}

/* Events about our file, or about "..data", the link a Kubernetes ConfigMap
 * volume swaps to publish new files; the rest of the directory (a log file next
 * to the config, say) must not keep pushing a reload back. */
static int ours(const struct watch *w, const struct inotify_event *e)
{
    return e->len && (strcmp(e->name, w->base) == 0 || strcmp(e->name, "..data") == 0);
}

static void on_events(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct watch *w = arg;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n;
    int relevant = 0;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *e = (const struct inotify_event *)p;
            relevant |= ours(w, e) || (e->mask & IN_Q_OVERFLOW);
            p += sizeof(*e) + e->len;
        }
    if (!relevant) return;
    struct timeval now, tv = {0, SETTLE_MS * 1000};
    event_base_gettimeofday_cached(w->evbase, &now);
    if (!evtimer_pending(w->settle, NULL)) {
        w->first = now;
    } else if ((now.tv_sec - w->first.tv_sec) * 1000000000LL +
                   (now.tv_usec - w->first.tv_usec) * 1000LL >
               SETTLE_MAX_NS) {
        return; /* it runs as planned, not later */
    }
    event_add(w->settle, &tv); /* re-arming pushes it back: debounce */
}

struct watch *watch_file(struct event_base *base, const char *path, watch_fn changed, void *arg)
{
    struct watch *w = calloc(1, sizeof(*w));
    if (!w) return NULL;
    w->fd = -1;
    w->changed = changed;
    w->arg = arg;
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        strcpy(dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    w->path = strdup(path);
    w->evbase = base;
    if (w->path) w->base = strrchr(w->path, '/') ? strrchr(w->path, '/') + 1 : w->path;
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (!w->path || w->fd < 0 ||
        inotify_add_watch(w->fd, dir,
                          IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MODIFY) < 0) {
        log_warn("cannot watch %s for changes (%s); reload with SIGHUP or POST /reload", dir,
                 strerror(errno));
        watch_destroy(&w);
        return NULL;
    }
    w->ev = event_new(base, w->fd, EV_READ | EV_PERSIST, on_events, w);
    w->settle = evtimer_new(base, on_settled, w);
    if (!w->ev || !w->settle || event_add(w->ev, NULL) < 0) {
        watch_destroy(&w);
        return NULL;
    }
    w->seen = contents_hash(path);
    return w;
}

void watch_mark_seen(struct watch *w)
{
    if (w) w->seen = contents_hash(w->path);
}

void watch_destroy(struct watch **wp)
{
    struct watch *w = *wp;
    if (!w) return;
    if (w->ev) event_free(w->ev);
    if (w->settle) event_free(w->settle);
    if (w->fd >= 0) close(w->fd);
    free(w->path);
    free(w);
    *wp = NULL;
}
