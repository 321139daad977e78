/* resp: an incremental RESP framer for requests (multibulk and inline) and
 * replies (RESP2, and RESP3 for pass-through). It finds message boundaries, the
 * command name and the first argument without copying payloads: bulk payloads are
 * skipped, not scanned. Pure: fed with bytes, no I/O, resumable at any byte.
 *
 * Requests are framed by Redis' own rules (7.0, networking.c processMultibulkBuffer
 * and processInlineBuffer, util.c string2ll): what Redis accepts is framed, what it
 * refuses is RESP_EPROTO with Redis' own message, at the byte where Redis would
 * refuse it. A request respgate forwards is therefore one Redis parses the same way:
 * it can never make Redis close a connection other clients share. resp.c lists the
 * rules and the few places respgate is stricter.
 *
 * Replies are framed without a nesting stack: the parser counts the elements it
 * still expects, so any nesting depth costs O(1) state. */
#ifndef RG_RESP_H
#define RG_RESP_H

#include <stddef.h>
#include <stdint.h>

#define RESP_NAME_MAX 32            /* longer command names are kept truncated */
#define RESP_ARG1_MAX 64            /* prefix of the first argument kept for dispatch */
#define RESP_INLINE_MAX (64 * 1024) /* Redis' PROTO_INLINE_MAX_SIZE */
#define RESP_MAX_BULK_DEFAULT (512LL * 1024 * 1024) /* Redis' proto-max-bulk-len */
#define RESP_MAX_ARGS 2147483647LL                  /* Redis 7: INT_MAX */

enum resp_status { RESP_DONE = 0, RESP_MORE = 1, RESP_EPROTO = -1 };
enum resp_kind { RESP_REQUEST, RESP_REPLY };

/* Fields above "private" are results, valid after resp_feed() returned RESP_DONE
 * and until resp_reset(). The struct is public so it can live inside a connection. */
struct resp_parser {
    size_t len;      /* bytes of the message as received (an inline line included) */
    long long argc;  /* request: arguments; 0 means an empty command (nothing to send) */
    size_t name_len; /* full length of the command name; name holds at most RESP_NAME_MAX */
    char name[RESP_NAME_MAX + 1]; /* lowercased, NUL-terminated */
    size_t arg1_len;              /* full length of the first argument */
    char arg1[RESP_ARG1_MAX + 1]; /* its first bytes, as sent, NUL-terminated */
    size_t key_off;  /* offset of the first argument's payload in the message to send */
    char type;       /* reply: the first type byte; request: '*', or 'i' for inline */
    int http;        /* request: cross-protocol (HTTP): close without a reply, as Redis does */
    const char *inl; /* inline request re-encoded as multibulk: send this, not the raw line */
    size_t inl_len;
    const char *err; /* with RESP_EPROTO: what was wrong, for "-ERR Protocol error: <err>" */

    /* private */
    enum resp_kind kind;
    int state;
    long long max_bulk;
    long long num;
    int num_neg, num_digits;
    int num_bad;            /* request: the length line is not a number string2ll takes */
    int tainted;            /* request: a length line ended in CR and a byte other than LF */
    unsigned long long mag; /* request: magnitude of the length being read */
    char elem;          /* type byte of the element being read (request: first byte of its line) */
    uint64_t remaining; /* reply: elements still expected */
    long long argi;     /* request: index of the argument being read */
    unsigned long long skip; /* payload bytes still to skip */
    size_t cap;              /* bytes captured of the current argument */
    size_t cur;              /* offset in the current feed just past a length line */
    size_t line_len;
    char *line; /* inline: the raw line */
    size_t line_cap;
    char *enc; /* inline: the encoded command */
    size_t enc_cap;
    char errbuf[64];
};

/* max_bulk bounds a request's bulk length; replies are bounded only by overflow. */
void resp_init(struct resp_parser *p, enum resp_kind kind, long long max_bulk);
/* Forget the message just framed and get ready for the next one. */
void resp_reset(struct resp_parser *p);
void resp_deinit(struct resp_parser *p);

/* Consumes bytes from buf until a message is complete (RESP_DONE, *used may be < n),
 * all of buf is consumed and more is needed (RESP_MORE), or the input is malformed
 * (RESP_EPROTO; the stream cannot be resynchronised). */
int resp_feed(struct resp_parser *p, const char *buf, size_t n, size_t *used);

/* Bytes that may be consumed now without looking at them (inside a large bulk). */
unsigned long long resp_skippable(const struct resp_parser *p);
void resp_skip(struct resp_parser *p, unsigned long long n);

#endif
