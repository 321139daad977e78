/* The body shared by fuzz_request_framer.c and fuzz_reply_framer.c: the input is a
 * byte stream of back-to-back messages, framed four ways that must agree message
 * for message (status, length, command name, first argument...):
 *
 *   1. whole: resp_feed() over everything that is left, the reference;
 *   2. byte by byte;
 *   3. in chunks cut at pseudo-random points (seeded from the input's hash);
 *   4. through frame_next() over an evbuffer that receives the stream in
 *      pseudo-random segments (each its own chain, so evbuffer_peek returns many
 *      vectors and the bulk fast path resp_skip() is taken), as client.c and
 *      upstream.c use it.
 *
 * Invariants checked on every call: a framed length never exceeds the bytes
 * available, RESP_MORE consumes all that it was given, RESP_DONE makes progress,
 * an error carries a message, and whatever the split, the same messages come out.
 * The including file defines FRAMER_KIND, FRAMER_MAX_BULK and
 * check_message(), which checks one message against an independent reference. */
#ifndef RG_FUZZ_FRAMER_DRIVER_H
#define RG_FUZZ_FRAMER_DRIVER_H

#include <event2/buffer.h>
#include <string.h>

#include "frame.h"
#include "fuzz_common.h"
#include "resp.h"

struct framed {
    int rc;
    size_t len;
    long long argc;
    size_t name_len, arg1_len, key_off, inl_len;
    char name[RESP_NAME_MAX + 1];
    char arg1[RESP_ARG1_MAX + 1];
    char type;
    int http;
    uint64_t inl_hash;
    char err[64];
};

static uint64_t fnv1a(const void *data, size_t n)
{
    const uint8_t *b = data;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static void record(struct framed *f, const struct resp_parser *p, int rc)
{
    memset(f, 0, sizeof(*f));
    f->rc = rc;
    if (rc == RESP_EPROTO) {
        CHECK(p->err != NULL && p->err[0] != '\0', "a protocol error without a message");
        snprintf(f->err, sizeof(f->err), "%s", p->err);
        f->http = p->http;
        return;
    }
    if (rc != RESP_DONE) return;
    f->len = p->len;
    f->argc = p->argc;
    f->name_len = p->name_len;
    f->arg1_len = p->arg1_len;
    f->key_off = p->key_off;
    f->type = p->type;
    f->http = p->http;
    /* name and arg1 are NUL-terminated within their arrays, whatever was sent. */
    size_t nm = p->name_len < RESP_NAME_MAX ? p->name_len : RESP_NAME_MAX;
    CHECK(p->name[nm] == '\0', "name is not terminated at min(name_len, %d)", RESP_NAME_MAX);
    memcpy(f->name, p->name, sizeof(f->name));
    size_t a1 = p->arg1_len < RESP_ARG1_MAX ? p->arg1_len : RESP_ARG1_MAX;
    CHECK(p->arg1[a1] == '\0', "arg1 is not terminated at min(arg1_len, %d)", RESP_ARG1_MAX);
    memcpy(f->arg1, p->arg1, a1);
    if (p->inl) {
        f->inl_len = p->inl_len;
        f->inl_hash = fnv1a(p->inl, p->inl_len);
    }
}

static void same(const struct framed *a, const struct framed *b, const char *mode, size_t idx)
{
    CHECK(a->rc == b->rc, "%s, message %zu: status %d, whole-buffer framing says %d", mode, idx,
          b->rc, a->rc);
    if (a->rc == RESP_EPROTO) {
        CHECK(strcmp(a->err, b->err) == 0, "%s, message %zu: error '%s' vs '%s'", mode, idx, b->err,
              a->err);
        CHECK(a->http == b->http, "%s, message %zu: http flag", mode, idx);
        return;
    }
    if (a->rc != RESP_DONE) return;
    CHECK(a->len == b->len, "%s, message %zu: len %zu vs %zu", mode, idx, b->len, a->len);
    CHECK(a->argc == b->argc, "%s, message %zu: argc %lld vs %lld", mode, idx, b->argc, a->argc);
    CHECK(a->type == b->type, "%s, message %zu: type", mode, idx);
    CHECK(a->name_len == b->name_len && strcmp(a->name, b->name) == 0,
          "%s, message %zu: name '%s' vs '%s'", mode, idx, b->name, a->name);
    CHECK(a->arg1_len == b->arg1_len && memcmp(a->arg1, b->arg1, sizeof(a->arg1)) == 0,
          "%s, message %zu: arg1", mode, idx);
    CHECK(a->key_off == b->key_off, "%s, message %zu: key_off %zu vs %zu", mode, idx, b->key_off,
          a->key_off);
    CHECK(a->inl_len == b->inl_len && a->inl_hash == b->inl_hash,
          "%s, message %zu: inline re-encoding differs", mode, idx);
}

/* Mode 1, the reference: every message framed from one contiguous buffer. */
static size_t frame_whole(const uint8_t *data, size_t size, struct framed *out)
{
    struct resp_parser p;
    resp_init(&p, FRAMER_KIND, FRAMER_MAX_BULK);
    size_t off = 0, k = 0;
    for (;;) {
        size_t used = (size_t)-1;
        int rc = resp_feed(&p, (const char *)data + off, size - off, &used);
        CHECK(used <= size - off, "used %zu of %zu", used, size - off);
        CHECK(rc == RESP_DONE || rc == RESP_MORE || rc == RESP_EPROTO, "status %d", rc);
        if (rc == RESP_MORE)
            CHECK(used == size - off, "RESP_MORE left %zu bytes", size - off - used);
        if (rc == RESP_DONE) {
            CHECK(used > 0, "RESP_DONE without progress");
            CHECK(p.len == used, "len %zu but %zu bytes consumed", p.len, used);
        }
        check_message(data + off, size - off, &p, rc, used);
        record(&out[k++], &p, rc);
        off += used;
        if (rc != RESP_DONE || off == size) break;
        resp_reset(&p);
    }
    resp_deinit(&p);
    return k;
}

/* Modes 2 and 3: resp_feed() over chunks; step 1 is byte by byte, 0 is random. */
static void frame_chunked(const uint8_t *data, size_t size, const struct framed *want, size_t nwant,
                          size_t step, struct rng *r)
{
    const char *mode = step ? "byte by byte" : "random chunks";
    struct resp_parser p;
    resp_init(&p, FRAMER_KIND, FRAMER_MAX_BULK);
    size_t off = 0, k = 0, msg_start = 0;
    int rc = RESP_MORE;
    while (off < size) {
        size_t n = step ? step : rng_chunk(r, size - off);
        if (n > size - off) n = size - off;
        size_t used = (size_t)-1;
        size_t before = p.len;
        rc = resp_feed(&p, (const char *)data + off, n, &used);
        CHECK(used <= n, "%s: used %zu of %zu", mode, used, n);
        off += used;
        if (rc == RESP_MORE) {
            CHECK(used == n, "%s: RESP_MORE consumed %zu of %zu", mode, used, n);
            CHECK(p.len == before + n, "%s: len does not count what was fed", mode);
            continue;
        }
        struct framed f;
        record(&f, &p, rc);
        CHECK(k < nwant, "%s: more messages than the whole-buffer framing", mode);
        same(&want[k], &f, mode, k);
        k++;
        if (rc != RESP_DONE) break;
        CHECK(p.len == off - msg_start, "%s: len %zu, fed %zu", mode, p.len, off - msg_start);
        msg_start = off;
        resp_reset(&p);
    }
    if (rc != RESP_EPROTO && k < nwant) { /* the stream ended inside a message, or on a boundary */
        CHECK(k + 1 == nwant && want[k].rc == RESP_MORE, "%s: %zu messages, expected %zu", mode, k,
              nwant);
    }
    resp_deinit(&p);
}

/* Mode 4: frame_next() over an evbuffer filled a few segments at a time. */
static void frame_evbuffer(const uint8_t *data, size_t size, const struct framed *want,
                           size_t nwant, struct rng *r)
{
    const char *mode = "frame_next";
    struct evbuffer *buf = evbuffer_new();
    CHECK(buf != NULL, "evbuffer_new");
    struct resp_parser p;
    resp_init(&p, FRAMER_KIND, FRAMER_MAX_BULK);
    size_t added = 0, scanned = 0, k = 0;
    int rc = RESP_MORE;
    while (added < size && rc != RESP_EPROTO) {
        /* One to four segments arrive, each its own chain. */
        for (int s = (int)(rng_next(r) & 3); s >= 0 && added < size; s--) {
            size_t n = rng_chunk(r, size - added);
            CHECK(evbuffer_add_reference(buf, data + added, n, NULL, NULL) == 0, "add_reference");
            added += n;
        }
        for (;;) {
            size_t total = evbuffer_get_length(buf);
            rc = frame_next(&p, buf, &scanned);
            CHECK(scanned <= total, "%s: scanned %zu of %zu", mode, scanned, total);
            if (rc == RESP_MORE) {
                CHECK(scanned == total, "%s: RESP_MORE with %zu of %zu scanned", mode, scanned,
                      total);
                break;
            }
            struct framed f;
            record(&f, &p, rc);
            CHECK(k < nwant, "%s: more messages than the whole-buffer framing", mode);
            same(&want[k], &f, mode, k);
            k++;
            if (rc != RESP_DONE) break;
            CHECK(p.len <= total, "%s: framed %zu bytes of %zu", mode, p.len, total);
            CHECK(scanned == p.len, "%s: scanned %zu, len %zu", mode, scanned, p.len);
            CHECK(evbuffer_drain(buf, p.len) == 0, "drain");
            scanned = 0;
            resp_reset(&p);
        }
    }
    if (rc != RESP_EPROTO && k < nwant) {
        CHECK(k + 1 == nwant && want[k].rc == RESP_MORE, "%s: %zu messages, expected %zu", mode, k,
              nwant);
    }
    resp_deinit(&p);
    evbuffer_free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    /* Every message is at least one byte, plus a trailing partial one. */
    struct framed *want = malloc((size + 1) * sizeof(*want));
    CHECK(want != NULL, "malloc");
    size_t nwant = frame_whole(data, size, want);

    struct rng r;
    rng_seed(&r, fnv1a(data, size));
    frame_chunked(data, size, want, nwant, 1, &r);
    frame_chunked(data, size, want, nwant, 0, &r);
    frame_evbuffer(data, size, want, nwant, &r);
    free(want);
    return 0;
}

#endif
