/* overlay: the master's COMMAND reply read into an overlay of the commands the
 * built-in table lacks (modules, a newer Redis), flagged as gen_commands.py flags
 * the table. Pure; called by probe.c when the master changes and once a minute. */
#ifndef RG_OVERLAY_H
#define RG_OVERLAY_H

#include <hiredis/hiredis.h>

#include "command.h"

/* A finished overlay, or NULL (not an array, out of memory). */
struct cmd_overlay *overlay_from_command(const redisReply *reply);

#endif
