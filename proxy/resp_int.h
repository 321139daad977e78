/* resp_int: what resp.c shares with resp_inline.c, its inline request reader: the
 * parser's states and the errors both give. Part of the resp module only. */
#ifndef RG_RESP_INT_H
#define RG_RESP_INT_H

#include <stddef.h>

#include "resp.h"

enum {
    S_START, /* first byte of a message */
    /* replies */
    S_TYPE, /* type byte of the next element */
    S_NUM,  /* digits of a count or length, up to CR */
    S_NUM_LF,
    S_LINE, /* a simple line, up to CR */
    S_LINE_LF,
    S_BULK, /* payload bytes */
    S_BULK_CR,
    S_BULK_LF,
    /* requests */
    S_INLINE,    /* an inline line, up to LF */
    S_RQ_TYPE,   /* first byte of a bulk length line ('$' expected) */
    S_RQ_NUM,    /* the rest of a count or length line, up to CR */
    S_RQ_END,    /* the byte after that CR, whatever it is */
    S_RQ_NUL,    /* a line with a NUL before its end: Redis never finds the end */
    S_RQ_BULK,   /* payload bytes */
    S_RQ_TRAIL1, /* the two bytes after a payload, whatever they are */
    S_RQ_TRAIL2,
};

/* Sets p->err; RESP_EPROTO. */
int resp_proto_error(struct resp_parser *p, const char *msg);
/* Redis' error for a line over 64 KiB with no end found. */
int resp_too_big(struct resp_parser *p);
/* processCommand's POST / Host: check on the (lowercased) name. */
int resp_is_http_command(const struct resp_parser *p);
/* Marks p as an HTTP request and fails it. */
int resp_cross_protocol(struct resp_parser *p);
/* S_INLINE: reads the line from b[*i..n); RESP_MORE, RESP_DONE or RESP_EPROTO. */
int resp_inline_bytes(struct resp_parser *p, const char *b, size_t n, size_t *i);

#endif
