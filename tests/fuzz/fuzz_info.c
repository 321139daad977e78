/* libFuzzer target: INFO parsing (proxy/info.h), which reads what every node
 * answers to the control thread's probes. The input is the text of an INFO reply,
 * in a buffer of exactly its size (no terminating NUL), so reading past it is an
 * ASan report. Whatever it says, a parsed result stays within its bounds: a known
 * role, replicas only up to INFO_REPLICAS_MAX, every address NUL-terminated with a
 * valid port, and parsing twice gives the same answer. */
#include <string.h>

#include "fuzz_common.h"
#include "info.h"

static void check_addr(const struct config_addr *a, int port_may_be_zero, const char *what)
{
    CHECK(memchr(a->host, '\0', sizeof(a->host)) != NULL, "%s: host not terminated", what);
    CHECK((port_may_be_zero && a->port == 0) || (a->port >= 1 && a->port <= 65535), "%s: port %d",
          what, a->port);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1);
    CHECK(text != NULL, "malloc");
    memcpy(text, data, size);

    struct info_replication a, b;
    int rc = info_parse(text, size, &a);
    CHECK(rc == 0 || rc == -1, "info_parse returned %d", rc);
    if (rc == 0) {
        CHECK(a.role == TOPO_UNKNOWN || a.role == TOPO_MASTER || a.role == TOPO_REPLICA, "role %d",
              (int)a.role);
        CHECK(a.link_up == 0 || a.link_up == 1, "link_up %d", a.link_up);
        CHECK(a.syncing == 0 || a.syncing == 1, "syncing %d", a.syncing);
        CHECK(a.loading == 0 || a.loading == 1, "loading %d", a.loading);
        CHECK(a.offset >= 0, "offset %lld", a.offset);
        CHECK(a.nreplicas <= INFO_REPLICAS_MAX, "nreplicas %zu", a.nreplicas);
        check_addr(&a.master, 1, "master");
        for (size_t i = 0; i < a.nreplicas; i++) {
            check_addr(&a.replicas[i], 0, "replica");
            CHECK(a.replicas[i].host[0] != '\0', "replica %zu without a host", i);
        }
        /* Pure: the same text, the same result. */
        CHECK(info_parse(text, size, &b) == 0, "second parse failed");
        CHECK(a.role == b.role && a.offset == b.offset && a.nreplicas == b.nreplicas &&
                  a.link_up == b.link_up && a.master.port == b.master.port &&
                  strcmp(a.master.host, b.master.host) == 0,
              "second parse differs");
    }
    free(text);
    return 0;
}
