/* frame: see frame.h. */
#include "frame.h"

#define FRAME_VECS 8

int frame_next(struct resp_parser *p, struct evbuffer *buf, size_t *scanned)
{
    size_t total = evbuffer_get_length(buf);

    while (*scanned < total) {
        unsigned long long skip = resp_skippable(p);
        if (skip) {
            size_t k = skip < total - *scanned ? (size_t)skip : total - *scanned;
            resp_skip(p, k);
            *scanned += k;
            continue;
        }

        struct evbuffer_ptr pos;
        struct evbuffer_iovec v[FRAME_VECS];
        /* Most messages start the buffer (the one before was taken out): no seek. */
        if (*scanned && evbuffer_ptr_set(buf, &pos, *scanned, EVBUFFER_PTR_SET) < 0)
            return RESP_MORE;
        int n = evbuffer_peek(buf, -1, *scanned ? &pos : NULL, v, FRAME_VECS);
        if (n > FRAME_VECS) n = FRAME_VECS;
        for (int i = 0; i < n; i++) {
            size_t used;
            int rc = resp_feed(p, v[i].iov_base, v[i].iov_len, &used);
            *scanned += used;
            if (rc != RESP_MORE) return rc;
            if (resp_skippable(p)) break; /* back to the fast path */
        }
    }
    return RESP_MORE;
}
