/* command: the generated table, searched with bsearch (gen_commands.py sorts it; a
 * unit test checks every row is found), plus respgate's policy flags. */
#include "command.h"

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
static const char *const session_commands[] = {
    "auth",      "hello",    "monitor", "multi",      "psubscribe", "psync", "readonly",
    "readwrite", "replconf", "select",  "ssubscribe", "subscribe",  "sync",  "watch",
};

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

const struct cmd_info *cmd_lookup(const char *name, size_t len)
{
    struct cmd_key key = {name, len};
    return bsearch(&key, cmd_table, CMD_COUNT, sizeof(cmd_table[0]), cmd_compare);
}

static unsigned policy(const char *name, size_t len, unsigned flags)
{
    if (flags & CMD_BLOCKING) return CMD_SESSION;
    if (len == 4 && memcmp(name, "quit", 4) == 0) return CMD_QUIT;
    if (len == 6 && memcmp(name, "client", 6) == 0) return CMD_CLIENT;
    for (size_t i = 0; i < sizeof(session_commands) / sizeof(session_commands[0]); i++)
        if (strlen(session_commands[i]) == len && memcmp(session_commands[i], name, len) == 0)
            return CMD_SESSION;
    return 0;
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
