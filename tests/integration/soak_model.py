"""Pieces of the concurrency soak (test_soak.py): a RESP connection whose reads
can time out without losing a partly received reply, and a model of one client's
keys that knows which values each key may hold.

The model is a set of possible values per key. A write that succeeded makes the
key hold exactly what it wrote; a write answered "upstream connection lost ...
may or may not have run" adds its outcome to the possibilities; a read narrows
them to what it saw, and fails if it saw something impossible."""
import socket
import time

from harness import encode


class Closed(Exception):
    """The server closed the connection (or reset it)."""


class Hang(Exception):
    """No complete reply within the deadline."""


class Err(str):
    """An error reply."""


class Incomplete(Exception):
    pass


def parse(buf, pos=0):
    """(value, next position) of the RESP2 value at pos; Incomplete if more is needed."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise Incomplete()
    t, rest = buf[pos:pos + 1], buf[pos + 1:end]
    nxt = end + 2
    if t == b"+":
        return rest.decode(), nxt
    if t == b"-":
        return Err(rest.decode()), nxt
    if t == b":":
        return int(rest), nxt
    if t == b"$":
        n = int(rest)
        if n < 0:
            return None, nxt
        if len(buf) < nxt + n + 2:
            raise Incomplete()
        return bytes(buf[nxt:nxt + n]), nxt + n + 2
    if t == b"*":
        n = int(rest)
        if n < 0:
            return None, nxt
        out = []
        for _ in range(n):
            v, nxt = parse(buf, nxt)
            out.append(v)
        return out, nxt
    raise ValueError("not RESP: %r" % bytes(buf[pos:pos + 40]))


class Conn:
    """One client connection. read() waits at most `timeout` seconds for a whole
    reply; a partial reply stays buffered for the next read."""

    def __init__(self, port, connect_timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=connect_timeout)
        self.buf = bytearray()
        self.pos = 0

    def close(self, reset=False):
        try:
            if reset:  # RST instead of FIN: an abrupt disconnect
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as e:
            raise Closed(repr(e))
        except socket.timeout:
            raise Hang("send blocked")

    def send_cmds(self, cmds):
        self.send(b"".join(encode(*c) for c in cmds))

    def read(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            if self.pos < len(self.buf):
                try:
                    v, nxt = parse(self.buf, self.pos)
                except Incomplete:
                    pass
                else:
                    self.pos = nxt
                    if self.pos > 65536 and self.pos * 2 > len(self.buf):
                        del self.buf[:self.pos]
                        self.pos = 0
                    return v
            left = deadline - time.monotonic()
            if left <= 0:
                raise Hang("no complete reply within %.1fs" % timeout)
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 18)
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError) as e:
                raise Closed(repr(e))
            if not chunk:
                raise Closed("EOF")
            self.buf += chunk

    def read_until_closed(self, timeout=5.0):
        """Everything until EOF; Hang if the connection stays open."""
        deadline = time.monotonic() + timeout
        data = bytes(self.buf[self.pos:])
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Hang("connection not closed within %.1fs" % timeout)
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                return data
            if not chunk:
                return data
            data += chunk


# --- error replies -------------------------------------------------------------

MAYBE_RAN = ("ERR upstream connection lost", "ERR upstream unavailable")
NOT_RUN = ("TRYAGAIN upstream unavailable", "ERR transaction aborted")


def error_kind(e):
    """'maybe' (may or may not have run), 'no' (did not run), or None (not an error
    respgate may give under this chaos)."""
    if e.startswith(MAYBE_RAN):
        return "maybe"
    if e.startswith(NOT_RUN):
        return "no"
    return None


def short(e):
    """An error's kind for the summary: its first words."""
    return " ".join(str(e).split()[:3])


class ModelError(AssertionError):
    pass


class Model:
    """Possible values of one client's keys. Strings hold bytes, counters ints;
    None is "absent"."""

    def __init__(self):
        self.keys = {}

    def possible(self, key):
        return self.keys.get(key, {None})

    # A command, its reply (or an error kind): checks the reply, updates the model.

    def set_ok(self, key, value):
        self.keys[key] = {value}

    def set_maybe(self, key, value):
        self.keys[key] = self.possible(key) | {value}

    def get(self, key, reply, what):
        p = self.possible(key)
        if reply not in p:
            raise ModelError("%s: GET %s returned %r, expected one of %s"
                             % (what, key, _trim(reply), sorted(map(_trim, p), key=str)))
        self.keys[key] = {reply}

    def incr_ok(self, key, reply, what):
        p = self.possible(key)
        ok = isinstance(reply, int) and not isinstance(reply, bool) and \
            ((reply - 1) in p or (reply == 1 and None in p))
        if not ok:
            raise ModelError("%s: INCR %s returned %r, expected one more than one of %s"
                             % (what, key, _trim(reply), sorted(map(_trim, p), key=str)))
        self.keys[key] = {reply}

    def incr_maybe(self, key):
        p = self.possible(key)
        self.keys[key] = p | {(v or 0) + 1 for v in p}

    def check_direct(self, key, raw, counter):
        """The value Redis holds at the end (read directly) is one the model allows."""
        value = raw
        if counter and raw is not None:
            value = int(raw)
        p = self.possible(key)
        if value not in p:
            raise ModelError("final: %s holds %r in Redis, the model expected one of %s"
                             % (key, _trim(value), sorted(map(_trim, p), key=str)))


def _trim(v):
    if isinstance(v, bytes) and len(v) > 40:
        return v[:32] + b"...(%d bytes)" % len(v)
    return v
