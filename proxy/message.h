/* message: the framed request at the front of a client's input (c->rp says where it
 * ends and what it is). Sent on, answered here, or rewritten; never copied unless
 * asked for. */
#ifndef RG_MESSAGE_H
#define RG_MESSAGE_H

#include "dataplane.h"

#define MESSAGE_ARGS_MAX_BYTES 4096 /* commands read whole here (AUTH, HELLO, CLIENT, WAIT) */
#define MESSAGE_ARGS_MAX 16

/* Its length as it is to be sent (an inline command re-encoded). */
size_t message_len(const struct client *c);
/* Copies it as it is to be sent into dst (message_len bytes). */
void message_copy(struct client *c, char *dst);
/* The framer is ready for the next one (the message was consumed). */
void message_next(struct client *c);
/* Drops it from the input without sending it. */
void message_discard(struct client *c);
/* Copies its arguments into buf (cap bytes), argv/lens pointing into it. Returns the
 * argument count, or -1 if it is too large to read whole (over cap bytes, or over
 * MESSAGE_ARGS_MAX arguments). */
int message_args(struct client *c, char *buf, size_t cap, const char **argv, size_t *lens);
/* Sends it on u, r (NULL for a tunnel) waiting there for its reply; counts it, and
 * pauses the client while u's output is over its high mark. */
void message_send(struct client *c, struct upconn *u, struct req *r);
/* Replaces it with argv[0..argc) and frames it again. */
void message_reframe(struct client *c, const char *const *argv, const size_t *lens, int argc);

/* Whether the message's reply, once Redis gave it, waits for durability.min_replicas
 * replicas: commands that may write (Redis' write flag, scripts but the _RO ones,
 * commands the table does not know), and EXEC ending a transaction; never one queued
 * inside MULTI (its reply is QUEUED) nor one that cannot write. */
int message_durable(const struct client *c, unsigned flags);

#endif
