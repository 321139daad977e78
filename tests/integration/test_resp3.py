"""RESP3 clients are served like RESP2 ones (issue 12): HELLO 3 is answered by
respgate, the client is multiplexed over shared connections that speak RESP3, its
reads go to replicas, and every RESP3 reply type reaches it byte for byte as Redis
sends it - checked on raw sockets against the same commands sent to Redis directly,
DEBUG PROTOCOL giving each type (attributes and pushes included)."""
import socket
import threading
import time

from harness import Harness, ProxyTestCase, encode, main, wait_until

C = encode


def read_all(sock, quiet=0.15, cap=5.0):
    """Everything that arrives until the connection has been quiet for a moment."""
    sock.settimeout(quiet)
    data, deadline = b"", time.monotonic() + cap
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(1 << 16)
        except socket.timeout:
            if data:
                return data
            continue
        if not chunk:
            return data
        data += chunk
    return data


def exchange(port, *commands):
    """HELLO 3, then commands one at a time; each one's raw reply bytes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(C("HELLO", "3"))
    hello = read_all(s)
    out = []
    for cmd in commands:
        s.sendall(cmd)
        out.append(read_all(s))
    s.close()
    return hello, out


class Resp3Replies(ProxyTestCase):
    respgate_options = {"deny_commands": []}  # DEBUG PROTOCOL, for every reply type

    def setUp(self):
        self.h = Harness()
        try:
            self.redis = self.h.redis(extra=["--enable-debug-command", "yes"])
            self.gate = self.h.respgate(self.redis.port, **self.respgate_options)
        except BaseException:
            self.h.close(ok=False)
            raise

    def test_hello_3_is_answered_for_the_client(self):
        s = socket.create_connection(("127.0.0.1", self.gate.port), timeout=5)
        s.sendall(C("HELLO", "3") + C("CLIENT", "ID"))
        got = read_all(s)
        self.assertTrue(got.startswith(b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n"),
                        got)
        self.assertIn(b"$5\r\nproto\r\n:3\r\n", got)
        client_id = got.rsplit(b":", 1)[1].strip()
        self.assertIn(b"$2\r\nid\r\n:" + client_id + b"\r\n", got)
        # Back to RESP2: the reply is an array again, and so are later replies.
        s.sendall(C("HELLO", "2") + C("HGETALL", "none"))
        got = read_all(s)
        self.assertTrue(got.startswith(b"*14\r\n"), got)
        self.assertTrue(got.endswith(b"*0\r\n*0\r\n"), got)
        s.sendall(C("HELLO", "4") + C("HELLO", "x") + C("HELLO", "3", "SETNAME", "a b"))
        self.assertEqual(read_all(s), b"-NOPROTO unsupported protocol version\r\n"
                         b"-ERR Protocol version is not an integer or out of range\r\n"
                         b"-ERR Client names cannot contain spaces, newlines or special "
                         b"characters.\r\n")

    def test_every_reply_type_as_redis_sends_it(self):
        kinds = ["string", "integer", "double", "bignum", "null", "array", "set", "map",
                 "attrib", "verbatim", "true", "false", "push"]
        setup = [C("DEL", "h", "z", "s"), C("HSET", "h", "f", "v"), C("ZADD", "z", "1.5", "m"),
                 C("SADD", "s", "only")]
        commands = setup + [C("DEBUG", "PROTOCOL", k) for k in kinds] + [
            C("HGETALL", "h"), C("ZSCORE", "z", "m"), C("SMEMBERS", "s"), C("GET", "nokey"),
            C("ZRANGE", "z", "0", "-1", "WITHSCORES"), C("EVAL", "return true", "0"),
            C("EVAL", "redis.setresp(3) return redis.call('HGETALL', KEYS[1])", "1", "h"),
            C("XADD", "x", "1-1", "a", "b"), C("XRANGE", "x", "-", "+"),
            C("CONFIG", "GET", "maxmemory"), C("MULTI"), C("HGETALL", "h"), C("EXEC"),
            C("EXISTS", "h"), C("UNSUBSCRIBE", "a", "b")]
        _, direct = exchange(self.redis.port, *commands)
        self.redis.client().call("FLUSHALL")
        _, through = exchange(self.gate.port, *commands)
        for cmd, want, got in zip(commands, direct, through):
            with self.subTest(cmd=cmd):
                self.assertEqual(got, want)
        self.assertIn(b"|1\r\n", direct[len(setup) + kinds.index("attrib")])
        self.assertTrue(direct[len(setup) + kinds.index("push")].startswith(b">2\r\n"))

    def test_many_resp3_and_resp2_clients_at_once_get_their_own_replies(self):
        wrong = []

        def client(i, proto):
            s = socket.create_connection(("127.0.0.1", self.gate.port), timeout=10)
            s.sendall(C("HELLO", str(proto)))
            read_all(s)
            key = "mix:%d" % i
            for n in range(1, 201):
                s.sendall(C("HSET", key, "n", str(n)) + C("HGETALL", key))
                want = (b":%d\r\n" % (1 if n == 1 else 0)) + (
                    b"%1\r\n" if proto == 3 else b"*2\r\n") + b"$1\r\nn\r\n$%d\r\n%d\r\n" % (
                        len(str(n)), n)
                got = b""
                while len(got) < len(want):
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    got += chunk
                if got != want:
                    wrong.append((i, proto, n, got, want))
                    break
            s.close()
        threads = [threading.Thread(target=client, args=(i, 2 + i % 2)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(wrong[:3], [])


class Resp3ReadsAndSessions(ProxyTestCase):
    """A RESP3 client's reads go to replicas and its transactions and pub/sub work;
    before, HELLO 3 made the connection a tunnel to the master for its whole life."""

    def setUp(self):
        self.h = Harness()
        try:
            self.redis = self.h.redis()
            self.replicas = [self.h.replica_of(self.redis) for _ in range(2)]
            nodes = ["127.0.0.1:%d" % n.port for n in [self.redis] + self.replicas]
            self.gate = self.h.respgate(self.redis.port,
                                        regions=[{"name": "local", "nodes": nodes}])
        except BaseException:
            self.h.close(ok=False)
            raise

    def test_reads_split_and_no_tunnel(self):
        s = socket.create_connection(("127.0.0.1", self.gate.port), timeout=5)
        s.sendall(C("HELLO", "3") + C("SET", "r3", "v"))
        self.assertTrue(read_all(s).endswith(b"+OK\r\n"))
        wait_until(lambda: all(r.client().call("GET", "r3") == b"v" for r in self.replicas),
                   what="the replicas have r3")
        time.sleep(0.5)  # the probes see the replicas have the write (read-your-writes)
        before = sum(r.calls("get") for r in self.replicas)
        s.sendall(C("GET", "r3") * 200)
        got = b""
        while got.count(b"$1\r\nv\r\n") < 200:
            got += s.recv(65536)
        self.assertGreater(sum(r.calls("get") for r in self.replicas) - before, 100)
        s.sendall(C("CLIENT", "INFO"))
        self.assertIn(b"resp=3 proxy=respgate pinned=no", read_all(s))

    def test_transactions_and_pub_sub_in_resp3(self):
        s = socket.create_connection(("127.0.0.1", self.gate.port), timeout=5)
        s.sendall(C("HELLO", "3"))
        read_all(s)
        s.sendall(C("MULTI") + C("SET", "t", "1") + C("HGETALL", "none") + C("EXEC"))
        self.assertEqual(read_all(s), b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n%0\r\n")
        # Subscribed alone, messages must arrive (the tunnel once ended at the
        # subscribe push, back to the pool still subscribed).
        p = socket.create_connection(("127.0.0.1", self.gate.port), timeout=5)
        p.sendall(C("HELLO", "3") + C("SUBSCRIBE", "alone"))
        self.assertTrue(read_all(p).endswith(b">3\r\n$9\r\nsubscribe\r\n$5\r\nalone\r\n:1\r\n"))
        self.assertEqual(self.redis.client().call("PUBLISH", "alone", "m"), 1)
        self.assertEqual(read_all(p), b">3\r\n$7\r\nmessage\r\n$5\r\nalone\r\n$1\r\nm\r\n")
        p.close()
        wait_until(lambda: self.redis.client().call("PUBSUB", "NUMSUB", "alone")[1] == 0,
                   what="the subscription gone with its client")
        # RESP3 allows commands on a subscribed connection; pushes come among replies.
        s.sendall(C("SUBSCRIBE", "ch") + C("SET", "after", "1"))
        self.assertEqual(read_all(s), b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n+OK\r\n")
        self.redis.client().call("PUBLISH", "ch", "hi")
        self.assertEqual(read_all(s), b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n")
        s.sendall(C("UNSUBSCRIBE", "ch") + C("GET", "after"))
        self.assertEqual(read_all(s), b">3\r\n$11\r\nunsubscribe\r\n$2\r\nch\r\n:0\r\n$1\r\n1\r\n")


if __name__ == "__main__":
    main()
