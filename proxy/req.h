/* req: the request object and a worker's cache of free ones, so that a request
 * costs no malloc in the steady state. One cache per worker: no locking. */
#ifndef RG_REQ_H
#define RG_REQ_H

#include "dataplane.h"

struct req_cache *req_cache_create(void);
void req_cache_destroy(struct req_cache **rc);
/* A cleared request; aborts on out of memory, as Redis does. */
struct req *req_get(struct req_cache *rc);
/* Frees r's copy and reply, and keeps r for reuse. */
void req_put(struct req_cache *rc, struct req *r);

#endif
