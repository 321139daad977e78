"""CLIENT LIST, CLIENT KILL and CLIENT INFO answer about the apps' own connections
to respgate, as Redis answers about its clients (issue 12): every worker's clients,
Redis' line and filters and errors, ids as CLIENT ID gave them. Checked with many
clients on four workers, against Redis directly for the errors, and with clients
pipelining, closing abruptly and being killed while others list."""
import random
import socket
import threading
import time

from harness import ConnectionClosed, ProxyTestCase, RespError, encode, main, wait_until


def parse(text):
    """CLIENT LIST's text: one dict per line."""
    if isinstance(text, bytes):
        text = text.decode()
    return [dict(f.split("=", 1) for f in line.split(" ")) for line in text.splitlines() if line]


class ClientList(ProxyTestCase):
    respgate_options = {"threads": 4}

    def named_clients(self, n, prefix="app"):
        clients = []
        for i in range(n):
            c = self.gate.client()
            self.assertEqual(c.call("CLIENT", "SETNAME", "%s%d" % (prefix, i)), "OK")
            c.id = c.call("CLIENT", "ID")
            clients.append(c)
        return clients

    def test_lists_every_app_connection_on_every_worker_and_not_redis_ones(self):
        clients = self.named_clients(30)
        lines = parse(clients[0].call("CLIENT", "LIST"))
        self.assertEqual([int(l["id"]) for l in lines], sorted(c.id for c in clients),
                         "one line per app connection, in the order they came")
        self.assertEqual({l["name"] for l in lines}, {"app%d" % i for i in range(30)})
        me = [l for l in lines if int(l["id"]) == clients[0].id][0]
        self.assertEqual(me["cmd"], "client|list")
        self.assertEqual(me["qbuf"], "26", "its own request is in its query buffer, as in Redis")
        self.assertEqual(me["laddr"], "127.0.0.1:%d" % self.gate.port)
        local = {c.sock.getsockname()[1] for c in clients}
        self.assertEqual({int(l["addr"].rsplit(":", 1)[1]) for l in lines}, local)
        for l in lines:
            self.assertEqual((l["flags"], l["db"], l["multi"], l["resp"], l["user"]),
                             ("N", "0", "-1", "2", "default"))
        # Redis itself lists respgate's connections, none of them an app's.
        direct = parse(self.redis.client().call("CLIENT", "LIST"))
        self.assertFalse({l["name"] for l in direct} & {"app%d" % i for i in range(30)})

    def test_ids_type_and_state_fields(self):
        a, b, c = self.named_clients(3)
        self.assertEqual([int(l["id"]) for l in parse(a.call("CLIENT", "LIST", "ID", c.id, 999999,
                                                              a.id))], [c.id, a.id])
        self.assertEqual(a.call("CLIENT", "LIST", "TYPE", "master"), b"")
        self.assertEqual(b.call("SELECT", "3"), "OK")
        self.assertEqual(b.call("MULTI"), "OK")
        self.assertEqual(b.call("SET", "k", "v"), "QUEUED")
        self.assertEqual(b.call("GET", "k"), "QUEUED")
        b.send(encode("SUBSCRIBE", "ch1", "ch2"))  # not yet: EXEC first
        c.send(encode("SUBSCRIBE", "ch1", "ch2") + encode("PSUBSCRIBE", "p*"))
        for _ in range(3):
            c.read()
        mine = {int(l["id"]): l for l in parse(a.call("CLIENT", "LIST"))}
        self.assertEqual((mine[b.id]["db"], mine[b.id]["multi"], mine[b.id]["flags"]),
                         ("3", "2", "x"))
        self.assertEqual((mine[c.id]["sub"], mine[c.id]["psub"], mine[c.id]["flags"]),
                         ("2", "1", "P"))
        self.assertEqual([int(l["id"]) for l in parse(a.call("CLIENT", "LIST", "TYPE", "pubsub"))],
                         [c.id])
        info = parse(a.call("CLIENT", "INFO"))[0]
        self.assertEqual((int(info["id"]), info["cmd"], info["name"]), (a.id, "client|info", "app0"))

    def test_resp3_gets_a_verbatim_string(self):
        s = socket.create_connection(("127.0.0.1", self.gate.port), timeout=5)
        s.sendall(encode("HELLO", "3"))
        time.sleep(0.2)
        s.recv(65536)
        s.sendall(encode("CLIENT", "LIST"))
        data = b""
        while not data.endswith(b"\r\n") or len(data) < 10:
            data += s.recv(65536)
        self.assertTrue(data.startswith(b"="), data[:20])
        size, rest = data[1:].split(b"\r\n", 1)
        self.assertEqual(int(size), len(rest) - 2)
        self.assertTrue(rest.startswith(b"txt:id="), rest[:20])
        self.assertIn(b" resp=3 ", rest)

    def test_errors_are_redis_own(self):
        direct, via = self.redis.client(), self.gate.client()
        for cmd in (["CLIENT", "KILL"], ["CLIENT", "KILL", "id", "10", "wrong_arg"],
                    ["CLIENT", "KILL", "id", "str"], ["CLIENT", "KILL", "id", "-1"],
                    ["CLIENT", "KILL", "id", "0"], ["CLIENT", "KILL", "type", "wrong_type"],
                    ["CLIENT", "KILL", "user", "wrong_user"],
                    ["CLIENT", "KILL", "skipme", "yes_or_no"], ["CLIENT", "KILL", "1.2.3.4:5"],
                    ["CLIENT", "KILL", "id", "123456"], ["CLIENT", "LIST", "ID", "x"],
                    ["CLIENT", "LIST", "x"], ["CLIENT", "LIST", "TYPE", "x"],
                    ["CLIENT", "LIST", "TYPE", "replica"]):
            with self.subTest(cmd=" ".join(cmd)):
                self.assertEqual(via.call(*cmd), direct.call(*cmd))

    def test_kill_by_id_addr_and_skipme(self):
        clients = self.named_clients(12)
        killer = clients[0]
        victim = clients[5]
        victim.send(b"".join(encode("GET", "k%d" % i) for i in range(2000)))  # in flight
        self.assertEqual(killer.call("CLIENT", "KILL", "ID", victim.id), 1)
        victim.read_all_until_closed()
        addr = "%s:%d" % clients[7].sock.getsockname()
        self.assertEqual(killer.call("CLIENT", "KILL", addr), "OK")
        self.assertEqual(killer.call("CLIENT", "KILL", "ADDR", addr), 0)
        self.assertEqual(killer.call("CLIENT", "KILL", "LADDR", "127.0.0.1:%d" % self.gate.port,
                                     "ID", clients[8].id), 1)
        survivors = [c for i, c in enumerate(clients) if i not in (5, 7, 8)]
        wait_until(lambda: len(parse(killer.call("CLIENT", "LIST"))) == len(survivors),
                   what="the killed clients gone from CLIENT LIST")
        # SKIPME yes: every other client; SKIPME no: the killer too, after its reply.
        self.assertEqual(killer.call("CLIENT", "KILL", "SKIPME", "yes"), len(survivors) - 1)
        for c in survivors[1:]:
            c.read_all_until_closed()
        extra = self.named_clients(2, prefix="late")
        self.assertEqual(killer.call("CLIENT", "KILL", "SKIPME", "no", "TYPE", "normal"), 3)
        killer.read_all_until_closed()
        for c in extra:
            c.read_all_until_closed()
        fresh = self.gate.client()
        self.assertEqual(len(parse(fresh.call("CLIENT", "LIST"))), 1)
        self.assertEqual(fresh.call("SET", "after", "1"), "OK", "respgate's own connections live")

    def test_kill_on_a_tunnel_takes_only_an_id(self):
        """A RESP3 subscriber's connection is a tunnel to Redis: CLIENT KILL by type or
        address there would hit respgate's own connections, so only ID is let through."""
        other = self.gate.client()
        self.assertEqual(other.call("SET", "k", "v"), "OK")
        s = socket.create_connection(("127.0.0.1", self.gate.port), timeout=5)
        s.sendall(encode("HELLO", "3") + encode("SUBSCRIBE", "ch") +
                  encode("CLIENT", "KILL", "TYPE", "normal"))
        data, deadline = b"", time.monotonic() + 5
        while b"\r\n-" not in data and time.monotonic() < deadline:
            data += s.recv(65536)
        self.assertIn(b"takes only ID", data)
        self.assertEqual(other.call("GET", "k"), b"v", "respgate's shared connections untouched")
        self.assertEqual(other.call("CLIENT", "KILL", "ID", other.call("CLIENT", "ID") + 1000), 0)

    def test_many_clients_list_and_kill_while_others_come_go_and_pipeline(self):
        stop = threading.Event()
        errors, listed, killed = [], [0], [0]

        def pipeliner(n, may_be_killed=False):
            c = self.gate.client()
            try:
                while not stop.is_set():
                    c.send(b"".join(encode("INCR", "ctr%d" % n) for _ in range(50)))
                    for _ in range(50):
                        r = c.read()
                        if not isinstance(r, int):
                            errors.append(("pipeliner", r))
            except (ConnectionClosed, OSError) as e:
                if not may_be_killed:
                    errors.append(("pipeliner", repr(e)))

        def churner(n):
            rnd = random.Random(n)
            while not stop.is_set():
                try:
                    c = self.gate.client(timeout=5)
                    c.send(encode("CLIENT", "SETNAME", "churn") + encode("GET", "x") * 20)
                    if rnd.random() < 0.5:
                        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                          b"\x01\x00\x00\x00\x00\x00\x00\x00")  # reset
                    c.close()
                except OSError:
                    pass

        def lister():
            c = self.gate.client()
            while not stop.is_set():
                lines = parse(c.call("CLIENT", "LIST"))
                if not any(l["cmd"] == "client|list" for l in lines):
                    errors.append(("lister", "its own line missing"))
                listed[0] += 1

        def killer():
            c = self.gate.client()
            while not stop.is_set():
                r = c.call("CLIENT", "KILL", "SKIPME", "yes", "USER", "default", "TYPE", "normal")
                if not isinstance(r, int):
                    errors.append(("killer", r))
                killed[0] += r if isinstance(r, int) else 0
                time.sleep(0.01)

        pipeliners = [threading.Thread(target=pipeliner, args=(i,)) for i in range(4)]
        for t in pipeliners:
            t.start()
        time.sleep(0.2)
        others = [threading.Thread(target=f, args=a) for f, a in
                  [(churner, (i,)) for i in range(4)] + [(lister, ())] * 3]
        for t in others:
            t.start()
        time.sleep(2)  # and at least 20 lists, however slow the machine
        wait_until(lambda: listed[0] >= 20, timeout=60, what="20 CLIENT LISTs")
        stop.set()
        for t in others + pipeliners:
            t.join(20)
        self.assertEqual(errors, [])
        # Now the killer, with the pipeliners running: they are killed, nobody else hurt.
        stop.clear()
        pipeliners = [threading.Thread(target=pipeliner, args=(10 + i, True)) for i in range(4)]
        for t in pipeliners:
            t.start()
        time.sleep(0.2)
        k = threading.Thread(target=killer)
        k.start()
        time.sleep(0.5)
        stop.set()
        k.join(20)
        for t in pipeliners:
            t.join(20)
        self.assertGreaterEqual(killed[0], 4)
        c = self.gate.client()
        self.assertEqual(c.call("PING"), "PONG")
        self.assertEqual(c.call("SET", "k", "v"), "OK")


if __name__ == "__main__":
    main()
