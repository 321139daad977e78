"""One client never hurts another (issue 11): replies Redis sends more than once per
request never reach a shared connection, and an error respgate gives a command
queued in MULTI aborts the transaction as Redis would."""
import socket
import threading
import time
import unittest

from harness import ProxyTestCase, RespError, encode, main


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


if __name__ == "__main__":
    main()
