/* idmap: see idmap.h. A chained hash table that grows; a few thousand entries at most
 * (clients with a connection of their own). */
#include "idmap.h"

#include <pthread.h>
#include <stdlib.h>

struct entry {
    unsigned long long client, redis_id;
    struct entry *next;
};

struct idmap {
    pthread_mutex_t lock;
    struct entry **buckets;
    size_t nbuckets, n;
};

struct idmap *idmap_create(void)
{
    struct idmap *m = calloc(1, sizeof(*m));
    if (!m) return NULL;
    m->nbuckets = 256;
    if (!(m->buckets = calloc(m->nbuckets, sizeof(*m->buckets)))) {
        free(m);
        return NULL;
    }
    pthread_mutex_init(&m->lock, NULL);
    return m;
}

void idmap_destroy(struct idmap **mp)
{
    struct idmap *m = *mp;
    if (!m) return;
    for (size_t i = 0; i < m->nbuckets; i++)
        for (struct entry *e = m->buckets[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    free(m->buckets);
    pthread_mutex_destroy(&m->lock);
    free(m);
    *mp = NULL;
}

static struct entry **slot(struct idmap *m, unsigned long long client)
{
    struct entry **e = &m->buckets[(client * 0x9E3779B97F4A7C15ULL >> 32) % m->nbuckets];
    while (*e && (*e)->client != client)
        e = &(*e)->next;
    return e;
}

static void grow(struct idmap *m)
{
    size_t n = m->nbuckets * 2;
    struct entry **b = calloc(n, sizeof(*b));
    if (!b) return; /* longer chains, still correct */
    struct entry **old = m->buckets;
    size_t nold = m->nbuckets;
    m->buckets = b;
    m->nbuckets = n;
    for (size_t i = 0; i < nold; i++)
        for (struct entry *e = old[i], *next; e; e = next) {
            next = e->next;
            struct entry **s = slot(m, e->client);
            e->next = NULL;
            *s = e;
        }
    free(old);
}

int idmap_set(struct idmap *m, unsigned long long client, unsigned long long redis_id)
{
    int rc = 0;
    pthread_mutex_lock(&m->lock);
    struct entry **s = slot(m, client);
    if (*s) {
        (*s)->redis_id = redis_id;
    } else if ((*s = calloc(1, sizeof(**s)))) {
        (*s)->client = client;
        (*s)->redis_id = redis_id;
        if (++m->n > m->nbuckets * 2) grow(m);
    } else {
        rc = -1;
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
}

void idmap_del(struct idmap *m, unsigned long long client)
{
    pthread_mutex_lock(&m->lock);
    struct entry **s = slot(m, client), *e = *s;
    if (e) {
        *s = e->next;
        free(e);
        m->n--;
    }
    pthread_mutex_unlock(&m->lock);
}

unsigned long long idmap_get(struct idmap *m, unsigned long long client)
{
    pthread_mutex_lock(&m->lock);
    struct entry *e = *slot(m, client);
    unsigned long long id = e ? e->redis_id : 0;
    pthread_mutex_unlock(&m->lock);
    return id;
}

unsigned long long idmap_client_of(struct idmap *m, unsigned long long redis_id)
{
    unsigned long long client = 0;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->nbuckets && !client; i++)
        for (struct entry *e = m->buckets[i]; e && !client; e = e->next)
            if (e->redis_id == redis_id) client = e->client;
    pthread_mutex_unlock(&m->lock);
    return client;
}
