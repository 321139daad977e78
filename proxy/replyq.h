/* replyq: a client's ordered reply queue. Every request the client sent has a slot
 * in c->pending, in command order; a reply fills its slot, made here or come from
 * Redis, and is written to the client only once every reply before it has been.
 * Filling a slot never runs the client: it wakes it (pass.h). */
#ifndef RG_REPLYQ_H
#define RG_REPLYQ_H

#include "dataplane.h"

/* A slot for a request about to be sent upstream; write: not known read-only. */
struct req *replyq_push(struct client *c, int write);
/* A reply made here, behind the client's pending replies. */
void replyq_local(struct client *c, const char *s, size_t n);
/* The same, "fmt" with one string argument (the result is cut at 512 bytes); an
 * error, so inside MULTI it makes the client's EXEC abort. */
void replyq_error(struct client *c, const char *fmt, const char *arg);
/* A null reply in the client's protocol ($-1 or _). */
void replyq_null(struct client *c);
/* r's reply is the first len bytes of src (or r->instead); takes r. */
void replyq_fill(struct worker *w, struct req *r, struct evbuffer *src, size_t len);
/* Whether r's reply may go straight to its client's output right behind prev's (NULL:
 * r's must be the next the client gets), with nothing made of it first. */
int replyq_joins(const struct req *r, const struct req *prev);
/* The replies of count requests that replyq_joins chained, from first on, are the
 * first len bytes of src: one move to the output; takes them. */
void replyq_fill_run(struct worker *w, struct req *first, size_t count, struct evbuffer *src,
                     size_t len);
/* r failed: its reply is msg; takes r. */
void replyq_fail(struct worker *w, struct req *r, const char *msg);
/* Writes out the replies at the head of the queue that are complete, and updates
 * the pauses that depend on the queue and the output. */
void replyq_release(struct client *c);
/* Marks the client C_OVERLIMIT (closed when it resumes) if its unread replies passed
 * limits.client_output_limit_bytes; for output added outside the queue (tunnels). */
void replyq_check_limit(struct client *c);
/* The client is going: replies still to come are dropped when they arrive. */
void replyq_detach(struct client *c);

#endif
