/* config_sections: the top-level sections that stand alone (auth, deny_commands,
 * routing, notify, durability, backup, slo), each read from the root object into
 * cfg; config.c reads the rest and calls these. Each returns 0, or -1 with a message
 * naming the key in err. Internal to the config module. */
#ifndef RG_CONFIG_SECTIONS_H
#define RG_CONFIG_SECTIONS_H

#include <jansson.h>
#include <stddef.h>

#include "config.h"

int config_parse_auth(json_t *root, struct config *cfg, char *err, size_t errlen);
/* deny_commands, or the default list when the key is absent. */
int config_parse_deny(json_t *root, struct config *cfg, char *err, size_t errlen);
int config_parse_routing(json_t *root, struct config *cfg, char *err, size_t errlen);
/* notify, with its webhook URL checked. */
int config_parse_notify(json_t *root, struct config *cfg, char *err, size_t errlen);
int config_parse_durability(json_t *root, struct config *cfg, char *err, size_t errlen);
int config_parse_backup(json_t *root, struct config *cfg, char *err, size_t errlen);
int config_parse_slo(json_t *root, struct config *cfg, char *err, size_t errlen);

#endif
