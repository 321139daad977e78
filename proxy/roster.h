/* roster: a question one worker asks every worker about its clients (CLIENT LIST,
 * CLIENT KILL). A client is touched by its own worker only, so the question is
 * posted to every worker's mailbox; each answers for its own clients, in its own
 * thread, and the last to answer posts the question back to the worker that asked,
 * which puts the answers together. A mailbox is a list under one mutex and the
 * worker is woken through its control pipe: never on an ordinary request's path. */
#ifndef RG_ROSTER_H
#define RG_ROSTER_H

#include <stddef.h>

struct roster;
struct roster_query;

struct roster *roster_create(int nworkers);
/* After every worker has stopped: queries still going are dropped (their drop()). */
void roster_destroy(struct roster **r);
/* How to wake worker i when its mailbox has something; set before it runs. */
void roster_set_wake(struct roster *r, int worker, void (*wake)(void *), void *ctx);

/* Worker origin asks every worker; arg is its own (what to look for, where the
 * answer goes), freed with drop() if the query never comes back. -1: out of memory,
 * nothing posted (drop() not called). */
int roster_ask(struct roster *r, int origin, void *arg, void (*drop)(void *));
/* The next query in worker's mailbox, or NULL. *back: 1 when it is one this worker
 * asked, every worker has answered (roster_finish it); 0 when it is to answer. */
struct roster_query *roster_next(struct roster *r, int worker, int *back);
void *roster_arg(const struct roster_query *q);
/* worker's answer to q: text (malloc'd, taken; may be NULL) and a count. */
void roster_answer(struct roster *r, struct roster_query *q, int worker, char *text, size_t len,
                   long long count);
/* The answers, once back: one per worker. */
int roster_nanswers(const struct roster_query *q);
const char *roster_text(const struct roster_query *q, int worker, size_t *len);
long long roster_count(const struct roster_query *q, int worker);
/* The asker is done with q; its arg is its own to free. */
void roster_finish(struct roster *r, struct roster_query **q);

#endif
