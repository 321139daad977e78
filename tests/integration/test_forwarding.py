"""Forwarding: every reply correct and in order, for many clients, pipelines,
big binary values and unmodified clients (redis-cli, redis-benchmark, redis-py)."""
import os
import subprocess
import threading
import unittest

import redis

from harness import ProxyTestCase, RespError, encode, main


def run_clients(n, run, failures):
    """run(i) for n clients at once, each on its own thread; returns failures."""
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failures


class Forwarding(ProxyTestCase):

    def test_hundred_clients_pipelining_interleaved_commands_get_their_own_replies_in_order(self):
        clients, rounds, depth = 100, 20, 10
        failures = []

        def run(i):
            try:
                c = self.gate.client(timeout=30)
                expected_incr = 0
                for r in range(rounds):
                    batch, want = [], []
                    for k in range(depth):
                        if k % 2:
                            token = "client-%d-round-%d-cmd-%d" % (i, r, k)
                            batch.append(encode("ECHO", token))
                            want.append(token.encode())
                        else:
                            expected_incr += 1
                            batch.append(encode("INCR", "counter:%d" % i))
                            want.append(expected_incr)
                    c.send(b"".join(batch))
                    got = [c.read() for _ in want]
                    if got != want:
                        failures.append((i, r, got, want))
                        return
                c.close()
            except Exception as e:  # noqa: BLE001 - reported below
                failures.append((i, repr(e)))

        self.assertEqual(run_clients(clients, run, failures), [])
        direct = redis.Redis(port=self.redis.port)
        for i in range(clients):
            self.assertEqual(int(direct.get("counter:%d" % i)), rounds * depth // 2)

    def test_replies_of_every_shape_pipelined_by_many_clients_stay_in_order(self):
        """Back-to-back plain replies move to their client in runs (upstream_run.c);
        errors, arrays, nulls, values larger than a read and other clients' replies
        end a run. Every client must still get exactly its own replies, in order."""
        clients, rounds = 40, 15
        big = b"v" * 150000  # more than one read of the connection to Redis
        failures = []

        def run(i):
            try:
                c = self.gate.client(timeout=30)
                key, n = "shape:%d" % i, 0
                for r in range(rounds):
                    batch, want = [], []

                    def add(cmd, reply):
                        batch.append(encode(*cmd))
                        want.append(reply)
                    for k in range(12):
                        n += 1
                        add(("SET", key, "x%d" % n), "OK")
                        add(("GET", key), b"x%d" % n)
                        add(("INCR", key + ":n"), r * 12 + k + 1)
                        add(("GET", key + ":missing"), None)
                        if k == 3:
                            add(("INCR", key), RespError("ERR value is not an integer or out of range"))
                        if k == 5:
                            add(("MGET", key, key + ":missing"), [b"x%d" % n, None])
                        if k == 7 and r % 5 == 0:
                            add(("SET", key + ":big", big), "OK")
                            add(("GET", key + ":big"), big)
                    c.send(b"".join(batch))
                    got = [c.read() for _ in want]
                    if got != want:
                        bad = next(j for j in range(len(want)) if got[j] != want[j])
                        failures.append((i, r, bad, repr(got[bad])[:80], repr(want[bad])[:80]))
                        return
                c.close()
            except Exception as e:  # noqa: BLE001 - reported below
                failures.append((i, repr(e)))

        self.assertEqual(run_clients(clients, run, failures), [])

    def test_binary_values_of_1_mb_and_64_mb_round_trip_byte_exact(self):
        r = redis.Redis(port=self.gate.port, socket_timeout=60)
        for size in (1 << 20, 64 << 20):
            value = os.urandom(size)
            self.assertTrue(r.set("big:%d" % size, value))
            self.assertEqual(r.get("big:%d" % size), value)
            self.assertEqual(r.strlen("big:%d" % size), size)

    def test_redis_py_pipeline_without_transaction(self):
        r = redis.Redis(port=self.gate.port)
        p = r.pipeline(transaction=False)
        for i in range(2000):
            p.set("k%d" % i, "v%d" % i)
            p.get("k%d" % i)
        out = p.execute()
        self.assertEqual(out[0::2], [True] * 2000)
        self.assertEqual(out[1::2], [("v%d" % i).encode() for i in range(2000)])

    def test_redis_cli_and_inline_commands(self):
        out = subprocess.run(["redis-cli", "-p", str(self.gate.port), "SET", "cli", "hello world"],
                             capture_output=True, text=True, timeout=10)
        self.assertEqual(out.stdout.strip(), "OK")
        c = self.gate.client()
        c.send(b'PING\r\n\r\nECHO "a b\\x41"\nGET cli\r\n')
        self.assertEqual(c.read(), "PONG")
        self.assertEqual(c.read(), b"a bA")
        self.assertEqual(c.read(), b"hello world")

    def test_redis_benchmark_runs_without_errors(self):
        out = subprocess.run(["redis-benchmark", "-p", str(self.gate.port), "-n", "20000", "-c", "20",
                              "-P", "8", "-t", "set,get,incr,lpush,lrange_100", "-q"],
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertNotIn("ERR", out.stdout + out.stderr)
        self.assertIn("requests per second", out.stdout)

    def test_errors_from_redis_reach_the_client_unchanged(self):
        c = self.gate.client()
        self.assertTrue(c.call("NOSUCHCOMMAND", "x").startswith("ERR unknown command"))
        c.call("SET", "s", "x")
        self.assertTrue(c.call("INCR", "s").startswith("ERR value is not an integer"))

    def test_quit_answers_ok_and_closes(self):
        c = self.gate.client()
        c.send(encode("SET", "q", "1") + encode("QUIT"))
        self.assertEqual(c.read_all_until_closed(), b"+OK\r\n+OK\r\n")


class Sessions(ProxyTestCase):
    """Commands that change connection state run on a connection of their own."""

    def test_multi_exec_is_atomic_and_not_mixed_with_other_clients(self):
        r = redis.Redis(port=self.gate.port)
        other = redis.Redis(port=self.gate.port)
        p = r.pipeline(transaction=True)
        p.set("tx", "1")
        other.set("tx", "other")  # another client in between must not join the transaction
        p.incr("tx")
        self.assertEqual(p.execute(), [True, 2])
        self.assertEqual(other.get("tx"), b"2")

    def test_watch_conflict_makes_exec_return_nil(self):
        r = redis.Redis(port=self.gate.port)
        r.set("w", "0")
        with r.pipeline() as p:
            p.watch("w")
            redis.Redis(port=self.gate.port).set("w", "changed")
            p.multi()
            p.set("w", "mine")
            with self.assertRaises(redis.WatchError):
                p.execute()
        self.assertEqual(r.get("w"), b"changed")

    def test_blpop_is_woken_by_another_client(self):
        r = redis.Redis(port=self.gate.port)
        result = []
        t = threading.Thread(target=lambda: result.append(r.blpop("queue", timeout=10)))
        t.start()
        # Shared connections stay usable while a client blocks.
        other = redis.Redis(port=self.gate.port)
        for _ in range(100):
            other.ping()
        other.rpush("queue", "job")
        t.join(15)
        self.assertEqual(result, [(b"queue", b"job")])

    def test_pubsub_messages_are_delivered(self):
        r = redis.Redis(port=self.gate.port)
        ps = r.pubsub()
        ps.subscribe("news")
        self.assertEqual(ps.get_message(timeout=5)["type"], "subscribe")
        redis.Redis(port=self.gate.port).publish("news", "hello")
        msg = ps.get_message(timeout=5)
        self.assertEqual((msg["type"], msg["data"]), ("message", b"hello"))
        ps.close()

    def test_select_is_isolated_per_client(self):
        a = redis.Redis(port=self.gate.port, db=1)
        b = redis.Redis(port=self.gate.port, db=0)
        a.set("db", "one")
        b.set("db", "zero")
        self.assertEqual(a.get("db"), b"one")
        self.assertEqual(b.get("db"), b"zero")

    def test_session_command_after_a_pipeline_keeps_order(self):
        c = self.gate.client()
        c.send(b"".join(encode("INCR", "order") for _ in range(50)) + encode("MULTI") +
               encode("INCR", "order") + encode("EXEC"))
        got = [c.read() for _ in range(53)]
        self.assertEqual(got[:50], list(range(1, 51)))
        self.assertEqual(got[50:], ["OK", "QUEUED", [51]])


if __name__ == "__main__":
    main()
