/* overlay: see overlay.h. */
#include "overlay.h"

#include <string.h>

static const char *reply_text(const redisReply *r)
{
    return r && (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_STRING) ? r->str : "";
}

/* Adds a COMMAND entry (and its subcommands) the built-in table does not know. */
static void learn_command(struct cmd_overlay *o, const redisReply *e, size_t *unknown)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 6 || e->element[0]->type == REDIS_REPLY_NIL)
        return;
    const char *name = reply_text(e->element[0]);
    size_t len = strlen(name);
    char lower[128];
    if (len == 0 || len >= sizeof(lower)) return;
    for (size_t i = 0; i <= len; i++)
        lower[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    const redisReply *flags = e->element[2], *cats = e->elements > 6 ? e->element[6] : NULL,
                     *specs = e->elements > 8 ? e->element[8] : NULL,
                     *subs = e->elements > 9 ? e->element[9] : NULL;
    if (!cmd_lookup(lower, len)) {
        const char *f[32], *c[32];
        size_t nf = 0, nc = 0;
        for (size_t i = 0; flags->type == REDIS_REPLY_ARRAY && i < flags->elements && nf < 32; i++)
            f[nf++] = reply_text(flags->element[i]);
        for (size_t i = 0; cats && cats->type == REDIS_REPLY_ARRAY && i < cats->elements && nc < 32;
             i++)
            c[nc++] = reply_text(cats->element[i]);
        int has_subs = subs && subs->type == REDIS_REPLY_ARRAY && subs->elements > 0;
        unsigned fl = cmd_flags_from_redis(
            f, nf, c, nc, (int)e->element[3]->integer,
            specs && specs->type == REDIS_REPLY_ARRAY && specs->elements > 0, has_subs);
        if (o)
            cmd_overlay_add(o, lower, len, (int)e->element[1]->integer, (int)e->element[3]->integer,
                            fl);
        (*unknown)++;
    }
    for (size_t i = 0; subs && subs->type == REDIS_REPLY_ARRAY && i < subs->elements; i++)
        learn_command(o, subs->element[i], unknown);
}

struct cmd_overlay *overlay_from_command(const redisReply *reply)
{
    if (!reply || reply->type != REDIS_REPLY_ARRAY) return NULL;
    size_t n = 0;
    for (size_t i = 0; i < reply->elements; i++) /* first count, then fill */
        learn_command(NULL, reply->element[i], &n);
    struct cmd_overlay *o = cmd_overlay_create(n);
    if (!o) return NULL;
    n = 0;
    for (size_t i = 0; i < reply->elements; i++)
        learn_command(o, reply->element[i], &n);
    cmd_overlay_finish(o);
    return o;
}
