/* hello: HELLO answered here, so that a RESP3 client is served like any other -
 * multiplexed over shared connections that speak RESP3 - instead of tunnelled. */
#ifndef RG_HELLO_H
#define RG_HELLO_H

#include "dataplane.h"

/* Answers the client's HELLO (protocol, AUTH against respgate's own users, SETNAME)
 * as Redis 7 would, in the protocol it switches to; waits for the replies in flight
 * before a switch. Returns 0 to leave it to a tunnel: in a session, or AUTH when
 * respgate checks none (Redis does, on a connection of the client's own). */
int hello_take(struct client *c);

#endif
