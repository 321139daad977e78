"""Real client libraries through respgate: ioredis and node-redis (from npm, pinned in
tests/clients/node, driven by tests/clients/node/workload.js) in their default
protocol (RESP3, HELLO 3) and in RESP2, and redis-py.

Features: each client runs strings, hashes, lists, streams, a pipeline, transactions
(one aborted by WATCH), scripts, pub/sub, a blocking pop, SCAN and HSCAN through
respgate in front of a master and two replicas (reads split), and checks every reply.

Failover: every client at once writes (INCR, own counters) and reads under load
while Sentinel fails over, planned and after a kill -9 of the master. RESP3 must show
the figures RESP2 shows: planned, no error and no reconnect; kill -9, at most the
requests in flight (one per writer) fail and nothing reconnects; and no acknowledged
write is missing from the new master.

make node-deps (a prerequisite of make test) installs the Node packages; without node
(>= 20) or without tests/clients/node/node_modules the Node tests are skipped, with
the reason.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import unittest

import redis

from harness import REPO, Harness, Raw, main, wait_until
from sentinel import ClusterTestCase

NODE_DIR = os.path.join(REPO, "tests", "clients", "node")
WORKLOAD = os.path.join(NODE_DIR, "workload.js")
NODE = shutil.which("node") or "/usr/bin/node"
COMBOS = [("ioredis", 3), ("ioredis", 2), ("node-redis", 3), ("node-redis", 2)]
WRITERS, READERS = 4, 2


def _node_problem():
    """Why the Node clients cannot run here, or None."""
    if not os.path.exists(NODE):
        return "node not found (Debian: apt-get install nodejs npm; then make node-deps)"
    try:
        version = subprocess.run([NODE, "--version"], capture_output=True, text=True,
                                 timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        return "node does not run: %s" % e
    if int(version.lstrip("v").split(".")[0] or 0) < 20:
        return "node %s is too old: ioredis 6 and redis 6 need node >= 20" % version
    for pkg in ("ioredis", "redis"):
        if not os.path.exists(os.path.join(NODE_DIR, "node_modules", pkg, "package.json")):
            return "tests/clients/node/node_modules/%s missing: run make node-deps" % pkg
    return None


NODE_PROBLEM = _node_problem()
needs_node = unittest.skipIf(NODE_PROBLEM is not None, NODE_PROBLEM or "")
# redis-py speaks RESP3 (protocol=3) from 5.0 on; Debian 12's python3-redis is 4.3.4.
REDIS_PY_RESP3 = int(redis.__version__.split(".")[0]) >= 5


def node_features(port, client, proto, prefix):
    p = subprocess.run([NODE, WORKLOAD, "--client", client, "--proto", str(proto),
                        "--port", str(port), "--mode", "features", "--prefix", prefix],
                       cwd=NODE_DIR, capture_output=True, text=True, timeout=180)
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise AssertionError("workload.js printed no result (exit %s):\n%s\n%s"
                             % (p.returncode, p.stdout[-3000:], p.stderr[-3000:]))


# --- redis-py, the same features ----------------------------------------------------

def redis_py_features(port, prefix, protocol=2):
    """The checks workload.js makes, through redis-py. Returns (failures, info)."""
    kw = {"protocol": protocol} if protocol != 2 else {}
    conns = []

    def conn():
        c = redis.Redis(port=port, decode_responses=True, socket_timeout=15, **kw)
        conns.append(c)
        return c
    c, other = conn(), conn()
    P = prefix
    failures = []

    def check(name, fn):
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - every failure is reported
            failures.append({"check": name, "error": "%s: %s" % (type(e).__name__, e)})

    def eq(got, want, what):
        if got != want:
            raise AssertionError("%s: got %r, want %r" % (what, got, want))

    def every_once(got, want, what):
        """A full SCAN-family iteration over data nobody changes returns each element once."""
        dups, missing, extra = len(got) - len(set(got)), want - set(got), set(got) - want
        if dups or missing or extra:
            raise AssertionError("%s returned %d for %d: %d twice, %d missing (%s), %d not there"
                                 % (what, len(got), len(want), dups, len(missing),
                                    sorted(missing)[:5], len(extra)))

    def strings():
        eq(c.set(P + ":s", "hello"), True, "SET")
        eq(c.get(P + ":s"), "hello", "GET")
        eq(c.append(P + ":s", " world"), 11, "APPEND")
        eq(c.incr(P + ":n"), 1, "INCR")
        eq(c.incrby(P + ":n", 41), 42, "INCRBY")
        eq(c.mset({P + ":m1": "a", P + ":m2": "b"}), True, "MSET")
        eq(c.mget(P + ":m1", P + ":m2", P + ":none"), ["a", "b", None], "MGET")
        c.set(P + ":ex", "v", ex=100)
        ttl = c.ttl(P + ":ex")
        if not 90 < ttl <= 100:
            raise AssertionError("TTL %r" % ttl)
        eq(c.delete(P + ":m1", P + ":m2"), 2, "DEL")

    def hashes():
        k = P + ":h"
        eq(c.hset(k, mapping={"a": "1", "b": "2", "c": "3"}), 3, "HSET")
        eq(c.hget(k, "b"), "2", "HGET")
        eq(c.hincrby(k, "a", 10), 11, "HINCRBY")
        eq(c.hdel(k, "c"), 1, "HDEL")
        eq(c.hgetall(k), {"a": "11", "b": "2"}, "HGETALL")

    def lists():
        k = P + ":l"
        eq(c.rpush(k, "b", "c", "d"), 3, "RPUSH")
        eq(c.lpush(k, "a"), 4, "LPUSH")
        eq(c.lrange(k, 0, -1), ["a", "b", "c", "d"], "LRANGE")
        eq(c.lpop(k), "a", "LPOP")
        eq(c.llen(k), 3, "LLEN")

    def streams():
        k = P + ":x"
        ids = [c.xadd(k, {"n": str(i)}) for i in range(5)]
        eq([e[0] for e in c.xrange(k)], ids, "XRANGE ids")
        eq([e[1] for e in c.xrange(k)], [{"n": str(i)} for i in range(5)], "XRANGE fields")
        eq(c.xgroup_create(k, "g", id="0"), True, "XGROUP CREATE")
        got = c.xreadgroup("g", "c1", {k: ">"}, count=10)
        eq([s[0] for s in got], [k], "XREADGROUP streams")
        eq([e[0] for e in got[0][1]], ids, "XREADGROUP ids")
        eq(c.xack(k, "g", *ids), 5, "XACK")

    def pipeline():
        p = c.pipeline(transaction=False)
        for i in range(50):
            p.set("%s:p:%d" % (P, i), "v%d" % i)
        for i in range(50):
            p.get("%s:p:%d" % (P, i))
        res = p.execute()
        eq(res, [True] * 50 + ["v%d" % i for i in range(50)], "pipeline")

    def transaction():
        p = c.pipeline(transaction=True)
        p.set(P + ":t", "1").incr(P + ":t").get(P + ":t")
        eq(p.execute(), [True, 2, "2"], "MULTI/EXEC")

    def watch_aborts():
        k = P + ":w"
        c.set(k, "start")
        with c.pipeline() as p:
            p.watch(k)
            other.set(k, "theirs")
            p.multi()
            p.set(k, "mine")
            try:
                p.execute()
                raise AssertionError("EXEC ran although the watched key changed")
            except redis.WatchError:
                pass
        eq(c.get(k), "theirs", "the other write stands")

    def scripts():
        k = P + ":lua"
        script = "return redis.call('INCRBY', KEYS[1], ARGV[1])"
        eq(c.eval(script, 1, k, 5), 5, "EVAL")
        sha = c.script_load(script)
        eq(c.evalsha(sha, 1, k, 7), 12, "EVALSHA")
        eq(other.evalsha(sha, 1, k, 1), 13, "EVALSHA on another connection")

    def pubsub():
        ch = P + ":ch"
        sub = conn().pubsub()
        sub.subscribe(ch)
        eq(sub.get_message(timeout=5)["type"], "subscribe", "SUBSCRIBE")
        for i in range(10):
            c.publish(ch, "m%d" % i)
        got, deadline = [], time.monotonic() + 5
        while len(got) < 10 and time.monotonic() < deadline:
            m = sub.get_message(timeout=0.5)
            if m and m["type"] == "message":
                got.append(m["data"])
        eq(got, ["m%d" % i for i in range(10)], "messages")
        sub.close()

    def blocking_pop():
        k = P + ":bl"
        blocked = conn()
        threading.Timer(0.1, lambda: other.rpush(k, "woken")).start()
        t0 = time.monotonic()
        eq(blocked.blpop(k, timeout=5), (k, "woken"), "BLPOP")
        took = time.monotonic() - t0
        if not 0.09 <= took < 4:
            raise AssertionError("BLPOP returned after %.3f s" % took)

    def scan():
        want = {"%s:scan:%d" % (P, i) for i in range(1000)}
        c.mset({k: "1" for k in want})
        time.sleep(0.4)  # past respgate's read-your-writes horizon: reads go to replicas
        every_once(list(c.scan_iter(match=P + ":scan:*", count=100)), want, "keys SCAN")

    def hscan():
        k = P + ":bighash"
        # a value over hash-max-listpack-value: a hash table, scanned in several calls
        c.hset(k, mapping={"f%d" % i: "v%d" % i if i else "v" * 100 for i in range(500)})
        eq(c.object("encoding", k), "hashtable", "encoding of the hash")
        time.sleep(0.4)
        every_once([f for f, _ in c.hscan_iter(k, count=50)], {"f%d" % i for i in range(500)},
                   "fields HSCAN")

    for name, fn in [("strings", strings), ("hashes", hashes), ("lists", lists),
                     ("streams", streams), ("pipeline", pipeline),
                     ("transaction", transaction), ("watch_aborts_transaction", watch_aborts),
                     ("scripts", scripts), ("pubsub", pubsub), ("blocking_pop", blocking_pop),
                     ("scan", scan), ("hscan", hscan)]:
        check(name, fn)
    for x in conns:
        x.close()
    return failures


class Features(unittest.TestCase):
    """respgate in front of a master and two replicas, as in test_read_write_split."""

    READS = ("get", "mget", "hget", "hgetall", "hmget", "lrange", "lindex", "llen", "xrange",
             "xlen", "scan", "hscan", "exists", "ttl", "hlen")

    def setUp(self):
        self.h = Harness()
        try:
            self.master = self.h.redis()
            self.replicas = [self.h.replica_of(self.master) for _ in range(2)]
            nodes = [self.master] + self.replicas
            self.gate = self.h.respgate(self.master.port, probe_interval_ms=50, regions=[
                {"name": "local", "nodes": ["127.0.0.1:%d" % n.port for n in reversed(nodes)]}])
        except BaseException:
            self.h.close(ok=False)
            raise

    def tearDown(self):
        self.h.close()

    def replica_reads(self):
        return sum(r.calls(cmd) for r in self.replicas for cmd in self.READS)

    def run_node(self, client, proto):
        before = self.replica_reads()
        out = node_features(self.gate.port, client, proto, "f:%s:%d" % (client, proto))
        reads = self.replica_reads() - before
        print("\n%s RESP%d features: ok %s, negotiated %s, wire %s, replica reads %d, "
              "connection events %s" % (client, proto, out.get("ok"), out.get("negotiated"),
                                        out.get("wire"), reads,
                                        {k: v for k, v in out.get("connection_events", {}).items()
                                         if k != "messages"}), file=sys.stderr)
        self.assertNotIn("fatal", out, out.get("fatal"))
        self.assertEqual(out["failures"], [], json.dumps(out["failures"], indent=1))
        self.assertTrue(out["ok"])
        self.assertEqual(out["negotiated"], proto, "protocol negotiated")
        self.assertEqual(out["wire"], proto, "protocol of the replies")
        ev = out["connection_events"]
        self.assertEqual((ev["closes"], ev["reconnecting"], ev["socketErrors"]), (0, 0, 0),
                         ev["messages"])
        self.assertGreater(reads, 0, "no read reached a replica: the split was not exercised")

    @needs_node
    def test_ioredis_resp3(self):
        self.run_node("ioredis", 3)

    @needs_node
    def test_ioredis_resp2(self):
        self.run_node("ioredis", 2)

    @needs_node
    def test_node_redis_resp3(self):
        self.run_node("node-redis", 3)

    @needs_node
    def test_node_redis_resp2(self):
        self.run_node("node-redis", 2)

    def run_redis_py(self, protocol):
        before = self.replica_reads()
        failures = redis_py_features(self.gate.port, "f:py:%d" % protocol, protocol)
        reads = self.replica_reads() - before
        print("\nredis-py %s RESP%d features: %d failures, replica reads %d"
              % (redis.__version__, protocol, len(failures), reads), file=sys.stderr)
        self.assertEqual(failures, [], json.dumps(failures, indent=1))
        self.assertGreater(reads, 0, "no read reached a replica: the split was not exercised")

    def test_redis_py_resp2(self):
        self.run_redis_py(2)

    @unittest.skipUnless(REDIS_PY_RESP3, "redis-py %s has no RESP3 (protocol=3 came in 5.0)"
                         % redis.__version__)
    def test_redis_py_resp3(self):
        self.run_redis_py(3)


# --- load through a failover ----------------------------------------------------------

class NodeLoad:
    """workload.js --mode load, stopped by SIGTERM."""

    def __init__(self, h, port, client, proto, prefix):
        self.name = "%s/RESP%d" % (client, proto)
        self.proto = proto
        self.proc = subprocess.Popen(
            [NODE, WORKLOAD, "--client", client, "--proto", str(proto), "--port", str(port),
             "--mode", "load", "--prefix", prefix, "--duration", "120",
             "--writers", str(WRITERS), "--readers", str(READERS)],
            cwd=NODE_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        h.track(self.proc)
        self.flowing = threading.Event()
        self.stderr = []
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stderr(self):
        for line in self.proc.stderr:
            if '"event":"flowing"' in line:
                self.flowing.set()
            else:
                self.stderr.append(line)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        out = self.proc.stdout.read()
        self.proc.wait(40)
        try:
            rep = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise AssertionError("%s printed no result (exit %s):\n%s\n%s" % (
                self.name, self.proc.returncode, out[-3000:], "".join(self.stderr)[-3000:]))
        if "fatal" in rep:
            raise AssertionError("%s failed: %s" % (self.name, rep["fatal"]))
        return rep


class _CountingConnection(redis.Connection):
    def on_connect(self):
        self.counter[0] += 1
        super().on_connect()


class PyLoad:
    """The same load through redis-py (RESP2): a thread per connection, no retries
    (redis-py 4 retries nothing unless told to), reconnects counted by connects."""
    proto = 2

    def __init__(self, port, prefix):
        self.name = "redis-py/RESP2"
        self.port, self.prefix = port, prefix
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.writes = self.reads = self.regressions = 0
        self.errors, self.acked, self.ok, self.last_write = [], {}, {}, {}
        self.connects = [0]
        self.t0 = time.monotonic()
        self.threads = [threading.Thread(target=self._run, args=("w%d" % i, True), daemon=True)
                        for i in range(WRITERS)]
        self.threads += [threading.Thread(target=self._run, args=("r%d" % i, False), daemon=True)
                         for i in range(READERS)]
        self.flowing = threading.Event()
        for t in self.threads:
            t.start()

    def _run(self, who, write):
        conn_class = type("Counting", (_CountingConnection,), {"counter": self.connects})
        pool = redis.ConnectionPool(port=self.port, connection_class=conn_class,
                                    socket_timeout=30, max_connections=1)
        r = redis.Redis(connection_pool=pool)
        key = "%s:w:%s" % (self.prefix, who) if write else self.prefix + ":r"
        self.ok[who] = 0
        while not self.stopping.is_set():
            try:
                if write:
                    v = r.incr(key)
                    with self.lock:
                        if key in self.acked and v <= self.acked[key]:
                            self.regressions += self.acked[key] - v + 1
                        self.acked[key] = v
                        self.writes += 1
                        self.last_write[who] = time.time() * 1000
                else:
                    r.get(key)
                    with self.lock:
                        self.reads += 1
                self.ok[who] += 1
                if len(self.ok) == WRITERS + READERS and min(self.ok.values()) >= 20:
                    self.flowing.set()
                time.sleep(0.002)
            except redis.RedisError as e:
                with self.lock:
                    self.errors.append({"t": time.monotonic() - self.t0, "who": who,
                                        "msg": "%s: %s" % (type(e).__name__, e)})
                time.sleep(0.02)
        pool.disconnect()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(40)
        return {"client": "redis-py", "proto": 2, "negotiated": [2], "writes": self.writes,
                "reads": self.reads, "error_count": len(self.errors), "errors": self.errors[:200],
                "reconnects": self.connects[0] - (WRITERS + READERS), "regressions": self.regressions,
                "acked": dict(self.acked), "finished": not any(t.is_alive() for t in self.threads),
                "writers_last_ok_ms": (min(self.last_write.values())
                                       if len(self.last_write) == WRITERS else None)}


@needs_node
class Failover(ClusterTestCase):
    """Every client at once, through one Sentinel failover per test. With
    durability.min_replicas 1 (issue 15): a write acknowledged before a kill -9 is on
    a replica, so "nothing acknowledged lost" holds by design, not by how fast loopback
    replication happens to be (without it, one run in about ten lost one)."""
    gate_overrides = {"durability": {"min_replicas": 1, "timeout_ms": 2000}}

    def start_loads(self, scenario):
        loads = [NodeLoad(self.h, self.gate.port, client, proto,
                          "%s:%s:%d" % (scenario, client, proto)) for client, proto in COMBOS]
        loads.append(PyLoad(self.gate.port, "%s:py:2" % scenario))
        for load in loads:
            if not load.flowing.wait(30):
                for x in loads:
                    try:
                        x.stop()
                    except AssertionError:
                        pass
                raise AssertionError("%s: load not flowing: %s" % (
                    load.name, "".join(getattr(load, "stderr", []))[-2000:]))
        return loads

    def new_master(self, old_port):
        port = self.cl.wait_switched(old_port)
        wait_until(lambda: "-> 127.0.0.1:%d (" % port in self.gate.output(),
                   what="respgate following the new master")
        return self.cl.nodes[port]

    def stop_and_check(self, loads, scenario, switched_at_ms, max_errors):
        reports = [(load, load.stop()) for load in loads]
        master = self.cl.settled_master()
        c = Raw(master.port)
        try:
            for load, rep in reports:
                rep["lost"] = 0
                rep["lost_keys"] = []
                for key, acked in rep["acked"].items():
                    on_master = c.call("GET", key)
                    have = int(on_master) if on_master is not None else 0
                    if have < acked:
                        rep["lost"] += acked - have
                        rep["lost_keys"].append((key, acked, have))
        finally:
            c.close()
        for load, rep in reports:
            kinds = sorted({e["msg"][:90] for e in rep["errors"]})
            print("\n%s %s: writes %d, reads %d, errors %d, reconnects %d, lost %d, "
                  "regressions %d, negotiated %s%s" % (
                      scenario, load.name, rep["writes"], rep["reads"], rep["error_count"],
                      rep["reconnects"], rep["lost"], rep["regressions"], rep["negotiated"],
                      "".join("\n    " + k for k in kinds)), file=sys.stderr)
        for load, rep in reports:
            with self.subTest(client=load.name, scenario=scenario):
                self.assertTrue(rep["finished"], "requests still unanswered at the end")
                self.assertEqual(rep["negotiated"], [load.proto], "protocol negotiated")
                self.assertLessEqual(rep["error_count"], max_errors,
                                     json.dumps(rep["errors"][:20], indent=1))
                per_conn = {}
                for e in rep["errors"]:
                    per_conn[e["who"]] = per_conn.get(e["who"], 0) + 1
                self.assertLessEqual(max(per_conn.values(), default=0), 1,
                                     "more than the one request in flight failed on a "
                                     "connection: %r" % per_conn)
                self.assertEqual(rep["reconnects"], 0, json.dumps(rep.get("connection_events")))
                self.assertEqual(rep["lost"], 0, "acknowledged writes missing on the new master: "
                                 "%r" % rep["lost_keys"])
                self.assertEqual(rep["regressions"], 0, "a later INCR reply missed acked writes")
                self.assertIsNotNone(rep["writers_last_ok_ms"], "a writer never wrote")
                self.assertGreater(rep["writers_last_ok_ms"], switched_at_ms,
                                   "a writer wrote nothing after the failover")

    def test_a_planned_failover_shows_no_client_an_error_or_a_reconnect(self):
        old = self.cl.master
        loads = self.start_loads("planned")
        time.sleep(0.5)
        self.assertEqual(self.cl.sentinels[0].failover(), "OK")
        self.new_master(old.port)
        switched = time.time() * 1000
        time.sleep(1.0)
        self.stop_and_check(loads, "planned", switched, max_errors=0)

    def test_a_killed_master_costs_each_client_only_its_requests_in_flight(self):
        old = self.cl.master
        loads = self.start_loads("kill")
        time.sleep(0.5)
        old.kill()
        self.new_master(old.port)
        switched = time.time() * 1000
        time.sleep(1.0)
        self.stop_and_check(loads, "kill -9", switched, max_errors=WRITERS)


if __name__ == "__main__":
    main()
