/* libFuzzer target: the RESP reply framer (proxy/resp.h, proxy/frame.h), which
 * sees every byte Redis sends back: RESP2 and RESP3 (maps, sets, pushes,
 * attributes, doubles, big numbers, verbatim strings, nulls, booleans). The input
 * is a stream of replies framed whole, byte by byte, in random chunks and through
 * frame_next() over an evbuffer; all four must agree (framer_driver.h), and each
 * reply's boundary must match the recursive reference parser below. */
#include <limits.h>

#include "fuzz_common.h"
#include "resp.h"

#define FRAMER_KIND RESP_REPLY
#define FRAMER_MAX_BULK LLONG_MAX /* as upstream.c frames replies */

static void check_message(const uint8_t *msg, size_t avail, const struct resp_parser *p, int rc,
                          size_t used);

#include "framer_driver.h"

enum { REF_DONE, REF_MORE, REF_ERR };

#define REF_AGG_MAX (1LL << 40) /* elements in one aggregate */
#define REF_MAX_DEPTH 2000      /* the reference recurses; respgate's framer does not */

static int ref_number(const uint8_t *b, size_t n, size_t *pos, long long *out)
{
    size_t i = *pos;
    int neg = 0, digits = 0;
    long long v = 0;
    if (i < n && b[i] == '-') {
        neg = 1;
        i++;
    }
    for (; i < n && b[i] >= '0' && b[i] <= '9'; i++) {
        if (++digits > 20 || __builtin_mul_overflow(v, 10, &v) ||
            __builtin_add_overflow(v, b[i] - '0', &v))
            return REF_ERR;
    }
    if (i == n) return REF_MORE;
    if (b[i] != '\r') return REF_ERR;
    if (++i == n) return REF_MORE;
    if (b[i] != '\n' || digits == 0) return REF_ERR;
    *pos = i + 1;
    *out = neg ? -v : v;
    return REF_DONE;
}

static int ref_value(const uint8_t *b, size_t n, size_t *pos, int depth)
{
    if (depth > REF_MAX_DEPTH) return -1;
    if (*pos == n) return REF_MORE;
    uint8_t t = b[(*pos)++];
    long long v;
    int rc;
    switch (t) {
    case '+':
    case '-':
    case ':':
    case ',':
    case '(':
    case '_':
    case '#': {
        const uint8_t *cr = memchr(b + *pos, '\r', n - *pos);
        if (!cr) return REF_MORE;
        *pos = (size_t)(cr - b) + 1;
        if (*pos == n) return REF_MORE;
        return b[(*pos)++] == '\n' ? REF_DONE : REF_ERR;
    }
    case '$':
    case '!':
    case '=':
        if ((rc = ref_number(b, n, pos, &v)) != REF_DONE) return rc;
        if (v == -1 && t == '$') return REF_DONE;
        if (v < 0) return REF_ERR;
        if ((unsigned long long)v > n - *pos) return REF_MORE;
        *pos += (size_t)v;
        if (*pos == n) return REF_MORE;
        if (b[(*pos)++] != '\r') return REF_ERR;
        if (*pos == n) return REF_MORE;
        return b[(*pos)++] == '\n' ? REF_DONE : REF_ERR;
    case '*':
    case '~':
    case '>':
    case '%':
    case '|':
        if ((rc = ref_number(b, n, pos, &v)) != REF_DONE) return rc;
        if (v == -1 && t == '*') return REF_DONE;
        if (v < 0 || v > REF_AGG_MAX) return REF_ERR;
        if (t == '%' || t == '|') v *= 2;
        for (long long i = 0; i < v; i++)
            if ((rc = ref_value(b, n, pos, depth + 1)) != REF_DONE) return rc;
        /* An attribute describes the value that follows it, which it does not replace. */
        return t == '|' ? ref_value(b, n, pos, depth + 1) : REF_DONE;
    default:
        return REF_ERR;
    }
}

static void check_message(const uint8_t *msg, size_t avail, const struct resp_parser *p, int rc,
                          size_t used)
{
    (void)used;
    size_t pos = 0;
    int want = ref_value(msg, avail, &pos, 0);
    if (want < 0) return; /* too deep for the reference: only the driver's checks */
    int got = rc == RESP_DONE ? REF_DONE : rc == RESP_MORE ? REF_MORE : REF_ERR;
    CHECK(want == got, "reply: framer says %d (%s), reference %d", rc, p->err ? p->err : "", want);
    if (rc != RESP_DONE) return;
    CHECK(p->len == pos, "reply framed as %zu bytes, reference %zu", p->len, pos);
    CHECK(p->type == (char)msg[0], "type '%c', first byte '%c'", p->type, msg[0]);
    CHECK(p->argc == 0 && p->inl == NULL, "request fields set on a reply");
    CHECK(p->len >= 3 && msg[p->len - 2] == '\r' && msg[p->len - 1] == '\n',
          "a reply ends in CRLF");
}
