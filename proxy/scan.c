/* scan: see scan.h. */
#include "scan.h"
#include "message.h"
#include "route.h"

#include <stdlib.h>
#include <string.h>

int scan_is(const struct client *c)
{
    const char *n = c->rp.name;
    return strcmp(n, "scan") == 0 ||
           (strlen(n) == 5 && strcmp(n + 1, "scan") == 0 && strchr("shz", n[0]));
}

/* The cursor argument (1 for SCAN, 2 after the key for the others) as a number:
 * 0 for "0", -1 if absent (Redis' arity error), unreadable or not a number. */
static long long cursor_arg(struct client *c, unsigned long long *cursor)
{
    char buf[MESSAGE_ARGS_MAX_BYTES], num[24];
    const char *argv[MESSAGE_ARGS_MAX];
    size_t lens[MESSAGE_ARGS_MAX];
    int at = strcmp(c->rp.name, "scan") == 0 ? 1 : 2;
    int argc = message_args(c, buf, sizeof(buf), argv, lens);
    if (argc <= at || lens[at] == 0 || lens[at] >= sizeof(num)) return -1;
    memcpy(num, argv[at], lens[at]);
    num[lens[at]] = '\0';
    char *end;
    *cursor = strtoull(num, &end, 10);
    return *end ? -1 : *cursor != 0;
}

int scan_route(struct client *c, int routed, int *continues)
{
    const struct topology *t = c->w->topo;
    unsigned long long cursor;
    *continues = cursor_arg(c, &cursor) == 1;
    if (!*continues) return routed;
    for (int i = 0; i < SCAN_KEPT; i++) {
        if (c->scans.cursor[i] != cursor) continue;
        int n = c->scans.node[i];
        if (t && n >= 0 && (size_t)n < t->nnodes && t->nodes[n].listed && t->nodes[n].reachable)
            return n;
        return SCAN_GONE;
    }
    return route_write(t);
}

void scan_note(struct client *c, struct evbuffer *reply, size_t len, int node)
{
    char head[48], *p, *end;
    size_t n = evbuffer_copyout(reply, head, len < sizeof(head) - 1 ? len : sizeof(head) - 1);
    head[n] = '\0';
    /* "*2\r\n$<n>\r\n<cursor>\r\n" (RESP2 and RESP3 alike) */
    if (strncmp(head, "*2\r\n$", 5) != 0 || !(p = strstr(head + 5, "\r\n"))) return;
    unsigned long long cursor = strtoull(p + 2, &end, 10);
    if (end == p + 2 || strncmp(end, "\r\n", 2) != 0 || cursor == 0) return;
    unsigned i = c->scans.next++ % SCAN_KEPT;
    c->scans.cursor[i] = cursor;
    c->scans.node[i] = node;
}
