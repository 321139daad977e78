"""Read/write splitting over a real master and two replicas: reads spread over the
replicas, writes go to the master, and a client always reads its own writes."""
import threading
import time
import unittest

import redis

from adminhttp import admin_port, get_json
from harness import Harness, RespError, encode, main, wait_until


class PipelinedReaders:
    """4 clients GETting "k" through respgate in pipelines of 20, until stopped;
    every reply sorted into ok or errors."""

    def __init__(self, gate):
        self.gate, self.stop, self.errors, self.ok = gate, threading.Event(), [], []
        self.threads = [threading.Thread(target=self.read) for _ in range(4)]
        for t in self.threads:
            t.start()

    def read(self):
        c = self.gate.client(timeout=5)
        while not self.stop.is_set():
            c.send(b"".join(encode("GET", "k") for _ in range(20)))
            for _ in range(20):
                reply = c.read()
                (self.errors if isinstance(reply, RespError) else self.ok).append(reply)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(10)


class SplitTestCase(unittest.TestCase):
    respgate_options = {}
    redis_extra = []

    def setUp(self):
        self.h = Harness()
        try:
            self.master = self.h.redis(extra=self.redis_extra)
            self.replicas = [self.h.replica_of(self.master, extra=self.redis_extra)
                             for _ in range(2)]
            nodes = [self.master] + self.replicas
            opts = dict(self.respgate_options)
            opts["regions"] = [{"name": "local",
                                "nodes": ["127.0.0.1:%d" % n.port for n in reversed(nodes)]}]
            self.gate = self.h.respgate(self.master.port, **opts)
        except BaseException:
            self.h.close(ok=False)
            raise

    def tearDown(self):
        for r in self.replicas:
            r.thaw()
        self.h.close()

    def eligible_for_reads(self, node):
        """Whether respgate's topology (GET /topology) has node in the read rotation."""
        nodes = get_json(admin_port(self.gate), "/topology")[1]["nodes"]
        return any(n["address"] == "127.0.0.1:%d" % node.port and n["eligible_for_reads"]
                   for n in nodes)


class ReadWriteSplit(SplitTestCase):
    respgate_options = {"probe_interval_ms": 50}

    def test_reads_go_to_the_replicas_and_spread_over_both_while_writes_go_to_the_master(self):
        r = redis.Redis(port=self.gate.port)
        sets_before = self.master.calls("set")
        r.set("spread", "x")
        wait_until(lambda: all(x.info("replication")["slave_repl_offset"] ==
                               self.master.info("replication")["master_repl_offset"]
                               for x in self.replicas), what="replicas caught up")
        time.sleep(0.2)  # a probe after the write: this client may read from replicas now
        before = [n.calls("get") for n in [self.master] + self.replicas]
        for _ in range(400):
            self.assertEqual(r.get("spread"), b"x")
        after = [n.calls("get") for n in [self.master] + self.replicas]
        got = [a - b for a, b in zip(after, before)]
        self.assertEqual(got[0], 0, "no GET on the master: %r" % got)
        self.assertGreater(got[1], 100, got)
        self.assertGreater(got[2], 100, got)
        self.assertEqual(self.master.calls("set") - sets_before, 1)

    def test_eval_is_a_write_and_eval_ro_a_read(self):
        r = redis.Redis(port=self.gate.port)
        self.assertEqual(r.eval("return redis.call('SET', KEYS[1], ARGV[1])", 1, "e", "1"), b"OK")
        time.sleep(0.2)
        before = sum(x.calls("eval_ro") for x in self.replicas)
        for _ in range(10):
            self.assertEqual(r.execute_command("EVAL_RO", "return redis.call('GET', KEYS[1])",
                                               1, "e"), b"1")
        self.assertEqual(sum(x.calls("eval_ro") for x in self.replicas) - before, 10)
        self.assertEqual(sum(x.rejected("eval") for x in self.replicas), 0)
        self.assertEqual(self.master.calls("eval"), 1)

    def test_writes_never_reach_a_replica(self):
        r = redis.Redis(port=self.gate.port)
        sets_before = self.master.calls("set")
        for i in range(500):
            self.assertTrue(r.set("w%d" % i, i))  # READONLY would raise
            r.incr("counter")
        # Replicas run the writes they replicate; a write sent to one is rejected (READONLY).
        for x in self.replicas:
            self.assertEqual(x.rejected("set") + x.rejected("incr"), 0)
        self.assertEqual(self.master.calls("set") - sets_before, 500)

    def test_set_then_get_on_one_connection_is_never_stale_while_a_replica_is_frozen(self):
        self.replicas[0].freeze()
        c = self.gate.client(timeout=5)  # a read stuck on the frozen replica would time out
        stale = 0
        for i in range(2000):
            c.send(encode("SET", "ryw", i) + encode("GET", "ryw"))
            self.assertEqual(c.read(), "OK")
            stale += c.read() != str(i).encode()
        # Slower pairs: probes run between the write and the read, so the read may go
        # to a replica, but only to one that has the write.
        for i in range(2000, 2030):
            self.assertEqual(c.call("SET", "ryw", i), "OK")
            time.sleep(0.07)
            stale += c.call("GET", "ryw") != str(i).encode()
        self.assertEqual(stale, 0)
        self.assertGreater(self.replicas[1].calls("get"), 0, "caught-up replica took reads")

    def test_reads_in_flight_on_a_replica_that_freezes_end_instead_of_hanging(self):
        r = redis.Redis(port=self.gate.port)
        r.set("k", "v")
        time.sleep(0.2)
        errors, ok = [], []

        def reader():
            c = self.gate.client(timeout=5)
            for _ in range(300):
                reply = c.call("GET", "k")
                (errors if isinstance(reply, RespError) else ok).append(reply)
        t = threading.Thread(target=reader)
        t.start()
        time.sleep(0.05)
        self.replicas[0].freeze()
        t.join(20)
        self.assertFalse(t.is_alive(), "a read hung on the frozen replica")
        self.assertEqual(len(ok) + len(errors), 300)
        self.assertEqual(errors, [], "reads in flight are retried once elsewhere")

    def test_a_replica_that_misses_a_probe_but_answers_keeps_its_connections(self):
        """A fork, a busy host or a slow command can hold INFO past the probe's
        150 ms: the node is taken out of the reads, but the requests in flight on it
        are answered a moment later and must not be failed. They used to be (the
        connections closed: "the node stopped answering probes"), which for a node
        the topology briefly called a replica meant writes "may or may not have run"."""
        r = redis.Redis(port=self.gate.port)
        r.set("k", "v")
        time.sleep(0.2)
        readers = PipelinedReaders(self.gate)
        try:
            direct = self.replicas[0].client()
            busy = ("local t = redis.call('TIME') local t0 = t[1] * 1e6 + t[2] "
                    "repeat t = redis.call('TIME') until t[1] * 1e6 + t[2] - t0 > 300000 "
                    "return 1")
            for _ in range(3):
                time.sleep(0.3)
                self.assertEqual(direct.call("EVAL", busy, "0"), 1)  # 300 ms busy
        finally:
            readers.finish()
        self.assertEqual(readers.errors, [])
        out = self.gate.output()
        self.assertIn("unreachable: no answer to INFO in time", out)
        self.assertNotIn("the node stopped answering probes", out)

    def test_scan_cursors_go_on_where_they_were_issued(self):
        """Each SCAN call went to the next replica, where the cursor means something
        else: 726-766 distinct keys of 1,000 came back (issue 12)."""
        r = redis.Redis(port=self.gate.port)
        r.mset({"sc:%d" % i: i for i in range(1000)})
        big = "x" * 100  # past the listpack limit: HSCAN then takes many calls
        r.hset("sc:h", mapping={"f%d" % i: big for i in range(500)})
        time.sleep(0.5)  # the replicas have it, and the probes know
        for _ in range(3):
            keys, cursor, calls = [], 0, 0
            while True:
                cursor, batch = r.scan(cursor, match="sc:*", count=50)
                keys += batch
                calls += 1
                if cursor == 0:
                    break
            self.assertGreater(calls, 5)
            self.assertEqual(set(keys), {b"sc:%d" % i for i in range(1000)} | {b"sc:h"})
            fields, cursor = [], 0
            while True:
                cursor, batch = r.hscan("sc:h", cursor, count=20)
                fields += batch
                if cursor == 0:
                    break
            self.assertEqual(set(fields), {b"f%d" % i for i in range(500)})
        self.assertGreater(sum(x.calls("scan") for x in self.replicas), 10, "scans on replicas")
        # Interleaved: an HSCAN from cursor 0 inside a SCAN loop (scan_iter and
        # hscan_iter together) must not move the SCAN's cursor to another node.
        keys, cursor = [], 0
        while True:
            cursor, batch = r.scan(cursor, match="sc:*", count=50)
            keys += batch
            r.hscan("sc:h", 0, count=20)  # from cursor 0: may go to another replica
            if cursor == 0:
                break
        self.assertEqual(set(keys), {b"sc:%d" % i for i in range(1000)} | {b"sc:h"})

    def test_evalsha_ro_after_script_load_works(self):
        """SCRIPT LOAD goes to the master; EVALSHA_RO to a replica, whose script cache
        is empty: NOSCRIPT, 6 of 6 (issue 12). The master answers instead."""
        r = redis.Redis(port=self.gate.port)
        r.set("ro", "1")
        time.sleep(0.3)
        sha = r.script_load("return redis.call('GET', KEYS[1])")
        for _ in range(6):
            self.assertEqual(r.execute_command("EVALSHA_RO", sha, 1, "ro"), b"1")
        # Unknown everywhere: the master's NOSCRIPT, at once (it was resent to the
        # master for hold_ms, then -TRYAGAIN).
        with self.assertRaises(redis.exceptions.NoScriptError):
            r.execute_command("EVALSHA_RO", "0" * 40, 0)

    def test_reads_continue_without_errors_when_a_replica_is_killed(self):
        r = redis.Redis(port=self.gate.port)
        r.set("k", "v")
        time.sleep(0.2)
        readers = PipelinedReaders(self.gate)
        time.sleep(0.3)
        self.replicas[0].kill()
        time.sleep(0.5)
        readers.finish()
        self.assertGreater(len(readers.ok), 1000)
        self.assertEqual(readers.errors, [])


class LaggingReplica(SplitTestCase):
    respgate_options = {"probe_interval_ms": 50, "routing": {"max_lag_bytes": 20000}}

    def test_a_replica_beyond_max_lag_gets_no_reads_until_it_catches_up(self):
        lagging, current = self.replicas
        # A paused replica keeps answering INFO but applies no replicated writes. The
        # pause outlasts the checks even on a loaded machine; it is lifted below.
        pause = lagging.client()
        self.assertEqual(pause.call("CLIENT", "PAUSE", "60000", "WRITE"), "OK")
        try:
            writer = redis.Redis(port=self.gate.port)
            for i in range(100):
                writer.set("lag:%d" % i, "x" * 1000)  # 100 KB behind: over max_lag_bytes
            wait_until(lambda: not self.eligible_for_reads(lagging),
                       what="the lagging replica out of the read rotation")
            time.sleep(0.1)  # the workers take the snapshot the admin endpoint shows
            reader = redis.Redis(port=self.gate.port)  # no writes of its own: any replica would do
            before = (lagging.calls("get"), current.calls("get"))
            for _ in range(200):
                reader.get("lag:1")
            self.assertEqual(lagging.calls("get") - before[0], 0, "the lagging replica took reads")
            self.assertEqual(current.calls("get") - before[1], 200)
        finally:
            self.assertEqual(pause.call("CLIENT", "UNPAUSE"), "OK")
        # After the pause it catches up, and takes reads again.
        wait_until(lambda: lagging.info("replication")["slave_repl_offset"] ==
                   self.master.info("replication")["master_repl_offset"], timeout=10,
                   what="the replica catching up")
        wait_until(lambda: self.eligible_for_reads(lagging),
                   what="the replica back in the read rotation")
        time.sleep(0.1)  # as above
        before = lagging.calls("get")
        for _ in range(200):
            reader.get("lag:1")
        self.assertGreater(lagging.calls("get") - before, 50)


class SessionsReturnToMultiplexing(SplitTestCase):
    respgate_options = {"probe_interval_ms": 50}

    def test_after_a_transaction_the_client_reads_from_replicas_again(self):
        r = redis.Redis(port=self.gate.port)
        p = r.pipeline(transaction=True)  # redis-py's default: MULTI ... EXEC
        p.set("tx", "1")
        p.incr("tx")
        self.assertEqual(p.execute(), [True, 2])
        time.sleep(0.2)
        before = sum(x.calls("get") for x in self.replicas)
        for _ in range(50):
            self.assertEqual(r.get("tx"), b"2")
        self.assertEqual(sum(x.calls("get") for x in self.replicas) - before, 50)

    def test_transactions_reuse_pinned_connections(self):
        r = redis.Redis(port=self.gate.port)
        before = int(self.master.info("stats")["total_connections_received"])
        for i in range(200):
            p = r.pipeline(transaction=True)
            p.incr("n")
            p.get("n")
            self.assertEqual(p.execute(), [i + 1, str(i + 1).encode()])
        opened = int(self.master.info("stats")["total_connections_received"]) - before
        self.assertLess(opened, 10, "each transaction opened a connection")

    def test_after_the_last_unsubscribe_the_client_reads_from_replicas_again(self):
        c = self.gate.client()
        c.send(encode("SUBSCRIBE", "a", "b"))
        self.assertEqual([c.read(), c.read()], [[b"subscribe", b"a", 1], [b"subscribe", b"b", 2]])
        redis.Redis(port=self.gate.port).publish("a", "hi")
        self.assertEqual(c.read(), [b"message", b"a", b"hi"])
        c.send(encode("UNSUBSCRIBE"))
        got = sorted([c.read(), c.read()], key=lambda m: m[2])
        self.assertEqual([m[2] for m in got], [0, 1])
        time.sleep(0.1)
        self.assertEqual(c.call("SET", "k", "v"), "OK")
        time.sleep(0.2)  # a probe after the write
        before = sum(x.calls("get") for x in self.replicas)
        for _ in range(20):
            self.assertEqual(c.call("GET", "k"), b"v")
        self.assertEqual(sum(x.calls("get") for x in self.replicas) - before, 20)

    def test_a_command_pipelined_after_unsubscribe_is_answered_in_order(self):
        c = self.gate.client()
        c.send(encode("SUBSCRIBE", "a"))
        self.assertEqual(c.read(), [b"subscribe", b"a", 1])
        c.send(encode("UNSUBSCRIBE", "a") + encode("PING") + encode("SET", "x", "1") +
               encode("GET", "x"))
        self.assertEqual(c.read(), [b"unsubscribe", b"a", 0])
        self.assertEqual([c.read(), c.read(), c.read()], ["PONG", "OK", b"1"])
        self.assertEqual(c.call("GET", "x"), b"1")

    def test_xread_without_block_is_a_read_and_with_block_a_blocking_command(self):
        r = redis.Redis(port=self.gate.port)
        r.xadd("s", {"f": "v"})
        time.sleep(0.2)
        before = sum(x.calls("xread") for x in self.replicas)
        for _ in range(10):
            self.assertEqual(len(r.xread({"s": "0"}, count=10)[0][1]), 1)
        self.assertEqual(sum(x.calls("xread") for x in self.replicas) - before, 10)
        other = redis.Redis(port=self.gate.port)
        result = []
        t = threading.Thread(target=lambda: result.append(r.xread({"s": "$"}, block=5000)))
        t.start()
        time.sleep(0.3)
        other.xadd("s", {"f": "w"})
        t.join(10)
        self.assertEqual(result[0][0][1][0][1], {b"f": b"w"})

    def test_a_blocking_pop_releases_its_connection_once_answered(self):
        r = redis.Redis(port=self.gate.port)
        redis.Redis(port=self.gate.port).rpush("q", "job")
        self.assertEqual(r.blpop("q", timeout=1), (b"q", b"job"))
        r.set("after", "x")
        time.sleep(0.2)
        before = sum(x.calls("get") for x in self.replicas)
        self.assertEqual(r.get("after"), b"x")
        self.assertEqual(sum(x.calls("get") for x in self.replicas) - before, 1)


class Wait(SplitTestCase):
    respgate_options = {"limits": {"max_wait_ms": 400}}

    def test_wait_counts_the_replicas_that_have_this_clients_writes(self):
        c = self.gate.client()
        self.assertEqual(c.call("SET", "w", "1"), "OK")
        self.assertEqual(c.call("WAIT", "2", "1000"), 2)
        t0 = time.monotonic()
        self.assertEqual(c.call("WAIT", "2", "0"), 2, "timeout 0 is capped, not forever")
        self.assertLess(time.monotonic() - t0, 1)

    def test_wait_with_a_frozen_replica_returns_within_the_cap(self):
        c = self.gate.client()
        self.replicas[0].freeze()
        self.assertEqual(c.call("SET", "w", "2"), "OK")
        t0 = time.monotonic()
        self.assertEqual(c.call("WAIT", "2", "0"), 1)
        self.assertLess(time.monotonic() - t0, 2)

    def test_wait_after_the_writes_connection_was_lost_is_an_error_not_a_count(self):
        c = self.gate.client()
        self.assertEqual(c.call("SET", "w", "3"), "OK")
        redis.Redis(port=self.master.port).client_kill_filter(_type="normal")
        time.sleep(0.2)
        reply = c.call("WAIT", "1", "100")
        self.assertIsInstance(reply, RespError)
        self.assertIn("WAIT cannot count replicas", reply)

    def test_wait_after_a_transaction_is_an_error_not_an_overcount(self):
        c = self.gate.client()
        self.assertEqual(c.call("MULTI"), "OK")
        self.assertEqual(c.call("SET", "w", "4"), "QUEUED")
        self.assertEqual(c.call("EXEC"), ["OK"])
        reply = c.call("WAIT", "2", "100")
        self.assertIsInstance(reply, RespError)


REDISEARCH = "/usr/lib/redis/modules/redisearch.so"  # Debian's redis-redisearch


class CommandsLearnedFromTheMaster(SplitTestCase):
    # A module's commands are not in the built-in table; the master's COMMAND says
    # FT.SEARCH is read-only, so it can go to the replicas (which load the module too).
    redis_extra = ["--loadmodule", REDISEARCH]
    respgate_options = {"probe_interval_ms": 50}

    def test_a_module_read_only_command_goes_to_replicas(self):
        r = redis.Redis(port=self.gate.port)
        self.assertTrue(r.execute_command("FT.CREATE", "idx", "SCHEMA", "title", "TEXT"))
        self.assertTrue(r.execute_command("FT.ADD", "idx", "doc1", "1.0", "FIELDS", "title",
                                          "hello world"))
        time.sleep(0.3)
        before = sum(x.calls("ft.search") for x in self.replicas)
        for _ in range(50):
            self.assertEqual(r.execute_command("FT.SEARCH", "idx", "hello")[0], 1)
        self.assertEqual(sum(x.calls("ft.search") for x in self.replicas) - before, 50)
        self.assertEqual(self.master.calls("ft.search"), 0)
        self.assertIn("commands the built-in table does not", self.gate.output())


class ReadsFromMaster(SplitTestCase):
    respgate_options = {"routing": {"reads": "master"}}

    def test_reads_master_sends_everything_to_the_master(self):
        r = redis.Redis(port=self.gate.port)
        r.set("m", "1")
        time.sleep(0.3)
        for _ in range(100):
            r.get("m")
        self.assertEqual(sum(x.calls("get") for x in self.replicas), 0)
        self.assertEqual(self.master.calls("get"), 100)


if __name__ == "__main__":
    main()
