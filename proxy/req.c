/* req: see req.h. */
#include "req.h"
#include "log.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define REQ_CACHE_MAX 4096

struct req_cache {
    struct req *free; /* linked through cq.tqe_next */
    int n;
};

struct req_cache *req_cache_create(void)
{
    return calloc(1, sizeof(struct req_cache));
}

void req_cache_destroy(struct req_cache **rcp)
{
    struct req_cache *rc = *rcp;
    if (!rc) return;
    while (rc->free) {
        struct req *r = rc->free;
        rc->free = TAILQ_NEXT(r, cq);
        free(r);
    }
    free(rc);
    *rcp = NULL;
}

struct req *req_get(struct req_cache *rc)
{
    struct req *r = rc->free;
    if (r) {
        rc->free = TAILQ_NEXT(r, cq);
        rc->n--;
    } else if (!(r = malloc(sizeof(*r)))) {
        log_error("out of memory allocating a request");
        abort(); /* as Redis does: nothing sensible can continue */
    }
    memset(r, 0, offsetof(struct req, small));
    return r;
}

void req_put(struct req_cache *rc, struct req *r)
{
    if (r->copy != r->small) free(r->copy);
    if (r->reply) evbuffer_free(r->reply);
    if (rc->n >= REQ_CACHE_MAX) {
        free(r);
        return;
    }
    TAILQ_NEXT(r, cq) = rc->free;
    rc->free = r;
    rc->n++;
}
