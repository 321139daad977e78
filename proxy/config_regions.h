/* config_regions: reads "regions" (nodes, Sentinels) into cfg. Internal to the
 * config module (config*.c). */
#ifndef RG_CONFIG_REGIONS_H
#define RG_CONFIG_REGIONS_H

#include <jansson.h>
#include <stddef.h>

#include "config.h"

/* Returns 0, or -1 with a message naming the key in err. */
int config_parse_regions(json_t *root, struct config *cfg, char *err, size_t errlen);

#endif
