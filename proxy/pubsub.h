/* pubsub: follows a RESP2 pub/sub tunnel closely enough to tell when it is over -
 * no subscription left and no reply still to come - so that its connection can
 * serve other clients again. Redis gives one reply per channel argument, and an
 * unsubscribe from all gives one per channel of its kind then subscribed (or one
 * if none), so every request's replies are counted and the subscriptions are
 * counted from the replies' own figures. Pure: no I/O. */
#ifndef RG_PUBSUB_H
#define RG_PUBSUB_H

#include <stddef.h>

#define PUBSUB_QUEUE 32

struct pubsub {
    int channels, patterns, shards; /* as Redis' replies say, so far */
    unsigned head, n;               /* the requests whose replies are not all back */
    struct {
        int left;          /* replies still to come; -1: not known yet */
        unsigned char all; /* an unsubscribe from all of one kind: PUBSUB_* */
    } q[PUBSUB_QUEUE];
};

enum { PUBSUB_CHANNELS = 1, PUBSUB_PATTERNS, PUBSUB_SHARDS };

/* A request sent on the tunnel: name lowercased, argc with the name. Returns 0 if
 * it cannot be followed (not SUBSCRIBE, UNSUBSCRIBE, their P and S forms or PING;
 * or too many in flight): then the tunnel never ends. */
int pubsub_sent(struct pubsub *ps, const char *name, long long argc);
/* A message from Redis on the tunnel, given by its first bytes (up to 32) and its
 * last (up to 32). Returns 1 if the tunnel is now over. */
int pubsub_received(struct pubsub *ps, const char *head, size_t hlen, const char *tail,
                    size_t tlen);

#endif
