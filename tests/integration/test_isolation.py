"""One client never hurts another (issue 11): replies Redis sends more than once per
request never reach a shared connection, and an error respgate gives a command
queued in MULTI aborts the transaction as Redis would."""
import os
import socket
import threading
import time
import unittest

from harness import (ConnectionClosed, Harness, ProxyTestCase, RespError, encode, main,
                     wait_until)


def unsubscribe_replies(conn, n):
    return [conn.read() for _ in range(n)]


class UnsubscribeOutsidePubSub(ProxyTestCase):

    def test_fifty_channels_get_fifty_replies_and_nobody_elses_shift(self):
        """UNSUBSCRIBE ch1..ch50 outside pub/sub: Redis answers 50 times. Eight
        clients pipelining GETs beside it must each get exactly their own values."""
        seed = self.redis.client()
        for i in range(8):
            seed.call("SET", "iso:%d" % i, "value-%d" % i)
        channels = ["ch%d" % k for k in range(1, 51)]
        direct = self.redis.client()
        direct.send(encode("UNSUBSCRIBE", *channels))
        expected = unsubscribe_replies(direct, 50)

        wrong = []

        def getter(i):
            c = self.gate.client()
            for _ in range(20):
                c.send(encode("GET", "iso:%d" % i) * 100)
                for _ in range(100):
                    r = c.read()
                    if r != b"value-%d" % i:
                        wrong.append((i, r))
            c.close()

        threads = [threading.Thread(target=getter, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        u = self.gate.client()
        for _ in range(20):
            u.send(encode("UNSUBSCRIBE", *channels))
            self.assertEqual(unsubscribe_replies(u, 50), expected)
            self.assertEqual(u.call("PING"), "PONG")  # nothing extra was left behind
        for t in threads:
            t.join()
        self.assertEqual(wrong[:5], [])

    def test_no_channels_and_the_other_two_families_answer_as_redis_does(self):
        direct, c = self.redis.client(), self.gate.client()
        for cmd in (["UNSUBSCRIBE"], ["PUNSUBSCRIBE"], ["PUNSUBSCRIBE", "a*", "b*"],
                    ["SUNSUBSCRIBE", "s1"]):
            n = max(1, len(cmd) - 1)
            direct.send(encode(*cmd))
            c.send(encode(*cmd))
            with self.subTest(cmd=cmd):
                self.assertEqual(unsubscribe_replies(c, n), unsubscribe_replies(direct, n))
                self.assertEqual(c.call("PING"), "PONG")


class RefusedInsideMulti(ProxyTestCase):
    respgate_options = {"deny_commands": ["flushall", "shutdown"]}

    def test_a_denied_command_aborts_exec_like_a_rejected_one(self):
        c = self.gate.client()
        self.assertEqual(c.call("MULTI"), "OK")
        self.assertEqual(c.call("SET", "txk", "1"), "QUEUED")
        self.assertTrue(c.call("SHUTDOWN").startswith("ERR command 'shutdown' is not allowed"))
        r = c.call("EXEC")
        self.assertIsInstance(r, RespError)
        self.assertTrue(r.startswith("EXECABORT"), r)
        self.assertIsNone(c.call("GET", "txk"))
        self.assertIsNone(self.redis.client().call("GET", "txk"))
        # The next transaction runs normally.
        self.assertEqual(c.call("MULTI"), "OK")
        self.assertEqual(c.call("SET", "txk", "2"), "QUEUED")
        self.assertEqual(c.call("EXEC"), ["OK"])
        self.assertEqual(c.call("GET", "txk"), b"2")

    def test_discard_after_a_denied_command_leaves_nothing_behind(self):
        c = self.gate.client()
        c.call("MULTI")
        c.call("SET", "txd", "1")
        c.call("FLUSHALL")
        self.assertEqual(c.call("DISCARD"), "OK")
        c.call("MULTI")
        c.call("SET", "txd", "2")
        self.assertEqual(c.call("EXEC"), ["OK"])


class ProtocolErrorLinger(ProxyTestCase):

    def closed_after(self, chunk, pause):
        """Sends a malformed command, reads the error, then keeps sending chunk every
        pause seconds; returns how long until respgate closed the connection."""
        s = socket.create_connection(("127.0.0.1", self.gate.port), timeout=5)
        s.sendall(b"*1\r\n:1\r\n")
        self.assertTrue(s.recv(4096).startswith(b"-ERR Protocol error"))
        start = time.monotonic()
        try:
            while time.monotonic() - start < 6:
                s.sendall(chunk)
                time.sleep(pause)
        except OSError:  # reset or broken pipe: closed
            pass
        s.close()
        return time.monotonic() - start

    def test_a_client_that_keeps_sending_is_closed_within_the_linger(self):
        self.assertLess(self.closed_after(b"x" * 100, 0.05), 3.0)

    def test_a_client_that_floods_after_the_error_is_closed_at_once(self):
        self.assertLess(self.closed_after(b"x" * 65536, 0.0), 1.0)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def write_then_read(port, payload, expect_bytes, timeout=60, lines=None, pause=0.0):
    """Writes payload whole before reading anything (a mass insert), then reads
    until expect_bytes (or that many CRLF-ended lines) arrived or the connection
    closed. Returns the bytes read, or None if the write never completed (respgate
    stopped reading: a deadlock)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    done = threading.Event()

    def writer():
        try:
            s.sendall(payload)
        except OSError:
            pass
        done.set()

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    if not done.wait(timeout):
        s.close()
        return None
    time.sleep(pause)  # a client that does not read for a while
    got = bytearray()
    seen = 0
    try:
        while len(got) < expect_bytes and (lines is None or seen < lines):
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            seen += chunk.count(b"\n")
            got += chunk
    except OSError:
        pass
    s.close()
    return bytes(got)


class WriteEverythingThenRead(ProxyTestCase):

    def test_a_pipeline_written_before_any_read_completes(self):
        """300,000 GETs of a 100-byte value written before any read: 33 MB of replies,
        more than the kernel's buffers and the old 8 MiB pause, under the 64 MiB
        output limit. Redis answers them all; so must respgate."""
        n, value = 300000, b"v" * 100
        self.redis.client().call("SET", "mass", value)
        got = write_then_read(self.gate.port, encode("GET", "mass") * n, 1 << 40, timeout=120,
                              lines=2 * n)
        self.assertIsNotNone(got, "respgate stopped reading before the client read: deadlock")
        self.assertEqual(len(got), n * len(b"$100\r\n" + value + b"\r\n"))


class OutputLimit(ProxyTestCase):
    respgate_options = {"limits": {"client_output_limit_bytes": 4 << 20}}

    def setUp(self):
        # ASan keeps freed memory in quarantine (256 MB by default): RSS would say
        # nothing about what respgate holds. A small quarantine makes it honest.
        saved = os.environ.get("ASAN_OPTIONS")
        os.environ["ASAN_OPTIONS"] = ("detect_leaks=1:abort_on_error=0:halt_on_error=1:"
                                      "quarantine_size_mb=8")
        try:
            super().setUp()
        finally:
            if saved is None:
                del os.environ["ASAN_OPTIONS"]
            else:
                os.environ["ASAN_OPTIONS"] = saved

    def test_a_client_that_never_reads_its_own_error_replies_is_closed(self):
        """DEBUG is denied: each one gets a 72-byte error made here. 20 MB of them
        unread would be 200 MB of replies; the client is closed at 4 MiB."""
        before = rss_kb(self.gate.proc.pid)
        got = write_then_read(self.gate.port, b"DEBUG\r\n" * (3 << 20), 1 << 40, timeout=60)
        self.assertIsNotNone(got)
        self.assertLess(len(got), 8 << 20)
        grown = rss_kb(self.gate.proc.pid) - before
        self.assertLess(grown, 150 * 1024, "respgate grew by %d KiB" % grown)
        self.assertIn("over limits.client_output_limit_bytes", self.gate.output())
        self.assertEqual(self.gate.client().call("PING"), "PONG")

    def test_large_values_pipelined_unread_close_the_client_not_the_process(self):
        self.redis.client().call("SET", "big", "x" * (1 << 20))
        before = rss_kb(self.gate.proc.pid)
        got = write_then_read(self.gate.port, encode("GET", "big") * 200, 1 << 40, timeout=60,
                              pause=3.0)
        self.assertIsNotNone(got)
        self.assertLess(len(got), 200 << 20)
        grown = rss_kb(self.gate.proc.pid) - before
        self.assertLess(grown, 150 * 1024, "respgate grew by %d KiB" % grown)
        metrics = self.metrics()
        self.assertIn('respgate_clients_closed_total{reason="output_limit"}', metrics)
        self.assertEqual(self.gate.client().call("GET", "big"), b"x" * (1 << 20))

    def metrics(self):
        import json
        import urllib.request
        with open(self.gate.config_path) as f:
            admin = json.load(f)["admin"]["listen"]
        with urllib.request.urlopen("http://%s/metrics" % admin, timeout=5) as r:
            return r.read().decode()


class AuthFirst(ProxyTestCase):
    respgate_options = {"auth": {"password": "s3cret"}}

    def test_before_auth_a_client_cannot_make_respgate_buffer_much(self):
        s = socket.create_connection(("127.0.0.1", self.gate.port), timeout=10)
        s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1000000\r\n")
        try:
            s.sendall(b"x" * 200000)
        except OSError:
            pass
        got = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
        except OSError:
            pass
        self.assertIn(b"query buffer limit exceeded", got)


class MaxClients(ProxyTestCase):
    respgate_options = {"limits": {"max_clients": 5}}

    def test_a_client_over_the_limit_gets_the_error_even_if_it_speaks_first(self):
        # The harness' own probe connections count until respgate has seen them go.
        wait_until(lambda: "\nrespgate_client_connections 0\n" in OutputLimit.metrics(self),
                   what="no client connected")
        held = [self.gate.client() for _ in range(5)]
        for c in held:
            self.assertEqual(c.call("PING"), "PONG")
        # Many at once, each speaking before respgate accepted it, as a burst of
        # reconnecting clients does.
        socks = []
        for _ in range(60):
            s = socket.create_connection(("127.0.0.1", self.gate.port), timeout=5)
            s.sendall(encode("PING") * 50)
            socks.append(s)
        for s in socks:
            got = b""
            try:
                while not got.endswith(b"\r\n"):
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    got += chunk
            except ConnectionResetError:
                pass
            s.close()
            self.assertEqual(got, b"-ERR max number of clients reached\r\n")
        for c in held:
            self.assertEqual(c.call("PING"), "PONG")


class MaxClientsPastTheDescriptors(unittest.TestCase):
    """max_clients (10,000 by default) above what the open-files limit allows: the
    clients past the descriptors got a reset or waited in the backlog (issue 11,
    item 11: the 10,001st of 10,000); each must get Redis' error instead, and the
    others go on."""

    def test_clients_past_the_fd_limit_get_the_error(self):
        import harness
        h = Harness()
        try:
            wrapper = os.path.join(h.dir, "respgate-400-fds")
            with open(wrapper, "w") as f:
                f.write("#!/bin/sh\nulimit -n 400\nexec %s \"$@\"\n" % harness.RESPGATE)
            os.chmod(wrapper, 0o755)
            real, harness.RESPGATE = harness.RESPGATE, wrapper
            try:
                gate = h.respgate(h.redis().port)
            finally:
                harness.RESPGATE = real
            socks = [socket.create_connection(("127.0.0.1", gate.port), timeout=5)
                     for _ in range(600)]
            answers = {}
            for s in socks:
                s.sendall(encode("PING"))
                try:
                    got = s.recv(100)
                except OSError as e:  # a reset, or nothing at all within 5 s
                    got = repr(e)
                answers[got] = answers.get(got, 0) + 1
            self.assertEqual(set(answers), {b"+PONG\r\n",
                                            b"-ERR max number of clients reached\r\n"},
                             answers)
            self.assertGreater(answers[b"-ERR max number of clients reached\r\n"], 100)
            for s in socks:
                s.close()
            c = gate.client()
            wait_until(lambda: c.call("PING") == "PONG", what="respgate serving again")
            # As Redis lowers maxclients to its descriptors: some are kept aside for
            # respgate's own connections, then 3/4 of the rest.
            self.assertIn("past what it leaves room for", gate.output())
        finally:
            h.close()


class IdleAfterABackedUpWrite(ProxyTestCase):
    """A write that filled the kernel's buffer (a large reply, a slow reader) left the
    socket's write event armed once all was out: the worker spun on EPOLLOUT at 100%
    CPU until the connection closed (seen through Redis' own test suite)."""

    def test_no_busy_loop_once_the_output_is_out(self):
        def cpu_seconds():
            with open("/proc/%d/stat" % self.gate.proc.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        c = self.gate.client(timeout=30)
        self.assertEqual(c.call("SET", "big", "x" * (20 << 20)), "OK")
        c.send(encode("GET", "big"))
        time.sleep(0.5)  # not reading: respgate's output to this client backs up
        self.assertEqual(len(c.read()), 20 << 20)
        time.sleep(0.3)
        before = cpu_seconds()
        time.sleep(2)
        self.assertLess(cpu_seconds() - before, 0.5, "respgate busy while nothing happens")
        self.assertEqual(c.call("PING"), "PONG")


class StaleReplica(unittest.TestCase):
    """A replica that stops applying writes stays close in bytes when the master
    writes little: routing.max_lag_ms bounds how old the data it serves may be."""

    def test_a_paused_replica_stops_serving_reads_within_max_lag_ms(self):
        h = Harness()
        try:
            m = h.redis()
            r = h.replica_of(m)
            g = h.respgate(m.port, regions=[{"name": "local", "priority": 1, "nodes": [
                "127.0.0.1:%d" % m.port, "127.0.0.1:%d" % r.port]}],
                routing={"max_lag_ms": 1000})
            c = g.client()
            c.call("SET", "lagk", "old")
            wait_until(lambda: r.client().call("GET", "lagk") == b"old", what="replicated")
            r.client().call("CLIENT", "PAUSE", "4000", "WRITE")  # stops applying too
            t0 = time.monotonic()
            c.call("SET", "lagk", "new")
            reader, stale = g.client(), []
            while time.monotonic() - t0 < 3.0:
                if reader.call("GET", "lagk") != b"new":
                    stale.append(time.monotonic() - t0)
                time.sleep(0.01)
            # Stale at first (the test would prove nothing otherwise), then no longer
            # than one probe interval (100 ms) and a round trip past the bound.
            self.assertTrue(stale, "the paused replica served no stale read")
            self.assertLess(stale[-1], 1.5, "stale reads until %.2f s" % stale[-1])
        finally:
            h.close()


class IdleTimeout(ProxyTestCase):
    respgate_options = {"limits": {"client_idle_timeout_ms": 1000}}

    def test_an_idle_client_is_closed_a_blocked_or_subscribed_one_is_not(self):
        idle, blocked, sub = self.gate.client(), self.gate.client(), self.gate.client()
        self.assertEqual(idle.call("PING"), "PONG")
        blocked.send(encode("BLPOP", "never-pushed", "4"))
        sub.send(encode("SUBSCRIBE", "quiet"))
        self.assertEqual(sub.read(), [b"subscribe", b"quiet", 1])
        time.sleep(3.0)
        with self.assertRaises((ConnectionClosed, OSError)):
            idle.call("PING")
        self.assertIsNone(blocked.read())  # BLPOP timed out after 4 s: still connected
        self.assertEqual(blocked.call("PING"), "PONG")
        self.redis.client().call("PUBLISH", "quiet", "hi")
        self.assertEqual(sub.read(), [b"message", b"quiet", b"hi"])


def read_for(sock, seconds):
    """Everything that arrives within seconds."""
    sock.settimeout(0.2)
    got, end = b"", time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            break
        got += chunk
    return got


class TunnelOrder(ProxyTestCase):
    """Replies respgate makes itself keep their place on a tunnel too."""

    def test_a_denied_command_after_hello_3_is_answered_in_order(self):
        s = socket.create_connection(("127.0.0.1", self.gate.port), timeout=5)
        s.sendall(encode("HELLO", "3") + encode("SET", "tk", "tv") + encode("DEBUG", "HELP") +
                  encode("GET", "tk"))
        got = read_for(s, 1.5)
        s.close()
        ok, denied, value = got.find(b"+OK\r\n"), got.find(b"not allowed"), got.find(b"tv\r\n")
        self.assertTrue(0 < ok < denied < value, got)

    def test_client_reply_off_silences_respgate_s_own_replies_too(self):
        s = socket.create_connection(("127.0.0.1", self.gate.port), timeout=5)
        s.sendall(encode("CLIENT", "REPLY", "OFF") + encode("DEBUG", "HELP") +
                  encode("CLIENT", "REPLY", "ON") + encode("PING"))
        got = read_for(s, 1.5)
        s.close()
        self.assertEqual(got, b"+OK\r\n+PONG\r\n")


BUSY_SCRIPT = """
local deadline = tonumber(redis.call('TIME')[1]) + 20
while tonumber(redis.call('TIME')[1]) < deadline do end
return 1
"""


class BusyScript(ProxyTestCase):
    """A long script must not take its shared connection's other clients with it."""
    respgate_options = {"upstream": {"connections_per_node": 1}}

    def test_clients_that_shared_the_script_s_connection_get_busy_at_once(self):
        """Found with Redis' own suite (the Timedout script tests): clients whose
        connection to the master was the script's sent their next request behind it
        and waited for the script to end; Redis answers them -BUSY. Now they move to
        another connection while a script of another client's runs there."""
        self.gate.stop()
        self.gate = self.h.respgate(self.redis.port, threads=1,
                                    upstream={"connections_per_node": 2})
        self.redis.client().call("CONFIG", "SET", "busy-reply-threshold", "100")
        clients = [self.gate.client(timeout=15) for _ in range(8)]
        for c in clients:
            self.assertEqual(c.call("PING"), "PONG")  # each has its shared connection
        runner = self.gate.client(timeout=30)
        runner.send(encode("EVAL", "local t = redis.call('TIME')[1] + 2 "
                           "while tonumber(redis.call('TIME')[1]) < t do end return 1", "0"))
        time.sleep(0.3)
        for c in clients:
            c.send(encode("PING"))
        replies = [c.read() for c in clients]
        self.assertEqual([r[:4] for r in replies], ["BUSY"] * 8, replies)
        self.assertEqual(runner.read(), 1)

    def test_script_kill_reaches_redis_and_others_see_busy_not_a_hang(self):
        self.redis.client().call("CONFIG", "SET", "busy-reply-threshold", "200")
        runner = self.gate.client(timeout=30)
        runner.send(encode("EVAL", BUSY_SCRIPT, "0"))
        time.sleep(1.5)  # the script runs; respgate's one shared connection is stalled
        others = []

        def other(i):
            c = self.gate.client(timeout=15)
            t = time.monotonic()
            try:
                others.append((c.call("GET", "k%d" % i), time.monotonic() - t))
            except OSError as e:
                others.append((e, time.monotonic() - t))

        threads = [threading.Thread(target=other, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for reply, took in others:
            self.assertIsInstance(reply, RespError, reply)
            self.assertTrue(reply.startswith("BUSY"), reply)
            self.assertLess(took, 3.0)
        killer = self.gate.client(timeout=10)
        t = time.monotonic()
        self.assertEqual(killer.call("SCRIPT", "KILL"), "OK")
        self.assertLess(time.monotonic() - t, 3.0)
        r = runner.read()
        self.assertIsInstance(r, RespError)
        self.assertIn("killed", r.lower())
        self.assertEqual(runner.call("PING"), "PONG")


if __name__ == "__main__":
    main()
