/* backup_int: what backup.c (the service, snapshots, retention) and backup_drill.c
 * (the restore drill) share. Part of the backup module; the "bk_" prefix marks it. */
#ifndef RG_BACKUP_INT_H
#define RG_BACKUP_INT_H

#include <jansson.h>
#include <pthread.h>
#include <sys/socket.h>

#include "backup.h"

struct job {
    int drill; /* a restore drill of id; else a snapshot */
    char id[32];
    char dir[1024];
    struct sockaddr_storage sa;
    socklen_t salen;
    char source[CONFIG_HOST_MAX + 8], region[64];
    long long offset;
    char *user, *pass;
    void *tls_ctx; /* upstream.tls: a reference to its SSL_CTX; NULL: plaintext */
    char tls_name[CONFIG_HOST_MAX];
    int tls_verify;
    int connect_ms;
    int keep;
    long long max_age_ms;
    char redis_server[1024];
    int verify_after;
};

struct backup {
    pthread_mutex_t mu;
    pthread_t th;
    int running, joinable;
    char current[64]; /* what the running job does, for GET /backups */
    struct backup_stats st;
};

double bk_now(void);
/* Logs and counts a failed job. */
void bk_fail(struct backup *b, int reason, const char *id, const char *why);
/* "<dir>/backup-<id>.<ext>" */
void bk_path(char *out, size_t n, const char *dir, const char *id, const char *ext);
int bk_write_manifest(const char *dir, const char *id, json_t *m);
json_t *bk_read_manifest(const char *dir, const char *id);
/* The restore drill of j->id, on the job thread (backup_drill.c). */
void bk_drill(struct backup *b, struct job *j);

#endif
