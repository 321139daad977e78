/* pass: see pass.h. */
#include "pass.h"

void pass_wake(struct client *c)
{
    if (c->flags & (C_READY | C_DEAD)) return;
    c->flags |= C_READY;
    TAILQ_INSERT_TAIL(&c->w->ready, c, ready);
}

void pass_bury_client(struct client *c)
{
    if (c->flags & C_DEAD) return;
    if (c->flags & C_READY) TAILQ_REMOVE(&c->w->ready, c, ready);
    c->flags = (c->flags & ~(unsigned)C_READY) | C_DEAD;
    TAILQ_INSERT_TAIL(&c->w->dead, c, ready);
}

void pass_bury_upconn(struct upconn *u)
{
    if (u->dead) return;
    u->dead = 1;
    TAILQ_INSERT_TAIL(&u->w->dead_ups, u, link);
}
