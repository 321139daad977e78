/* backup_drill: the restore drill (see backup.h). Part of the backup module. */
#include "backup_int.h"
#include "backup_io.h"
#include "log.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define DRILL_LOAD_MS 120000

/* A throw-away redis-server on a copy of the snapshot, on a unix socket only. */
void bk_drill(struct backup *b, struct job *j)
{
    char rdb[1200], tmpdir[1200], copy[1300], sockdir[] = "/tmp/respgate-drill-XXXXXX", sock[64],
                                              line[512];
    const char *why = "";
    bk_path(rdb, sizeof(rdb), j->dir, j->id, "rdb");
    json_t *m = bk_read_manifest(j->dir, j->id);
    snprintf(tmpdir, sizeof(tmpdir), "%s/.drill-%s-XXXXXX", j->dir, j->id);
    /* The snapshot beside the original (a hard link), the socket under /tmp: a unix
     * socket's path must be short. */
    int made = m && mkdtemp(tmpdir);
    if (!made || !mkdtemp(sockdir)) {
        if (made) rmdir(tmpdir);
        bk_fail(b, BACKUP_FAIL_DRILL, j->id, m ? "cannot make a directory" : "no manifest");
        json_decref(m);
        return;
    }
    snprintf(copy, sizeof(copy), "%s/dump.rdb", tmpdir);
    snprintf(sock, sizeof(sock), "%s/redis.sock", sockdir);
    int ok = 0;
    double t0 = bk_now(), dt = 0;
    pid_t pid = -1;
    if (link(rdb, copy) != 0) { /* a copy would do too; the same file system is usual */
        why = "cannot link the snapshot into the drill directory";
        goto out;
    }
    pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR); /* its log is not respgate's */
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
        }
        execlp(j->redis_server, j->redis_server, "--port", "0", "--unixsocket", sock, "--dir",
               tmpdir, "--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no", "--logfile",
               "", (char *)NULL);
        _exit(127);
    }
    struct bconn *c = calloc(1, sizeof(*c));
    c->fd = -1;
    for (double until = t0 + DRILL_LOAD_MS / 1000.0; pid > 0 && bk_now() < until;) {
        struct sockaddr_un un = {.sun_family = AF_UNIX};
        snprintf(un.sun_path, sizeof(un.sun_path), "%.100s", sock);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&un, sizeof(un)) == 0) {
            c->fd = fd;
            c->len = c->pos = 0;
            const char *ping[1] = {"PING"};
            if (bconn_command(c, line, sizeof(line), 1, ping) == 0 && strcmp(line, "+PONG") == 0)
                break;
            close(fd); /* -LOADING: not yet */
            c->fd = -1;
        } else if (fd >= 0) {
            close(fd);
        }
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            pid = -1;
            why = "redis-server exited: it could not load the snapshot";
            break;
        }
        usleep(20000);
    }
    dt = bk_now() - t0;
    if (c->fd >= 0) {
        char *info = malloc(1 << 16);
        long long keys[BCONN_MAX_DBS];
        memset(keys, -1, sizeof(keys));
        const char *ks[2] = {"INFO", "keyspace"};
        if (info && bconn_command(c, line, sizeof(line), 2, ks) == 0 &&
            bconn_bulk(c, line, info, 1 << 16) == 0) {
            bconn_keyspace(info, keys);
            ok = 1;
            json_t *want = json_object_get(m, "keys");
            for (int i = 0; i < BCONN_MAX_DBS && ok; i++) {
                char k[16];
                snprintf(k, sizeof(k), "db%d", i);
                json_t *v = json_object_get(want, k);
                long long w = v ? json_integer_value(v) : -1;
                ok = (w < 0 ? 0 : w) == (keys[i] < 0 ? 0 : keys[i]);
            }
            if (!ok) why = "the key counts differ from the source's";
        } else {
            why = "INFO keyspace failed on the restored server";
        }
        free(info);
        close(c->fd);
    } else if (!why[0]) {
        why = "redis-server did not answer in time";
    }
    free(c);
out:
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    unlink(copy);
    unlink(sock);
    rmdir(tmpdir);
    rmdir(sockdir);
    json_object_set_new(m, "verified",
                        json_pack("{s:b, s:f, s:f, s:s}", "ok", ok, "restore_seconds", dt, "time",
                                  t0, "why", ok ? "" : why));
    bk_write_manifest(j->dir, j->id, m);
    json_decref(m);
    pthread_mutex_lock(&b->mu);
    b->st.last_drill_s = dt;
    b->st.last_drill_ok = ok;
    if (ok) b->st.last_verified_time = bk_now();
    pthread_mutex_unlock(&b->mu);
    if (!ok)
        bk_fail(b, BACKUP_FAIL_DRILL, j->id, why);
    else
        log_info("backup %s restored by a drill in %.2f s: key counts match", j->id, dt);
}
