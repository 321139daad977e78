/* notify: tells the outside world the master moved. On the control thread, for
 * each event it runs notify.command (argv from the config, then the event, old
 * master, new master, region and reason; the whole event as JSON in the
 * RESPGATE_EVENT environment variable) and POSTs the event as JSON to
 * notify.webhook. Neither ever blocks: the command is spawned and reaped by a
 * timer, killed after notify.timeout_ms; the webhook is an async evhttp request
 * with the same deadline. Results are logged and counted, never fatal. */
#ifndef RG_NOTIFY_H
#define RG_NOTIFY_H

#include <event2/event.h>

#include "config.h"
#include "metrics.h"

struct notify;

/* Counts go to counters (owned by the caller, read on the same thread). */
struct notify *notify_create(struct event_base *base, struct control_counters *counters);
/* event: "master_switch" or "region_change"; the JSON event gets "event" and
 * "time" added. Arguments other than cfg may be NULL/empty. */
void notify_send(struct notify *n, const struct config *cfg, const char *event,
                 const char *old_master, const char *new_master, const char *region,
                 const char *old_region, const char *reason);
/* Kills hooks still running. */
void notify_destroy(struct notify **n);

#endif
