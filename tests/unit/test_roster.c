/* The roster: a question reaches every worker's mailbox, comes back to the asker
 * once all have answered (from their own threads), and one still going at shutdown
 * is dropped through its drop(). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "roster.h"

#define WORKERS 4
#define QUESTIONS 2000

static struct roster *roster;
static atomic_int wakes[WORKERS], finished, dropped;

static void wake(void *ctx)
{
    atomic_fetch_add(&wakes[(int)(long)ctx], 1);
}

static void drop(void *arg)
{
    free(arg);
    atomic_fetch_add(&dropped, 1);
}

/* A worker: answers every question with its number, and checks those it asked. */
static void *worker(void *arg)
{
    int me = (int)(long)arg, asked = 0;
    while (atomic_load(&finished) < WORKERS * QUESTIONS) {
        if (asked < QUESTIONS) {
            int *tag = malloc(sizeof(*tag));
            *tag = me;
            cr_assert_eq(roster_ask(roster, me, tag, drop), 0);
            asked++;
        }
        struct roster_query *q;
        int back;
        while ((q = roster_next(roster, me, &back))) {
            if (!back) {
                char *text = malloc(16);
                int n = snprintf(text, 16, "w%d", me);
                roster_answer(roster, q, me, text, (size_t)n, me + 1);
                continue;
            }
            int *tag = roster_arg(q);
            cr_assert_eq(*tag, me, "a question came back to the worker that asked it");
            long long sum = 0;
            for (int i = 0; i < roster_nanswers(q); i++) {
                size_t len;
                char want[16];
                snprintf(want, sizeof(want), "w%d", i);
                const char *t = roster_text(q, i, &len);
                cr_assert(t && len == strlen(want) && memcmp(t, want, len) == 0);
                sum += roster_count(q, i);
            }
            cr_assert_eq(sum, WORKERS * (WORKERS + 1) / 2);
            roster_finish(roster, &q);
            cr_assert_null(q);
            free(tag);
            atomic_fetch_add(&finished, 1);
        }
    }
    return NULL;
}

Test(roster, every_worker_answers_and_the_asker_gets_it_back)
{
    roster = roster_create(WORKERS);
    cr_assert(roster);
    for (long i = 0; i < WORKERS; i++)
        roster_set_wake(roster, (int)i, wake, (void *)i);
    pthread_t t[WORKERS];
    for (long i = 0; i < WORKERS; i++)
        pthread_create(&t[i], NULL, worker, (void *)i);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(t[i], NULL);
    cr_assert_eq(atomic_load(&finished), WORKERS * QUESTIONS);
    for (int i = 0; i < WORKERS; i++) /* one per question posted to it, and per one back */
        cr_assert_geq(atomic_load(&wakes[i]), WORKERS * QUESTIONS + QUESTIONS);
    cr_assert_eq(atomic_load(&dropped), 0);
    roster_destroy(&roster);
    cr_assert_null(roster);
}

Test(roster, a_question_still_going_at_shutdown_is_dropped)
{
    struct roster *r = roster_create(2);
    atomic_store(&dropped, 0);
    cr_assert_eq(roster_ask(r, 0, malloc(4), drop), 0);
    cr_assert_eq(roster_ask(r, 1, malloc(4), drop), 0);
    int back;
    struct roster_query *q = roster_next(r, 0, &back); /* worker 0 answers the first only */
    cr_assert(q && !back);
    roster_answer(r, q, 0, NULL, 0, 0);
    roster_destroy(&r);
    cr_assert_eq(atomic_load(&dropped), 2);
}
