/* resp_fast: see resp_fast.h. Everything here is a shortcut: when a message is not
 * whole in the buffer, or has anything the common shape lacks (a negative or
 * non-canonical length, a count line not ended by CRLF, a huge count), the answer is
 * "not here" and resp.c's state machine reads it, errors included. The fuzzers feed
 * the same bytes whole and one at a time and compare, so the two stay the same. */
#include "resp_fast.h"

#include <ctype.h>
#include <string.h>

#define FAST_ARGS_MAX 1024 /* more arguments: the state machine */
#define FAST_LEN_DIGITS 15 /* lengths below 10^15: no overflow to think about */
#define FAST_LINE_MAX 1024 /* a status line longer than this: the state machine */

/* A length as string2ll takes it, ended by CRLF, from s[k]: "0" alone, or 1-9 then
 * digits. -1 if it is not that shape or not whole; *k is moved past the LF. */
static inline __attribute__((always_inline)) long long length_at(const char *s, size_t n, size_t *k)
{
    size_t i = *k, start = i;
    long long v = 0;
    if (i >= n || s[i] < '0' || s[i] > '9' || (s[i] == '0' && i + 1 < n && s[i + 1] != '\r'))
        return -1;
    while (i < n && s[i] >= '0' && s[i] <= '9' && i - start < FAST_LEN_DIGITS)
        v = v * 10 + (s[i++] - '0');
    if (i + 1 >= n || s[i] != '\r' || s[i + 1] != '\n') return -1;
    *k = i + 2;
    return v;
}

int resp_fast_request(struct resp_parser *p, const char *b, size_t n, size_t *used)
{
    size_t k = 1;
    if (n < 4 || b[0] != '*') return 0;
    long long argc = length_at(b, n, &k);
    if (argc <= 0 || argc > FAST_ARGS_MAX) return 0;
    size_t name_at = 0, name_len = 0, arg1_at = 0, arg1_len = 0;
    for (long long a = 0; a < argc; a++) {
        if (k >= n || b[k] != '$') return 0;
        k++;
        long long len = length_at(b, n, &k);
        if (len < 0 || len > p->max_bulk || (size_t)len + 2 > n - k) return 0;
        if (a == 0) {
            name_at = k;
            name_len = (size_t)len;
        } else if (a == 1) {
            arg1_at = k;
            arg1_len = (size_t)len;
        }
        k += (size_t)len + 2; /* the two bytes after the data are skipped unread, as Redis does */
    }
    size_t cap = name_len < RESP_NAME_MAX ? name_len : RESP_NAME_MAX;
    for (size_t i = 0; i < cap; i++)
        p->name[i] = (char)tolower((unsigned char)b[name_at + i]);
    p->name[cap] = '\0';
    p->name_len = name_len;
    if (argc > 1) {
        cap = arg1_len < RESP_ARG1_MAX ? arg1_len : RESP_ARG1_MAX;
        memcpy(p->arg1, b + arg1_at, cap);
        p->arg1[cap] = '\0';
        p->arg1_len = arg1_len;
        p->key_off = p->len + arg1_at;
    }
    p->type = '*';
    p->argc = argc;
    p->argi = argc;
    *used = k;
    return 1;
}

int resp_fast_reply(struct resp_parser *p, const char *b, size_t n, size_t *used)
{
    size_t k = 1;
    if (n < 4) return 0;
    switch (b[0]) {
    case '+':
    case '-':
    case ':': {
        const char *cr = memchr(b + 1, '\r', n - 1 < FAST_LINE_MAX ? n - 1 : FAST_LINE_MAX);
        if (!cr || cr + 1 == b + n || cr[1] != '\n') return 0;
        k = (size_t)(cr - b) + 2;
        break;
    }
    case '$': {
        if (b[1] == '-' && b[2] == '1' && b[3] == '\r' && n > 4 && b[4] == '\n') {
            k = 5; /* the RESP2 null bulk: a GET that found nothing */
            break;
        }
        long long len = length_at(b, n, &k);
        if (len < 0 || (size_t)len + 2 > n - k || b[k + (size_t)len] != '\r' ||
            b[k + (size_t)len + 1] != '\n')
            return 0;
        k += (size_t)len + 2;
        break;
    }
    default:
        return 0;
    }
    p->type = b[0];
    *used = k;
    return 1;
}
