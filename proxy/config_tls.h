/* config_tls: reads "tls" (the clients' TLS listener) and the "tls" objects of
 * upstream and of each region's sentinel into cfg, and builds their OpenSSL contexts
 * from the certificate files, so that a config that loads has a
 * certificate that loads: a bad file fails the start or the reload (which then keeps
 * the running config, and its certificate). Internal to the config module. */
#ifndef RG_CONFIG_TLS_H
#define RG_CONFIG_TLS_H

#include <jansson.h>
#include <stddef.h>

#include "config.h"

/* Returns 0, or -1 with a message naming the key in err. */
int config_parse_tls(json_t *root, struct config *cfg, char *err, size_t errlen);
/* Reads parent's "tls" (upstream.tls, regions[i].sentinel.tls; ppath names parent)
 * into t and builds its client context. 0, or -1 with a message in err. */
int config_parse_tls_out(json_t *parent, const char *ppath, struct config_tls_out *t, char *err,
                         size_t errlen);
void config_tls_out_free(struct config_tls_out *t);
/* Frees what config_parse_tls made, and upstream.tls. */
void config_tls_free(struct config *cfg);

#endif
