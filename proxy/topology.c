/* topology: see topology.h. */
#include "topology.h"
#include "command.h"

#include <stdlib.h>
#include <time.h>

struct topology *topo_create(size_t nnodes)
{
    struct topology *t = calloc(1, sizeof(*t) + nnodes * sizeof(t->nodes[0]));
    if (!t) return NULL;
    atomic_init(&t->refs, 1);
    t->master = -1;
    t->reference = -1;
    t->nnodes = nnodes;
    return t;
}

struct topology *topo_acquire(struct topology *t)
{
    if (t) atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    return t;
}

void topo_release(struct topology **tp)
{
    struct topology *t = *tp;
    *tp = NULL;
    if (t && atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1) {
        cmd_overlay_release(&t->commands);
        free(t);
    }
}

long long topo_lag(const struct topology *t, size_t i)
{
    if (t->reference < 0 || i >= t->nnodes) return -1;
    const struct topo_node *m = &t->nodes[t->reference], *n = &t->nodes[i];
    if (n->role != TOPO_REPLICA || n->follows != t->reference) return -1;
    long long lag = m->offset - n->offset;
    return lag < 0 ? 0 : lag;
}

int64_t topo_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
