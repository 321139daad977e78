/* resp: see resp.h. One state machine serves requests and replies; the states
 * differ only in which type bytes are allowed and what a finished element means. */
#include "resp.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NUM_DIGITS_MAX 20          /* longer count lines are garbage, not numbers */
#define REPLY_LINE_MAX (64u << 20) /* a status or error line from Redis */
#define REPLY_AGG_MAX (1LL << 40)  /* elements in one reply aggregate */

enum {
    S_START, /* first byte of a message */
    S_TYPE,  /* type byte of the next element */
    S_NUM,   /* digits of a count or length, up to CR */
    S_NUM_LF,
    S_LINE, /* reply: a simple line, up to CR */
    S_LINE_LF,
    S_BULK, /* payload bytes */
    S_BULK_CR,
    S_BULK_LF,
    S_INLINE, /* request: an inline line, up to LF */
};

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
}

void resp_deinit(struct resp_parser *p)
{
    free(p->line);
    free(p->enc);
    p->line = p->enc = NULL;
    p->line_cap = p->enc_cap = 0;
}

static int proto_error(struct resp_parser *p, const char *msg)
{
    p->err = msg;
    return RESP_EPROTO;
}

unsigned long long resp_skippable(const struct resp_parser *p)
{
    /* The first two request arguments are captured, so they are read, not skipped. */
    if (p->state != S_BULK) return 0;
    if (p->kind == RESP_REQUEST && p->argi < 2) return 0;
    return p->skip;
}

void resp_skip(struct resp_parser *p, unsigned long long n)
{
    p->skip -= n;
    p->len += n;
    if (p->skip == 0) p->state = S_BULK_CR;
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

/* A reply element finished; the message is done when none is expected. */
static int element_done(struct resp_parser *p)
{
    if (--p->remaining == 0) return RESP_DONE;
    p->state = S_TYPE;
    return RESP_MORE;
}

static int request_count(struct resp_parser *p, long long n)
{
    if (p->elem == '*') {
        if (n > RESP_MAX_ARGS) return proto_error(p, "invalid multibulk length");
        if (n <= 0) return RESP_DONE; /* Redis ignores empty multibulks: nothing to send */
        p->argc = n;
        p->state = S_TYPE;
        return RESP_MORE;
    }
    if (n < 0 || n > p->max_bulk) return proto_error(p, "invalid bulk length");
    p->cap = 0;
    if (p->argi == 0) p->name_len = (size_t)n;
    if (p->argi == 1) {
        p->arg1_len = (size_t)n;
        p->key_off = p->len + p->cur; /* p->len: where this feed began; cur: past the LF */
    }
    p->skip = (unsigned long long)n;
    p->state = n ? S_BULK : S_BULK_CR;
    return RESP_MORE;
}

static int reply_count(struct resp_parser *p, long long n)
{
    switch (p->elem) {
    case '$':
    case '!':
    case '=':
        if (n == -1 && p->elem == '$') return element_done(p); /* RESP2 null bulk */
        if (n < 0) return proto_error(p, "invalid bulk length in reply");
        p->skip = (unsigned long long)n;
        p->state = n ? S_BULK : S_BULK_CR;
        return RESP_MORE;
    default:                                                   /* aggregates: * ~ > % | */
        if (n == -1 && p->elem == '*') return element_done(p); /* RESP2 null array */
        if (n < 0 || n > REPLY_AGG_MAX) return proto_error(p, "invalid aggregate length in reply");
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
        return proto_error(p, p->elem == '*' ? "invalid multibulk length" : "invalid bulk length");
    long long n = p->num_neg ? -p->num : p->num;
    return p->kind == RESP_REQUEST ? request_count(p, n) : reply_count(p, n);
}

static int number_byte(struct resp_parser *p, char c)
{
    if (c >= '0' && c <= '9') {
        if (++p->num_digits > NUM_DIGITS_MAX || p->num > (LLONG_MAX - (c - '0')) / 10)
            return proto_error(p,
                               p->elem == '*' ? "invalid multibulk length" : "invalid bulk length");
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
    return proto_error(p, p->elem == '*' ? "invalid multibulk length" : "invalid bulk length");
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
    if (p->kind == RESP_REQUEST) {
        if (c != '$') {
            snprintf(p->errbuf, sizeof(p->errbuf), "expected '$', got '%c'",
                     isprint((unsigned char)c) ? c : '?');
            return proto_error(p, p->errbuf);
        }
        start_number(p, c);
        return RESP_MORE;
    }
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
        return proto_error(p, "invalid type byte in reply");
    }
}

/* --- inline requests ---------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Splits one argument at s[*i..n) by Redis' sdssplitargs rules into out (which has
 * room for n bytes). Returns its length, or -1 on unbalanced quotes. */
static long inline_arg(const char *s, size_t n, size_t *i, char *out)
{
    size_t o = 0, k = *i;
    char q = (s[k] == '"' || s[k] == '\'') ? s[k++] : 0;

    for (;;) {
        if (k == n) {
            if (q) return -1;
            break;
        }
        char c = s[k];
        if (!q) {
            if (isspace((unsigned char)c)) break;
            out[o++] = c;
            k++;
            continue;
        }
        if (q == '"' && c == '\\' && k + 3 < n && s[k + 1] == 'x' && hexval(s[k + 2]) >= 0 &&
            hexval(s[k + 3]) >= 0) {
            out[o++] = (char)(hexval(s[k + 2]) * 16 + hexval(s[k + 3]));
            k += 4;
        } else if (q == '"' && c == '\\' && k + 1 < n) {
            char e = s[k + 1];
            out[o++] = e == 'n'   ? '\n'
                       : e == 'r' ? '\r'
                       : e == 't' ? '\t'
                       : e == 'b' ? '\b'
                       : e == 'a' ? '\a'
                                  : e;
            k += 2;
        } else if (q == '\'' && c == '\\' && k + 1 < n && s[k + 1] == '\'') {
            out[o++] = '\'';
            k += 2;
        } else if (c == q) {
            k++;
            /* A closing quote must be followed by a space or the end. */
            if (k < n && !isspace((unsigned char)s[k])) return -1;
            break;
        } else {
            out[o++] = c;
            k++;
        }
    }
    *i = k;
    return (long)o;
}

static int grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    char *b = realloc(*buf, c);
    if (!b) return -1;
    *buf = b;
    *cap = c;
    return 0;
}

static int looks_like_http(const char *line, size_t n)
{
    if (n >= 5 && (strncasecmp(line, "post ", 5) == 0 || strncasecmp(line, "host:", 5) == 0))
        return 1;
    /* "GET /path HTTP/1.1" and friends: three or more words, the last a protocol version. */
    size_t last = n;
    while (last > 0 && line[last - 1] != ' ')
        last--;
    if (last == 0 || n - last < 5 || strncmp(line + last, "HTTP/", 5) != 0) return 0;
    const char *first = memchr(line, ' ', n);
    return first && first < line + last - 1;
}

/* Turns the inline line into a multibulk command in p->enc. */
static int inline_done(struct resp_parser *p)
{
    size_t n = p->line_len;
    if (n && p->line[n - 1] == '\r') n--;
    if (looks_like_http(p->line, n)) {
        p->http = 1;
        return proto_error(p, "cross-protocol request (HTTP)");
    }

    /* Worst case: every byte an argument ("a b c"): header 24 bytes + per arg 16. */
    if (grow(&p->enc, &p->enc_cap, 32 + n * 20)) return proto_error(p, "out of memory");
    char *args = malloc(n + 1);
    if (!args) return proto_error(p, "out of memory");

    /* Arguments are first written after a gap for the "*<argc>\r\n" header. */
    size_t o = 24, i = 0;
    long long argc = 0;
    for (;;) {
        while (i < n && isspace((unsigned char)p->line[i]))
            i++;
        if (i == n) break;
        long alen = inline_arg(p->line, n, &i, args);
        if (alen < 0) {
            free(args);
            return proto_error(p, "unbalanced quotes in request");
        }
        if (argc == 0) {
            p->name_len = (size_t)alen;
            for (long k = 0; k < alen && k < RESP_NAME_MAX; k++)
                p->name[k] = (char)tolower((unsigned char)args[k]);
            p->name[alen < RESP_NAME_MAX ? alen : RESP_NAME_MAX] = '\0';
        }
        o += (size_t)sprintf(p->enc + o, "$%ld\r\n", alen);
        if (argc == 1) {
            p->arg1_len = (size_t)alen;
            size_t take = (size_t)alen < RESP_ARG1_MAX ? (size_t)alen : RESP_ARG1_MAX;
            memcpy(p->arg1, args, take);
            p->arg1[take] = '\0';
            p->key_off = o;
        }
        memcpy(p->enc + o, args, (size_t)alen);
        o += (size_t)alen;
        p->enc[o++] = '\r';
        p->enc[o++] = '\n';
        argc++;
    }
    free(args);

    p->argc = argc;
    if (argc == 0) return RESP_DONE; /* an empty line: Redis ignores it */
    char hdr[24];
    int h = snprintf(hdr, sizeof(hdr), "*%lld\r\n", argc);
    size_t start = 24 - (size_t)h;
    memcpy(p->enc + start, hdr, (size_t)h);
    p->inl = p->enc + start;
    p->inl_len = o - start;
    p->key_off -= start;
    return RESP_DONE;
}

static int inline_bytes(struct resp_parser *p, const char *b, size_t n, size_t *i)
{
    const char *lf = memchr(b + *i, '\n', n - *i);
    size_t take = lf ? (size_t)(lf - (b + *i)) : n - *i;
    if (p->line_len + take > RESP_INLINE_MAX) return proto_error(p, "too big inline request");
    if (grow(&p->line, &p->line_cap, p->line_len + take + 1))
        return proto_error(p, "out of memory");
    memcpy(p->line + p->line_len, b + *i, take);
    p->line_len += take;
    *i += take;
    if (!lf) return RESP_MORE;
    (*i)++; /* the LF */
    return inline_done(p);
}

/* --- the machine ----------------------------------------------------------- */

static int step(struct resp_parser *p, const char *b, size_t n, size_t *i)
{
    char c = b[*i];
    switch (p->state) {
    case S_START:
        p->type = c;
        if (p->kind == RESP_REPLY) {
            p->remaining = 1;
            p->state = S_TYPE;
            return RESP_MORE;
        }
        if (c != '*') {
            p->type = 'i';
            p->line_len = 0;
            p->state = S_INLINE;
            return RESP_MORE;
        }
        (*i)++;
        start_number(p, '*');
        return RESP_MORE;
    case S_TYPE:
        (*i)++;
        return type_byte(p, c);
    case S_NUM:
        /* Digits in a tight loop: counts and lengths are most of a small command. */
        for (;;) {
            (*i)++;
            int rc = number_byte(p, c);
            if (rc != RESP_MORE || p->state != S_NUM || *i == n) return rc;
            c = b[*i];
        }
    case S_NUM_LF:
        (*i)++;
        if (c != '\n') return proto_error(p, "expected LF after a length");
        p->cur = *i;
        return number_done(p);
    case S_LINE: {
        const char *cr = memchr(b + *i, '\r', n - *i);
        size_t take = cr ? (size_t)(cr - (b + *i)) + 1 : n - *i;
        p->line_len += take;
        *i += take;
        if (p->line_len > REPLY_LINE_MAX) return proto_error(p, "too long line in reply");
        if (cr) p->state = S_LINE_LF;
        return RESP_MORE;
    }
    case S_LINE_LF:
        (*i)++;
        if (c != '\n') return proto_error(p, "expected LF in reply");
        return element_done(p);
    case S_BULK: {
        size_t avail = n - *i;
        size_t take = p->skip < avail ? (size_t)p->skip : avail;
        if (p->kind == RESP_REQUEST) capture(p, b + *i, take);
        *i += take;
        p->skip -= take;
        if (p->skip == 0) p->state = S_BULK_CR;
        return RESP_MORE;
    }
    case S_BULK_CR:
        (*i)++;
        if (c != '\r') return proto_error(p, "expected CRLF after bulk data");
        p->state = S_BULK_LF;
        return RESP_MORE;
    case S_BULK_LF:
        (*i)++;
        if (c != '\n') return proto_error(p, "expected CRLF after bulk data");
        if (p->kind == RESP_REPLY) return element_done(p);
        if (++p->argi == p->argc) return RESP_DONE;
        p->state = S_TYPE;
        return RESP_MORE;
    case S_INLINE:
        return inline_bytes(p, b, n, i);
    }
    return proto_error(p, "internal parser state");
}

int resp_feed(struct resp_parser *p, const char *buf, size_t n, size_t *used)
{
    size_t i = 0;
    int rc = RESP_MORE;
    size_t base = p->len;

    while (i < n) {
        rc = step(p, buf, n, &i);
        if (rc != RESP_MORE) break;
    }
    p->len = base + i;
    *used = i;
    return rc;
}
