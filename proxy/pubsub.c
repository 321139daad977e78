/* pubsub: see pubsub.h. */
#include "pubsub.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Which count a subscribe-family name moves; 0 for other names. */
static int kind_of(const char *name, size_t len, int *subscribe)
{
    static const struct {
        const char *name;
        int kind, subscribe;
    } names[] = {{"subscribe", PUBSUB_CHANNELS, 1},  {"unsubscribe", PUBSUB_CHANNELS, 0},
                 {"psubscribe", PUBSUB_PATTERNS, 1}, {"punsubscribe", PUBSUB_PATTERNS, 0},
                 {"ssubscribe", PUBSUB_SHARDS, 1},   {"sunsubscribe", PUBSUB_SHARDS, 0}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i].name) == len && strncasecmp(name, names[i].name, len) == 0) {
            *subscribe = names[i].subscribe;
            return names[i].kind;
        }
    return 0;
}

int pubsub_sent(struct pubsub *ps, const char *name, long long argc)
{
    int subscribe = 0, kind = kind_of(name, strlen(name), &subscribe);
    if ((!kind && strcmp(name, "ping") != 0) || ps->n == PUBSUB_QUEUE) return 0;
    unsigned at = (ps->head + ps->n++) % PUBSUB_QUEUE;
    /* One reply per channel; one error if there are none to subscribe to. */
    ps->q[at].left = kind && argc > 1 ? (int)(argc - 1) : 1;
    ps->q[at].all = kind && !subscribe && argc == 1 ? (unsigned char)kind : 0;
    if (ps->q[at].all) ps->q[at].left = -1;
    return 1;
}

static int *count_of(struct pubsub *ps, int kind)
{
    return kind == PUBSUB_CHANNELS   ? &ps->channels
           : kind == PUBSUB_PATTERNS ? &ps->patterns
                                     : &ps->shards;
}

/* "*3\r\n$<n>\r\n<name>\r\n...:<count>\r\n": the name's kind, and the count. */
static int parse(const char *head, size_t hlen, const char *tail, size_t tlen, long *count)
{
    if (hlen < 8 || memcmp(head, "*3\r\n$", 5) != 0) return 0;
    const char *len_end = memchr(head + 5, '\r', hlen - 5);
    if (!len_end) return 0;
    size_t len = (size_t)strtoul(head + 5, NULL, 10), at = (size_t)(len_end - head) + 2;
    if (at + len > hlen) return 0;
    int subscribe;
    int kind = kind_of(head + at, len, &subscribe);
    if (!kind || tlen < 4 || memcmp(tail + tlen - 2, "\r\n", 2) != 0) return 0;
    size_t i = tlen - 2;
    while (i > 0 && tail[i - 1] != ':')
        i--;
    if (i == 0) return 0;
    *count = strtol(tail + i, NULL, 10);
    return kind;
}

static int is_push(const char *head, size_t hlen)
{
    static const char *const pushes[] = {"*3\r\n$7\r\nmessage\r\n", "*4\r\n$8\r\npmessage\r\n",
                                         "*3\r\n$8\r\nsmessage\r\n"};
    for (size_t i = 0; i < 3; i++)
        if (hlen >= strlen(pushes[i]) && memcmp(head, pushes[i], strlen(pushes[i])) == 0) return 1;
    return 0;
}

int pubsub_received(struct pubsub *ps, const char *head, size_t hlen, const char *tail, size_t tlen)
{
    if (is_push(head, hlen)) return 0;
    if (ps->n == 0) return 0; /* not ours to count: the tunnel stays (never seen) */
    long count = 0;
    int kind = parse(head, hlen, tail, tlen, &count);
    unsigned h = ps->head;
    if (ps->q[h].left < 0) /* the first reply to an unsubscribe from all: one a channel */
        ps->q[h].left = *count_of(ps, ps->q[h].all) > 0 ? *count_of(ps, ps->q[h].all) : 1;
    if (kind == PUBSUB_SHARDS) {
        ps->shards = (int)count;
    } else if (kind) {
        int *mine = count_of(ps, kind); /* the count is of channels and patterns */
        *mine += (int)count - (ps->channels + ps->patterns);
        if (*mine < 0) *mine = 0;
    }
    if (!kind || --ps->q[h].left == 0) { /* an error or a PONG: that request's one reply */
        ps->head = (h + 1) % PUBSUB_QUEUE;
        ps->n--;
    }
    return ps->n == 0 && ps->channels + ps->patterns + ps->shards == 0;
}
