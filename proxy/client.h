/* client: one client connection's life on one worker: accepted, read, resumed at
 * the end of a pass when something it waited for happened, drained, closed. It
 * frames requests and hands each to dispatch; replies come back through its reply
 * queue (replyq.h). A closed client is freed at the end of the pass (pass.h). */
#ifndef RG_CLIENT_H
#define RG_CLIENT_H

#include "dataplane.h"

/* tls_ctx: the SSL_CTX of a TLS listener's client; NULL for plaintext. */
void client_accept(struct worker *w, evutil_socket_t fd, void *tls_ctx);
/* Answers fd "-ERR max number of clients reached" and closes it. */
void client_refuse(struct worker *w, evutil_socket_t fd);
/* End of the pass: replies out, a waiting request dispatched, more input read. */
void client_resume(struct client *c);
/* End of the pass: frees a client closed during it. */
void client_destroy(struct client *c);
/* Stop reading every client; each closes once its replies are out. */
void client_start_drain(struct worker *w);
/* Closes every client now (freed at the end of the pass, or by the caller with
 * client_destroy once the loop has stopped). */
void client_close_all(struct worker *w);
/* Once a second: closes idle clients (limits.client_idle_timeout_ms) and those that
 * keep an unauthenticated request unfinished. */
void client_cron(struct worker *w);
/* How upstream.c reports to the clients (dataplane.h). */
extern const struct upstream_ops client_upstream_ops;

#endif
