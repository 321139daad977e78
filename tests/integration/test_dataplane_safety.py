"""Data-plane safety: sequences that once freed memory still in use, left a client
without an answer, leaked a request, let a -READONLY reach an app, said ready
before writes worked, or closed a held client without a word. Each test drives
one of them and asserts what a client must see; the harness fails any test whose
respgate wrote a sanitizer report (ASan build), and each test also stops its
respgate itself so a report at exit (LeakSanitizer) shows in that test."""
import os
import resource
import signal
import socket
import threading
import time
import unittest

import adminhttp
from harness import (ConnectionClosed, Harness, ProxyTestCase, Raw, RespError, encode, main,
                     wait_until)


def assert_alive(test, gate):
    """respgate is still running (a sanitizer report with halt_on_error kills it)."""
    if gate.proc.poll() is not None:
        test.fail("respgate died (exit %s):\n%s" % (gate.proc.returncode, gate.output()[-6000:]))


def assert_serves(test, gate):
    """respgate still answers a new client (a crash may take a moment to show)."""
    assert_alive(test, gate)
    try:
        c = gate.client(timeout=5)
        try:
            reply = c.call("PING")
        finally:
            c.close()
    except (OSError, ConnectionClosed) as e:
        try:
            gate.proc.wait(5)
        except Exception:  # noqa: BLE001
            pass
        assert_alive(test, gate)
        raise AssertionError("respgate did not answer a new client's PING: %r" % e)
    test.assertEqual(reply, "PONG")


def drain_until_closed(sock, timeout=10.0):
    """Reads and drops everything until the peer closes; fails if it never does."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not sock.recv(1 << 20):
                return
        except ConnectionResetError:
            return
        except socket.timeout:
            break
    raise AssertionError("the connection stayed open for %.0fs" % timeout)


def held_requests(gate):
    series = adminhttp.parse_metrics(adminhttp.call(adminhttp.admin_port(gate), "/metrics")[1])
    return adminhttp.value(series, "respgate_held_requests") or 0


# --- A ---------------------------------------------------------------------------

class HttpLineBehindADeepTransaction(ProxyTestCase):
    """A: the client is freed (an HTTP line in its input) while the replies of its
    pinned connection are being read: the pinned connection must not be touched
    after it is destroyed."""

    def test_http_line_after_multi_and_3000_incr_in_one_write(self):
        for _ in range(3):
            bad = socket.create_connection(("127.0.0.1", self.gate.port), timeout=10)
            payload = encode("MULTI") + encode("INCR", "x") * 3000 + b"GET / HTTP/1.1\r\n"
            try:
                bad.sendall(payload)
                # Replies already due may come or not: only the close matters.
                drain_until_closed(bad)
            except (ConnectionResetError, BrokenPipeError):
                pass  # closed while we were still sending: closed all the same
            assert_alive(self, self.gate)
            bad.close()
            assert_serves(self, self.gate)
        self.gate.stop()  # a report at exit fails here, in this test


# --- B ---------------------------------------------------------------------------

class ManyTransactionsEndAtOnce(unittest.TestCase):
    """B: more sessions end at once than the idle pool keeps (16 per worker and
    node): the connections beyond it are closed, never while being read."""

    def run_clients(self, threads, clients, rounds):
        h = Harness()
        ok = False
        try:
            r = h.redis()
            gate = h.respgate(r.port, threads=threads)
            errors, committed = [], [0] * clients
            barrier = threading.Barrier(clients, timeout=30)
            lock = threading.Lock()

            def run(i):
                try:
                    c = gate.client(timeout=15)
                    for n in range(rounds):
                        if n < 2:
                            barrier.wait()  # everyone connected (then: done with round 0)
                        self.assertEqual(c.call("MULTI"), "OK")
                        self.assertEqual(c.call("SET", "k:%d" % i, "v%d" % n), "QUEUED")
                        self.assertEqual(c.call("INCR", "c"), "QUEUED")
                        if n < 2:
                            barrier.wait()  # all clients inside MULTI at once
                        reply = c.call("EXEC")
                        self.assertIsInstance(reply, list, reply)
                        self.assertEqual(len(reply), 2, reply)
                        self.assertEqual(reply[0], "OK")
                        self.assertIsInstance(reply[1], int, reply)
                        committed[i] += 1
                        self.assertEqual(c.call("GET", "k:%d" % i), b"v%d" % n)
                    c.close()
                except BaseException as e:  # noqa: BLE001
                    with lock:
                        errors.append("client %d: %r" % (i, e))
                    barrier.abort()

            ts = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(60)
            assert_alive(self, gate)
            self.assertEqual(errors[:5], [])
            self.assertEqual(sum(committed), clients * rounds)
            direct = r.client()
            self.assertEqual(direct.call("GET", "c"), str(sum(committed)).encode())
            gate.stop()
            ok = True
        finally:
            h.close(ok=ok)

    def test_one_thread_20_clients(self):
        self.run_clients(threads=1, clients=20, rounds=30)

    def test_two_threads_60_clients(self):
        self.run_clients(threads=2, clients=60, rounds=15)


# --- C ---------------------------------------------------------------------------

def lowest_free_fd(pid):
    used = {int(n) for n in os.listdir("/proc/%d/fd" % pid)}
    n = 0
    while n in used:
        n += 1
    return n


class PinnedConnectFailsAtOnce(ProxyTestCase):
    """C: a session connection whose socket() fails at once (no descriptor left):
    the command that asked for it is answered, and nothing leaks."""

    respgate_options = {"threads": 1}

    def test_multi_without_descriptors_is_answered(self):
        pid = self.gate.proc.pid
        c = self.gate.client(timeout=8)
        self.assertEqual(c.call("PING"), "PONG")  # accepted, its shared connection up
        self.assertEqual(c.call("SET", "k", "v"), "OK")
        soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        try:
            for _ in range(3):
                # No descriptor can be made any more: every number below the limit is in
                # use. (If respgate closed one meanwhile, MULTI gets it: try again.)
                resource.prlimit(pid, resource.RLIMIT_NOFILE, (lowest_free_fd(pid), hard))
                t0 = time.monotonic()
                try:
                    reply = c.call("MULTI")
                except (TimeoutError, socket.timeout):
                    self.fail("MULTI got no reply within 8 s when its connection could not "
                              "be opened")
                if reply != "OK":
                    break
                self.assertEqual(c.call("DISCARD"), "OK")
            self.assertLess(time.monotonic() - t0, 5.0)
            self.assertIsInstance(reply, RespError, reply)
            self.assertIn("upstream", reply.lower())
            # The connection still works: the next command is answered (whatever the
            # answer: the transaction never started).
            try:
                nxt = c.call("PING")
            except (TimeoutError, socket.timeout):
                self.fail("the command after the failed MULTI got no reply")
            self.assertIsNotNone(nxt)
            if isinstance(nxt, RespError):  # refused as part of a lost transaction: end it
                c.call("DISCARD")
        finally:
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
        # With descriptors back, sessions work again, on this client too.
        wait_until(lambda: c.call("MULTI") == "OK", timeout=5, what="MULTI working again")
        self.assertEqual(c.call("INCR", "n"), "QUEUED")
        self.assertEqual(c.call("EXEC"), [1])
        c.close()
        self.gate.stop()  # LeakSanitizer reports a leaked request here


# --- D ---------------------------------------------------------------------------

class LargeWriters:
    """Clients, each on one connection, SETting its own key to a 500-byte value
    that carries a sequence number."""

    def __init__(self, gate, clients=4):
        self.stop, self.errors, self.acked, self.last = threading.Event(), [], {}, {}
        self.failures = []
        self.threads = [threading.Thread(target=self.run, args=(gate, i)) for i in range(clients)]
        for t in self.threads:
            t.start()

    @staticmethod
    def value(i, n):
        head = b"%d:%d:" % (i, n)
        return head + b"x" * (500 - len(head))

    def run(self, gate, i):
        try:
            c = gate.client(timeout=20)
            n = 0
            while not self.stop.is_set():
                n += 1
                v = self.value(i, n)
                reply = c.call("SET", "big:%d" % i, v)
                if isinstance(reply, RespError):
                    self.errors.append(str(reply))
                elif reply == "OK":
                    self.acked[i] = self.acked.get(i, 0) + 1
                    self.last[i] = v
                else:
                    self.errors.append("unexpected %r" % (reply,))
        except Exception as e:  # noqa: BLE001
            self.failures.append("client %d: %r" % (i, e))

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join()


class ManualSwitchLargeWrites(unittest.TestCase):
    """D: without Sentinel, an operator swaps master and replica while clients
    write values too large for a request's inline copy: the demoted master's
    -READONLY must never reach them."""

    def setUp(self):
        self.h = Harness()
        try:
            self.a = self.h.redis()
            self.b = self.h.replica_of(self.a)
            self.gate = self.h.respgate(
                self.a.port, regions=[{"name": "local", "priority": 1, "nodes": [
                    "127.0.0.1:%d" % self.a.port, "127.0.0.1:%d" % self.b.port]}],
                failover={"hold_ms": 5000})
        except BaseException:
            self.h.close(ok=False)
            raise

    def tearDown(self):
        self.h.close()

    def test_readonly_never_reaches_a_client_writing_500_bytes(self):
        n = 4
        load = LargeWriters(self.gate, clients=n)
        try:
            wait_until(lambda: len(load.acked) == n and min(load.acked.values()) > 50,
                       what="writes flowing")
            a, b = self.b.client(), self.a.client()
            self.assertEqual(a.call("REPLICAOF", "NO", "ONE"), "OK")
            self.assertEqual(b.call("REPLICAOF", "127.0.0.1", str(self.b.port)), "OK")
            before = self.b.calls("set")
            wait_until(lambda: self.b.calls("set") > before + 200 or load.errors or load.failures,
                       timeout=15, what="writes on the new master")
            after = dict(load.acked)
            wait_until(lambda: load.errors or load.failures or
                       all(load.acked[i] > after[i] + 10 for i in range(n)),
                       timeout=15, what="every writer going on after the switch")
        finally:
            load.finish()
        self.assertEqual(load.failures, [])
        self.assertEqual([e for e in load.errors if e.startswith("READONLY")][:3], [])
        self.assertEqual(load.errors[:3], [])
        direct = self.b.client()
        for i in range(n):  # each client's last acknowledged SET is on the new master
            self.assertEqual(direct.call("GET", "big:%d" % i), load.last[i])
        self.gate.stop()


# --- F ---------------------------------------------------------------------------

class ReadyMeansWritable(ProxyTestCase):
    """F: /readyz says ready only when a write through respgate works at once, and
    a client held for a master gets an answer, not a bare close, on SIGTERM."""

    respgate_options = {"failover": {"hold_ms": 10000}}

    def readyz(self):
        try:
            return adminhttp.call(adminhttp.admin_port(self.gate), "/readyz", timeout=2)[0]
        except OSError:
            return None

    def test_ready_after_a_restart_means_a_write_succeeds_at_once(self):
        self.assertEqual(self.gate.client().call("SET", "k", "v"), "OK")
        wait_until(lambda: self.readyz() == 200, what="ready")
        self.redis.kill()
        wait_until(lambda: self.readyz() == 503, what="not ready once Redis is down")
        # Down long enough for the data plane's reconnects to back off (~1.5 s).
        time.sleep(1.8)
        self.redis.start()
        wait_until(lambda: self.readyz() == 200, timeout=10, interval=0.005,
                   what="ready again")
        c = Raw(self.gate.port, timeout=0.5)
        t0 = time.monotonic()
        try:
            reply = c.call("SET", "k", "after")
        except (TimeoutError, socket.timeout):
            reply = "no reply within %.1f s" % (time.monotonic() - t0)
        self.assertEqual(reply, "OK", "/readyz said 200 but a write did not succeed at once")
        c.close()

    def test_a_held_client_gets_an_error_on_sigterm_not_a_bare_close(self):
        self.assertEqual(self.gate.client().call("SET", "k", "v"), "OK")
        self.redis.kill()
        wait_until(lambda: self.readyz() == 503, what="not ready once Redis is down")
        c = self.gate.client(timeout=10)
        c.send(encode("SET", "k", "held"))
        wait_until(lambda: held_requests(self.gate) >= 1, what="the SET held for a master")
        self.gate.proc.send_signal(signal.SIGTERM)
        try:
            reply = c.read()
        except ConnectionClosed:
            self.fail("the held client's connection was closed without a reply")
        except (TimeoutError, socket.timeout):
            self.fail("the held client got no reply within 10 s of SIGTERM")
        self.assertIsInstance(reply, RespError, reply)
        self.assertTrue(reply.startswith(("TRYAGAIN", "ERR")), reply)
        self.assertEqual(c.read_all_until_closed(timeout=10), b"")
        self.gate.proc.wait(15)
        self.gate.stop()


# --- G ---------------------------------------------------------------------------

class InlineReset(ProxyTestCase):
    """G: RESET as an inline command right behind a session command in one write."""

    def check(self, first, expected_first):
        for i in range(200):
            c = self.gate.client(timeout=5)
            c.send(first + b"\r\nRESET\r\n")
            try:
                replies = [c.read(), c.read()]
            except (ConnectionClosed, OSError) as e:
                assert_alive(self, self.gate)
                raise AssertionError("round %d: %r" % (i, e))
            self.assertEqual(replies, [expected_first, "RESET"], "round %d" % i)
            c.close()
        assert_serves(self, self.gate)
        self.gate.stop()

    def test_inline_select_then_reset(self):
        self.check(b"SELECT 1", "OK")

    def test_inline_multi_then_reset(self):
        self.check(b"MULTI", "OK")


if __name__ == "__main__":
    main()
