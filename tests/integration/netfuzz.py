#!/usr/bin/env python3
"""A network fuzzer for respgate: many connections send random and mutated RESP while
innocent clients check that nothing reaches them.

    RESPGATE_BIN=build-asan/respgate /usr/bin/python3 tests/integration/netfuzz.py \
        --inputs 100000 --connections 50 --seed 1

One redis-server (and, unless --replicas 0, a replica of it) with respgate in front
(2 threads, 2 shared connections per node), all started by harness.py.

- K fuzz connections (--connections) send N inputs in all (--inputs). An input is a
  valid command from a corpus (GET, SET, INCR, MULTI/EXEC, SUBSCRIBE, PING, HELLO,
  CLIENT, EVAL, inline commands...), most of the time mutated: bytes flipped, inserted
  or deleted, lengths broken (leading zeros, signs, huge, negative, off by one), cut at
  a random point, duplicated, spliced, '*' nested, CRLF made a bare LF or a lone CR, a
  type byte changed; or random binary. Each connection sends a few inputs at a time,
  cut into a few writes at random points, then reads whatever comes back until it has
  been quiet for a few milliseconds; when respgate closes it, the next round opens a
  new one, and now and then the fuzzer closes it itself (half the time with a reset).
  What is sent depends only on --seed: every connection has its own RNG, drawn the
  same whatever respgate answers.
- 4 innocent clients INCR counters of their own through respgate in small pipelines
  (shared connections), and 2 (--tx-innocents) wrap each INCR in MULTI/EXEC, half the
  time after a WATCH, so that every round takes a session connection from the pool
  respgate keeps and gives it back. Each reply is checked byte for byte: exactly the
  previous value + 1, nothing else, nothing out of place.
- A monitor follows respgate's log ("connection lost, reconnecting": a shared upstream
  connection dropped, i.e. a fuzz input reached Redis on a connection other clients
  share and broke it; malformed or unexpected replies; sanitizer reports), Redis' log
  (loglevel verbose: the "Protocol error" lines, with the bytes Redis choked on), and
  Redis' CLIENT LIST / INFO stats: every connection respgate had open before the
  fuzzing must still be there at the end (its id unchanged), and
  total_connections_received says how many connections respgate opened meanwhile
  (sessions and tunnels open their own, so that figure is informational).

At the end it prints the figures and exits 1 if an innocent client saw an error or a
wrong value, respgate died or exited uncleanly, a sanitizer report appeared, a
shared upstream connection was re-established, or respgate lost count of the replies
on any connection, one client's own included ("unexpected reply" / "malformed reply":
that client got replies that were not its own).

Then, for each kind of problem seen (a shared connection lost, an innocent client's
kind of wrong reply, an odd reply), what the fuzz connections sent just before it is
replayed on a second respgate (one thread, so one pool of session connections, in
front of the same Redis; session connections are killed between replays), narrowed
down to one connection's input (ddmin), then shrunk (inputs, arguments, bulk lengths,
lines, bytes) and printed as a Python bytes literal, within --minimize-seconds in all
(--no-minimize to skip). With a problem, the test directory is kept, and
netfuzz-events.txt in it lists every event with the batches sent in the second before.
NETFUZZ_DEBUG=1 shows each replay.
"""
import argparse
import os
import random
import re
import shutil
import signal
import socket
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import encode  # noqa: E402

C = encode

# --- the corpus: valid requests -----------------------------------------------------------
# Keys are fz:*, never an innocent client's. No command that would stall or change the
# whole server (no loops in scripts, no CLIENT PAUSE/KILL, no FLUSH*, no DEBUG, no
# CONFIG): a mutation cannot reach those either, and what Redis itself does with them
# is not respgate's to prevent.

CORPUS = [
    C("PING"), C("PING", "hello"), C("ECHO", "fz"), C("GET", "fz:a"), C("SET", "fz:a", "1"),
    C("SET", "fz:b", "hello world"), C("SET", "fz:c", "x", "EX", "100"),
    C("SET", "fz:d", "v", "NX"), C("INCR", "fz:n"), C("INCRBY", "fz:n", "5"), C("DECR", "fz:n"),
    C("MGET", "fz:a", "fz:b"), C("MSET", "fz:a", "1", "fz:b", "2"), C("DEL", "fz:a"),
    C("EXISTS", "fz:b"), C("APPEND", "fz:s", "abc"), C("STRLEN", "fz:s"), C("TYPE", "fz:a"),
    C("TTL", "fz:c"), C("HSET", "fz:h", "f", "v"), C("HGETALL", "fz:h"),
    C("RPUSH", "fz:l", "a", "b"), C("LPOP", "fz:l"), C("LRANGE", "fz:l", "0", "-1"),
    C("XADD", "fz:x", "MAXLEN", "100", "*", "f", "v"), C("XREAD", "COUNT", "1", "STREAMS", "fz:x", "0"),
    C("DBSIZE"), C("TIME"), C("COMMAND", "COUNT"), C("INFO", "server"),
    # sessions: a pinned connection
    C("MULTI"), C("EXEC"), C("DISCARD"),
    C("MULTI") + C("INCR", "fz:m") + C("GET", "fz:m") + C("EXEC"),
    C("MULTI") + C("SET", "fz:m", "1") + C("DISCARD"),
    C("WATCH", "fz:w") + C("MULTI") + C("SET", "fz:w", "1") + C("EXEC"), C("UNWATCH"),
    C("SELECT", "1"), C("SELECT", "0"), C("BLPOP", "fz:l", "0.05"),
    C("XREAD", "BLOCK", "20", "STREAMS", "fz:x", "$"), C("AUTH", "nobody", "nothing"),
    C("READONLY"), C("READWRITE"),
    # session commands Redis refuses (wrong arity): the session state must not change
    C("MULTI", "x"), C("EXEC", "x"), C("DISCARD", "x"), C("WATCH"), C("UNWATCH", "x"),
    C("SELECT", "0", "x"), C("SELECT", "5") + C("SELECT", "0", "x"),
    C("MULTI") + C("DISCARD", "x"), C("WATCH", "fz:w") + C("UNWATCH", "x"),
    # tunnels
    C("SUBSCRIBE", "fz:ch"), C("PSUBSCRIBE", "fz:*"), C("UNSUBSCRIBE"), C("PUNSUBSCRIBE"),
    C("SUBSCRIBE", "fz:ch") + C("PING") + C("UNSUBSCRIBE", "fz:ch"),
    C("PUBLISH", "fz:ch", "hi"), C("HELLO"), C("HELLO", "3"), C("HELLO", "2"),
    C("HELLO", "3", "SETNAME", "fz"), C("HELLO", "2", "AUTH", "default", "nopass"),
    C("SSUBSCRIBE", "fz:s"), C("SUNSUBSCRIBE"), C("SPUBLISH", "fz:s", "hi"),
    C("SUBSCRIBE", "fz:ch") + C("SSUBSCRIBE", "fz:s") + C("SUNSUBSCRIBE", "fz:s"),
    C("CLIENT", "REPLY", "OFF"), C("CLIENT", "REPLY", "ON"), C("CLIENT", "REPLY", "SKIP"),
    C("MONITOR"),
    # CLIENT about itself, answered by respgate or forwarded
    C("CLIENT", "ID"), C("CLIENT", "GETNAME"), C("CLIENT", "SETNAME", "fz-client"),
    C("CLIENT", "INFO"), C("CLIENT", "SETINFO", "LIB-NAME", "fz"),
    C("CLIENT", "TRACKING", "ON"), C("CLIENT", "NO-EVICT", "ON"), C("CLIENT", "LIST"),
    # scripts
    C("EVAL", "return 1", "0"), C("EVAL", "return redis.call('GET', KEYS[1])", "1", "fz:a"),
    C("EVAL", "return redis.call('INCR', KEYS[1])", "1", "fz:e"),
    C("EVAL", "return {1, 2, 'x', {3}}", "0"), C("EVAL", "return redis.error_reply('fz')", "0"),
    C("EVAL", "return ARGV[1]", "0", "arg"), C("EVAL_RO", "return 1", "0"),
    C("SCRIPT", "LOAD", "return 2"), C("EVALSHA", "7f923f79fe76194c868d7e1d0820de36700eb649", "0"),
    # others respgate treats specially
    C("WAIT", "0", "10"), C("RESET"), C("QUIT"),
    # inline
    b"PING\r\n", b"PING\n", b"GET fz:a\r\n", b"SET fz:a 1\r\n", b'SET fz:q "a b\\x41"\r\n',
    b"INCR fz:n\r\n", b"MULTI\r\nINCR fz:m\r\nEXEC\r\n", b"SUBSCRIBE fz:ch\r\n", b"HELLO 3\r\n",
    b"CLIENT ID\r\n", b'EVAL "return 1" 0\r\n', b"\r\n", b"  PING  \r\n", b"ECHO 'x y'\r\n",
    b"SELECT 1\r\n", b"QUIT\r\n",
]

SPECIAL = b"*$:+-_,#!=%~>|\r\n0123456789 \t\"'\\\x00\x0b\xff"
LEN_RE = re.compile(rb"([*$])(-?\d+)(?=[\r\n])")
BIG_NUMBERS = [b"9999999999", b"2147483647", b"2147483648", b"4294967296", b"4294967295",
               b"9223372036854775807", b"9223372036854775808", b"-9223372036854775808",
               b"-9223372036854775809", b"18446744073709551616", b"99999999999999999999999",
               b"536870912", b"536870913", b"1048576", b"65536", b"65537", b"1024"]


def _num_variants(n):
    g = b"%d" % n
    return [b"0" + g, b"00" + g, b"+" + g, b"-0", b"-00", b"+0", b"-1", b"-2", b"-" + g,
            b"%d" % (n + 1), b"%d" % max(n - 1, 0), b"%d" % (2 * n + 7), b"0", b"00", b"",
            b"-", b"+", b" " + g, g + b" ", b"\t" + g, g + b"x", b"0x%x" % n, b"1e2",
            g + b"\x00", g + g, g + b"0" * 3] + BIG_NUMBERS


def m_length(rng, d):
    ms = list(LEN_RE.finditer(d))
    if not ms:
        return b"*%s\r\n" % rng.choice(_num_variants(1)) + d
    m = rng.choice(ms)
    s, e = m.span(2)
    return d[:s] + rng.choice(_num_variants(int(m.group(2)))) + d[e:]


def m_type(rng, d):
    ms = [m.start(1) for m in LEN_RE.finditer(d)]
    i = rng.choice(ms) if ms else rng.randrange(len(d) + 1)
    return d[:i] + rng.choice([b"*", b"$", b":", b"+", b"-", b"", b"$$", b"**", b"\x00", b"x",
                                b"_", b"#", b",", b"%", b">", b"~", b"\n"]) + d[i + 1:]


def m_flip(rng, d):
    if not d:
        return bytes([rng.getrandbits(8)])
    b = bytearray(d)
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(b))
        if rng.random() < 0.5:
            b[i] ^= 1 << rng.randrange(8)
        else:
            b[i] = rng.choice(SPECIAL)
    return bytes(b)


def m_insert(rng, d):
    i = rng.randrange(len(d) + 1)
    if rng.random() < 0.6:
        ins = bytes(rng.choice(SPECIAL) for _ in range(rng.randint(1, 4)))
    else:
        ins = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 8)))
    return d[:i] + ins + d[i:]


def m_delete(rng, d):
    if not d:
        return d
    i = rng.randrange(len(d))
    return d[:i] + d[i + rng.randint(1, 4):]


def m_cut(rng, d):
    i = rng.randrange(len(d) + 1)
    return d[:i] if rng.random() < 0.7 else d[i:]


def m_dup(rng, d):
    if not d or rng.random() < 0.3:
        return d * rng.randint(2, 3)
    i = rng.randrange(len(d))
    j = min(len(d), i + rng.randint(1, 32))
    return d[:j] + d[i:j] * rng.randint(1, 4) + d[j:]


def m_nest(rng, d):
    r = rng.random()
    if r < 0.3:
        return b"".join(b"*%d\r\n" % rng.randint(0, 3) for _ in range(rng.randint(1, 4))) + d
    bulks = [m.start(1) for m in LEN_RE.finditer(d) if m.group(1) == b"$"]
    if r < 0.6 and bulks:
        i = rng.choice(bulks)
        return d[:i] + b"*1\r\n" + d[i:]
    crlf = [m.end() for m in re.finditer(rb"\r\n", d)]
    i = rng.choice(crlf) if crlf else len(d)
    return d[:i] + rng.choice([b"*2\r\n$1\r\na\r\n$1\r\nb\r\n", b"*1\r\n*1\r\n$4\r\nPING\r\n",
                               b"*0\r\n", b"*-1\r\n", b"*1\r\n"]) + d[i:]


def _replace_eol(rng, d, to):
    spots = [m.start() for m in re.finditer(rb"\r\n", d)]
    if not spots:
        return d + to
    if rng.random() < 0.25:
        return d.replace(b"\r\n", to)
    i = rng.choice(spots)
    return d[:i] + to + d[i + 2:]


def m_lf(rng, d):
    return _replace_eol(rng, d, b"\n")


def m_cr(rng, d):
    return _replace_eol(rng, d, rng.choice([b"\r", b"\rX", b"\r\r", b"\n\r", b"\r\x00", b"\r\r\n"]))


def m_splice(rng, d):
    o = rng.choice(CORPUS)
    return d[:rng.randrange(len(d) + 1)] + o[rng.randrange(len(o) + 1):]


def m_payload(rng, d):
    """A bulk's payload made longer or shorter, its length kept or made to match."""
    ms = [m for m in LEN_RE.finditer(d) if m.group(1) == b"$" and int(m.group(2)) >= 0]
    if not ms:
        return d
    m = rng.choice(ms)
    n = int(m.group(2))
    start = m.end() + 2
    new = bytes(rng.choice(b"abcxyz\r\n$*") for _ in range(rng.choice((0, 1, min(n + 1, 6000), 300, 5000))))
    length = b"%d" % len(new) if rng.random() < 0.7 else m.group(2)
    return d[:m.start(2)] + length + d[m.end(2):start] + new + d[start + n:]


def m_case(rng, d):
    return d.lower() if rng.random() < 0.5 else d.swapcase()


MUTATIONS = ([m_length] * 4 + [m_type] * 2 + [m_flip] * 3 + [m_insert] * 3 + [m_delete] * 2 +
             [m_cut] * 3 + [m_dup] * 2 + [m_nest] * 2 + [m_lf] * 2 + [m_cr] * 2 +
             [m_splice] * 2 + [m_payload] * 2 + [m_case])


# Well-framed commands with random arguments (binary ones too: a bulk may hold CRLF,
# '*' and '$'). Only names that cannot stall or change the whole server.
NAMES = [b"GET", b"SET", b"INCR", b"DEL", b"MGET", b"MSET", b"EXISTS", b"ECHO", b"PING",
         b"APPEND", b"HSET", b"HGET", b"LPUSH", b"RPOP", b"SADD", b"SMEMBERS", b"ZADD",
         b"ZRANGE", b"EXPIRE", b"TTL", b"TYPE", b"STRLEN", b"GETRANGE", b"OBJECT", b"MULTI",
         b"EXEC", b"DISCARD", b"WATCH", b"SUBSCRIBE", b"PSUBSCRIBE", b"UNSUBSCRIBE", b"PUBLISH",
         b"EVAL", b"EVALSHA", b"HELLO", b"SELECT", b"BLPOP", b"WAIT", b"QUIT", b"RESET",
         b"AUTH", b"READONLY", b"XREAD", b"XADD", b"FOO", b"GETX", b"", b"\x00", b"get\r\n",
         b"SSUBSCRIBE", b"SUNSUBSCRIBE", b"SPUBLISH", b"UNWATCH", b"PUNSUBSCRIBE",
         b"CLIENT ID", b"COMMAND", b"INFO"]
CLIENT_SUBS = [b"ID", b"GETNAME", b"SETNAME", b"INFO", b"REPLY", b"TRACKING", b"CACHING",
               b"NO-EVICT", b"NO-TOUCH", b"SETINFO", b"GETREDIR", b"TRACKINGINFO", b"LIST",
               b"HELP", b"UNKNOWN"]
ARGS = [b"fz:a", b"fz:n", b"0", b"1", b"-1", b"3", b"ON", b"OFF", b"SKIP", b"BLOCK", b"STREAMS",
        b"$", b"*", b"", b"\r\n", b"*1\r\n$4\r\nPING\r\n", b"$-1\r\n", b"0.01", b"AUTH",
        b"SETNAME", b"return 1", b"return redis.call('INCR', KEYS[1])", b"fz:ch", b"fz:*"]


def gen_valid(rng):
    name = rng.choice(NAMES)
    if rng.random() < 0.2:
        name = name.lower()
    args = [name]
    if name.upper() == b"CLIENT":
        args.append(rng.choice(CLIENT_SUBS))
    for _ in range(rng.choice((0, 1, 1, 2, 2, 3, 5))):
        r = rng.random()
        if r < 0.6:
            args.append(rng.choice(ARGS))
        elif r < 0.9:
            args.append(bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 24))))
        else:
            args.append(bytes(rng.choice(b"ab\r\n*$") for _ in range(rng.choice((100, 3000)))))
    return encode(*args)


def generate(rng, clean=False):
    r = rng.random()
    if clean and r < 0.8:
        return rng.choice(CORPUS) if r < 0.4 else gen_valid(rng)
    if r < 0.12:  # valid, as it is
        return rng.choice(CORPUS)
    if r < 0.25:  # valid, random arguments
        return gen_valid(rng)
    if r < 0.30:  # random binary
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(1, rng.choice((16, 512)))))
    if r < 0.34:  # random bytes of the RESP alphabet
        return bytes(rng.choice(SPECIAL + b"PINGSET") for _ in range(rng.randint(1, 64)))
    d = rng.choice(CORPUS) if rng.random() < 0.7 else gen_valid(rng)
    if rng.random() < 0.15:
        d += rng.choice(CORPUS)
    n = 1
    while n < 5 and not clean and rng.random() < 0.45:
        n += 1
    for _ in range(n):
        d = rng.choice(MUTATIONS)(rng, d)[:16384]
    return d


# --- fuzz connections ------------------------------------------------------------------------

def connect(port, timeout=2.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def close_rst(s):
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()


def drain(s, quiet, cap=0.5, limit=4 << 20):
    """Reads until quiet for `quiet` s (at most `cap` s, `limit` bytes): (data, closed)."""
    data, end = b"", time.monotonic() + cap
    while len(data) < limit:
        left = end - time.monotonic()
        if left <= 0:
            return data, False
        s.settimeout(min(quiet, left))
        try:
            chunk = s.recv(1 << 18)
        except socket.timeout:
            return data, False
        except OSError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


LOST_TEXT = b"upstream connection lost"


class Fuzzer(threading.Thread):
    def __init__(self, run, k, quota):
        super().__init__(name="fuzz-%d" % k, daemon=True)
        self.run_, self.k, self.quota = run, k, quota
        self.rng = random.Random("%s/fuzz/%d" % (run.seed, k))
        self.sent = self.connections = self.closed_by_server = self.stalled = 0
        self.connect_errors = 0
        self.lost_replies = 0
        self.last = None

    def run(self):
        run, rng = self.run_, self.rng
        s, conn = None, None
        left = self.quota
        while left > 0 and not run.stop.is_set():
            # Everything drawn here is drawn whatever respgate does: same seed, same inputs.
            n = min(rng.randint(1, 8), left)
            clean = rng.random() < 0.35  # a batch of mostly valid commands, mildly mutated
            inputs = [generate(rng, clean) for _ in range(n)]
            payload = b"".join(inputs)
            self.last = payload
            cuts = sorted(rng.randrange(len(payload) + 1) for _ in range(rng.randint(0, 3)))
            pause = rng.random() < 0.2
            quiet = rng.choice((0.005, 0.02, 0.05))
            close_draw, rst = rng.random(), rng.random() < 0.5
            left -= n

            while s is None:
                try:
                    s = connect(run.gate.port)
                except OSError:
                    self.connect_errors += 1
                    if run.gate.proc.poll() is not None or run.stop.is_set():
                        return
                    time.sleep(0.05)
                    continue
                self.connections += 1
                conn = (self.k, self.connections)
            t0 = time.time()
            closed = False
            try:
                s.settimeout(2.0)
                prev = 0
                for c in cuts + [len(payload)]:
                    if c > prev:
                        s.sendall(payload[prev:c])
                        prev = c
                        if pause:
                            time.sleep(0.001)
            except socket.timeout:  # respgate is not reading us (back-pressure): drop it
                self.stalled += 1
                closed = True
            except OSError:
                closed = True
            self.sent += n
            data = b""
            if not closed:
                data, closed = drain(s, quiet)
                if closed:
                    self.closed_by_server += 1
            if LOST_TEXT in data:
                self.lost_replies += 1
            run.record(t0, time.time(), conn, inputs, data)
            if closed or close_draw < 0.1:
                if rst and not closed:
                    close_rst(s)
                else:
                    s.close()
                s = None
        if s is not None:
            s.close()


# --- innocent clients -------------------------------------------------------------------------

class WrongReply(AssertionError):
    def __init__(self, want, got):
        super().__init__("expected %r, got %r" % (want, got[:300]))
        self.sig = signature(want, got)


def signature(want, got):
    """What kind of wrong reply got is, numbers aside: another value ("wrong value"),
    or the replies themselves (errors, nil...)."""
    def norm(b):
        return re.sub(rb"\d+", b"N", b)
    return "wrong value" if norm(got) == norm(want) else norm(got)[:120].decode("latin-1")


class Innocent(threading.Thread):
    """INCRs of a counter of its own, each reply checked byte for byte. A plain one
    sends them in small pipelines (shared connections); a transactional one (tx) wraps
    each in MULTI/EXEC, half the time after a WATCH of the counter, so every round
    takes a session connection from the pool respgate keeps, and gives it back: one
    left in a state of a fuzz connection's (a transaction, a WATCH, a database,
    subscriptions) shows as a wrong reply."""

    def __init__(self, run, i, tx=False):
        super().__init__(name="innocent-%d" % i, daemon=True)
        self.run_, self.i, self.tx = run, i, tx
        self.key = "netfuzz:innocent%s:%d:%s" % ("-tx" if tx else "", i, os.urandom(6).hex())
        self.rng = random.Random("%s/innocent/%d" % (run.seed, i))
        self.done = 0
        self.value = 0
        self.errors = []
        self.sigs = []  # what kind of wrong each error was (WrongReply.sig)
        self.resync = False
        self.ready = threading.Event()

    def _read_exact(self, s, want):
        buf = b""
        while len(buf) < len(want):
            chunk = s.recv(65536)
            if not chunk:
                raise harness.ConnectionClosed("closed after %r" % buf[:200])
            buf += chunk
            if not want.startswith(buf[:len(want)]):
                break
        return buf

    def run(self):
        run = self.run_
        s = None
        while not run.stop.is_set():
            try:
                if s is None:
                    s = connect(run.gate.port, timeout=20.0)
                    if self.resync:  # after an error: where the counter really is
                        s.sendall(encode("GET", self.key))
                        m = re.match(rb"\$-1\r\n|\$\d+\r\n(\d+)\r\n", drain(s, 1.0, cap=20.0)[0])
                        if not m:
                            raise AssertionError("cannot read the counter back")
                        self.value = int(m.group(1) or 0)
                        self.resync = False
                if self.tx:
                    b, watch = 1, self.rng.random() < 0.5
                    want = b"+OK\r\n+QUEUED\r\n*1\r\n:%d\r\n" % (self.value + 1)
                    req = encode("MULTI") + encode("INCR", self.key) + encode("EXEC")
                    if watch:
                        want, req = b"+OK\r\n" + want, encode("WATCH", self.key) + req
                else:
                    b = self.rng.randint(1, 4)
                    want = b"".join(b":%d\r\n" % (self.value + j + 1) for j in range(b))
                    req = b"".join(encode("INCR", self.key) for _ in range(b))
                s.sendall(req)
                got = self._read_exact(s, want)
                if got != want:
                    raise WrongReply(want, got)
                self.value += b
                self.done += b
                if self.done >= 20:
                    self.ready.set()
            except Exception as e:  # noqa: BLE001
                self.errors.append((time.time(), "innocent %s%d: %s" % ("tx " if self.tx else "", self.i, e)))
                self.sigs.append(e.sig if isinstance(e, WrongReply) else type(e).__name__)
                self.resync = True  # re-read the counter on the new connection
                if s is not None:
                    s.close()
                s = None
                if run.gate.proc.poll() is not None:
                    break
                time.sleep(0.05)
        if s is not None:
            s.close()


# --- the monitor ----------------------------------------------------------------------------

DEBUG = os.environ.get("NETFUZZ_DEBUG")
SESSIONISH = re.compile(rb"(?i)multi|watch|select|subscribe|discard|exec|reset|client|auth|"
                        rb"readonly|readwrite|bl|br|bz|xread|hello|monitor|wait|script|function")
PIN_IDLE_MAX = 16  # proxy/upstream.c: idle session connections a worker keeps per node
INNOCENT = "an innocent client's wrong reply"
LOST = "shared connection lost"
ODD = {"malformed reply", "unexpected reply"}  # on a connection of one client's own too
LOG_MARKS = {
    "connection lost": LOST,
    "reconnecting": LOST,
    "connect failed": "connect failed",
    "malformed reply": "malformed reply",
    "a reply with no request waiting": "unexpected reply",
}
REDIS_PROTO = re.compile(r"Protocol error \((.*?)\) from client: id=(\d+) addr=(\S+).*?"
                         r"Query buffer during protocol error: (.*)$")


def client_list(c):
    out = {}
    for line in c.call("CLIENT", "LIST").decode().splitlines():
        f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
        out[int(f["id"])] = f
    return out


class Monitor(threading.Thread):
    def __init__(self, run, gate=None, redis=True):
        super().__init__(name="monitor", daemon=True)
        self.run_ = run
        self.gate, self.redis = gate or run.gate, redis
        self.events = []          # (wall time, kind, line) from respgate's log
        self.sanitizer = []
        self.redis_proto = []     # (node port, error, client id, query buffer)
        self._pos = {}
        self._part = {}
        self.lock = threading.Lock()
        self.conns = {}
        self.baseline = {}        # port -> {id: cmd}
        self.gone = {}            # port -> {id: cmd}
        self.tcr0, self.tcr = {}, {}     # total_connections_received, start and last
        self.cmds0, self.cmds = {}, {}   # total_commands_processed

    def _tail(self, path):
        try:
            with open(path, "rb") as f:
                f.seek(self._pos.get(path, 0))
                data = f.read()
                self._pos[path] = f.tell()
        except FileNotFoundError:
            return []
        data = self._part.pop(path, b"") + data
        lines = data.split(b"\n")
        self._part[path] = lines.pop()
        return [ln.decode(errors="replace") for ln in lines]

    @staticmethod
    def _when(line):
        try:
            t = time.strptime(line[:19], "%Y-%m-%dT%H:%M:%S")
            import calendar
            return calendar.timegm(t) + int(line[20:23]) / 1000.0
        except (ValueError, IndexError):
            return time.time()

    def poll_logs(self):
        run = self.run_
        for line in self._tail(self.gate.log_path):
            for mark in harness.SANITIZER_MARKS:
                if mark in line:
                    self.sanitizer.append(line)
            for mark, kind in LOG_MARKS.items():
                if mark in line:
                    with self.lock:
                        self.events.append((self._when(line), kind, line))
                    break
        for r in run.nodes if self.redis else ():
            path = os.path.join(run.h.dir, "redis-%d" % r.port, "redis.log")
            for line in self._tail(path):
                m = REDIS_PROTO.search(line)
                if m:
                    self.redis_proto.append((r.port, m.group(1), int(m.group(2)), m.group(4)))

    def count(self, kinds):
        with self.lock:
            return sum(1 for e in self.events if e[1] in kinds)

    def lost(self):
        return self.count({LOST})

    def take_baseline(self):
        run = self.run_
        for r in run.nodes:
            c = r.client()
            mine = c.call("CLIENT", "ID")
            self.conns[r.port] = c
            cl = client_list(c)
            self.baseline[r.port] = {i: f.get("cmd", "") for i, f in cl.items()
                                     if i != mine and not set(f.get("flags", "")) & set("SM")}
            self.gone[r.port] = {}
            st = r.info("stats")
            self.tcr0[r.port] = int(st["total_connections_received"])
            self.cmds0[r.port] = int(st["total_commands_processed"])

    def poll_redis(self):
        for r in self.run_.nodes:
            try:
                cl = client_list(self.conns[r.port])
                st = r.info("stats")
                self.tcr[r.port] = int(st["total_connections_received"])
                self.cmds[r.port] = int(st["total_commands_processed"])
            except (OSError, harness.ConnectionClosed):
                continue
            for i, cmd in self.baseline[r.port].items():
                if i not in cl:
                    self.gone[r.port][i] = cmd

    def run(self):
        run = self.run_
        n = 0
        while not run.monitor_stop.is_set():
            self.poll_logs()
            n += 1
            if n % 10 == 0:
                self.poll_redis()
            if run.gate.proc.poll() is not None:
                run.died.set()
                run.stop.set()
            time.sleep(0.1)
        self.poll_logs()
        self.poll_redis()


# --- the run ---------------------------------------------------------------------------------

class Run:
    def __init__(self, args):
        self.args, self.seed = args, args.seed
        self.stop, self.monitor_stop, self.died = threading.Event(), threading.Event(), threading.Event()
        self.batches = []
        self.block = threading.Lock()
        self.tries = 0
        self.target, self.target_sig, self.until = {LOST}, None, 0
        self.fuzz_events, self.fuzz_redis_proto = [], []

    def record(self, t0, t1, conn, inputs, reply):
        with self.block:
            self.batches.append((t0, t1, conn, inputs, reply[:200]))

    # --- replaying, to find and minimize a reproducer -------------------------------------
    # On a respgate of its own (one thread, so one pool of session connections), in
    # front of the same Redis, once the run is over. An oracle sends each of a list of
    # byte strings on a fresh connection, all at once, then looks for what it is after:
    # respgate logging an event of the kind (a shared connection lost, an unexpected or
    # malformed reply), or, for an innocent client's wrong reply, a transactional
    # client's rounds going wrong afterwards (a session connection left dirty).

    def start_replays(self):
        self.rgate = self.h.respgate(self.nodes[0].port, threads=1, regions=self.regions,
                                     upstream={"connections_per_node": 2})
        self.rmon = Monitor(self, gate=self.rgate, redis=False)
        self.rmon.poll_logs()
        # Every connection to the master now is a shared one (or a probe's): those the
        # replays for an innocent client's wrong reply open (sessions, tunnels) are
        # closed after each, so that none left dirty by one replay is found by the next.
        self.admin = self.nodes[0].client()
        time.sleep(0.5)  # the new respgate's connections are up
        self.keep = set(client_list(self.admin))

    def reset_sessions(self):
        """Closes the session and tunnel connections the replays opened: every
        connection to the master but those there when they began, and shared ones
        respgate re-established since (the first thing a new one sends is ROLE)."""
        killed = 0
        now = client_list(self.admin)
        self.keep |= {cid for cid, f in now.items() if f.get("cmd") == "role"}
        for cid in set(now) - self.keep:
            killed += self.admin.call("CLIENT", "KILL", "ID", str(cid)) == 1
        if killed:
            time.sleep(0.02)  # respgate sees them closed before the next replay

    def send_each(self, datas):
        def one(d):
            try:
                s = connect(self.rgate.port)
            except OSError:
                return
            try:
                s.settimeout(2.0)
                s.sendall(d)
                drain(s, 0.03, cap=0.3)
            except OSError:
                pass
            close_rst(s)
        with ThreadPoolExecutor(16) as ex:
            list(ex.map(one, datas))

    def sessions_wrong(self, rounds=2 * PIN_IDLE_MAX + 2):
        """A transactional client's rounds (each takes the pool's oldest idle session
        connection and puts it back last): the signature of the first reply that differs
        from Redis' own, or None. Its counter starts at 100 in database 0."""
        key = "netfuzz:check:%s" % os.urandom(6).hex()
        try:
            s = connect(self.rgate.port, timeout=5.0)
        except OSError:
            return "connect failed"
        try:
            s.sendall(encode("SET", key, 100))
            if drain(s, 1.0, cap=5.0)[0] != b"+OK\r\n":
                return "SET failed"
            for i in range(rounds):
                want = b"+OK\r\n+QUEUED\r\n*1\r\n:%d\r\n" % (101 + i)
                req = encode("MULTI") + encode("INCR", key) + encode("EXEC")
                if i % 2:
                    want, req = b"+OK\r\n" + want, encode("WATCH", key) + req
                s.sendall(req)
                buf = b""
                while len(buf) < len(want) and want.startswith(buf):
                    chunk = s.recv(65536)
                    if not chunk:
                        return "ConnectionClosed"
                    buf += chunk
                if buf != want:
                    return signature(want, buf)
            return None
        except OSError as e:
            return type(e).__name__
        finally:
            s.close()

    def oracle(self, datas):
        self.tries += 1
        before = self.rmon.count(self.target)
        wrong = False
        if INNOCENT in self.target:
            # a few connections at a time, each time followed by the transactional rounds
            # (as many as the pool can hold connections by then), then the pool emptied:
            # a dirty connection must not be cleaned by another one's session, nor pushed
            # out of the pool; what they see must be the kind of wrong looked for
            for i in range(0, len(datas), 6):
                if time.monotonic() >= self.until:
                    break
                self.send_each(datas[i:i + 6])
                if self.sessions_wrong(8) == self.target_sig:
                    wrong = True  # (another kind of wrong: its dirt was cleaned, go on)
                    break
                self.reset_sessions()
        else:
            self.send_each(datas)
        if DEBUG:
            print("    oracle(%d: %r...) -> wrong %s" % (len(datas), datas[0][:60], wrong), flush=True)
        deadline = time.monotonic() + 0.15
        while True:
            self.rmon.poll_logs()
            seen = self.rmon.count(self.target) > before
            if seen or wrong or time.monotonic() >= deadline:
                break
            time.sleep(0.01)
        if seen:
            time.sleep(0.05)  # let a lost connection come back before the next try
        if INNOCENT in self.target:
            self.reset_sessions()
        return seen or wrong

    def reproduces(self, data):
        return self.oracle([data])

    @staticmethod
    def ddmin(items, test, until):
        """Zeller's ddmin over a list: a 1-minimal sublist (or the best by `until`)."""
        n = 2
        while len(items) >= 2 and time.monotonic() < until:
            chunk = -(-len(items) // n)
            subsets = [items[i:i + chunk] for i in range(0, len(items), chunk)]
            for i, sub in enumerate(subsets):
                if time.monotonic() >= until:
                    return items
                if test(sub):
                    items, n = sub, 2
                    break
                comp = [x for j, o in enumerate(subsets) if j != i for x in o]
                if len(subsets) > 2 and test(comp):
                    items, n = comp, max(n - 1, 2)
                    break
            else:
                if n >= len(items):
                    break
                n = min(len(items), n * 2)
        return items

    def shrink_by(self, data, candidates, until):
        """Takes the first candidate that still reproduces, again, until none does."""
        changed = True
        while changed and time.monotonic() < until:
            changed = False
            for cand in candidates(data):
                if time.monotonic() >= until:
                    return data
                if self.reproduces(cand):
                    data, changed = cand, True
                    break
        return data

    @staticmethod
    def shorter_bulks(data):
        """Bulks made shorter, their length lines rewritten to match, keeping whatever
        odd prefix they had ("$05000" can become "$01"): a framer waits for a whole
        bulk, so removing bytes alone cannot shrink one."""
        for m in re.finditer(rb"\$([+-]?0*)(\d+)\r\n", data):
            n, start = int(m.group(2)), m.end()
            if start + n > len(data):
                continue
            for v in (0, 1, 3):
                if v >= n:
                    break
                yield (data[:m.start(2)] + b"%d" % v + data[m.end(2):start] + data[start:start + v]
                       + data[start + n:])

    def shrink_bulks(self, data, until):
        return self.shrink_by(data, self.shorter_bulks, until)

    @staticmethod
    def multibulks(data):
        """(count match, [(bulk start, bulk end)]) for each well-formed multibulk."""
        for m in re.finditer(rb"\*(\d+)\r\n", data):
            n, pos, bulks = int(m.group(1)), m.end(), []
            for _ in range(n):
                b = re.compile(rb"\$(\d+)\r\n").match(data, pos)
                if not b or data[b.end() + int(b.group(1)):b.end() + int(b.group(1)) + 2] != b"\r\n":
                    break
                bulks.append((pos, b.end() + int(b.group(1)) + 2))
                pos = bulks[-1][1]
            if n and len(bulks) == n:
                yield m, bulks

    @classmethod
    def fewer_args(cls, data):
        """Arguments dropped from well-formed commands, their counts made to match."""
        for m, bulks in cls.multibulks(data):
            for s, e in reversed(bulks[1:]):
                yield data[:m.start(1)] + b"%d" % (len(bulks) - 1) + data[m.end(1):s] + data[e:]

    def shrink_args(self, data, until):
        return self.shrink_by(data, self.fewer_args, until)

    def shrink(self, inputs, until):
        """Inputs, arguments, bulks, lines, then bytes: the smallest data that still does it."""
        inputs = self.ddmin(list(inputs), lambda xs: self.reproduces(b"".join(xs)), until)
        data = self.shrink_args(b"".join(inputs), until)
        data = self.shrink_bulks(data, until)
        lines = re.findall(rb"[^\n]*\n|[^\n]+$", data)
        lines = self.ddmin(lines, lambda xs: self.reproduces(b"".join(xs)), until)
        data = self.shrink_bulks(b"".join(lines), until)
        if len(data) <= 400:
            data = bytes(self.ddmin(list(data), lambda bs: self.reproduces(bytes(bs)), until))
        return data

    def redis_hints(self):
        """Inputs holding what Redis said it choked on (its verbose log shows the query
        buffer, unprintable bytes as '.'), each alone, then with its batch."""
        per_error = {}
        for _, err, _, qb in self.fuzz_redis_proto:
            head = qb.split("' (... more")[0].strip("'")[:48]
            if len(per_error.setdefault(err, [])) < 3 and head not in per_error[err]:
                per_error[err].append(head)
        for err, heads in sorted(per_error.items()):
            for head in heads:
                pat = re.compile(b"".join(b"." if ch == "." else re.escape(ch.encode("latin-1", "replace"))
                                          for ch in head), re.DOTALL)
                hits = [(b, x) for b in self.batches for x in b[3] if pat.search(x)]
                for b, x in hits[:3]:
                    yield "Redis' log: %s" % err, [x]
                    yield "Redis' log: %s" % err, b[3]

    def window(self, t, before):
        """What each connection sent from `before` s ahead of t until t, one input list
        per connection, in the order they began."""
        per = {}
        for b in self.batches:
            if t - before <= b[0] <= t + 0.05:
                per.setdefault(b[2], []).extend(b[3])
        return list(per.values())

    def minimize(self, target, times, budget_s, before=1.0):
        """Finds what makes the event (target) happen again, and minimizes it: the
        input lists sent around each time the event happened are replayed all at once,
        narrowed down to one (ddmin), which is then shrunk."""
        self.until = until = time.monotonic() + budget_s
        self.target = target
        what = "/".join(sorted(target))
        if INNOCENT in target:
            what += ": %s" % self.target_sig
        found, tried, last = [], set(), None
        groups = list(self.redis_hints()) if target == {LOST} else []
        for t in times:
            if last is None or t - last > before:
                groups.append(("what was sent in the %.0f s before %s" % (
                    before, time.strftime("%H:%M:%S", time.gmtime(t))), t))
                last = t
        for why, g in groups:
            if time.monotonic() >= until or len(found) >= 3:
                break
            if isinstance(g, list):  # one input list
                data = b"".join(g)
                if data in tried or any(f[0] in data for f in found) or not self.reproduces(data):
                    continue
                tried.add(data)
                inputs = g
            else:
                members = [m for m in self.window(g, before)
                           if not any(f[0] in b"".join(m) for f in found)]
                if INNOCENT in target:  # a session left dirty: only those that may start one
                    members = [m for m in members if SESSIONISH.search(b"".join(m))]
                if not members or not self.oracle([b"".join(m) for m in members]):
                    continue
                members = self.ddmin(members, lambda ms: self.oracle([b"".join(m) for m in ms]), until)
                if len(members) != 1 or not self.reproduces(b"".join(members[0])):
                    late = time.monotonic() >= until
                    found.append((None, len(members), b" | ".join(b"".join(m)[:200] for m in members[:5]),
                                  why + (", time ran out" if late else ""), what))
                    continue
                inputs = members[0]
            small = self.shrink(inputs, until)
            if any(f[0] == small for f in found):
                continue
            sure = sum(self.reproduces(small) for _ in range(3))
            found.append((small, sure, b"".join(inputs), why, what))
        return found

    def main(self):
        a = self.args
        self.h = h = harness.Harness()
        ok = False
        t_start = time.monotonic()
        try:
            verbose = ["--loglevel", "verbose"]
            master = h.redis(extra=verbose)
            self.nodes = [master]
            for _ in range(a.replicas):
                self.nodes.append(h.replica_of(master, extra=verbose))
            self.regions = [{"name": "local", "priority": 1,
                             "nodes": ["127.0.0.1:%d" % r.port for r in self.nodes]}]
            self.gate = h.respgate(master.port, threads=2, regions=self.regions,
                                   upstream={"connections_per_node": 2})
            self.mon = Monitor(self)
            plain = [Innocent(self, i) for i in range(4)]
            tx = [Innocent(self, 4 + i, tx=True) for i in range(a.tx_innocents)]
            innocents = plain + tx
            for group in (plain, tx):
                for t in group:
                    t.start()
                for t in group:
                    if not t.ready.wait(30):
                        raise AssertionError("innocent client %d never got going: %r" % (t.i, t.errors))
                if group is plain:
                    # respgate's connections now: its shared ones (and its probes'), not
                    # the session connections the transactional clients will take
                    self.mon.take_baseline()
            self.mon.start()

            k = a.connections
            fuzzers = [Fuzzer(self, j, a.inputs // k + (1 if j < a.inputs % k else 0)) for j in range(k)]
            t0 = time.monotonic()
            for f in fuzzers:
                f.start()
            last = t0
            moved, last_sent = t0, -1
            self.stalled = None
            while any(f.is_alive() for f in fuzzers):
                time.sleep(0.2)
                now = time.monotonic()
                sent = sum(f.sent for f in fuzzers)
                if sent != last_sent:
                    moved, last_sent = now, sent
                elif now - moved > a.stall_seconds:
                    self.stalled = self.describe_stall(fuzzers, now - moved)
                    print(self.stalled, flush=True)
                    self.stop.set()
                    break
                if a.progress and now - last >= 10:
                    last = now
                    print("  %5.0fs %7d inputs, %d innocent INCRs, %d shared reconnects" % (
                        last - t0, sent, sum(t.done for t in innocents), self.mon.lost()), flush=True)
            fuzz_time = time.monotonic() - t0
            time.sleep(0.5)  # replies still on their way to the innocent clients
            self.stop.set()
            for t in innocents:
                t.join(30)
            time.sleep(0.3)
            self.monitor_stop.set()
            self.mon.join(10)

            died = self.gate.proc.poll() is not None
            lost = self.mon.lost()
            gone = sum(len(g) for g in self.mon.gone.values())
            minimized, odd = [], set()
            with self.mon.lock:  # what the replays below do is not part of the run's figures
                self.fuzz_events = list(self.mon.events)
                self.fuzz_redis_proto = list(self.mon.redis_proto)
            odd = {e[1] for e in self.fuzz_events} & ODD
            wrong = {}  # the first time each kind of wrong reply was seen
            for i in innocents:
                for (t, e), sig in zip(i.errors, i.sigs):
                    if "upstream connection lost" not in e and (sig not in wrong or t < wrong[sig]):
                        wrong[sig] = t
            if a.minimize and (lost or gone or odd or wrong):
                print("looking for inputs that do it again (at most %.0f s)..." % a.minimize_seconds,
                      flush=True)
                self.start_replays()
                end = time.monotonic() + a.minimize_seconds

                def left(share=1.0):
                    return max(0.0, (end - time.monotonic()) * share)
                # what fails the run first, in the order it matters; then the odd replies
                sigs = sorted(wrong.items(), key=lambda kv: kv[1])
                if lost or gone:
                    minimized += self.minimize({LOST}, [e[0] for e in self.fuzz_events if e[1] == LOST],
                                               left(0.5 if odd or wrong else 1.0))
                for n, (sig, t) in enumerate(sigs):
                    self.target_sig = sig
                    minimized += self.minimize({INNOCENT}, [t], left(1.0 / (len(sigs) - n + (1 if odd else 0))),
                                               before=0.5)
                if odd:
                    minimized += self.minimize(ODD, [e[0] for e in self.fuzz_events if e[1] in ODD], left())

            exit_error = None
            suspicious = died or lost or gone or odd or any(t.errors for t in innocents)
            if suspicious:
                self.dump(os.path.join(h.dir, "netfuzz-events.txt"), innocents)
            keep = os.environ.get("KEEP_TEST_DIR")
            os.environ["KEEP_TEST_DIR"] = "1"  # the logs, if respgate's exit shows a problem
            try:
                h.close()
            except AssertionError as e:
                exit_error = str(e)
                suspicious = True
            finally:
                if keep is None:
                    del os.environ["KEEP_TEST_DIR"]
            self.h = None
            if suspicious or keep:
                print("test directory kept: %s" % h.dir)
            else:
                shutil.rmtree(h.dir, ignore_errors=True)
            ok = self.report(fuzzers, innocents, fuzz_time, time.monotonic() - t_start,
                             died, exit_error, minimized)
        finally:
            if self.h is not None:
                self.stop.set()
                self.monitor_stop.set()
                try:
                    self.h.close(ok=False)
                except AssertionError:
                    pass
                print("test directory kept: %s" % self.h.dir)
        return 0 if ok else 1

    def dump(self, path, innocents):
        """Each event (respgate's, an innocent client's error), then the batches sent in
        the second before it: when, on which connection, the inputs, the start of the
        reply."""
        events = [(t, kind, line) for t, kind, line in self.fuzz_events]
        events += [(t, "innocent error", e) for i in innocents for t, e in i.errors]
        with open(path, "w") as f:
            for t, kind, line in sorted(events):
                f.write("=== %.3f %s: %s\n" % (t, kind, line))
                for b in self.batches:
                    if b[0] - 0.05 <= t and b[1] >= t - 1.0:
                        f.write("  %.3f-%.3f conn %s\n    inputs %r\n    reply %r\n" % (
                            b[0], b[1], b[2], b[3], b[4]))
        print("events and the inputs around them: %s" % path, flush=True)

    def describe_stall(self, fuzzers, for_s):
        frames = sys._current_frames()
        out = ["no input sent for %.0f s; fuzz connections still running:" % for_s]
        for f in fuzzers:
            if not f.is_alive():
                continue
            fr, where = frames.get(f.ident), []
            while fr is not None:
                where.append("%s:%d" % (fr.f_code.co_name, fr.f_lineno))
                fr = fr.f_back
            out.append("  %s: %d sent, %d connections, %d connect errors, %d stalled; in %s" % (
                f.name, f.sent, f.connections, f.connect_errors, f.stalled, " < ".join(where[:4])))
            if f.last is not None:
                out.append("    its last batch: %r" % (f.last[:300],))
        return "\n".join(out)

    def report(self, fuzzers, innocents, fuzz_time, total_time, died, exit_error, minimized):
        a, mon = self.args, self.mon
        sent = sum(f.sent for f in fuzzers)
        events = self.fuzz_events
        by_kind = {}
        for _, kind, _ in events:
            by_kind[kind] = by_kind.get(kind, 0) + 1
        lost = by_kind.get(LOST, 0)
        odd = sum(by_kind.get(k, 0) for k in ODD)
        innocent_errors = [e for t in innocents for e in t.errors]
        gone = {p: g for p, g in mon.gone.items() if g}
        new_conns = sum(mon.tcr.get(p, v) - v for p, v in mon.tcr0.items())
        sanitizer = list(mon.sanitizer)
        if exit_error and any(m in exit_error for m in harness.SANITIZER_MARKS):
            sanitizer.append(exit_error.splitlines()[0])

        p = print
        p("netfuzz: seed %s, %d connections, %d inputs asked, binary %s" % (
            a.seed, a.connections, a.inputs, harness.RESPGATE))
        p("  inputs sent:                %d in %.1f s (%.0f/s); %.1f s in all" % (
            sent, fuzz_time, sent / max(fuzz_time, 1e-9), total_time))
        p("  fuzz connections used:      %d (%d closed by respgate, %d dropped by us when "
          "respgate stopped reading, %d connect errors)" % (
              sum(f.connections for f in fuzzers), sum(f.closed_by_server for f in fuzzers),
              sum(f.stalled for f in fuzzers), sum(f.connect_errors for f in fuzzers)))
        plain = [t for t in innocents if not t.tx]
        tx = [t for t in innocents if t.tx]
        p("  innocent INCRs:             %d by %d clients, %d errors; %d MULTI/EXEC by %d clients "
          "on session connections, %d errors" % (
              sum(t.done for t in plain), len(plain), sum(len(t.errors) for t in plain),
              sum(t.done for t in tx), len(tx), sum(len(t.errors) for t in tx)))
        for _, e in innocent_errors[:10]:
            p("    %s" % e)
        p("  upstream reconnects:        %d shared connections lost (respgate log); "
          "%d of the %d connections respgate had open at the start are gone (CLIENT LIST)" % (
              lost, sum(len(g) for g in gone.values()),
              sum(len(b) for b in mon.baseline.values())))
        for port, g in gone.items():
            p("    node %d: ids %s (last command: %s)" % (
                port, sorted(g), ", ".join(sorted(set(g.values())))))
        p("  connections respgate opened during the run: %d (sessions and tunnels included)" % new_conns)
        mport = self.nodes[0].port
        ran = mon.cmds.get(mport, 0) - mon.cmds0.get(mport, 0)
        p("  commands the master ran:    %d, of which about %d for the fuzz connections (not the "
          "innocent INCRs, probes ~10/s)" % (ran, ran - sum(t.done for t in innocents) - 10 * total_time))
        for kind, n in sorted(by_kind.items()):
            if kind != LOST:
                p("  respgate log, %s: %d" % (kind, n))
        for _, _, line in events[:5]:
            p("    %s" % line)
        p("  fuzz replies carrying '%s': %d" % (LOST_TEXT.decode(), sum(f.lost_replies for f in fuzzers)))
        if self.fuzz_redis_proto:
            kinds = {}
            for port, err, cid, qb in self.fuzz_redis_proto:
                kinds.setdefault(err, []).append((port, cid, qb))
            p("  Redis protocol errors (its verbose log): %d" % len(self.fuzz_redis_proto))
            for err, xs in sorted(kinds.items()):
                p("    %-40s %d, e.g. %s" % (err, len(xs), xs[0][2][:160]))
        p("  sanitizer reports:          %d" % len(sanitizer))
        for line in sanitizer[:5]:
            p("    %s" % line)
        p("  respgate:                   %s" % (
            "died during the run" if died else "exited with an error" if exit_error else "alive, clean exit"))
        if exit_error:
            p("    " + exit_error[:3000].replace("\n", "\n    "))
        if minimized or self.tries:
            p("  replays to find reproducers: %d (their reconnects are not counted above)" % self.tries)
        for small, sure, whole, why, what in minimized:
            if small is None:
                p("  '%s': not narrowed down to one connection's input (%d left; %s): %r" % (
                    what, sure, why, whole[:1000]))
                continue
            p("  reproducer of '%s', %d times out of 3 (%s): %r" % (what, sure, why, small))
            p("    minimized from: %r%s" % (whole[:300], " ..." if len(whole) > 300 else ""))

        reasons = []
        if innocent_errors:
            reasons.append("an innocent client saw an error or a wrong value")
        if died:
            reasons.append("respgate died")
        if exit_error:
            reasons.append("respgate exited uncleanly")
        if sanitizer:
            reasons.append("sanitizer report")
        if lost or gone:
            reasons.append("a shared upstream connection was re-established")
        if odd:
            reasons.append("respgate lost count of a connection's replies (malformed or "
                           "unexpected reply): that client got replies not its own")
        if self.stalled:
            reasons.append("fuzz connections stalled")
        if sent < a.inputs and not died:
            reasons.append("only %d of %d inputs sent" % (sent, a.inputs))
        p("RESULT: %s" % ("PASS" if not reasons else "FAIL (" + "; ".join(reasons) + ")"))
        return not reasons


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inputs", type=int, default=100000, help="inputs in all (default 100000)")
    ap.add_argument("--connections", type=int, default=50, help="concurrent fuzz connections (50)")
    ap.add_argument("--seed", default="1", help="seed of every RNG (default 1)")
    ap.add_argument("--replicas", type=int, default=1, help="replicas of the master (default 1)")
    ap.add_argument("--tx-innocents", type=int, default=2,
                    help="innocent clients doing MULTI/INCR/EXEC on session connections (2)")
    ap.add_argument("--no-minimize", dest="minimize", action="store_false",
                    help="do not look for a reproducer when a shared connection dropped")
    ap.add_argument("--minimize-seconds", type=float, default=180.0,
                    help="time allowed to find and minimize reproducers, in all (180)")
    ap.add_argument("--progress", action="store_true", help="a line every 10 s")
    ap.add_argument("--stall-seconds", type=float, default=30.0,
                    help="give up when no input could be sent for this long (30)")
    args = ap.parse_args()
    # SIGTERM (a test's timeout) unwinds like an error: the processes started get stopped
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit("netfuzz: terminated"))
    if args.inputs < 1 or args.connections < 1:
        ap.error("--inputs and --connections must be positive")
    sys.exit(Run(args).main())


if __name__ == "__main__":
    main()
