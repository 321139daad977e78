/* resp: see resp.h. Replies and requests have a state machine each; they share
 * the parser struct and the capture of the name and first argument. Inline
 * requests are read by resp_inline.c, common whole messages by resp_fast.c.
 *
 * Requests follow Redis 7.0.15 (src/networking.c processInputBuffer,
 * processMultibulkBuffer, processInlineBuffer; src/util.c string2ll; src/sds.c
 * sdssplitargs; src/server.c processCommand), rule by rule:
 *
 *  - A request starting with '*' is multibulk, anything else an inline line.
 *  - A count or length line is found by strchr(line, '\r'): it ends at the first CR
 *    and needs one more byte after it, which Redis skips whatever it is. strchr stops
 *    at a NUL, so a line with a NUL before its CR never ends: Redis waits, and once
 *    more than PROTO_INLINE_MAX_SIZE (64 KiB) bytes are buffered from the start of the
 *    line without a CR found, answers "too big mbulk count string" (the count) or
 *    "too big bulk count string" (a bulk length). A bare LF is no terminator: it is
 *    one more byte of the line, which string2ll then refuses.
 *  - The number is string2ll's: "0", or an optional '-' then 1-9 then digits, fewer
 *    than 21 characters, within a long long: no '+', no spaces, no leading zeros,
 *    no "-0", no empty line. The count must be <= INT_MAX ("invalid multibulk
 *    length"); a count <= 0 is an empty command (nothing runs, nothing is answered).
 *  - Each bulk line must start with '$' ("expected '$', got '<c>'", CR and LF shown as
 *    a space, as addReplyErrorFormat maps them), checked once the line has ended; its
 *    length must be 0..proto-max-bulk-len ("invalid bulk length").
 *  - The payload is followed by two bytes Redis skips without looking at them.
 *  - An inline line ends at the first LF (strchr: a NUL before it means it never
 *    ends, as above, then "too big inline request"); one CR before the LF is dropped;
 *    the rest is split by sdssplitargs ("unbalanced quotes in request").
 *  - A command named POST or Host: (case-insensitive, up to a NUL) makes Redis close
 *    the connection without a reply (processCommand's securityWarningCommand).
 *
 * Where respgate is stricter (it only ever refuses what Redis would run, answered
 * on that client's own connection, never what Redis would refuse):
 *
 *  - A count or length line must end in CR LF. Redis takes any byte after the CR;
 *    respgate forwards a request's bytes as they are and reads some of them back
 *    itself (message_args), looking for LF, so a command with such a line is framed
 *    to its end by Redis' rules (any error Redis would give there comes first) and
 *    then refused: "CR without LF ending a length line". An empty command (count
 *    <= 0) is still accepted: nothing of it is sent or read.
 *  - An inline line may have at most 64 KiB before its LF. Redis checks the limit
 *    only while no LF is buffered, so it may take a longer line that arrives in one
 *    read; respgate takes exactly the lines Redis takes whatever the reads.
 *  - An inline line that looks like an HTTP request line ("... HTTP/1.1") is closed
 *    without a reply, as Redis does only at the Host: line that follows it.
 *  - Not mirrored: Redis 7.0.15 refuses a count over 10 or a bulk over 16 KiB from a
 *    client that has not authenticated while a password is required ("unauthenticated
 *    multibulk length"). respgate's shared connections are authenticated, and its own
 *    auth answers such a client -NOAUTH before anything is sent. */
#include "resp.h"
#include "resp_fast.h"
#include "resp_int.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NUM_DIGITS_MAX 20          /* reply: longer count lines are garbage, not numbers */
#define REPLY_LINE_MAX (64u << 20) /* a status or error line from Redis */
#define REPLY_AGG_MAX (1LL << 40)  /* elements in one reply aggregate */
#define LONG_STR_SIZE 21           /* Redis' util.h: string2ll refuses this many characters */

void resp_init(struct resp_parser *p, enum resp_kind kind, long long max_bulk)
{
    memset(p, 0, sizeof(*p));
    p->kind = kind;
    p->max_bulk = max_bulk;
    p->state = S_START;
}

void resp_reset(struct resp_parser *p)
{
    p->len = 0;
    p->argc = 0;
    p->name_len = 0;
    p->name[0] = '\0';
    p->arg1_len = 0;
    p->arg1[0] = '\0';
    p->key_off = 0;
    p->type = 0;
    p->http = 0;
    p->inl = NULL;
    p->inl_len = 0;
    p->err = NULL;
    p->state = S_START;
    p->remaining = 0;
    p->argi = 0;
    p->skip = 0;
    p->line_len = 0;
    p->tainted = 0;
}

void resp_deinit(struct resp_parser *p)
{
    free(p->line);
    free(p->enc);
    p->line = p->enc = NULL;
    p->line_cap = p->enc_cap = 0;
}

int resp_proto_error(struct resp_parser *p, const char *msg)
{
    p->err = msg;
    return RESP_EPROTO;
}

unsigned long long resp_skippable(const struct resp_parser *p)
{
    /* The first two request arguments are captured, so they are read, not skipped. */
    if (p->kind == RESP_REQUEST) return p->state == S_RQ_BULK && p->argi >= 2 ? p->skip : 0;
    return p->state == S_BULK ? p->skip : 0;
}

void resp_skip(struct resp_parser *p, unsigned long long n)
{
    p->skip -= n;
    p->len += n;
    if (p->skip == 0) p->state = p->kind == RESP_REQUEST ? S_RQ_TRAIL1 : S_BULK_CR;
}

/* --- replies ------------------------------------------------------------- */

/* A reply element finished; the message is done when none is expected. */
static int element_done(struct resp_parser *p)
{
    if (--p->remaining == 0) return RESP_DONE;
    p->state = S_TYPE;
    return RESP_MORE;
}

static int reply_count(struct resp_parser *p, long long n)
{
    switch (p->elem) {
    case '$':
    case '!':
    case '=':
        if (n == -1 && p->elem == '$') return element_done(p); /* RESP2 null bulk */
        if (n < 0) return resp_proto_error(p, "invalid bulk length in reply");
        p->skip = (unsigned long long)n;
        p->state = n ? S_BULK : S_BULK_CR;
        return RESP_MORE;
    default:                                                   /* aggregates: * ~ > % | */
        if (n == -1 && p->elem == '*') return element_done(p); /* RESP2 null array */
        if (n < 0 || n > REPLY_AGG_MAX)
            return resp_proto_error(p, "invalid aggregate length in reply");
        if (p->elem == '%' || p->elem == '|') n *= 2;
        /* An attribute precedes the value it describes, which still fills the slot. */
        p->remaining += (uint64_t)n;
        if (p->elem == '|') {
            p->state = S_TYPE;
            return RESP_MORE;
        }
        return element_done(p);
    }
}

static int number_done(struct resp_parser *p)
{
    if (p->num_digits == 0)
        return resp_proto_error(p, p->elem == '*' ? "invalid multibulk length"
                                                  : "invalid bulk length");
    return reply_count(p, p->num_neg ? -p->num : p->num);
}

static int number_byte(struct resp_parser *p, char c)
{
    if (c >= '0' && c <= '9') {
        if (++p->num_digits > NUM_DIGITS_MAX || p->num > (LLONG_MAX - (c - '0')) / 10)
            return resp_proto_error(p, p->elem == '*' ? "invalid multibulk length"
                                                      : "invalid bulk length");
        p->num = p->num * 10 + (c - '0');
        return RESP_MORE;
    }
    if (c == '-' && p->num_digits == 0 && !p->num_neg) {
        p->num_neg = 1;
        return RESP_MORE;
    }
    if (c == '\r') {
        p->state = S_NUM_LF;
        return RESP_MORE;
    }
    return resp_proto_error(p, p->elem == '*' ? "invalid multibulk length" : "invalid bulk length");
}

static void start_number(struct resp_parser *p, char elem)
{
    p->elem = elem;
    p->num = 0;
    p->num_neg = 0;
    p->num_digits = 0;
    p->state = S_NUM;
}

static int type_byte(struct resp_parser *p, char c)
{
    switch (c) {
    case '+':
    case '-':
    case ':':
    case ',':
    case '(':
    case '_':
    case '#':
        p->elem = c;
        p->line_len = 0;
        p->state = S_LINE;
        return RESP_MORE;
    case '$':
    case '!':
    case '=':
    case '*':
    case '~':
    case '>':
    case '%':
    case '|':
        start_number(p, c);
        return RESP_MORE;
    default:
        return resp_proto_error(p, "invalid type byte in reply");
    }
}

static int step_reply(struct resp_parser *p, const char *b, size_t n, size_t *i)
{
    char c = b[*i];
    switch (p->state) {
    case S_START:
        p->type = c;
        p->remaining = 1;
        p->state = S_TYPE;
        return RESP_MORE;
    case S_TYPE:
        (*i)++;
        return type_byte(p, c);
    case S_NUM:
        /* Digits in a tight loop: counts and lengths are most of a small reply. */
        for (;;) {
            (*i)++;
            int rc = number_byte(p, c);
            if (rc != RESP_MORE || p->state != S_NUM || *i == n) return rc;
            c = b[*i];
        }
    case S_NUM_LF:
        (*i)++;
        if (c != '\n') return resp_proto_error(p, "expected LF after a length");
        return number_done(p);
    case S_LINE: {
        const char *cr = memchr(b + *i, '\r', n - *i);
        size_t take = cr ? (size_t)(cr - (b + *i)) + 1 : n - *i;
        p->line_len += take;
        *i += take;
        if (p->line_len > REPLY_LINE_MAX) return resp_proto_error(p, "too long line in reply");
        if (cr) p->state = S_LINE_LF;
        return RESP_MORE;
    }
    case S_LINE_LF:
        (*i)++;
        if (c != '\n') return resp_proto_error(p, "expected LF in reply");
        return element_done(p);
    case S_BULK: {
        size_t avail = n - *i;
        size_t take = p->skip < avail ? (size_t)p->skip : avail;
        *i += take;
        p->skip -= take;
        if (p->skip == 0) p->state = S_BULK_CR;
        return RESP_MORE;
    }
    case S_BULK_CR:
        (*i)++;
        if (c != '\r') return resp_proto_error(p, "expected CRLF after bulk data");
        p->state = S_BULK_LF;
        return RESP_MORE;
    case S_BULK_LF:
        (*i)++;
        if (c != '\n') return resp_proto_error(p, "expected CRLF after bulk data");
        return element_done(p);
    }
    return resp_proto_error(p, "internal parser state");
}

/* --- requests: what makes Redis refuse or close -------------------------- */

/* The error Redis gives when a line has gone on for more than 64 KiB with no end
 * found (no CR, or a NUL before it). */
int resp_too_big(struct resp_parser *p)
{
    if (p->type == 'i') return resp_proto_error(p, "too big inline request");
    return resp_proto_error(p, p->argc == 0 ? "too big mbulk count string"
                                            : "too big bulk count string");
}

/* processCommand: a command named POST or Host: (strcasecmp, so up to a NUL in the
 * name) is an HTTP request sent to Redis; it closes the connection, answering
 * nothing. name is lowercased and NUL-terminated. */
int resp_is_http_command(const struct resp_parser *p)
{
    return (p->name[0] == 'p' && strcmp(p->name, "post") == 0) ||
           (p->name[0] == 'h' && strcmp(p->name, "host:") == 0);
}

int resp_cross_protocol(struct resp_parser *p)
{
    p->http = 1;
    return resp_proto_error(p, "cross-protocol request (HTTP)");
}

/* --- requests: multibulk ------------------------------------------------- */

static void line_start(struct resp_parser *p, char first)
{
    p->elem = first;
    p->line_len = 1;
    p->num_digits = 0; /* characters after the first byte: string2ll's slen */
    p->num_neg = 0;
    p->num_bad = 0;
    p->mag = 0;
}

/* One character of the number, as string2ll (util.c) reads it: "0" alone, or an
 * optional '-', a digit 1-9, then digits, with no overflow of an unsigned long long. */
static void number_char(struct resp_parser *p, unsigned char c)
{
    int pos = p->num_digits++;
    if (p->num_bad) return;
    if (pos == 0 && c == '-') {
        p->num_neg = 1;
        return;
    }
    if (c < '0' || c > '9') {
        p->num_bad = 1;
        return;
    }
    unsigned d = c - '0';
    if (pos == p->num_neg) { /* the first digit: 1-9, or a 0 that must stand alone */
        if (d == 0 && p->num_neg) p->num_bad = 1;
        p->mag = d;
        return;
    }
    if (p->mag == 0 || p->mag > (ULLONG_MAX - d) / 10) {
        p->num_bad = 1; /* a leading zero, or an overflow */
        return;
    }
    p->mag = p->mag * 10 + d;
}

/* The number string2ll gives for the line, or 0 if it refuses it. */
static int number_value(const struct resp_parser *p, long long *out)
{
    if (p->num_bad || p->num_digits == p->num_neg || p->num_digits >= LONG_STR_SIZE) return 0;
    if (p->num_neg) {
        if (p->mag > (unsigned long long)LLONG_MAX + 1) return 0;
        *out = p->mag == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)p->mag;
    } else {
        if (p->mag > (unsigned long long)LLONG_MAX) return 0;
        *out = (long long)p->mag;
    }
    return 1;
}

/* The command's last argument is in. */
static int command_done(struct resp_parser *p)
{
    if (resp_is_http_command(p)) return resp_cross_protocol(p);
    if (p->tainted) return resp_proto_error(p, "CR without LF ending a length line");
    return RESP_DONE;
}

/* A count or length line has ended: its CR, then the byte x after it (Redis skips
 * it, whatever it is). `at` is the offset in this feed just past x. */
static int line_end(struct resp_parser *p, unsigned char x, size_t at)
{
    long long n = 0;
    int ok = number_value(p, &n);
    if (x != '\n') p->tainted = 1;
    if (p->argc == 0) { /* the count */
        if (!ok || n > RESP_MAX_ARGS) return resp_proto_error(p, "invalid multibulk length");
        if (n <= 0) return RESP_DONE; /* an empty command: Redis runs and answers nothing */
        p->argc = n;
        p->argi = 0;
        p->state = S_RQ_TYPE;
        return RESP_MORE;
    }
    if (p->elem != '$') {
        char got = p->elem == '\r' || p->elem == '\n' ? ' ' : p->elem;
        snprintf(p->errbuf, sizeof(p->errbuf), "expected '$', got '%c'", got);
        return resp_proto_error(p, p->errbuf);
    }
    if (!ok || n < 0 || n > p->max_bulk) return resp_proto_error(p, "invalid bulk length");
    p->cap = 0;
    if (p->argi == 0) p->name_len = (size_t)n;
    if (p->argi == 1) {
        p->arg1_len = (size_t)n;
        p->key_off = p->len + at; /* p->len: where this feed began */
    }
    p->skip = (unsigned long long)n;
    p->state = n ? S_RQ_BULK : S_RQ_TRAIL1;
    return RESP_MORE;
}

/* Keeps the start of the command name (lowercased) and of the first argument. */
static void capture(struct resp_parser *p, const char *b, size_t n)
{
    if (p->argi == 0) {
        for (size_t i = 0; i < n && p->cap < RESP_NAME_MAX; i++)
            p->name[p->cap++] = (char)tolower((unsigned char)b[i]);
        p->name[p->cap] = '\0';
    } else if (p->argi == 1) {
        size_t take = n < RESP_ARG1_MAX - p->cap ? n : RESP_ARG1_MAX - p->cap;
        memcpy(p->arg1 + p->cap, b, take);
        p->cap += take;
        p->arg1[p->cap] = '\0';
    }
}

/* --- requests: the machine ----------------------------------------------- */

static int step_request(struct resp_parser *p, const char *b, size_t n, size_t *i)
{
    unsigned char c = (unsigned char)b[*i];
    switch (p->state) {
    case S_START:
        if (c != '*') {
            p->type = 'i';
            p->line_len = 0;
            p->state = S_INLINE;
            return RESP_MORE;
        }
        (*i)++;
        p->type = '*';
        line_start(p, '*');
        p->state = S_RQ_NUM;
        return RESP_MORE;
    case S_RQ_TYPE: /* any byte: Redis looks at it once the line has ended */
        (*i)++;
        line_start(p, (char)c);
        p->state = c == '\r' ? S_RQ_END : c == '\0' ? S_RQ_NUL : S_RQ_NUM;
        return RESP_MORE;
    case S_RQ_NUM:
        /* A tight loop: counts and lengths are most of a small command. */
        for (;;) {
            (*i)++;
            if (c == '\r') {
                p->state = S_RQ_END;
                return RESP_MORE;
            }
            if (++p->line_len > RESP_INLINE_MAX) return resp_too_big(p);
            if (c == '\0') {
                p->state = S_RQ_NUL;
                return RESP_MORE;
            }
            number_char(p, c);
            if (*i == n) return RESP_MORE;
            c = (unsigned char)b[*i];
        }
    case S_RQ_END:
        (*i)++;
        return line_end(p, c, *i);
    case S_RQ_NUL: {
        /* Redis waits for more until over 64 KiB are buffered from the line's start. */
        size_t room = RESP_INLINE_MAX + 1 - p->line_len, avail = n - *i;
        if (avail >= room) {
            *i += room;
            p->line_len += room;
            return resp_too_big(p);
        }
        *i += avail;
        p->line_len += avail;
        return RESP_MORE;
    }
    case S_RQ_BULK: {
        size_t avail = n - *i;
        size_t take = p->skip < avail ? (size_t)p->skip : avail;
        capture(p, b + *i, take);
        *i += take;
        p->skip -= take;
        if (p->skip == 0) p->state = S_RQ_TRAIL1;
        return RESP_MORE;
    }
    case S_RQ_TRAIL1: /* processMultibulkBuffer skips these two bytes unread */
        (*i)++;
        p->state = S_RQ_TRAIL2;
        return RESP_MORE;
    case S_RQ_TRAIL2:
        (*i)++;
        if (++p->argi < p->argc) {
            p->state = S_RQ_TYPE;
            return RESP_MORE;
        }
        return command_done(p);
    case S_INLINE:
        return resp_inline_bytes(p, b, n, i);
    }
    return resp_proto_error(p, "internal parser state");
}

int resp_feed(struct resp_parser *p, const char *buf, size_t n, size_t *used)
{
    size_t i = 0;
    int rc = RESP_MORE;
    size_t base = p->len;

    if (p->state == S_START && (p->kind == RESP_REQUEST ? resp_fast_request(p, buf, n, &i)
                                                        : resp_fast_reply(p, buf, n, &i))) {
        p->len = base + i;
        *used = i;
        return p->kind == RESP_REQUEST ? command_done(p) : RESP_DONE;
    }
    if (p->kind == RESP_REQUEST) {
        while (i < n && (rc = step_request(p, buf, n, &i)) == RESP_MORE)
            ;
    } else {
        while (i < n && (rc = step_reply(p, buf, n, &i)) == RESP_MORE)
            ;
    }
    p->len = base + i;
    *used = i;
    return rc;
}
