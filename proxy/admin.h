/* admin: the operators' HTTP endpoint (libevent evhttp) on the control thread, at
 * admin.listen. GET /healthz (the process answers), GET /readyz (200 only while a
 * writable master answers its probes and every worker holds a ROLE-verified
 * connection to it: a sidecar's readiness probe), GET /metrics
 * (Prometheus), GET /topology (JSON: the nodes as the newest snapshot has them),
 * GET /status (JSON: availability, error budget, failovers with RTO and RPO),
 * GET /config (the running config, secrets redacted, and the last reload),
 * POST /reload, POST /failover (SENTINEL FAILOVER; with {"region": name}, respgate
 * promotes in that region). With admin.token set, every
 * path but /healthz and /readyz needs "Authorization: Bearer <token>". What the
 * endpoints show comes from the control module through admin_ops. */
#ifndef RG_ADMIN_H
#define RG_ADMIN_H

#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>
#include <stddef.h>

#include "config.h"
#include "sentinel.h"
#include "topology.h"

struct admin_ops {
    void *arg;
    /* The newest snapshot (a reference), or NULL before the first. */
    struct topology *(*snapshot)(void *arg);
    void (*metrics)(void *arg, struct evbuffer *out);
    json_t *(*status)(void *arg);
    json_t *(*config)(void *arg);
    /* Reloads now; returns the result (ok is the "ok" member). */
    json_t *(*reload)(void *arg);
    /* Starts a failover: 0 (done is called later), -1 no Sentinel answers, -2 no
     * Sentinel configured. who gets the Sentinel asked. */
    int (*failover)(void *arg, sentinel_reply_fn done, void *done_arg, char *who, size_t wholen);
    /* POST /failover {"region", "force"}: respgate promotes in the region
     * (probe_promote_region): 0 (done later; why gets the node), -1 refused, -2 no
     * such region, with why. */
    int (*promote)(void *arg, const char *region, int force, sentinel_reply_fn done, void *done_arg,
                   char *why, size_t whylen);
    /* POST /backup: starts a snapshot (0, its id), or -1 with why. */
    int (*backup)(void *arg, char *id, size_t idlen, char *why, size_t whylen);
    /* POST /backups/ID/verify: starts a restore drill, or -1 with why. */
    int (*verify)(void *arg, const char *id, char *why, size_t whylen);
    /* GET /backups. */
    json_t *(*backups)(void *arg);
    /* Whether every worker holds a ROLE-verified connection to the master now. */
    int (*ready)(void *arg);
};

struct admin;

/* Binds admin.listen on base (before its thread runs). NULL with a message in err if
 * it cannot; NULL with err empty when admin.listen is null (no endpoint). */
struct admin *admin_start(struct event_base *base, struct config *cfg, const struct admin_ops *ops,
                          char *err, size_t errlen);
/* A reloaded config: token, region names and routing from now on (not the address). */
void admin_set_config(struct admin *a, struct config *cfg);
void admin_stop(struct admin **a);

#endif
