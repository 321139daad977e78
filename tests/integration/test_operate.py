"""Operating respgate: hot reload (POST /reload, SIGHUP, the file changing), a
broken file keeping the running config, restart-only keys, /metrics as valid
Prometheus exposition that counts what clients did, /config with secrets
redacted, the bearer token on every endpoint, and JSON logs."""
import json
import os
import signal
import threading
import time
import unittest

import redis

from adminhttp import admin_port, call, get_json, parse_metrics, total, value
from harness import Harness, main, wait_until

TOKEN = "tok-3f9a"
APP_PASSWORD = "app-secret-77"


class Load:
    """Clients on persistent connections doing SET and GET until stopped; any
    error or reconnect is kept."""

    def __init__(self, port, clients=4):
        self.stop = threading.Event()
        self.errors, self.ops = [], 0
        self.conns = [redis.Redis(port=port, password=APP_PASSWORD, socket_timeout=10,
                                  single_connection_client=True) for _ in range(clients)]
        self.threads = [threading.Thread(target=self._run, args=(c, i), daemon=True)
                        for i, c in enumerate(self.conns)]
        for t in self.threads:
            t.start()

    def _run(self, c, i):
        me = c.client_id()
        n = 0
        while not self.stop.is_set():
            try:
                c.set("load:%d" % i, n)
                c.get("load:%d" % i)
                self.ops += 2
                n += 1
            except Exception as e:  # noqa: BLE001 - any failure is the finding
                self.errors.append(repr(e))
                return
        if c.client_id() != me:
            self.errors.append("client %d reconnected" % i)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(20)
        for c in self.conns:
            c.close()
        return self.errors


class Operate(unittest.TestCase):

    def setUp(self):
        self.h = Harness()
        try:
            self.master = self.h.redis()
            self.replica = self.h.replica_of(self.master)
            self.cfg = {
                "listen": None,  # set below from the gate
                "threads": 2,
                "regions": [{"name": "local", "priority": 1, "nodes": [
                    "127.0.0.1:%d" % self.master.port, "127.0.0.1:%d" % self.replica.port]}],
                "routing": {"reads": "replica"},
                "auth": {"password": APP_PASSWORD},
            }
            self.gate = self.h.respgate(self.master.port, regions=self.cfg["regions"],
                                        routing=self.cfg["routing"], auth=self.cfg["auth"],
                                        admin={"token": TOKEN})
            self.port = admin_port(self.gate)
            with open(self.gate.config_path) as f:
                self.cfg = json.load(f)
            self.wait_replica_eligible()
        except BaseException:
            self.h.close(ok=False)
            raise

    def tearDown(self):
        self.h.close()

    def client(self):
        return redis.Redis(port=self.gate.port, password=APP_PASSWORD, socket_timeout=10)

    def get(self, path):
        return get_json(self.port, path, token=TOKEN)[1]

    def metrics(self):
        code, body, headers = call(self.port, "/metrics", token=TOKEN)
        self.assertEqual(code, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/plain; version=0.0.4"))
        return parse_metrics(body)

    def wait_replica_eligible(self):
        name = "127.0.0.1:%d" % self.replica.port

        def eligible():
            nodes = {n["address"]: n for n in self.get("/topology")["nodes"]}
            return name in nodes and nodes[name]["eligible_for_reads"]
        wait_until(eligible, what="the replica eligible for reads")

    def write_config(self, text=None, **changes):
        if text is None:
            cfg = json.loads(json.dumps(self.cfg))
            for k, v in changes.items():
                cfg[k] = v
            text = json.dumps(cfg)
        tmp = self.gate.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, self.gate.config_path)  # as editors and ConfigMaps do

    def reload(self):
        return get_json(self.port, "/reload", "POST", TOKEN)

    def watch_reloads(self, result):
        """What the reloads the file watch ran itself logged after "applied"/"failed".
        A test that writes the file and then reloads it (POST /reload, SIGHUP) races
        the watch, which reloads once the file has been still for 200 ms: on a loaded
        machine (ctest -j 6 on 2 cores) the watch can get there first, and then the
        test's own reload finds nothing left to change."""
        mark = "config reload (file) %s" % result
        return [line.split(mark, 1)[1].lstrip(": ")
                for line in self.gate.output().splitlines() if mark in line]

    def changed_by_reload(self, r):
        """The keys the change just written changed: as this reload reports them, or
        as the file watch did, if it applied the file just before."""
        watched = self.watch_reloads("applied")
        return r["changed"] or (watched[-1] if watched else "")

    def test_metrics_parse_and_count_what_clients_did(self):
        before = self.metrics()
        c = self.client()
        for i in range(50):
            c.set("k%d" % i, i)
        reader = self.client()  # no writes of its own: read-your-writes keeps it off no node
        for i in range(50):
            reader.get("k%d" % i)
        with self.assertRaises(redis.ResponseError):
            c.execute_command("SHUTDOWN")  # denied by default
        m = self.metrics()
        routed = lambda s, route, cls: total(s, "respgate_requests_total", route=route, **{"class": cls})
        self.assertGreaterEqual(routed(m, "master", "write") - routed(before, "master", "write"), 50)
        self.assertGreaterEqual(routed(m, "replica", "read") - routed(before, "replica", "read"), 50)
        self.assertGreaterEqual(routed(m, "local", "connection"), 1)  # AUTH, answered here
        self.assertEqual(value(m, "respgate_request_errors_total", reason="denied") -
                         value(before, "respgate_request_errors_total", reason="denied"), 1)
        master, replica = "127.0.0.1:%d" % self.master.port, "127.0.0.1:%d" % self.replica.port
        self.assertGreaterEqual(value(m, "respgate_upstream_latency_seconds_count", node=master), 50)
        self.assertGreaterEqual(value(m, "respgate_upstream_latency_seconds_count", node=replica), 50)
        self.assertGreater(value(m, "respgate_upstream_latency_seconds_sum", node=master), 0)
        self.assertEqual(value(m, "respgate_upstream_up", node=master, role="master", region="local"), 1)
        self.assertEqual(value(m, "respgate_upstream_up", node=replica, role="replica", region="local"), 1)
        self.assertEqual(value(m, "respgate_upstream_master", node=master), 1)
        self.assertGreaterEqual(value(m, "respgate_replica_lag_bytes", node=replica), 0)
        self.assertEqual(value(m, "respgate_replica_eligible", node=replica), 1)
        self.assertGreaterEqual(value(m, "respgate_client_connections"), 1)
        self.assertEqual(value(m, "respgate_held_requests"), 0)
        self.assertEqual(value(m, "respgate_writable_master"), 1)
        self.assertEqual(value(m, "respgate_failovers_total"), 0)
        self.assertEqual(value(m, "respgate_config_reloads_total", result="error"), 0)
        up, avail = (value(m, "respgate_uptime_seconds_total"),
                     value(m, "respgate_write_available_seconds_total"))
        self.assertGreater(up, 0)
        self.assertLessEqual(avail, up)
        self.assertGreater(avail, up - 1.0)  # writable from the first snapshot on
        c.close()
        reader.close()

    def test_the_token_guards_all_but_health_and_readiness(self):
        # Ready once the probe has verified the master: a moment after start.
        wait_until(lambda: call(self.port, "/readyz")[0] == 200, what="ready")
        self.assertEqual(call(self.port, "/healthz")[0], 200)
        for method, path in (("GET", "/metrics"), ("GET", "/topology"), ("GET", "/status"),
                             ("GET", "/config"), ("POST", "/reload"), ("POST", "/failover")):
            for token in (None, "wrong", TOKEN[:-1]):
                self.assertEqual(call(self.port, path, method, token)[0], 401, (path, token))
        self.assertEqual(call(self.port, "/status", token=TOKEN)[0], 200)
        self.assertEqual(call(self.port, "/reload", "GET", TOKEN)[0], 405)
        self.assertEqual(call(self.port, "/metrics", "POST", TOKEN)[0], 405)
        self.assertEqual(call(self.port, "/nope", token=TOKEN)[0], 404)
        # No Sentinel here: respgate does not promote replicas itself.
        self.assertEqual(call(self.port, "/failover", "POST", TOKEN)[0], 409)

    def test_config_shows_what_runs_with_secrets_redacted(self):
        code, body, _ = call(self.port, "/config", token=TOKEN)
        self.assertEqual(code, 200)
        self.assertNotIn(APP_PASSWORD, body)
        self.assertNotIn(TOKEN, body)
        j = json.loads(body)
        self.assertEqual(j["config"]["auth"]["password"], "(redacted)")
        self.assertEqual(j["config"]["admin"]["token"], "(redacted)")
        self.assertEqual(j["config"]["threads"], 2)
        self.assertEqual(j["config"]["failover"]["hold_ms"], 15000)  # defaults show too
        self.assertEqual((j["last_reload"]["ok"], j["last_reload"]["source"]), (True, "start"))

    def test_a_reload_under_load_moves_reads_without_dropping_a_connection(self):
        load = Load(self.gate.port)
        other = self.client()
        other.ping()
        try:
            wait_until(lambda: load.ops > 200, what="load running")
            accepted = value(self.metrics(), "respgate_client_connections_total")
            self.write_config(routing={"reads": "master"},
                              deny_commands=["shutdown", "flushall"])
            code, r = self.reload()
            self.assertEqual((code, r["ok"], r["source"]), (200, True, "POST /reload"), r)
            self.assertIn("routing", self.changed_by_reload(r))
            self.assertEqual(r["restart_required"], "")
            # From now on reads go to the master: the replica sees no more GETs.
            time.sleep(0.2)
            gets = self.replica.calls("get")
            ops = load.ops
            wait_until(lambda: load.ops > ops + 200, what="load going on after the reload")
            self.assertEqual(self.replica.calls("get"), gets)
            with self.assertRaises(redis.ResponseError) as e:
                other.flushall()
            self.assertIn("deny_commands", str(e.exception))
            self.assertEqual(value(self.metrics(), "respgate_client_connections_total"), accepted)
        finally:
            errors = load.finish()
        self.assertEqual(errors, [])
        m = self.metrics()
        self.assertEqual(value(m, "respgate_config_reloads_total", result="ok"),
                         1 + len(self.watch_reloads("applied")))
        self.assertEqual(self.get("/config")["config"]["routing"]["reads"], "master")

    def test_busy_polling_serves_load_and_sleeps_when_idle(self):
        load = Load(self.gate.port)
        try:
            wait_until(lambda: load.ops > 200, what="load running")
            self.write_config(busy_poll_us=500)
            code, r = self.reload()
            self.assertEqual((code, r["ok"]), (200, True), r)
            wait_until(lambda: self.get("/config")["config"]["busy_poll_us"] == 500,
                       what="busy_poll_us applied")
            ops = load.ops
            wait_until(lambda: load.ops > ops + 500, what="load going on with busy polling")
        finally:
            errors = load.finish()
        self.assertEqual(errors, [])
        # With nothing written for 500 µs the workers sleep again: an idle respgate
        # that kept polling would burn a core (100 ticks a second per worker).
        time.sleep(0.2)

        def ticks():
            with open("/proc/%d/stat" % self.gate.proc.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])  # utime + stime
        before = ticks()
        time.sleep(1.0)
        self.assertLess(ticks() - before, 30)

    def test_a_broken_file_keeps_the_running_config(self):
        c = self.client()
        cases = [("bad JSON", '{"threads": 2,', "line 1"),
                 ("bad type", json.dumps(dict(self.cfg, threads="two")), "threads"),
                 ("unknown key", json.dumps(dict(self.cfg, routing={"reads": "master",
                                                                    "bogus": 1})),
                  "routing.bogus"),
                 ("no regions", json.dumps({"listen": self.cfg["listen"]}), "regions")]
        for n, (what, text, key) in enumerate(cases, 1):
            with self.subTest(what):
                self.write_config(text)
                code, r = self.reload()
                self.assertEqual((code, r["ok"]), (422, False), r)
                self.assertIn(key, r["message"])
                self.assertEqual(value(self.metrics(), "respgate_config_reloads_total",
                                       result="error"), n + len(self.watch_reloads("failed")))
                cfg = self.get("/config")
                self.assertEqual(cfg["config"]["routing"]["reads"], "replica")
                self.assertFalse(cfg["last_reload"]["ok"])
                c.set("still", what)
                self.assertEqual(c.get("still"), what.encode())
        self.assertIn("config reload (POST /reload) failed; still running the previous config",
                      self.gate.output())

    def test_a_broken_file_seen_by_the_watch_or_sighup_keeps_the_running_config(self):
        c = self.client()
        self.write_config('{"threads": ')
        wait_until(lambda: value(self.metrics(), "respgate_config_reloads_total",
                                 result="error") == 1, what="the file watch trying the file")
        self.assertEqual(self.get("/config")["last_reload"]["source"], "file")
        self.gate.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: value(self.metrics(), "respgate_config_reloads_total",
                                 result="error") == 2, what="SIGHUP trying the file")
        cfg = self.get("/config")
        self.assertEqual((cfg["last_reload"]["source"], cfg["last_reload"]["ok"]),
                         ("SIGHUP", False))
        self.assertIn("line 1", cfg["last_reload"]["message"])
        self.assertEqual(cfg["config"]["routing"]["reads"], "replica")
        self.assertTrue(c.set("k", "v"))
        self.assertIn("config reload (file) failed", self.gate.output())
        self.assertIn("config reload (SIGHUP) failed", self.gate.output())

    def test_auth_changes_lock_no_one_out(self):
        waiting = self.gate.client()  # connected while auth is asked, not authenticated yet
        authed = self.client()
        authed.ping()
        self.write_config(auth={"password": "rotated-9"})
        code, r = self.reload()
        self.assertEqual((code, self.changed_by_reload(r)), (200, "auth"), r)
        self.assertTrue(authed.set("k", "1"))  # as Redis: an authenticated connection stays so
        with self.assertRaisesRegex(redis.RedisError, "WRONGPASS"):
            redis.Redis(port=self.gate.port, password=APP_PASSWORD).ping()
        self.assertTrue(redis.Redis(port=self.gate.port, password="rotated-9").ping())
        self.assertEqual(waiting.call("AUTH", "rotated-9"), "OK")
        self.assertEqual(waiting.call("GET", "k"), b"1")
        # Auth dropped: connections that never authenticated may go on too.
        waiting2 = self.gate.client()
        self.assertIn("NOAUTH", str(waiting2.call("GET", "k")))
        self.write_config(auth={"password": None})
        self.assertEqual(self.reload()[0], 200)
        self.assertEqual(waiting2.call("GET", "k"), b"1")
        self.assertTrue(redis.Redis(port=self.gate.port).ping())

    def test_limits_and_regions_change_for_new_connections_and_the_topology(self):
        kept = [self.client() for _ in range(3)]
        for c in kept:
            c.ping()
        self.write_config(limits={"max_clients": 2})
        self.assertEqual(self.reload()[0], 200)
        extra = self.gate.client()
        self.assertIn("max number of clients reached", str(extra.call("PING")))
        for c in kept:  # over the new limit already: not closed
            self.assertTrue(c.ping())
        regions = [{"name": "local", "priority": 1, "nodes": ["127.0.0.1:%d" % self.master.port]},
                   {"name": "dr", "priority": 2, "nodes": ["127.0.0.1:%d" % self.replica.port]}]
        self.write_config(limits={"max_clients": 100}, regions=regions)
        code, r = self.reload()
        self.assertEqual((code, self.changed_by_reload(r)), (200, "regions, limits"), r)
        self.assertTrue(self.client().ping())
        t = self.get("/topology")
        nodes = {n["address"]: n for n in t["nodes"]}
        self.assertEqual(nodes["127.0.0.1:%d" % self.replica.port]["region"], "dr")
        self.assertEqual([(g["name"], g["priority"], g["has_master"]) for g in t["regions"]],
                         [("local", 1, True), ("dr", 2, False)])
        self.assertEqual(value(self.metrics(), "respgate_upstream_up",
                               node="127.0.0.1:%d" % self.replica.port, role="replica",
                               region="dr"), 1)
        for c in kept:
            self.assertTrue(c.ping())

    def test_the_file_changing_reloads_it(self):
        self.write_config(routing={"reads": "replica", "max_lag_bytes": 4096})
        wait_until(lambda: self.get("/config")["config"]["routing"]["max_lag_bytes"] == 4096,
                   what="the file change applied")
        self.assertEqual(self.get("/config")["last_reload"]["source"], "file")
        # Writing the same bytes again is no change: no second reload.
        self.write_config(routing={"reads": "replica", "max_lag_bytes": 4096})
        time.sleep(0.6)
        self.assertEqual(value(self.metrics(), "respgate_config_reloads_total", result="ok"), 1)

    def test_a_busy_neighbour_file_does_not_hold_a_reload_back(self):
        stop = threading.Event()
        neighbour = os.path.join(os.path.dirname(self.gate.config_path), "busy.log")

        def write():
            with open(neighbour, "a") as f:
                while not stop.wait(0.05):
                    f.write("line\n")
                    f.flush()
        t = threading.Thread(target=write, daemon=True)
        t.start()
        try:
            time.sleep(0.3)
            t0 = time.monotonic()
            self.write_config(routing={"reads": "replica", "max_lag_bytes": 2048})
            wait_until(lambda: self.get("/config")["config"]["routing"]["max_lag_bytes"] == 2048,
                       timeout=3, what="the reload, with the neighbour still being written")
            self.assertLess(time.monotonic() - t0, 2.0)
        finally:
            stop.set()
            t.join()

    def test_sighup_reloads_it(self):
        self.write_config(routing={"reads": "replica", "max_lag_bytes": 8192})
        self.gate.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: self.get("/config")["config"]["routing"]["max_lag_bytes"] == 8192 and
                   "config reload (SIGHUP) applied" in self.gate.output(), what="the SIGHUP reload")
        time.sleep(0.6)  # the file watch sees the same contents: no second reload
        self.assertEqual(self.get("/config")["last_reload"]["source"], "SIGHUP")
        self.assertEqual(value(self.metrics(), "respgate_config_reloads_total", result="ok"),
                         1 + len(self.watch_reloads("applied")))  # unless it came first

    def test_keys_that_need_a_restart_are_reported_not_ignored(self):
        self.write_config(threads=3, routing={"reads": "any"})
        code, r = self.reload()
        self.assertEqual((code, r["ok"]), (200, True), r)
        self.assertEqual(r["restart_required"], "threads")
        self.assertEqual(value(self.metrics(), "respgate_config_restart_pending"), 1)
        cfg = self.get("/config")["config"]
        self.assertEqual((cfg["threads"], cfg["routing"]["reads"]), (2, "any"))
        self.assertIn("threads changed, which takes effect only on restart", self.gate.output())
        # A failed reload hides nothing; putting the old value back clears it.
        self.write_config("{")
        self.assertEqual(self.reload()[0], 422)
        self.assertEqual(self.get("/config")["restart_required"], "threads")
        self.write_config(threads=2, routing={"reads": "any"})
        code, r = self.reload()
        self.assertEqual((code, r["restart_required"]), (200, ""), r)
        self.assertEqual(self.get("/config")["restart_required"], "")
        self.assertEqual(value(self.metrics(), "respgate_config_restart_pending"), 0)


class JsonLogs(unittest.TestCase):

    def test_every_line_is_a_json_object(self):
        h = Harness()
        try:
            r = h.redis()
            gate = h.respgate(r.port, log={"format": "json", "level": "info"})
            gate.client().call("SET", "a", "1")
            gate.stop()
            lines = gate.output().splitlines()
            self.assertTrue(lines)
            for line in lines:
                j = json.loads(line)
                self.assertEqual(set(j), {"time", "level", "thread", "msg"})
            self.assertTrue(any("listening on" in json.loads(line)["msg"] for line in lines))
        finally:
            h.close()


if __name__ == "__main__":
    main()
