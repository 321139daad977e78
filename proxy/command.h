/* command: what respgate knows about a command, by its lowercased name. The table
 * (commands.def) is generated from Redis 7's own COMMAND reply by gen_commands.py;
 * respgate's policy (which commands need a connection of their own, which it
 * answers itself) is layered on top here. */
#ifndef RG_COMMAND_H
#define RG_COMMAND_H

#include <stddef.h>

enum cmd_flag {
    /* From Redis' command flags and ACL categories (generated). */
    CMD_WRITE = 1 << 0,
    CMD_READONLY = 1 << 1,
    CMD_ADMIN = 1 << 2,
    CMD_PUBSUB = 1 << 3,
    CMD_BLOCKING = 1 << 4,
    CMD_TRANSACTION = 1 << 5,
    CMD_CONNECTION = 1 << 6,
    CMD_MAY_REPLICATE = 1 << 7,
    CMD_NOKEY = 1 << 8,
    CMD_MOVABLEKEYS = 1 << 9,
    CMD_FAST = 1 << 10,
    CMD_NOSCRIPT = 1 << 11,
    CMD_SCRIPTING = 1 << 12,
    CMD_CONTAINER = 1 << 13, /* has subcommands ("client|setname") */
    /* respgate's policy. */
    CMD_SESSION = 1 << 16, /* changes connection state: needs a connection of its own */
    CMD_QUIT = 1 << 17,    /* answered here, then the client is closed */
    CMD_CLIENT = 1 << 18,  /* CLIENT: some subcommands are answered here */
    CMD_TUNNEL = 1 << 19,  /* replies cannot be framed one per request: relay bytes */
    CMD_WAIT = 1 << 20,    /* WAIT, WAITAOF: must run where the client's writes went */
    CMD_RESET = 1 << 21,   /* RESET: done to the client's view */
    CMD_UNSUB = 1 << 22,   /* (P|S)UNSUBSCRIBE: one reply per channel, never on a shared
                              connection; outside pub/sub answered here */
};

struct cmd_info {
    const char *name;
    size_t len;
    int arity;     /* as Redis reports it: negative means "at least" */
    int first_key; /* 0: no key at a fixed position */
    unsigned flags;
};

/* The command named name[0..len) (lowercase; "container|sub" for subcommands), or
 * NULL if Redis 7 has no such command. */
const struct cmd_info *cmd_lookup(const char *name, size_t len);
/* Its flags, policy included; 0 for unknown commands (they go to the master). */
unsigned cmd_flags(const char *name, size_t len);
/* Its flags, policy included, given its lookup (NULL: unknown). */
unsigned cmd_flags_of(const struct cmd_info *c, const char *name, size_t len);
/* The row's index, for per-command side tables. */
size_t cmd_index(const struct cmd_info *c);
/* Commands the built-in table does not know (module commands, newer Redis), as the
 * master's own COMMAND reply describes them. Immutable once finished; refcounted,
 * since every topology snapshot carries the current one. */
struct cmd_overlay;

struct cmd_overlay *cmd_overlay_create(size_t capacity);
/* Copies name; flags as cmd_flags_from_redis() makes them. Returns -1 when full. */
int cmd_overlay_add(struct cmd_overlay *o, const char *name, size_t len, int arity, int first_key,
                    unsigned flags);
/* Sorts the rows; after this the overlay is read-only. */
void cmd_overlay_finish(struct cmd_overlay *o);
const struct cmd_info *cmd_overlay_lookup(const struct cmd_overlay *o, const char *name,
                                          size_t len);
size_t cmd_overlay_count(const struct cmd_overlay *o);
struct cmd_overlay *cmd_overlay_acquire(struct cmd_overlay *o);
void cmd_overlay_release(struct cmd_overlay **o);

/* respgate's flags from a COMMAND reply's flags and ACL categories, as
 * gen_commands.py maps them for the built-in table. */
unsigned cmd_flags_from_redis(const char *const *flags, size_t nflags,
                              const char *const *categories, size_t ncategories, int first_key,
                              int has_key_specs, int has_subcommands);

/* Number of rows in the table, and row i (for tests). */
size_t cmd_count(void);
const struct cmd_info *cmd_at(size_t i);

#endif
