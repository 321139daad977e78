/* outage: writes as this worker's clients live them, for the availability figures
 * (avail.h) and the log. An outage starts at the first write that waited for a
 * master or failed, and ends at the first write to succeed after it. */
#ifndef RG_OUTAGE_H
#define RG_OUTAGE_H

#include "dataplane.h"

/* Writes could not be served from now (w->now_ns), unless an outage is open. */
void outage_begin(struct worker *w);
/* A write could not be served now: held (failed 0) or refused -TRYAGAIN (1). The
 * first of an outage is logged, with why. */
void outage_stalled(struct worker *w, int failed, const char *why);
/* The first write since the outage began succeeded: the span is reported (rare: a
 * mutex in avail is fine). */
void outage_over(struct worker *w);
/* w->nheld or w->nresend changed: the gauge follows. */
void outage_held_changed(struct worker *w);

#endif
