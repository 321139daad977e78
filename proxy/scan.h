/* scan: SCAN, SSCAN, HSCAN and ZSCAN go on where their cursor was issued. A cursor
 * means something only on the node that gave it (each replica's tables differ): a
 * client's scans stay on the node its last scan from cursor 0 went to. */
#ifndef RG_SCAN_H
#define RG_SCAN_H

#include "dataplane.h"

enum { SCAN_GONE = -3 }; /* the cursor's node cannot serve it any more */

/* Whether the request being dispatched is one of the family. */
int scan_is(const struct client *c);
/* The node for it, given the node the router chose: that one for a new scan (and
 * remembered), the cursor's node for one that goes on, SCAN_GONE if that node left.
 * A cursor no scan of this client issued goes to the master. */
int scan_route(struct client *c, int routed);
/* Whether the request goes on from a cursor (not 0). */
int scan_continues(const struct client *c);

#endif
