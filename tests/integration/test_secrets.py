"""Secrets stay secret: GET /config (and the other admin answers) show no password,
token, hook argument or webhook credential; a config file that is not JSON, broken
right next to a password, is reported (log, /config's last_reload.message,
--check-config) by line and column, never with the text around the error."""
import json
import os
import subprocess
import unittest

from adminhttp import admin_port, call, get_json
from harness import RESPGATE, Harness, free_port, main

APP_PASSWORD = "hunter2-secret"
USER_PASSWORD = "usr-pw-5150"
UPSTREAM_PASSWORD = "up-pw-8086"
SENTINEL_PASSWORD = "snt-pw-6379"
TOKEN = "adm-tok-4242"
HOOK_ARG = "cmd-secret-1"
HOOK_KEY = "--key=k3y-77"
HOOK_QUERY = "hook-tok-99"
HOOK_USER = "hook-user-31"
ROTATED = "rotated-pw-11"
SECRETS = (APP_PASSWORD, USER_PASSWORD, UPSTREAM_PASSWORD, SENTINEL_PASSWORD, TOKEN, HOOK_ARG,
           "k3y-77", HOOK_QUERY, HOOK_USER, ROTATED)


class Secrets(unittest.TestCase):

    def setUp(self):
        self.h = Harness()
        try:
            self.redis = self.h.redis(password=UPSTREAM_PASSWORD)
            nowhere = free_port()  # a Sentinel that is never there: only its password matters
            self.gate = self.h.respgate(
                self.redis.port,
                regions=[{"name": "local", "priority": 1,
                          "nodes": ["127.0.0.1:%d" % self.redis.port],
                          "sentinel": {"addresses": ["127.0.0.1:%d" % nowhere],
                                       "master_name": "mymaster", "username": "sentinel-user",
                                       "password": SENTINEL_PASSWORD}}],
                upstream={"username": "default", "password": UPSTREAM_PASSWORD},
                auth={"password": APP_PASSWORD,
                      "users": [{"name": "reporting", "password": USER_PASSWORD}]},
                admin={"token": TOKEN},
                notify={"command": ["/bin/true", HOOK_ARG, HOOK_KEY],
                        "webhook": "http://%s@127.0.0.1:9/hooks/failover?token=%s"
                                   % (HOOK_USER, HOOK_QUERY),
                        "timeout_ms": 1000})
            self.port = admin_port(self.gate)
            with open(self.gate.config_path) as f:
                self.cfg = json.load(f)
        except BaseException:
            self.h.close(ok=False)
            raise

    def tearDown(self):
        self.h.close()

    def assertNoSecret(self, text, where):
        for s in SECRETS:
            self.assertNotIn(s, text, "%s shows in %s:\n%s" % (s, where, text[-3000:]))

    def write_config(self, text):
        tmp = self.gate.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, self.gate.config_path)  # as editors and ConfigMaps do

    def check_config(self):
        p = subprocess.run([RESPGATE, "--check-config", self.gate.config_path],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        return p.returncode, p.stdout.decode(errors="replace")

    def test_the_admin_endpoint_shows_no_secret(self):
        code, body, _ = call(self.port, "/config", token=TOKEN)
        self.assertEqual(code, 200)
        self.assertNoSecret(body, "GET /config")
        c = json.loads(body)["config"]
        self.assertEqual(c["auth"]["password"], "(redacted)")
        self.assertEqual(c["auth"]["users"], [{"name": "reporting", "password": "(redacted)"}])
        self.assertEqual((c["upstream"]["username"], c["upstream"]["password"]),
                         ("default", "(redacted)"))
        sentinel = c["regions"][0]["sentinel"]
        self.assertEqual((sentinel["username"], sentinel["password"]),
                         ("sentinel-user", "(redacted)"))
        self.assertEqual(c["admin"]["token"], "(redacted)")
        # The program shows, its arguments do not; the webhook keeps where it goes.
        self.assertEqual(c["notify"]["command"], ["/bin/true", "(redacted)", "(redacted)"])
        self.assertEqual(c["notify"]["webhook"],
                         "http://(redacted)@127.0.0.1:9/hooks/failover?(redacted)")
        for path in ("/topology", "/status", "/metrics"):
            code, body, _ = call(self.port, path, token=TOKEN)
            self.assertEqual(code, 200, path)
            self.assertNoSecret(body, path)
        self.assertNoSecret(self.gate.output(), "the log")

    def broken_files(self):
        """(what, text, the line the error is on): files broken next to a secret."""
        good = json.dumps(self.cfg, indent=2)

        def broken(what, old, new, marker):
            self.assertEqual(good.count(old), 1, old)
            text = good.replace(old, new)
            line = next(n for n, l in enumerate(text.splitlines(), 1) if marker in l)
            return what, text, line
        pw = '"password": "%s"' % APP_PASSWORD
        return [
            broken("a missing comma after the password", pw + ",", pw, '"users"'),
            broken("a missing colon before the password", pw,
                   '"password" "%s"' % APP_PASSWORD, APP_PASSWORD),
            broken("the password's string not closed", pw + ",",
                   '"password": "%s,' % APP_PASSWORD, APP_PASSWORD),
            broken("a missing comma before a hook argument", '"/bin/true",', '"/bin/true"',
                   HOOK_ARG),
            broken("a missing colon before the upstream password",
                   '"password": "%s"' % UPSTREAM_PASSWORD, '"password" "%s"' % UPSTREAM_PASSWORD,
                   UPSTREAM_PASSWORD),
        ]

    def test_a_file_broken_next_to_a_secret_is_reported_without_it(self):
        cases = self.broken_files()
        for what, text, line in cases:
            with self.subTest(what):
                where = "line %d, column " % line
                self.write_config(text)
                code, r = get_json(self.port, "/reload", "POST", TOKEN)
                self.assertEqual((code, r["ok"]), (422, False), r)
                self.assertNoSecret(r["message"], "POST /reload's answer")
                self.assertIn(where, r["message"])
                self.assertIn("invalid JSON", r["message"])
                code, body, _ = call(self.port, "/config", token=TOKEN)
                self.assertNoSecret(body, "GET /config")
                self.assertIn(where, json.loads(body)["last_reload"]["message"])
                rc, out = self.check_config()
                self.assertEqual(rc, 1, out)
                self.assertNoSecret(out, "--check-config")
                self.assertIn(where, out)
        log = self.gate.output()
        self.assertNoSecret(log, "the log")
        failed = [l for l in log.splitlines()
                  if "config reload (POST /reload) failed; still running the previous config" in l]
        for what, _, line in cases:
            self.assertTrue(any("line %d, column " % line in l for l in failed),
                            "%s: no log line names line %d:\n%s" % (what, line, "\n".join(failed)))

    def test_a_good_reload_of_new_secrets_shows_none_of_them(self):
        cfg = json.loads(json.dumps(self.cfg))
        cfg["auth"]["password"] = ROTATED
        cfg["notify"]["command"] = ["/bin/true", ROTATED]
        self.write_config(json.dumps(cfg))
        code, r = get_json(self.port, "/reload", "POST", TOKEN)
        self.assertEqual((code, r["ok"]), (200, True), r)
        # A changed argument counts as a change, though it shows only as "(redacted)"
        # (the file watch may have applied it first: then this reload changed nothing).
        applied = [l for l in self.gate.output().splitlines() if "config reload (" in l]
        self.assertTrue(any("auth, notify" in l for l in applied), "\n".join(applied))
        code, body, _ = call(self.port, "/config", token=TOKEN)
        self.assertNoSecret(body, "GET /config")
        self.assertEqual(json.loads(body)["config"]["notify"]["command"],
                         ["/bin/true", "(redacted)"])
        self.assertEqual(self.check_config()[0], 0)
        self.assertNoSecret(self.gate.output(), "the log")


if __name__ == "__main__":
    main()
