/* backup: see backup.h. The job thread does blocking I/O with deadlines; everything
 * the control thread reads goes through b->mu. */
#include "backup.h"
#include "log.h"
#include "rdb.h"
#include "backup_int.h"
#include "backup_io.h"

#include <openssl/ssl.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_DBS BCONN_MAX_DBS

const char *backup_failure_name(int f)
{
    static const char *const names[] = {"connect", "sync", "corrupt", "disk", "drill", "no_source"};
    return f >= 0 && f < 6 ? names[f] : "unknown";
}

double bk_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void bk_fail(struct backup *b, int reason, const char *id, const char *why)
{
    log_error("backup %s failed (%s): %s", id, backup_failure_name(reason), why);
    pthread_mutex_lock(&b->mu);
    b->st.failures[reason]++;
    pthread_mutex_unlock(&b->mu);
}

void bk_path(char *out, size_t n, const char *dir, const char *id, const char *ext)
{
    snprintf(out, n, "%s/backup-%s.%s", dir, id, ext);
}

int bk_write_manifest(const char *dir, const char *id, json_t *m)
{
    char path[1200], tmp[1210];
    bk_path(path, sizeof(path), dir, id, "json");
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (json_dump_file(m, tmp, JSON_INDENT(2)) || rename(tmp, path)) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

json_t *bk_read_manifest(const char *dir, const char *id)
{
    char path[1200];
    bk_path(path, sizeof(path), dir, id, "json");
    return json_load_file(path, 0, NULL);
}

/* The stream after SYNC: "$<len>" then len bytes, or "$EOF:<40 bytes>" then the
 * bytes and the same 40 bytes (diskless). Into fd, checked as it goes. */
static int stream_rdb(struct bconn *c, int out, struct rdb_check *chk, const char **why)
{
    char line[128];
    do { /* newlines are the source's keepalives while it prepares the snapshot */
        if (bconn_line(c, line, sizeof(line))) {
            *why = "the source closed or went silent before the snapshot";
            return BACKUP_FAIL_SYNC;
        }
    } while (!line[0]);
    if (line[0] != '$') {
        *why = "SYNC refused";
        return BACKUP_FAIL_SYNC;
    }
    char mark[41] = "";
    long long left = -1;
    if (strncmp(line + 1, "EOF:", 4) == 0 && strlen(line + 5) == 40)
        memcpy(mark, line + 5, 41);
    else
        left = atoll(line + 1);
    unsigned char win[40 + sizeof(c->buf)];
    size_t held = 0; /* bytes of the window not written yet (the possible mark) */
    for (;;) {
        if (left == 0) break;
        if (c->pos == c->len && bconn_fill(c)) {
            *why = "the stream broke";
            return BACKUP_FAIL_SYNC;
        }
        size_t n = c->len - c->pos;
        if (left > 0 && (long long)n > left) n = (size_t)left;
        memcpy(win + held, c->buf + c->pos, n);
        c->pos += n;
        held += n;
        if (left > 0) left -= (long long)n;
        int done = left == 0 || (mark[0] && held >= 40 && memcmp(win + held - 40, mark, 40) == 0);
        size_t keep = left >= 0 ? 0 : done ? 40 : (held < 40 ? held : 40);
        size_t w = held - keep;
        if (w && write(out, win, w) != (ssize_t)w) {
            *why = "write failed";
            return BACKUP_FAIL_DISK;
        }
        rdb_check_feed(chk, win, w);
        memmove(win, win + w, keep);
        held = keep;
        if (done) break;
    }
    return -1; /* no failure */
}

static void retention(const struct job *j)
{
    DIR *d = opendir(j->dir);
    if (!d) return;
    char ids[1024][32];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 1024) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, "backup-", 7) == 0 && len > 12 && len - 12 < 32 &&
            strcmp(e->d_name + len - 5, ".json") == 0) {
            memcpy(ids[n], e->d_name + 7, len - 12);
            ids[n++][len - 12] = '\0';
        }
    }
    closedir(d);
    qsort(ids, (size_t)n, sizeof(ids[0]), (int (*)(const void *, const void *))strcmp);
    double now = bk_now();
    for (int i = 0; i < n - 1; i++) { /* oldest first; the newest always stays */
        json_t *m = bk_read_manifest(j->dir, ids[i]);
        double at = json_real_value(json_object_get(m, "time"));
        json_decref(m);
        int too_many = n - i > j->keep,
            too_old = j->max_age_ms && (now - at) * 1000 > (double)j->max_age_ms;
        if (!too_many && !too_old) continue;
        char path[1200];
        bk_path(path, sizeof(path), j->dir, ids[i], "rdb");
        unlink(path);
        bk_path(path, sizeof(path), j->dir, ids[i], "json");
        unlink(path);
        log_info("backup %s removed (backup.retention)", ids[i]);
    }
}

static void snapshot(struct backup *b, struct job *j)
{
    char line[512], tmp[1200], final[1200];
    double t0 = bk_now();
    const char *why = "";
    int fd = bconn_connect(&j->sa, j->salen, j->connect_ms);
    if (fd < 0) {
        bk_fail(b, BACKUP_FAIL_CONNECT, j->id, "cannot connect to the source");
        return;
    }
    struct bconn *c = calloc(1, sizeof(*c));
    c->fd = fd;
    char tls_why[200];
    if (j->tls_ctx &&
        bconn_tls(c, j->tls_ctx, j->tls_name, j->tls_verify, tls_why, sizeof(tls_why))) {
        bk_fail(b, BACKUP_FAIL_CONNECT, j->id, tls_why);
        bconn_close(c);
        free(c);
        return;
    }
    long long keys[MAX_DBS];
    memset(keys, -1, sizeof(keys));
    char *info = malloc(1 << 16);
    int rc = BACKUP_FAIL_SYNC;
    const char *auth[3] = {"AUTH", j->user ? j->user : j->pass, j->pass};
    if (j->pass &&
        (bconn_command(c, line, sizeof(line), j->user ? 3 : 2, auth) || line[0] != '+')) {
        why = "AUTH refused";
        goto out;
    }
    const char *ks[2] = {"INFO", "keyspace"};
    if (bconn_command(c, line, sizeof(line), 2, ks) || bconn_bulk(c, line, info, 1 << 16)) {
        why = "INFO keyspace failed";
        goto out;
    }
    bconn_keyspace(info, keys);
    const char *rdbonly[3] = {"REPLCONF", "rdb-only", "1"}; /* no backlog kept for us */
    if (bconn_command(c, line, sizeof(line), 3, rdbonly)) {
        why = "REPLCONF failed";
        goto out;
    }
    bk_path(final, sizeof(final), j->dir, j->id, "rdb");
    snprintf(tmp, sizeof(tmp), "%s/.backup-%s.rdb.tmp", j->dir, j->id);
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) {
        rc = BACKUP_FAIL_DISK;
        why = strerror(errno);
        goto out;
    }
    struct rdb_check chk;
    rdb_check_init(&chk);
    if (bconn_send(c, "SYNC\r\n", 6)) {
        why = "SYNC not sent";
    } else if ((rc = stream_rdb(c, out, &chk, &why)) < 0) {
        int version;
        rc = -1;
        if (rdb_check_finish(&chk, &version, &why)) {
            rc = BACKUP_FAIL_CORRUPT;
        } else if (fsync(out) || close(out) || rename(tmp, final)) {
            out = -1;
            rc = BACKUP_FAIL_DISK;
            why = strerror(errno);
        } else {
            out = -1;
            json_t *dbs = json_object();
            for (int i = 0; i < MAX_DBS; i++) {
                char k[16];
                snprintf(k, sizeof(k), "db%d", i);
                if (keys[i] >= 0) json_object_set_new(dbs, k, json_integer(keys[i]));
            }
            double dt = bk_now() - t0;
            json_t *m =
                json_pack("{s:s, s:f, s:s, s:s, s:I, s:I, s:f, s:i, s:o, s:n}", "id", j->id, "time",
                          t0, "source", j->source, "region", j->region, "offset",
                          (json_int_t)j->offset, "size", (json_int_t)chk.total, "duration_seconds",
                          dt, "rdb_version", version, "keys", dbs, "verified");
            if (bk_write_manifest(j->dir, j->id, m)) {
                rc = BACKUP_FAIL_DISK;
                why = "cannot write the manifest";
                unlink(final);
            } else {
                log_info("backup %s: %llu bytes from %s (%s) in %.2f s", j->id,
                         (unsigned long long)chk.total, j->source, j->region, dt);
                pthread_mutex_lock(&b->mu);
                b->st.last_ok_time = t0;
                b->st.last_size = (long long)chk.total;
                b->st.last_duration_s = dt;
                pthread_mutex_unlock(&b->mu);
                retention(j);
            }
            json_decref(m);
        }
    }
    if (out >= 0) close(out);
    unlink(tmp); /* gone after the rename; a partial file never stays */
out:
    if (rc >= 0) bk_fail(b, rc, j->id, why);
    free(info);
    bconn_close(c);
    free(c);
}

static void job_free(struct job *j)
{
    free(j->user);
    free(j->pass);
    SSL_CTX_free(j->tls_ctx);
    free(j);
}

struct run {
    struct backup *b;
    struct job *j;
};

static void *run_main(void *arg)
{
    struct run *r = arg;
    log_set_thread_name("backup");
    if (r->j->drill) {
        bk_drill(r->b, r->j);
    } else {
        snapshot(r->b, r->j);
        if (r->j->verify_after) {
            r->j->drill = 1;
            bk_drill(r->b, r->j);
        }
    }
    pthread_mutex_lock(&r->b->mu);
    r->b->running = 0;
    pthread_mutex_unlock(&r->b->mu);
    job_free(r->j);
    free(r);
    return NULL;
}

struct backup *backup_create(void)
{
    struct backup *b = calloc(1, sizeof(*b));
    if (!b) return NULL;
    pthread_mutex_init(&b->mu, NULL);
    b->st.last_drill_s = -1;
    b->st.last_drill_ok = -1;
    return b;
}

static void join_done(struct backup *b)
{
    if (b->joinable) {
        pthread_join(b->th, NULL);
        b->joinable = 0;
    }
}

void backup_destroy(struct backup **bp)
{
    struct backup *b = *bp;
    if (!b) return;
    join_done(b);
    pthread_mutex_destroy(&b->mu);
    free(b);
    *bp = NULL;
}

static int launch(struct backup *b, struct job *j, const char *what, char *why, size_t whylen)
{
    struct run *r = malloc(sizeof(*r));
    if (!r) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    r->b = b;
    r->j = j;
    pthread_mutex_lock(&b->mu);
    b->running = 1;
    snprintf(b->current, sizeof(b->current), "%s %s", what, j->id);
    pthread_mutex_unlock(&b->mu);
    if (pthread_create(&b->th, NULL, run_main, r)) {
        b->running = 0;
        free(r);
        snprintf(why, whylen, "cannot start the backup thread");
        return -1;
    }
    b->joinable = 1;
    return 0;
}

/* Control thread: is a job running? Joins one that ended. */
static int busy(struct backup *b, char *why, size_t whylen)
{
    pthread_mutex_lock(&b->mu);
    int running = b->running;
    pthread_mutex_unlock(&b->mu);
    if (running) {
        snprintf(why, whylen, "a backup job is running (%s)", b->current);
        return 1;
    }
    join_done(b);
    return 0;
}

static struct job *new_job(const struct config *cfg)
{
    struct job *j = calloc(1, sizeof(*j));
    if (!j) return NULL;
    snprintf(j->dir, sizeof(j->dir), "%s", cfg->backup.dir);
    snprintf(j->redis_server, sizeof(j->redis_server), "%s",
             cfg->backup.redis_server ? cfg->backup.redis_server : "redis-server");
    j->keep = cfg->backup.retention_count;
    j->max_age_ms = cfg->backup.retention_max_age_ms;
    j->connect_ms = cfg->upstream.connect_timeout_ms;
    return j;
}

/* The source: the master if asked; else the reachable, linked replica with the least
 * lag, preferring local_region. */
static int pick_source(const struct config *cfg, const struct topology *t)
{
    if (!t) return -1;
    if (cfg->backup.from_master) return t->master >= 0 ? t->master : -1;
    int best = -1;
    long long best_lag = 0;
    int best_local = 0;
    for (size_t i = 0; i < t->nnodes; i++) {
        const struct topo_node *n = &t->nodes[i];
        long long lag = topo_lag(t, i);
        if ((int)i == t->master || !n->listed || !n->reachable || n->role != TOPO_REPLICA ||
            !n->link_up || lag < 0 || !n->salen)
            continue;
        int local = cfg->local_region >= 0 && n->region == cfg->local_region;
        if (best < 0 || local > best_local || (local == best_local && lag < best_lag)) {
            best = (int)i;
            best_lag = lag;
            best_local = local;
        }
    }
    return best;
}

int backup_start(struct backup *b, const struct config *cfg, const struct topology *t, char *id,
                 size_t idlen, char *why, size_t whylen)
{
    if (!cfg->backup.dir) {
        snprintf(why, whylen, "backups are off: backup.dir is not set");
        return -1;
    }
    if (busy(b, why, whylen)) return -1;
    int src = pick_source(cfg, t);
    if (src < 0) {
        snprintf(why, whylen, "no %s to take a snapshot from",
                 cfg->backup.from_master ? "master" : "reachable, linked replica");
        pthread_mutex_lock(&b->mu);
        b->st.failures[BACKUP_FAIL_NO_SOURCE]++;
        pthread_mutex_unlock(&b->mu);
        return -1;
    }
    struct job *j = new_job(cfg);
    if (!j) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    const struct topo_node *n = &t->nodes[src];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char stamp[96];
    snprintf(stamp, sizeof(stamp), "%04d%02d%02dT%02d%02d%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    snprintf(j->id, sizeof(j->id), "%.31s", stamp);
    memcpy(&j->sa, &n->sa, n->salen);
    j->salen = n->salen;
    snprintf(j->source, sizeof(j->source), "%s", n->name);
    snprintf(j->region, sizeof(j->region), "%s",
             n->region >= 0 && (size_t)n->region < cfg->nregions ? cfg->regions[n->region].name
                                                                 : "");
    j->offset = n->offset;
    j->user = cfg->upstream.username ? strdup(cfg->upstream.username) : NULL;
    j->pass = cfg->upstream.password ? strdup(cfg->upstream.password) : NULL;
    const struct config_tls_out *tls = &cfg->upstream.tls;
    if (tls->enabled && SSL_CTX_up_ref(tls->ctx) == 1) { /* the job may outlive cfg */
        j->tls_ctx = tls->ctx;
        j->tls_verify = tls->verify;
        snprintf(j->tls_name, sizeof(j->tls_name), "%s",
                 tls->server_name ? tls->server_name : n->addr.host);
    }
    j->verify_after = cfg->backup.verify;
    mkdir(j->dir, 0700);
    snprintf(id, idlen, "%s", j->id);
    if (launch(b, j, "snapshot", why, whylen)) {
        job_free(j);
        return -1;
    }
    return 0;
}

int backup_verify(struct backup *b, const struct config *cfg, const char *id, char *why,
                  size_t whylen)
{
    if (!cfg->backup.dir) {
        snprintf(why, whylen, "backups are off: backup.dir is not set");
        return -1;
    }
    for (const char *p = id; *p; p++)
        if (!strchr("0123456789TZ.", *p) || p - id > 30) {
            snprintf(why, whylen, "no such backup");
            return -1;
        }
    json_t *m = bk_read_manifest(cfg->backup.dir, id);
    json_decref(m);
    if (!m) {
        snprintf(why, whylen, "no such backup");
        return -1;
    }
    if (busy(b, why, whylen)) return -1;
    struct job *j = new_job(cfg);
    if (!j) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    j->drill = 1;
    snprintf(j->id, sizeof(j->id), "%s", id);
    if (launch(b, j, "restore drill", why, whylen)) {
        free(j);
        return -1;
    }
    return 0;
}

json_t *backup_list(struct backup *b, const struct config *cfg)
{
    json_t *list = json_array();
    DIR *d = cfg->backup.dir ? opendir(cfg->backup.dir) : NULL;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, "backup-", 7) != 0 || len <= 12 || len - 12 >= 32 ||
            strcmp(e->d_name + len - 5, ".json") != 0)
            continue;
        char id[32];
        memcpy(id, e->d_name + 7, len - 12);
        id[len - 12] = '\0';
        json_t *m = bk_read_manifest(cfg->backup.dir, id);
        if (!m) continue;
        json_object_set_new(m, "age_seconds",
                            json_real(bk_now() - json_real_value(json_object_get(m, "time"))));
        json_array_append_new(list, m);
    }
    if (d) closedir(d);
    pthread_mutex_lock(&b->mu);
    json_t *out = json_pack("{s:o, s:o}", "running",
                            b->running ? json_string(b->current) : json_null(), "backups", list);
    pthread_mutex_unlock(&b->mu);
    return out;
}

void backup_get_stats(struct backup *b, struct backup_stats *out)
{
    pthread_mutex_lock(&b->mu);
    *out = b->st;
    out->running = b->running;
    pthread_mutex_unlock(&b->mu);
}
