/* config_tls: reads "tls" (the clients' TLS listener) into cfg and builds its
 * OpenSSL context from the certificate files, so that a config that loads has a
 * certificate that loads: a bad file fails the start or the reload (which then keeps
 * the running config, and its certificate). Internal to the config module. */
#ifndef RG_CONFIG_TLS_H
#define RG_CONFIG_TLS_H

#include <jansson.h>
#include <stddef.h>

#include "config.h"

/* Returns 0, or -1 with a message naming the key in err. */
int config_parse_tls(json_t *root, struct config *cfg, char *err, size_t errlen);
/* Frees what config_parse_tls made. */
void config_tls_free(struct config *cfg);

#endif
