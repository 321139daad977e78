"""A session connection goes back to the pool only as clean as it came (issue 11,
found by netfuzz): respgate follows what a client's commands leave on its connection
(MULTI, WATCH, SELECT, subscriptions) by what Redis really did, not by the command's
name, so a refused or never-run command does not make a dirty connection look clean.
Before the fix, "SELECT 1; SELECT 0 x" returned a connection in db 1 to the pool and
the next transaction of another client ran there; "SUBSCRIBE a; SUNSUBSCRIBE" one
still subscribed to a.

Each scenario runs through respgate (one thread: one pool) and on a direct
connection; the replies must match, and once the client has gone, every connection
respgate holds must be in db 0, in no transaction and subscribed to nothing."""
from harness import ProxyTestCase, encode, main, wait_until

C = encode

SCENARIOS = [
    ("shard unsubscribe leaves plain subscriptions", [C("SUBSCRIBE", "a"), C("SUNSUBSCRIBE")]),
    ("plain unsubscribe leaves shard subscriptions", [C("SSUBSCRIBE", "s"), C("UNSUBSCRIBE")]),
    ("pattern unsubscribe leaves shard subscriptions",
     [C("SSUBSCRIBE", "s"), C("PSUBSCRIBE", "p*"), C("PUNSUBSCRIBE")]),
    ("multi with an argument is no multi", [C("MULTI", "x"), C("SUNSUBSCRIBE", "", "")]),
    ("select with two arguments selects nothing", [C("SELECT", "1"), C("SELECT", "0", "x")]),
    ("a discarded select 0 never ran",
     [C("SELECT", "1"), C("MULTI"), C("SELECT", "0"), C("DISCARD")]),
    ("select 00 is refused", [C("SELECT", "1"), C("SELECT", "00")]),
    ("discard with an argument ends nothing", [C("MULTI"), C("DISCARD", "x")]),
    ("exec with an argument aborts the transaction", [C("MULTI"), C("EXEC", "x")]),
    ("discard without multi keeps the watch", [C("WATCH", "k"), C("DISCARD")]),
    ("unwatch with an argument keeps the watch", [C("WATCH", "k"), C("UNWATCH", "x")]),
    ("reset with an argument is refused", [C("SELECT", "2"), C("RESET", "x")]),
    ("script kill with an argument", [C("SCRIPT", "KILL", "x")]),
    ("client reply with no mode", [C("CLIENT", "REPLY")]),
    ("a select queued and run", [C("MULTI"), C("SELECT", "3"), C("EXEC")]),
    ("client setinfo as the server answers it (7.0: no such subcommand)",
     [C("CLIENT", "SETINFO", "lib-name", "x")]),
    ("a subscribe queued and run", [C("MULTI"), C("SUBSCRIBE", "a"), C("EXEC")]),
    ("a subscribe queued, run, then undone",
     [C("MULTI"), C("SUBSCRIBE", "a"), C("EXEC"), C("UNSUBSCRIBE")]),
]


def clean(line):
    f = dict(kv.split("=", 1) for kv in line.split(" ") if "=" in kv)
    return (f["db"], f["sub"], f["psub"], f.get("ssub", "0"), f["multi"], f["flags"]) == \
        ("0", "0", "0", "0", "-1", "N")


class SessionsReturnClean(ProxyTestCase):
    respgate_options = {"threads": 1}

    def dirty_connections(self, admin):
        listing = admin.call("CLIENT", "LIST").decode()
        return [line for line in listing.splitlines()
                if "cmd=client|list" not in line and not clean(line)]

    def test_every_scenario_answers_as_redis_and_leaves_the_pool_clean(self):
        admin = self.redis.client()
        for what, commands in SCENARIOS:
            with self.subTest(what):
                direct, c = self.redis.client(), self.gate.client()
                for cmd in commands:
                    direct.send(cmd)
                    c.send(cmd)
                    self.assertEqual(c.read(), direct.read(), cmd)
                # The connection answers as Redis does afterwards, and the client
                # leaves: its connection is closed or back in the pool, clean.
                self.assertEqual(c.call("PING"), direct.call("PING"))
                direct.close()
                c.close()
                wait_until(lambda: not self.dirty_connections(admin), timeout=5,
                           what="no dirty connection after: " + what)
                # Another client's transaction runs in db 0.
                t = self.gate.client()
                t.send(C("MULTI") + C("INCR", "pool:n") + C("EXEC"))
                self.assertEqual(t.read(), "OK")
                self.assertEqual(t.read(), "QUEUED")
                self.assertIsInstance(t.read()[0], int)
                t.close()
        self.assertEqual(admin.call("SELECT", "0"), "OK")
        self.assertGreater(int(admin.call("GET", "pool:n")), 0)

    def test_a_pipelined_pub_sub_session_returns_after_its_last_reply(self):
        """Sent in one write, the last reply (SUNSUBSCRIBE's) comes after the count of
        subscriptions fell to 0: the connection must not go back to the pool before
        it, or the next client on it gets that reply for its own command."""
        admin = self.redis.client()
        pipelines = [
            C("SUBSCRIBE", "a") + C("UNSUBSCRIBE", "a") + C("SUNSUBSCRIBE"),
            C("SUBSCRIBE", "a", "b") + C("PSUBSCRIBE", "p*") + C("UNSUBSCRIBE") +
            C("PING") + C("PUNSUBSCRIBE") + C("UNSUBSCRIBE", "x", "y"),
            C("SSUBSCRIBE", "s") + C("SUNSUBSCRIBE", "s", "s") + C("PUNSUBSCRIBE"),
        ]
        for pipeline in pipelines:
            with self.subTest(pipeline=pipeline):
                direct, c = self.redis.client(), self.gate.client()
                direct.send(pipeline + C("PING", "end"))
                expected = []
                while not expected or expected[-1] != b"end":
                    expected.append(direct.read())
                expected.pop()  # respgate gets nothing after the pipeline: it must count
                for _ in range(20):  # the pool is reused at once, many times over
                    c.send(pipeline)
                    got = [c.read() for _ in expected]
                    self.assertEqual(got, expected)
                    t = self.gate.client()
                    self.assertEqual(t.call("MULTI"), "OK")
                    self.assertEqual(t.call("INCR", "pool:m"), "QUEUED")
                    self.assertIsInstance(t.call("EXEC")[0], int)
                    t.close()
                c.close()
                direct.close()
                wait_until(lambda: not self.dirty_connections(admin), timeout=5,
                           what="no dirty connection")


class WhatRespgateAnswersItself(ProxyTestCase):
    """Found by test_command_property: commands respgate answers (or watches) itself
    must not change what Redis would do around them."""
    respgate_options = {"threads": 1, "upstream": {"connections_per_node": 1}}

    def test_script_debug_gets_a_connection_of_its_own(self):
        """On a shared connection SCRIPT DEBUG YES made another client's EVAL start a
        debugging session."""
        debugger, other = self.gate.client(), self.gate.client()
        self.assertEqual(debugger.call("SCRIPT", "DEBUG", "YES"), "OK")
        self.assertEqual(other.call("EVAL", "return 1", "0"), 1)
        self.assertEqual(debugger.call("SCRIPT", "DEBUG", "NO"), "OK")

    def test_client_subcommands_answered_here_fail_the_transaction(self):
        """Redis queues CLIENT SETNAME in MULTI; respgate answered it at once, so the
        name was set though the transaction was discarded."""
        c = self.gate.client()
        self.assertEqual(c.call("MULTI"), "OK")
        self.assertIn("not inside MULTI", c.call("CLIENT", "SETNAME", "n1"))
        self.assertEqual(c.call("SET", "k", "1"), "QUEUED")
        self.assertTrue(c.call("EXEC").startswith("EXECABORT"))
        self.assertIsNone(c.call("CLIENT", "GETNAME"))
        self.assertIsNone(self.redis.client().call("GET", "k"))

    def test_the_name_follows_the_client_into_a_tunnel(self):
        c = self.gate.client()
        self.assertEqual(c.call("CLIENT", "SETNAME", "n1"), "OK")
        c.call("HELLO", "2")  # a tunnel for good: CLIENT GETNAME goes to Redis
        self.assertEqual(c.call("CLIENT", "GETNAME"), b"n1")
        t = self.gate.client()  # a transaction that became a pub/sub tunnel
        self.assertEqual(t.call("CLIENT", "SETNAME", "n2"), "OK")
        self.assertEqual(t.call("MULTI"), "OK")
        self.assertEqual(t.call("SUBSCRIBE", "ch"), "QUEUED")
        self.assertEqual(t.call("EXEC"), [[b"subscribe", b"ch", 1]])
        self.assertEqual(t.call("UNSUBSCRIBE"), [b"unsubscribe", b"ch", 0])
        self.assertEqual(t.call("CLIENT", "GETNAME"), b"n2")
        t.close()
        # The pooled connection lost the name when it went back.
        wait_until(lambda: "name=n2" not in self.redis.client().call("CLIENT", "LIST").decode(),
                   what="n2 gone from the pool")

    def test_wait_in_a_pub_sub_tunnel_is_redis_refusal(self):
        c, direct = self.gate.client(), self.redis.client()
        for conn in (c, direct):
            conn.call("SET", "k", "v")
            conn.call("SUBSCRIBE", "ch")
        self.assertEqual(c.call("WAIT", "0", "10"), direct.call("WAIT", "0", "10"))



class ClientIds(ProxyTestCase):
    """CLIENT ID answers respgate's ids; the commands that take one went to Redis,
    which knows others: CLIENT UNBLOCK returned 0 and the blocked client stayed
    blocked for ever, TRACKING REDIRECT failed (issue 12). Two threads: the clients
    may live in different workers."""

    def test_unblock_by_the_id_client_id_gave(self):
        for how, want in ((["TIMEOUT"], None), (["ERROR"], "UNBLOCKED")):
            with self.subTest(how=how):
                blocked, other = self.gate.client(), self.gate.client()
                bid = blocked.call("CLIENT", "ID")
                blocked.send(C("BLPOP", "never", "0"))
                # 0 until the client is blocked, as from Redis (and for the moment
                # respgate takes to learn its connection's id, which looks the same).
                wait_until(lambda: other.call("CLIENT", "UNBLOCK", str(bid), *how) == 1,
                           timeout=5, what="the blocked client unblocked")
                got = blocked.read()
                if want:
                    self.assertTrue(got.startswith(want), got)
                else:
                    self.assertIsNone(got)
                self.assertEqual(blocked.call("PING"), "PONG")
        self.assertEqual(other.call("CLIENT", "UNBLOCK", "999999"), 0)
        self.assertEqual(other.call("CLIENT", "UNBLOCK", str(other.call("CLIENT", "ID"))), 0)

    def test_an_id_is_translated_once_even_when_the_command_waits(self):
        """Behind a reply in flight the rebuilt command waited, came back and had its
        (Redis) id looked up again as respgate's."""
        sub, tracked = self.gate.client(), self.gate.client()
        sid = sub.call("CLIENT", "ID")
        sub.call("SUBSCRIBE", "__redis__:invalidate")
        tracked.send(C("GET", "x") + C("CLIENT", "TRACKING", "on", "REDIRECT", str(sid)))
        self.assertIsNone(tracked.read())
        self.assertEqual(tracked.read(), "OK")

    def test_ids_are_translated_on_a_tunnel_too(self):
        """Found with Redis' own suite (unit/tracking): a client already on a
        connection of its own (CLIENT TRACKING off, then HELLO 3: a tunnel) sent its
        ids to Redis untranslated."""
        sub, b = self.gate.client(), self.gate.client()
        sid = sub.call("CLIENT", "ID")
        sub.call("SUBSCRIBE", "__redis__:invalidate")
        self.assertEqual(b.call("CLIENT", "TRACKING", "off"), "OK")
        b.send(C("HELLO", "3"))
        b.sock.settimeout(5)
        got = b""
        while not got.endswith(b"*0\r\n"):
            got += b.sock.recv(4096)
        b.send(C("CLIENT", "TRACKING", "on", "REDIRECT", str(sid)) + C("CLIENT", "UNBLOCK", "0"))
        got = b""
        while got.count(b"\r\n") < 2:
            got += b.sock.recv(4096)
        self.assertEqual(got, b"+OK\r\n:0\r\n")  # id 0: Redis' own answer

    def test_a_long_name_in_client_info(self):
        c = self.gate.client()
        self.assertEqual(c.call("CLIENT", "SETNAME", "n" * 1000), "OK")
        self.assertIn(b"name=" + b"n" * 1000 + b" ", c.call("CLIENT", "INFO"))

    def test_reset_goes_back_to_resp2(self):
        c = self.gate.client()
        c.send(C("HELLO", "3"))
        c.sock.settimeout(5)
        got = b""
        while not got.endswith(b"*0\r\n"):
            got += c.sock.recv(4096)
        self.assertEqual(c.call("RESET"), "RESET")
        self.assertEqual(c.call("HGETALL", "none"), [])  # *0, not %0

    def test_tracking_redirect_to_a_subscriber_by_its_id(self):
        sub, tracked = self.gate.client(), self.gate.client()
        sid = sub.call("CLIENT", "ID")
        self.assertEqual(sub.call("SUBSCRIBE", "__redis__:invalidate"),
                         [b"subscribe", b"__redis__:invalidate", 1])
        self.assertEqual(tracked.call("CLIENT", "TRACKING", "on", "REDIRECT", str(sid)), "OK")
        tracked.call("GET", "watched")
        self.redis.client().call("SET", "watched", "1")
        self.assertEqual(sub.read(), [b"message", b"__redis__:invalidate", [b"watched"]])
        # The redirect is reported by the id CLIENT ID gave (Redis' own suite).
        self.assertEqual(tracked.call("CLIENT", "GETREDIR"), sid)
        info = tracked.call("CLIENT", "TRACKINGINFO")
        self.assertEqual(info[info.index(b"redirect") + 1], sid)
        self.assertIn("does not exist", tracked.call("CLIENT", "TRACKING", "on", "REDIRECT",
                                                      "999999"))


if __name__ == "__main__":
    main()
