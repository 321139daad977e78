/* The RESP framer, byte by byte: every message of a corpus framed whole, split at
 * every point, and fed one byte at a time; every malformed case rejected.
 *
 * Requests follow Redis 7.0.15 (networking.c processMultibulkBuffer and
 * processInlineBuffer, util.c string2ll, sds.c sdssplitargs): each rule has a test
 * below, and every case in the corpus and in bad_requests was checked against a
 * real redis-server 7.0.15 (tests/integration/test_strict_framing.py does that for
 * hundreds of inputs on every run). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "resp.h"

struct expect {
    const char *bytes;
    size_t len;
    long long argc;
    const char *name;
    const char *arg1;
};

#define REQ(b, argc, name, arg1)                                                                   \
    {                                                                                              \
        b, sizeof(b) - 1, argc, name, arg1                                                         \
    }

static const struct expect requests[] = {
    REQ("*1\r\n$4\r\nPING\r\n", 1, "ping", ""),
    REQ("*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n", 2, "get", "key"),
    REQ("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$6\r\na\r\nb\0c\r\n", 3, "set", "k"),
    REQ("*3\r\n$3\r\nSET\r\n$0\r\n\r\n$0\r\n\r\n", 3, "set", ""),
    REQ("*0\r\n", 0, "", ""),
    REQ("*-1\r\n", 0, "", ""),
    REQ("PING\r\n", 1, "ping", ""),
    REQ("get key\n", 2, "get", "key"),
    REQ("SET k \"a b\"\r\n", 3, "set", "k"),
    REQ("set 'it\\'s' v\r\n", 3, "set", "it's"),
    REQ("ECHO \"\\x41\\n\"\r\n", 2, "echo", "A\n"),
    REQ("\r\n", 0, "", ""),
    REQ("   \r\n", 0, "", ""),
    /* Redis skips the two bytes after a payload without looking at them. */
    REQ("*1\r\n$4\r\nPINGxx", 1, "ping", ""),
    REQ("*2\r\n$3\r\nGET\r\n$1\r\nk\n\n", 2, "get", "k"),
    REQ("*2\r\n$4\r\nECHO\r\n$0\r\n\r\r", 2, "echo", ""),
    /* string2ll takes LLONG_MIN; a count <= 0 is an empty command. */
    REQ("*-9223372036854775808\r\n", 0, "", ""),
    REQ("*-2147483649\r\n", 0, "", ""),
    /* An empty command may end in CR and any byte: nothing of it is sent. */
    REQ("*0\rX", 0, "", ""),
    REQ("*1\r\n$0\r\n\r\n", 1, "", ""),
    REQ("*2\r\n$4\r\nECHO\r\n$10\r\n0123456789\r\n", 2, "echo", "0123456789"),
    /* sdssplitargs: a quote opens inside an argument; \v and \f end none (isspace
     * skips them between arguments); one CR before the LF is dropped. */
    REQ("SET k a\"b c\"\r\n", 3, "set", "k"),
    REQ("ECHO a'b c'\n", 2, "echo", "ab c"),
    REQ("ECHO a\vb\r\n", 2, "echo", "a\vb"),
    REQ("\v\fPING\r\n", 1, "ping", ""),
    REQ("PING\v\r\n", 1, "ping\v", ""),
    REQ("PING\r\r\n", 1, "ping", ""),
    REQ("ECHO \"\"\r\n", 2, "echo", ""),
    REQ("ECHO \"a\"\v\r\n", 2, "echo", "a"),
    REQ("ECHO \"\\x4g\"\r\n", 2, "echo", "x4g"),
    REQ("ECHO \"\\x4A\\x6b\"\r\n", 2, "echo", "Jk"),
    /* Only a command named exactly POST or Host: is an HTTP request to Redis. */
    REQ("host:x\r\n", 1, "host:x", ""),
    REQ("*1\r\n$5\r\nposts\r\n", 1, "posts", ""),
};

static const struct expect replies[] = {
    REQ("+OK\r\n", 0, "", ""),
    REQ("-ERR wrong\r\n", 0, "", ""),
    REQ(":42\r\n", 0, "", ""),
    REQ("$5\r\nhello\r\n", 0, "", ""),
    REQ("$0\r\n\r\n", 0, "", ""),
    REQ("$-1\r\n", 0, "", ""),
    REQ("*-1\r\n", 0, "", ""),
    REQ("*0\r\n", 0, "", ""),
    REQ("*2\r\n$3\r\nfoo\r\n:1\r\n", 0, "", ""),
    REQ("*2\r\n*2\r\n*1\r\n*1\r\n:1\r\n$-1\r\n*0\r\n", 0, "", ""),
    REQ("_\r\n", 0, "", ""),
    REQ("#t\r\n", 0, "", ""),
    REQ(",3.14\r\n", 0, "", ""),
    REQ("(12345678901234567890\r\n", 0, "", ""),
    REQ("!5\r\nERR x\r\n", 0, "", ""),
    REQ("=8\r\ntxt:abcd\r\n", 0, "", ""),
    REQ("%2\r\n+a\r\n:1\r\n+b\r\n*1\r\n:2\r\n", 0, "", ""),
    REQ("~2\r\n+a\r\n+b\r\n", 0, "", ""),
    REQ(">3\r\n+message\r\n+chan\r\n$2\r\nhi\r\n", 0, "", ""),
    REQ("|1\r\n+key\r\n+val\r\n:1\r\n", 0, "", ""),
    REQ("*2\r\n|1\r\n+k\r\n+v\r\n:1\r\n:2\r\n", 0, "", ""),
};

/* Feeds chunks of at most `step` bytes (0 = split once at `split`). Returns the
 * status after the last byte; *done_at is the byte count when RESP_DONE came. */
static int feed(struct resp_parser *p, const struct expect *e, size_t split, size_t step,
                size_t *done_at)
{
    size_t off = 0;
    int rc = RESP_MORE;
    *done_at = 0;
    while (off < e->len) {
        size_t n = step ? step : (off < split ? split - off : e->len - off);
        if (n > e->len - off) n = e->len - off;
        size_t used;
        rc = resp_feed(p, e->bytes + off, n, &used);
        off += used;
        if (rc != RESP_MORE) {
            *done_at = off;
            break;
        }
        cr_assert_eq(used, n, "RESP_MORE must consume its whole input");
    }
    return rc;
}

static void check_request(const struct resp_parser *p, const struct expect *e)
{
    cr_assert_eq(p->len, e->len, "len of %s", e->bytes);
    cr_assert_eq(p->argc, e->argc, "argc of %s", e->bytes);
    if (!e->argc) return;
    cr_assert_str_eq(p->name, e->name);
    cr_assert_eq(p->name_len, strlen(e->name));
    cr_assert_eq(p->arg1_len, strlen(e->arg1), "arg1_len of %s", e->bytes);
    cr_assert_eq(memcmp(p->arg1, e->arg1, p->arg1_len), 0);
    /* The first argument is where key_off says, in the bytes that will be sent. */
    const char *sent = p->inl ? p->inl : e->bytes;
    if (e->argc > 1) cr_assert_eq(memcmp(sent + p->key_off, e->arg1, p->arg1_len), 0);
}

static void frame_every_way(const struct expect *corpus, size_t n, enum resp_kind kind)
{
    for (size_t i = 0; i < n; i++) {
        const struct expect *e = &corpus[i];
        for (size_t split = 0; split <= e->len; split++) {
            for (size_t step = 0; step <= 1; step++) {
                struct resp_parser p;
                size_t done_at;
                resp_init(&p, kind, RESP_MAX_BULK_DEFAULT);
                int rc = feed(&p, e, split, step, &done_at);
                cr_assert_eq(rc, RESP_DONE, "message %zu split at %zu step %zu: rc %d (%s)", i,
                             split, step, rc, p.err ? p.err : "");
                cr_assert_eq(done_at, e->len);
                if (kind == RESP_REQUEST)
                    check_request(&p, e);
                else
                    cr_assert_eq(p.len, e->len);
                resp_deinit(&p);
            }
        }
    }
}

Test(framer, every_request_frames_at_every_split_point_and_byte_by_byte)
{
    frame_every_way(requests, sizeof(requests) / sizeof(requests[0]), RESP_REQUEST);
}

Test(framer, every_reply_type_frames_at_every_split_point_and_byte_by_byte)
{
    frame_every_way(replies, sizeof(replies) / sizeof(replies[0]), RESP_REPLY);
}

Test(framer, inline_commands_are_reencoded_as_multibulk)
{
    struct resp_parser p;
    size_t used;
    const char *line = "SET k \"a b\"\r\n";
    resp_init(&p, RESP_REQUEST, RESP_MAX_BULK_DEFAULT);
    cr_assert_eq(resp_feed(&p, line, strlen(line), &used), RESP_DONE);
    const char *want = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\na b\r\n";
    cr_assert_eq(p.inl_len, strlen(want));
    cr_assert_eq(memcmp(p.inl, want, p.inl_len), 0);
    resp_deinit(&p);
}

Test(framer, back_to_back_messages_are_framed_one_at_a_time)
{
    struct resp_parser p;
    size_t used;
    const char *two = "*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nx\r\n";
    resp_init(&p, RESP_REQUEST, RESP_MAX_BULK_DEFAULT);
    cr_assert_eq(resp_feed(&p, two, strlen(two), &used), RESP_DONE);
    cr_assert_eq(used, 14);
    cr_assert_str_eq(p.name, "ping");
    resp_reset(&p);
    cr_assert_eq(resp_feed(&p, two + used, strlen(two) - used, &used), RESP_DONE);
    cr_assert_str_eq(p.name, "get");
    cr_assert_str_eq(p.arg1, "x");
    resp_deinit(&p);
}

Test(framer, a_512_mb_bulk_header_is_valid_and_its_payload_is_skipped_not_scanned)
{
    struct resp_parser p;
    size_t used;
    const char *hdr = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\n";
    resp_init(&p, RESP_REQUEST, RESP_MAX_BULK_DEFAULT);
    cr_assert_eq(resp_feed(&p, hdr, strlen(hdr), &used), RESP_MORE);
    cr_assert_eq(resp_skippable(&p), 536870912ULL);
    resp_skip(&p, 536870912ULL);
    cr_assert_eq(resp_skippable(&p), 0);
    cr_assert_eq(resp_feed(&p, "\r\n", 2, &used), RESP_DONE);
    cr_assert_eq(p.len, strlen(hdr) + 536870912ULL + 2);
    resp_deinit(&p);

    resp_init(&p, RESP_REQUEST, RESP_MAX_BULK_DEFAULT);
    const char *over = "*2\r\n$3\r\nGET\r\n$536870913\r\n";
    cr_assert_eq(resp_feed(&p, over, strlen(over), &used), RESP_EPROTO);
    resp_deinit(&p);
}

Test(framer, deep_reply_nesting_costs_no_stack)
{
    static char deep[200000 * 4 + 8];
    size_t n = 0, used;
    for (int i = 0; i < 200000; i++)
        n += (size_t)sprintf(deep + n, "*1\r\n");
    n += (size_t)sprintf(deep + n, ":1\r\n");
    struct resp_parser p;
    resp_init(&p, RESP_REPLY, 0);
    cr_assert_eq(resp_feed(&p, deep, n, &used), RESP_DONE);
    cr_assert_eq(used, n);
    resp_deinit(&p);
}

/* A refused request: Redis' error (what follows "-ERR Protocol error: "), given at
 * the request's last byte and not before: every bad request below is written so
 * that its last byte is the one that makes Redis refuse it. */
struct bad {
    const char *name;
    const char *bytes;
    size_t len;
    const char *err;
    int http;
};
#define BAD(name, b, err, http)                                                                    \
    {                                                                                              \
        name, b, sizeof(b) - 1, err, http                                                          \
    }

#define MBULK "invalid multibulk length"
#define BULK "invalid bulk length"
#define TAINT "CR without LF ending a length line"
#define QUOTES "unbalanced quotes in request"
#define HTTP "cross-protocol request (HTTP)"

static const struct bad bad_requests[] = {
    /* string2ll refuses the count */
    BAD("count with a leading zero", "*01\r\n", MBULK, 0),
    BAD("count of two zeros", "*00\r\n", MBULK, 0),
    BAD("count -0", "*-0\r\n", MBULK, 0),
    BAD("count with a plus sign", "*+1\r\n", MBULK, 0),
    BAD("count after a space", "* 1\r\n", MBULK, 0),
    BAD("count before a space", "*1 \r\n", MBULK, 0),
    BAD("empty count", "*\r\n", MBULK, 0),
    BAD("count of a lone minus", "*-\r\n", MBULK, 0),
    BAD("count with garbage", "*1x\r\n", MBULK, 0),
    BAD("count over LLONG_MAX", "*9223372036854775808\r\n", MBULK, 0),
    BAD("count under LLONG_MIN", "*-9223372036854775809\r\n", MBULK, 0),
    BAD("count of 21 characters", "*000000000000000000001\r\n", MBULK, 0),
    BAD("count over INT_MAX", "*2147483648\r\n", MBULK, 0),
    BAD("count line ending in a bare LF", "*1\n$4\r\n", MBULK, 0),
    /* the bulk line */
    BAD("bulk length with a leading zero", "*1\r\n$04\r\n", BULK, 0),
    BAD("bulk length -0", "*1\r\n$-0\r\n", BULK, 0),
    BAD("negative bulk length", "*1\r\n$-1\r\n", BULK, 0),
    BAD("bulk length with a plus sign", "*1\r\n$+4\r\n", BULK, 0),
    BAD("empty bulk length", "*1\r\n$\r\n", BULK, 0),
    BAD("bulk length over proto-max-bulk-len", "*1\r\n$536870913\r\n", BULK, 0),
    BAD("bulk length overflowing 64 bits", "*1\r\n$99999999999999999999999\r\n", BULK, 0),
    BAD("bulk line ending in a bare LF", "*1\r\n$4\nPING\r\n", BULK, 0),
    BAD("second bulk length bad", "*2\r\n$4\r\nECHO\r\n$1x\r\n", BULK, 0),
    BAD("type byte is not $", "*1\r\n:1\r\n", "expected '$', got ':'", 0),
    BAD("nested multibulk", "*1\r\n*1\r\n", "expected '$', got '*'", 0),
    BAD("empty bulk line", "*1\r\n\r\n", "expected '$', got ' '", 0),
    BAD("bulk line of a bare LF", "*1\r\n\n\r\n", "expected '$', got ' '", 0),
    BAD("type byte not printable",
        "*1\r\n\xff"
        "4\r\n",
        "expected '$', got '\xff'", 0),
    BAD("type byte checked before the length", "*1\r\n:x\r\n", "expected '$', got ':'", 0),
    /* respgate's one rule beyond Redis: CR then another byte, refused when the command
     * is complete; an error Redis gives before then comes first */
    BAD("count line ending in CR X", "*1\rX$4\r\nPING\r\n", TAINT, 0),
    BAD("bulk line ending in CR X", "*1\r\n$4\rXPING\r\n", TAINT, 0),
    BAD("CR X, then a bad bulk length", "*2\rX$4\r\nPING\r\n$04\r\n", BULK, 0),
    /* commands Redis closes the connection for, answering nothing */
    BAD("multibulk POST", "*1\r\n$4\r\nPOST\r\n", HTTP, 1),
    BAD("multibulk Host:", "*2\r\n$5\r\nHost:\r\n$1\r\nx\r\n", HTTP, 1),
    BAD("multibulk POST up to a NUL", "*1\r\n$6\r\npost\0x\r\n", HTTP, 1),
    BAD("POST on a line ending in CR X", "*1\rX$4\r\nPOST\r\n", HTTP, 1),
    BAD("inline post", "post\r\n", HTTP, 1),
    BAD("inline POST with arguments", "PoSt /x y\n", HTTP, 1),
    BAD("HTTP GET", "GET / HTTP/1.1\r\n", HTTP, 1),
    BAD("HTTP POST", "POST /x HTTP/1.0\r\n", HTTP, 1),
    BAD("HTTP Host header", "Host: example\r\n", HTTP, 1),
    /* sdssplitargs fails */
    BAD("unbalanced double quotes", "SET k \"abc\r\n", QUOTES, 0),
    BAD("unbalanced single quotes", "SET k 'abc\n", QUOTES, 0),
    BAD("an escaped closing quote", "SET k \"abc\\\"\r\n", QUOTES, 0),
    BAD("closing quote not followed by a space", "SET k \"a\"b\r\n", QUOTES, 0),
    BAD("closing single quote not followed by a space", "SET k 'a'b\r\n", QUOTES, 0),
    BAD("quote opened inside an argument", "SET k a\"b\r\n", QUOTES, 0),
};

/* Feeds b in two pieces cut at split, or one byte at a time (split == SIZE_MAX).
 * Returns the status; *off is how many bytes were consumed by then. */
static int feed_bad(struct resp_parser *p, const struct bad *b, size_t split, size_t *off)
{
    int rc = RESP_MORE;
    *off = 0;
    while (*off < b->len && rc == RESP_MORE) {
        size_t n = split == SIZE_MAX ? 1 : *off < split ? split - *off : b->len - *off;
        size_t used;
        rc = resp_feed(p, b->bytes + *off, n, &used);
        if (rc == RESP_MORE) cr_assert_eq(used, n, "RESP_MORE must consume its whole input");
        *off += used;
    }
    return rc;
}

Test(framer, every_refused_request_gets_redis_error_at_its_last_byte_at_every_split_point)
{
    for (size_t i = 0; i < sizeof(bad_requests) / sizeof(bad_requests[0]); i++) {
        const struct bad *b = &bad_requests[i];
        for (size_t split = 0; split <= b->len + 1; split++) {
            size_t cut = split == b->len + 1 ? SIZE_MAX : split, off;
            struct resp_parser p;
            resp_init(&p, RESP_REQUEST, RESP_MAX_BULK_DEFAULT);
            int rc = feed_bad(&p, b, cut, &off);
            cr_assert_eq(rc, RESP_EPROTO, "%s (split %zu): rc %d", b->name, split, rc);
            cr_assert_eq(off, b->len, "%s (split %zu): refused at byte %zu of %zu", b->name, split,
                         off, b->len);
            cr_assert_str_eq(p.err, b->err, "%s", b->name);
            cr_assert_eq(p.http, b->http, "%s", b->name);
            resp_deinit(&p);
        }
    }
}

/* Feeds s whole; returns the status. */
static int feed_str(struct resp_parser *p, const char *s, size_t n)
{
    size_t used;
    return resp_feed(p, s, n, &used);
}
#define FEED(p, lit) feed_str(p, lit, sizeof(lit) - 1)

static void init(struct resp_parser *p)
{
    resp_init(p, RESP_REQUEST, RESP_MAX_BULK_DEFAULT);
}

Test(framer, a_length_with_a_leading_zero_is_refused_as_redis_does)
{
    struct resp_parser p;
    init(&p);
    cr_assert_eq(FEED(&p, "*1\r\n$04\r\nPING\r\n"), RESP_EPROTO);
    cr_assert_str_eq(p.err, "invalid bulk length");
    resp_deinit(&p);
    init(&p);
    cr_assert_eq(FEED(&p, "*01\r\n$4\r\nPING\r\n"), RESP_EPROTO);
    cr_assert_str_eq(p.err, "invalid multibulk length");
    resp_deinit(&p);
}

Test(framer, a_lone_zero_is_a_length)
{
    struct resp_parser p;
    init(&p);
    cr_assert_eq(FEED(&p, "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n"), RESP_DONE);
    cr_assert_eq(p.argc, 2);
    cr_assert_eq(p.arg1_len, 0);
    resp_deinit(&p);
}

Test(framer, a_count_of_zero_or_less_is_an_empty_command)
{
    const char *counts[] = {"*0\r\n", "*-1\r\n", "*-5\r\n", "*-9223372036854775808\r\n"};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        struct resp_parser p;
        init(&p);
        cr_assert_eq(feed_str(&p, counts[i], strlen(counts[i])), RESP_DONE, "%s", counts[i]);
        cr_assert_eq(p.argc, 0);
        cr_assert_eq(p.len, strlen(counts[i]));
        resp_deinit(&p);
    }
}

Test(framer, a_count_of_int_max_is_taken_and_one_more_refused)
{
    struct resp_parser p;
    init(&p);
    cr_assert_eq(FEED(&p, "*2147483647\r\n"), RESP_MORE);
    resp_deinit(&p);
    init(&p);
    cr_assert_eq(FEED(&p, "*2147483648\r\n"), RESP_EPROTO);
    resp_deinit(&p);
}

Test(framer, the_bulk_length_is_bounded_by_max_bulk)
{
    struct resp_parser p;
    resp_init(&p, RESP_REQUEST, 100);
    cr_assert_eq(FEED(&p, "*2\r\n$4\r\nECHO\r\n$100\r\n"), RESP_MORE);
    resp_deinit(&p);
    resp_init(&p, RESP_REQUEST, 100);
    cr_assert_eq(FEED(&p, "*2\r\n$4\r\nECHO\r\n$101\r\n"), RESP_EPROTO);
    cr_assert_str_eq(p.err, "invalid bulk length");
    resp_deinit(&p);
}

Test(framer, a_length_line_is_judged_only_once_its_cr_and_one_more_byte_are_in)
{
    /* Redis looks for the CR, then needs one byte after it, before reading the line. */
    struct resp_parser p;
    init(&p);
    cr_assert_eq(FEED(&p, "*1\r\n:1"), RESP_MORE);
    cr_assert_eq(FEED(&p, "\r"), RESP_MORE);
    cr_assert_eq(FEED(&p, "\n"), RESP_EPROTO);
    cr_assert_str_eq(p.err, "expected '$', got ':'");
    resp_deinit(&p);
}

Test(framer, a_bare_lf_does_not_end_a_length_line)
{
    struct resp_parser p;
    init(&p);
    cr_assert_eq(FEED(&p, "*1\n"), RESP_MORE); /* Redis waits for a CR */
    cr_assert_eq(FEED(&p, "$4\n"), RESP_MORE);
    cr_assert_eq(FEED(&p, "\r\n"), RESP_EPROTO);
    cr_assert_str_eq(p.err, "invalid multibulk length");
    resp_deinit(&p);
}

Test(framer, the_two_bytes_after_a_payload_are_skipped_unread)
{
    struct resp_parser p;
    init(&p);
    cr_assert_eq(FEED(&p, "*2\r\n$3\r\nGET\r\n$1\r\nkXY*1\r\n"), RESP_DONE);
    cr_assert_eq(p.len, 20, "the message ends after the two bytes, whatever they are");
    cr_assert_str_eq(p.arg1, "k");
    resp_deinit(&p);
}

Test(framer, a_length_line_ending_in_cr_and_another_byte_is_refused_when_the_command_ends)
{
    struct resp_parser p;
    size_t used;
    const char *req = "*1\rX$4\r\nPING\r\n";
    init(&p);
    cr_assert_eq(resp_feed(&p, req, strlen(req) - 1, &used), RESP_MORE);
    cr_assert_eq(resp_feed(&p, req + strlen(req) - 1, 1, &used), RESP_EPROTO);
    cr_assert_str_eq(p.err, "CR without LF ending a length line");
    cr_assert_eq(p.http, 0);
    resp_deinit(&p);
}

Test(framer, an_empty_command_may_end_in_cr_and_another_byte)
{
    struct resp_parser p;
    init(&p);
    cr_assert_eq(FEED(&p, "*0\r*"), RESP_DONE);
    cr_assert_eq(p.argc, 0);
    cr_assert_eq(p.len, 4);
    resp_deinit(&p);
}

/* Feeds n bytes of c one call at a time in chunks of `chunk`; returns the status. */
static int feed_fill(struct resp_parser *p, char c, size_t n, size_t chunk, size_t *fed)
{
    static char buf[4096];
    memset(buf, c, sizeof(buf));
    int rc = RESP_MORE;
    *fed = 0;
    while (*fed < n && rc == RESP_MORE) {
        size_t k = n - *fed < chunk ? n - *fed : chunk, used;
        rc = resp_feed(p, buf, k, &used);
        *fed += used;
    }
    return rc;
}

Test(framer, a_count_line_with_no_cr_in_over_64_kb_is_too_big)
{
    struct resp_parser p;
    size_t fed;
    init(&p);
    cr_assert_eq(FEED(&p, "*"), RESP_MORE);
    /* "*" and 65535 digits: 64 KiB, Redis still waits for the CR */
    cr_assert_eq(feed_fill(&p, '1', RESP_INLINE_MAX - 1, 4096, &fed), RESP_MORE);
    cr_assert_eq(FEED(&p, "1"), RESP_EPROTO);
    cr_assert_str_eq(p.err, "too big mbulk count string");
    resp_deinit(&p);
}

Test(framer, a_bulk_line_with_no_cr_in_over_64_kb_is_too_big)
{
    struct resp_parser p;
    size_t fed;
    init(&p);
    cr_assert_eq(FEED(&p, "*1\r\n$"), RESP_MORE);
    cr_assert_eq(feed_fill(&p, '1', RESP_INLINE_MAX - 1, 4096, &fed), RESP_MORE);
    cr_assert_eq(FEED(&p, "1"), RESP_EPROTO);
    cr_assert_str_eq(p.err, "too big bulk count string");
    resp_deinit(&p);
}

/* Redis finds the end of a line with strchr(), which stops at a NUL: a NUL before
 * the CR (or an inline line's LF) hides the end for good. Redis waits, then refuses
 * once more than 64 KiB are buffered from the start of that line. */
static void nul_hides_the_end(const char *start, size_t start_len, const char *err, size_t chunk)
{
    struct resp_parser p;
    size_t used, fed;
    init(&p);
    cr_assert_eq(resp_feed(&p, start, start_len, &used), RESP_MORE, "%s", err);
    cr_assert_eq(used, start_len);
    /* A well-formed command after it changes nothing: it is more of the same line. */
    cr_assert_eq(FEED(&p, "\r\n*1\r\n$4\r\nPING\r\n"), RESP_MORE, "%s", err);
    size_t line = p.len - (strchr(start, '\n') && start[0] == '*' ? 4 : 0);
    cr_assert_eq(feed_fill(&p, 'a', RESP_INLINE_MAX - line, chunk, &fed), RESP_MORE, "%s", err);
    cr_assert_eq(FEED(&p, "a"), RESP_EPROTO, "%s", err);
    cr_assert_str_eq(p.err, err);
    resp_deinit(&p);
}

Test(framer, a_nul_in_the_count_line_hides_its_end_until_64_kb)
{
    nul_hides_the_end("*1\0", 3, "too big mbulk count string", 4096);
    nul_hides_the_end("*1\0", 3, "too big mbulk count string", 1);
}

Test(framer, a_nul_in_a_bulk_line_hides_its_end_until_64_kb)
{
    nul_hides_the_end("*1\r\n$4\0", 7, "too big bulk count string", 4096);
    nul_hides_the_end("*1\r\n\0", 5, "too big bulk count string", 4096);
}

Test(framer, a_nul_in_an_inline_line_hides_its_end_until_64_kb)
{
    nul_hides_the_end("PI\0NG", 5, "too big inline request", 4096);
    nul_hides_the_end("\0", 1, "too big inline request", 777);
}

Test(framer, a_nul_after_the_end_of_a_line_is_payload)
{
    struct resp_parser p;
    init(&p);
    cr_assert_eq(FEED(&p, "*2\r\n$4\r\nECHO\r\n$3\r\n\0\0\0\r\n"), RESP_DONE);
    cr_assert_eq(p.arg1_len, 3);
    resp_deinit(&p);
    init(&p);
    cr_assert_eq(FEED(&p, "*1\r\0$4\r\nPING\r\n"), RESP_EPROTO); /* the byte after CR */
    cr_assert_str_eq(p.err, "CR without LF ending a length line");
    resp_deinit(&p);
}

Test(framer, an_inline_line_of_64_kb_before_its_lf_is_taken_and_one_byte_more_refused)
{
    static char line[RESP_INLINE_MAX + 2];
    memset(line, 'a', sizeof(line));
    memcpy(line, "ECHO ", 5);
    struct resp_parser p;
    size_t used;
    line[RESP_INLINE_MAX] = '\n';
    init(&p);
    cr_assert_eq(resp_feed(&p, line, RESP_INLINE_MAX + 1, &used), RESP_DONE);
    cr_assert_eq(p.arg1_len, RESP_INLINE_MAX - 5);
    resp_deinit(&p);
    /* 64 KiB and a CR before the LF: Redis may have read the CR alone, with no LF. */
    line[RESP_INLINE_MAX] = '\r';
    line[RESP_INLINE_MAX + 1] = '\n';
    init(&p);
    cr_assert_eq(resp_feed(&p, line, RESP_INLINE_MAX + 2, &used), RESP_EPROTO);
    cr_assert_str_eq(p.err, "too big inline request");
    resp_deinit(&p);
}

Test(framer, an_inline_quote_opens_inside_an_argument)
{
    struct resp_parser p;
    init(&p);
    cr_assert_eq(FEED(&p, "SET k a\"b c\"\r\n"), RESP_DONE);
    const char *want = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\nab c\r\n";
    cr_assert_eq(p.inl_len, strlen(want));
    cr_assert_eq(memcmp(p.inl, want, p.inl_len), 0);
    resp_deinit(&p);
}

Test(framer, an_inline_vertical_tab_or_form_feed_is_part_of_an_argument)
{
    struct resp_parser p;
    init(&p);
    cr_assert_eq(FEED(&p, "SET k a\vb\fc\r\n"), RESP_DONE);
    const char *want = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\na\vb\fc\r\n";
    cr_assert_eq(p.inl_len, strlen(want));
    cr_assert_eq(memcmp(p.inl, want, p.inl_len), 0);
    resp_deinit(&p);
}

Test(framer, an_inline_hex_escape_may_make_a_nul)
{
    struct resp_parser p;
    init(&p);
    cr_assert_eq(FEED(&p, "ECHO \"a\\x00b\"\r\n"), RESP_DONE);
    const char *want = "*2\r\n$4\r\nECHO\r\n$3\r\na\0b\r\n";
    cr_assert_eq(p.inl_len, 23);
    cr_assert_eq(memcmp(p.inl, want, p.inl_len), 0);
    resp_deinit(&p);
    init(&p);
    cr_assert_eq(FEED(&p, "\"post\\x00x\"\r\n"), RESP_EPROTO); /* strcasecmp stops there */
    cr_assert_eq(p.http, 1);
    resp_deinit(&p);
}

Test(framer, a_command_named_post_or_host_is_closed_without_a_reply)
{
    struct resp_parser p;
    init(&p);
    cr_assert_eq(FEED(&p, "*1\r\n$4\r\nPOST\r\n"), RESP_EPROTO);
    cr_assert_eq(p.http, 1);
    resp_deinit(&p);
    init(&p);
    cr_assert_eq(FEED(&p, "  hOsT: x\r\n"), RESP_EPROTO);
    cr_assert_eq(p.http, 1);
    resp_deinit(&p);
}

Test(framer, a_refused_request_is_refused_the_same_at_every_split_point_byte_by_byte_too)
{
    /* The same as every_refused_request..., for requests long enough to cross
     * several lines and payloads: refused at the same byte, with the same error. */
    static const struct bad longer[] = {
        BAD("third argument", "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$05\r\n", BULK, 0),
        BAD("count of a pipeline's second command", "*1\r\n$4\r\nPINGxx*01\r\n", MBULK, 0),
        BAD("taint in the third line", "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\rxvalue\r\n", TAINT, 0),
    };
    for (size_t i = 0; i < sizeof(longer) / sizeof(longer[0]); i++) {
        for (size_t split = 0; split <= longer[i].len + 1; split++) {
            struct resp_parser p;
            size_t off, used;
            init(&p);
            /* The pipeline: its first command frames, the second is refused. */
            int rc = feed_bad(&p, &longer[i], split == longer[i].len + 1 ? SIZE_MAX : split, &off);
            if (rc == RESP_DONE) {
                cr_assert_eq(p.len, 14);
                resp_reset(&p);
                rc = RESP_MORE;
                while (off < longer[i].len && rc == RESP_MORE) {
                    rc = resp_feed(&p, longer[i].bytes + off, 1, &used);
                    off += used;
                }
            }
            cr_assert_eq(rc, RESP_EPROTO, "%s split %zu", longer[i].name, split);
            cr_assert_eq(off, longer[i].len);
            cr_assert_str_eq(p.err, longer[i].err);
            resp_deinit(&p);
        }
    }
}

Test(framer, an_inline_command_named_get_is_not_mistaken_for_http)
{
    struct resp_parser p;
    size_t used;
    resp_init(&p, RESP_REQUEST, RESP_MAX_BULK_DEFAULT);
    cr_assert_eq(resp_feed(&p, "GET key\r\n", 9, &used), RESP_DONE);
    cr_assert_eq(p.http, 0);
    resp_deinit(&p);
}

Test(framer, an_inline_line_over_64_kb_is_rejected)
{
    static char line[RESP_INLINE_MAX + 10];
    memset(line, 'a', sizeof(line));
    struct resp_parser p;
    size_t used;
    resp_init(&p, RESP_REQUEST, RESP_MAX_BULK_DEFAULT);
    cr_assert_eq(resp_feed(&p, line, sizeof(line), &used), RESP_EPROTO);
    cr_assert_str_eq(p.err, "too big inline request");
    resp_deinit(&p);
}

Test(framer, a_reply_with_an_unknown_type_byte_is_rejected)
{
    struct resp_parser p;
    size_t used;
    resp_init(&p, RESP_REPLY, 0);
    cr_assert_eq(resp_feed(&p, "@x\r\n", 4, &used), RESP_EPROTO);
    resp_deinit(&p);
    resp_init(&p, RESP_REPLY, 0);
    cr_assert_eq(resp_feed(&p, "$-2\r\n", 5, &used), RESP_EPROTO);
    resp_deinit(&p);
}
