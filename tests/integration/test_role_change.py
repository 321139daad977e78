"""Roles changing under respgate without Sentinel: an operator promotes a replica
and demotes the master by hand. Writes the demoted master refuses (-READONLY) are
a topology signal: they wait for the new master and are sent there, never shown
to the app; writes go only over connections whose ROLE said master."""
import threading
import time
import unittest

from harness import Harness, RespError, main, wait_until


class Writers:
    """Clients, each on one connection, INCRementing their own counter."""

    def __init__(self, gate, clients=4):
        self.stop, self.errors, self.acked = threading.Event(), [], {}
        self.threads = [threading.Thread(target=self.run, args=(gate, i)) for i in range(clients)]
        for t in self.threads:
            t.start()

    def run(self, gate, i):
        c = gate.client(timeout=20)
        while not self.stop.is_set():
            reply = c.call("INCR", "w:%d" % i)
            if isinstance(reply, RespError):
                self.errors.append(str(reply))
            else:
                self.acked[i] = reply

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join()


class ManualSwitch(unittest.TestCase):

    def setUp(self):
        self.h = Harness()
        try:
            self.old = self.h.redis()
            self.new = self.h.replica_of(self.old)
            self.gate = self.h.respgate(
                self.old.port, regions=[{"name": "local", "priority": 1, "nodes": [
                    "127.0.0.1:%d" % self.old.port, "127.0.0.1:%d" % self.new.port]}],
                failover={"hold_ms": 5000})
        except BaseException:
            self.h.close(ok=False)
            raise

    def tearDown(self):
        self.h.close()

    def test_writes_refused_by_a_demoted_master_go_to_the_new_one(self):
        load = Writers(self.gate)
        try:
            wait_until(lambda: len(load.acked) == 4 and min(load.acked.values()) > 50,
                       what="writes flowing")
            # The replica first, so the old master's last writes reach it; then the
            # old master follows it and refuses writes until respgate moves on.
            a, b = self.new.client(), self.old.client()
            self.assertEqual(a.call("REPLICAOF", "NO", "ONE"), "OK")
            self.assertEqual(b.call("REPLICAOF", "127.0.0.1", str(self.new.port)), "OK")
            before = self.new.calls("incr")
            wait_until(lambda: self.new.calls("incr") > before + 200, what="writes on the new master")
        finally:
            load.finish()
        self.assertEqual(load.errors, [])
        self.assertRegex(self.gate.output(), r"master_switch: 127\.0\.0\.1:%d \(\w*\) -> 127\.0\.0\.1:%d "
                         % (self.old.port, self.new.port))


if __name__ == "__main__":
    main()
