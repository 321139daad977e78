/* Secrets stay out of what respgate shows: the message of a config that is not
 * JSON (the log, GET /config's last_reload.message, --check-config) and the
 * redacted dump (GET /config). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static char err[512];

#define REGION "\"regions\": [{\"name\": \"a\", \"nodes\": [\"127.0.0.1:6379\"]}]"

/* Files that are not JSON, each broken right at a secret, which jansson's own
 * message quotes ("... near '\"hunter2-secret\"'"). */
static const struct {
    const char *json, *secret;
    int line;
} broken[] = {
    /* the colon missing between a key and the password */
    {"{\n" REGION ",\n\"auth\": {\n  \"password\" \"hunter2-secret\"\n}\n}", "hunter2-secret", 4},
    /* a comma missing before the secret, in an array (a hook's argument) */
    {"{\n" REGION ",\n\"notify\": {\"command\":\n [\"/bin/hook\" \"--tok=s3cr3t\"]}}", "s3cr3t", 4},
    /* a password that runs to the end of the line */
    {"{" REGION ",\n\"upstream\": {\n\"password\": \"up-secret-9\n\"}}", "up-secret-9", 3},
    /* a tab in a password */
    {"{" REGION ", \"admin\": {\"token\": \"qx7\tzz\"}}", "qx7", 1},
    /* a password without quotes */
    {"{" REGION ",\n\n\"auth\": {\"password\": hunterx}}", "hunterx", 3},
    /* the whole file a string */
    {"\"hunter2-secret\"", "hunter2", 1},
    /* something after the object */
    {"{" REGION "}\n\"hunter2-secret\"", "hunter2", 2},
    /* a bad \\u escape in a password */
    {"{" REGION ", \"auth\": {\"password\": \"pq9\\uD800\\u0041\"}}", "pq9", 1},
    /* a password cut off by the end of the file */
    {"{" REGION ",\n\"auth\": {\"password\": \"hunter2-sec", "hunter2", 2},
    /* a NUL escape in a password */
    {"{" REGION ", \"auth\": {\"password\": \"hq5\\u0000ter\"}}", "hq5", 1},
};

Test(parse_error, names_the_line_and_never_quotes_the_file)
{
    for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
        json_error_t jerr;
        json_t *j = json_loads(broken[i].json, JSON_REJECT_DUPLICATES, &jerr);
        cr_assert_null(j, "case %zu is JSON", i);
        err[0] = '\0';
        struct config *cfg = config_load_string(broken[i].json, err, sizeof(err));
        cr_assert_null(cfg, "case %zu loaded", i);
        cr_assert_null(strstr(err, broken[i].secret), "case %zu: \"%s\" in \"%s\" (jansson: %s)", i,
                       broken[i].secret, err, jerr.text);
        cr_assert_null(strstr(err, "near"), "case %zu: jansson's context in \"%s\"", i, err);
        char where[32];
        snprintf(where, sizeof(where), "line %d, column ", broken[i].line);
        cr_assert_eq(strncmp(err, where, strlen(where)), 0, "case %zu: \"%s\" is not at %s", i, err,
                     where);
        cr_assert_not_null(strstr(err, "invalid JSON"), "case %zu: \"%s\"", i, err);
    }
}

Test(parse_error, the_cases_are_ones_jansson_would_leak)
{
    /* So that the test above tests something: jansson's text has the secret. */
    size_t leaking = 0;
    for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
        json_error_t jerr;
        cr_assert_null(json_loads(broken[i].json, JSON_REJECT_DUPLICATES, &jerr));
        leaking += strstr(jerr.text, broken[i].secret) != NULL;
    }
    cr_assert_geq(leaking, 8, "only %zu cases quote their secret", leaking);
}

Test(parse_error, says_what_is_wrong_in_words)
{
    static const char *const cases[][2] = {
        {"{\n" REGION ",\n\"auth\": {\n  \"password\" \"hunter2-secret\"\n}\n}",
         "line 4, column 29: invalid JSON (':' expected after the key)"},
        {"{" REGION ",\n\"auth\": {\"password\": \"x\" \"users\": []}}",
         "line 2, column 32: invalid JSON (',' or '}' expected)"},
        {"{" REGION ",\n\"auth\": {\"password\": \"x\"", "invalid JSON (the file ends too early, "
                                                         "',' or '}' expected)"},
        {"{" REGION ", " REGION "}", "invalid JSON (duplicate key in an object)"},
        {"", "line 1, column 0: invalid JSON (the file ends too early, '{' expected)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = '\0';
        cr_assert_null(config_load_string(cases[i][0], err, sizeof(err)));
        cr_assert_not_null(strstr(err, cases[i][1]), "\"%s\" does not say \"%s\"", err,
                           cases[i][1]);
    }
}

Test(parse_error, from_a_file_too)
{
    char path[] = "/tmp/respgate-redact-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    const char *text = broken[0].json;
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    err[0] = '\0';
    struct config *cfg = config_load_file(path, err, sizeof(err));
    unlink(path);
    cr_assert_null(cfg);
    cr_assert_null(strstr(err, "hunter2"), "%s", err);
    cr_assert_not_null(strstr(err, "line 4"), "%s", err);
    /* A file that cannot be read says why (nothing was read from it). */
    cr_assert_null(config_load_file(path, err, sizeof(err)));
    cr_assert_not_null(strstr(err, "No such file"), "%s", err);
}

static const char *const secrets[] = {
    "sentinel-pw-1", "up-pw-2",  "app-pw-3", "user-pw-4", "tok-zz9",    "arg-secret-5",
    "--key=arg6",    "qs-tok-7", "frag-8",   "hookuser",  "hookpass-9",
};

Test(dump, redacts_every_secret_and_keeps_what_is_not_one)
{
    struct config *cfg = config_load_string(
        "{\"regions\": [{\"name\": \"a\", \"sentinel\": {\"addresses\": [\"s:1\"], "
        "\"master_name\": \"m\", \"username\": \"sentinel-user\", \"password\": "
        "\"sentinel-pw-1\"}}],"
        "\"upstream\": {\"username\": \"up-user\", \"password\": \"up-pw-2\"}, \"auth\": "
        "{\"password\": \"app-pw-3\", \"users\": [{\"name\": \"u\", \"password\": \"user-pw-4\"}]},"
        "\"admin\": {\"token\": \"tok-zz9\"}, \"notify\": {\"command\": [\"/usr/local/bin/hook\", "
        "\"arg-secret-5\", \"--key=arg6\", \"\"], \"webhook\": "
        "\"http://hooks.local:8080/a/b?token=qs-tok-7#frag-8\"}}",
        err, sizeof(err));
    cr_assert_not_null(cfg, "%s", err);
    json_t *j = config_to_json(cfg, 1);
    char *text = json_dumps(j, JSON_COMPACT);
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
        cr_assert_null(strstr(text, secrets[i]), "%s shows in %s", secrets[i], text);
    json_t *notify = json_object_get(j, "notify"), *cmd = json_object_get(notify, "command");
    cr_assert_eq(json_array_size(cmd), 4, "as many arguments as configured");
    cr_assert_str_eq(json_string_value(json_array_get(cmd, 0)), "/usr/local/bin/hook");
    for (size_t i = 1; i < 4; i++)
        cr_assert_str_eq(json_string_value(json_array_get(cmd, i)), "(redacted)");
    cr_assert_str_eq(json_string_value(json_object_get(notify, "webhook")),
                     "http://hooks.local:8080/a/b?(redacted)");
    cr_assert_not_null(strstr(text, "\"username\":\"up-user\""), "user names are no secret");
    cr_assert_not_null(strstr(text, "\"username\":\"sentinel-user\""));
    free(text);
    json_decref(j);

    /* Unredacted, for telling whether a reload changed something, it is all there. */
    j = config_to_json(cfg, 0);
    text = json_dumps(j, JSON_COMPACT);
    for (size_t i = 0; i < 8; i++)
        cr_assert_not_null(strstr(text, secrets[i]), "%s missing from %s", secrets[i], text);
    free(text);
    json_decref(j);
    config_release(&cfg);
}

Test(dump, a_hook_without_arguments_or_query_shows_whole)
{
    struct config *cfg =
        config_load_string("{" REGION ", \"notify\": {\"command\": [\"/bin/hook\"], \"webhook\": "
                           "\"http://[::1]:81/events\"}}",
                           err, sizeof(err));
    cr_assert_not_null(cfg, "%s", err);
    json_t *j = config_to_json(cfg, 1), *notify = json_object_get(j, "notify");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(notify, "command"), 0)),
                     "/bin/hook");
    cr_assert_eq(json_array_size(json_object_get(notify, "command")), 1);
    cr_assert_str_eq(json_string_value(json_object_get(notify, "webhook")),
                     "http://[::1]:81/events");
    json_decref(j);
    config_release(&cfg);
}

Test(dump, urls_lose_their_userinfo_query_and_fragment)
{
    static const char *const cases[][2] = {
        {"http://host/path", "http://host/path"},
        {"http://host", "http://host"},
        {"http://host:8080/a/b?token=s3cret", "http://host:8080/a/b?(redacted)"},
        {"http://user:pass@host:8080/a", "http://(redacted)@host:8080/a"},
        {"http://user:p@ss@host/a?x=1#y", "http://(redacted)@host/a?(redacted)"},
        {"http://tok@[::1]:80/", "http://(redacted)@[::1]:80/"},
        {"http://host/a#s3cret", "http://host/a#(redacted)"},
        {"http://host?s3cret", "http://host?(redacted)"},
        {"http://u:s3cret@host?q=s3cret", "http://(redacted)@host?(redacted)"},
        {"host:80/s3cret?x", "(redacted)"},
    };
    char out[128];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        config_redact_url(cases[i][0], out, sizeof(out));
        cr_assert_str_eq(out, cases[i][1], "%s", cases[i][0]);
    }
    /* Cut short, never overrun, and still nothing of the secret. */
    config_redact_url("http://user:pass@host:8080/a?token=s3cret", out, 12);
    cr_assert_str_eq(out, "http://(red");
}
