/* command: classifies a command by its (lowercased) name. For now it knows the
 * commands that change the state of the connection they run on, which must never
 * run on a shared upstream connection. */
#ifndef RG_COMMAND_H
#define RG_COMMAND_H

#include <stddef.h>

enum cmd_flag {
    CMD_SESSION = 1 << 0, /* changes connection state: needs a connection of its own */
    CMD_QUIT = 1 << 1,    /* answered here, then the client is closed */
    CMD_CLIENT = 1 << 2,  /* CLIENT: some subcommands are answered here */
};

/* Flags of a lowercased command name; 0 for ordinary and unknown commands. */
unsigned cmd_flags(const char *name, size_t len);

#endif
