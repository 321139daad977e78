/* avail: see avail.h. Downtime is kept as disjoint spans sorted by start (merged
 * on insert), plus the span open now while no writable master is known. */
#include "avail.h"
#include "log.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPANS_MAX 4096 /* beyond this, the oldest are folded into a total */
#define OFFSETS_KEPT 256
#define NS 1e9

struct span {
    int64_t start, end;
};

struct avail {
    pthread_mutex_t lock;
    int64_t start_ns;
    int64_t down_since; /* no writable master known since; 0 while there is one */
    struct span *spans;
    int nspans;
    double folded_s;       /* downtime of spans dropped for room */
    double last_available; /* what was last reported: a counter never goes back */
    /* Failovers, newest at (head - 1) mod KEPT. */
    struct avail_failover failovers[AVAIL_FAILOVERS_KEPT];
    int head;
    unsigned long nfailovers;
    int master; /* the last master named; -1 before the first */
    /* For the RPO: the master's offset over time, and each replica's last offset
     * while it followed that master. */
    struct {
        int64_t at;
        long long offset;
    } offsets[OFFSETS_KEPT];
    int noffsets, offsets_head;
    long long replica_offset[TOPO_MAX_NODES];
    int64_t replica_at[TOPO_MAX_NODES]; /* 0: not seen following the master */
};

struct avail *avail_create(void)
{
    struct avail *a = calloc(1, sizeof(*a));
    if (!a || !(a->spans = calloc(SPANS_MAX, sizeof(*a->spans)))) {
        free(a);
        return NULL;
    }
    pthread_mutex_init(&a->lock, NULL);
    a->start_ns = topo_now_ns();
    a->down_since = a->start_ns; /* until a snapshot names a writable master */
    a->master = -1;
    return a;
}

void avail_destroy(struct avail **ap)
{
    struct avail *a = *ap;
    if (!a) return;
    pthread_mutex_destroy(&a->lock);
    free(a->spans);
    free(a);
    *ap = NULL;
}

/* Adds [s, e] to the spans, merging it with those it touches. */
static void add_span(struct avail *a, int64_t s, int64_t e)
{
    if (e <= s) return;
    int i = 0, k;
    while (i < a->nspans && a->spans[i].end < s)
        i++;
    for (k = i; k < a->nspans && a->spans[k].start <= e; k++) {
        if (a->spans[k].start < s) s = a->spans[k].start;
        if (a->spans[k].end > e) e = a->spans[k].end;
    }
    /* spans[i, k) merge into one at i. */
    if (k == i) {
        if (a->nspans == SPANS_MAX) {
            a->folded_s += (double)(a->spans[0].end - a->spans[0].start) / NS;
            memmove(&a->spans[0], &a->spans[1], (size_t)(--a->nspans) * sizeof(*a->spans));
            if (i > 0) i--;
        }
        memmove(&a->spans[i + 1], &a->spans[i], (size_t)(a->nspans - i) * sizeof(*a->spans));
        a->nspans++;
    } else if (k > i + 1) {
        memmove(&a->spans[i + 1], &a->spans[k], (size_t)(a->nspans - k) * sizeof(*a->spans));
        a->nspans -= k - i - 1;
    }
    a->spans[i] = (struct span){s, e};
}

static int64_t overlap(int64_t s1, int64_t e1, int64_t s2, int64_t e2)
{
    int64_t s = s1 > s2 ? s1 : s2, e = e1 < e2 ? e1 : e2;
    return e > s ? e - s : 0;
}

/* Downtime within [from, to], the open span included (counted once). */
static double downtime(const struct avail *a, int64_t from, int64_t to)
{
    int64_t total = 0, open = a->down_since;
    for (int i = 0; i < a->nspans; i++) {
        const struct span *sp = &a->spans[i];
        total += overlap(sp->start, sp->end, from, to);
        if (open) total -= overlap(sp->start, sp->end, open > from ? open : from, to);
    }
    if (open) total += overlap(open, to, from, to);
    return (double)total / NS;
}

void avail_report(struct avail *a, int64_t since_ns, int64_t until_ns)
{
    pthread_mutex_lock(&a->lock);
    add_span(a, since_ns, until_ns);
    pthread_mutex_unlock(&a->lock);
}

static const char *region_name(const struct config *cfg, int region)
{
    return region >= 0 && (size_t)region < cfg->nregions ? cfg->regions[region].name : "";
}

/* How far node to was behind the master it replaced, from the last probes. */
static void estimate_rpo(const struct avail *a, int to, struct avail_failover *f)
{
    if (!a->replica_at[to] || !a->noffsets) return;
    int newest = (a->offsets_head + OFFSETS_KEPT - 1) % OFFSETS_KEPT;
    long long have = a->replica_offset[to], last = a->offsets[newest].offset;
    f->rpo_known = 1;
    f->rpo_bytes = last > have ? last - have : 0;
    if (!f->rpo_bytes) return;
    /* The writes that may be lost are those the master made after its offset was
     * last seen at or below the replica's: from that sample to the newest. */
    int64_t since = 0;
    for (int n = 0; n < a->noffsets; n++) {
        int i = (newest - n + OFFSETS_KEPT) % OFFSETS_KEPT;
        since = a->offsets[i].at;
        if (a->offsets[i].offset <= have) break;
    }
    f->rpo_s = (double)(a->offsets[newest].at - since) / NS;
}

static void track_offsets(struct avail *a, const struct topology *t)
{
    if (t->reference < 0) return;
    const struct topo_node *m = &t->nodes[t->reference];
    int newest = (a->offsets_head + OFFSETS_KEPT - 1) % OFFSETS_KEPT;
    if (m->role == TOPO_MASTER && m->reachable && m->probed_ns &&
        (!a->noffsets || a->offsets[newest].at != m->probed_ns)) {
        a->offsets[a->offsets_head].at = m->probed_ns;
        a->offsets[a->offsets_head].offset = m->offset;
        a->offsets_head = (a->offsets_head + 1) % OFFSETS_KEPT;
        if (a->noffsets < OFFSETS_KEPT) a->noffsets++;
    }
    for (size_t i = 0; i < t->nnodes; i++) {
        const struct topo_node *n = &t->nodes[i];
        if (n->role == TOPO_REPLICA && n->reachable && n->follows == t->reference && n->probed_ns) {
            a->replica_offset[i] = n->offset;
            a->replica_at[i] = n->probed_ns;
        }
    }
}

/* Why the master moved, as far as the snapshot of the move tells. */
static void reason_of(const struct topology *t, const struct topo_node *from, const char *asked,
                      char *out, size_t n)
{
    const char *cause = asked                        ? asked
                        : !from->reachable           ? "the old master does not answer"
                        : from->role == TOPO_REPLICA ? "the old master was demoted to replica"
                                                     : "the old master still reports role master";
    snprintf(out, n, "%s; %s", cause, t->master_reason ? t->master_reason : "the topology changed");
}

int avail_observe(struct avail *a, const struct topology *t, const struct config *cfg,
                  const char *asked, struct avail_event *ev)
{
    int64_t now = topo_now_ns();
    int writable = t->master >= 0 && t->nodes[t->master].reachable;
    int moved = 0;
    pthread_mutex_lock(&a->lock);
    if (writable && a->down_since) {
        add_span(a, a->down_since, now);
        a->down_since = 0;
    } else if (!writable && !a->down_since) {
        a->down_since = now;
    }
    if (t->master >= 0 && t->master != a->master) {
        if (a->master >= 0 && (size_t)a->master < t->nnodes) {
            const struct topo_node *from = &t->nodes[a->master], *to = &t->nodes[t->master];
            memset(ev, 0, sizeof(*ev));
            struct avail_failover *f = &ev->f;
            f->at_ns = now;
            f->wall = time(NULL);
            snprintf(f->from, sizeof(f->from), "%s", from->name);
            snprintf(f->to, sizeof(f->to), "%s", to->name);
            snprintf(f->from_region, sizeof(f->from_region), "%s", region_name(cfg, from->region));
            snprintf(f->to_region, sizeof(f->to_region), "%s", region_name(cfg, to->region));
            reason_of(t, from, asked, f->reason, sizeof(f->reason));
            estimate_rpo(a, t->master, f);
            ev->switched = 1;
            ev->region_changed = // known on both sides, and not the same
                f->from_region[0] && f->to_region[0] && strcmp(f->from_region, f->to_region) != 0;
            a->failovers[a->head] = *f;
            a->head = (a->head + 1) % AVAIL_FAILOVERS_KEPT;
            a->nfailovers++;
            moved = 1;
        }
        a->master = t->master;
        a->noffsets = a->offsets_head = 0; /* replicas are measured against the new one */
        memset(a->replica_at, 0, sizeof(a->replica_at));
    }
    track_offsets(a, t);
    pthread_mutex_unlock(&a->lock);
    return moved;
}

/* The downtime span around a switch: from the first write that waited or failed
 * (or the master being lost) to the first that succeeded after it. Each worker and
 * the topology report spans of their own: the longest one around the switch is what
 * the clients that waited longest lived through. */
static double rto_of(const struct avail *a, int64_t at, int64_t now)
{
    const int64_t slack = 1000000; /* a span closed by the switch itself ends at it */
    int64_t longest = 0;
    for (int i = 0; i < a->nspans; i++)
        if (a->spans[i].start <= at + slack && a->spans[i].end >= at - slack &&
            a->spans[i].end - a->spans[i].start > longest)
            longest = a->spans[i].end - a->spans[i].start;
    if (a->down_since && a->down_since <= at && now - a->down_since > longest)
        longest = now - a->down_since;
    return (double)longest / NS;
}

void avail_totals(struct avail *a, struct avail_totals *out)
{
    pthread_mutex_lock(&a->lock);
    int64_t now = topo_now_ns();
    out->seconds = (double)(now - a->start_ns) / NS;
    double avail = out->seconds - a->folded_s - downtime(a, a->start_ns, now);
    /* A worker's report can add downtime after the fact; the counter holds still
     * until it has caught up rather than going back. */
    if (avail < a->last_available) avail = a->last_available;
    a->last_available = avail;
    out->available = avail;
    out->writable = !a->down_since;
    out->failovers = a->nfailovers;
    out->last_rto_s = 0;
    if (a->nfailovers) {
        const struct avail_failover *f =
            &a->failovers[(a->head + AVAIL_FAILOVERS_KEPT - 1) % AVAIL_FAILOVERS_KEPT];
        out->last_rto_s = rto_of(a, f->at_ns, now);
    }
    pthread_mutex_unlock(&a->lock);
}

void avail_window(struct avail *a, double seconds, double slo, struct avail_window *out)
{
    pthread_mutex_lock(&a->lock);
    int64_t now = topo_now_ns(), from = now - (int64_t)(seconds * NS);
    if (from < a->start_ns) from = a->start_ns;
    out->seconds = seconds;
    out->observed = (double)(now - from) / NS;
    out->downtime = downtime(a, from, now);
    out->availability = out->observed > 0 ? 1 - out->downtime / out->observed : 1;
    out->budget = (1 - slo) * seconds;
    out->budget_left = out->budget - out->downtime;
    pthread_mutex_unlock(&a->lock);
}

int avail_failovers(struct avail *a, struct avail_failover *out, int max)
{
    pthread_mutex_lock(&a->lock);
    int64_t now = topo_now_ns();
    int n = 0;
    unsigned long have =
        a->nfailovers < AVAIL_FAILOVERS_KEPT ? a->nfailovers : AVAIL_FAILOVERS_KEPT;
    for (; n < max && (unsigned long)n < have; n++) {
        out[n] = a->failovers[(a->head + AVAIL_FAILOVERS_KEPT - 1 - n) % AVAIL_FAILOVERS_KEPT];
        out[n].rto_s = rto_of(a, out[n].at_ns, now);
    }
    pthread_mutex_unlock(&a->lock);
    return n;
}

double avail_nines(double availability)
{
    return availability >= 1 ? -1 : -log10(1 - availability);
}
