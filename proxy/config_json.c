/* config_json: see config_json.h. */
#include "config_json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int config_json_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Every key of obj must be one of allowed (NULL-terminated). */
int config_json_keys(json_t *obj, const char *path, const char *const *allowed, char *err,
                     size_t errlen)
{
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val)
    {
        int known = 0;
        for (const char *const *a = allowed; *a && !known; a++)
            known = strcmp(*a, key) == 0;
        if (!known)
            return config_json_fail(err, errlen, "%s%s%s: unknown key", path, *path ? "." : "",
                                    key);
    }
    return 0;
}

/* Reads an optional integer within [min, max]; leaves *out alone when absent. */
int config_json_int(json_t *obj, const char *path, const char *key, long long min, long long max,
                    long long *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return 0;
    const char *dot = *path ? "." : "";
    if (!json_is_integer(v))
        return config_json_fail(err, errlen, "%s%s%s: expected an integer", path, dot, key);
    long long n = json_integer_value(v);
    if (n < min || n > max)
        return config_json_fail(err, errlen, "%s%s%s: must be from %lld to %lld", path, dot, key,
                                min, max);
    *out = n;
    return 0;
}

int config_json_object(json_t *obj, const char *path, const char *key, json_t **out, char *err,
                       size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    *out = v;
    if (v && !json_is_object(v))
        return config_json_fail(err, errlen, "%s%s%s: expected an object", path, *path ? "." : "",
                                key);
    return 0;
}

/* A string that must be one of choices; *out is its index. Absent: unchanged. */
int config_json_choice(json_t *obj, const char *path, const char *key, const char *const *choices,
                       int *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return 0;
    for (int i = 0; json_is_string(v) && choices[i]; i++)
        if (strcmp(json_string_value(v), choices[i]) == 0) {
            *out = i;
            return 0;
        }
    char list[128] = "";
    for (int i = 0; choices[i]; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s\"%s\"", i ? ", " : "",
                 choices[i]);
    return config_json_fail(err, errlen, "%s.%s: expected one of %s", path, key, list);
}

/* An optional string (null counts as absent); *out is a copy. */
int config_json_string(json_t *obj, const char *path, const char *key, char **out, char *err,
                       size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v) || json_string_length(v) == 0)
        return config_json_fail(err, errlen, "%s.%s: expected a non-empty string or null", path,
                                key);
    if (!(*out = strdup(json_string_value(v))))
        return config_json_fail(err, errlen, "out of memory");
    return 0;
}
