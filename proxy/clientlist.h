/* clientlist: CLIENT LIST, CLIENT KILL and CLIENT INFO answered about respgate's
 * own clients - the apps - as Redis answers them about its clients: Redis' line per
 * client and its filters (TYPE, ID, ADDR, LADDR, USER, SKIPME). LIST and KILL span
 * every worker through the roster (roster.h): each worker formats or closes only
 * its own clients, and the asking client's reply slot waits in its queue meanwhile.
 * Redis' own view (respgate's upstream connections) is for whoever asks Redis. */
#ifndef RG_CLIENTLIST_H
#define RG_CLIENTLIST_H

#include "dataplane.h"

struct roster_query;

/* CLIENT LIST or KILL from c: 1 when taken (answered, or its question posted). */
int clientlist_take(struct client *c);
/* CLIENT INFO: c's own line. */
void clientlist_info(struct client *c);
/* On each worker: its part of a question (its own clients). */
void clientlist_answer(struct worker *w, struct roster_query *q);
/* On the worker that asked: every part is in; the client gets its reply. */
void clientlist_reply(struct worker *w, struct roster_query *q);

#endif
