/* resp_fast: the framer's shortcut for the shapes nearly every message has, whole in
 * one buffer: a command as an array of bulk strings, and a status, error, integer or
 * bulk string reply. resp.c tries it at the start of each message and reads byte by
 * byte only when it says no. Part of the resp module. */
#ifndef RG_RESP_FAST_H
#define RG_RESP_FAST_H

#include <stddef.h>

#include "resp.h"

/* 1 with the whole command framed (p's argc, name, arg1, key_off and type set as
 * the state machine would, *used its length); 0, touching nothing, otherwise. */
int resp_fast_request(struct resp_parser *p, const char *b, size_t n, size_t *used);
/* The same for a reply: p's type and *used. */
int resp_fast_reply(struct resp_parser *p, const char *b, size_t n, size_t *used);

#endif
