/* upstream_run: the reply path's common case taken in bulk. Replies to a pipeline
 * arrive back to back on a shared connection, each one a status, an integer or a
 * bulk string for the next request of one client. Framed one at a time, each costs a
 * peek into the input and its own move to the client's output; here the replies
 * whole in the input's first chunk are framed by pointer, and every run of them
 * going to one client moves in one evbuffer call. Anything else (an error, a push,
 * respgate's own requests, a durable or fenced write, a reply split across chunks)
 * ends the run and goes the general way (up_readcb). */
#include "upstream_int.h"

#include "resp_fast.h"

/* Whether r's reply may skip every check of the general path, given its type. */
static int plain(const struct upconn *u, const struct req *r, char type)
{
    if (type != '+' && type != ':' && type != '$') return 0; /* errors are looked at */
    return r->client && !r->instead && !r->auth && !r->hello && !r->role && !r->conn_id &&
           !r->durable && !r->durable_wait && !r->fenced_ns &&
           !(r->write && u->w->outage_since); /* the general path may end the outage */
}

int up_take_runs(struct upconn *u, struct evbuffer *in)
{
    struct worker *w = u->w;
    struct evbuffer_iovec v;
    if (u->kind == UP_TUNNEL || !u->replied || u->scanned || u->rp.len ||
        (u->pushes && evbuffer_get_length(u->pushes)) || evbuffer_peek(in, -1, NULL, &v, 1) < 1)
        return 0;
    const char *b = v.iov_base;
    size_t n = v.iov_len, off = 0;
    int taken = 0;
    struct resp_parser p; /* resp_fast_reply sets only its type */
    for (;;) {
        struct req *first = TAILQ_FIRST(&u->inflight), *last = NULL, *r = first;
        size_t len = 0, count = 0, used;
        /* The replies of one client's requests, next to each other in its queue. */
        while (r && off + len < n && resp_fast_reply(&p, b + off + len, n - off - len, &used) &&
               plain(u, r, p.type) && w->ops->reply_joins(r, last)) {
            len += used;
            count++;
            last = r;
            r = TAILQ_NEXT(r, uq);
        }
        if (!count) return taken;
        for (size_t i = 0; i < count; i++) {
            r = TAILQ_FIRST(&u->inflight);
            up_unqueue(u, r);
            r->up = NULL;
        }
        /* b stays valid: the bytes before it are gone, not the chunk. */
        w->ops->reply_run(w, first, count, in, len);
        off += len;
        taken = 1;
    }
}
