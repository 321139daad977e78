/* libFuzzer target: configuration loading (proxy/config.h), the same code that
 * serves startup, --check-config and every reload (SIGHUP, file change, POST
 * /reload). The input is the JSON text, given to config_load_string() (the file
 * loader differs only in reading the file).
 *
 * A rejected config must come with a message. An accepted one must describe
 * itself (config_to_json(), GET /config), and that description must load back to
 * the same config: this is what lets a reload tell which keys changed. */
#include <jansson.h>
#include <string.h>

#include "config.h"
#include "fuzz_common.h"

static char *dump(const struct config *cfg, int redact)
{
    json_t *j = config_to_json(cfg, redact);
    CHECK(j != NULL, "config_to_json(redact=%d) failed on a config that loaded", redact);
    char *s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    CHECK(s != NULL, "json_dumps");
    json_decref(j);
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *json = malloc(size + 1);
    CHECK(json != NULL, "malloc");
    memcpy(json, data, size);
    json[size] = '\0';

    char err[256];
    memset(err, 0, sizeof(err));
    struct config *cfg = config_load_string(json, err, sizeof(err));
    free(json);
    if (!cfg) {
        CHECK(err[0] != '\0' && memchr(err, '\0', sizeof(err)) != NULL,
              "a rejected config without a message");
        return 0;
    }
    CHECK(atomic_load(&cfg->refs) == 1, "a new config has %d references", atomic_load(&cfg->refs));
    CHECK(cfg->nregions > 0 && cfg->threads >= 1, "accepted without regions or threads");
    CHECK(config_primary_region(cfg) != NULL, "no primary region");

    char *redacted = dump(cfg, 1);
    char *full = dump(cfg, 0);

    char err2[256] = "";
    struct config *again = config_load_string(full, err2, sizeof(err2));
    CHECK(again != NULL, "the config's own description does not load: %s\n%s", err2, full);
    char *full2 = dump(again, 0);
    CHECK(strcmp(full, full2) == 0, "description changed by a reload:\n%s\n%s", full, full2);

    char restart[256];
    config_carry_restart_keys(cfg, again, restart, sizeof(restart));
    CHECK(restart[0] == '\0', "an identical config needs a restart for: %s", restart);

    struct config *ref = config_acquire(again);
    CHECK(ref == again && atomic_load(&again->refs) == 2, "acquire");
    config_release(&ref);
    CHECK(ref == NULL, "release does not clear the pointer");
    config_release(&again);

    free(full2);
    free(full);
    free(redacted);
    config_destroy(&cfg);
    return 0;
}
