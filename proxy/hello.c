/* hello: see hello.h. */
#include "hello.h"
#include "intercept.h"
#include "message.h"
#include "replyq.h"
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* As Redis' string2ll: "0", or an optional '-' then 1-9 then digits. */
static int protover(const char *s, size_t n, long long *out)
{
    char buf[24];
    if (n == 0 || n >= sizeof(buf)) return 0;
    memcpy(buf, s, n);
    buf[n] = '\0';
    const char *d = buf[0] == '-' ? buf + 1 : buf;
    if (!*d || (d[0] == '0' && (d[1] || d != buf))) return 0;
    for (const char *p = d; *p; p++)
        if (*p < '0' || *p > '9') return 0;
    char *end;
    *out = strtoll(buf, &end, 10);
    return *end == '\0';
}

static int name_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~') return 0;
    return 1;
}

/* The reply, in the protocol just chosen: who answers is "the master", as the
 * client sees it. */
static void reply(struct client *c)
{
    const char *version = c->w->redis_version[0] ? c->w->redis_version : "7.0.0";
    char buf[512];
    int n =
        snprintf(buf, sizeof(buf),
                 "%s\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$%zu\r\n%s\r\n"
                 "$5\r\nproto\r\n:%d\r\n$2\r\nid\r\n:%llu\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n"
                 "$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n",
                 c->proto == 3 ? "%7" : "*14", strlen(version), version, c->proto, c->id);
    replyq_local(c, buf, (size_t)n);
}

int hello_take(struct client *c)
{
    char buf[MESSAGE_ARGS_MAX_BYTES], err[160];
    const char *argv[MESSAGE_ARGS_MAX];
    size_t lens[MESSAGE_ARGS_MAX];
    if (c->pin) return 0;
    int argc = message_args(c, buf, sizeof(buf), argv, lens);
    if (argc < 1 || argc > MESSAGE_ARGS_MAX) return 0;
    long long ver = c->proto;
    const char *name = NULL;
    size_t nlen = 0;
    if (argc >= 2 && !protover(argv[1], lens[1], &ver)) {
        message_discard(c);
        replyq_error(c, "-ERR %s\r\n", "Protocol version is not an integer or out of range");
        return 1;
    }
    if (ver < 2 || ver > 3) {
        message_discard(c);
        replyq_error(c, "-NOPROTO %s\r\n", "unsupported protocol version");
        return 1;
    }
    for (int j = 2; j + 2 < argc; j++)
        if (lens[j] == 4 && strncasecmp(argv[j], "auth", 4) == 0 &&
            !intercept_auth_required(c->w->cfg))
            return 0; /* Redis' users: on a connection of the client's own */
    if (ver != c->proto && c->npending) {
        c->flags |= C_WAIT_REPLIES; /* the replies before it come in the old protocol */
        return 1;
    }
    message_discard(c);
    for (int j = 2; j < argc; j++) { /* in order, as Redis: AUTH is checked where it is */
        int more = argc - 1 - j;
        if (lens[j] == 4 && strncasecmp(argv[j], "auth", 4) == 0 && more >= 2) {
            if (!intercept_credentials_ok(c, argv[j + 1], lens[j + 1], argv[j + 2], lens[j + 2]))
                return 1;
            j += 2;
        } else if (lens[j] == 7 && strncasecmp(argv[j], "setname", 7) == 0 && more >= 1) {
            name = argv[++j], nlen = lens[j];
        } else {
            snprintf(err, sizeof(err), "Syntax error in HELLO option '%.*s'",
                     (int)(lens[j] < 64 ? lens[j] : 64), argv[j]);
            replyq_error(c, "-ERR %s\r\n", err);
            return 1;
        }
    }
    if (!c->authed) {
        intercept_noauth_hello(c);
        return 1;
    }
    if (name && !name_ok(name, nlen)) {
        replyq_error(c, "-ERR %s\r\n",
                     "Client names cannot contain spaces, newlines or special characters.");
        return 1;
    }
    if (name) {
        free(c->name);
        c->name = nlen ? strndup(name, nlen) : NULL;
        session_renamed(c);
    }
    if (ver != c->proto) {
        c->proto = (int)ver;
        c->up = NULL; /* its shared connection speaks the other protocol */
    }
    reply(c);
    return 1;
}
