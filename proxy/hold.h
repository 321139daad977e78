/* hold: requests that wait for a node to take them. A client whose request needs a
 * writable master and finds none waits on the worker's held list, its request still
 * framed in its input and nothing behind it read, so its order holds; a request in
 * flight on a connection that failed (a read) or that a node refused because of its
 * role waits on the resend list. Both wait up to failover.hold_ms, then fail with
 * -TRYAGAIN. Releasing a held client only wakes it: it dispatches again at the end
 * of the pass. */
#ifndef RG_HOLD_H
#define RG_HOLD_H

#include "dataplane.h"

/* c's framed request needs a master and there is none it may use now: c waits, or
 * gets -TRYAGAIN if it waited long enough or too many wait. */
void hold_client(struct client *c);
/* c is closing: it leaves the held list. */
void hold_forget(struct client *c);
/* A writable master may be there now: requests waiting to be resent go, held
 * clients are woken, in the order they came. */
void hold_release_all(struct worker *w);
/* The drain timed out: everything waiting gets its -TRYAGAIN now. */
void hold_expire_all(struct worker *w);
/* r was in flight on a connection that failed: a read is sent again elsewhere or
 * waits. Returns 1 if r was taken, 0 if it must be answered with an error (a write,
 * a read too large to have a copy, or one a later write of its client followed on
 * that connection). */
int hold_retry(struct worker *w, struct req *r);
/* r was refused because of its node's role (the first len bytes of in): sent again
 * now, or once a node can take it. Takes r; returns 1. */
int hold_redirect(struct worker *w, struct req *r, struct evbuffer *in, size_t len);
/* At thread exit: the timer and what still waits to be resent. */
void hold_deinit(struct worker *w);

#endif
