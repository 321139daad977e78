/* scan: SCAN, SSCAN, HSCAN and ZSCAN go on where their cursor was issued. A cursor
 * means something only on the node that gave it (each replica's tables differ): the
 * cursors a client was given are remembered with their node (the last SCAN_KEPT),
 * so that interleaved scans (a SCAN loop with an HSCAN inside) each go on where they
 * started. */
#ifndef RG_SCAN_H
#define RG_SCAN_H

#include "dataplane.h"

enum { SCAN_GONE = -3 }; /* the cursor's node cannot serve it any more */

/* Whether the request being dispatched is one of the family. */
int scan_is(const struct client *c);
/* The node for it, given the node the router chose: that one for a scan from cursor
 * 0, the cursor's node for one that goes on (SCAN_GONE if that node left), the
 * master for a cursor this client was not given here. *continues: whether it goes on
 * from a cursor (not 0). */
int scan_route(struct client *c, int routed, int *continues);
/* A scan reply from node: its cursor is remembered. */
void scan_note(struct client *c, struct evbuffer *reply, size_t len, int node);

#endif
