/* dispatch: one framed request, from its name to where it goes. The command table
 * gives its flags; a table of steps keyed by those flags decides, first taker wins:
 * respgate's own checks (auth, deny list, a lost session), commands answered here,
 * sessions and tunnels, and last the shared connections (reads to the router's
 * replica, everything else to the master, or the held list while none is writable). */
#ifndef RG_DISPATCH_H
#define RG_DISPATCH_H

#include "dataplane.h"

/* Dispatches c's framed request (c->framed). It is consumed, or it stays framed
 * while the client waits (C_WAIT_MASTER, C_WAIT_REPLIES). */
void dispatch(struct client *c);

#endif
