/* rconn against a scripted server on loopback: replies reach their callbacks in
 * order however the bytes are cut; a dropped connection answers every pending
 * callback with NULL before the down handler; closing from inside a callback waits
 * for it to return; a subscription gets every message. Run under ASan, a callback
 * on a freed rconn is a failure. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rconn.h"

struct server {
    int lfd;
    int port;
    pthread_t th;
    const char *const *chunks; /* written one by one after reading n_reads commands */
    int n_reads;
    int close_after; /* close instead of waiting for the client's close */
};

static void read_commands(int fd, int n)
{
    char buf[4096];
    int seen = 0;
    while (seen < n) { /* counts the '*' that start each command (no arguments hold one) */
        ssize_t got = recv(fd, buf, sizeof(buf), 0);
        if (got <= 0) return;
        for (ssize_t i = 0; i < got; i++)
            seen += buf[i] == '*';
    }
}

static void *serve(void *arg)
{
    struct server *s = arg;
    int fd = accept(s->lfd, NULL, NULL);
    if (fd < 0) return NULL;
    read_commands(fd, s->n_reads);
    for (int i = 0; s->chunks && s->chunks[i]; i++) {
        send(fd, s->chunks[i], strlen(s->chunks[i]), MSG_NOSIGNAL);
        usleep(2000); /* separate reads on the other side */
    }
    if (!s->close_after) {
        char c;
        while (recv(fd, &c, 1, 0) > 0)
            ;
    }
    close(fd);
    return NULL;
}

static void server_start(struct server *s)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(s->lfd >= 0);
    cr_assert_eq(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(s->lfd, 4), 0);
    getsockname(s->lfd, (struct sockaddr *)&a, &len);
    s->port = ntohs(a.sin_port);
    pthread_create(&s->th, NULL, serve, s);
}

static void server_stop(struct server *s)
{
    pthread_join(s->th, NULL);
    close(s->lfd);
}

/* What the callbacks saw, in order: "A", "B", "null", "down: ...". */
static char log_[1024];
static struct event_base *base;
static struct sock_loop *loop;
static struct rconn *rc;
static int replies_wanted;

static void note(const char *what)
{
    strncat(log_, what, sizeof(log_) - strlen(log_) - 2);
    strcat(log_, ",");
}

static void on_reply(struct rconn *c, struct redisReply *r, void *arg)
{
    (void)c;
    (void)arg;
    if (!r) {
        note("null");
    } else if (r->type == REDIS_REPLY_ARRAY) {
        char buf[64];
        snprintf(buf, sizeof(buf), "array%zu", r->elements);
        note(buf);
    } else {
        note(r->str ? r->str : "?");
    }
    if (--replies_wanted == 0) event_base_loopexit(base, NULL);
}

static void on_reply_then_close(struct rconn *c, struct redisReply *r, void *arg)
{
    on_reply(c, r, arg);
    rconn_close(&rc); /* from inside its own callback */
    note(rc ? "still" : "gone-for-owner");
}

static void on_down(struct rconn *c, void *ctx, const char *why)
{
    (void)c;
    (void)ctx;
    char buf[200];
    snprintf(buf, sizeof(buf), "down: %s", why);
    note(buf);
    rc = NULL;
    event_base_loopexit(base, NULL);
}

static void open_to(const struct server *s)
{
    struct config_addr a = {.host = "127.0.0.1", .port = s->port};
    char err[160];
    rc = rconn_open(loop, &a, NULL, on_down, NULL, err, sizeof(err));
    cr_assert(rc, "%s", err);
}

static void run(void)
{
    struct timeval five = {5, 0};
    event_base_loopexit(base, &five); /* a test that hangs fails instead */
    sock_loop_run(loop);
}

static void setup(void)
{
    log_[0] = '\0';
    base = event_base_new();
    loop = sock_loop_create(base);
}

static void teardown(void)
{
    rconn_close(&rc);
    sock_loop_destroy(&loop);
    event_base_free(base);
}

TestSuite(rconn, .init = setup, .fini = teardown);

Test(rconn, replies_reach_their_callbacks_in_order_whatever_the_cuts)
{
    static const char *const chunks[] = {"+A\r\n+", "B\r\n$1", "\r\nC\r", "\n*2\r\n:1\r\n:2\r\n",
                                         NULL};
    struct server s = {.chunks = chunks, .n_reads = 4};
    server_start(&s);
    open_to(&s);
    replies_wanted = 4;
    rconn_command(rc, on_reply, NULL, "PING");
    rconn_command(rc, on_reply, NULL, "ECHO %s", "B");
    rconn_command(rc, on_reply, NULL, "GET %s", "k");
    rconn_command(rc, on_reply, NULL, "MGET a b");
    run();
    cr_assert_str_eq(log_, "A,B,C,array2,");
    cr_assert(rconn_connected(rc));
    rconn_close(&rc); /* the owner's close: no down handler */
    cr_assert_null(rc);
    server_stop(&s);
    cr_assert_str_eq(log_, "A,B,C,array2,");
}

Test(rconn, a_drop_answers_pending_callbacks_with_null_then_down_once)
{
    static const char *const chunks[] = {"+A\r\n", NULL};
    struct server s = {.chunks = chunks, .n_reads = 3, .close_after = 1};
    server_start(&s);
    open_to(&s);
    replies_wanted = -1;
    rconn_command(rc, on_reply, NULL, "PING");
    rconn_command(rc, on_reply, NULL, "PING");
    rconn_command(rc, on_reply, NULL, "PING");
    run();
    server_stop(&s);
    cr_assert_str_eq(log_, "A,null,null,down: connection closed by the server,");
    cr_assert_null(rc);
}

Test(rconn, closing_inside_a_callback_waits_for_it_and_answers_the_rest_with_null)
{
    static const char *const chunks[] = {"+A\r\n+B\r\n+C\r\n", NULL};
    struct server s = {.chunks = chunks, .n_reads = 3};
    server_start(&s);
    open_to(&s);
    replies_wanted = 3; /* A, then B and C as null */
    rconn_command(rc, on_reply_then_close, NULL, "PING");
    rconn_command(rc, on_reply, NULL, "PING");
    rconn_command(rc, on_reply, NULL, "PING");
    run();
    cr_assert_str_eq(log_, "A,gone-for-owner,null,null,");
    cr_assert_null(rc);
    server_stop(&s);
}

Test(rconn, a_subscription_gets_every_message_after_earlier_replies)
{
    static const char *const chunks[] = {
        "+OK\r\n*3\r\n$10\r\npsubscribe\r\n$1\r\n*\r\n:1\r\n",
        "*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$2\r\nch\r\n$3\r\none\r\n",
        "*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$2\r\nch\r\n$3\r\ntwo\r\n", NULL};
    struct server s = {.chunks = chunks, .n_reads = 2};
    server_start(&s);
    open_to(&s);
    replies_wanted = 4;
    rconn_command(rc, on_reply, NULL, "AUTH %s", "pw");
    cr_assert_eq(rconn_subscribe(rc, on_reply, NULL, "PSUBSCRIBE *"), 0);
    cr_assert_eq(rconn_command(rc, on_reply, NULL, "PING"), -1, "no commands once subscribed");
    run();
    cr_assert_str_eq(log_, "OK,array3,array4,array4,");
    rconn_close(&rc);
    server_stop(&s);
    cr_assert_str_eq(log_, "OK,array3,array4,array4,null,", "the subscription hears the close");
}

Test(rconn, a_refused_connect_reports_down_without_having_connected)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    getsockname(fd, (struct sockaddr *)&sa, &len);
    close(fd); /* a port nobody listens on */
    struct config_addr a = {.host = "127.0.0.1", .port = ntohs(sa.sin_port)};
    char err[160] = "";
    rc = rconn_open(loop, &a, NULL, on_down, NULL, err, sizeof(err));
    if (!rc) {
        cr_assert(strstr(err, "refused"), "%s", err);
        return;
    }
    replies_wanted = -1;
    rconn_command(rc, on_reply, NULL, "PING");
    run();
    cr_assert_str_eq(log_, "null,down: Connection refused,");
}

/* The server answers one PING with chunk: the connection must end with want. */
static void expect_closed_by(const char *chunk, const char *want)
{
    const char *chunks[] = {chunk, NULL};
    struct server s = {.chunks = chunks, .n_reads = 1};
    server_start(&s);
    open_to(&s);
    replies_wanted = -1;
    rconn_command(rc, on_reply, NULL, "PING");
    run();
    cr_assert_str_eq(log_, want);
    server_stop(&s);
}

Test(rconn, a_reply_to_no_command_closes_the_connection)
{
    expect_closed_by("+A\r\n+B\r\n", "A,down: a reply to no command,");
}

Test(rconn, a_protocol_error_closes_the_connection)
{
    expect_closed_by("?what\r\n", "null,down: protocol error in the reply,");
}
