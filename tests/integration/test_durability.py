"""Durable writes (issue 15), checked the way Jepsen checks: a loss checker, not a
promise. Writers SET unique keys and RPUSH unique ids to a shared list through
respgate and record every write that was acknowledged; the master is killed with
-9 while its two replicas lag behind a 100 ms relay; Sentinel fails over; everything
acknowledged is read back from the new master and the missing writes are counted.
The relays drop what is still on its way when the master dies, as a machine crash
would (kill -9 of the process alone loses nothing it had written to its sockets).

- durability.min_replicas 0: the checker finds losses (it can fail).
- durability.min_replicas 1: nothing acknowledged is lost, and the errors are no more
  than the requests in flight when the master died.
Plus the rules: which replies wait, reloads, on_timeout.

tests/bench/durability.py runs more crash trials (LOSS_TRIALS here, default 2)."""
import json
import os
import random
import threading
import time
import unittest

from harness import ConnectionClosed, Harness, ProxyTestCase, RespError, encode, main, wait_until
from relay import DelayRelay
from sentinel import NAME, Sentinel

TRIALS = int(os.environ.get("LOSS_TRIALS", "2"))
WRITERS = 8


class LaggingCluster:
    """A master, two replicas that replicate through 100 ms relays, three Sentinels."""

    def __init__(self, h, delay_s=0.1):
        self.h = h
        self.master = h.redis()
        self.relays = [DelayRelay(self.master.port, delay_s, crash=True) for _ in range(2)]
        self.replicas = []
        for relay in self.relays:
            r = h.redis(extra=["--replicaof", "127.0.0.1", str(relay.port)])
            self.replicas.append(r)
        for r in self.replicas:
            wait_until(lambda: r.info("replication").get("master_link_status") == "up",
                       timeout=20, what="replica %d linked" % r.port)
        c = self.master.client()
        c.call("SET", "__sync", "1")  # Redis streams to a replica after its first ACK
        moff = self.master.info("replication")["master_repl_offset"]
        for r in self.replicas:
            wait_until(lambda: r.info("replication")["slave_repl_offset"] >= moff, timeout=20,
                       what="replica %d streaming" % r.port)
        self.nodes = {n.port: n for n in [self.master] + self.replicas}
        self.sentinels = [Sentinel(h, "%040x" % (0xd0 << 100 | i)) for i in range(3)]
        for s in self.sentinels:
            s.start(self.master, self.replicas, self.sentinels, 600, 4000)
        wait_until(self._agreed, timeout=20, what="the Sentinels agreeing")

    def _agreed(self):
        return all(len(s.call("SENTINEL", "SENTINELS", NAME)) == 2 and
                   len(s.call("SENTINEL", "REPLICAS", NAME)) == 2 for s in self.sentinels)

    def gate_options(self, **durability):
        return {"regions": [{"name": "local", "priority": 1,
                             "sentinel": {"addresses": ["127.0.0.1:%d" % s.port
                                                        for s in self.sentinels],
                                          "master_name": NAME}}],
                "failover": {"hold_ms": 15000},
                "durability": dict({"timeout_ms": 2000}, **durability)}

    def close(self):
        for r in self.relays:
            r.close()


class Writer(threading.Thread):
    """SETs w<n>:<seq> and RPUSHes it to a shared list, one request in flight."""

    def __init__(self, gate, n):
        super().__init__(daemon=True)
        self.gate, self.n, self.stop = gate, n, threading.Event()
        self.acked_keys, self.acked_ids, self.errors = [], [], []

    def run(self):
        c = self.gate.client(timeout=30)
        seq = 0
        while not self.stop.is_set():
            seq += 1
            ident = "w%d:%d" % (self.n, seq)
            push = seq % 2 == 0
            try:
                r = c.call("RPUSH", "ids", ident) if push else c.call("SET", ident, seq)
            except (ConnectionClosed, OSError) as e:
                self.errors.append(repr(e))
                c = self.gate.client(timeout=30)
                continue
            if isinstance(r, RespError):
                self.errors.append(str(r))
            elif push:
                self.acked_ids.append(ident)
            else:
                self.acked_keys.append(ident)


def loss_trial(h, min_replicas, run_s=1.5, after_s=1.5):
    """One crash: returns (acknowledged, lost, errors, error texts)."""
    cl = LaggingCluster(h)
    try:
        gate = h.respgate(cl.master.port, **cl.gate_options(min_replicas=min_replicas))
        wait_until(lambda: "master is 127.0.0.1:%d" % cl.master.port in gate.output(),
                   timeout=20, what="respgate following the master")
        writers = [Writer(gate, i) for i in range(WRITERS)]
        for w in writers:
            w.start()
        time.sleep(run_s)
        cl.master.kill()  # replication lags 100 ms behind: the tail is on no replica yet
        wait_until(lambda: all(s.master_port() != cl.master.port for s in cl.sentinels),
                   timeout=30, what="Sentinel failing over")
        new = cl.nodes[cl.sentinels[0].master_port()]
        wait_until(lambda: "-> 127.0.0.1:%d" % new.port in gate.output(), timeout=20,
                   what="respgate following")
        time.sleep(after_s)
        for w in writers:
            w.stop.set()
        for w in writers:
            w.join(30)
        c = new.client()
        present_ids = set(x.decode() for x in c.call("LRANGE", "ids", 0, -1))
        keys = [k for w in writers for k in w.acked_keys]
        values = c.call("MGET", *keys) if keys else []
        lost = sum(v is None for v in values)
        lost += sum(i not in present_ids for w in writers for i in w.acked_ids)
        acked = len(keys) + sum(len(w.acked_ids) for w in writers)
        errors = [e for w in writers for e in w.errors]
        gate.stop()
        return acked, lost, len(errors), errors
    finally:
        cl.close()


class LossChecker(unittest.TestCase):

    def run_trials(self, min_replicas, trials):
        results = []
        for _ in range(trials):
            h = Harness()
            ok = False
            try:
                results.append(loss_trial(h, min_replicas))
                ok = True
            finally:
                h.close(ok=ok)
        for acked, lost, nerr, errors in results:
            print("min_replicas %d: %d acknowledged, %d lost, %d errors %s" % (
                min_replicas, acked, lost, nerr, sorted(set(e[:60] for e in errors))[:3]))
        return results

    def test_without_durability_the_checker_finds_losses(self):
        results = self.run_trials(0, 1)
        self.assertGreater(sum(lost for _, lost, _, _ in results), 0,
                           "acknowledged writes lost when the master dies: the checker sees them")

    def test_with_one_replica_nothing_acknowledged_is_lost(self):
        for acked, lost, nerr, errors in self.run_trials(1, TRIALS):
            self.assertGreater(acked, 50)
            self.assertEqual(lost, 0)
            self.assertLessEqual(nerr, WRITERS, errors)


class Rules(ProxyTestCase):
    """One master, one replica: which replies wait, and what a shortfall gives."""

    def setUp(self):
        self.h = Harness()
        try:
            self.redis = self.h.redis()
            self.replica = self.h.replica_of(self.redis)
            self.gate = self.h.respgate(self.redis.port, durability={
                "min_replicas": 1, "timeout_ms": 300})
        except BaseException:
            self.h.close(ok=False)
            raise

    def metric(self, name, label=""):
        import urllib.request
        port = json.load(open(self.gate.config_path))["admin"]["listen"].rsplit(":", 1)[1]
        with urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port, timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + label + " "):
                    return float(line.rsplit(" ", 1)[1])
        return None

    def test_which_replies_wait_and_what_a_shortfall_gives(self):
        c = self.gate.client()
        before = self.redis.calls("wait")
        self.assertEqual(c.call("SET", "a", "1"), "OK")
        self.assertEqual(c.call("GET", "a"), b"1")  # a read: no WAIT for it
        self.assertEqual(c.call("EVAL", "return redis.call('incr', KEYS[1])", 1, "n"), 1)
        c.send(encode("MULTI") + encode("INCR", "n") + encode("INCR", "n") + encode("EXEC"))
        self.assertEqual([c.read() for _ in range(4)], ["OK", "QUEUED", "QUEUED", [2, 3]])
        # A pipeline of 200 writes from 4 clients: grouped, far fewer WAITs than writes.
        clients = [self.gate.client() for _ in range(4)]
        for k in clients:
            k.send(b"".join(encode("SET", "p%d" % i, i) for i in range(200)))
        for k in clients:
            self.assertEqual([k.read() for _ in range(200)], ["OK"] * 200)
        waits = self.redis.calls("wait") - before
        self.assertLess(waits, 400, "one WAIT per pass and connection, not per write")
        self.assertGreaterEqual(waits, 3)
        # The client's own WAIT keeps its meaning.
        self.assertEqual(c.call("SET", "z", "1"), "OK")
        self.assertEqual(c.call("WAIT", 1, 1000), 1)
        # The replica stops: the write ran, but its reply is an error after timeout_ms.
        self.replica.freeze()
        try:
            t = time.monotonic()
            r = c.call("SET", "b", "2")
            self.assertIsInstance(r, RespError)
            self.assertTrue(r.startswith("NOREPLICAS the write ran on the master"), r)
            self.assertLess(time.monotonic() - t, 3)
            self.assertEqual(c.call("GET", "b"), b"2", "it ran on the master")
            other = self.gate.client()
            self.assertEqual(other.call("GET", "a"), b"1", "reads of others do not wait")
        finally:
            self.replica.thaw()
        self.assertEqual(self.metric("respgate_durable_shortfalls_total", '{outcome="failed"}'), 1)
        wait_until(lambda: c.call("SET", "c", "3") == "OK", what="writes acknowledged again")

    def test_reload_turns_it_off_and_on_reply_releases(self):
        cfg = json.load(open(self.gate.config_path))
        cfg["durability"] = {"min_replicas": 1, "timeout_ms": 200, "on_timeout": "reply"}
        tmp = self.gate.config_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(cfg, f)
        os.rename(tmp, self.gate.config_path)
        wait_until(lambda: "config reload (file) applied" in self.gate.output(), what="reload")
        c = self.gate.client()
        self.replica.freeze()
        try:
            self.assertEqual(c.call("SET", "x", "1"), "OK", "released without its replica")
        finally:
            self.replica.thaw()
        self.assertEqual(self.metric("respgate_durable_shortfalls_total", '{outcome="released"}'),
                         1)
        cfg["durability"] = {"min_replicas": 0}
        with open(tmp, "w") as f:
            json.dump(cfg, f)
        os.rename(tmp, self.gate.config_path)
        wait_until(lambda: self.gate.output().count("config reload (file) applied") >= 2,
                   what="second reload")
        before = self.redis.calls("wait")
        self.replica.freeze()
        try:
            self.assertEqual(c.call("SET", "y", "1"), "OK")
        finally:
            self.replica.thaw()
        self.assertEqual(self.redis.calls("wait"), before, "off: no WAIT at all")


class OtherRegions(unittest.TestCase):
    """min_replicas_in_other_regions: the master and one replica in region a
    (127.0.1.1), one replica in region b (127.0.2.1)."""

    def setUp(self):
        self.h = Harness()
        try:
            self.master = self.h.redis(host="127.0.1.1")
            self.local = self.h.replica_of(self.master, host="127.0.1.1")
            self.remote = self.h.replica_of(self.master, host="127.0.2.1")
            regions = [{"name": "a", "priority": 1,
                        "nodes": ["127.0.1.1:%d" % n.port for n in (self.master, self.local)]},
                       {"name": "b", "priority": 2, "nodes": ["127.0.2.1:%d" % self.remote.port]}]
            self.gate = self.h.respgate(self.master.port, regions=regions, durability={
                "min_replicas": 1, "min_replicas_in_other_regions": 1, "timeout_ms": 300})
            wait_until(lambda: len(self.replicas()) == 2, what="both replicas discovered")
        except BaseException:
            self.h.close(ok=False)
            raise

    def tearDown(self):
        self.h.close()

    def replicas(self):
        import urllib.request
        port = json.load(open(self.gate.config_path))["admin"]["listen"].rsplit(":", 1)[1]
        with urllib.request.urlopen("http://127.0.0.1:%s/topology" % port, timeout=5) as r:
            return {n["address"]: n for n in json.loads(r.read())["nodes"]
                    if n["role"] == "replica" and n["reachable"]}

    def test_a_write_waits_for_a_replica_in_another_region(self):
        c = self.gate.client()
        wait_until(lambda: c.call("SET", "k", "1") == "OK", what="writes acknowledged")
        before = self.master.calls("wait")
        self.assertEqual(c.call("SET", "k", "2"), "OK")
        self.assertEqual(self.master.calls("wait") - before, 1)
        self.remote.freeze()  # the local replica alone acknowledges: not enough
        try:
            r = c.call("SET", "k", "3")
            self.assertIsInstance(r, RespError)
            self.assertTrue(r.startswith("NOREPLICAS the write ran on the master but reached 1 of 2"),
                            r)
        finally:
            self.remote.thaw()
        wait_until(lambda: c.call("SET", "k", "4") == "OK", what="the remote replica back")
        self.local.freeze()  # the remote one alone: enough, once the local is seen gone
        try:
            wait_until(lambda: "127.0.1.1:%d" % self.local.port not in self.replicas(),
                       what="the local replica seen unreachable")
            self.assertEqual(c.call("SET", "k", "5"), "OK")
        finally:
            self.local.thaw()


if __name__ == "__main__":
    main()
