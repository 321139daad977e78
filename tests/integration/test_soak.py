"""Concurrency soak: 200+ client connections at once through a two-thread respgate
in front of a master and a replica, each running a random mix of pipelines,
transactions, WATCH, SELECT, blocking pops, pub/sub, malformed input and abrupt
closes, while a chaos thread kills respgate's connections from Redis' side every
~0.5 s and the replica is restarted once. Every reply is checked against a model
of the client's own keys (soak_model.py); the test fails on a reply that belongs
to another client or has the wrong type or value, on an error respgate should not
give, on a client left without a reply for 10 s, on respgate dying and on a
sanitizer report. SOAK_SECONDS and SOAK_CLIENTS override the length and size.

A GET must never see a SET the same client pipelined after it: respgate holds a
client's write until its reads in flight on replicas are answered, and does not
send a read again when a later write of the client went on the same connection."""
import collections
import os
import random
import threading
import time
import unittest

from harness import Harness, main, wait_until
from soak_model import Closed, Conn, Err, Hang, Model, ModelError, error_kind, short

DURATION = float(os.environ.get("SOAK_SECONDS", "25"))
CLIENTS = int(os.environ.get("SOAK_CLIENTS", "200"))
REPLY_TIMEOUT = 10.0
STRICT_READS = os.environ.get("SOAK_STRICT_READS", "1") == "1"

MALFORMED = [
    b"*1\r\n:1\r\n",              # bad type byte
    b"*1\r\n$-5\r\n",             # negative bulk length
    b"*1\r\n$9999999999\r\n",     # bulk length over the limit
    b"*2x\r\n",                   # count with garbage
    b"*1\r\n$04\r\nPING\r\n",    # a leading zero (Redis refuses it; "PINGxx" it runs)
    b'SET k "abc\r\n',            # unbalanced quotes (inline)
]

VALUE_SIZES = [8, 8, 60, 60, 200, 1500, 20000]  # over 112 bytes, over the 16 KiB copy limit


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ops = collections.Counter()
        self.errors = collections.Counter()
        self.failures = []

    def op(self, name):
        with self.lock:
            self.ops[name] += 1

    def error(self, kind):
        with self.lock:
            self.errors[kind] += 1

    def fail(self, msg):
        with self.lock:
            self.failures.append(msg)


class Shared:
    """What the clients, the pusher, the publisher and the chaos thread share."""

    def __init__(self, gate, stats, deadline):
        self.gate, self.stats, self.deadline = gate, stats, deadline
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.subscribed = set()        # client ids inside SUBSCRIBE now
        self.queued = collections.Counter()  # q:<i> elements pushed and not popped (roughly)

    def dead(self):
        return self.gate.proc.poll() is not None


class Client:
    def __init__(self, i, sh):
        self.i, self.sh, self.stats = i, sh, sh.stats
        self.rng = random.Random(1000 + i)
        self.gen = 0
        self.seq = 0
        self.models = {0: Model(), 1: Model()}
        self.last_q = 0       # last sequence number popped from q:<i>
        self.last_msg = 0     # last sequence number received on ch:<i>
        self.conn = None
        self.history = collections.deque(maxlen=40)
        self.reset_conn_state()

    def note(self, *what):
        self.history.append(" ".join(_show(w) for w in what))

    def story(self):
        return "\n    " + "\n    ".join(self.history)

    # --- connection ---------------------------------------------------------------

    def reset_conn_state(self):
        self.db = 0
        self.in_tx = False
        self.queued = []
        self.tainted = False
        self.watching = False  # a WATCH may be in force: EXEC may answer nil

    def connect(self):
        if self.conn:
            self.conn.close()
        self.conn = Conn(self.sh.gate.port)
        self.reset_conn_state()

    def new_generation(self):
        """Writes of a connection we lost may still land: start over on fresh keys."""
        self.gen += 1
        self.models = {0: Model(), 1: Model()}

    # --- keys and values ------------------------------------------------------------

    def key(self, name):
        return "sk:%d:%d:%s" % (self.i, self.gen, name)

    def value(self):
        self.seq += 1
        head = b"%d:%d:%d:" % (self.i, self.gen, self.seq)
        size = self.rng.choice(VALUE_SIZES)
        return head + b"v" * max(0, size - len(head))

    def simple_cmd(self):
        r = self.rng.random()
        if r < 0.4:
            return ("SET", self.key("s%d" % self.rng.randrange(4)), self.value())
        if r < 0.75:
            return ("GET", self.key("s%d" % self.rng.randrange(4)))
        return ("INCR", self.key("c%d" % self.rng.randrange(2)))

    # --- replies against the model ----------------------------------------------------

    def what(self, cmd):
        return "client %d gen %d %s" % (self.i, self.gen, " ".join(
            a if isinstance(a, str) else "<%d bytes>" % len(a) for a in cmd[:2]))

    def ran(self, cmd, reply):
        """A command that ran (outside a transaction, or inside one that EXEC ran)."""
        name, m = cmd[0], self.models[self.db]
        if self.tainted:
            return
        if name == "SET":
            if reply != "OK":
                raise ModelError("%s: expected OK, got %r" % (self.what(cmd), reply))
            m.set_ok(cmd[1], cmd[2])
        elif name == "GET":
            m.get(cmd[1], reply, self.what(cmd))
        elif name == "INCR":
            m.incr_ok(cmd[1], reply, self.what(cmd))
        elif name == "PING":
            if reply != "PONG":
                raise ModelError("%s: expected PONG, got %r" % (self.what(cmd), reply))
        else:
            raise AssertionError("no model for %r" % (cmd,))

    def maybe_ran(self, cmd):
        name, m = cmd[0], self.models[self.db]
        if name == "SET":
            m.set_maybe(cmd[1], cmd[2])
        elif name == "INCR":
            m.incr_maybe(cmd[1])

    def allowed_error(self, cmd, reply):
        kind = error_kind(reply)
        if kind is None:
            raise ModelError("%s: unexpected error %r" % (self.what(cmd), str(reply)))
        self.stats.error(short(reply))
        return kind

    def apply(self, cmd, reply):
        """Checks one reply (in command order) and updates the model."""
        self.note("  ", cmd, "->", reply)
        name = cmd[0]
        if name == "MULTI":
            if reply == "OK":
                self.in_tx, self.queued = True, []
            elif isinstance(reply, Err):
                self.allowed_error(cmd, reply)
                self.in_tx = False
            else:
                raise ModelError("%s: got %r" % (self.what(cmd), reply))
        elif name == "EXEC":
            self.exec_reply(cmd, reply)
        elif name in ("WATCH", "UNWATCH", "DISCARD"):
            if name == "DISCARD":
                self.in_tx = False
            self.watching = name == "WATCH"
            if isinstance(reply, Err):
                if not reply.startswith("ERR DISCARD without MULTI"):
                    self.allowed_error(cmd, reply)
            elif reply != "OK":
                raise ModelError("%s: got %r" % (self.what(cmd), reply))
        elif name == "SELECT":
            if reply == "OK":
                self.db = int(cmd[1])
            elif isinstance(reply, Err):
                self.allowed_error(cmd, reply)
                self.tainted = True  # which database the rest runs in is unknown
            else:
                raise ModelError("%s: got %r" % (self.what(cmd), reply))
        elif self.in_tx:
            if reply == "QUEUED":
                self.queued.append((cmd, "queued"))
            elif isinstance(reply, Err):
                self.queued.append((cmd, self.allowed_error(cmd, reply)))
            else:
                raise ModelError("%s: inside MULTI got %r instead of QUEUED"
                                 % (self.what(cmd), reply))
        elif isinstance(reply, Err):
            if self.allowed_error(cmd, reply) == "maybe":
                self.maybe_ran(cmd)
        else:
            self.ran(cmd, reply)

    def exec_reply(self, cmd, reply):
        watching, self.watching = self.watching, False
        if not self.in_tx:
            # MULTI failed: EXEC has nothing to run.
            if (reply is None and watching) or (isinstance(reply, Err) and (
                    reply.startswith(("ERR EXEC without MULTI", "EXECABORT")) or
                    error_kind(reply))):
                return
            raise ModelError("%s: EXEC outside a transaction got %r" % (self.what(cmd), reply))
        self.in_tx = False
        queued, self.queued = self.queued, []
        if isinstance(reply, list):
            if len(reply) != len(queued) or any(st != "queued" for _, st in queued):
                raise ModelError("%s: EXEC returned %d replies for %r"
                                 % (self.what(cmd), len(reply), [(c[0], st) for c, st in queued]))
            for (c, _), r in zip(queued, reply):
                self.ran(c, r)
        elif reply is None and watching:
            self.stats.error("EXEC nil (watch lost)")
        elif isinstance(reply, Err):
            if reply.startswith("EXECABORT"):
                self.stats.error("EXECABORT")
                return
            if self.allowed_error(cmd, reply) == "maybe":
                for c, st in queued:
                    if st != "no":
                        self.maybe_ran(c)
        else:
            raise ModelError("%s: EXEC got %r" % (self.what(cmd), reply))

    def pipeline(self, cmds, replies=None):
        """Sends cmds in one write; reads and checks the first `replies` replies (all)."""
        self.conn.send_cmds(cmds)
        for n, c in enumerate(cmds[:replies]):
            reply = self.conn.read(REPLY_TIMEOUT)
            if self.read_ahead(c, reply, cmds[n + 1:]):
                continue
            self.apply(c, reply)

    def read_ahead(self, cmd, reply, later):
        """A GET that saw a SET sent behind it in the same pipeline. A failure unless
        SOAK_STRICT_READS=0 (then only counted)."""
        if (STRICT_READS or self.in_tx or self.tainted or cmd[0] != "GET" or
                reply in self.models[self.db].possible(cmd[1])):
            return False
        if not any(c[0] == "SET" and c[1] == cmd[1] and c[2] == reply for c in later):
            return False
        self.note("  ", cmd, "->", reply, "(read ahead: the value of a later SET)")
        self.stats.error("GET saw a later SET of its pipeline")
        return True

    def sequence(self, cmds):
        for c in cmds:
            self.conn.send_cmds([c])
            self.apply(c, self.conn.read(REPLY_TIMEOUT))

    # --- operations -----------------------------------------------------------------

    def op_pipeline(self):
        self.pipeline([self.simple_cmd() for _ in range(self.rng.randint(1, 30))])

    def op_multi(self):
        self.pipeline([("MULTI",)] + [self.simple_cmd() for _ in range(self.rng.randint(1, 5))] +
                      [("EXEC",)])

    def op_watch(self):
        k = self.key("s%d" % self.rng.randrange(4))
        self.sequence([("WATCH", k), ("GET", k), ("MULTI",), ("SET", k, self.value()),
                       ("INCR", self.key("c0")), ("EXEC",)])

    def op_select(self):
        self.pipeline([("SELECT", "1"), ("SET", self.key("d"), self.value()),
                       ("INCR", self.key("dc")), ("GET", self.key("d")), ("SELECT", "0"),
                       ("GET", self.key("s0"))])
        if self.tainted or self.db != 0:  # a SELECT failed: start over on a new connection
            raise Closed("a SELECT failed: the connection's database is unknown")

    def op_blpop_own(self):
        k = self.key("l%d" % self.seq)
        v = self.value()[:40]
        self.conn.send_cmds([("RPUSH", k, v), ("BLPOP", k, "0.2")])
        pushed = self.conn.read(REPLY_TIMEOUT)
        if isinstance(pushed, Err):
            self.allowed_error(("RPUSH", k), pushed)
        elif pushed != 1:
            raise ModelError("client %d: RPUSH %s got %r" % (self.i, k, pushed))
        popped = self.conn.read(REPLY_TIMEOUT)
        if isinstance(popped, Err):
            self.allowed_error(("BLPOP", k), popped)
        elif popped is None:
            if pushed == 1:
                raise ModelError("client %d: BLPOP %s timed out after its RPUSH succeeded"
                                 % (self.i, k))
        elif popped != [k.encode(), v]:
            raise ModelError("client %d: BLPOP %s got %r" % (self.i, k, popped))

    def op_blpop_queue(self):
        q = "q:%d" % self.i
        self.conn.send_cmds([("BLPOP", q, "0.3")])
        popped = self.conn.read(REPLY_TIMEOUT)
        if isinstance(popped, Err):
            self.allowed_error(("BLPOP", q), popped)
            with self.sh.lock:  # it may have popped one
                self.sh.queued[self.i] = max(0, self.sh.queued[self.i] - 1)
            return
        if popped is None:
            return
        if not (isinstance(popped, list) and len(popped) == 2 and popped[0] == q.encode()):
            raise ModelError("client %d: BLPOP %s got %r" % (self.i, q, popped))
        tag, seq = popped[1].split(b":")
        if int(tag) != self.i or int(seq) <= self.last_q:
            raise ModelError("client %d: BLPOP %s got %r after element %d"
                             % (self.i, q, popped[1], self.last_q))
        self.last_q = int(seq)
        with self.sh.lock:
            self.sh.queued[self.i] -= 1

    def check_message(self, m, ch):
        if not (isinstance(m, list) and len(m) == 3 and m[0] == b"message" and
                m[1] == ch.encode()):
            raise ModelError("client %d: subscribed to %s, got %r" % (self.i, ch, m))
        tag, seq = m[2].split(b":")
        if int(tag) != self.i or int(seq) <= self.last_msg:
            raise ModelError("client %d: message %r on %s after %d"
                             % (self.i, m[2], ch, self.last_msg))
        self.last_msg = int(seq)

    def op_subscribe(self):
        ch = "ch:%d" % self.i
        self.conn.send_cmds([("SUBSCRIBE", ch)])
        first = self.conn.read(REPLY_TIMEOUT)
        if isinstance(first, Err):  # no tunnel could be opened: it is closed after this
            self.allowed_error(("SUBSCRIBE", ch), first)
            raise Closed("SUBSCRIBE refused")
        if first != [b"subscribe", ch.encode(), 1]:
            raise ModelError("client %d: SUBSCRIBE %s got %r" % (self.i, ch, first))
        with self.sh.lock:
            self.sh.subscribed.add(self.i)
        try:
            until = time.monotonic() + self.rng.uniform(0.2, 1.0)
            while time.monotonic() < until:
                try:
                    m = self.conn.read(max(0.01, until - time.monotonic()))
                except Hang:
                    break
                self.check_message(m, ch)
        finally:
            with self.sh.lock:
                self.sh.subscribed.discard(self.i)
        self.conn.send_cmds([("UNSUBSCRIBE", ch)])
        while True:
            m = self.conn.read(REPLY_TIMEOUT)
            if isinstance(m, list) and m and m[0] == b"unsubscribe":
                if m != [b"unsubscribe", ch.encode(), 0]:
                    raise ModelError("client %d: UNSUBSCRIBE got %r" % (self.i, m))
                break
            self.check_message(m, ch)

    def op_garbage(self):
        self.conn.send(self.rng.choice(MALFORMED))
        reply = self.conn.read(REPLY_TIMEOUT)
        if not (isinstance(reply, Err) and reply.startswith("ERR Protocol error")):
            raise ModelError("client %d: malformed input got %r" % (self.i, reply))
        try:
            self.conn.read_until_closed(timeout=REPLY_TIMEOUT)
        except Hang:
            raise ModelError("client %d: not closed after a protocol error" % self.i)
        self.stats.error("protocol error (on purpose)")
        # Read-your-writes holds per connection: a new one may read a replica that
        # has not caught up with this one's writes yet.
        self.new_generation()
        self.connect()

    def op_abrupt_close(self):
        cmds = [self.simple_cmd() for _ in range(self.rng.randint(5, 40))]
        if self.rng.random() < 0.3:
            cmds = [("MULTI",)] + cmds[:5] + [("EXEC",)] + cmds[5:]
        self.pipeline(cmds, replies=self.rng.randrange(len(cmds)))
        self.conn.close(reset=self.rng.random() < 0.5)
        self.conn = None
        self.new_generation()
        self.connect()

    def op_ping(self):
        self.pipeline([("PING",)])

    OPS = [("pipeline", 30), ("multi", 12), ("watch", 8), ("select", 8), ("blpop_own", 6),
           ("blpop_queue", 6), ("subscribe", 8), ("garbage", 2), ("abrupt_close", 4),
           ("ping", 2)]
    MAY_CLOSE = {"select", "subscribe"}  # sessions whose connection dies close the client

    def run(self):
        names = [n for n, _ in self.OPS]
        weights = [w for _, w in self.OPS]
        try:
            self.connect()
        except OSError as e:
            if not self.sh.dead():
                self.stats.fail("client %d: cannot connect: %r" % (self.i, e))
            return
        while time.monotonic() < self.sh.deadline and not self.sh.stop.is_set():
            name = self.rng.choices(names, weights)[0]
            self.note("op", name, "gen", self.gen)
            try:
                getattr(self, "op_" + name)()
                self.stats.op(name)
            except Closed as e:
                self.note("closed:", str(e))
                if self.sh.dead():
                    return
                if name not in self.MAY_CLOSE:
                    self.stats.fail("client %d gen %d: connection closed during %s: %s%s"
                                    % (self.i, self.gen, name, e, self.story()))
                    self.sh.stop.set()
                    return
                self.stats.error("closed during %s (%s)" % (name, e))
                self.new_generation()
                try:
                    self.connect()
                except OSError as e2:
                    if not self.sh.dead():
                        self.stats.fail("client %d: cannot reconnect: %r" % (self.i, e2))
                    return
            except Hang as e:
                if not self.sh.dead():
                    self.stats.fail("client %d gen %d: no reply during %s: %s%s"
                                    % (self.i, self.gen, name, e, self.story()))
                    self.sh.stop.set()
                return
            except ModelError as e:
                self.stats.fail(str(e) + self.story())
                self.sh.stop.set()
                return
            except OSError as e:
                if not self.sh.dead():
                    self.stats.fail("client %d: %s: %r" % (self.i, name, e))
                    self.sh.stop.set()
                return
        if self.conn:
            self.conn.close()


def _show(v):
    if isinstance(v, tuple):
        return "(" + " ".join(_show(a) for a in v) + ")"
    if isinstance(v, list):
        return "[" + ", ".join(_show(a) for a in v) + "]"
    if isinstance(v, bytes):
        return repr(v if len(v) <= 24 else v[:16] + b"..%d" % len(v))
    return repr(v) if isinstance(v, str) and not isinstance(v, Err) else str(v)


def feeder(sh, who, next_cmds):
    """Sends the integer-answered commands next_cmds() makes, every 20 ms, through
    respgate: the pusher and the publisher."""
    conn = None
    while not sh.stop.is_set() and time.monotonic() < sh.deadline:
        try:
            if conn is None:
                conn = Conn(sh.gate.port)
            cmds = next_cmds()
            if cmds:
                conn.send_cmds(cmds)
                for c in cmds:
                    r = conn.read(REPLY_TIMEOUT)
                    if isinstance(r, Err):
                        if error_kind(r) is None:
                            sh.stats.fail("%s: %s got %r" % (who, c[1], str(r)))
                    elif not isinstance(r, int):
                        sh.stats.fail("%s: %s got %r" % (who, c[1], r))
            time.sleep(0.02)
        except (Closed, OSError, Hang) as e:
            if sh.dead():
                return
            sh.stats.fail("%s: %r" % (who, e))
            return


def pusher(sh):
    """Pushes numbered elements onto the clients' q:<i> lists."""
    rng, seq = random.Random(7), collections.Counter()

    def next_cmds():
        with sh.lock:
            targets = [i for i in rng.sample(range(CLIENTS), 20) if sh.queued[i] < 3]
            for i in targets:
                sh.queued[i] += 1
        cmds = []
        for i in targets:
            seq[i] += 1
            cmds.append(("RPUSH", "q:%d" % i, b"%d:%d" % (i, seq[i])))
        return cmds
    feeder(sh, "pusher", next_cmds)


def publisher(sh):
    """Publishes numbered messages on the subscribed clients' channels."""
    seq = collections.Counter()

    def next_cmds():
        with sh.lock:
            targets = list(sh.subscribed)
        cmds = []
        for i in targets:
            seq[i] += 1
            cmds.append(("PUBLISH", "ch:%d" % i, b"%d:%d" % (i, seq[i])))
        return cmds
    feeder(sh, "publisher", next_cmds)


def chaos(sh, master, replica, log):
    """Kills respgate's connections from Redis' side every ~0.5 s; restarts the
    replica once, half way."""
    rng = random.Random(3)
    restart_at = time.monotonic() + DURATION * 0.45
    restarted = False
    while not sh.stop.is_set() and time.monotonic() < sh.deadline - 1:
        if not restarted and time.monotonic() >= restart_at:
            restarted = True
            log.append("restarting the replica")
            replica.kill()
            replica.start()
            continue
        node = master if rng.random() < 0.7 else replica
        r = rng.random()
        try:
            c = node.client(timeout=5)
            try:
                if r < 0.75:
                    n = c.call("CLIENT", "KILL", "TYPE", "normal")
                    log.append("%d: killed %r normal" % (node.port, n))
                elif r < 0.85:
                    n = c.call("CLIENT", "KILL", "TYPE", "pubsub")
                    log.append("%d: killed %r pubsub" % (node.port, n))
                else:
                    lines = c.call("CLIENT", "LIST", "TYPE", "normal").decode().splitlines()
                    addrs = [f.split("=", 1)[1] for ln in lines for f in ln.split()
                             if f.startswith("addr=") and "cmd=client" not in ln]
                    if addrs:
                        a = rng.choice(addrs)
                        log.append("%d: killed addr %s %r" % (node.port, a,
                                                             c.call("CLIENT", "KILL", "ADDR", a)))
            finally:
                c.close()
        except OSError:
            pass  # the replica is restarting
        time.sleep(rng.uniform(0.35, 0.65))


class Soak(unittest.TestCase):

    def test_soak(self):
        h = Harness()
        ok = False
        try:
            master = h.redis()
            replica = h.replica_of(master)
            gate = h.respgate(master.port, threads=2, failover={"hold_ms": 5000},
                              regions=[{"name": "local", "priority": 1, "nodes": [
                                  "127.0.0.1:%d" % master.port, "127.0.0.1:%d" % replica.port]}])
            wait_until(lambda: gate.client().call("SET", "warm", "1") == "OK", what="a first write")
            stats = Stats()
            sh = Shared(gate, stats, time.monotonic() + DURATION)
            clients = [Client(i, sh) for i in range(CLIENTS)]
            chaos_log = []
            threads = [threading.Thread(target=c.run, name="client-%d" % c.i) for c in clients]
            threads += [threading.Thread(target=pusher, args=(sh,)),
                        threading.Thread(target=publisher, args=(sh,)),
                        threading.Thread(target=chaos, args=(sh, master, replica, chaos_log))]
            t0 = time.monotonic()
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                if sh.dead():
                    sh.stop.set()
                time.sleep(0.2)
                if time.monotonic() - t0 > DURATION + 30:
                    sh.stop.set()
                    stats.fail("the clients did not finish within %.0f s" % (DURATION + 30))
                    break
            elapsed = time.monotonic() - t0
            print("\nsoak: %d clients, %.1f s, %d ops (%s); errors: %s; chaos: %d kills%s"
                  % (CLIENTS, elapsed, sum(stats.ops.values()),
                     ", ".join("%s %d" % kv for kv in sorted(stats.ops.items())),
                     dict(stats.errors) or "none",
                     sum(1 for e in chaos_log if "killed" in e),
                     ", replica restarted" if "restarting the replica" in chaos_log else ""))
            if sh.dead():
                self.fail("respgate died (exit %s):\n%s" % (gate.proc.returncode,
                                                            gate.output()[-8000:]))
            self.assertEqual(stats.failures[:15], [], "%d failures" % len(stats.failures))
            # Each client's keys, read directly from the master, hold what its model allows.
            direct = master.client()
            for c in clients:
                for db in (0, 1):
                    m = c.models[db]
                    if not m.keys:
                        continue
                    direct.call("SELECT", str(db))
                    for k in m.keys:
                        m.check_direct(k, direct.call("GET", k), counter=":c" in k or
                                       k.endswith(":dc"))
                    direct.call("SELECT", str(1 - db))
                    leaked = [k for k in m.keys if direct.call("EXISTS", k)]
                    self.assertEqual(leaked, [], "keys of database %d found in database %d"
                                     % (db, 1 - db))
            direct.call("SELECT", "0")
            self.assertGreater(sum(stats.ops.values()), CLIENTS * 5)
            self.assertEqual(gate.client().call("PING"), "PONG")
            gate.stop()
            ok = True
        finally:
            h.close(ok=ok)


if __name__ == "__main__":
    main()
