"""Requests are framed by Redis' own rules (issue 11, item 4).

respgate forwards a request's bytes as they are, on a connection many clients share.
A request Redis refuses (a length with a leading zero, "-0", a '+', a missing '$'...)
makes Redis answer "-ERR Protocol error" and close that connection, and every other
client with a request on it gets "may or may not have run". So respgate must frame
requests exactly as Redis 7.0 does (networking.c processMultibulkBuffer and
processInlineBuffer, util.c string2ll, sds.c sdssplitargs) and refuse the rest itself,
on the offending client's own connection, with Redis' own error text.

Differential: a few hundred inputs, hand-written and generated from a seeded RNG, each
sent on a fresh connection to redis-server and to respgate in front of it. Both must
answer the same bytes and both close the connection, or neither. One difference is
allowed, in one direction only: a command with a length line ending in CR and a byte
other than LF. Redis skips that byte unread and runs the command; respgate refuses it
("CR without LF ending a length line", on that client's connection only), because it
reads forwarded requests back itself looking for LF (see proxy/resp.c).

SharedConnection: while innocent clients pipeline INCRs, others send requests Redis
would refuse; the innocent clients see no error, no upstream connection is lost and
every INCR is counted exactly once.
"""
import os
import random
import re
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from harness import ProxyTestCase, encode, main

TAINT = b"-ERR Protocol error: CR without LF ending a length line\r\n"
BIG = 65536  # PROTO_INLINE_MAX_SIZE

# --- what a server does with some bytes -----------------------------------------------


def outcome(port, data, like=None, idle=0.5, deadline=10.0):
    """(reply bytes, closed) for data sent on a fresh connection.

    Without `like`: read until the server closes, or sends nothing for `idle` seconds.
    With like (Redis' outcome): read until respgate closes, or has sent at least as
    much as Redis did and then nothing for a short while; a slow respgate is waited
    for up to `deadline`, so only a real difference costs time."""
    s = socket.create_connection(("127.0.0.1", port), timeout=deadline)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    out, closed = b"", False
    try:
        try:
            s.sendall(data)
        except OSError:  # the server refused the input and closed while we sent it
            pass
        end = time.monotonic() + deadline
        quiet = idle if like is None else 0.25
        last = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= end:
                break
            enough = like is None or (len(out) >= len(like[0]) and not like[1])
            if enough and now - last >= quiet:
                break
            s.settimeout(max(0.01, min(end - now, quiet if enough else end - now)))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            out += chunk
            last = time.monotonic()
    finally:
        s.close()
    return out, closed


def agree(data, redis, gate):
    """'same', 'taint' (the one allowed difference), or None."""
    if redis == gate:
        return "same"
    # respgate answered what Redis answered for the commands before the refused one,
    # then refused it and closed; Redis ran it.
    if (gate[1] and gate[0].endswith(TAINT) and re.search(rb"\r[^\n]", data)
            and redis[0].startswith(gate[0][:-len(TAINT)])
            and len(redis[0]) > len(gate[0]) - len(TAINT)):
        return "taint"
    return None


def kind(out):
    data, closed = out
    if closed and data.endswith(b"\r\n") and b"-ERR Protocol error: " in data:
        return "refused"
    if closed:
        return "closed"
    return "accepted" if data else "waiting"


# --- the inputs ------------------------------------------------------------------------

# Commands whose replies do not depend on the connection or on how often they ran;
# no argument is a command name either (a broken frame makes it one: "hello" would be
# HELLO, which answers the connection's id).
COMMANDS = [
    [b"PING"],
    [b"ECHO", b"howdy"],
    [b"ECHO", b""],
    [b"ECHO", b"a\r\nb\x00c$1\r\n"],
    [b"GET", b"strict:missing"],
    [b"SET", b"strict:k", b"v"],
    [b"EXISTS", b"strict:k", b"strict:missing"],
    [b"STRLEN", b"strict:k"],
]

HAND = [
    # the issue's own examples
    b"*1\r\n$04\r\nPING\r\n", b"*01\r\n$4\r\nPING\r\n", b"*1\r\n$-0\r\n", b"*-0\r\n",
    # counts
    b"*0\r\n", b"*-1\r\n", b"*-5\r\nPING\r\n", b"*-9223372036854775808\r\nPING\r\n",
    b"*-9223372036854775809\r\n", b"*9223372036854775807\r\n", b"*9223372036854775808\r\n",
    b"*2147483647\r\n", b"*2147483648\r\n", b"*+1\r\n$4\r\nPING\r\n", b"* 1\r\n", b"*1 \r\n",
    b"*\r\n", b"*-\r\n", b"*00\r\n", b"*0x1\r\n", b"*000000000000000000001\r\n",
    b"*99999999999999999999\r\n", b"*1\r\n", b"*1", b"*1x", b"*1x\r", b"*1x\r\n",
    # bulk lengths
    b"*1\r\n$\r\n", b"*1\r\n$-1\r\n", b"*1\r\n$+4\r\nPING\r\n", b"*1\r\n$ 4\r\nPING\r\n",
    b"*1\r\n$4 \r\nPING\r\n", b"*1\r\n$536870912\r\n", b"*1\r\n$536870913\r\n",
    b"*1\r\n$99999999999999999999999\r\n", b"*2\r\n$4\r\nECHO\r\n$0\r\n\r\n",
    b"*2\r\n$4\r\nECHO\r\n$00\r\n\r\n",
    # type bytes
    b"*1\r\n:1\r\n", b"*1\r\n*1\r\n$4\r\nPING\r\n", b"*1\r\n\r\n", b"*1\r\n\n\r\n",
    b"*1\r\n\xff4\r\nPING\r\n", b"*1\r\n:", b"*1\r\n:1", b"*1\r\n:x\r\n", b"*2\r\n$4\r\nECHO\r\n+1\r\n",
    # line terminators
    b"*1\n$4\r\nPING\r\n", b"*1\n", b"*1\r\n$4\nPING\r\n", b"*1\r\n$4\r\nPINGxx", b"*1\r\n$4\r\nPING\n\n",
    b"*1\r\n$4\r\nPING\r\r", b"*1\r\n$4\r\nPING", b"*1\r\n$4\r\nPING\r", b"*1\rX$4\r\nPING\r\n",
    b"*1\r\n$4\rXPING\r\n", b"*0\rX", b"*0\r", b"*1\r\r\n$4\r\nPING\r\n", b"*2\rX$4\r\nPING\r\n$04\r\n",
    b"*1\r\n$4\r\nPING\r\n\r\n", b"\r\n", b"\n", b"\r\r\n", b" \x0c \r\n",
    # NUL: Redis' strchr() stops there
    b"PI\x00NG\r\n", b"*1\x00\r\n$4\r\nPING\r\n", b"*1\r\n$4\x00\r\nPING\r\n", b"*1\r\n\x00",
    b"*1\r\n$4\r\nP\x00NG\r\n", b"*1\r\x00$4\r\nPING\r\n",
    b"PI\x00NG\r\n" + b"a" * (BIG + 10), b"*1\x00" + b"a" * (BIG + 10),
    b"*1\r\n$\x00" + b"a" * (BIG + 10), b"*1\r\n$" + b"1" * (BIG + 10),
    b"*" + b"1" * (BIG + 10), b"ECHO " + b"x" * (BIG + 10),
    # inline lines up to 64 KiB, and a line Redis waits on
    b"ECHO " + b"x" * 60000 + b"\r\n", b"ECHO " + b"x" * 100,
    # sdssplitargs
    b'ECHO "a b"\r\n', b"ECHO 'a b'\r\n", b'ECHO a"b c"\r\n', b"ECHO a'b c'\r\n", b'ECHO "a"b\r\n',
    b"ECHO 'a'b\r\n", b'ECHO "open\r\n', b"ECHO 'open\r\n", b'ECHO "a\\"\r\n', b"ECHO 'it\\'s'\r\n",
    b'ECHO "\\x41\\x4a\\x4g\\xzz"\r\n', b'ECHO "\\n\\r\\t\\b\\a\\q\\\\"\r\n', b'ECHO "\\x00"\r\n',
    b"ECHO a\x0bb\r\n", b"\x0bPING\r\n", b"PING\x0b\r\n", b'ECHO "a"\x0bb\r\n', b"ECHO a\tb\r\n",
    b"ECHO a\rb\r\n", b'ECHO ""\r\n', b"ECHO ''\r\n", b'ECHO """"\r\n', b"  PING  \r\n",
    b'"PING"\r\n', b"ECHO \xff\r\n", b'ECHO "a\r\n', b"PING\n", b"PING\r\r\n",
    # commands Redis closes the connection for, answering nothing
    b"*1\r\n$4\r\nPOST\r\n", b"*2\r\n$5\r\nHost:\r\n$1\r\nx\r\n", b"*1\r\n$6\r\npost\x00x\r\n",
    b"post\r\n", b"host: x\r\n", b"host:x\r\n", b'"post\\x00x"\r\n', b"*1\r\n$5\r\nposts\r\n",
    # pipelines
    encode("PING") + b"*1\r\n$04\r\nPING\r\n" + encode("PING"),
    encode("ECHO", "a") + b"PING\r\n" + b"*1\r\n$4\r\nPINGxx" + b"PING\r\n",
    b"PING\r\n*01\r\n", b"PING\r\nPI\x00NG\r\nPING\r\n",
]

NUM_VARIANTS = [
    b"0{n}", b"00{n}", b"+{n}", b"-{n}", b"-0", b" {n}", b"{n} ", b"\t{n}", b"", b"-", b"{n}a",
    b"0x{n}", b"1e1", b"{n}\x00", b"9223372036854775807", b"9223372036854775808",
    b"-9223372036854775808", b"2147483647", b"2147483648", b"536870912", b"536870913",
    b"18446744073709551616", b"{n}{n}", b"0", b"1", b"-1", b"99999999999999999999",
]
EOL_VARIANTS = [b"\n", b"\r", b"", b"\rX", b"\r\r", b"\n\r", b"\r\n\r\n", b"\r\x00", b" \r\n",
                b"\r\n\n", b"\r$"]
TYPE_VARIANTS = [b"*", b":", b"+", b"", b"$$", b"\x00", b"\n", b"\r", b"x", b"\xff", b"-"]
TRAIL_VARIANTS = [b"xx", b"\n\n", b"\r", b"", b"\r\n\r\n", b"\r\x00", b"\n", b"$1", b"\r\r"]
NASTY = [b'"', b"'", b"\\", b" ", b"\t", b"\x0b", b"\x0c", b"\x00", b"\r", b"\n", b"x", b"\xff",
         b"*", b"$", b"0", b"-"]
INLINE = [b"PING", b"ECHO howdy", b'ECHO "a b"', b"ECHO 'a b'", b'ECHO "\\x41\\x4a"',
          b"ECHO 'it\\'s'", b'ECHO a"b c"', b'ECHO "a"b', b"  ECHO   spaced  ", b"ECHO\ttab",
          b"ECHO a\x0bb", b"SET strict:k v", b"GET strict:missing", b"EXISTS strict:k x",
          b'ECHO "\\n\\\\"', b'ECHO ""']
INLINE_EOL = [b"\r\n", b"\n", b"\r\r\n", b"", b"\n\n", b"\r"]


def parts(args):
    """A canonical multibulk command as fields a mutation can pick."""
    p = [["type", b"*"], ["num", b"%d" % len(args)], ["eol", b"\r\n"]]
    for a in args:
        p += [["type", b"$"], ["num", b"%d" % len(a)], ["eol", b"\r\n"], ["data", a],
              ["trail", b"\r\n"]]
    return p


def mutate_multibulk(rnd):
    p = parts(rnd.choice(COMMANDS))
    for _ in range(rnd.choice((1, 1, 1, 2))):
        field = rnd.choice(p)
        k, v = field
        if k == "num":
            field[1] = rnd.choice(NUM_VARIANTS).replace(b"{n}", v)
        elif k == "eol":
            field[1] = rnd.choice(EOL_VARIANTS)
        elif k == "type":
            field[1] = rnd.choice(TYPE_VARIANTS)
        elif k == "trail":
            field[1] = rnd.choice(TRAIL_VARIANTS)
        else:  # payload shorter or longer than its length says, or a nested command
            field[1] = rnd.choice((v[:-1], v + b"x", v + b"\r\n", b"*1\r\n$4\r\nPING\r\n"))
    data = b"".join(v for _, v in p)
    if rnd.random() < 0.3:  # one byte inserted, dropped or changed anywhere
        i = rnd.randrange(len(data) + 1)
        op = rnd.choice(("insert", "drop", "change"))
        b = rnd.choice(NASTY)
        if op == "insert":
            data = data[:i] + b + data[i:]
        elif op == "drop" and data:
            data = data[:i] + data[i + 1:]
        else:
            data = data[:i] + b + data[i + 1:]
    return data


def mutate_inline(rnd):
    line = rnd.choice(INLINE)
    for _ in range(rnd.choice((0, 1, 1, 2))):
        i = rnd.randrange(len(line) + 1)
        if rnd.random() < 0.7:
            line = line[:i] + rnd.choice(NASTY[:12]) + line[i:]
        else:
            line = line[:i] + line[i + 1:]
    return line + rnd.choice(INLINE_EOL)


# STRICT_FRAMING_SEED and STRICT_FRAMING_INPUTS run a wider sweep by hand.
def corpus(seed=int(os.environ.get("STRICT_FRAMING_SEED", 11)),
           generated=int(os.environ.get("STRICT_FRAMING_INPUTS", 360))):
    rnd = random.Random(seed)
    inputs = list(HAND)
    for _ in range(generated):
        r = rnd.random()
        if r < 0.6:
            data = mutate_multibulk(rnd)
        else:
            data = mutate_inline(rnd)
        if rnd.random() < 0.2:  # after a good command, and/or before one
            data = encode(*rnd.choice(COMMANDS)) + data
        if rnd.random() < 0.2:
            data = data + encode(*rnd.choice(COMMANDS))
        inputs.append(data)
    seen, out = set(), []
    for d in inputs:
        if d and d not in seen and b"HTTP/" not in d:
            seen.add(d)
            out.append(d)
    return out


# --- the tests ------------------------------------------------------------------------------


class Differential(ProxyTestCase):
    def test_every_input_gets_the_same_outcome_from_respgate_as_from_redis(self):
        inputs = corpus()
        self.assertGreater(len(inputs), 300)
        with ThreadPoolExecutor(24) as ex:
            redis = list(ex.map(lambda d: outcome(self.redis.port, d), inputs))
            gate = list(ex.map(lambda dr: outcome(self.gate.port, dr[0], like=dr[1]),
                               zip(inputs, redis)))
        verdicts, wrong = {}, []
        for d, r, g in zip(inputs, redis, gate):
            v = agree(d, r, g)
            if v is None:  # once more, slowly, in case a busy machine made one look idle
                r = outcome(self.redis.port, d, idle=2.0)
                g = outcome(self.gate.port, d, like=r)
                v = agree(d, r, g)
            if v is None:
                wrong.append("  %r\n    redis:    %r\n    respgate: %r" % (d[:120], r, g))
                continue
            key = "respgate refuses CR X, Redis runs it" if v == "taint" else "both " + kind(r)
            verdicts[key] = verdicts.get(key, 0) + 1
        summary = ", ".join("%s %d" % kv for kv in sorted(verdicts.items()))
        sys.stderr.write("\n%d inputs: %s\n" % (len(inputs), summary))
        self.assertEqual(wrong, [], "%d of %d inputs differ:\n%s" % (len(wrong), len(inputs),
                                                                     "\n".join(wrong)))
        # Every kind of outcome was exercised, each many times.
        for k in ("both accepted", "both refused", "both waiting", "both closed"):
            self.assertGreater(verdicts.get(k, 0), 5, k)
        # Nothing respgate forwarded made Redis drop a shared connection.
        self.assertNotIn("connection lost", self.gate.output())

    def test_redis_error_text_reaches_the_client_for_each_rule(self):
        cases = {
            b"*1\r\n$04\r\nPING\r\n": b"-ERR Protocol error: invalid bulk length\r\n",
            b"*01\r\n$4\r\nPING\r\n": b"-ERR Protocol error: invalid multibulk length\r\n",
            b"*1\r\n:1\r\n": b"-ERR Protocol error: expected '$', got ':'\r\n",
            b"*1\r\n\r\n": b"-ERR Protocol error: expected '$', got ' '\r\n",
            b'ECHO "a\r\n': b"-ERR Protocol error: unbalanced quotes in request\r\n",
            b"*1\x00" + b"a" * BIG: b"-ERR Protocol error: too big mbulk count string\r\n",
            b"*1\r\n$" + b"1" * BIG: b"-ERR Protocol error: too big bulk count string\r\n",
            b"PI\x00NG" + b"a" * BIG: b"-ERR Protocol error: too big inline request\r\n",
            b"*1\r\n$4\r\nPOST\r\n": b"",
        }
        for data, want in cases.items():
            with self.subTest(data[:20]):
                self.assertEqual(outcome(self.redis.port, data), (want, True))
                self.assertEqual(outcome(self.gate.port, data, like=(want, True)), (want, True))


class SharedConnection(ProxyTestCase):
    """Requests Redis refuses never reach a connection other clients share."""

    def attack(self, payloads, expect):
        stop, errors, counts = threading.Event(), [], [0] * 4
        started = threading.Barrier(5)

        def innocent(i):
            try:
                c = self.gate.client(timeout=30)
                first = True
                while not stop.is_set():
                    c.send(b"".join(encode("INCR", "strict:n") for _ in range(20)))
                    for _ in range(20):
                        r = c.read()
                        if isinstance(r, int):
                            counts[i] += 1
                        else:
                            errors.append((i, r))
                    if first:
                        started.wait()
                        first = False
            except Exception as e:  # noqa: BLE001
                errors.append((i, repr(e)))

        threads = [threading.Thread(target=innocent, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        answers = []
        try:
            started.wait(timeout=30)
            for payload in payloads:
                a = self.gate.client(timeout=3)
                a.send(payload)
                try:
                    answers.append(a.read_all_until_closed(timeout=3))
                except OSError as e:  # still open: respgate forwarded it, took the answer
                    answers.append(("not closed", a.buf, repr(e)))
                a.close()
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertEqual(errors, [], "innocent clients got errors")
        self.assertNotIn("connection lost", self.gate.output())
        self.assertEqual(int(self.redis.client().call("GET", "strict:n")), sum(counts),
                         "INCRs counted by Redis and answered to the clients")
        self.assertGreater(min(counts), 0)
        self.assertEqual(answers, expect)

    def test_a_leading_zero_bulk_length_from_one_client_disturbs_nobody(self):
        payload = b"*1\r\n$04\r\nPING\r\n"
        self.attack([payload] * 50, [b"-ERR Protocol error: invalid bulk length\r\n"] * 50)

    def test_no_request_redis_refuses_disturbs_anybody(self):
        payloads = {
            b"*01\r\n$4\r\nPING\r\n": b"-ERR Protocol error: invalid multibulk length\r\n",
            b"*-0\r\n": b"-ERR Protocol error: invalid multibulk length\r\n",
            b"*+1\r\n$4\r\nPING\r\n": b"-ERR Protocol error: invalid multibulk length\r\n",
            b"*1\r\n$-0\r\n": b"-ERR Protocol error: invalid bulk length\r\n",
            b"*1\r\n$ 4\r\nPING\r\n": b"-ERR Protocol error: invalid bulk length\r\n",
            b"*2\r\n$4\r\nECHO\r\n$01\r\nx\r\n": b"-ERR Protocol error: invalid bulk length\r\n",
            b"*1\r\n$4\r\nPOST\r\n": b"",
            b"*2\r\n$5\r\nHost:\r\n$1\r\nx\r\n": b"",
            b"*1\r\nX4\r\nPING\r\n": b"-ERR Protocol error: expected '$', got 'X'\r\n",
            b"*1\rX$4\r\nPING\r\n": TAINT,
        }
        items = list(payloads.items()) * 5
        self.attack([p for p, _ in items], [e for _, e in items])


if __name__ == "__main__":
    main()
