"""config/respgate.schema.json: a valid JSON Schema that agrees with
`respgate --check-config` on the shipped examples and on a table of good and bad
configs, and whose top-level keys are all documented in docs/configuration.md."""
import glob
import json
import os
import re
import subprocess
import tempfile
import unittest

import jsonschema

from harness import REPO, SANITIZER_MARKS, main

RESPGATE = os.environ.get("RESPGATE_BIN") or os.path.join(REPO, "build-asan", "respgate")
SCHEMA_PATH = os.path.join(REPO, "config", "respgate.schema.json")

NODES = [{"name": "a", "nodes": ["127.0.0.1:6379"]}]
SENTINEL = {"addresses": ["127.0.0.1:26379"], "master_name": "orders"}


def cfg(**kw):
    """A minimal good config with kw added (or replaced)."""
    return dict({"regions": NODES}, **kw)


def region(**kw):
    return cfg(regions=[dict({"name": "a"}, **kw)])


FULL = {
    "listen": "[::1]:7379", "threads": 256, "shutdown_timeout_ms": 0, "probe_interval_ms": 60000,
    "log": {"level": "debug", "format": "json"},
    "routing": {"reads": "any", "max_lag_bytes": 1 << 40, "read_your_writes": False,
                "no_replica": "error"},
    "upstream": {"connections_per_node": 64, "connect_timeout_ms": 1, "username": "gate",
                 "password": "pw"},
    "auth": {"password": "pw", "users": [{"name": "u", "password": "p"}]},
    "deny_commands": ["FLUSHALL", "config|set", "x.y_z-1"],
    "limits": {"max_clients": 1, "max_query_buffer_bytes": 4 << 30,
               "max_pending_per_client": 1000000, "max_wait_ms": 600000},
    "admin": {"listen": "0.0.0.0:00080", "token": "t"},
    "failover": {"hold_ms": 0, "max_held_requests": 100000000, "region_priority": "apply",
                 "failback_after_ms": 30000, "failback_min_interval_ms": 1000},
    "local_region": "us",
    "notify": {"command": ["/bin/hook", ""], "webhook": "http://[::1]:8080/hook?x=1",
               "timeout_ms": 10},
    "slo": {"availability": 0.999},
    "durability": {"min_replicas": 2, "timeout_ms": 500, "on_timeout": "reply",
                   "min_replicas_in_other_regions": 1},
    "regions": [
        {"name": "eu", "priority": 1000000, "nodes": ["redis.local:6379", "[fe80::1]:6380"],
         "match": ["10.1.0.0/16", "fd00::/8", "eu.example.com", ".eu"],
         "sentinel": dict(SENTINEL, username="s", password="sp")},
        {"name": "us", "priority": 0, "sentinel": SENTINEL, "nodes": []},
    ],
}

# (name, respgate accepts it, config)
CASES = [
    ("minimal", True, cfg()),
    ("full config with every key", True, FULL),
    ("nulls where null means none", True, cfg(
        admin={"listen": None, "token": None}, auth={"password": None, "users": None},
        upstream={"username": None, "password": None},
        notify={"command": None, "webhook": None}, regions=[dict(NODES[0], sentinel=None)])),
    ("sentinel without nodes", True, region(sentinel=SENTINEL)),
    ("deny_commands empty", True, cfg(deny_commands=[])),
    ("webhook without port or path", True, cfg(notify={"webhook": "http://hooks.local"})),
    ("sentinel password without username", True, region(sentinel=dict(SENTINEL, password="p"))),
    ("top level not an object", False, [NODES]),
    ("unknown top-level key", False, cfg(bogus=1)),
    ("unknown nested key", False, cfg(routing={"reads": "master", "bogus": 1})),
    ("unknown region key", False, region(nodes=["h:1"], weight=1)),
    ("unknown sentinel key", False, region(sentinel=dict(SENTINEL, quorum=2))),
    ("unknown auth.users key", False, cfg(auth={"users": [{"name": "u", "password": "p",
                                                           "acl": "x"}]})),
    ("threads as string", False, cfg(threads="2")),
    ("threads 0", False, cfg(threads=0)),
    ("threads 257", False, cfg(threads=257)),
    ("probe_interval_ms 9", False, cfg(probe_interval_ms=9)),
    ("max_lag_bytes over 2^40", False, cfg(routing={"max_lag_bytes": (1 << 40) + 1})),
    ("max_query_buffer_bytes 1023", False, cfg(limits={"max_query_buffer_bytes": 1023})),
    ("connections_per_node 0", False, cfg(upstream={"connections_per_node": 0})),
    ("notify.timeout_ms 9", False, cfg(notify={"timeout_ms": 9})),
    ("priority negative", False, region(nodes=["h:1"], priority=-1)),
    ("read_your_writes not boolean", False, cfg(routing={"read_your_writes": "yes"})),
    ("routing.reads bad enum", False, cfg(routing={"reads": "slave"})),
    ("routing.no_replica bad enum", False, cfg(routing={"no_replica": "any"})),
    ("log.format xml", False, cfg(log={"format": "xml"})),
    ("log.level verbose", False, cfg(log={"level": "verbose"})),
    ("log null", False, cfg(log=None)),
    ("listen without port", False, cfg(listen="localhost")),
    ("listen IPv6 without brackets", False, cfg(listen="::1:7379")),
    ("listen port 0", False, cfg(listen="h:0")),
    ("listen port 65536", False, cfg(listen="h:65536")),
    ("listen null", False, cfg(listen=None)),
    ("admin.listen empty host", False, cfg(admin={"listen": ":7380"})),
    ("node [v6] without colon", False, region(nodes=["[::1]7379"])),
    ("duplicate node", False, region(nodes=["h:1", "h:1"])),
    ("node not a string", False, region(nodes=[6379])),
    ("missing regions", False, {"listen": "127.0.0.1:7379"}),
    ("regions empty", False, cfg(regions=[])),
    ("empty nodes without sentinel", False, region(nodes=[])),
    ("nodes null with sentinel", False, region(nodes=None, sentinel=SENTINEL)),
    ("region without name", False, cfg(regions=[{"nodes": ["h:1"]}])),
    ("region name empty", False, region(name="", nodes=["h:1"])),
    ("sentinel without master_name", False, region(sentinel={"addresses": ["h:26379"]})),
    ("sentinel addresses empty", False, region(sentinel=dict(SENTINEL, addresses=[]))),
    ("sentinel username without password", False, region(sentinel=dict(SENTINEL, username="u"))),
    ("master_name two words", False, region(sentinel=dict(SENTINEL, master_name="my master"))),
    ("slo.availability 1.0", False, cfg(slo={"availability": 1.0})),
    ("slo.availability 0", False, cfg(slo={"availability": 0})),
    ("slo.availability string", False, cfg(slo={"availability": "0.99"})),
    ("notify.command []", False, cfg(notify={"command": []})),
    ("notify.command empty path", False, cfg(notify={"command": [""]})),
    ("notify.command non-string", False, cfg(notify={"command": ["/bin/hook", 1]})),
    ("webhook https://", False, cfg(notify={"webhook": "https://hooks.local/x"})),
    ("webhook without host", False, cfg(notify={"webhook": "http:///x"})),
    ("webhook space in path", False, cfg(notify={"webhook": "http://h/a b"})),
    ("webhook IPv6 without brackets", False, cfg(notify={"webhook": "http://::1/x"})),
    ("deny_commands not an array", False, cfg(deny_commands="shutdown")),
    ("deny_commands with a space", False, cfg(deny_commands=["config set"])),
    ("deny_commands name of 65", False, cfg(deny_commands=["x" * 65])),
    ("auth.users without password", False, cfg(auth={"users": [{"name": "u"}]})),
    ("upstream.password empty", False, cfg(upstream={"password": ""})),
    ("admin.token number", False, cfg(admin={"token": 1})),
    ("routing.prefer none", True, cfg(routing={"prefer": "none"})),
    ("routing.prefer bogus", False, cfg(routing={"prefer": "near"})),
    ("region_priority bogus", False, cfg(failover={"region_priority": "yes"})),
    ("failback_min_interval_ms too small", False, cfg(failover={"failback_min_interval_ms": 10})),
    ("match not an array", False, region(nodes=["h:1"], match="10.0.0.0/8")),
    ("match empty string", False, region(nodes=["h:1"], match=[""])),
    ("local_region not a string", False, cfg(local_region=1)),
    ("local_region null", True, cfg(local_region=None)),
    ("durability.min_replicas 17", False, cfg(durability={"min_replicas": 17})),
    ("durability.on_timeout bogus", False, cfg(durability={"on_timeout": "retry"})),
    ("durability.timeout_ms 0", False, cfg(durability={"timeout_ms": 0})),
    ("tls without listen", True, cfg(tls={"client_auth": "none", "protocols": ["TLSv1.3"]})),
    ("tls.listen without files", False, cfg(tls={"listen": "127.0.0.1:6380"})),
    ("tls.protocols TLSv1.1", False, cfg(tls={"protocols": ["TLSv1.1"]})),
    ("tls.client_auth bogus", False, cfg(tls={"client_auth": "maybe"})),
    ("tls.client_auth without ca_file", False, cfg(tls={"client_auth": "required"})),
    ("upstream.tls system CAs", True, cfg(upstream={"tls": {"server_name": "redis.example"}})),
    ("upstream.tls off", True, cfg(upstream={"tls": {"enabled": False, "verify": False}})),
    ("upstream.tls verify string", False, cfg(upstream={"tls": {"verify": "no"}})),
    ("upstream.tls cert without key", False, cfg(upstream={"tls": {"cert_file": "/c.pem"}})),
    ("upstream.tls unknown key", False, cfg(upstream={"tls": {"sni": "x"}})),
    ("sentinel.tls", True, region(sentinel=dict(SENTINEL, tls={"verify": True}))),
    ("sentinel.tls enabled 1", False, region(sentinel=dict(SENTINEL, tls={"enabled": 1}))),
    ("backup on demand", True, cfg(backup={"dir": "/var/lib/respgate/backups"})),
    ("backup full", True, cfg(backup={"dir": "/b", "interval_ms": 3600000, "verify": True,
                                      "retention": {"count": 3, "max_age_ms": 86400000},
                                      "source": "master", "redis_server": "/usr/bin/redis-server"})),
    ("backup.interval_ms without dir", False, cfg(backup={"interval_ms": 1000})),
    ("backup.source bogus", False, cfg(backup={"dir": "/b", "source": "primary"})),
    ("backup.retention.count 0", False, cfg(backup={"dir": "/b", "retention": {"count": 0}})),
]


class ConfigSchema(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        with open(SCHEMA_PATH) as f:
            cls.schema = json.load(f)
        jsonschema.Draft202012Validator.check_schema(cls.schema)
        cls.validator = jsonschema.Draft202012Validator(cls.schema)

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="respgate-schema-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name

    def check_config(self, path):
        """respgate --check-config: True for exit 0, False for exit 1."""
        self.assertTrue(os.access(RESPGATE, os.X_OK), "no respgate binary at %s" % RESPGATE)
        out = subprocess.run([RESPGATE, "--check-config", path], capture_output=True, text=True,
                             timeout=10)
        for mark in SANITIZER_MARKS:
            self.assertNotIn(mark, out.stderr)
        self.assertIn(out.returncode, (0, 1), out.stderr)
        return out.returncode == 0

    def schema_errors(self, instance):
        return [e.message for e in self.validator.iter_errors(instance)]

    def test_schema_declares_draft_2020_12_and_its_id(self):
        self.assertEqual(self.schema["$schema"], "https://json-schema.org/draft/2020-12/schema")
        self.assertEqual(self.schema["$id"], "https://respgate.dev/respgate.schema.json")

    def test_every_shipped_config_passes_the_schema_and_respgate(self):
        files = [f for f in glob.glob(os.path.join(REPO, "config", "*.json"))
                 if os.path.abspath(f) != SCHEMA_PATH]
        self.assertTrue(files)
        for f in files:
            with self.subTest(os.path.basename(f)):
                with open(f) as fh:
                    self.assertEqual(self.schema_errors(json.load(fh)), [])
                self.assertTrue(self.check_config(f), f)

    def test_schema_and_respgate_agree_on_each_case(self):
        self.assertGreaterEqual(len(CASES), 25)
        self.assertEqual(len({name for name, _, _ in CASES}), len(CASES), "duplicate case names")
        for name, accepted, config in CASES:
            with self.subTest(name):
                path = os.path.join(self.dir, "c.json")
                with open(path, "w") as f:
                    json.dump(config, f)
                by_respgate = self.check_config(path)
                errors = self.schema_errors(config)
                self.assertEqual(not errors, by_respgate,
                                 "%s: schema says %s, respgate says %s"
                                 % (name, errors or "valid", "valid" if by_respgate else "invalid"))
                self.assertEqual(by_respgate, accepted, "%s: schema and respgate both say %s"
                                 % (name, "valid" if by_respgate else "invalid"))

    def test_every_top_level_key_is_documented(self):
        with open(os.path.join(REPO, "docs", "configuration.md")) as f:
            doc = f.read()
        missing = [key for key in self.schema["properties"]
                   if not re.search(r"`%s[`.\[]" % re.escape(key), doc)]
        self.assertEqual(missing, [], "top-level keys not in docs/configuration.md")


if __name__ == "__main__":
    main()
