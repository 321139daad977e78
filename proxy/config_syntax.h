/* config_syntax: what is wrong with a config file that is not JSON, in words that
 * never quote the file (jansson's own message ends "near '<text>'", which may be a
 * password). Used by config.c for --check-config, reloads and the log alike. */
#ifndef RG_CONFIG_SYNTAX_H
#define RG_CONFIG_SYNTAX_H

#include <jansson.h>
#include <stddef.h>

/* The line, the column and the kind of error jerr describes, into err. */
void config_syntax_error(const json_error_t *jerr, char *err, size_t errlen);

#endif
