/* scan: see scan.h. */
#include "scan.h"
#include "message.h"
#include "route.h"

#include <string.h>

int scan_is(const struct client *c)
{
    const char *n = c->rp.name;
    return strcmp(n, "scan") == 0 ||
           (strlen(n) == 5 && strcmp(n + 1, "scan") == 0 && strchr("shz", n[0]));
}

/* The cursor argument: 1 for SCAN, 2 after the key for the others. 1 if it is "0",
 * 0 if another, -1 if absent (Redis' arity error) or unreadable. */
static int cursor_is_zero(struct client *c)
{
    char buf[MESSAGE_ARGS_MAX_BYTES];
    const char *argv[MESSAGE_ARGS_MAX];
    size_t lens[MESSAGE_ARGS_MAX];
    int at = strcmp(c->rp.name, "scan") == 0 ? 1 : 2;
    int argc = message_args(c, buf, sizeof(buf), argv, lens);
    if (argc <= at) return -1;
    return lens[at] == 1 && argv[at][0] == '0';
}

int scan_continues(const struct client *c)
{
    return cursor_is_zero((struct client *)c) == 0;
}

int scan_route(struct client *c, int routed)
{
    const struct topology *t = c->w->topo;
    int zero = cursor_is_zero(c);
    if (zero < 0) return routed;
    if (zero) {
        c->scan_node = routed;
        return routed;
    }
    int n = c->scan_node;
    if (n == ROUTE_NONE) return route_write(t);
    if (t && (size_t)n < t->nnodes && t->nodes[n].listed && t->nodes[n].reachable) return n;
    return SCAN_GONE;
}
