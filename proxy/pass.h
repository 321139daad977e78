/* pass: what one loop pass leaves for its end. Callbacks never resume a client or
 * free anything themselves: they wake the client (it is resumed at the end of the
 * pass, in the order woken) or mark a client or connection dead (it is freed then,
 * when no callback on it is on the stack). This is Redis' beforeSleep with
 * clients_pending_write and freeClientAsync, hiredis' CHECK_DELETED. worker.c runs
 * the end of the pass; these only keep the lists. */
#ifndef RG_PASS_H
#define RG_PASS_H

#include "dataplane.h"

/* c is resumed at the end of this pass: replies released, input read. */
void pass_wake(struct client *c);
/* c is closed: it leaves the ready list, and is freed at the end of this pass. */
void pass_bury_client(struct client *c);
/* A let-go pinned connection (no socket, no requests left) is freed then. */
void pass_bury_upconn(struct upconn *u);

#endif
