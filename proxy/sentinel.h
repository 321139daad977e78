/* sentinel: follows Redis Sentinel for the control thread. It asks every known
 * Sentinel, once a second and whenever one announces something, for the master
 * (SENTINEL MASTER: address, config epoch, flags), its replicas and the other
 * Sentinels, and listens to every Sentinel's events (PSUBSCRIBE *). The view it
 * keeps trusts the highest config epoch any Sentinel reports, so one that has not
 * yet heard of a failover cannot send respgate back to the old master.
 *
 * A failover fences the old master before Sentinel promotes anything: the leader
 * announces the replica it selected (+selected-slave) at least one Sentinel timer
 * tick before it sends that replica REPLICAOF NO ONE, and from that moment the view
 * names the replica as the master-to-be. Writes already sent to the old master have
 * been replicated by then; later ones wait (the proxy holds them) for the new one.
 * Everything runs on the caller's event_base (the control thread); nothing is shared. */
#ifndef RG_SENTINEL_H
#define RG_SENTINEL_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "sock.h"

#define SENTINEL_REPLICAS_MAX 32
#define SENTINEL_PEERS_MAX 16

struct sentinel_view {
    int known;                   /* some Sentinel has named a master */
    struct config_addr master;   /* the master named with the highest config epoch */
    long long epoch;             /* that config epoch */
    int promoting;               /* a failover selected a replica: the master is fenced */
    struct config_addr promoted; /* with promoting: the replica to become master */
    size_t nreplicas;            /* healthy replicas (no s_down, o_down, disconnected; link ok) */
    struct config_addr replicas[SENTINEL_REPLICAS_MAX];
    int nreachable; /* Sentinels that answered the last round */
    int npeers;     /* Sentinels known (configured and discovered) */
    /* The last sentinel_failover a Sentinel took on: when, and which ("host:port"). */
    int64_t failover_asked_ns;
    char failover_asked_of[CONFIG_HOST_MAX + 8];
};

struct sentinel;

/* Called on the event_base's thread whenever the view may have changed; why is a
 * short text for the log ("+switch-master", "query"). */
typedef void (*sentinel_changed_fn)(void *arg, const char *why);

/* NULL if the config names no Sentinel (or out of memory). Holds a reference to cfg. */
struct sentinel *sentinel_create(struct sock_loop *io, struct config *cfg,
                                 sentinel_changed_fn changed, void *arg);
/* A reload that names the same Sentinels (and TLS settings): their connections from
 * now on use cfg's credentials and TLS contexts (rotated certificates). */
void sentinel_set_config(struct sentinel *s, struct config *cfg);
/* Asks every Sentinel again soon (at most every 100 ms): a node contradicted the view. */
void sentinel_refresh(struct sentinel *s);
const struct sentinel_view *sentinel_view(const struct sentinel *s);
/* Who is called from now on (a reload's Sentinels taking over). */
void sentinel_set_callback(struct sentinel *s, sentinel_changed_fn changed, void *arg);
void sentinel_destroy(struct sentinel **s);

/* ok 1 with Sentinel's status reply, or 0 with its error (or why there is none). */
typedef void (*sentinel_reply_fn)(void *arg, int ok, const char *msg);
/* Sends SENTINEL FAILOVER for the master to the best-informed Sentinel that
 * answers (its address goes to who); done is called exactly once, later, on the
 * event_base's thread. -1 (and no call) if no Sentinel answers now. */
int sentinel_failover(struct sentinel *s, sentinel_reply_fn done, void *arg, char *who,
                      size_t wholen);

#endif
