/* roster: see roster.h. One mutex for every mailbox: questions are rare (an
 * operator's CLIENT LIST), and one lock keeps the hand-back obviously right. */
#include "roster.h"

#include <pthread.h>
#include <stdlib.h>

struct post { /* a query in one mailbox */
    struct post *next;
    struct roster_query *q;
    int back; /* answered by all, back at the asker */
};

struct answer {
    char *text;
    size_t len;
    long long count;
};

struct roster_query {
    struct roster_query *prev, *next; /* every query still going, for roster_destroy */
    int origin, n, left;
    void *arg;
    void (*drop)(void *);
    struct answer *answers; /* n, each written by its worker only */
    struct post *posts;     /* n to answer, then the one back to origin */
};

struct mailbox {
    struct post *head, **tail;
    void (*wake)(void *);
    void *ctx;
};

struct roster {
    pthread_mutex_t mu;
    int n;
    struct mailbox *boxes;
    struct roster_query *live;
};

struct roster *roster_create(int nworkers)
{
    struct roster *r = calloc(1, sizeof(*r));
    if (!r || !(r->boxes = calloc((size_t)nworkers, sizeof(*r->boxes)))) {
        free(r);
        return NULL;
    }
    pthread_mutex_init(&r->mu, NULL);
    r->n = nworkers;
    for (int i = 0; i < nworkers; i++)
        r->boxes[i].tail = &r->boxes[i].head;
    return r;
}

static void query_free(struct roster_query *q)
{
    for (int i = 0; i < q->n; i++)
        free(q->answers[i].text);
    free(q->answers);
    free(q->posts);
    free(q);
}

void roster_destroy(struct roster **rp)
{
    struct roster *r = *rp;
    if (!r) return;
    struct roster_query *q;
    while ((q = r->live)) {
        r->live = q->next;
        if (q->drop) q->drop(q->arg);
        query_free(q);
    }
    pthread_mutex_destroy(&r->mu);
    free(r->boxes);
    free(r);
    *rp = NULL;
}

void roster_set_wake(struct roster *r, int worker, void (*wake)(void *), void *ctx)
{
    r->boxes[worker].wake = wake;
    r->boxes[worker].ctx = ctx;
}

/* Under the lock. */
static void post(struct roster *r, int worker, struct post *p)
{
    p->next = NULL;
    *r->boxes[worker].tail = p;
    r->boxes[worker].tail = &p->next;
}

static void wake(struct roster *r, int worker)
{
    if (r->boxes[worker].wake) r->boxes[worker].wake(r->boxes[worker].ctx);
}

int roster_ask(struct roster *r, int origin, void *arg, void (*drop)(void *))
{
    struct roster_query *q = calloc(1, sizeof(*q));
    if (!q || !(q->answers = calloc((size_t)r->n, sizeof(*q->answers))) ||
        !(q->posts = calloc((size_t)r->n + 1, sizeof(*q->posts)))) {
        if (q) free(q->answers);
        free(q);
        return -1;
    }
    q->origin = origin;
    q->n = q->left = r->n;
    q->arg = arg;
    q->drop = drop;
    pthread_mutex_lock(&r->mu);
    q->next = r->live;
    if (r->live) r->live->prev = q;
    r->live = q;
    for (int i = 0; i < r->n; i++) {
        q->posts[i].q = q;
        post(r, i, &q->posts[i]);
    }
    pthread_mutex_unlock(&r->mu);
    for (int i = 0; i < r->n; i++)
        wake(r, i);
    return 0;
}

struct roster_query *roster_next(struct roster *r, int worker, int *back)
{
    struct mailbox *b = &r->boxes[worker];
    pthread_mutex_lock(&r->mu);
    struct post *p = b->head;
    if (p && !(b->head = p->next)) b->tail = &b->head;
    pthread_mutex_unlock(&r->mu);
    if (!p) return NULL;
    *back = p->back;
    return p->q;
}

void *roster_arg(const struct roster_query *q)
{
    return q->arg;
}

void roster_answer(struct roster *r, struct roster_query *q, int worker, char *text, size_t len,
                   long long count)
{
    q->answers[worker] = (struct answer){text, len, count};
    int origin = q->origin; /* once posted back, q is the asker's: it may be gone */
    pthread_mutex_lock(&r->mu);
    int last = --q->left == 0;
    if (last) {
        q->posts[q->n].q = q;
        q->posts[q->n].back = 1;
        post(r, origin, &q->posts[q->n]);
    }
    pthread_mutex_unlock(&r->mu);
    if (last) wake(r, origin);
}

int roster_nanswers(const struct roster_query *q)
{
    return q->n;
}

const char *roster_text(const struct roster_query *q, int worker, size_t *len)
{
    *len = q->answers[worker].len;
    return q->answers[worker].text;
}

long long roster_count(const struct roster_query *q, int worker)
{
    return q->answers[worker].count;
}

void roster_finish(struct roster *r, struct roster_query **qp)
{
    struct roster_query *q = *qp;
    pthread_mutex_lock(&r->mu);
    if (q->prev)
        q->prev->next = q->next;
    else
        r->live = q->next;
    if (q->next) q->next->prev = q->prev;
    pthread_mutex_unlock(&r->mu);
    query_free(q);
    *qp = NULL;
}
