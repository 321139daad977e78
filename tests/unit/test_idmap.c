/* The client-id map: set, replace, delete, and growth past its first table. */
#include <criterion/criterion.h>

#include "idmap.h"

Test(idmap, set_get_replace_delete)
{
    struct idmap *m = idmap_create();
    cr_assert(m);
    cr_assert_eq(idmap_get(m, 7), 0);
    cr_assert_eq(idmap_set(m, 7, 70), 0);
    cr_assert_eq(idmap_get(m, 7), 70);
    idmap_set(m, 7, 71);
    cr_assert_eq(idmap_get(m, 7), 71);
    idmap_del(m, 7);
    cr_assert_eq(idmap_get(m, 7), 0);
    idmap_del(m, 7); /* twice: nothing */
    idmap_destroy(&m);
    cr_assert_null(m);
}

Test(idmap, many_entries_survive_growth)
{
    struct idmap *m = idmap_create();
    for (unsigned long long i = 1; i <= 5000; i++)
        cr_assert_eq(idmap_set(m, i, i * 10), 0);
    for (unsigned long long i = 1; i <= 5000; i += 2)
        idmap_del(m, i);
    for (unsigned long long i = 1; i <= 5000; i++)
        cr_assert_eq(idmap_get(m, i), i % 2 ? 0 : i * 10);
    idmap_destroy(&m);
}
