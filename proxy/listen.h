/* listen: a worker's listeners, plaintext and TLS, each bound with SO_REUSEPORT so
 * the kernel spreads connections over the workers; accepted sockets go to
 * client_accept. Out of descriptors, the clients waiting in the backlog are told
 * "max number of clients reached" through a spare descriptor, then accepting pauses
 * for a moment instead of spinning. Part of the worker: runs on its thread. */
#ifndef RG_LISTEN_H
#define RG_LISTEN_H

#include <netdb.h>
#include <stddef.h>

#include "dataplane.h"

/* Binds w's listeners on ai (and tls_ai, if not NULL). -1 with a message naming the
 * config key in err. */
int listen_open(struct worker *w, const struct addrinfo *ai, const struct addrinfo *tls_ai,
                char *err, size_t errlen);
/* Stops accepting (a drain) and frees the listeners and the spare descriptor. */
void listen_close(struct worker *w);

#endif
