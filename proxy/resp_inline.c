/* resp_inline: the inline request reader of resp.c (a line up to LF, split as
 * Redis' sdssplitargs splits it, and re-encoded as multibulk for the upstream).
 * The rules it follows are listed at the top of resp.c. */
#include "resp.h"
#include "resp_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* isspace() in the C locale, which Redis runs in for LC_CTYPE. */
static int blank(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* s[k] of a line of n bytes with no NUL in it, the end read as the NUL that ends
 * the C string sdssplitargs walks. */
static int at(const char *s, size_t n, size_t k)
{
    return k < n ? (unsigned char)s[k] : 0;
}

/* One argument starting at s[*i] (not a blank, not the end), split as sdssplitargs
 * (sds.c) does, into out (room for n bytes). Returns its length, or -1 where
 * sdssplitargs fails: unbalanced quotes, or a closing quote not followed by a blank
 * or the end. A quote opens anywhere in an argument (a"b c" is one argument, ab c);
 * an unquoted argument ends only at space, tab, CR, LF or the end (a \v or \f is
 * part of it, though blanks between arguments are skipped by isspace). */
static long inline_arg(const char *s, size_t n, size_t *i, char *out)
{
    size_t o = 0, k = *i;
    int inq = 0, insq = 0;
    for (;;) {
        int c = at(s, n, k);
        if (inq) {
            if (c == '\\' && at(s, n, k + 1) == 'x' && hexval(at(s, n, k + 2)) >= 0 &&
                hexval(at(s, n, k + 3)) >= 0) {
                out[o++] = (char)(hexval(at(s, n, k + 2)) * 16 + hexval(at(s, n, k + 3)));
                k += 4;
            } else if (c == '\\' && at(s, n, k + 1)) {
                int e = at(s, n, k + 1);
                out[o++] = (char)(e == 'n'   ? '\n'
                                  : e == 'r' ? '\r'
                                  : e == 't' ? '\t'
                                  : e == 'b' ? '\b'
                                  : e == 'a' ? '\a'
                                             : e);
                k += 2;
            } else if (c == '"') {
                if (at(s, n, k + 1) && !blank(at(s, n, k + 1))) return -1;
                k++;
                break;
            } else if (!c) {
                return -1;
            } else {
                out[o++] = (char)c;
                k++;
            }
        } else if (insq) {
            if (c == '\\' && at(s, n, k + 1) == '\'') {
                out[o++] = '\'';
                k += 2;
            } else if (c == '\'') {
                if (at(s, n, k + 1) && !blank(at(s, n, k + 1))) return -1;
                k++;
                break;
            } else if (!c) {
                return -1;
            } else {
                out[o++] = (char)c;
                k++;
            }
        } else if (c == ' ' || c == '\n' || c == '\r' || c == '\t' || !c) {
            if (c) k++;
            break;
        } else if (c == '"') {
            inq = 1;
            k++;
        } else if (c == '\'') {
            insq = 1;
            k++;
        } else {
            out[o++] = (char)c;
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

/* "GET /path HTTP/1.1" and friends: three or more words, the last a protocol
 * version. Redis would answer this line and close only at the Host: header after
 * it; respgate closes at once. */
static int looks_like_http(const char *line, size_t n)
{
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
    if (looks_like_http(p->line, n)) return resp_cross_protocol(p);

    /* Worst case: every byte an argument ("a b c"): header 24 bytes + per arg 16. */
    if (grow(&p->enc, &p->enc_cap, 32 + n * 20)) return resp_proto_error(p, "out of memory");
    char *args = malloc(n + 1);
    if (!args) return resp_proto_error(p, "out of memory");

    /* Arguments are first written after a gap for the "*<argc>\r\n" header. */
    size_t o = 24, i = 0;
    long long argc = 0;
    for (;;) {
        while (i < n && blank((unsigned char)p->line[i]))
            i++;
        if (i == n) break;
        long alen = inline_arg(p->line, n, &i, args);
        if (alen < 0) {
            free(args);
            return resp_proto_error(p, "unbalanced quotes in request");
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
    if (resp_is_http_command(p)) return resp_cross_protocol(p);
    char hdr[24];
    int h = snprintf(hdr, sizeof(hdr), "*%lld\r\n", argc);
    size_t start = 24 - (size_t)h;
    memcpy(p->enc + start, hdr, (size_t)h);
    p->inl = p->enc + start;
    p->inl_len = o - start;
    p->key_off -= start;
    return RESP_DONE;
}

int resp_inline_bytes(struct resp_parser *p, const char *b, size_t n, size_t *i)
{
    const char *s = b + *i;
    size_t avail = n - *i;
    const char *lf = memchr(s, '\n', avail);
    size_t take = lf ? (size_t)(lf - s) : avail;
    const char *nul = memchr(s, '\0', take);
    if (nul) { /* strchr(line, '\n') stops here: the line never ends for Redis */
        take = (size_t)(nul - s) + 1;
        *i += take;
        p->line_len += take;
        p->state = S_RQ_NUL;
        return p->line_len > RESP_INLINE_MAX ? resp_too_big(p) : RESP_MORE;
    }
    /* At most 64 KiB before the LF: Redis refuses more once it has read more with
     * no LF, which a longer line may always be. */
    if (p->line_len + take > RESP_INLINE_MAX) return resp_too_big(p);
    if (grow(&p->line, &p->line_cap, p->line_len + take + 1))
        return resp_proto_error(p, "out of memory");
    memcpy(p->line + p->line_len, s, take);
    p->line_len += take;
    *i += take;
    if (!lf) return RESP_MORE;
    (*i)++; /* the LF */
    return inline_done(p);
}
