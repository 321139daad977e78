/* info: reads what the control plane needs from an INFO reply (sections
 * replication and persistence): role, link state, replication offset and a master's replicas. Pure.
 */
#ifndef RG_INFO_H
#define RG_INFO_H

#include <stddef.h>

#include "topology.h"

#define INFO_REPLICAS_MAX 32 /* more are ignored */

struct info_replication {
    enum topo_role role;
    int link_up;               /* replica: master_link_status:up */
    int syncing;               /* replica: master_sync_in_progress:1 */
    int loading;               /* loading:1 (a dataset is being loaded) */
    long long offset;          /* master_repl_offset on a master, slave_repl_offset on a replica */
    int priority;              /* replica: slave_priority (replica-priority); -1 not given */
    struct config_addr master; /* replica: master_host and master_port */
    size_t nreplicas;          /* master: the replicas it lists (slaveN:ip=...,port=...) */
    struct config_addr replicas[INFO_REPLICAS_MAX];
};

/* Returns 0, or -1 if the text has no role line or a malformed field. */
int info_parse(const char *text, size_t len, struct info_replication *out);
/* The server's version from a HELLO reply (RESP2 or RESP3: "version" then a bulk
 * string) into out (left as it is if absent or too long). */
void info_hello_version(const char *reply, size_t len, char *out, size_t outlen);

#endif
