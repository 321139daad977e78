/* healthcheck: "respgate --probe URL", one HTTP GET against respgate's own admin
 * endpoint, for container health checks in an image that has no shell and no curl.
 * Plain http://host[:port]/path only, blocking, bounded by a deadline. */
#ifndef RG_HEALTHCHECK_H
#define RG_HEALTHCHECK_H

#include <stddef.h>

/* The HTTP status of GET url within timeout_ms, or -1 with the reason in err. */
int healthcheck_get(const char *url, int timeout_ms, char *err, size_t errlen);

#endif
