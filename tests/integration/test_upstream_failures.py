"""Upstream failures: errors, never hangs; in-flight requests answered with an
error; reconnection at once after a drop and with backoff while Redis is down;
requests that find no master wait for it up to failover.hold_ms."""
import threading
import time
import unittest

import redis

from harness import Harness, ProxyTestCase, RespError, encode, main, wait_until


class Load:
    """Clients, each on one connection, doing INCR and recording every reply."""

    def __init__(self, gate, clients=8):
        self.gate, self.stop = gate, threading.Event()
        self.ok, self.errors, self.closed, self.hung = 0, [], [], []
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(clients)]
        for t in self.threads:
            t.start()

    def run(self, i):
        c = self.gate.client(timeout=5)
        while not self.stop.is_set():
            try:
                reply = c.call("INCR", "load:%d" % i)
            except TimeoutError:
                self.hung.append(i)
                return
            except Exception as e:  # noqa: BLE001
                self.closed.append((i, repr(e)))
                return
            if isinstance(reply, RespError):
                self.errors.append(str(reply))
                time.sleep(0.01)
            else:
                self.ok += 1

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join()


def is_unavailable(e):
    return e.startswith("ERR upstream") or e.startswith("TRYAGAIN upstream unavailable")


class UpstreamFailures(ProxyTestCase):
    respgate_options = {"failover": {"hold_ms": 300}}

    def test_redis_killed_and_restarted_under_load(self):
        load = Load(self.gate)
        try:
            wait_until(lambda: load.ok > 200, what="load running")
            self.redis.kill()
            wait_until(lambda: len(load.errors) > 20, what="errors while Redis is down")
            ok_while_down = load.ok
            self.redis.start()
            wait_until(lambda: load.ok > ok_while_down + 200, timeout=10,
                       what="service recovered after restart")
        finally:
            load.finish()
        self.assertEqual(load.closed, [])  # no client connection was closed by respgate
        self.assertEqual(load.hung, [])
        for e in load.errors:
            self.assertTrue(is_unavailable(e), e)

    def test_upstream_down_gives_a_prompt_error_not_a_hang(self):
        c = self.gate.client(timeout=5)
        self.assertEqual(c.call("PING"), "PONG")  # respgate knows the master
        self.redis.kill()
        wait_until(lambda: isinstance(c.call("PING"), RespError), what="an error reply")
        t0 = time.monotonic()
        reply = c.call("GET", "x")
        self.assertLess(time.monotonic() - t0, 1.0)  # hold_ms is 300
        self.assertTrue(reply.startswith("TRYAGAIN upstream unavailable"), reply)
        self.assertIn("failover.hold_ms (300 ms)", reply)
        self.assertIn("127.0.0.1:%d" % self.redis.port, reply)
        # A pipeline behind a request that timed out fails at once, not a hold each.
        t0 = time.monotonic()
        c.send(b"".join(encode("INCR", "x") for _ in range(20)))
        replies = [c.read() for _ in range(20)]
        self.assertLess(time.monotonic() - t0, 1.5)
        self.assertTrue(all(r.startswith("TRYAGAIN") for r in replies), replies[:3])

    def test_killed_upstream_connections_are_reestablished_at_once(self):
        direct = redis.Redis(port=self.redis.port)
        c = self.gate.client()
        self.assertEqual(c.call("SET", "k", "v"), "OK")
        killed = direct.client_kill_filter(_type="normal", skipme=True)
        self.assertGreaterEqual(killed, 1)
        # The connection may be re-established between the kill and our next command,
        # or the next command may see the error; after that, every command works.
        first = c.call("GET", "k")
        if isinstance(first, RespError):
            self.assertTrue(is_unavailable(first), first)
        else:
            self.assertEqual(first, b"v")
        t0 = time.monotonic()
        wait_until(lambda: c.call("GET", "k") == b"v", timeout=2, what="reconnection")
        self.assertLess(time.monotonic() - t0, 1.0)

    def test_requests_in_flight_when_the_connection_drops_get_an_error_each(self):
        c = self.gate.client(timeout=10)
        script = ("local t0 = redis.call('TIME') "
                  "while true do local t = redis.call('TIME') "
                  "if (t[1] - t0[1]) * 1000000 + (t[2] - t0[2]) > 500000 then break end end "
                  "return 1")
        # One slow script, then more commands queued behind it on the same connection.
        c.send(encode("EVAL", script, 0) + b"".join(encode("INCR", "inflight") for _ in range(5)))
        time.sleep(0.2)
        self.redis.kill()
        replies = [c.read() for _ in range(6)]
        self.assertTrue(replies[0].startswith("ERR upstream connection lost"), replies[0])
        for r in replies[1:]:  # on a slow machine (valgrind) some were not sent yet: held
            self.assertIsInstance(r, RespError)
            self.assertTrue(is_unavailable(r), r)

    def test_a_session_whose_connection_dies_ends_with_the_connection_closed(self):
        c = self.gate.client()
        c.send(encode("SUBSCRIBE", "chan"))
        self.assertEqual(c.read(), [b"subscribe", b"chan", 1])
        self.redis.kill()
        self.assertEqual(c.read_all_until_closed(), b"")
        self.redis.start()
        wait_until(lambda: self.gate.client().call("PING") == "PONG", what="recovery")


class SessionFailures(ProxyTestCase):

    def test_a_transaction_whose_connection_dies_is_aborted_and_the_client_stays(self):
        c = self.gate.client()
        self.assertEqual(c.call("MULTI"), "OK")
        self.assertEqual(c.call("INCR", "t"), "QUEUED")
        self.redis.kill()
        self.redis.start()
        wait_until(lambda: self.redis.ping(), what="restart")
        # Commands the client means to queue must not run outside the transaction.
        time.sleep(0.3)
        reply = c.call("INCR", "t")
        self.assertTrue(str(reply).startswith("ERR transaction aborted"), reply)
        self.assertTrue(c.call("EXEC").startswith("EXECABORT"))
        self.assertIsNone(redis.Redis(port=self.redis.port).get("t"))
        wait_until(lambda: c.call("PING") == "PONG", what="the same client working again")

    def test_a_watch_that_dies_with_its_connection_makes_exec_fail(self):
        c = self.gate.client()
        self.assertEqual(c.call("WATCH", "w"), "OK")
        self.redis.kill()
        self.redis.start()
        wait_until(lambda: self.redis.ping(), what="restart")
        time.sleep(0.3)
        wait_until(lambda: c.call("GET", "w") is None, what="the client reading again")
        self.assertEqual(c.call("MULTI"), "OK")
        self.assertEqual(c.call("SET", "w", "mine"), "QUEUED")
        self.assertIsNone(c.call("EXEC"), "EXEC after a lost WATCH must not run")
        self.assertIsNone(redis.Redis(port=self.redis.port).get("w"))

    def test_a_selected_database_is_never_silently_dropped(self):
        c = self.gate.client()
        self.assertEqual(c.call("SELECT", "3"), "OK")
        self.assertEqual(c.call("SET", "k", "db3"), "OK")
        self.redis.kill()
        # The client cannot be carried to database 3 on another connection: it is closed.
        self.assertEqual(c.read_all_until_closed(), b"")


class HeldWhileTheMasterIsAway(ProxyTestCase):
    respgate_options = {"failover": {"hold_ms": 15000}}

    def test_requests_wait_for_a_master_that_comes_back_and_none_fails(self):
        c = self.gate.client(timeout=20)
        self.assertEqual(c.call("SET", "k", "before"), "OK")
        self.redis.kill()
        wait_until(lambda: "unreachable" in self.gate.output(), what="the probe noticing")
        # A pipeline of writes and reads: it waits, in order, and none of it fails.
        c.send(encode("INCR", "n") + encode("GET", "k") + encode("INCR", "n"))
        other = self.gate.client(timeout=20)
        other.send(encode("SET", "o", "after"))
        time.sleep(0.5)
        self.redis.start()
        self.assertEqual([c.read() for _ in range(3)], [1, None, 2])  # no persistence: empty
        self.assertEqual(other.read(), "OK")

    def test_held_requests_are_bounded_by_max_held_requests(self):
        self.gate.stop()
        self.h.gates.remove(self.gate)
        gate = self.h.respgate(self.redis.port, threads=1,
                               failover={"hold_ms": 5000, "max_held_requests": 2})
        self.redis.kill()
        wait_until(lambda: "unreachable" in gate.output(), what="the probe noticing")
        held = [gate.client(timeout=10) for _ in range(2)]
        for c in held:
            c.send(encode("SET", "k", "v"))
        time.sleep(0.2)
        t0 = time.monotonic()
        reply = gate.client().call("SET", "k", "v")
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertTrue(reply.startswith("TRYAGAIN upstream unavailable: too many requests"), reply)
        self.redis.start()
        self.assertEqual([c.read() for c in held], ["OK", "OK"])


class StartsWithoutUpstream(unittest.TestCase):

    def test_respgate_starts_while_redis_is_down_and_serves_once_it_is_up(self):
        h = Harness()
        try:
            r = h.redis()
            r.kill()
            gate = h.respgate(r.port, failover={"hold_ms": 200})
            c = gate.client()
            self.assertTrue(c.call("PING").startswith("TRYAGAIN upstream unavailable"))
            r.start()
            wait_until(lambda: c.call("PING") == "PONG", timeout=5, what="the first connection")
        finally:
            h.close()


if __name__ == "__main__":
    main()
