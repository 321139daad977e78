/* intercept: commands answered or rewritten here, for the client's own view of its
 * connection: AUTH and HELLO's AUTH (respgate's own users), CLIENT ID / GETNAME /
 * SETNAME / INFO / SETINFO (LIST and KILL: clientlist.h), the ids CLIENT UNBLOCK and
 * TRACKING name, WAIT (where this client's writes went), RESET, the deny list, and
 * whether XREAD / XREADGROUP block. */
#include "intercept.h"
#include "clientlist.h"
#include "command.h"
#include "idmap.h"
#include "message.h"
#include "replyq.h"
#include "session.h"
#include "upstream.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* Compares without an early exit, so timing does not tell how much matched. */
static int secret_equals(const char *secret, const char *given, size_t n)
{
    size_t len = strlen(secret);
    unsigned char diff = len != n;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(given[i] ^ secret[i % (len ? len : 1)]);
    return diff == 0;
}

/* AUTH [user] password against auth.password (the default user) and auth.users. */
static int credentials_ok(const struct config *cfg, const char *user, size_t ulen, const char *pass,
                          size_t plen)
{
    if (!user || (ulen == 7 && memcmp(user, "default", 7) == 0))
        return cfg->auth.password && secret_equals(cfg->auth.password, pass, plen);
    for (size_t i = 0; i < cfg->auth.nusers; i++) {
        const struct config_user *u = &cfg->auth.users[i];
        if (strlen(u->name) == ulen && memcmp(u->name, user, ulen) == 0)
            return secret_equals(u->password, pass, plen);
    }
    return 0;
}

/* Read per command, not once per connection: a reload may add or drop auth.* */
int intercept_auth_required(const struct config *cfg)
{
    return cfg->auth.password || cfg->auth.nusers;
}

static const char wrongpass[] =
    "-WRONGPASS invalid username-password pair or user is disabled.\r\n";

/* respgate's own authentication, when auth.* is configured: AUTH is answered here
 * and never forwarded; HELLO's AUTH option is checked here and HELLO forwarded
 * without it. Returns 1 if the command was answered. */
int intercept_auth(struct client *c)
{
    const struct config *cfg = c->w->cfg;
    char buf[MESSAGE_ARGS_MAX_BYTES];
    const char *argv[MESSAGE_ARGS_MAX];
    size_t lens[MESSAGE_ARGS_MAX];
    int hello = strcmp(c->rp.name, "hello") == 0;
    if (!hello && strcmp(c->rp.name, "auth") != 0) return 0;
    int argc = message_args(c, buf, sizeof(buf), argv, lens);

    if (!hello) {
        message_discard(c);
        if (argc < 2 || argc > 3) {
            replyq_error(c, "-ERR %s\r\n", "wrong number of arguments for 'auth' command");
        } else if (credentials_ok(cfg, argc == 3 ? argv[1] : NULL, argc == 3 ? lens[1] : 0,
                                  argv[argc - 1], lens[argc - 1])) {
            c->authed = 1;
            replyq_local(c, "+OK\r\n", 5);
        } else {
            stats_add(&c->w->stats->errors[STATS_ERR_AUTH], 1);
            replyq_local(c, wrongpass, sizeof(wrongpass) - 1);
        }
        return 1;
    }
    for (int i = 2; i + 2 < argc; i++) { /* HELLO protover [AUTH user pass] [SETNAME n] */
        if (lens[i] != 4 || strncasecmp(argv[i], "auth", 4) != 0) continue;
        if (!intercept_credentials_ok(c, argv[i + 1], lens[i + 1], argv[i + 2], lens[i + 2])) {
            message_discard(c);
            return 1;
        }
        /* Forward HELLO without its AUTH: respgate, not Redis, checked it. */
        for (int k = i + 3; k < argc; k++) {
            argv[k - 3] = argv[k];
            lens[k - 3] = lens[k];
        }
        message_reframe(c, argv, lens, argc - 3);
        return 1;
    }
    if (!c->authed) {
        message_discard(c);
        intercept_noauth_hello(c);
        return 1;
    }
    return 0;
}

int intercept_credentials_ok(struct client *c, const char *user, size_t ulen, const char *pass,
                             size_t plen)
{
    if (credentials_ok(c->w->cfg, user, ulen, pass, plen)) {
        c->authed = 1;
        free(c->user); /* CLIENT LIST's user= */
        c->user =
            user && !(ulen == 7 && memcmp(user, "default", 7) == 0) ? strndup(user, ulen) : NULL;
        return 1;
    }
    stats_add(&c->w->stats->errors[STATS_ERR_AUTH], 1);
    replyq_local(c, wrongpass, sizeof(wrongpass) - 1);
    return 0;
}

void intercept_noauth_hello(struct client *c)
{
    stats_add(&c->w->stats->errors[STATS_ERR_AUTH], 1);
    replyq_error(c, "-NOAUTH %s\r\n",
                 "HELLO must be called with the client already "
                 "authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can "
                 "be used to authenticate the client and select the RESP protocol version at "
                 "the same time");
}

/* WAIT counts the replicas that have every write made on the connection it runs
 * on, so it must run where this client's writes went; if that connection is gone
 * (reconnected, master changed, or a transaction's connection since let go), no
 * count would be true: it gets an error. On a shared connection it also stalls the
 * clients behind it, so its timeout is capped (a smaller count on time-out is an
 * answer WAIT may always give). Returns 1 if answered or rewritten here. */
int intercept_wait(struct client *c)
{
    struct worker *w = c->w;
    if (c->rp.argc != (strcmp(c->rp.name, "waitaof") == 0 ? 4 : 3))
        return 0; /* Redis' own arity error, wherever it goes */
    int master = route_write(w->topo);
    struct upconn *target = c->pin ? c->pin
                            : master == ROUTE_NONE
                                ? NULL
                                : upstream_pick_master(w, master, c->up, c->proto);
    if (c->write_conn && (!target || target->id != c->write_conn)) {
        message_discard(c);
        replyq_error(c, "-ERR %s\r\n",
                     "WAIT cannot count replicas for this client's writes: "
                     "the connection that carried them is gone (reconnected, the master "
                     "changed, or a transaction ended)");
        return 1;
    }
    char buf[MESSAGE_ARGS_MAX_BYTES];
    const char *argv[MESSAGE_ARGS_MAX];
    size_t lens[MESSAGE_ARGS_MAX];
    int argc = message_args(c, buf, sizeof(buf), argv, lens);
    if (argc < 3 || lens[argc - 1] > 18) return 0; /* Redis answers a malformed WAIT */
    char num[20];
    memcpy(num, argv[argc - 1], lens[argc - 1]);
    num[lens[argc - 1]] = '\0';
    long long timeout = strtoll(num, NULL, 10), cap = w->cfg->limits.max_wait_ms;
    if (c->pin || (timeout > 0 && timeout <= cap)) return 0;
    argv[argc - 1] = num;
    lens[argc - 1] = (size_t)snprintf(num, sizeof(num), "%lld", cap);
    message_reframe(c, argv, lens, argc);
    return 1;
}

/* RESET: what Redis does to a connection, done to the client's view. Its pinned
 * connection, if any, is closed rather than reused (RESET there would have logged
 * respgate's own connection out), and respgate's authentication is asked again. */
void intercept_reset(struct client *c)
{
    if (c->npending) { /* after the replies in flight, in order */
        c->flags |= C_WAIT_REPLIES;
        return;
    }
    message_discard(c);
    session_end(c, "RESET"); /* nothing is in flight on it */
    c->session = 0;
    c->flags &= ~(unsigned)(C_TX_ABORTED | C_WATCH_LOST | C_TX_DIRTY);
    free(c->name);
    c->name = NULL;
    free(c->user);
    c->user = NULL;
    c->db = 0;
    c->authed = !intercept_auth_required(c->w->cfg);
    if (c->proto != 2) c->up = NULL; /* as Redis: back to RESP2 */
    c->proto = 2;
    memset(&c->scans, 0, sizeof(c->scans));
    replyq_local(c, "+RESET\r\n", 8);
}

/* Whether the master (as its HELLO reply said) is older than major.minor: CLIENT
 * SETINFO came with Redis 7.2, and an older one answers it with its own error. */
static int server_before(const struct worker *w, int major, int minor)
{
    int ma = 0, mi = 0;
    if (sscanf(w->redis_version, "%d.%d", &ma, &mi) != 2) return 0;
    return ma < major || (ma == major && mi < minor);
}

/* CLIENT UNBLOCK <id>, KILL ... ID <id>, TRACKING ... REDIRECT <id> name a client by
 * the id respgate gave it: the Redis connection of that client's own goes in its
 * place (idmap.h), and the command is framed again, to go on as is. An id with no
 * such connection becomes one no Redis connection has, so that Redis answers as for
 * any unknown id, after its own checks of the rest (never another connection's id:
 * KILL could close one of respgate's own). */
static int translate_ids(struct client *c, const char *sub)
{
    static const char nobody[] = "9223372036854775807";
    char buf[MESSAGE_ARGS_MAX_BYTES], nums[MESSAGE_ARGS_MAX][24];
    const char *argv[MESSAGE_ARGS_MAX];
    size_t lens[MESSAGE_ARGS_MAX];
    int argc = message_args(c, buf, sizeof(buf), argv, lens), unblock = 0, tracking = 0, n = 0;
    if (argc < 0) { /* its ids cannot be read, and must not reach Redis as they are */
        message_discard(c);
        replyq_error(c, "-ERR %s\r\n", "CLIENT command too long for respgate to read its ids");
        return 1;
    }
    if (argc < 3) return 0;
    if (strcasecmp(sub, "unblock") == 0)
        unblock = 1;
    else
        tracking = strcasecmp(sub, "tracking") == 0;
    for (int i = unblock ? 1 : 2; i + 1 < argc; i++) {
        const char *key = unblock ? NULL : tracking ? "redirect" : "id";
        if (key && (lens[i] != strlen(key) || strncasecmp(argv[i], key, lens[i]) != 0)) continue;
        const char *num = argv[i + 1];
        size_t len = lens[i + 1];
        int digits = len > 0 && len < 20 && (num[0] != '0' || len == 1);
        for (size_t k = 0; digits && k < len; k++)
            digits = num[k] >= '0' && num[k] <= '9';
        unsigned long long id = digits ? strtoull(num, NULL, 10) : 0;
        if (!id) return 0; /* Redis' own error for it ("greater than 0", not a number) */
        unsigned long long redis_id = idmap_get(c->w->shared->ids, id);
        if (redis_id) {
            lens[i + 1] = (size_t)snprintf(nums[n], sizeof(nums[n]), "%llu", redis_id);
            argv[i + 1] = nums[n];
        } else {
            argv[i + 1] = nobody;
            lens[i + 1] = sizeof(nobody) - 1;
        }
        n++;
        if (unblock) break;
    }
    if (!n) return 0;
    message_reframe(c, argv, lens, argc);
    c->flags |= C_IDS_DONE; /* until this message is consumed (message.c) */
    return 1;
}

/* CLIENT KILL ... ID <id> ...: the only form a tunnel may send Redis, which kills
 * one connection at most, and never one of respgate's shared ones. */
static int names_an_id(struct client *c)
{
    char buf[MESSAGE_ARGS_MAX_BYTES];
    const char *argv[MESSAGE_ARGS_MAX];
    size_t lens[MESSAGE_ARGS_MAX];
    int argc = message_args(c, buf, sizeof(buf), argv, lens);
    for (int i = 2; i + 1 < argc; i += 2)
        if (lens[i] == 2 && strncasecmp(argv[i], "id", 2) == 0) return 1;
    return 0;
}

int intercept_client_ids(struct client *c)
{
    const char *sub = c->rp.arg1;
    if (c->flags & C_IDS_DONE) return 0; /* framed again by translate_ids: as it is now */
    /* KILL is respgate's own (clientlist.h), but on a tunnel, where Redis answers. */
    int kill = strcasecmp(sub, "kill") == 0, tunnel = c->pin && c->pin->kind == UP_TUNNEL;
    if (strcasecmp(sub, "unblock") != 0 && strcasecmp(sub, "tracking") != 0 && !(kill && tunnel))
        return 0;
    if (kill && !names_an_id(c)) { /* by address or type it would hit respgate's own */
        message_discard(c);
        replyq_error(c, "-ERR %s\r\n",
                     "CLIENT KILL in pub/sub, MONITOR or CLIENT REPLY mode takes only ID "
                     "through respgate");
        return 1;
    }
    return translate_ids(c, sub);
}

int intercept_client(struct client *c)
{
    const char *sub = c->rp.arg1;
    char buf[MESSAGE_ARGS_MAX_BYTES], reply[64];
    const char *argv[MESSAGE_ARGS_MAX];
    size_t lens[MESSAGE_ARGS_MAX];
    static const struct {
        const char *sub;
        long long argc;
    } answered_here[] = {{"setinfo", 4}, {"getname", 2}, {"id", 2}, {"info", 2}, {"setname", 3}};
    for (size_t i = 0; (c->session & S_MULTI) && i < 5; i++)
        if (strcasecmp(sub, answered_here[i].sub) == 0 && c->rp.argc == answered_here[i].argc) {
            /* Redis would queue it and answer in EXEC's array, which comes from Redis:
             * refused, so that EXEC fails as after any refused command. */
            message_discard(c);
            replyq_error(c, "-ERR CLIENT %s is answered by respgate: not inside MULTI\r\n",
                         answered_here[i].sub);
            return 1;
        }
    if (strcasecmp(sub, "setinfo") == 0 && c->rp.argc == 4 && !server_before(c->w, 7, 2)) {
        message_discard(c); /* library name and version: nothing to keep per client yet */
        replyq_local(c, "+OK\r\n", 5);
    } else if (strcasecmp(sub, "getname") == 0 && c->rp.argc == 2) {
        message_discard(c);
        if (!c->name) {
            replyq_null(c);
        } else {
            int n = snprintf(reply, sizeof(reply), "$%zu\r\n", strlen(c->name));
            replyq_local(c, reply, (size_t)n);
            replyq_local(c, c->name, strlen(c->name));
            replyq_local(c, "\r\n", 2);
        }
    } else if (strcasecmp(sub, "id") == 0 && c->rp.argc == 2) {
        message_discard(c);
        int n = snprintf(reply, sizeof(reply), ":%llu\r\n", c->id);
        replyq_local(c, reply, (size_t)n);
    } else if (strcasecmp(sub, "info") == 0 && c->rp.argc == 2) {
        clientlist_info(c);
    } else if (strcasecmp(sub, "setname") == 0 && c->rp.argc == 3) {
        int argc = message_args(c, buf, sizeof(buf), argv, lens);
        message_discard(c);
        int ok = argc == 3;
        for (size_t i = 0; ok && i < lens[2]; i++)
            ok = argv[2][i] > ' ' && argv[2][i] <= '~';
        if (!ok) {
            replyq_error(c, "-ERR %s\r\n",
                         "Client names cannot contain spaces, newlines or special characters.");
            return 1;
        }
        free(c->name);
        c->name = lens[2] ? strndup(argv[2], lens[2]) : NULL;
        session_renamed(c);
        replyq_local(c, "+OK\r\n", 5);
    } else {
        return clientlist_take(c);
    }
    return 1;
}

/* XREAD and XREADGROUP block only with BLOCK (which comes before STREAMS); without
 * it they are an ordinary read (XREAD) or write (XREADGROUP). A command too large to
 * look at whole counts as blocking. */
int intercept_stream_read_blocks(struct client *c)
{
    char buf[MESSAGE_ARGS_MAX_BYTES];
    const char *argv[MESSAGE_ARGS_MAX];
    size_t lens[MESSAGE_ARGS_MAX];
    int argc = message_args(c, buf, sizeof(buf), argv, lens);
    if (argc < 0) return 1;
    for (int i = 1; i < argc; i++) {
        if (lens[i] == 7 && strncasecmp(argv[i], "streams", 7) == 0) return 0;
        if (lens[i] == 5 && strncasecmp(argv[i], "block", 5) == 0) return 1;
    }
    return argc == MESSAGE_ARGS_MAX; /* STREAMS not seen among the arguments read */
}

/* deny_commands: by the table built at startup, by name for commands the table
 * does not know (module commands). */
int intercept_denied(const struct client *c, const struct cmd_info *ci)
{
    const unsigned char *table = c->w->denied;
    if (ci) {
        unsigned char d = table[cmd_index(ci)];
        if (d != 2) return d;
        char full[RESP_NAME_MAX + RESP_ARG1_MAX + 2];
        int n = snprintf(full, sizeof(full), "%s|%s", c->rp.name, c->rp.arg1);
        for (int i = (int)c->rp.name_len + 1; i < n; i++)
            full[i] = (char)tolower((unsigned char)full[i]);
        const struct cmd_info *sub = cmd_lookup(full, (size_t)n);
        return sub && table[cmd_index(sub)] == 1;
    }
    for (size_t i = 0; i < c->w->cfg->ndeny; i++)
        if (strcmp(c->w->cfg->deny[i], c->rp.name) == 0) return 1;
    return 0;
}

void intercept_unsubscribe(struct client *c)
{
    size_t len = message_len(c);
    char *buf = malloc(len);
    struct evbuffer *out = evbuffer_new();
    if (!buf || !out) {
        free(buf);
        if (out) evbuffer_free(out);
        message_discard(c);
        replyq_error(c, "-ERR %s\r\n", "out of memory");
        return;
    }
    message_copy(c, buf);
    const char *name = c->rp.name;
    char push = c->proto == 3 ? '>' : '*'; /* RESP3: a push, as Redis */
    /* The framer checked the shape: *N CRLF, then $len CRLF data CRLF each. */
    const char *p = memchr(buf, '\n', len) + 1, *end = buf + len;
    int argc = 0;
    while (p < end) {
        size_t n = strtoul(p + 1, NULL, 10);
        p = memchr(p, '\n', (size_t)(end - p)) + 1;
        if (argc++ > 0) {
            evbuffer_add_printf(out, "%c3\r\n$%zu\r\n%s\r\n$%zu\r\n", push, strlen(name), name, n);
            evbuffer_add(out, p, n);
            evbuffer_add(out, "\r\n:0\r\n", 6);
        }
        p += n + 2;
    }
    if (argc == 1)
        evbuffer_add_printf(out, "%c3\r\n$%zu\r\n%s\r\n%s:0\r\n", push, strlen(name), name,
                            c->proto == 3 ? "_\r\n" : "$-1\r\n");
    free(buf);
    message_discard(c);
    size_t n = evbuffer_get_length(out);
    replyq_local(c, (const char *)evbuffer_pullup(out, -1), n);
    evbuffer_free(out);
}
