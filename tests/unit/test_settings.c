/* Configuration loading and the command table: values in, values out. */
#include <criterion/criterion.h>
#include <string.h>

#include "command.h"
#include "config.h"
#include "log.h"

static char err[512];

static struct config *load(const char *json)
{
    err[0] = '\0';
    return config_load_string(json, err, sizeof(err));
}

static void assert_error_names(const char *json, const char *key)
{
    struct config *cfg = load(json);
    cr_assert_null(cfg, "accepted: %s", json);
    cr_assert_not_null(strstr(err, key), "error \"%s\" does not name %s", err, key);
}

#define REGION "\"regions\": [{\"name\": \"a\", \"nodes\": [\"127.0.0.1:6379\"]}]"

Test(config, a_full_config_loads_every_key)
{
    struct config *cfg =
        load("{\"listen\": \"0.0.0.0:7000\", \"threads\": 3,"
             "\"log\": {\"level\": \"debug\"}, \"shutdown_timeout_ms\": 100, \"busy_poll_us\": 50,"
             "\"regions\": [{\"name\": \"eu\", \"priority\": 2, \"nodes\": "
             "[\"10.0.0.1:6379\", \"[::1]:6380\"]},"
             "{\"name\": \"us\", \"priority\": 1, \"nodes\": [\"h:1\"]}],"
             "\"upstream\": {\"connections_per_node\": 4, \"connect_timeout_ms\": 250},"
             "\"limits\": {\"max_clients\": 5, \"max_query_buffer_bytes\": 2048,"
             "\"max_pending_per_client\": 7}}");
    cr_assert_not_null(cfg, "%s", err);
    cr_assert_str_eq(cfg->listen.host, "0.0.0.0");
    cr_assert_eq(cfg->listen.port, 7000);
    cr_assert_eq(cfg->threads, 3);
    cr_assert_eq(cfg->log_level, LOG_DEBUG);
    cr_assert_eq(cfg->shutdown_timeout_ms, 100);
    cr_assert_eq(cfg->busy_poll_us, 50);
    cr_assert_eq(cfg->nregions, 2);
    cr_assert_eq(cfg->regions[0].nnodes, 2);
    cr_assert_str_eq(cfg->regions[0].nodes[1].host, "::1");
    cr_assert_eq(cfg->regions[0].nodes[1].port, 6380);
    cr_assert_str_eq(config_primary_region(cfg)->name, "us");
    cr_assert_eq(cfg->upstream.connections_per_node, 4);
    cr_assert_eq(cfg->upstream.connect_timeout_ms, 250);
    cr_assert_eq(cfg->limits.max_clients, 5);
    cr_assert_eq(cfg->limits.max_query_buffer_bytes, 2048);
    cr_assert_eq(cfg->limits.max_pending_per_client, 7);
    config_destroy(&cfg);
    cr_assert_null(cfg);
}

Test(config, omitted_keys_take_their_documented_defaults)
{
    struct config *cfg = load("{" REGION "}");
    cr_assert_not_null(cfg, "%s", err);
    cr_assert_str_eq(cfg->listen.host, "127.0.0.1");
    cr_assert_eq(cfg->listen.port, 7379);
    cr_assert_geq(cfg->threads, 1);
    cr_assert_eq(cfg->log_level, LOG_INFO);
    cr_assert_eq(cfg->shutdown_timeout_ms, 5000);
    cr_assert_eq(cfg->busy_poll_us, 0);
    cr_assert_eq(cfg->regions[0].priority, 0);
    cr_assert_eq(cfg->upstream.connections_per_node, 2);
    cr_assert_eq(cfg->upstream.connect_timeout_ms, 1000);
    cr_assert_eq(cfg->limits.max_clients, 10000);
    cr_assert_eq(cfg->limits.max_query_buffer_bytes, 1LL << 30);
    cr_assert_eq(cfg->limits.max_pending_per_client, 1024);
    config_destroy(&cfg);
}

Test(config, every_error_names_the_offending_key)
{
    assert_error_names("{" REGION ", \"bogus\": 1}", "bogus: unknown key");
    assert_error_names("{" REGION ", \"upstream\": {\"bogus\": 1}}", "upstream.bogus");
    assert_error_names("{" REGION ", \"threads\": \"2\"}", "threads: expected an integer");
    assert_error_names("{" REGION ", \"threads\": 0}", "threads: must be from 1");
    assert_error_names("{" REGION ", \"busy_poll_us\": 10001}", "busy_poll_us: must be from 0");
    assert_error_names("{" REGION ", \"upstream\": {\"connections_per_node\": 0}}",
                       "upstream.connections_per_node");
    assert_error_names("{" REGION ", \"limits\": {\"max_query_buffer_bytes\": 10}}",
                       "limits.max_query_buffer_bytes");
    assert_error_names("{" REGION ", \"limits\": 3}", "limits: expected an object");
    assert_error_names("{" REGION ", \"log\": {\"level\": \"loud\"}}", "log.level");
    assert_error_names("{" REGION ", \"listen\": \"nohost\"}", "listen");
    assert_error_names("{}", "regions: required");
    assert_error_names("{\"regions\": []}", "regions: expected a non-empty array");
    assert_error_names("{\"regions\": [{\"name\": \"a\", \"nodes\": []}]}", "regions[0].nodes");
    assert_error_names("{\"regions\": [{\"nodes\": [\"h:1\"]}]}", "regions[0].name");
    assert_error_names("{\"regions\": [{\"name\": \"a\", \"nodes\": [\"h:1\", \"h:99999\"]}]}",
                       "regions[0].nodes[1]: port");
    assert_error_names("{\"regions\": [{\"name\": \"a\", \"nodes\": [\"h:1\", \"h:1\"]}]}",
                       "regions[0].nodes[1]: duplicate");
    assert_error_names("{\"regions\": [{\"name\": \"a\", \"nodes\": [\"h:1\"]},"
                       "{\"name\": \"a\", \"nodes\": [\"h:2\"]}]}",
                       "regions[1].name: duplicate");
    assert_error_names("{\"regions\": [{\"name\": \"a\", \"nodes\": [\"h:1\"], \"x\": 1}]}",
                       "regions[0].x: unknown key");
}

Test(config, routing_and_probe_keys_load_and_are_checked)
{
    struct config *cfg = load("{" REGION ", \"probe_interval_ms\": 50, \"routing\": {"
                              "\"reads\": \"any\", \"max_lag_bytes\": 4096,"
                              "\"read_your_writes\": false, \"no_replica\": \"error\"}}");
    cr_assert_not_null(cfg, "%s", err);
    cr_assert_eq(cfg->probe_interval_ms, 50);
    cr_assert_eq(cfg->routing.reads, 2);
    cr_assert_eq(cfg->routing.max_lag_bytes, 4096);
    cr_assert_eq(cfg->routing.read_your_writes, 0);
    cr_assert_eq(cfg->routing.no_replica_error, 1);
    config_destroy(&cfg);
    cfg = load("{" REGION "}");
    cr_assert_eq(cfg->probe_interval_ms, 100);
    cr_assert_eq(cfg->routing.reads, 0, "reads from replicas by default");
    cr_assert_eq(cfg->routing.max_lag_bytes, 1 << 20);
    cr_assert_eq(cfg->routing.read_your_writes, 1);
    cr_assert_eq(cfg->routing.no_replica_error, 0);
    config_destroy(&cfg);
    assert_error_names("{" REGION ", \"routing\": {\"reads\": \"replicas\"}}", "routing.reads");
    assert_error_names("{" REGION ", \"routing\": {\"no_replica\": 1}}", "routing.no_replica");
    assert_error_names("{" REGION ", \"routing\": {\"read_your_writes\": 1}}",
                       "routing.read_your_writes");
    assert_error_names("{" REGION ", \"routing\": {\"lag\": 1}}", "routing.lag: unknown key");
    assert_error_names("{" REGION ", \"probe_interval_ms\": 1}", "probe_interval_ms");
}

Test(config, sentinel_and_failover_keys_load_and_are_checked)
{
    struct config *cfg = load(
        "{\"regions\": [{\"name\": \"a\", \"sentinel\": {\"addresses\": "
        "[\"10.0.0.1:26379\", \"s2:26380\"], \"master_name\": \"orders\", \"password\": \"pw\"}},"
        "{\"name\": \"b\", \"priority\": 2, \"nodes\": [\"h:1\"], \"sentinel\": {\"addresses\": "
        "[\"s3:1\"], \"master_name\": \"orders\"}}],"
        "\"failover\": {\"hold_ms\": 2500, \"max_held_requests\": 7}}");
    cr_assert_not_null(cfg, "%s", err);
    cr_assert_eq(cfg->regions[0].nnodes, 0, "nodes may be left to Sentinel");
    cr_assert_eq(cfg->regions[0].nsentinels, 2);
    cr_assert_str_eq(cfg->regions[0].sentinels[1].host, "s2");
    cr_assert_eq(cfg->regions[0].sentinels[1].port, 26380);
    cr_assert_str_eq(cfg->regions[0].master_name, "orders");
    cr_assert_str_eq(cfg->regions[0].sentinel_password, "pw");
    cr_assert_null(cfg->regions[0].sentinel_username);
    cr_assert_eq(cfg->regions[1].nnodes, 1);
    cr_assert_eq(cfg->failover.hold_ms, 2500);
    cr_assert_eq(cfg->failover.max_held_requests, 7);
    config_destroy(&cfg);

    cfg = load("{" REGION "}");
    cr_assert_eq(cfg->failover.hold_ms, 15000);
    cr_assert_eq(cfg->failover.max_held_requests, 100000);
    config_destroy(&cfg);

    assert_error_names("{\"regions\": [{\"name\": \"a\"}]}", "regions[0].nodes");
    assert_error_names("{\"regions\": [{\"name\": \"a\", \"sentinel\": {\"addresses\": "
                       "[\"h:1\"]}}]}",
                       "regions[0].sentinel.master_name");
    assert_error_names("{\"regions\": [{\"name\": \"a\", \"sentinel\": {\"addresses\": [], "
                       "\"master_name\": \"m\"}}]}",
                       "regions[0].sentinel.addresses");
    assert_error_names("{\"regions\": [{\"name\": \"a\", \"sentinel\": {\"addresses\": "
                       "[\"h:1\", \"h:1\"], \"master_name\": \"m\"}}]}",
                       "regions[0].sentinel.addresses[1]");
    assert_error_names("{\"regions\": [{\"name\": \"a\", \"sentinel\": {\"addresses\": "
                       "[\"h:1\"], \"master_name\": \"m\", \"quorum\": 2}}]}",
                       "regions[0].sentinel.quorum");
    assert_error_names("{\"regions\": [{\"name\": \"a\", \"sentinel\": {\"addresses\": "
                       "[\"h:1\"], \"master_name\": \"m\"}}, {\"name\": \"b\", \"sentinel\": "
                       "{\"addresses\": [\"h:2\"], \"master_name\": \"other\"}}]}",
                       "regions[1].sentinel.master_name");
    cfg = load("{" REGION ", \"admin\": {\"listen\": \"0.0.0.0:9100\", \"token\": \"t\"}}");
    cr_assert(cfg->admin.enabled);
    cr_assert_eq(cfg->admin.listen.port, 9100);
    cr_assert_str_eq(cfg->admin.token, "t");
    config_destroy(&cfg);
    cfg = load("{" REGION ", \"admin\": {\"listen\": null}}");
    cr_assert(!cfg->admin.enabled);
    config_destroy(&cfg);
    assert_error_names("{" REGION ", \"admin\": {\"listen\": 80}}", "admin.listen");
    assert_error_names("{" REGION ", \"admin\": {\"port\": 80}}", "admin.port");
    assert_error_names("{" REGION ", \"failover\": {\"hold_ms\": -1}}", "failover.hold_ms");
    assert_error_names("{" REGION ", \"failover\": {\"hold\": 1}}", "failover.hold");
}

Test(config, invalid_json_reports_its_line)
{
    assert_error_names("{\n\"regions\": [\n", "line");
    assert_error_names("{" REGION ", " REGION "}", "duplicate");
}

Test(config, addresses_parse_with_and_without_ipv6_brackets)
{
    struct config_addr a;
    char why[128];
    cr_assert_eq(config_parse_addr("127.0.0.1:6379", &a, why, sizeof(why)), 0);
    cr_assert_str_eq(a.host, "127.0.0.1");
    cr_assert_eq(a.port, 6379);
    cr_assert_eq(config_parse_addr("[::1]:6380", &a, why, sizeof(why)), 0);
    cr_assert_str_eq(a.host, "::1");
    cr_assert_eq(config_parse_addr("localhost:1", &a, why, sizeof(why)), 0);
    const char *bad[] = {":6379", "host:",     "host:70000", "host:0", "::1:6379",
                         "host",  "[::1]6379", "host:12a",   "[]:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(config_parse_addr(bad[i], &a, why, sizeof(why)), -1, "accepted %s", bad[i]);
}

Test(command, session_commands_need_a_connection_of_their_own)
{
    const char *session[] = {"multi",    "watch",  "blpop",     "brpop",      "blmove",
                             "bzpopmin", "xread",  "subscribe", "psubscribe", "ssubscribe",
                             "monitor",  "select", "auth",      "hello"};
    for (size_t i = 0; i < sizeof(session) / sizeof(session[0]); i++)
        cr_assert(cmd_flags(session[i], strlen(session[i])) & CMD_SESSION, "%s", session[i]);
}

Test(command, ordinary_and_unknown_commands_need_no_session)
{
    const char *plain[] = {"get",         "set", "incr", "exec",   "eval",  "publish",
                           "unsubscribe", "a",   "zzzz", "blpopx", "multix"};
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
        cr_assert_eq(cmd_flags(plain[i], strlen(plain[i])) & (CMD_SESSION | CMD_QUIT | CMD_CLIENT),
                     0, "%s", plain[i]);
    cr_assert_eq(cmd_flags("zzzz", 4), 0, "unknown commands have no flags");
    cr_assert(cmd_flags("quit", 4) & CMD_QUIT);
    cr_assert(cmd_flags("client", 6) & CMD_CLIENT);
    cr_assert(cmd_flags("ssubscribe", 10) & CMD_SESSION);
    cr_assert_eq(cmd_flags("wait", 4) & CMD_SESSION, 0, "WAIT runs where the writes went");
    cr_assert_null(cmd_lookup("mult", 4), "a prefix of a name is not the name");
}

Test(command, flags_come_from_redis_own_command_table)
{
    cr_assert(cmd_flags("get", 3) & CMD_READONLY);
    cr_assert(cmd_flags("set", 3) & CMD_WRITE);
    cr_assert(cmd_flags("eval_ro", 7) & CMD_READONLY);
    cr_assert(cmd_flags("eval", 4) & CMD_SCRIPTING);
    cr_assert(!(cmd_flags("eval", 4) & CMD_READONLY));
    cr_assert(cmd_flags("ping", 4) & CMD_NOKEY);
    cr_assert(cmd_flags("blpop", 5) & CMD_BLOCKING);
    cr_assert(cmd_flags("client", 6) & CMD_CONTAINER);
    const struct cmd_info *c = cmd_lookup("client|setname", 14);
    cr_assert_not_null(c);
    cr_assert_eq(c->arity, 3);
    cr_assert_eq(cmd_lookup("get", 3)->first_key, 1);
}

Test(command, every_row_is_found_and_the_table_is_sorted)
{
    cr_assert_gt(cmd_count(), 200);
    for (size_t i = 0; i < cmd_count(); i++) {
        const struct cmd_info *c = cmd_at(i);
        cr_assert_eq(cmd_lookup(c->name, c->len), c, "%s", c->name);
        if (i) cr_assert_lt(strcmp(cmd_at(i - 1)->name, c->name), 0, "%s", c->name);
    }
}

Test(command, flags_from_a_command_reply_map_like_the_generated_table)
{
    const char *ro[] = {"readonly", "fast"}, *w[] = {"write", "denyoom"};
    const char *cats[] = {"@read", "@blocking"};
    cr_assert_eq(cmd_flags_from_redis(ro, 2, NULL, 0, 1, 1, 0), CMD_READONLY | CMD_FAST);
    cr_assert_eq(cmd_flags_from_redis(w, 2, cats, 2, 1, 1, 0), CMD_WRITE | CMD_BLOCKING);
    cr_assert_eq(cmd_flags_from_redis(NULL, 0, NULL, 0, 0, 0, 1), CMD_NOKEY | CMD_CONTAINER);
    const char *get_flags[] = {"readonly", "fast"}, *get_cats[] = {"@read", "@string", "@fast"};
    cr_assert_eq(cmd_flags_from_redis(get_flags, 2, get_cats, 3, 1, 1, 0),
                 cmd_lookup("get", 3)->flags, "the same mapping as gen_commands.py");
}

Test(command, an_overlay_finds_what_it_learned_and_nothing_else)
{
    struct cmd_overlay *o = cmd_overlay_create(3);
    cr_assert_eq(cmd_overlay_add(o, "FT.SEARCH", 9, -1, 1, CMD_READONLY), 0);
    cr_assert_eq(cmd_overlay_add(o, "ft.add", 6, -1, 1, CMD_WRITE), 0);
    cr_assert_eq(cmd_overlay_add(o, "ft.create", 9, -1, 1, CMD_WRITE), 0);
    cr_assert_eq(cmd_overlay_add(o, "ft.drop", 7, -1, 1, CMD_WRITE), -1, "full");
    cmd_overlay_finish(o);
    cr_assert_eq(cmd_overlay_lookup(o, "ft.search", 9)->flags, CMD_READONLY, "names lowercased");
    cr_assert_not_null(cmd_overlay_lookup(o, "ft.add", 6));
    cr_assert_null(cmd_overlay_lookup(o, "ft.ad", 5));
    cr_assert_null(cmd_overlay_lookup(NULL, "ft.add", 6));
    struct cmd_overlay *held = cmd_overlay_acquire(o);
    cmd_overlay_release(&o);
    cr_assert_eq(cmd_overlay_count(held), 3);
    cmd_overlay_release(&held);
}
