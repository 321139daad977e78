/* backup: snapshots taken over the replication protocol from a replica (or, when
 * asked, the master), the way redis-cli --rdb takes them - REPLCONF rdb-only, then
 * SYNC - streamed to a temporary file, checked (magic, version, CRC64), fsynced and
 * renamed, with a JSON manifest beside it (source, offset, keys per database). Never
 * a BGSAVE of respgate's own on the master. A restore drill starts a throw-away
 * redis-server on a snapshot and compares what it loaded with the manifest. Jobs run
 * one at a time on a thread of their own, blocking, so the control thread and the
 * data plane never wait for one; the control thread starts them and reads their
 * results under a mutex. */
#ifndef RG_BACKUP_H
#define RG_BACKUP_H

#include <jansson.h>
#include <stddef.h>

#include "config.h"
#include "topology.h"

struct backup;

struct backup_stats {
    double last_ok_time;       /* Unix time of the newest good snapshot; 0: none */
    double last_verified_time; /* ...of the newest one a drill restored; 0: none */
    long long last_size;
    double last_duration_s;
    double last_drill_s;       /* the last drill's restore time; -1: none */
    int last_drill_ok;         /* 1 ok, 0 failed, -1 none */
    unsigned long failures[6]; /* by enum backup_failure */
    int running;
};

enum backup_failure {
    BACKUP_FAIL_CONNECT,
    BACKUP_FAIL_SYNC,    /* refused, or the stream broke */
    BACKUP_FAIL_CORRUPT, /* not an RDB, truncated, checksum */
    BACKUP_FAIL_DISK,
    BACKUP_FAIL_DRILL,
    BACKUP_FAIL_NO_SOURCE,
};

const char *backup_failure_name(int f);

/* Reads the manifests already in cfg's backup.dir (if any). */
struct backup *backup_create(void);
/* Waits for a job still running. */
void backup_destroy(struct backup **b);
/* Starts a snapshot of t's best source now: 0 with its id, -1 with why (one is
 * running, backups off, no source). Control thread. */
int backup_start(struct backup *b, const struct config *cfg, const struct topology *t, char *id,
                 size_t idlen, char *why, size_t whylen);
/* Starts a restore drill of snapshot id: 0, or -1 with why. */
int backup_verify(struct backup *b, const struct config *cfg, const char *id, char *why,
                  size_t whylen);
/* GET /backups: the snapshots in the directory, newest first, and the job running. */
json_t *backup_list(struct backup *b, const struct config *cfg);
void backup_get_stats(struct backup *b, struct backup_stats *out);

#endif
