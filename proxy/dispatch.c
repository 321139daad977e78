/* dispatch: see dispatch.h. */
#include "dispatch.h"
#include "command.h"
#include "hello.h"
#include "hold.h"
#include "intercept.h"
#include "message.h"
#include "replyq.h"
#include "scan.h"
#include "session.h"
#include "upstream.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int is_read(unsigned flags)
{
    return (flags & CMD_READONLY) && !(flags & CMD_WRITE);
}

enum { NODE_ANSWERED = -2 }; /* choose_node queued an error reply */

/* Where a request goes: reads (commands Redis flags read-only) by the router,
 * everything else - writes, scripts, unknown commands - to the master. Returns a
 * node; ROUTE_NONE if it needs a master and none is writable now (it waits);
 * NODE_ANSWERED with an error reply queued. */
static int choose_node(struct client *c, int read)
{
    struct worker *w = c->w;
    int ryw = w->cfg->routing.read_your_writes;
    if (!read || (ryw && c->writes_inflight))
        return route_write(w->topo); /* reads behind its own write: on the same connection */
    if (ryw) route_horizon_update(&c->horizon, w->topo);
    int node = route_read(w->topo, &w->policy, ryw ? &c->horizon : NULL, w->outstanding, &w->rr);
    if (node == ROUTE_NONE && route_write(w->topo) != ROUTE_NONE) {
        stats_add(&w->stats->errors[STATS_ERR_NO_REPLICA], 1);
        replyq_error(c, "-ERR no replica is eligible for reads %s\r\n",
                     "(routing.no_replica is \"error\")");
        return NODE_ANSWERED;
    }
    return node;
}

/* A request keeps a copy of itself (REQ_COPY_MAX at most), so that it can be sent
 * once more: a read whose replica dies before answering, a request a node refuses
 * because it is not what the topology said (a demoted master, a replica that lost
 * its master). Most fit in the request itself: no malloc. */
static void keep_copy(struct client *c, struct req *r)
{
    size_t len = message_len(c);
    if (len > REQ_COPY_MAX) return;
    if (!(r->copy = len <= sizeof(r->small) ? r->small : malloc(len))) return;
    r->copy_len = len;
    message_copy(c, r->copy);
}

/* Shared connections: whatever goes to the master stays on one connection per
 * client (picked on its first request for the master, kept while verified), so
 * Redis runs the client's commands in its order and a WAIT covers its writes;
 * reads to replicas pick a connection of the replica's pool per request. */
static int take_shared(struct client *c, unsigned flags)
{
    int read = is_read(flags);
    if (!read && c->replica_reads) { /* as on one connection: earlier reads see the old */
        c->flags |= C_WAIT_READS;
        return 1;
    }
    int node = choose_node(c, read);
    if (node == NODE_ANSWERED) {
        message_discard(c);
        return 1;
    }
    int master = route_write(c->w->topo), scan = read && node != ROUTE_NONE && scan_is(c);
    int continues = 0; /* a SCAN from a cursor: it may go nowhere else */
    if (scan) node = scan_route(c, node, &continues);
    struct upconn *u = NULL;
    if (node >= 0 && node != master && !(u = upstream_pick(c->w, node, NULL, c->proto)))
        /* The replica went away before the probe noticed: the master has the data,
         * not the cursor. */
        node = continues ? SCAN_GONE : master;
    if (node == SCAN_GONE) {
        message_discard(c);
        replyq_error(c, "-ERR %s\r\n",
                     "the node this SCAN cursor comes from left; start again from cursor 0");
        return 1;
    }
    if (!u) {
        /* A client with nothing in flight leaves a stalled connection: order holds. */
        /* ... or one where another client's script runs: Redis would answer
         * this client -BUSY, not make it wait behind the script. */
        if (c->up && !c->ninflight && (upstream_stalled(c->up) || c->up->scripts)) c->up = NULL;
        if (master == ROUTE_NONE || !(u = upstream_pick_master(c->w, master, c->up, c->proto))) {
            hold_client(c);
            return 1;
        }
        c->up = u;
        c->hold_until = 0;
    }
    if (!c->ninflight && upstream_stalled(u)) {
        /* Every connection there is stalled: this one request goes on a connection of
         * its own (an idle one, usually), to get what Redis answers (-BUSY). */
        session_start(c, flags, 0);
        return 1;
    }
    struct req *r = replyq_push(c, !read);
    r->durable = message_durable(c, flags);
    r->scan = scan;
    if (!continues) keep_copy(c, r); /* a cursor is no use elsewhere */
    if (u->node != master) {
        r->replica_read = 1;
        c->replica_reads++;
    }
    r->script = (flags & CMD_SCRIPTING) != 0;
    message_send(c, u, r);
    return 1;
}

/* Before respgate's AUTH: HELLO's own AUTH option is checked in its order. */
static int take_hello(struct client *c, unsigned flags)
{
    (void)flags;
    if (strcmp(c->rp.name, "hello") != 0 || intercept_denied(c, c->ci)) return 0;
    return hello_take(c);
}

static int take_auth(struct client *c, unsigned flags)
{
    (void)flags;
    return intercept_auth_required(c->w->cfg) && intercept_auth(c);
}

/* As Redis: nothing else is said before AUTH. */
static int take_noauth(struct client *c, unsigned flags)
{
    if (c->authed || !intercept_auth_required(c->w->cfg) || (flags & CMD_QUIT)) return 0;
    stats_add(&c->w->stats->errors[STATS_ERR_AUTH], 1);
    message_discard(c);
    replyq_error(c, "-NOAUTH %s\r\n", "Authentication required.");
    return 1;
}

static int take_denied(struct client *c, unsigned flags)
{
    (void)flags;
    if (!intercept_denied(c, c->ci)) return 0;
    stats_add(&c->w->stats->errors[STATS_ERR_DENIED], 1);
    replyq_error(c, "-ERR command '%s' is not allowed through respgate (deny_commands)\r\n",
                 c->rp.name); /* before the message, and its name, are dropped */
    message_discard(c);
    return 1;
}

static int take_lost_session(struct client *c, unsigned flags)
{
    (void)flags;
    return (c->flags & (C_TX_ABORTED | C_WATCH_LOST)) && session_lost(c);
}

static int arity_ok(const struct cmd_info *ci, long long argc)
{
    return ci->arity > 0 ? argc == ci->arity : argc >= -(long long)ci->arity;
}

/* The row of the subcommand ("client|reply"), or ci itself. */
static const struct cmd_info *subcommand(const struct client *c, const struct cmd_info *ci)
{
    char full[RESP_NAME_MAX + RESP_ARG1_MAX + 2];
    size_t n = strlen(ci->name), sub = c->rp.arg1_len;
    if (!(ci->flags & CMD_CONTAINER) || c->rp.argc < 2 || sub > RESP_ARG1_MAX) return ci;
    memcpy(full, ci->name, n);
    full[n] = '|';
    for (size_t i = 0; i < sub; i++)
        full[n + 1 + i] = (char)tolower((unsigned char)c->rp.arg1[i]);
    const struct cmd_info *row = cmd_lookup(full, n + 1 + sub);
    return row ? row : ci;
}

/* Commands respgate acts on (sessions, tunnels, the ones it answers) with the wrong
 * number of arguments get Redis' own error here, before they could start a session
 * or be taken for what they are not ("MULTI x" is no MULTI). On a connection of its
 * own the client hears it from Redis itself. */
static int take_bad_arity(struct client *c, unsigned flags)
{
    (void)flags;
    if (c->pin || !c->ci) return 0;
    const struct cmd_info *ci = subcommand(c, c->ci);
    if (arity_ok(ci, c->rp.argc)) return 0;
    message_discard(c);
    replyq_error(c, "-ERR wrong number of arguments for '%s' command\r\n", ci->name);
    return 1;
}

static int take_wait(struct client *c, unsigned flags)
{
    (void)flags;
    if (c->pin && c->pin->kind == UP_TUNNEL) return 0; /* Redis answers: the writes went there */
    return intercept_wait(c);
}

static int take_ids(struct client *c, unsigned flags)
{
    (void)flags;
    return intercept_client_ids(c);
}

static int take_tunnel(struct client *c, unsigned flags)
{
    if (!c->pin || c->pin->kind != UP_TUNNEL) return 0;
    session_forward(c, flags);
    return 1;
}

static int take_unsubscribe(struct client *c, unsigned flags)
{
    (void)flags;
    if (c->session & S_MULTI) return 0; /* queued like any command: one QUEUED */
    intercept_unsubscribe(c);
    return 1;
}

static int take_quit(struct client *c, unsigned flags)
{
    (void)flags;
    message_discard(c);
    replyq_local(c, "+OK\r\n", 5);
    c->flags |= C_CLOSING;
    return 1;
}

static int take_client(struct client *c, unsigned flags)
{
    (void)flags;
    return intercept_client(c);
}

static int take_reset(struct client *c, unsigned flags)
{
    (void)flags;
    if (c->rp.argc != 1) return 0; /* Redis refuses it: on a session, it says so */
    intercept_reset(c);
    return 1;
}

static int take_new_tunnel(struct client *c, unsigned flags)
{
    if (!session_needs_tunnel(c, flags)) return 0;
    session_start(c, flags, 1);
    return 1;
}

static int take_pinned(struct client *c, unsigned flags)
{
    if (!c->pin) return 0;
    session_forward(c, flags);
    return 1;
}

/* SCRIPT KILL and FUNCTION KILL go on a connection of their own: on a shared one
 * they would wait behind the very script they are to stop. */
static int is_kill(const struct client *c)
{
    return strcasecmp(c->rp.arg1, "kill") == 0 &&
           (strcmp(c->rp.name, "script") == 0 || strcmp(c->rp.name, "function") == 0);
}

static int take_session(struct client *c, unsigned flags)
{
    int session = (flags & CMD_SESSION) ||
                  ((flags & CMD_CLIENT) && session_client_sub_is_stateful(c->rp.arg1)) ||
                  ((flags & CMD_CONTAINER) && is_kill(c));
    if (!session) return 0;
    session_start(c, flags, 0);
    return 1;
}

/* In order; a step is asked only about commands with one of its flags (0: all). */
static const struct step {
    unsigned when;
    int (*take)(struct client *c, unsigned flags);
} steps[] = {
    {CMD_TUNNEL, take_hello},
    {0, take_auth},
    {0, take_noauth},
    {0, take_denied},
    {0, take_lost_session},
    {CMD_SESSION | CMD_QUIT | CMD_CLIENT | CMD_TUNNEL | CMD_WAIT | CMD_RESET | CMD_UNSUB |
         CMD_CONTAINER,
     take_bad_arity},
    {CMD_WAIT, take_wait},
    {CMD_CLIENT, take_ids},
    {0, take_tunnel},
    {CMD_UNSUB, take_unsubscribe},
    {CMD_QUIT, take_quit},
    {CMD_CLIENT, take_client},
    {CMD_RESET, take_reset},
    {0, take_new_tunnel},
    {0, take_pinned},
    {CMD_SESSION | CMD_CLIENT | CMD_CONTAINER, take_session},
    {0, take_shared},
};

static void route(struct client *c)
{
    struct resp_parser *p = &c->rp;
    if (p->argc == 0) { /* an empty command: Redis sends nothing back either */
        message_discard(c);
        return;
    }
    const struct cmd_info *ci =
        p->name_len <= RESP_NAME_MAX ? cmd_lookup(p->name, p->name_len) : NULL;
    /* Names the built-in table lacks may be known to the master (modules, newer Redis). */
    const struct cmd_info *fi =
        ci || !c->w->topo ? ci : cmd_overlay_lookup(c->w->topo->commands, p->name, p->name_len);
    unsigned flags = cmd_flags_of(fi, p->name, p->name_len);
    c->cls = stats_class_of(flags);
    if ((flags & CMD_BLOCKING) && p->name[0] == 'x' && !intercept_stream_read_blocks(c))
        flags &= ~(unsigned)(CMD_BLOCKING | CMD_SESSION);
    c->ci = ci;
    c->last_cmd = ci && (ci->flags & CMD_CONTAINER) ? subcommand(c, ci) : ci;
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
        if ((!steps[i].when || (flags & steps[i].when)) && steps[i].take(c, flags)) return;
}

/* Every request is counted once: where it went when it is sent, or as answered
 * here ("local") when it was not and is not waiting to be. */
void dispatch(struct client *c)
{
    c->sent = 0;
    route(c);
    if (!c->sent && !(c->flags & (C_WAIT_MASTER | C_WAIT_REPLIES | C_WAIT_READS)))
        stats_add(&c->w->stats->requests[STATS_LOCAL][c->cls], 1);
}
