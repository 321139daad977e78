/* config_json: the typed getters config.c reads a JSON config with. Each checks
 * the value's type and range and writes an error naming the key ("limits.max_clients:
 * must be from 1 to 1000000") into err, returning -1; an absent key leaves *out as
 * it was. Internal to the config module (config*.c). */
#ifndef RG_CONFIG_JSON_H
#define RG_CONFIG_JSON_H

#include <jansson.h>
#include <stddef.h>

/* Formats into err; returns -1, so that "return config_json_fail(...)" reports an error. */
int config_json_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Every key of obj must be one of allowed (NULL-terminated). */
int config_json_keys(json_t *obj, const char *path, const char *const *allowed, char *err,
                     size_t errlen);
/* An optional integer within [min, max]. */
int config_json_int(json_t *obj, const char *path, const char *key, long long min, long long max,
                    long long *out, char *err, size_t errlen);
/* An optional object (*out NULL when absent). */
int config_json_object(json_t *obj, const char *path, const char *key, json_t **out, char *err,
                       size_t errlen);
/* A string that must be one of choices (NULL-terminated); *out is its index. */
int config_json_choice(json_t *obj, const char *path, const char *key, const char *const *choices,
                       int *out, char *err, size_t errlen);
/* An optional non-empty string (null counts as absent); *out is a copy. */
int config_json_string(json_t *obj, const char *path, const char *key, char **out, char *err,
                       size_t errlen);

#endif
