/* clientlist: see clientlist.h. */
#include "clientlist.h"
#include "command.h"
#include "message.h"
#include "pass.h"
#include "replyq.h"
#include "roster.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { TYPE_ANY = -1, TYPE_NORMAL, TYPE_PUBSUB, TYPE_NONE /* master, replica: none here */ };

/* A question, as the asking worker parsed it. */
struct ask {
    struct req *r; /* the asking client's reply slot */
    unsigned long long caller;
    int kill, old_form, skipme, type, kill_self;
    int nids;
    unsigned long long ids[MESSAGE_ARGS_MAX];
    char *addr, *laddr, *user; /* NULL: not a filter */
    char *self;                /* LIST: the caller's own line, as when it asked */
};

static void ask_free(struct ask *a)
{
    free(a->addr);
    free(a->laddr);
    free(a->user);
    free(a->self);
    free(a);
}

/* Dropped unanswered at shutdown: its client is gone, and so is the request cache. */
static void ask_drop(void *arg)
{
    struct ask *a = arg;
    free(a->r);
    ask_free(a);
}

/* "host:port" ("[v6]:port") of a socket address, as Redis prints it. */
static void addr_text(const struct sockaddr_storage *sa, char *out, size_t n)
{
    char host[INET6_ADDRSTRLEN], port[8];
    if (getnameinfo((const struct sockaddr *)sa, sizeof(*sa), host, sizeof(host), port,
                    sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV) == 0)
        snprintf(out, n, sa->ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
}

/* The client's two addresses, looked up once: they never change. */
static void addresses(struct client *c)
{
    if (c->addr[0]) return;
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);
    evutil_socket_t fd = sock_fd(c->sock);
    snprintf(c->addr, sizeof(c->addr), "?:0");
    snprintf(c->laddr, sizeof(c->laddr), "?:0");
    if (getpeername(fd, (struct sockaddr *)&sa, &len) == 0)
        addr_text(&sa, c->addr, sizeof(c->addr));
    len = sizeof(sa);
    if (getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        addr_text(&sa, c->laddr, sizeof(c->laddr));
}

static int subscriptions(const struct client *c)
{
    return c->pubsub.channels + c->pubsub.patterns + c->pubsub.shards;
}

/* Redis' line for one client (7.0's fields, in its order), then respgate's own. The
 * fields about Redis' buffers are respgate's: qbuf is its unparsed input, omem its
 * replies not written yet, oll their count. */
static void format_line(struct client *c, struct evbuffer *out)
{
    addresses(c);
    char flags[8], *f = flags, events[3], *e = events;
    int pinned = c->pin && !c->pin->dead, tunnel = pinned && c->pin->kind == UP_TUNNEL;
    if (subscriptions(c)) *f++ = 'P';
    if (c->session & S_MULTI) *f++ = 'x';
    if (pinned && !tunnel && c->ninflight && c->last_cmd && (c->last_cmd->flags & CMD_BLOCKING))
        *f++ = 'b';
    if (c->flags & C_WATCH_LOST) *f++ = 'd';
    if (c->flags & C_CLOSING) *f++ = 'c';
    if (f == flags) *f++ = 'N';
    *f = '\0';
    size_t qbuf = evbuffer_get_length(sock_input(c->sock)),
           omem = c->stored + evbuffer_get_length(sock_output(c->sock));
    if (c->reading) *e++ = 'r';
    if (evbuffer_get_length(sock_output(c->sock))) *e++ = 'w';
    *e = '\0';
    int64_t now = c->w->now_ns;
    evbuffer_add_printf(
        out,
        "id=%llu addr=%s laddr=%s fd=%d name=%s age=%lld idle=%lld flags=%s db=%d sub=%d "
        "psub=%d ssub=%d multi=%d qbuf=%zu qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 "
        "obl=0 oll=%d omem=%zu tot-mem=%zu events=%s cmd=%s user=%s redir=-1 resp=%d "
        "proxy=respgate pinned=%s\n",
        c->id, c->addr, c->laddr, (int)sock_fd(c->sock), c->name ? c->name : "",
        (long long)((now - c->created_ns) / 1000000000),
        (long long)((now - c->active_ns) / 1000000000), flags, c->db, c->pubsub.channels,
        c->pubsub.patterns, c->pubsub.shards, (c->session & S_MULTI) ? c->multi_queued : -1, qbuf,
        c->npending - c->ninflight, omem, sizeof(*c) + qbuf + omem, events,
        c->last_cmd ? c->last_cmd->name : "NULL", c->user ? c->user : "default", c->proto,
        !pinned  ? "no"
        : tunnel ? "tunnel"
                 : "session");
}

/* As Redis sends a CLIENT LIST or INFO text: verbatim in RESP3, bulk in RESP2. */
static void text_reply(int proto, struct evbuffer *text, struct evbuffer *out)
{
    size_t n = evbuffer_get_length(text);
    if (proto == 3)
        evbuffer_add_printf(out, "=%zu\r\ntxt:", n + 4);
    else
        evbuffer_add_printf(out, "$%zu\r\n", n);
    evbuffer_add_buffer(out, text);
    evbuffer_add(out, "\r\n", 2);
}

void clientlist_info(struct client *c)
{
    struct evbuffer *line = evbuffer_new(), *out = evbuffer_new();
    if (line && out) {
        format_line(c, line);
        text_reply(c->proto, line, out);
    }
    message_discard(c);
    if (line && out) {
        size_t n = evbuffer_get_length(out);
        replyq_local(c, (const char *)evbuffer_pullup(out, -1), n);
    } else {
        replyq_error(c, "-ERR %s\r\n", "out of memory");
    }
    if (line) evbuffer_free(line);
    if (out) evbuffer_free(out);
}

static int client_type(const struct client *c)
{
    return subscriptions(c) ? TYPE_PUBSUB : TYPE_NORMAL;
}

static int matches(struct client *c, const struct ask *a)
{
    if (a->type != TYPE_ANY && client_type(c) != a->type) return 0;
    if (a->kill && a->nids && c->id != a->ids[0]) return 0;
    if (!a->kill && a->nids) {
        int any = 0;
        for (int i = 0; i < a->nids && !any; i++)
            any = a->ids[i] == c->id;
        if (!any) return 0;
    }
    if (a->addr || a->laddr) addresses(c);
    if (a->addr && strcmp(a->addr, c->addr) != 0) return 0;
    if (a->laddr && strcmp(a->laddr, c->laddr) != 0) return 0;
    if (a->user && strcmp(a->user, c->user ? c->user : "default") != 0) return 0;
    return 1;
}

static int word_is(const char *arg, size_t len, const char *word)
{
    return len == strlen(word) && strncasecmp(arg, word, len) == 0;
}

/* Redis' client id argument: 1 to LONG_MAX (KILL), any integer (LIST). */
static int parse_id(const char *s, size_t len, long long *out)
{
    char num[24];
    if (!len || len >= sizeof(num)) return -1;
    memcpy(num, s, len);
    num[len] = '\0';
    char *end;
    *out = strtoll(num, &end, 10);
    return *end || (num[0] == '0' && len > 1) ||
                   !(num[0] == '-' || (num[0] >= '0' && num[0] <= '9'))
               ? -1
               : 0;
}

static int type_of(const char *s, size_t len)
{
    if (word_is(s, len, "normal")) return TYPE_NORMAL;
    if (word_is(s, len, "pubsub")) return TYPE_PUBSUB;
    if (word_is(s, len, "master") || word_is(s, len, "replica") || word_is(s, len, "slave"))
        return TYPE_NONE;
    return TYPE_ANY;
}

static int user_known(const struct config *cfg, const char *name, size_t len)
{
    if (word_is(name, len, "default")) return 1;
    for (size_t i = 0; i < cfg->auth.nusers; i++)
        if (strlen(cfg->auth.users[i].name) == len &&
            memcmp(cfg->auth.users[i].name, name, len) == 0)
            return 1;
    return 0;
}

/* An error in c's protocol, formatted with one argument of given length. */
static int refuse(struct client *c, const char *fmt, const char *arg, size_t len)
{
    char a[128];
    snprintf(a, sizeof(a), "%.*s", (int)(len < sizeof(a) - 1 ? len : sizeof(a) - 1), arg);
    message_discard(c);
    replyq_error(c, fmt, a);
    return 1;
}

/* CLIENT LIST [TYPE t] | [ID id...]: Redis' checks, in its order. */
static int parse_list(struct client *c, struct ask *a, const char **argv, const size_t *lens,
                      int argc)
{
    if (argc == 4 && word_is(argv[2], lens[2], "type")) {
        if ((a->type = type_of(argv[3], lens[3])) == TYPE_ANY)
            return refuse(c, "-ERR Unknown client type '%s'\r\n", argv[3], lens[3]);
    } else if (argc > 3 && word_is(argv[2], lens[2], "id")) {
        for (int i = 3; i < argc; i++) {
            long long id;
            if (parse_id(argv[i], lens[i], &id))
                return refuse(c, "-ERR %s\r\n", "Invalid client ID", 17);
            a->ids[a->nids++] = (unsigned long long)id;
        }
    } else if (argc != 2) {
        return refuse(c, "-ERR %s\r\n", "syntax error", 12);
    }
    return 0;
}

static char *copy(const char *s, size_t len)
{
    char *p = malloc(len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

/* CLIENT KILL addr | KILL option value ...: Redis' checks, in its order. */
static int parse_kill(struct client *c, struct ask *a, const char **argv, const size_t *lens,
                      int argc)
{
    a->kill = 1;
    a->skipme = 1;
    if (argc == 3) { /* the old form: an address, and a client may kill itself */
        a->old_form = 1;
        a->skipme = 0;
        return (a->addr = copy(argv[2], lens[2])) ? 0
                                                  : refuse(c, "-ERR %s\r\n", "out of memory", 13);
    }
    if (argc < 3) return refuse(c, "-ERR %s\r\n", "syntax error", 12);
    for (int i = 2; i < argc; i += 2) {
        if (i + 1 >= argc) return refuse(c, "-ERR %s\r\n", "syntax error", 12);
        const char *k = argv[i], *v = argv[i + 1];
        size_t kl = lens[i], vl = lens[i + 1];
        char **text = NULL;
        if (word_is(k, kl, "id")) {
            long long id;
            if (parse_id(v, vl, &id) || id < 1)
                return refuse(c, "-ERR %s\r\n", "client-id should be greater than 0", 34);
            a->ids[0] = (unsigned long long)id;
            a->nids = 1;
        } else if (word_is(k, kl, "type")) {
            if ((a->type = type_of(v, vl)) == TYPE_ANY)
                return refuse(c, "-ERR Unknown client type '%s'\r\n", v, vl);
        } else if (word_is(k, kl, "addr")) {
            text = &a->addr;
        } else if (word_is(k, kl, "laddr")) {
            text = &a->laddr;
        } else if (word_is(k, kl, "user")) {
            if (!user_known(c->w->cfg, v, vl))
                return refuse(c, "-ERR No such user '%s'\r\n", v, vl);
            text = &a->user;
        } else if (word_is(k, kl, "skipme")) {
            if (word_is(v, vl, "yes"))
                a->skipme = 1;
            else if (word_is(v, vl, "no"))
                a->skipme = 0;
            else
                return refuse(c, "-ERR %s\r\n", "syntax error", 12);
        } else {
            return refuse(c, "-ERR %s\r\n", "syntax error", 12);
        }
        if (text) {
            free(*text);
            if (!(*text = copy(v, vl))) return refuse(c, "-ERR %s\r\n", "out of memory", 13);
        }
    }
    return 0;
}

int clientlist_take(struct client *c)
{
    int list = strcasecmp(c->rp.arg1, "list") == 0;
    if (!list && strcasecmp(c->rp.arg1, "kill") != 0) return 0;
    if (c->session & S_MULTI) /* Redis would answer in EXEC's array, which comes from Redis */
        return refuse(c, "-ERR CLIENT %s is answered by respgate: not inside MULTI\r\n", c->rp.arg1,
                      strlen(c->rp.arg1));
    char buf[MESSAGE_ARGS_MAX_BYTES];
    const char *argv[MESSAGE_ARGS_MAX];
    size_t lens[MESSAGE_ARGS_MAX];
    int argc = message_args(c, buf, sizeof(buf), argv, lens);
    if (argc < 0)
        return refuse(c, "-ERR CLIENT %s: too many or too long arguments for respgate\r\n",
                      c->rp.arg1, strlen(c->rp.arg1));
    struct ask *a = calloc(1, sizeof(*a));
    if (!a) return refuse(c, "-ERR %s\r\n", "out of memory", 13);
    a->type = TYPE_ANY;
    a->caller = c->id;
    if (list ? parse_list(c, a, argv, lens, argc) : parse_kill(c, a, argv, lens, argc)) {
        ask_free(a);
        return 1;
    }
    if (list && matches(c, a)) { /* its own line now: its input still holds this request */
        struct evbuffer *line = evbuffer_new();
        if (line) {
            format_line(c, line);
            size_t n = evbuffer_get_length(line);
            if ((a->self = malloc(n + 1))) {
                evbuffer_remove(line, a->self, n);
                a->self[n] = '\0';
            }
            evbuffer_free(line);
        }
    }
    message_discard(c);
    a->r = replyq_push(c, 0);
    if (roster_ask(c->w->shared->roster, c->w->id, a, ask_drop)) {
        replyq_fail(c->w, a->r, "-ERR out of memory\r\n");
        ask_free(a);
    }
    return 1;
}

void clientlist_answer(struct worker *w, struct roster_query *q)
{
    struct ask *a = roster_arg(q);
    struct evbuffer *lines = a->kill ? NULL : evbuffer_new();
    long long count = 0;
    struct client *c, *next;
    for (c = TAILQ_FIRST(&w->clients); c; c = next) {
        next = TAILQ_NEXT(c, link);
        if (c->flags & (C_DEAD | C_KILLED)) continue; /* closing: neither listed nor counted */
        if (c->id == a->caller) {                     /* on the asker's worker, and still there */
            if (!a->kill && a->self && lines) evbuffer_add(lines, a->self, strlen(a->self));
            if (a->kill && !a->skipme && matches(c, a)) {
                a->kill_self = 1; /* closed after its reply, as Redis does */
                count++;
            }
        } else if (matches(c, a)) {
            count++;
            if (lines) {
                format_line(c, lines);
            } else {
                c->flags |= C_KILLED;
                pass_wake(c);
            }
        }
    }
    char *text = NULL;
    size_t len = lines ? evbuffer_get_length(lines) : 0;
    if (len && (text = malloc(len))) evbuffer_remove(lines, text, len);
    if (lines) evbuffer_free(lines);
    roster_answer(w->shared->roster, q, w->id, text, text ? len : 0, count);
}

struct line {
    unsigned long long id;
    const char *s;
    size_t len;
};

static int by_id(const void *x, const void *y)
{
    const struct line *a = x, *b = y;
    return a->id < b->id ? -1 : a->id > b->id;
}

/* Every worker's lines, in the order Redis gives them: by id (the order clients
 * came), or in the order the ids were asked for. */
static void join_lines(const struct roster_query *q, const struct ask *a, struct evbuffer *out)
{
    size_t n = 0, cap = 0, len;
    for (int w = 0; w < roster_nanswers(q); w++)
        if (roster_text(q, w, &len)) cap += len / 40 + 1; /* a line is longer than 40 bytes */
    struct line *ls = cap ? calloc(cap, sizeof(*ls)) : NULL;
    for (int w = 0; ls && w < roster_nanswers(q); w++) {
        const char *s = roster_text(q, w, &len), *end = s + len;
        while (s && s < end && n < cap) {
            const char *nl = memchr(s, '\n', (size_t)(end - s));
            size_t l = nl ? (size_t)(nl - s) + 1 : (size_t)(end - s);
            ls[n++] = (struct line){strtoull(s + 3, NULL, 10), s, l};
            s += l;
        }
    }
    if (!a->nids) {
        if (n) qsort(ls, n, sizeof(*ls), by_id);
        for (size_t i = 0; i < n; i++)
            evbuffer_add(out, ls[i].s, ls[i].len);
    }
    for (int k = 0; k < a->nids; k++)
        for (size_t i = 0; i < n; i++)
            if (ls[i].id == a->ids[k]) {
                evbuffer_add(out, ls[i].s, ls[i].len);
                break;
            }
    free(ls);
}

void clientlist_reply(struct worker *w, struct roster_query *q)
{
    struct ask *a = roster_arg(q);
    struct client *c = a->r->client;
    struct evbuffer *out = evbuffer_new(), *text = evbuffer_new();
    if (!out || !text) abort(); /* as Redis: nothing sensible can continue */
    if (a->kill) {
        long long killed = 0;
        for (int i = 0; i < roster_nanswers(q); i++)
            killed += roster_count(q, i);
        if (!a->old_form)
            evbuffer_add_printf(out, ":%lld\r\n", killed);
        else if (killed)
            evbuffer_add(out, "+OK\r\n", 5);
        else
            evbuffer_add_printf(out, "-ERR No such client\r\n");
    } else {
        join_lines(q, a, text);
        text_reply(c ? c->proto : 2, text, out);
    }
    replyq_fill(w, a->r, out, evbuffer_get_length(out));
    if (c && a->kill_self) {
        c->flags |= C_CLOSING;
        pass_wake(c);
    }
    evbuffer_free(out);
    evbuffer_free(text);
    roster_finish(w->shared->roster, &q);
    ask_free(a);
}
