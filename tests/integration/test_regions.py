"""Regions (issue 13): three regions on loopback, each on its own addresses
(east 127.0.1.1, west 127.0.2.1, dr 127.0.3.1), nodes found only through Sentinel and
placed by regions[].match, five Sentinels (2 east, 2 west, 1 dr, quorum 3), and a
respgate per region that learns its region from RESPGATE_REGION.

- Reads stay in the reader's region; replica-priority follows the regions' priorities
  (failover.region_priority "apply"), and comes back when a node restarts without it.
- kill -9 of the east master: the east replica takes over, trial after trial.
- The whole east region lost: the master goes to west, never dr, and every respgate
  follows; then east comes back and exactly one failback puts the master there again,
  with writers running and nothing lost.

- Two regions only, the preferred one lost with its Sentinel majority: POST /failover
  with a region promotes there; every write that had reached that region is there,
  and the old master, back, takes no write through respgate.

TRIALS (default 2) sets how many east-master kills to run."""
import json
import os
import threading
import time
import unittest
import urllib.error
import urllib.request

from harness import Harness, Raw, RespError, main, wait_until
from sentinel import NAME, Sentinel, SwitchWatch

HOSTS = {"east": "127.0.1.1", "west": "127.0.2.1", "dr": "127.0.3.1"}
PRIORITY = {"east": 1, "west": 2, "dr": 3}
WANT = {"east": 10, "west": 20, "dr": 30}  # what region_priority "apply" sets
TRIALS = int(os.environ.get("TRIALS", "2"))


def fields(entry):
    return {k.decode(): v.decode() for k, v in zip(entry[::2], entry[1::2])}


class Layout:
    """East: master and replica; west: two replicas; dr: one; Sentinels 2/2/1."""

    # Timers a little longer than elsewhere: fifteen processes share two cores here, and
    # a Sentinel that misses a few pings of a master just promoted fails it over again.
    DOWN_AFTER_MS, FAILOVER_TIMEOUT_MS = 1500, 6000

    def __init__(self, h, down_after_ms=DOWN_AFTER_MS, failover_timeout_ms=FAILOVER_TIMEOUT_MS):
        self.h = h
        self.master = h.redis(host=HOSTS["east"])
        self.nodes = [self.master, h.replica_of(self.master, host=HOSTS["east"]),
                      h.replica_of(self.master, host=HOSTS["west"]),
                      h.replica_of(self.master, host=HOSTS["west"]),
                      h.replica_of(self.master, host=HOSTS["dr"])]
        self.by_port = {n.port: n for n in self.nodes}
        self.region = {n.port: r for n in self.nodes for r, a in HOSTS.items() if n.host == a}
        where = ["east", "east", "west", "west", "dr"]
        self.sentinels = [Sentinel(h, "%040x" % (0x7e << 100 | i), host=HOSTS[r])
                          for i, r in enumerate(where)]
        self.sentinel_region = dict(zip(self.sentinels, where))
        for s in self.sentinels:
            s.start(self.master, self.nodes[1:], self.sentinels, down_after_ms,
                    failover_timeout_ms, quorum=3)
        wait_until(self.agreed, timeout=20, what="the Sentinels agreeing")

    def live_sentinels(self):
        return [s for s in self.sentinels if s.proc.poll() is None]

    def agreed(self):
        for s in self.live_sentinels():
            if len(s.call("SENTINEL", "SENTINELS", NAME)) != len(self.live_sentinels()) - 1:
                return False
        return True

    def gate_options(self, **failover):
        regions = []
        for r in ("east", "west", "dr"):
            regions.append({"name": r, "priority": PRIORITY[r],
                            "match": [HOSTS[r][:-1] + "0/24"],  # 127.0.1.0/24 ...
                            "sentinel": {"addresses": ["%s:%d" % (s.host, s.port)
                                                       for s in self.sentinels
                                                       if self.sentinel_region[s] == r],
                                         "master_name": NAME}})
        return {"regions": regions,
                "failover": dict({"hold_ms": 15000, "region_priority": "apply"}, **failover)}

    def gate(self, region, **failover):
        return self.h.respgate(self.master.port, environ={"RESPGATE_REGION": region},
                               **self.gate_options(**failover))

    def master_port(self):
        """The master a majority of the live Sentinels name (a straggler catches up later)."""
        ports = []
        for s in self.live_sentinels():
            try:
                ports.append(s.master_port())
            except OSError:
                pass
        best = max(set(ports), key=ports.count) if ports else None
        return best if ports.count(best) * 2 > len(self.live_sentinels()) else None

    def settled_master(self, timeout=30):
        seen = {"port": None, "since": 0}

        def stable():
            port = self.master_port()
            if port != seen["port"]:
                seen.update(port=port, since=time.monotonic())
            return port is not None and time.monotonic() - seen["since"] > 1.0
        wait_until(stable, timeout=timeout, interval=0.1, what="the Sentinels settling")
        return self.by_port[seen["port"]]

    def sentinels_see_priorities(self):
        """A majority of the live Sentinels has read each live replica's replica-priority
        as wanted (a Sentinel left behind by a quick failover catches up later)."""
        live = self.live_sentinels()
        good = 0
        for s in live:
            ok = True
            for e in map(fields, s.call("SENTINEL", "REPLICAS", NAME)):
                port = int(e["port"])
                node = self.by_port.get(port)
                if node is None or node.proc.poll() is not None or "s_down" in e["flags"]:
                    continue
                ok &= int(e["slave-priority"]) == WANT[self.region[port]]
            good += ok
        return good * 2 > len(live)

    def restart_as_replica(self, node, master):
        """A killed node back, as a replica of master (as Sentinel would make it),
        and with Redis' default replica-priority: respgate must set it again."""
        node.extra = [a for a in node.extra]
        if "--replicaof" in node.extra:
            i = node.extra.index("--replicaof")
            del node.extra[i:i + 3]
        node.extra += ["--replicaof", master.host, str(master.port)]
        node.start()
        wait_until(lambda: node.info("replication").get("master_link_status") == "up",
                   timeout=20, what="node %d linked again" % node.port)


def admin(gate, path, body=None):
    """GET path, or POST body (a dict) to it: the text, or (status, JSON) for a POST."""
    port = json.load(open(gate.config_path))["admin"]["listen"].rsplit(":", 1)[1]
    url = "http://127.0.0.1:%s%s" % (port, path)
    if body is None:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode()
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def metric(gate, name, **labels):
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    total = 0.0
    for line in admin(gate, "/metrics").splitlines():
        if line.startswith(name + "{" + want + "}") or (not labels and line.startswith(name + " ")):
            total += float(line.rsplit(" ", 1)[1])
    return total


class Writer(threading.Thread):
    """INCRs one key through a respgate; every acknowledged value is remembered."""

    def __init__(self, gate, key):
        super().__init__(daemon=True)
        self.gate, self.key, self.stop = gate, key, threading.Event()
        self.acked, self.errors, self.oks = 0, [], []

    def first_ok_after(self, t):
        return next((at for at in self.oks if at > t), None)

    def run(self):
        c = self.gate.client(timeout=30)
        while not self.stop.is_set():
            r = c.call("INCR", self.key)
            if isinstance(r, int):
                self.acked = r
                self.oks.append(time.monotonic())
            else:
                self.errors.append(r)
                time.sleep(0.05)
            time.sleep(0.002)


class RegionTestCase(unittest.TestCase):
    def setUp(self):
        self.h = Harness()
        try:
            self.lay = Layout(self.h)
        except BaseException:
            self.h.close(ok=False)
            raise

    def tearDown(self):
        self.h.close()

    def gates(self, regions, **failover):
        gates = {r: self.lay.gate(r, **failover) for r in regions}
        for g in gates.values():
            wait_until(lambda: "master is %s:%d" % (self.lay.master.host, self.lay.master.port)
                       in g.output(), timeout=20, what="respgate following the master")
        return gates


class Locality(RegionTestCase):

    def test_reads_stay_local_and_the_east_replica_takes_over_trial_after_trial(self):
        gates = self.gates(("east", "west", "dr"))
        topo = json.loads(admin(gates["west"], "/topology"))
        self.assertEqual(topo["local_region"], "west")
        placed = {n["address"]: n["region"] for n in topo["nodes"] if n["listed"]}
        self.assertEqual(placed, {"%s:%d" % (n.host, n.port): self.lay.region[n.port]
                                  for n in self.lay.nodes}, "every discovered node placed by match")
        wait_until(lambda: all(n["replica_priority"] == WANT[n["region"]]
                               for n in json.loads(admin(gates["east"], "/topology"))["nodes"]
                               if n["role"] == "replica"),
                   timeout=10, what="replica-priority applied")
        # Reads: each respgate's go to its own region's replicas.
        c = gates["east"].client()
        c.call("SET", "k", "v")
        time.sleep(0.3)
        for region, g in gates.items():
            before = {r: metric(g, "respgate_reads_total", region=r) for r in HOSTS}
            rc = g.client()
            for _ in range(300):
                self.assertEqual(rc.call("GET", "k"), b"v")
            after = {r: metric(g, "respgate_reads_total", region=r) for r in HOSTS}
            got = {r: after[r] - before[r] for r in HOSTS}
            print("respgate in %s: 300 GETs served by region %s" % (region, got))
            self.assertGreaterEqual(got[region] / 300.0, 0.95, (region, got))
            self.assertEqual(metric(g, "respgate_reads_cross_region_total"),
                             sum(after[r] for r in HOSTS if r != region))
        self.assertEqual(metric(gates["east"], "respgate_master_region", region="east"), 1)
        # kill -9 of the east master, again and again: the other east node takes over.
        wait_until(self.lay.sentinels_see_priorities, timeout=25,
                   what="the Sentinels reading the new replica-priorities")
        master = self.lay.master
        for trial in range(TRIALS):
            master.kill()
            new = None

            def switched():
                nonlocal new
                port = self.lay.master_port()
                new = self.lay.by_port.get(port) if port != master.port else None
                return new is not None
            wait_until(switched, timeout=30, what="a new master (trial %d)" % trial)
            self.assertEqual(self.lay.region[new.port], "east",
                             "trial %d: promoted %d in %s" % (trial, new.port,
                                                             self.lay.region[new.port]))
            for g in gates.values():
                wait_until(lambda: "master is %s:%d" % (new.host, new.port) in g.output() or
                           "-> %s:%d" % (new.host, new.port) in g.output(),
                           timeout=20, what="respgate following (trial %d)" % trial)
            self.assertEqual(gates["west"].client().call("SET", "after", trial), "OK")
            self.lay.restart_as_replica(master, new)
            wait_until(self.lay.sentinels_see_priorities, timeout=30,
                       what="replica-priority set again on the node that came back")
            self.assertEqual(self.lay.settled_master().port, new.port)
            master = new


class RegionLoss(RegionTestCase):

    def test_east_lost_goes_west_then_fails_back_once(self):
        gates = self.gates(("east", "west", "dr"), failback_after_ms=1500)
        wait_until(self.lay.sentinels_see_priorities, timeout=25,
                   what="the Sentinels reading the new replica-priorities")
        writers = [Writer(gates["west"], "w"), Writer(gates["dr"], "d")]
        for w in writers:
            w.start()
        time.sleep(0.5)
        east = [n for n in self.lay.nodes if self.lay.region[n.port] == "east"]
        east_sentinels = [s for s in self.lay.sentinels if self.lay.sentinel_region[s] == "east"]
        watch = SwitchWatch([s for s in self.lay.sentinels if s not in east_sentinels])
        for s in east_sentinels:
            s.kill()
        for n in east:
            n.kill()
        killed_at = time.monotonic()
        wait_until(lambda: watch.at is not None, timeout=30, what="+switch-master")
        new = self.lay.settled_master()
        self.assertEqual(self.lay.region[new.port], "west", "never dr while west has a replica")
        for name, g in gates.items():
            if name == "east":
                continue
            wait_until(lambda: "-> %s:%d" % (new.host, new.port) in g.output(), timeout=20,
                       what="respgate %s following" % name)
        for w in writers:
            wait_until(lambda: w.first_ok_after(killed_at), timeout=20, what="writes resuming")
        resumed = max(w.first_ok_after(killed_at) for w in writers)
        print("writes resumed %.3f s after the kill, %+.3f s from the first +switch-master" % (
            resumed - killed_at, resumed - watch.at))
        self.assertLessEqual(resumed - watch.at, 0.5, "writes resume as Sentinel switches")
        for w in writers:  # the requests in flight on the master that died, at most
            self.assertLessEqual(len(w.errors), 1, w.errors)
            w.errors = []
        # East comes back: its nodes as replicas, its Sentinels; then one failback.
        for n in east:
            self.lay.restart_as_replica(n, new)
        for s in east_sentinels:
            s.proc = None
            s.start(new, [n for n in self.lay.nodes if n is not new], self.lay.sentinels,
                    Layout.DOWN_AFTER_MS, Layout.FAILOVER_TIMEOUT_MS, quorum=3)
        back = SwitchWatch(self.lay.live_sentinels())
        wait_until(lambda: self.lay.master_port() in {n.port for n in east}, timeout=60,
                   what="the failback to east")
        settled = self.lay.settled_master()
        self.assertEqual(self.lay.region[settled.port], "east")
        time.sleep(4)  # past failback_after_ms and the jitter: nobody asks again
        self.assertEqual(self.lay.settled_master().port, settled.port)
        asked = sum(metric(g, "respgate_failbacks_total") for g in gates.values())
        self.assertEqual(asked, 1, "exactly one failback for three respgates")
        self.assertIsNotNone(back.at)
        for w in writers:
            w.stop.set()
            w.join(10)
        c = gates["west"].client()
        for w in writers:
            self.assertEqual(w.errors, [], "a planned failback costs no error")
            self.assertGreaterEqual(int(c.call("GET", w.key)), w.acked, "no acknowledged write lost")


class TwoRegions(unittest.TestCase):
    """East (priority 1): master and replica, 2 Sentinels; west: a replica and 1
    Sentinel; quorum 2. Losing east leaves west no majority: nothing is promoted."""

    def setUp(self):
        self.h = Harness()
        try:
            h = self.h
            self.master = h.redis(host=HOSTS["east"])
            self.east2 = h.replica_of(self.master, host=HOSTS["east"])
            self.west = h.replica_of(self.master, host=HOSTS["west"])
            where = ["east", "east", "west"]
            self.sentinels = [Sentinel(h, "%040x" % (0x3e << 100 | i), host=HOSTS[r])
                              for i, r in enumerate(where)]
            for s in self.sentinels:
                s.start(self.master, [self.east2, self.west], self.sentinels,
                        Layout.DOWN_AFTER_MS, Layout.FAILOVER_TIMEOUT_MS, quorum=2)
            regions = [{"name": r, "priority": PRIORITY[r], "match": [HOSTS[r][:-1] + "0/24"],
                        "sentinel": {"addresses": ["%s:%d" % (s.host, s.port)
                                                   for s, w in zip(self.sentinels, where)
                                                   if w == r], "master_name": NAME}}
                       for r in ("east", "west")]
            self.gate = h.respgate(self.master.port, environ={"RESPGATE_REGION": "west"},
                                   regions=regions, failover={"hold_ms": 2000})
            wait_until(lambda: "master is %s:%d" % (self.master.host, self.master.port)
                       in self.gate.output(), timeout=20, what="respgate following the master")
        except BaseException:
            self.h.close(ok=False)
            raise

    def tearDown(self):
        self.h.close()

    def test_promoting_a_region_by_hand_when_no_majority_is_left(self):
        g = self.gate
        code, r = admin(g, "/failover", {"region": "west"})
        self.assertEqual(code, 409, r)
        self.assertIn("force", r["reply"])
        self.assertEqual(admin(g, "/failover", {"region": "mars"})[0], 400)
        self.assertEqual(admin(g, "/failover", {"force": True})[0], 400)
        c = g.client()
        for i in range(200):
            self.assertEqual(c.call("SET", "k%d" % i, i), "OK")
        moff = self.master.info("replication")["master_repl_offset"]
        wait_until(lambda: self.west.info("replication")["slave_repl_offset"] >= moff,
                   what="the writes reaching west")
        for s in self.sentinels[:2]:
            s.kill()
        self.master.kill()
        self.east2.kill()
        time.sleep(4)  # past down-after: Sentinel in west sees it, and cannot elect
        self.assertEqual(self.sentinels[2].master_port(), self.master.port, "nothing promoted")
        reply = g.client().call("SET", "x", "1")
        self.assertIsInstance(reply, RespError, "no master: writes fail after hold_ms")
        code, r = admin(g, "/failover", {"region": "west"})
        self.assertEqual((code, r["ok"], r["promoted"]), (202, True,
                                                          "%s:%d" % (self.west.host, self.west.port)),
                         r)
        wait_until(lambda: g.client().call("SET", "after", "1") == "OK", timeout=10,
                   what="writes through respgate again")
        c = g.client()
        self.assertEqual([c.call("GET", "k%d" % i) for i in range(200)],
                         [str(i).encode() for i in range(200)], "every write that reached west")
        self.assertEqual(metric(g, "respgate_region_failovers_total"), 1)
        # The old master comes back, as a master (its Sentinels still say so): respgate
        # keeps writing to the node it promoted.
        self.master.extra = [a for a in self.master.extra]
        self.master.start()
        time.sleep(1)
        for i in range(50):
            self.assertEqual(c.call("SET", "late%d" % i, i), "OK")
        self.assertEqual(self.master.calls("set"), 0, "the old master took no write")
        self.assertEqual(self.west.client().call("GET", "late49"), b"49")
        topo = json.loads(admin(g, "/topology"))
        self.assertEqual(topo["master"], "%s:%d" % (self.west.host, self.west.port))
        self.assertIn("POST /failover", topo["master_reason"])


if __name__ == "__main__":
    main()
