"""Property test over Redis' whole command table.

Issue: "random commands and arguments from many clients at once on shared connections,
every reply checked against the same command sent to Redis directly".

Two independent redis-servers: A behind respgate, B (the oracle) reached directly. Eight
clients in threads each send the same random pipelined batches to respgate and to B, end
each batch with a marker (PING <marker>) and compare the two reply lists element by
element. Each client touches only keys and channels of its own prefix ("{p3.0}:"), and
every generated command is checked with COMMAND GETKEYS on B before use, so A and B
cannot diverge through concurrency. A passing run shows that respgate never hands a
client a reply meant for another, never shifts replies (commands with several replies,
MULTI, pub/sub, blocking commands, scripts included) and answers every command of the
table (minus EXCLUDED) as Redis does. A failure prints everything needed to replay it;
PROP_SEED picks the seed, PROP_BATCHES the batches per client.
"""
import hashlib
import os
import random
import threading
import time

from harness import ProxyTestCase, RespError, encode, main

SEED = int(os.environ.get("PROP_SEED", "7301"))
BATCHES = int(os.environ.get("PROP_BATCHES", "400"))
CLIENTS = 8

EXCLUDED = {
    # Change the whole server or every client's data.
    "flushall", "flushdb", "swapdb", "shutdown", "save", "bgsave", "bgrewriteaof",
    "config|set", "script|flush", "acl|setuser", "acl|deluser", "acl|load", "acl|save",
    # Replication and failover (in respgate's default deny_commands too).
    "replicaof", "slaveof", "failover", "sync", "psync", "replconf",
    # respgate's default deny_commands answer its own error (docs/configuration.md).
    "debug", "client|pause", "client|unpause",
    # Closes clients: respgate's own on A, Redis' on B (docs/compatibility.md).
    "client|kill",
    # Act on other connections or change how replies are framed for good: MONITOR streams
    # every client's commands, QUIT closes, CLIENT REPLY silences replies, CLIENT TRACKING
    # needs REDIRECT <client id> (ids differ between A and B) to deliver anything in RESP2.
    "monitor", "quit", "client|reply", "client|tracking",
    # Global output whose *length* depends on what other clients did and when.
    "randomkey", "slowlog|get", "acl|log", "memory|stats", "latency|histogram",
}
# Kept although they sound global, because here they answer alike on A and B: CLUSTER and
# MODULE (cluster off, module command disabled: errors), FUNCTION (no library is ever
# loaded), CONFIG RESETSTAT/REWRITE, SLOWLOG/LATENCY RESET, MEMORY PURGE (nothing reads
# what they reset), PUBLISH/SPUBLISH and PUBSUB NUMSUB (own channels; a RESP2 client cannot
# publish while subscribed), KEYS and PUBSUB CHANNELS (always with an own-prefix pattern),
# CLIENT UNBLOCK (an id no client has), CLIENT NO-EVICT (this connection only).
# Compared by shape only (same RESP type, same array length), and why:
SHAPE = {
    # random by design
    "spop", "srandmember", "hrandfield", "zrandmember", "lolwut", "acl|genpass",
    # contain the time, or time-dependent idle/delivery figures
    "ttl", "pttl", "expiretime", "pexpiretime", "object|idletime", "time", "lastsave",
    "xinfo|stream", "xinfo|consumers", "xpending",
    # hash tables iterate in an order set by the per-process hash seed
    "sscan", "hscan", "zscan", "dump",
    # hold the connection id, or A's and B's own config (port, dir, logfile)
    "hello", "config|get", "client|list",
    # CLIENT ID and INFO are answered by respgate for the client's own view
    # (docs/architecture.md, take_client)
    "client|id", "client|info",
    # global counters other clients change
    "scan", "dbsize", "info", "pubsub|numpat", "memory|doctor", "memory|malloc-stats",
    "slowlog|len",
}
# Same elements, any order: a set of non-integers is a hash table in Redis 7.0, and so is
# the command table (hash seed order).
UNORDERED = {"smembers", "sinter", "sunion", "sdiff", "keys",
             "command", "command|list", "command|info", "command|docs", "acl|cat"}
ANSWERED_BY_RESPGATE = {"client|id", "client|info", "client|getname", "client|setname",
                        "client|setinfo", "client|list", "client|kill"}
EXACT, UNORD, SHAPED = 0, 1, 2
PUBSUB = {"subscribe", "psubscribe", "ssubscribe", "unsubscribe", "punsubscribe", "sunsubscribe"}
SESSION = ["multi", "exec", "discard", "watch", "unwatch", "select", "reset", "client|setname",
           "client|getname", "eval", "evalsha", "wait"] + sorted(PUBSUB)
DEBUG_ROUND = 0.01  # per batch: SCRIPT DEBUG YES ... NO (see Client.debug_round)
RARE = {"pfselftest": 0.1, "command": 0.1, "command|docs": 0.3, "command|info": 0.3}

KEYCODE = {"string": "s", "bitmap": "s", "list": "l", "set": "t", "sorted-set": "z",
           "geo": "z", "hash": "h", "stream": "x", "hyperloglog": "p"}
INTS = ["0", "1", "2", "3", "-1", "-2", "10", "100", "x"]
DOUBLES = ["0", "1", "2.5", "-1", "+inf", "-inf", "(1", "3", "x"]
RAW = ["0", "1", "-1", "2.5", "100", "+inf", "-inf", "(1", "[a", "-", "+", "*", "0-1", "1-1", ""]
# Expiry: already past (deleted at once), far away, or invalid; never a TTL that could run
# out between A and B.
TTLS = ["-1", "0", "1000000", "4102444800", "9999999999999999"]
STREAM_IDS = ["0", "0-1", "1-1", "1-2", "2-0", "3-*", "-", "+", "$", ">", "x"]
SCRIPTS = ["return redis.call('GET', KEYS[1])", "return redis.call('INCR', KEYS[1])",
           "return redis.call('LPUSH', KEYS[1], ARGV[1])", "return {1, 'two', ARGV[1], {3}}",
           "return redis.error_reply('boom')", "return redis.status_reply('fine')",
           "return redis.pcall('HSET', KEYS[1], 'f', ARGV[1])", "return 3.7", "error(",
           "return redis.call('nosuchcommand')"]


def pairs(flat):
    """A RESP2 flattened map as a dict with str keys."""
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in zip(flat[::2], flat[1::2])}


def text(x):
    return x.decode() if isinstance(x, bytes) else x


def kind(x):
    return "nil" if x is None else "error" if isinstance(x, RespError) else type(x).__name__


def norm(x):
    if isinstance(x, list):
        return "[" + ",".join(sorted(norm(e) for e in x)) + "]"
    return kind(x) + ":" + repr(x)


def same(a, b, cls):
    if documented(a, b):
        return True
    if kind(a) != kind(b):
        return False
    if isinstance(a, list):
        if len(a) != len(b):
            return False
        if cls == SHAPED:
            return True
        a = [y if documented(x, y) else x for x, y in zip(a, b)]  # inside EXEC
        if cls == UNORD:
            return norm(a) == norm(b)
        return all(same(x, y, EXACT) for x, y in zip(a, b))
    return cls == SHAPED or a == b


def documented(got, want):
    """WAIT after a transaction's pin was released: respgate cannot count replicas for
    writes made on a connection it let go (docs/architecture.md "WAIT", operations.md),
    where Redis counts (0: nothing replicates here). Only WAIT gets this error."""
    return (isinstance(got, RespError) and isinstance(want, int)
            and got.startswith("ERR WAIT cannot count replicas"))


def sort_unsubscribes(replies):
    """(P|S)UNSUBSCRIBE without channels walks the connection's own hash table: the
    channels come in an order set by the per-process hash seed. Sort each run of
    unsubscribe replies by channel, leaving the counts where they are."""
    out, i = list(replies), 0
    while i < len(out):
        j = i
        while j < len(out) and isinstance(out[j], list) and len(out[j]) == 3 and \
                out[j][0] in (b"unsubscribe", b"punsubscribe", b"sunsubscribe"):
            j += 1
        names = sorted(((out[k][0], out[k][1]) for k in range(i, j)), key=repr)
        out[i:j] = [[kd, ch, out[i + n][2]] for n, (kd, ch) in enumerate(names)]
        i = max(j, i + 1)
    return out


def short(x, n=3000):
    r = repr(x)
    return r if len(r) <= n else r[:n] + "...(%d chars)" % len(r)


class Client:
    """One client's generator state: its prefix, scripts, keys it made nondeterministic."""

    def __init__(self, test, i):
        self.t, self.i = test, i
        self.rng = random.Random(SEED * 1000 + i)
        self.gen = -1
        self.gate = self.oracle = None
        self.admin = test.oracle.client()  # COMMAND GETKEYS, never in a session
        self.sent = set()

    def reconnect(self):
        for c in (self.gate, self.oracle):
            if c:
                c.close()
        self.gen += 1  # a new prefix: nothing the old connections did can interfere
        self.prefix = "{p%d.%d}:" % (self.i, self.gen)
        self.scripts = [s + " -- " + self.prefix for s in SCRIPTS]
        self.shas = [hashlib.sha1(s.encode()).hexdigest() for s in self.scripts]
        self.tainted = set()  # keys with contents that differ between A and B (XADD *, SPOP)
        self.gate, self.oracle = self.t.gate.client(), self.t.oracle.client()
        self.history = []  # what this connection was sent, for a failure's replay

    # --- argument generation from COMMAND DOCS -------------------------------------

    def key(self, group):
        code = KEYCODE.get(group) if self.rng.random() < 0.85 else None
        return "%s%s%d" % (self.prefix, code or self.rng.choice("sltzhxp"), self.rng.randrange(3))

    def value(self, entry, a, out):
        rng, p, name, typ = self.rng, self.prefix, text(a["name"]), text(a["type"])
        tok = text(a.get("token") or "").upper()
        if name == "numkeys":
            self.numkeys = (len(out), self.nkeys)  # filled in once the keys are there
            return "?"
        if name in ("channel", "shardchannel"):
            return p + "ch%d" % rng.randrange(3)
        if typ == "pattern":
            return p + rng.choice(["*", "ch?", "ch[01]", "s*", "x"])
        fixed = {"numreplicas": ["0"], "min-idle-time": ["0"],  # WAIT needs no replica
                 "client-id": ["999999999"],  # ids differ on A and B: never another's
                 "encoding": ["u8", "i16", "u4", "i64", "x9"], "bit": ["0", "1"],
                 "operation": ["AND", "OR", "XOR", "NOT", "NOPE"], "protover": ["2", "2", "1"],
                 "longitude": ["13.36", "15.08", "200"], "latitude": ["38.11", "37.5", "90"],
                 "radius": ["1", "100", "500000"], "width": ["1", "500000"],
                 "height": ["1", "500000"], "host": ["127.0.0.1"], "port": ["1", "0"],
                 "subcommand": ["GETREG", "ENCODING", "TODENSE", "DECODE", "x"],
                 "username": ["default", p + "u"], "version": ["5", "6", "1"],
                 "category": ["string", "keyspace", "x"], "categoryname": ["string", "x"],
                 "parameter": ["maxmemory", "*max*", "x"], "bits": ["64", "5", "x"],
                 "db": ["0", "1", "3", "16"], "destination-db": ["0", "1", "3", "16"],
                 "offset": ["0", "1", "7", "100", "-1", "x"], "script": self.scripts,
                 "sha1": self.shas + ["f" * 40], "group": [p + "g0", p + "g1"],
                 "groupname": [p + "g0", p + "g1"], "consumer": [p + "c0", p + "c1"],
                 "consumername": [p + "c0", p + "c1"],
                 "command-name": [e.split("|")[0] for e in self.t.entries] + ["x"]}
        if name in fixed:
            return rng.choice(fixed[name])
        if entry == "select":
            return rng.choice(["0", "1", "2", "3", "16", "x"])
        if name == "timeout" or tok == "BLOCK":  # never 0: that blocks for ever
            return rng.choice(["0.01", "0.02", "-1", "x"] if typ == "double" else ["5", "10"])
        if name in ("seconds", "milliseconds", "ms", "ttl") or typ == "unix-time":
            return rng.choice(TTLS)
        if self.t.groups[entry] == "stream" and name in (
                "id", "start", "end", "last-id", "max_deleted_entry_id", "threshold"):
            return rng.choice(STREAM_IDS)
        if typ == "integer":
            return rng.choice(INTS)
        if typ == "double":
            return rng.choice(DOUBLES)
        if rng.random() < 0.65:
            return p + rng.choice(["a", "b", "c", "1", "2", "hello"])
        return rng.choice(RAW + ["[" + p + "a"])

    def args(self, entry, specs, out):
        for a in map(pairs, specs):
            flags = [text(f) for f in a.get("flags", [])]
            if "optional" in flags and self.rng.random() < 0.5:
                continue
            for j in range(self.rng.choice((1, 1, 2, 3)) if "multiple" in flags else 1):
                if a.get("token") and (j == 0 or "multiple_token" in flags):
                    out.append(text(a["token"]))
                typ = text(a["type"])
                if typ == "oneof":
                    self.args(entry, [self.rng.choice(a["arguments"])], out)
                elif typ == "block" and text(a["name"]) == "streams":  # n keys, n ids
                    n = self.rng.choice((1, 1, 2))
                    out += [self.key("stream") for _ in range(n)]
                    out += [self.rng.choice(STREAM_IDS) for _ in range(n)]
                elif typ == "block":
                    self.args(entry, a["arguments"], out)
                elif typ == "key":
                    self.nkeys += 1
                    out.append(self.key(self.t.groups[entry]))
                elif typ != "pure-token":
                    out.append(self.value(entry, a, out))

    def build(self, entry):
        rng = self.rng
        out = [w.upper() if rng.random() < 0.8 else w for w in entry.split("|")]
        base = len(out)
        self.numkeys, self.nkeys = None, 0
        if entry in ("command|getkeys", "command|getkeysandflags", "acl|dryrun"):
            inner = rng.choice(self.t.entries)
            if inner in ("command|getkeys", "command|getkeysandflags", "acl|dryrun"):
                inner = "get"
            out += (["default"] if entry == "acl|dryrun" else []) + self.build(inner)
            return out
        self.args(entry, self.t.docs[entry], out)
        if self.numkeys:
            at, before = self.numkeys
            out[at] = str(self.nkeys - before) if rng.random() < 0.85 else rng.choice(INTS)
        r = rng.random()
        if r < 0.06 and len(out) > base:
            out.pop()  # arity and syntax errors must come back the same too
        elif r < 0.1:
            out.append(self.value(entry, {"name": "extra", "type": "string"}, out))
        if entry in ("keys", "pubsub|channels", "pubsub|shardchannels") and (
                len(out) == base or not out[base].startswith(self.prefix)):
            out[base:] = [self.prefix + "*"]  # any other pattern lists others' names
        return out

    def command(self, in_multi):
        """A random command whose keys all carry this client's prefix."""
        rng = self.rng
        while True:
            entry = rng.choice(self.t.session if rng.random() < 0.25 else self.t.entries)
            if rng.random() > RARE.get(entry, 1) or entry == "script|debug":
                continue  # SCRIPT DEBUG: only in debug_round
            argv = self.build(entry)
            # Redis itself answers a several-channel (UN)SUBSCRIBE inside MULTI with more
            # replies than EXEC's array announces: its own framing breaks there.
            if in_multi and entry in PUBSUB and len(argv) != 2:
                continue
            # respgate answers CLIENT ID/INFO/GETNAME/SETNAME/SETINFO/LIST/KILL itself and refuses
            # them inside MULTI, which then fails EXEC (docs/architecture.md, "Sessions").
            if in_multi and entry in ANSWERED_BY_RESPGATE:
                continue
            keys = self.admin.call("COMMAND", "GETKEYS", *argv)
            if not isinstance(keys, list):  # "no key arguments", "Invalid arguments"...
                keys = []
            if all(text(k).startswith(self.prefix) for k in keys):
                return entry, argv, {text(k) for k in keys}

    def batch(self):
        """1-12 commands; sometimes one transaction. Each with its comparison class."""
        rng, cmds, in_multi, queued = self.rng, [], False, EXACT
        n = rng.randint(1, 12)
        tx = rng.random() < 0.15
        while len(cmds) < n:
            if tx and not cmds:
                entry, argv, keys = "multi", ["MULTI"], set()
            elif tx and len(cmds) == n - 1:
                entry = rng.choice(["exec", "exec", "discard"])
                argv, keys = [entry.upper()], set()
            else:
                entry, argv, keys = self.command(in_multi)
            cls = SHAPED if entry in SHAPE else UNORD if entry in UNORDERED else EXACT
            if entry in ("sort", "sort_ro") and "BY" in [a.upper() for a in argv]:
                cls = SHAPED  # BY without '*' keeps a set's own (hash seed) order
            if keys & self.tainted or (entry == "xadd" and "*" in argv) or entry == "spop":
                self.tainted |= keys  # stream ids from the clock, random SPOP removals
                cls = SHAPED
            # As Redis: MULTI, DISCARD and RESET with arguments are refused and change
            # nothing; EXEC inside MULTI ends it even when refused.
            if entry == "multi" and len(argv) == 1 and not in_multi:
                in_multi, queued = True, EXACT
            elif entry == "exec" or (entry in ("discard", "reset") and len(argv) == 1):
                cls, in_multi = max(cls, queued), False
            elif in_multi:
                queued = max(queued, cls)
            cmds.append((entry, argv, cls))
            self.sent.add(entry)
        return cmds

    # --- the loop -----------------------------------------------------------------

    def read_until(self, conn, marker, side, data, got):
        while True:
            try:
                r = conn.read()
            except Exception as e:
                raise AssertionError("%s: %r after %d replies\n  batch: %s\n  replies: %s"
                                     % (side, e, len(got), short(data), short(got)))
            if r == marker or r == [b"pong", marker]:
                return got
            got.append(r)

    def debug_round(self, b):
        """SCRIPT DEBUG YES alone, then NO: Redis refuses SCRIPT DEBUG while the connection
        has replies pending ("outside a pipeline"), and an EVAL in between would start a
        debugger session. Meanwhile, other clients' EVALs must run as usual."""
        for mode in ("YES", "NO"):
            data, marker = encode("SCRIPT", "DEBUG", mode), b"d%d.%d" % (self.i, b)
            self.gate.send(data + encode("PING", marker))
            self.oracle.send(data + encode("PING", marker))
            where = "client %d batch %d (PROP_SEED=%d) SCRIPT DEBUG %s" % (self.i, b, SEED, mode)
            got = self.read_until(self.gate, marker, where + " respgate", data, [])
            want = self.read_until(self.oracle, marker, where + " redis", data, [])
            if got != want:
                raise AssertionError("%s\n  respgate: %s\n  redis:    %s" % (where, got, want))
            time.sleep(0.05)  # a window for other clients' commands
        self.sent.add("script|debug")
        # A debugging session (redis-cli --ldb) has its connection to itself: respgate
        # gives it a tunnel that does not carry the client's name (docs/architecture.md,
        # "Sessions"). Go on from a new one.
        self.reconnect()

    def run(self):
        for b in range(BATCHES):
            if self.t.stop.is_set():
                return
            if self.gate is None or self.rng.random() < 0.04:
                self.reconnect()
            if self.rng.random() < DEBUG_ROUND:
                self.debug_round(b)
            cmds = self.batch()
            marker = b"m%d.%d" % (self.i, b)
            data = b"".join(encode(*argv) for _, argv, _ in cmds)
            # An open MULTI would queue the marker: close it (an error outside MULTI).
            tail = encode("DISCARD") if any(e == "multi" for e, _, _ in cmds) else b""
            tail += encode("PING", marker)
            self.history.append(data + tail)
            self.gate.send(data + tail)
            self.oracle.send(data + tail)
            where = "client %d batch %d (PROP_SEED=%d)" % (self.i, b, SEED)
            got = self.read_until(self.gate, marker, where + " respgate", data, [])
            want = self.read_until(self.oracle, marker, where + " redis", data, [])
            # One reply per command unless (un)subscribe is in the batch: then every reply
            # is held to the loosest class in the batch.
            one_each = len(want) == len(cmds) + bool(tail != encode("PING", marker)) and \
                not any(e in PUBSUB for e, _, _ in cmds)
            loosest = max(c for _, _, c in cmds)
            if any(e in PUBSUB and len(a) == 1 for e, a, _ in cmds):
                got, want = sort_unsubscribes(got), sort_unsubscribes(want)
            for k in range(max(len(got), len(want))):
                g = got[k] if k < len(got) else "<no reply>"
                w = want[k] if k < len(want) else "<no reply>"
                entry, cls = (cmds[k][0], cmds[k][2]) if one_each and k < len(cmds) else (None, loosest)
                if k < len(got) and k < len(want) and same(g, w, cls):
                    continue
                raise AssertionError(
                    "%s: reply #%d differs (command: %s)\n  batch: %s\n  respgate: %s\n"
                    "  redis:    %s\n  all respgate replies: %s\n  all redis replies: %s\n"
                    "  this connection was sent before (each write): %s"
                    % (where, k, entry or "?", short(data), short(g), short(w),
                       short(got), short(want), short(self.history[:-1], 20000)))


class CommandTableProperty(ProxyTestCase):

    def setUp(self):
        super().setUp()  # Redis A and respgate in front of it (2 threads, 2 conns/node)
        self.oracle = self.h.redis()  # Redis B, reached directly

    def load_table(self):
        c = self.oracle.client()
        self.docs, self.groups = {}, {}
        for name, d in pairs(c.call("COMMAND", "DOCS")).items():
            d = pairs(d)
            subs = pairs(d["subcommands"]) if "subcommands" in d else {name: d}
            for sub, sd in subs.items():
                sd = pairs(sd) if sd is not d else d
                self.docs[sub] = sd.get("arguments", [])
                self.groups[sub] = text(sd.get("group", ""))
        blocking = [text(x[0]) for x in c.call("COMMAND") if "blocking" in x[2]]
        c.close()
        self.entries = sorted(e for e in self.docs if e not in EXCLUDED)
        self.session = SESSION + blocking

    def test_every_reply_matches_redis(self):
        self.load_table()
        self.stop = threading.Event()
        failures, clients = [], [Client(self, i) for i in range(CLIENTS)]

        def run(cl):
            try:
                cl.run()
            except BaseException as e:  # first failure stops every client
                failures.append(str(e))
                self.stop.set()

        threads = [threading.Thread(target=run, args=(cl,)) for cl in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join(900)
        self.assertFalse(any(t.is_alive() for t in threads), "clients still running")
        self.assertIsNone(self.gate.proc.poll(), "respgate died:\n" + self.gate.output()[-4000:])
        if failures:
            self.fail("seed %d: %s" % (SEED, failures[0]))
        sent = set().union(*(cl.sent for cl in clients))
        missing = sorted(set(self.entries) - sent)
        self.assertEqual(missing, [], "commands never sent (raise PROP_BATCHES?)")
        self.gate.stop()  # clean exit, no sanitizer report
        self.assertNotIn("a reply with no request waiting", self.gate.output())


if __name__ == "__main__":
    main()
