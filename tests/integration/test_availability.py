"""Availability, measured through real Sentinel failovers: POST /failover asks
Sentinel, the notify.command script and a local webhook receiver get the event
with the right fields, /status and /metrics show the failover with its RTO and
an RPO estimate, downtime and the error budget move; after a crash /readyz goes
503 and back, and hooks that fail are counted without disturbing traffic. A
reload hands over to new Sentinels under load; without Sentinel, a switch by hand
to another region is a region_change, and a hook past its time is killed with
what it started."""
import json
import os
import socket
import stat
import sys
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, HTTPServer

from adminhttp import admin_port, call, get_json, parse_metrics, value
from failover_load import Load
from harness import Harness, main, wait_until
from sentinel import Cluster


class Receiver:
    """A local webhook receiver that keeps every JSON body POSTed to it."""

    def __init__(self):
        self.events = []
        events = self.events

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                events.append((self.path, self.headers["Content-Type"], json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Trickler:
    """A webhook receiver that answers one byte every 100 ms, for ever: only a
    deadline, not an idle timeout, ends the POST."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        conn, _ = self.sock.accept()
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        while not self.stop.wait(0.1):
            try:
                conn.sendall(b"x")
            except OSError:
                return

    def close(self):
        self.stop.set()
        self.sock.close()


class Availability(unittest.TestCase):

    def setUp(self):
        self.h = Harness()

    def start(self, notify):
        try:
            self.cl = Cluster(self.h, nreplicas=2)
            opts = self.cl.gate_options()
            opts["regions"][0]["name"] = "eu-west"
            self.gate = self.h.respgate(self.cl.master.port, notify=notify,
                                        slo={"availability": 0.999}, **opts)
            self.port = admin_port(self.gate)
            wait_until(lambda: call(self.port, "/readyz")[0] == 200, what="respgate ready")
        except BaseException:
            self.h.close(ok=False)
            raise

    def tearDown(self):
        self.h.close()

    def status(self):
        return get_json(self.port, "/status")[1]

    def metrics(self):
        return parse_metrics(call(self.port, "/metrics")[1])

    def test_a_planned_failover_is_measured_and_announced(self):
        receiver = Receiver()
        self.addCleanup(receiver.close)
        script = os.path.join(self.h.dir, "hook.sh")
        out = os.path.join(self.h.dir, "hook.out")
        with open(script, "w") as f:
            f.write('#!/bin/sh\nprintf "%%s\\n" "$@" > "%s.tmp"\nprintf "%%s" "$RESPGATE_EVENT" '
                    '> "%s.json"\nmv "%s.tmp" "%s"\n' % (out, out, out, out))
        os.chmod(script, stat.S_IRWXU)
        self.start({"command": [script, "fixed"], "webhook":
                    "http://127.0.0.1:%d/hooks/respgate?x=1" % receiver.port, "timeout_ms": 3000})
        old = "127.0.0.1:%d" % self.cl.master.port
        s = self.status()
        self.assertEqual((s["writable"], s["master"], s["failovers_total"]), (True, old, 0))
        load = Load(self.gate.port, writers=4, readers=1)
        load.wait_flowing()

        code, r = get_json(self.port, "/failover", "POST")
        self.assertEqual((code, r["ok"]), (202, True), r)
        self.assertIn(r["sentinel"], self.cl.addresses())
        new_port = self.cl.wait_switched(self.cl.master.port)
        new = "127.0.0.1:%d" % new_port
        wait_until(lambda: self.status()["master"] == new, what="respgate on the new master")
        wait_until(lambda: os.path.exists(out) and receiver.events, what="both hooks called")
        time.sleep(0.5)
        load.stop()
        rep = load.report()
        self.assertEqual(rep["write_errors"], [])

        path, ctype, ev = receiver.events[0]
        self.assertEqual((path, ctype), ("/hooks/respgate?x=1", "application/json"))
        self.assertEqual((ev["event"], ev["old_master"], ev["new_master"], ev["region"],
                          ev["old_region"]), ("master_switch", old, new, "eu-west", "eu-west"))
        self.assertTrue(ev["reason"].startswith(
            "failover asked for through POST /failover (Sentinel %s); Sentinel names it"
            % r["sentinel"]), ev["reason"])
        self.assertRegex(ev["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        with open(out) as f:
            args = f.read().splitlines()
        self.assertEqual(args, ["fixed", "master_switch", old, new, "eu-west", ev["reason"]])
        with open(out + ".json") as f:
            self.assertEqual(json.load(f), ev)

        s = self.status()
        self.assertEqual((s["writable"], s["failovers_total"]), (True, 1))
        f = s["failovers"][0]
        print("\nplanned failover: rto %.3f s, rpo %d bytes / %.3f s, downtime %.3f s of %.1f s, "
              "nines %.2f" % (f["rto_seconds"], f["rpo_bytes"], f["rpo_seconds"],
                              s["downtime_seconds"], s["uptime_seconds"], s["nines"]),
              file=sys.stderr)
        self.assertEqual((f["from"], f["to"], f["from_region"], f["to_region"]),
                         (old, new, "eu-west", "eu-west"))
        # Writes waited while the old master was fenced: a real, short RTO.
        self.assertGreater(f["rto_seconds"], 0.0)
        self.assertLess(f["rto_seconds"], 3.0)
        self.assertIsInstance(f["rpo_bytes"], int)
        self.assertGreaterEqual(f["rpo_bytes"], 0)
        self.assertGreaterEqual(f["rpo_seconds"], 0)
        self.assertGreater(s["downtime_seconds"], 0)
        self.assertLess(s["availability"], 1.0)
        self.assertGreater(s["nines"], 0)
        day = s["windows"]["1d"]
        self.assertAlmostEqual(day["error_budget_seconds"], 86.4, places=3)
        self.assertAlmostEqual(day["error_budget_remaining_seconds"],
                               86.4 - day["downtime_seconds"], places=3)
        self.assertLessEqual(day["downtime_seconds"], s["downtime_seconds"] + 1e-6)

        m = self.metrics()
        self.assertEqual(value(m, "respgate_failovers_total"), 1)
        self.assertAlmostEqual(value(m, "respgate_last_failover_seconds"), f["rto_seconds"],
                               delta=0.05)
        self.assertEqual(value(m, "respgate_notifications_total", hook="command", result="ok"), 1)
        self.assertEqual(value(m, "respgate_notifications_total", hook="webhook", result="ok"), 1)
        up, avail = (value(m, "respgate_uptime_seconds_total"),
                     value(m, "respgate_write_available_seconds_total"))
        self.assertGreater(up - avail, 0)
        # The same figures as /status, a scrape later: the ratio only rises meanwhile.
        ratio = value(m, "respgate_availability_ratio", window="1d")
        self.assertLess(ratio, 1.0)
        self.assertGreaterEqual(ratio, day["availability"] - 1e-9)
        self.assertAlmostEqual(ratio, avail / up, delta=0.01)
        self.assertAlmostEqual(value(m, "respgate_availability_ratio", window="30d"), ratio,
                               delta=1e-3)  # both hold all of the run, a moment apart
        self.assertAlmostEqual(value(m, "respgate_error_budget_remaining_seconds", window="1d"),
                               day["error_budget_remaining_seconds"], delta=0.01)
        self.assertAlmostEqual(value(m, "respgate_error_budget_remaining_seconds", window="30d"),
                               30 * 86.4 - day["downtime_seconds"], delta=0.01)
        self.assertEqual(value(m, "respgate_slo_availability"), 0.999)
        self.assertIn("writes flow again after", self.gate.output())
        self.assertIn("master_switch: %s (eu-west) -> %s (eu-west)" % (old, new),
                      self.gate.output())

    def test_after_a_crash_readiness_drops_and_returns_and_failing_hooks_are_counted(self):
        trickler = Trickler()
        self.addCleanup(trickler.close)
        self.start({"command": ["/bin/false"], "webhook": "http://127.0.0.1:%d/" % trickler.port,
                    "timeout_ms": 500})
        seen, stop = [], threading.Event()

        def poll():
            while not stop.is_set():
                code = call(self.port, "/readyz", timeout=2)[0]
                if not seen or seen[-1] != code:
                    seen.append(code)
                time.sleep(0.02)
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        load = Load(self.gate.port, writers=3, readers=1)
        load.wait_flowing()
        t_kill = time.monotonic()
        self.cl.master.kill()
        self.cl.wait_switched(self.cl.master.port)
        wait_until(lambda: seen[-1] == 200 and self.status()["failovers_total"] == 1,
                   what="ready again on the new master")
        resumed = load.writes_resumed(t_kill)
        wait_until(lambda: value(self.metrics(), "respgate_notifications_total", hook="webhook",
                                 result="error") == 1, what="the webhook failure counted")
        time.sleep(0.3)
        load.stop()
        stop.set()
        poller.join()
        self.assertEqual(seen[0], 200)
        self.assertIn(503, seen)
        self.assertEqual(seen[-1], 200)
        s = self.status()
        rto = s["failovers"][0]["rto_seconds"]
        print("\nmaster killed: rto %.3f s (writes resumed %.3f s after the kill), rpo %s bytes, "
              "/readyz went %s" % (rto, resumed - t_kill, s["failovers"][0]["rpo_bytes"], seen),
              file=sys.stderr)
        # The span runs from the first failed write to the first that succeeded.
        self.assertGreater(rto, 0.3)
        self.assertLess(abs(rto - (resumed - t_kill)), 0.5, (rto, resumed - t_kill))
        self.assertGreaterEqual(s["downtime_seconds"], rto - 0.01)
        m = self.metrics()
        self.assertEqual(value(m, "respgate_notifications_total", hook="command", result="error"), 1)
        self.assertEqual(value(m, "respgate_notifications_total", hook="command", result="ok"), 0)
        self.assertEqual(value(m, "respgate_writable_master"), 1)
        out = self.gate.output()
        self.assertIn("notify.command (pid", out)
        self.assertIn("failed: exit status 1", out)
        self.assertIn("notify.webhook: no whole answer within notify.timeout_ms; abandoned", out)


class SentinelReload(unittest.TestCase):

    def test_new_sentinels_take_over_without_dropping_a_client(self):
        h = Harness()
        self.addCleanup(h.close)
        cl = Cluster(h, nreplicas=1)
        first, rest = cl.addresses()[0], cl.addresses()[1:]
        opts = cl.gate_options()
        opts["regions"][0]["sentinel"]["addresses"] = [first]
        gate = h.respgate(cl.master.port, **opts)
        port = admin_port(gate)
        wait_until(lambda: call(port, "/readyz")[0] == 200, what="respgate ready")
        load = Load(gate.port, writers=2, readers=1)
        load.wait_flowing()
        with open(gate.config_path) as f:
            cfg = json.load(f)
        cfg["regions"][0]["sentinel"]["addresses"] = rest
        with open(gate.config_path + ".tmp", "w") as f:
            json.dump(cfg, f)
        os.rename(gate.config_path + ".tmp", gate.config_path)  # the file watch reloads it
        wait_until(lambda: "following the new Sentinels now" in gate.output(),
                   what="the new Sentinels taking over")
        self.assertEqual(get_json(port, "/config")[1]["config"]["regions"][0]["sentinel"]
                         ["addresses"], rest)
        # The one Sentinel the first file named goes: the new ones carry a failover.
        cl.sentinels[0].kill()
        code, r = get_json(port, "/failover", "POST")
        self.assertEqual((code, r["sentinel"] in rest), (202, True), r)
        new = "127.0.0.1:%d" % cl.wait_switched(cl.master.port)
        wait_until(lambda: get_json(port, "/status")[1]["master"] == new,
                   what="respgate on the new master")
        time.sleep(0.3)
        load.stop()
        rep = load.report()
        self.assertEqual((rep["closed"], rep["lost"], rep["write_errors"]), (0, 0, []))


def swap_master(old, new):
    """No Sentinel: an operator moves the master by hand; respgate follows the roles."""
    assert new.client().call("REPLICAOF", "NO", "ONE") == "OK"
    assert old.client().call("REPLICAOF", "127.0.0.1", str(new.port)) == "OK"


class StaticSwitch(unittest.TestCase):
    """Two nodes, no Sentinel: the hooks on a master switch made by hand."""

    def setUp(self):
        self.h = Harness()
        self.addCleanup(self.h.close)
        self.a = self.h.redis()
        self.b = self.h.replica_of(self.a)

    def script(self, text):
        path = os.path.join(self.h.dir, "hook.sh")
        with open(path, "w") as f:
            f.write("#!/bin/sh\n" + text)
        os.chmod(path, stat.S_IRWXU)
        return path

    def start(self, regions, notify):
        self.gate = self.h.respgate(self.a.port, regions=regions, notify=notify)
        self.port = admin_port(self.gate)
        wait_until(lambda: call(self.port, "/readyz")[0] == 200, what="respgate ready")
        swap_master(self.a, self.b)

    def test_a_hook_past_its_time_is_killed_with_what_it_started(self):
        pidfile = os.path.join(self.h.dir, "sleeper.pid")
        hook = self.script('sleep 60 &\necho $! > "%s"\nwait\n' % pidfile)
        self.start([{"name": "r", "nodes": ["127.0.0.1:%d" % self.a.port,
                                            "127.0.0.1:%d" % self.b.port]}],
                   {"command": [hook], "timeout_ms": 300})
        wait_until(lambda: "still running after notify.timeout_ms: killed" in self.gate.output(),
                   what="the hook killed")
        with open(pidfile) as f:
            sleeper = int(f.read())

        def gone():
            try:
                os.kill(sleeper, 0)
            except ProcessLookupError:
                return True
            try:
                with open("/proc/%d/stat" % sleeper) as f:  # a zombie of init's is gone too
                    return f.read().split(")")[1].split()[0] == "Z"
            except FileNotFoundError:
                return True
        wait_until(gone, what="the hook's own child killed with it")
        self.assertEqual(value(parse_metrics(call(self.port, "/metrics")[1]),
                               "respgate_notifications_total", hook="command", result="error"), 1)

    def test_a_master_moving_to_another_region_is_a_region_change(self):
        out = os.path.join(self.h.dir, "hook.out")
        hook = self.script('printf "%%s\\n" "$@" > "%s.tmp"\nmv "%s.tmp" "%s"\n'
                           % (out, out, out))
        eu, us = "127.0.0.1:%d" % self.a.port, "127.0.0.1:%d" % self.b.port
        self.start([{"name": "eu", "priority": 1, "nodes": [eu]},
                    {"name": "us", "priority": 2, "nodes": [us]}], {"command": [hook]})
        wait_until(lambda: os.path.exists(out), what="the hook run")
        with open(out) as f:
            args = f.read().splitlines()
        self.assertEqual(args[:4], ["region_change", eu, us, "us"])
        self.assertTrue(args[4].startswith("the old master "), args[4])
        self.assertIn("it reports role master (no Sentinel configured)", args[4])
        self.assertIn("region_change: %s (eu) -> %s (us)" % (eu, us), self.gate.output())
        t = get_json(self.port, "/topology")[1]
        self.assertEqual([(g["name"], g["has_master"]) for g in t["regions"]],
                         [("eu", False), ("us", True)])
        c = self.gate.client()
        wait_until(lambda: c.call("SET", "k", "2") == "OK", what="writes on the new master")
        f = get_json(self.port, "/status")[1]["failovers"][0]
        self.assertEqual((f["from_region"], f["to_region"]), ("eu", "us"))

if __name__ == "__main__":
    main()
