/* command: a sorted table searched with bsearch. Names must stay sorted; a unit
 * test checks it. */
#include "command.h"

#include <stdlib.h>
#include <string.h>

struct cmd_entry {
    const char *name;
    size_t len;
    unsigned flags;
};
#define CMD(name, flags)                                                                           \
    {                                                                                              \
        name, sizeof(name) - 1, flags                                                              \
    }

static const struct cmd_entry cmd_table[] = {
    CMD("auth", CMD_SESSION),       CMD("blmove", CMD_SESSION),     CMD("blmpop", CMD_SESSION),
    CMD("blpop", CMD_SESSION),      CMD("brpop", CMD_SESSION),      CMD("brpoplpush", CMD_SESSION),
    CMD("bzmpop", CMD_SESSION),     CMD("bzpopmax", CMD_SESSION),   CMD("bzpopmin", CMD_SESSION),
    CMD("client", CMD_CLIENT),      CMD("hello", CMD_SESSION),      CMD("monitor", CMD_SESSION),
    CMD("multi", CMD_SESSION),      CMD("psubscribe", CMD_SESSION), CMD("psync", CMD_SESSION),
    CMD("quit", CMD_QUIT),          CMD("readonly", CMD_SESSION),   CMD("readwrite", CMD_SESSION),
    CMD("replconf", CMD_SESSION),   CMD("reset", CMD_SESSION),      CMD("select", CMD_SESSION),
    CMD("ssubscribe", CMD_SESSION), CMD("subscribe", CMD_SESSION),  CMD("sync", CMD_SESSION),
    CMD("wait", CMD_SESSION),       CMD("waitaof", CMD_SESSION),    CMD("watch", CMD_SESSION),
    CMD("xread", CMD_SESSION),      CMD("xreadgroup", CMD_SESSION),
};

struct cmd_key {
    const char *name;
    size_t len;
};

static int cmd_compare(const void *k, const void *e)
{
    const struct cmd_key *key = k;
    const struct cmd_entry *entry = e;
    size_t elen = entry->len;
    int c = memcmp(key->name, entry->name, key->len < elen ? key->len : elen);
    if (c) return c;
    return key->len < elen ? -1 : key->len > elen;
}

unsigned cmd_flags(const char *name, size_t len)
{
    struct cmd_key key = {name, len};
    const struct cmd_entry *e = bsearch(&key, cmd_table, sizeof(cmd_table) / sizeof(cmd_table[0]),
                                        sizeof(cmd_table[0]), cmd_compare);
    return e ? e->flags : 0;
}
