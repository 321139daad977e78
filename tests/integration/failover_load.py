"""Continuous load for failover tests and the failover benchmark.

Writers each own one connection and INCR their own counter; since each INCR's
reply is the counter's value, an acknowledged write that was lost shows as a
reply no greater than the one before. Readers each own one connection and GET
in a loop. Nothing reconnects unless the peer closed the connection, and that is
counted: a proxy that carries apps through failover closes none.
"""
import threading
import time

from harness import ConnectionClosed, Raw, RespError

PACE_S = 0.001  # at most ~1000 requests a second per client: 2 shared cores


class _Client(threading.Thread):
    def __init__(self, load, i, write):
        super().__init__(daemon=True)
        self.load, self.i, self.write = load, i, write
        self.key = "%s:%d" % (load.prefix, i)
        self.ok_times = []  # monotonic time of every successful reply
        self.errors = []    # (monotonic time, text)
        self.closed = 0
        self.last = 0       # writers: the last acknowledged counter value
        self.lost = 0       # writers: acknowledged writes missing from later replies

    def run(self):
        c = Raw(self.load.port, timeout=30)
        while not self.load.stopping.is_set():
            try:
                reply = c.call("INCR", self.key) if self.write else c.call("GET", "fl:read")
            except (ConnectionClosed, OSError):
                self.closed += 1
                self.errors.append((time.monotonic(), "connection closed"))
                time.sleep(0.05)
                c = Raw(self.load.port, timeout=30)
                continue
            now = time.monotonic()
            if isinstance(reply, RespError):
                self.errors.append((now, str(reply)))
            else:
                self.ok_times.append(now)
                if self.write:
                    if reply <= self.last:
                        self.lost += self.last - reply + 1
                    self.last = reply
            time.sleep(PACE_S)
        c.close()

    def max_stall(self, start, end):
        """The longest time without a successful reply within [start, end]."""
        times = [start] + [t for t in self.ok_times if start <= t <= end] + [end]
        return max(b - a for a, b in zip(times, times[1:]))


class Load:
    def __init__(self, port, writers=6, readers=2, prefix="fl"):
        self.port, self.prefix = port, prefix
        self.stopping = threading.Event()
        self.writers = [_Client(self, i, True) for i in range(writers)]
        self.readers = [_Client(self, i, False) for i in range(readers)]
        self.started = time.monotonic()
        for c in self.writers + self.readers:
            c.start()

    def wait_flowing(self, n=50, timeout=10):
        deadline = time.monotonic() + timeout
        while any(len(c.ok_times) < n for c in self.writers + self.readers):
            if time.monotonic() > deadline:
                raise AssertionError("load not flowing")
            time.sleep(0.02)

    def stop(self):
        self.stopping.set()
        for c in self.writers + self.readers:
            c.join(40)
        self.stopped = time.monotonic()

    def report(self, start=None):
        start = start or self.started
        return {
            "writes": sum(len(c.ok_times) for c in self.writers),
            "reads": sum(len(c.ok_times) for c in self.readers),
            "write_errors": [e for c in self.writers for e in c.errors],
            "read_errors": [e for c in self.readers for e in c.errors],
            "max_write_errors_per_client": max(len(c.errors) for c in self.writers),
            "closed": sum(c.closed for c in self.writers + self.readers),
            "lost": sum(c.lost for c in self.writers),
            "write_stall": max(c.max_stall(start, self.stopped) for c in self.writers),
            "read_stall": max(c.max_stall(start, self.stopped) for c in self.readers),
        }

    def writes_resumed(self, t):
        """When every writer was writing again after its longest gap since t."""
        ends = []
        for c in self.writers:
            times = [t] + [x for x in c.ok_times if x >= t]
            gaps = [(b - a, b) for a, b in zip(times, times[1:])]
            ends.append(max(gaps)[1] if gaps else t)
        return max(ends)

    def missing_on(self, node):
        """Writers whose counter on node is below their last acknowledged value."""
        c = node.client()
        try:
            return [w.i for w in self.writers
                    if int(c.call("GET", w.key) or 0) < w.last]
        finally:
            c.close()
