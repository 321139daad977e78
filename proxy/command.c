/* command: a sorted table searched with bsearch. Names must stay sorted; a unit
 * test checks it. */
#include "command.h"

#include <stdlib.h>
#include <string.h>

struct cmd_entry {
    const char *name;
    unsigned flags;
};

static const struct cmd_entry cmd_table[] = {
    {"auth", CMD_SESSION},       {"blmove", CMD_SESSION},     {"blmpop", CMD_SESSION},
    {"blpop", CMD_SESSION},      {"brpop", CMD_SESSION},      {"brpoplpush", CMD_SESSION},
    {"bzmpop", CMD_SESSION},     {"bzpopmax", CMD_SESSION},   {"bzpopmin", CMD_SESSION},
    {"client", CMD_CLIENT},      {"hello", CMD_SESSION},      {"monitor", CMD_SESSION},
    {"multi", CMD_SESSION},      {"psubscribe", CMD_SESSION}, {"psync", CMD_SESSION},
    {"quit", CMD_QUIT},          {"readonly", CMD_SESSION},   {"readwrite", CMD_SESSION},
    {"replconf", CMD_SESSION},   {"reset", CMD_SESSION},      {"select", CMD_SESSION},
    {"ssubscribe", CMD_SESSION}, {"subscribe", CMD_SESSION},  {"sync", CMD_SESSION},
    {"wait", CMD_SESSION},       {"waitaof", CMD_SESSION},    {"watch", CMD_SESSION},
    {"xread", CMD_SESSION},      {"xreadgroup", CMD_SESSION},
};

struct cmd_key {
    const char *name;
    size_t len;
};

static int cmd_compare(const void *k, const void *e)
{
    const struct cmd_key *key = k;
    const char *name = ((const struct cmd_entry *)e)->name;
    size_t elen = strlen(name);
    int c = memcmp(key->name, name, key->len < elen ? key->len : elen);
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
