/* The RESP framer, byte by byte: every message of a corpus framed whole, split at
 * every point, and fed one byte at a time; every malformed case rejected. */
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

struct bad {
    const char *name;
    const char *bytes;
    size_t len;
    int http;
};
#define BAD(name, b, http)                                                                         \
    {                                                                                              \
        name, b, sizeof(b) - 1, http                                                               \
    }

static const struct bad bad_requests[] = {
    BAD("type byte is not $", "*1\r\n:1\r\n", 0),
    BAD("negative bulk length", "*1\r\n$-1\r\n", 0),
    BAD("bulk length over the limit", "*1\r\n$536870913\r\n", 0),
    BAD("bulk length overflowing 64 bits", "*1\r\n$99999999999999999999999\r\n", 0),
    BAD("multibulk count over the limit", "*2147483648\r\n", 0),
    BAD("count with garbage", "*1x\r\n", 0),
    BAD("count ending in a bare LF", "*1\n", 0),
    BAD("empty count", "*\r\n", 0),
    BAD("missing CRLF after bulk data", "*1\r\n$3\r\nfooXY", 0),
    BAD("unbalanced double quotes", "SET k \"abc\r\n", 0),
    BAD("closing quote not followed by a space", "SET k \"a\"b\r\n", 0),
    BAD("HTTP GET", "GET / HTTP/1.1\r\n", 1),
    BAD("HTTP POST", "POST /x HTTP/1.0\r\n", 1),
    BAD("HTTP Host header", "Host: example\r\n", 1),
};

Test(framer, every_malformed_request_is_a_protocol_error_at_every_split_point)
{
    for (size_t i = 0; i < sizeof(bad_requests) / sizeof(bad_requests[0]); i++) {
        const struct bad *b = &bad_requests[i];
        for (size_t split = 0; split <= b->len; split++) {
            struct resp_parser p;
            size_t used, off = 0;
            int rc = RESP_MORE;
            resp_init(&p, RESP_REQUEST, RESP_MAX_BULK_DEFAULT);
            while (off < b->len && rc == RESP_MORE) {
                size_t n = off < split ? split - off : b->len - off;
                rc = resp_feed(&p, b->bytes + off, n, &used);
                off += used;
            }
            cr_assert_eq(rc, RESP_EPROTO, "%s (split %zu): rc %d", b->name, split, rc);
            cr_assert_not_null(p.err, "%s", b->name);
            cr_assert_eq(p.http, b->http, "%s", b->name);
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
