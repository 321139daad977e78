/* The pub/sub tracker: a tunnel is over only when no subscription is left and every
 * request's replies are back (the case netfuzz found: "SUBSCRIBE a; UNSUBSCRIBE a;
 * SUNSUBSCRIBE" had its connection returned before the last reply). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "pubsub.h"

/* Feeds one whole message; returns pubsub_received's answer. */
static int feed(struct pubsub *ps, const char *msg)
{
    size_t len = strlen(msg), h = len < 32 ? len : 32, t = len < 32 ? len : 32;
    return pubsub_received(ps, msg, h, msg + len - t, t);
}

/* A subscribe-family reply: "*3 $n name $c channel :count" (channel NULL: nil). */
static const char *reply(char *buf, const char *name, const char *channel, int count)
{
    char ch[64];
    if (channel)
        snprintf(ch, sizeof(ch), "$%zu\r\n%s\r\n", strlen(channel), channel);
    else
        strcpy(ch, "$-1\r\n");
    sprintf(buf, "*3\r\n$%zu\r\n%s\r\n%s:%d\r\n", strlen(name), name, ch, count);
    return buf;
}

Test(pubsub, a_later_unsubscribe_s_reply_keeps_it_open)
{
    struct pubsub ps = {0};
    char b[128];
    cr_assert(pubsub_sent(&ps, "subscribe", 2));
    cr_assert(pubsub_sent(&ps, "unsubscribe", 2));
    cr_assert(pubsub_sent(&ps, "sunsubscribe", 1));
    cr_assert_not(feed(&ps, reply(b, "subscribe", "a", 1)));
    cr_assert_not(feed(&ps, reply(b, "unsubscribe", "a", 0)), "SUNSUBSCRIBE's reply is to come");
    cr_assert(feed(&ps, reply(b, "sunsubscribe", NULL, 0)));
}

Test(pubsub, shard_channels_are_counted_apart)
{
    struct pubsub ps = {0};
    char b[128];
    pubsub_sent(&ps, "subscribe", 2);
    pubsub_sent(&ps, "sunsubscribe", 1);
    cr_assert_not(feed(&ps, reply(b, "subscribe", "a", 1)));
    cr_assert_not(feed(&ps, reply(b, "sunsubscribe", NULL, 0)), "still subscribed to a");
    pubsub_sent(&ps, "ssubscribe", 2);
    pubsub_sent(&ps, "unsubscribe", 1);
    cr_assert_not(feed(&ps, reply(b, "ssubscribe", "s", 1)));
    cr_assert_not(feed(&ps, reply(b, "unsubscribe", "a", 0)), "still subscribed to s");
    pubsub_sent(&ps, "sunsubscribe", 2);
    cr_assert(feed(&ps, reply(b, "sunsubscribe", "s", 0)));
}

Test(pubsub, unsubscribe_from_all_channels_leaves_patterns)
{
    struct pubsub ps = {0};
    char b[128];
    pubsub_sent(&ps, "subscribe", 3);
    pubsub_sent(&ps, "psubscribe", 2);
    pubsub_sent(&ps, "unsubscribe", 1);
    feed(&ps, reply(b, "subscribe", "a", 1));
    feed(&ps, reply(b, "subscribe", "b", 2));
    feed(&ps, reply(b, "psubscribe", "p*", 3));
    /* Two replies, one a channel; the count ends at 1 (the pattern), not 0. */
    cr_assert_not(feed(&ps, reply(b, "unsubscribe", "a", 2)));
    cr_assert_not(feed(&ps, reply(b, "unsubscribe", "b", 1)));
    cr_assert_eq(ps.n, 0);
    pubsub_sent(&ps, "punsubscribe", 1);
    cr_assert(feed(&ps, reply(b, "punsubscribe", "p*", 0)));
}

Test(pubsub, messages_and_pings_in_between)
{
    struct pubsub ps = {0};
    char b[128];
    pubsub_sent(&ps, "subscribe", 2);
    feed(&ps, reply(b, "subscribe", "a", 1));
    pubsub_sent(&ps, "ping", 1);
    pubsub_sent(&ps, "unsubscribe", 1);
    cr_assert_not(feed(&ps, "*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n"));
    cr_assert_not(feed(&ps, "*2\r\n$4\r\npong\r\n$0\r\n\r\n"));
    cr_assert(feed(&ps, reply(b, "unsubscribe", "a", 0)));
}

Test(pubsub, an_error_is_its_request_s_only_reply)
{
    struct pubsub ps = {0};
    char b[128];
    pubsub_sent(&ps, "subscribe", 1); /* no channel: Redis refuses it */
    pubsub_sent(&ps, "subscribe", 2);
    cr_assert_not(feed(&ps, "-ERR wrong number of arguments for 'subscribe' command\r\n"));
    cr_assert_not(feed(&ps, reply(b, "subscribe", "a", 1)));
    pubsub_sent(&ps, "unsubscribe", 3);
    cr_assert_not(feed(&ps, reply(b, "unsubscribe", "a", 0)), "one more reply for b");
    cr_assert(feed(&ps, reply(b, "unsubscribe", "b", 0)));
}

Test(pubsub, only_pub_sub_is_followed_and_the_queue_is_bounded)
{
    struct pubsub ps = {0};
    cr_assert_not(pubsub_sent(&ps, "get", 2));
    for (int i = 0; i < PUBSUB_QUEUE; i++)
        cr_assert(pubsub_sent(&ps, "subscribe", 2));
    cr_assert_not(pubsub_sent(&ps, "subscribe", 2));
}
