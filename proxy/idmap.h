/* idmap: which Redis connection id stands for a respgate client id, while the client
 * has a connection of its own (blocked, subscribed, in a session). CLIENT ID answers
 * respgate's ids; the commands that take an id (CLIENT UNBLOCK, CLIENT TRACKING
 * REDIRECT, CLIENT KILL ID) go to Redis translated through this. Shared by the
 * workers, under a mutex: written when a session connection comes or goes, read by
 * those commands only - never on the path of an ordinary request. */
#ifndef RG_IDMAP_H
#define RG_IDMAP_H

struct idmap;

struct idmap *idmap_create(void);
void idmap_destroy(struct idmap **m);
/* client (respgate's id) now has Redis connection redis_id. -1 when out of memory. */
int idmap_set(struct idmap *m, unsigned long long client, unsigned long long redis_id);
void idmap_del(struct idmap *m, unsigned long long client);
/* Its Redis connection id, or 0 if it has none now. */
unsigned long long idmap_get(struct idmap *m, unsigned long long client);
/* The client whose connection has Redis id redis_id, or 0. A scan: for CLIENT
 * GETREDIR and TRACKINGINFO only. */
unsigned long long idmap_client_of(struct idmap *m, unsigned long long redis_id);

#endif
