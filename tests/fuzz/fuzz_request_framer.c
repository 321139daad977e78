/* libFuzzer target: the RESP request framer (proxy/resp.h, proxy/frame.h), which
 * sees every byte a client sends. The input is a stream of requests, multibulk or
 * inline, framed whole, byte by byte, in random chunks and through frame_next()
 * over an evbuffer; all four must frame the same messages (framer_driver.h).
 *
 * Each multibulk request is also checked against a reference written from Redis
 * 7.0.15's own rules (below: boundaries, errors, argc, name, first argument,
 * key_off, HTTP), and each inline request's multibulk re-encoding is framed again
 * and must give the same command. */
#include <ctype.h>
#include <limits.h>

#include "fuzz_common.h"
#include "resp.h"

#define FRAMER_KIND RESP_REQUEST
#define FRAMER_MAX_BULK RESP_MAX_BULK_DEFAULT

static void check_message(const uint8_t *msg, size_t avail, const struct resp_parser *p, int rc,
                          size_t used);

#include "framer_driver.h"

enum { REF_DONE, REF_MORE, REF_ERR };

/* The reference is written from Redis 7.0.15's rules (networking.c
 * processMultibulkBuffer, util.c string2ll, server.c processCommand), not from
 * resp.c; it covers inputs well under the 64 KiB line limit, where the "too big"
 * errors cannot happen. */
#define REF_MAX_INPUT 60000

/* util.c string2ll: "0", or an optional '-' then 1-9 then digits; fewer than 21
 * characters; within a long long. */
static int ref_string2ll(const uint8_t *s, size_t slen, long long *value)
{
    size_t i = 0;
    int negative = 0;
    unsigned long long v;
    if (slen == 0 || slen >= 21) return 0;
    if (slen == 1 && s[0] == '0') {
        *value = 0;
        return 1;
    }
    if (s[0] == '-') {
        negative = 1;
        if (++i == slen) return 0;
    }
    if (s[i] < '1' || s[i] > '9') return 0;
    v = (unsigned long long)(s[i++] - '0');
    for (; i < slen && s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (v > ULLONG_MAX / 10) return 0;
        v *= 10;
        if (v > ULLONG_MAX - d) return 0;
        v += d;
    }
    if (i < slen) return 0;
    if (negative) {
        if (v > (unsigned long long)LLONG_MAX + 1) return 0;
        *value = v == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)v;
    } else {
        if (v > (unsigned long long)LLONG_MAX) return 0;
        *value = (long long)v;
    }
    return 1;
}

/* A count or length line starting at `at`, as processMultibulkBuffer finds it:
 * strchr(line, '\r') (a NUL first: no end, Redis waits), then one more byte, which
 * Redis skips whatever it is. */
static int ref_line(const uint8_t *b, size_t n, size_t at, size_t *cr)
{
    for (size_t i = at; i < n; i++) {
        if (b[i] == '\0') return REF_MORE;
        if (b[i] == '\r') {
            if (i + 1 == n) return REF_MORE;
            *cr = i;
            return REF_DONE;
        }
    }
    return REF_MORE;
}

struct ref_request {
    size_t len;
    long long argc;
    size_t name_len, arg1_len, key_off;
    const uint8_t *name, *arg1;
    int http;
};

/* processCommand: a command named POST or Host: (strcasecmp: up to a NUL). */
static int ref_is_http(const uint8_t *name, size_t len)
{
    char s[8];
    size_t k = 0;
    for (; k < len && k < sizeof(s) - 1 && name[k]; k++)
        s[k] = (char)tolower(name[k]);
    if (k < len && k == sizeof(s) - 1 && name[k]) return 0;
    s[k] = '\0';
    return strcmp(s, "post") == 0 || strcmp(s, "host:") == 0;
}

static int ref_multibulk(const uint8_t *b, size_t n, struct ref_request *r)
{
    size_t cr, pos;
    long long count;
    int tainted = 0, rc;
    memset(r, 0, sizeof(*r));
    if ((rc = ref_line(b, n, 0, &cr)) != REF_DONE) return rc;
    int ok = ref_string2ll(b + 1, cr - 1, &count);
    tainted |= b[cr + 1] != '\n';
    pos = cr + 2;
    if (!ok || count > INT_MAX) return REF_ERR;
    if (count <= 0) { /* an empty command: nothing runs; respgate forwards nothing */
        r->len = pos;
        return REF_DONE;
    }
    r->argc = count;
    for (long long a = 0; a < count; a++) {
        if ((rc = ref_line(b, n, pos, &cr)) != REF_DONE) return rc;
        if (b[pos] != '$') return REF_ERR; /* looked at once the line has ended */
        long long blen;
        if (!ref_string2ll(b + pos + 1, cr - pos - 1, &blen) || blen < 0 || blen > FRAMER_MAX_BULK)
            return REF_ERR;
        tainted |= b[cr + 1] != '\n';
        pos = cr + 2;
        if (a == 0) {
            r->name = b + pos;
            r->name_len = (size_t)blen;
        } else if (a == 1) {
            r->arg1 = b + pos;
            r->arg1_len = (size_t)blen;
            r->key_off = pos;
        }
        /* The payload, then two bytes Redis skips unread. */
        if ((unsigned long long)blen + 2 > n - pos) return REF_MORE;
        pos += (size_t)blen + 2;
    }
    r->len = pos;
    if (ref_is_http(r->name, r->name_len)) {
        r->http = 1;
        return REF_ERR; /* Redis closes the connection without a reply */
    }
    /* respgate is stricter here: a length line must end in CR LF. */
    return tainted ? REF_ERR : REF_DONE;
}

static void check_multibulk(const uint8_t *msg, size_t avail, const struct resp_parser *p, int rc)
{
    struct ref_request r;
    if (avail > REF_MAX_INPUT) return;
    int want = ref_multibulk(msg, avail, &r);
    int got = rc == RESP_DONE ? REF_DONE : rc == RESP_MORE ? REF_MORE : REF_ERR;
    CHECK(want == got, "multibulk: framer says %d (%s), Redis' rules %d", rc, p->err ? p->err : "",
          want);
    if (r.http) CHECK(p->http, "a command named POST or Host: not flagged as HTTP");
    if (rc != RESP_DONE) return;
    CHECK(p->type == '*', "type '%c'", p->type);
    CHECK(p->inl == NULL, "multibulk with an inline encoding");
    CHECK(p->len == r.len, "len %zu, reference %zu", p->len, r.len);
    CHECK(p->argc == r.argc, "argc %lld, reference %lld", p->argc, r.argc);
    if (!r.argc) return;
    CHECK(p->name_len == r.name_len, "name_len %zu, reference %zu", p->name_len, r.name_len);
    for (size_t i = 0; i < r.name_len && i < RESP_NAME_MAX; i++)
        CHECK(p->name[i] == (char)tolower(r.name[i]), "name byte %zu", i);
    if (r.argc < 2) return;
    CHECK(p->arg1_len == r.arg1_len, "arg1_len %zu, reference %zu", p->arg1_len, r.arg1_len);
    CHECK(p->key_off == r.key_off, "key_off %zu, reference %zu", p->key_off, r.key_off);
    size_t a1 = r.arg1_len < RESP_ARG1_MAX ? r.arg1_len : RESP_ARG1_MAX;
    CHECK(memcmp(p->arg1, r.arg1, a1) == 0, "arg1 differs from the message");
    CHECK(p->key_off + p->arg1_len + 2 <= p->len, "key_off past the message");
}

/* An inline command is sent re-encoded: framing the encoding gives it back. */
static void check_inline(const struct resp_parser *p)
{
    if (p->argc == 0) {
        CHECK(p->inl == NULL, "empty inline command with an encoding");
        return;
    }
    CHECK(p->inl != NULL && p->inl_len > 0, "inline command without an encoding");
    CHECK(!p->http, "an HTTP line was framed");
    struct resp_parser q;
    size_t used;
    resp_init(&q, RESP_REQUEST, RESP_MAX_BULK_DEFAULT);
    int rc = resp_feed(&q, p->inl, p->inl_len, &used);
    CHECK(rc == RESP_DONE, "re-encoded inline command does not frame: %d %s", rc,
          q.err ? q.err : "");
    CHECK(used == p->inl_len && q.len == p->inl_len, "re-encoding framed as %zu of %zu bytes",
          q.len, p->inl_len);
    CHECK(q.argc == p->argc, "argc %lld re-encoded as %lld", p->argc, q.argc);
    CHECK(q.name_len == p->name_len && strcmp(q.name, p->name) == 0, "name '%s' re-encoded '%s'",
          p->name, q.name);
    size_t a1 = p->arg1_len < RESP_ARG1_MAX ? p->arg1_len : RESP_ARG1_MAX;
    CHECK(q.arg1_len == p->arg1_len && memcmp(q.arg1, p->arg1, a1 + 1) == 0,
          "arg1 changed by re-encoding");
    if (p->argc >= 2) {
        CHECK(q.key_off == p->key_off, "key_off %zu, in the encoding %zu", p->key_off, q.key_off);
        CHECK(p->key_off + p->arg1_len + 2 <= p->inl_len, "key_off past the encoding");
        CHECK(memcmp(p->inl + p->key_off, p->arg1, a1) == 0, "key_off does not point at arg1");
    }
    resp_deinit(&q);
}

static void check_message(const uint8_t *msg, size_t avail, const struct resp_parser *p, int rc,
                          size_t used)
{
    if (msg[0] == '*') {
        check_multibulk(msg, avail, p, rc);
        return;
    }
    if (rc == RESP_MORE) { /* no LF yet, or a NUL before it: Redis never sees the end */
        const uint8_t *lf = memchr(msg, '\n', avail);
        CHECK(!lf || memchr(msg, '\0', (size_t)(lf - msg)) != NULL,
              "an inline line ending in LF was not framed");
        return;
    }
    if (rc == RESP_EPROTO) return;
    CHECK(p->type == 'i', "inline request typed '%c'", p->type);
    CHECK(msg[used - 1] == '\n' && memchr(msg, '\n', used - 1) == NULL,
          "an inline request ends at its first LF");
    check_inline(p);
}
