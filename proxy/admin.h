/* admin: the operators' HTTP endpoint (libevent evhttp) on the control thread, at
 * admin.listen. GET /healthz (the process answers), GET /readyz (200 only while a
 * writable master is known: a sidecar's readiness probe), GET /topology (JSON: the
 * nodes as the newest snapshot has them). With admin.token set, every path but
 * /healthz and /readyz needs "Authorization: Bearer <token>". */
#ifndef RG_ADMIN_H
#define RG_ADMIN_H

#include <event2/event.h>
#include <stddef.h>

#include "config.h"
#include "route.h"
#include "topology.h"

struct admin;

/* A reference to the newest snapshot (release it), or NULL before the first. */
typedef struct topology *(*admin_snapshot_fn)(void *arg);

/* Binds admin.listen on base (before its thread runs). NULL with a message in err if
 * it cannot; NULL with err empty when admin.listen is null (no endpoint). */
struct admin *admin_start(struct event_base *base, const struct config *cfg,
                          admin_snapshot_fn snapshot, void *arg, char *err, size_t errlen);
void admin_stop(struct admin **a);

#endif
