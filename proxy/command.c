/* command: the generated table, found through a hash index built when the program
 * loads (every request looks its command up: a hash and one compare, where a
 * bsearch took eight; a unit test checks every row is found), plus respgate's
 * policy flags. */
#include "command.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static const struct cmd_info cmd_table[] = {
#define CMD_DEF(name, arity, first_key, flags) {name, sizeof(name) - 1, arity, first_key, flags},
#include "commands.def"
#undef CMD_DEF
};
#define CMD_COUNT (sizeof(cmd_table) / sizeof(cmd_table[0]))

/* Commands that change the state of the connection they run on. On a shared
 * upstream connection they would change it for every client on it. Blocking
 * commands are added by their flag. */
static const char *const session_commands[] = {"auth",      "multi",  "readonly",
                                               "readwrite", "select", "watch"};

#define CMD_SLOTS 1024 /* a power of two, well over twice the rows */

/* Slot -> 1 + row, 0 for empty; open addressing, linear probing. Written once,
 * before main, and only read after. */
static unsigned short cmd_index_of[CMD_SLOTS];

static unsigned cmd_hash(const char *name, size_t len)
{
    unsigned h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)name[i]) * 16777619u;
    return h & (CMD_SLOTS - 1);
}

__attribute__((constructor)) static void cmd_build_index(void)
{
    _Static_assert(CMD_COUNT * 2 < CMD_SLOTS, "the command index is too small");
    for (size_t i = 0; i < CMD_COUNT; i++) {
        unsigned h = cmd_hash(cmd_table[i].name, cmd_table[i].len);
        while (cmd_index_of[h])
            h = (h + 1) & (CMD_SLOTS - 1);
        cmd_index_of[h] = (unsigned short)(i + 1);
    }
}

const struct cmd_info *cmd_lookup(const char *name, size_t len)
{
    for (unsigned h = cmd_hash(name, len); cmd_index_of[h]; h = (h + 1) & (CMD_SLOTS - 1)) {
        const struct cmd_info *c = &cmd_table[cmd_index_of[h] - 1];
        if (c->len == len && memcmp(c->name, name, len) == 0) return c;
    }
    return NULL;
}

/* The overlay (below) is small, sorted and searched with bsearch. */
struct cmd_key {
    const char *name;
    size_t len;
};

static int cmd_compare(const void *k, const void *e)
{
    const struct cmd_key *key = k;
    const struct cmd_info *entry = e;
    int c = memcmp(key->name, entry->name, key->len < entry->len ? key->len : entry->len);
    if (c) return c;
    return key->len < entry->len ? -1 : key->len > entry->len;
}

/* Commands whose replies are not one per request (pushes, MONITOR's stream, RESP3
 * after HELLO, replication). CLIENT REPLY is one too; dispatch checks that one. */
static const char *const tunnel_commands[] = {"subscribe", "psubscribe", "ssubscribe", "monitor",
                                              "hello",     "sync",       "psync",      "replconf"};

static int in_list(const char *const *list, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(list[i]) == len && memcmp(list[i], name, len) == 0) return 1;
    return 0;
}

static unsigned policy(const char *name, size_t len, unsigned flags)
{
    if (in_list(tunnel_commands, sizeof(tunnel_commands) / sizeof(tunnel_commands[0]), name, len))
        return CMD_SESSION | CMD_TUNNEL;
    if ((len == 4 && memcmp(name, "wait", 4) == 0) || (len == 7 && memcmp(name, "waitaof", 7) == 0))
        return CMD_WAIT;
    if (len == 5 && memcmp(name, "reset", 5) == 0) return CMD_RESET;
    if ((len == 11 && memcmp(name, "unsubscribe", 11) == 0) ||
        (len == 12 &&
         (memcmp(name, "punsubscribe", 12) == 0 || memcmp(name, "sunsubscribe", 12) == 0)))
        return CMD_UNSUB;
    if (flags & CMD_BLOCKING) return CMD_SESSION;
    if (len == 4 && memcmp(name, "quit", 4) == 0) return CMD_QUIT;
    if (len == 6 && memcmp(name, "client", 6) == 0) return CMD_CLIENT;
    return in_list(session_commands, sizeof(session_commands) / sizeof(session_commands[0]), name,
                   len)
               ? CMD_SESSION
               : 0;
}

unsigned cmd_flags(const char *name, size_t len)
{
    return cmd_flags_of(cmd_lookup(name, len), name, len);
}

size_t cmd_index(const struct cmd_info *c)
{
    return (size_t)(c - cmd_table);
}

unsigned cmd_flags_of(const struct cmd_info *c, const char *name, size_t len)
{
    unsigned flags = c ? c->flags : 0;
    /* Only a few kinds carry policy, and names newer than the table (WAITAOF on a
     * Redis 7.2 upstream) must get it too; the common commands skip the scan. */
    if (!c || flags & (CMD_BLOCKING | CMD_CONNECTION | CMD_TRANSACTION | CMD_PUBSUB | CMD_ADMIN |
                       CMD_CONTAINER))
        flags |= policy(name, len, flags);
    return flags;
}

size_t cmd_count(void)
{
    return CMD_COUNT;
}

const struct cmd_info *cmd_at(size_t i)
{
    return i < CMD_COUNT ? &cmd_table[i] : NULL;
}

/* --- the run-time overlay --------------------------------------------------- */

struct cmd_overlay {
    atomic_int refs;
    size_t n, cap;
    struct cmd_info rows[];
};

struct cmd_overlay *cmd_overlay_create(size_t capacity)
{
    struct cmd_overlay *o = calloc(1, sizeof(*o) + capacity * sizeof(o->rows[0]));
    if (!o) return NULL;
    atomic_init(&o->refs, 1);
    o->cap = capacity;
    return o;
}

int cmd_overlay_add(struct cmd_overlay *o, const char *name, size_t len, int arity, int first_key,
                    unsigned flags)
{
    char *copy;
    if (o->n == o->cap || !(copy = malloc(len + 1))) return -1;
    for (size_t i = 0; i < len; i++)
        copy[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    copy[len] = '\0';
    o->rows[o->n++] = (struct cmd_info){copy, len, arity, first_key, flags};
    return 0;
}

static int row_compare(const void *a, const void *b)
{
    const struct cmd_info *x = a;
    return cmd_compare(&(struct cmd_key){x->name, x->len}, b);
}

void cmd_overlay_finish(struct cmd_overlay *o)
{
    qsort(o->rows, o->n, sizeof(o->rows[0]), row_compare);
}

const struct cmd_info *cmd_overlay_lookup(const struct cmd_overlay *o, const char *name, size_t len)
{
    struct cmd_key key = {name, len};
    return o ? bsearch(&key, o->rows, o->n, sizeof(o->rows[0]), cmd_compare) : NULL;
}

size_t cmd_overlay_count(const struct cmd_overlay *o)
{
    return o ? o->n : 0;
}

struct cmd_overlay *cmd_overlay_acquire(struct cmd_overlay *o)
{
    if (o) atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
    return o;
}

void cmd_overlay_release(struct cmd_overlay **op)
{
    struct cmd_overlay *o = *op;
    *op = NULL;
    if (!o || atomic_fetch_sub_explicit(&o->refs, 1, memory_order_acq_rel) != 1) return;
    for (size_t i = 0; i < o->n; i++)
        free((char *)o->rows[i].name);
    free(o);
}

unsigned cmd_flags_from_redis(const char *const *flags, size_t nflags,
                              const char *const *categories, size_t ncategories, int first_key,
                              int has_key_specs, int has_subcommands)
{
    static const struct {
        const char *name;
        unsigned flag;
    } flag_map[] = {{"write", CMD_WRITE},
                    {"readonly", CMD_READONLY},
                    {"admin", CMD_ADMIN},
                    {"pubsub", CMD_PUBSUB},
                    {"may_replicate", CMD_MAY_REPLICATE},
                    {"movablekeys", CMD_MOVABLEKEYS},
                    {"fast", CMD_FAST},
                    {"noscript", CMD_NOSCRIPT}},
      category_map[] = {{"@blocking", CMD_BLOCKING},
                        {"@transaction", CMD_TRANSACTION},
                        {"@connection", CMD_CONNECTION},
                        {"@pubsub", CMD_PUBSUB},
                        {"@scripting", CMD_SCRIPTING}};
    unsigned out = 0;
    int movable = 0;
    for (size_t i = 0; i < nflags; i++) {
        movable |= strcmp(flags[i], "movablekeys") == 0;
        for (size_t k = 0; k < sizeof(flag_map) / sizeof(flag_map[0]); k++)
            if (strcmp(flags[i], flag_map[k].name) == 0) out |= flag_map[k].flag;
    }
    for (size_t i = 0; i < ncategories; i++)
        for (size_t k = 0; k < sizeof(category_map) / sizeof(category_map[0]); k++)
            if (strcmp(categories[i], category_map[k].name) == 0) out |= category_map[k].flag;
    if (first_key == 0 && !has_key_specs && !movable) out |= CMD_NOKEY;
    if (has_subcommands) out |= CMD_CONTAINER;
    return out;
}
