/* frame: runs the pure RESP framer (resp.h) over a libevent evbuffer, resuming
 * where the previous call stopped and skipping bulk payloads without peeking. */
#ifndef RG_FRAME_H
#define RG_FRAME_H

#include <event2/buffer.h>
#include <stddef.h>

#include "resp.h"

/* Frames the message at the front of buf. *scanned is how many of its bytes the
 * parser has already seen (0 for a new message). Returns a resp_status; on
 * RESP_DONE the message is the first p->len bytes of buf. */
int frame_next(struct resp_parser *p, struct evbuffer *buf, size_t *scanned);

#endif
