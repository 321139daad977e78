/* message: see message.h. */
#include "message.h"
#include "command.h"
#include "upstream.h"

#include <stdlib.h>
#include <string.h>

size_t message_len(const struct client *c)
{
    return c->rp.inl ? c->rp.inl_len : c->rp.len;
}

void message_copy(struct client *c, char *dst)
{
    if (c->rp.inl)
        memcpy(dst, c->rp.inl, c->rp.inl_len);
    else
        evbuffer_copyout(sock_input(c->sock), dst, c->rp.len);
}

void message_next(struct client *c)
{
    c->flags &= ~(unsigned)C_IDS_DONE;
    resp_reset(&c->rp);
    c->scanned = 0;
    c->framed = 0;
}

void message_discard(struct client *c)
{
    evbuffer_drain(sock_input(c->sock), c->rp.len);
    message_next(c);
}

int message_args(struct client *c, char *buf, size_t cap, const char **argv, size_t *lens)
{
    size_t len = message_len(c);
    if (len > cap || c->rp.argc > MESSAGE_ARGS_MAX) return -1; /* never a part of it */
    message_copy(c, buf);
    /* The framer has checked the shape: *N CRLF, then $len CRLF data CRLF each. */
    const char *p = memchr(buf, '\n', len) + 1, *end = buf + len;
    int argc = 0;
    while (p < end) {
        size_t n = strtoul(p + 1, NULL, 10);
        p = memchr(p, '\n', (size_t)(end - p)) + 1;
        argv[argc] = p;
        lens[argc++] = n;
        p += n + 2;
    }
    return argc;
}

void message_reframe(struct client *c, const char *const *argv, const size_t *lens, int argc)
{
    struct evbuffer *rebuilt = evbuffer_new();
    evbuffer_add_printf(rebuilt, "*%d\r\n", argc);
    for (int k = 0; k < argc; k++) {
        evbuffer_add_printf(rebuilt, "$%zu\r\n", lens[k]);
        evbuffer_add(rebuilt, argv[k], lens[k]);
        evbuffer_add(rebuilt, "\r\n", 2);
    }
    evbuffer_drain(sock_input(c->sock), c->rp.len);
    evbuffer_prepend_buffer(sock_input(c->sock), rebuilt);
    evbuffer_free(rebuilt);
    message_next(c);
}

int message_durable(const struct client *c, unsigned flags)
{
    if (!c->w->cfg->durability.min_replicas) return 0;
    if (c->session & S_MULTI) return c->rp.argc == 1 && strcmp(c->rp.name, "exec") == 0;
    if (flags & CMD_WRITE) return 1;
    if (flags & CMD_SCRIPTING) return !(flags & CMD_READONLY);
    return flags == 0; /* unknown to the table and the master's COMMAND: it may write */
}

void message_send(struct client *c, struct upconn *u, struct req *r)
{
    struct worker *w = c->w;
    if (r && r->write) c->write_conn = u->id;
    c->sent = 1;
    enum stats_route route =
        u->kind != UP_SHARED || u->node == route_write(w->topo) ? STATS_MASTER : STATS_REPLICA;
    stats_add(&w->stats->requests[route][c->cls], 1);
    if (c->cls == STATS_READ) stats_add(&w->stats->reads[u->node], 1);
    if (c->rp.inl) {
        evbuffer_drain(sock_input(c->sock), c->rp.len);
        upstream_send(u, r, NULL, c->rp.inl, c->rp.inl_len);
    } else {
        upstream_send(u, r, sock_input(c->sock), NULL, c->rp.len);
    }
    message_next(c);
    if (upstream_output_len(u) > UPSTREAM_OUT_HIGH && !(c->flags & C_PAUSED_UP)) {
        c->flags |= C_PAUSED_UP;
        c->waiting = u;
        u->nwaiting++;
    }
}
