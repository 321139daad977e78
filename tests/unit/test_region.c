/* Regions: which region a discovered node is in (CIDR blocks, host-name suffixes,
 * local_region and RESPGATE_REGION), how near each is for reads, and the
 * replica-priority each region's replicas get. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "region.h"

static const char layout[] =
    "{\"regions\": ["
    " {\"name\": \"east\", \"priority\": 1, \"nodes\": [\"127.0.0.1:7000\"],"
    "  \"match\": [\"10.1.0.0/16\", \"east.example.com\", \"fd00:1::/32\"]},"
    " {\"name\": \"west\", \"priority\": 2, \"nodes\": [\"127.0.0.1:7001\"],"
    "  \"match\": [\"10.2.0.0/15\", \".west.example.com\"]},"
    " {\"name\": \"dr\", \"priority\": 3, \"nodes\": [\"127.0.0.1:7002\"]}],"
    " \"local_region\": \"west\"}";

static struct config *load(const char *json)
{
    char err[256];
    struct config *cfg = config_load_string(json, err, sizeof(err));
    cr_assert(cfg, "%s", err);
    return cfg;
}

Test(region, discovered_nodes_are_placed_by_block_or_suffix)
{
    unsetenv("RESPGATE_REGION");
    struct config *cfg = load(layout);
    cr_assert_eq(region_match(cfg, "10.1.3.4", NULL), 0);
    cr_assert_eq(region_match(cfg, "10.3.255.1", NULL), 1, "a /15 takes 10.2 and 10.3");
    cr_assert_eq(region_match(cfg, "10.4.0.1", NULL), -1);
    cr_assert_eq(region_match(cfg, "redis-1.East.Example.com", "192.168.0.9"), 0);
    cr_assert_eq(region_match(cfg, "redis-1.beast.example.com", NULL), -1, "at a dot only");
    cr_assert_eq(region_match(cfg, "r.west.example.com.", NULL), 1);
    cr_assert_eq(region_match(cfg, "west.example.com", NULL), 1);
    cr_assert_eq(region_match(cfg, "redis", "10.2.0.7"), 1, "by its resolved address");
    cr_assert_eq(region_match(cfg, "fd00:1:ffff::1", NULL), 0);
    cr_assert_eq(region_match(cfg, "fd00:2::1", NULL), -1);
    config_release(&cfg);
}

Test(region, ranks_and_replica_priorities_follow_the_priorities)
{
    unsetenv("RESPGATE_REGION");
    struct config *cfg = load(layout);
    cr_assert_eq(cfg->local_region, 1);
    cr_assert(cfg->routing.prefer_local, "local is the default with local_region");
    cr_assert_eq(region_rank(cfg, 1), 0);
    cr_assert_lt(region_rank(cfg, 0), region_rank(cfg, 2));
    cr_assert_lt(region_rank(cfg, 2), region_rank(cfg, -1));
    cr_assert_eq(region_replica_priority(cfg, 0), 10);
    cr_assert_eq(region_replica_priority(cfg, 1), 20);
    cr_assert_eq(region_replica_priority(cfg, 2), 30);
    cr_assert_eq(region_replica_priority(cfg, -1), 0, "no region: left alone");
    config_release(&cfg);
}

Test(region, the_environment_names_the_local_region_and_unknown_names_fail)
{
    setenv("RESPGATE_REGION", "dr", 1);
    struct config *cfg = load(layout);
    cr_assert_eq(cfg->local_region, 2);
    config_release(&cfg);
    char err[256];
    setenv("RESPGATE_REGION", "mars", 1);
    cr_assert_null(config_load_string(layout, err, sizeof(err)));
    cr_assert(strstr(err, "RESPGATE_REGION") && strstr(err, "mars"), "%s", err);
    unsetenv("RESPGATE_REGION");
    cr_assert_null(config_load_string("{\"regions\": [{\"name\": \"a\", \"nodes\": "
                                      "[\"h:1\"], \"match\": [\"10.0.0.0/33\"]}]}",
                                      err, sizeof(err)));
    cr_assert(strstr(err, "regions[0].match[0]"), "%s", err);
    cr_assert_null(config_load_string("{\"regions\": [{\"name\": \"a\", \"nodes\": [\"h:1\"]}], "
                                      "\"routing\": {\"prefer\": \"local\"}}",
                                      err, sizeof(err)));
    cr_assert(strstr(err, "routing.prefer"), "%s", err);
}
