"""Real redis-sentinel processes for integration tests.

A cluster is a master, its replicas and three Sentinels with short timers. Each
Sentinel's config names the others and the replicas (known-sentinel, known-replica,
fixed myids), so they agree at once instead of after rounds of hello messages.
"""
import os
import shutil
import subprocess
import threading
import time
import unittest

from harness import Harness, Raw, free_port, wait_until

REDIS_SENTINEL = shutil.which("redis-sentinel") or "/usr/bin/redis-sentinel"
NAME = "mymaster"


class Sentinel:
    def __init__(self, h, myid, port=None, host="127.0.0.1"):
        self.h, self.myid, self.host = h, myid, host
        self.port = port or free_port()
        self.dir = os.path.join(h.dir, "sentinel-%d" % self.port)
        os.makedirs(self.dir, exist_ok=True)
        self.proc = None

    def start(self, master, replicas, peers, down_after_ms, failover_timeout_ms, quorum=2):
        self.launch(self.monitor_lines(master, replicas, peers, down_after_ms,
                                       failover_timeout_ms, quorum))

    def monitor_lines(self, master, replicas, peers, down_after_ms, failover_timeout_ms, quorum,
                      port_of=lambda node: node.port):
        """sentinel.conf: this Sentinel, the master, its replicas and the other
        Sentinels, each named by port_of (a TLS setup names the TLS ports)."""
        lines = ["port %d" % self.port, "bind %s" % self.host, "dir %s" % self.dir,
                 "logfile %s" % os.path.join(self.dir, "sentinel.log"),
                 "sentinel myid %s" % self.myid,
                 "sentinel announce-ip %s" % self.host,
                 "sentinel monitor %s %s %d %d" % (NAME, master.host, port_of(master), quorum),
                 "sentinel down-after-milliseconds %s %d" % (NAME, down_after_ms),
                 "sentinel failover-timeout %s %d" % (NAME, failover_timeout_ms),
                 "sentinel parallel-syncs %s 1" % NAME]
        lines += ["sentinel known-replica %s %s %d" % (NAME, r.host, port_of(r)) for r in replicas]
        lines += ["sentinel known-sentinel %s %s %d %s" % (NAME, p.host, port_of(p), p.myid)
                  for p in peers if p is not self]
        return lines

    def launch(self, lines):
        conf = os.path.join(self.dir, "sentinel.conf")
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = subprocess.Popen([REDIS_SENTINEL, conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.h.track(self.proc)
        wait_until(self.alive, what="sentinel on port %d" % self.port)

    def alive(self):
        try:
            return self.call("PING") == "PONG"
        except OSError:
            return False

    def call(self, *args):
        c = Raw(self.port, timeout=5, host=self.host)
        try:
            return c.call(*args)
        finally:
            c.close()

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def master_port(self):
        return int(self.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", NAME)[1])

    def failover(self):
        """SENTINEL FAILOVER, retried while a previous one is still settling."""
        deadline = time.monotonic() + 15
        while True:
            reply = self.call("SENTINEL", "FAILOVER", NAME)
            if reply == "OK" or time.monotonic() > deadline:
                return reply
            time.sleep(0.2)


class Cluster:
    """A master, replicas and Sentinels that already agree on all of them."""

    def __init__(self, h, nreplicas=2, nsentinels=3, down_after_ms=600,
                 failover_timeout_ms=4000):
        self.h = h
        self.master = h.redis()
        self.replicas = [h.replica_of(self.master) for _ in range(nreplicas)]
        self.nodes = {r.port: r for r in [self.master] + self.replicas}
        self.sentinels = [Sentinel(h, "%040x" % (0x5e << 100 | i)) for i in range(nsentinels)]
        for s in self.sentinels:
            s.start(self.master, self.replicas, self.sentinels, down_after_ms,
                    failover_timeout_ms)
        wait_until(self._agreed, timeout=15, what="sentinels agreeing")

    def _agreed(self):
        for s in self.sentinels:
            if len(s.call("SENTINEL", "SENTINELS", NAME)) != len(self.sentinels) - 1:
                return False
            healthy = [r for r in s.call("SENTINEL", "REPLICAS", NAME)
                       if dict(zip(r[::2], r[1::2]))[b"flags"] == b"slave"]
            if len(healthy) != len(self.replicas):
                return False
        return True

    def addresses(self):
        return ["127.0.0.1:%d" % s.port for s in self.sentinels]

    def gate_options(self, **failover):
        return {"regions": [{"name": "local", "priority": 1,
                             "sentinel": {"addresses": self.addresses(), "master_name": NAME}}],
                "failover": dict({"hold_ms": 15000}, **failover)}

    def live_sentinels(self):
        return [s for s in self.sentinels if s.proc.poll() is None]

    def settled_master(self, timeout=20):
        """The master once every live Sentinel has named the same one for a second
        (with timers this short, Sentinel sometimes fails over twice in a row)."""
        seen = {"port": None, "since": 0}

        def stable():
            ports = {s.master_port() for s in self.live_sentinels()}
            port = ports.pop() if len(ports) == 1 else None
            if port != seen["port"]:
                seen.update(port=port, since=time.monotonic())
            return port is not None and time.monotonic() - seen["since"] > 1.0
        wait_until(stable, timeout=timeout, interval=0.1, what="the Sentinels settling")
        return self.nodes[seen["port"]]

    def wait_switched(self, old_port, timeout=20):
        """Waits until every live Sentinel names a master other than old_port."""
        wait_until(lambda: all(s.master_port() != old_port for s in self.live_sentinels()),
                   timeout=timeout, what="the Sentinels switching masters")
        return self.live_sentinels()[0].master_port()


class SwitchWatch:
    """When the first of the given Sentinels published +switch-master (monotonic)."""

    def __init__(self, sentinels):
        self.at = None
        self.lock = threading.Lock()
        for s in sentinels:
            c = Raw(s.port, timeout=60, host=s.host)
            c.call("SUBSCRIBE", "+switch-master")
            threading.Thread(target=self._run, args=(c,), daemon=True).start()

    def _run(self, c):
        try:
            c.read()
        except OSError:
            return
        with self.lock:
            now = time.monotonic()
            self.at = now if self.at is None else min(self.at, now)


class ClusterTestCase(unittest.TestCase):
    """A Cluster (master, nreplicas replicas, 3 Sentinels) and a respgate following it,
    fresh for every test."""
    nreplicas = 2
    gate_overrides = {}  # merged into the Cluster's respgate options

    def setUp(self):
        self.h = Harness()
        try:
            self.cl = Cluster(self.h, nreplicas=self.nreplicas)
            self.gate = self.h.respgate(self.cl.master.port,
                                        **dict(self.cl.gate_options(), **self.gate_overrides))
            wait_until(lambda: "master is 127.0.0.1:%d" % self.cl.master.port
                       in self.gate.output(), what="respgate following the master")
        except BaseException:
            self.h.close(ok=False)
            raise

    def tearDown(self):
        self.h.close()
