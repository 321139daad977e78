#!/usr/bin/env python3
"""Failover benchmark: what applications see while Sentinel moves the Redis master.

Each run starts a fresh master, two replicas and three Sentinels
(tests/integration/sentinel.py), puts a proxy in front of them and drives it with
eight clients on one connection each (tests/integration/failover_load.py: six INCR
a counter of their own, two GET). Two scenarios:

  planned  SENTINEL FAILOVER
  kill     kill -9 of the master

Targets: HAProxy 2.6 set up as the usual role-checking L4 proxy for Redis with
Sentinel (the config is printed), and respgate following Sentinel if --respgate is
given. For each run: error replies and closed connections the clients saw, the
longest time a writer went without an acknowledged INCR, acknowledged writes lost
(an INCR reply no greater than the previous one; counters on the final master below
the last acknowledged value) and the time from the trigger to +switch-master.

    /usr/bin/python3 tests/bench/failover.py [--respgate BIN] [--rounds N]

Reading the figures: a client only notices a lost write if it later reads its counter
back lower, so writes acknowledged by a master that is then thrown away show up as
"lost on new master" until the client is moved to the new master, and as "INCR
regress" after. Times are seconds after the trigger; Sentinel publishes
+switch-master on the other Sentinels first, and on the failover leader only at
+failover-end (the "first/all" column).

Not a test: it asserts nothing, and timings on a shared machine are noisy.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))
import harness  # noqa: E402  (after the path tweak)
from failover_load import Load  # noqa: E402
from harness import ConnectionClosed, Harness, Raw, free_port, wait_until  # noqa: E402
from sentinel import NAME, Cluster  # noqa: E402

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"

# The role-checking setup found in most HAProxy + Sentinel write-ups: every node is
# a server, and only the one that says role:master passes the check.
HAPROXY_CFG = r"""global
    nbthread 2
defaults
    mode tcp
    timeout connect 1s
    timeout client 30s
    timeout server 30s
frontend redis
    bind 127.0.0.1:{port}
    default_backend redis_master
backend redis_master
    option tcp-check
    tcp-check send PING\r\n
    tcp-check expect string +PONG
    tcp-check send info\ replication\r\n
    tcp-check expect string role:master
    tcp-check send QUIT\r\n
    tcp-check expect string +OK
{servers}
"""
HAPROXY_SERVER = ("    server p{port} 127.0.0.1:{port} check inter 100ms fall 1 rise 1 "
                  "on-marked-down shutdown-sessions")
HAPROXY_STATE = re.compile(r"Server redis_master/p(\d+) is (UP|DOWN)")


class HAProxy:
    """haproxy -db in front of every node of the cluster. It reports servers going UP
    and DOWN on stderr; each line is kept with the time it arrived."""

    name = "haproxy"

    def __init__(self, h, cl):
        self.port = free_port()
        self.nodes = sorted(cl.nodes)
        self.config = HAPROXY_CFG.format(
            port=self.port, servers="\n".join(HAPROXY_SERVER.format(port=p) for p in self.nodes))
        path = os.path.join(h.dir, "haproxy.cfg")
        with open(path, "w") as f:
            f.write(self.config)
        self.lines = []
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", path], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        h.track(self.proc)
        threading.Thread(target=self._read, daemon=True).start()
        # Servers start UP: wait until the replicas' first check has taken them DOWN.
        wait_until(lambda: self._alive() and self.up() == {cl.master.port},
                   what="haproxy marking the replicas DOWN")

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append((time.monotonic(), line.decode(errors="replace").rstrip()))

    def _alive(self):
        if self.proc.poll() is not None:
            raise AssertionError("haproxy exited:\n" + "\n".join(l for _, l in self.lines))
        return True

    def changes(self):
        """[(time, port, "UP" or "DOWN")], as haproxy logged them."""
        out = []
        for t, line in list(self.lines):
            m = HAPROXY_STATE.search(line)
            if m:
                out.append((t, int(m.group(1)), m.group(2)))
        return out

    def up(self):
        state = {p: "UP" for p in self.nodes}
        for _, port, s in self.changes():
            state[port] = s
        return {p for p, s in state.items() if s == "UP"}


class RespgateTarget:
    """respgate following the Sentinels. Its Sentinel support is new: if it refuses
    the config or never passes traffic, the run is reported as failed."""

    name = "respgate"

    def __init__(self, h, cl):
        self.config = {
            "regions": [{"name": "local", "priority": 1,
                         "sentinel": {"addresses": ["127.0.0.1:%d" % s.port for s in cl.sentinels],
                                      "master_name": NAME}}],
            "failover": {"hold_ms": 15000},
        }
        self.gate = h.respgate(cl.master.port, **self.config)  # also listen, threads: 2
        self.port = self.gate.port

    def changes(self):
        return []


class SentinelEvents:
    """Every event the Sentinels publish (PSUBSCRIBE *), with the time it arrived."""

    def __init__(self, sentinels):
        self.events = []  # (monotonic time, sentinel port, channel, payload)
        for s in sentinels:
            c = Raw(s.port, timeout=None)
            c.call("PSUBSCRIBE", "*")
            threading.Thread(target=self._run, args=(s.port, c), daemon=True).start()

    def _run(self, port, c):
        try:
            while True:
                _, _, channel, payload = c.read()
                self.events.append((time.monotonic(), port, channel.decode(), payload.decode()))
        except (ConnectionClosed, OSError):
            pass  # the Sentinel was killed at the end of the run

    def first(self, channel, after=0.0):
        return min((t for t, _, ch, _ in self.events if ch == channel and t >= after), default=None)

    def all_published(self, channel, sentinels):
        """When the last of the Sentinels first published channel (None until all have)."""
        firsts = {}
        for t, port, ch, _ in self.events:
            if ch == channel:
                firsts.setdefault(port, t)
        return max(firsts.values()) if len(firsts) == len(sentinels) else None


class NodeWatch:
    """Samples a node's role and INCR count every 50 ms: when the old master last
    accepted a write and when Sentinel turned it into a replica."""

    def __init__(self, node):
        self.node = node
        self.samples = []  # (monotonic time, role, INCR calls)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        c = None
        while not self.stopping.is_set():
            try:
                c = c or self.node.client(timeout=2)
            except OSError:
                return  # killed
            try:
                text = c.call("INFO", "replication", "commandstats").decode()
            except (ConnectionClosed, OSError):
                c = None  # demoting a master, Sentinel ends its clients (CLIENT KILL TYPE normal)
                continue
            role = re.search(r"^role:(\w+)", text, re.M).group(1)
            m = re.search(r"^cmdstat_incr:calls=(\d+)", text, re.M)
            self.samples.append((time.monotonic(), role, int(m.group(1)) if m else 0))
            time.sleep(0.05)

    def stop(self):
        self.stopping.set()
        self.thread.join(5)

    def demoted_at(self):
        return next((t for t, role, _ in self.samples if role != "master"), None)

    def last_write_at(self):
        """The first sample showing the last INCR the node ran as a master (it runs the
        new master's INCRs too once it is a replica: those do not count)."""
        master = [(t, n) for t, role, n in self.samples if role == "master"]
        last = None
        for (_, a), (t, b) in zip(master, master[1:]):
            if b > a:
                last = t
        return last


def longest_gap(clients, start, end):
    """The longest time one client went without a successful reply: (gap, from, to)."""
    best = (0.0, start, start)
    for c in clients:
        times = [start] + [t for t in c.ok_times if start <= t <= end] + [end]
        for a, b in zip(times, times[1:]):
            best = max(best, (b - a, a, b))
    return best


def lost_on(node, writers):
    """Acknowledged INCRs missing from node: (writes, clients)."""
    c = node.client()
    try:
        missing = [w.last - int(c.call("GET", w.key) or 0) for w in writers]
    finally:
        c.close()
    missing = [m for m in missing if m > 0]
    return sum(missing), len(missing)


def run(target, scenario, opts):
    """One scenario against one target on a fresh cluster; returns the figures."""
    r = {"scenario": scenario}
    h = Harness()
    ok = False
    try:
        t = time.monotonic()
        cl = Cluster(h, down_after_ms=opts.down_after_ms,
                     failover_timeout_ms=opts.failover_timeout_ms)
        r["setup"] = time.monotonic() - t
        proxy = target(h, cl)
        events = SentinelEvents(cl.sentinels)
        old = cl.master
        watch = NodeWatch(old)
        load = Load(proxy.port)
        try:
            load.wait_flowing()
            time.sleep(opts.lead)
            t0 = time.monotonic()
            if scenario == "planned":
                reply = cl.sentinels[0].failover()
                if reply != "OK":
                    raise AssertionError("SENTINEL FAILOVER answered %r" % reply)
            else:
                old.kill()
            wait_until(lambda: events.first("+switch-master", t0), timeout=30,
                       what="+switch-master")
            t_switch = events.first("+switch-master", t0)
            time.sleep(max(0.0, t_switch + opts.tail - time.monotonic()))
        finally:
            load.stop()
        new = cl.settled_master()
        if scenario == "planned":  # Sentinel demotes the old master in its own time
            try:
                wait_until(lambda: watch.demoted_at(), timeout=max(0.0, t0 + opts.watch - time.monotonic()),
                           what="the old master's demotion")
            except AssertionError:
                pass
        watch.stop()

        writers, clients = load.writers, load.writers + load.readers
        replies = [(t, e) for c in clients for t, e in c.errors if e != "connection closed"]
        kinds = {}
        for _, e in replies:
            kinds[e[:60]] = kinds.get(e[:60], 0) + 1
        gap, ga, gb = longest_gap(writers, load.started, load.stopped)
        rel = lambda x: None if x is None else x - t0  # noqa: E731
        r.update(
            ok=True, new_port=new.port, old_port=old.port,
            ops=sum(len(c.ok_times) for c in clients),
            write_errors=sum(1 for c in writers for _, e in c.errors if e != "connection closed"),
            read_errors=sum(1 for c in load.readers for _, e in c.errors if e != "connection closed"),
            error_kinds=kinds,
            first_error=rel(min((t for t, _ in replies), default=None)),
            last_error=rel(max((t for t, _ in replies), default=None)),
            closed=sum(c.closed for c in clients),
            stall=gap, stall_window=(rel(ga), rel(gb)),
            lost_regress=sum(w.lost for w in writers),
            lost_new=lost_on(new, writers),
            switch_first=rel(t_switch),
            switch_all=rel(events.all_published("+switch-master", cl.sentinels)),
            sentinel_events=[(rel(t), port, ch, p) for t, port, ch, p in events.events if t >= t0],
            proxy_changes=[(rel(t), port, s) for t, port, s in proxy.changes() if t >= t0],
            old_last_write=rel(watch.last_write_at()) if scenario == "planned" else None,
            old_demoted=rel(watch.demoted_at()),
        )
        ok = True
    except Exception as e:  # a target that cannot do this yet is a result, not a crash
        lines = [l.strip() for l in str(e).splitlines() if l.strip()]
        r.update(ok=False, trace=traceback.format_exc(),
                 failed="%s: %s" % (type(e).__name__, " / ".join(lines[:2])[:160]))
    finally:
        try:
            h.close(ok=ok)
        except AssertionError as e:  # respgate exited uncleanly, or a sanitizer spoke
            r["note"] = " / ".join(l.strip() for l in str(e).splitlines() if l.strip())[:300]
        if not ok:
            r["dir"] = h.dir
    return r


def fmt(x):
    return "-" if x is None else "%.2f" % x


def node_name(r, port):
    return {r.get("old_port"): "old master", r.get("new_port"): "new master"}.get(port, "replica %d" % port)


def table(name, results):
    print("\n### %s\n" % name)
    print("| round | scenario | errors w/r | closed | max write stall s (window) | lost: INCR regress "
          "| lost on new master (writes/clients) | trigger → +switch-master s (first/all) |")
    print("|---|---|---|---|---|---|---|---|")
    for rnd, r in results:
        if not r["ok"]:
            print("| %d | %s | failed: %s | | | | | |" % (rnd, r["scenario"], r["failed"].replace("|", "/")))
            continue
        print("| %d | %s | %d/%d | %d | %.2f (%s..%s) | %d | %d/%d | %s / %s |" % (
            rnd, r["scenario"], r["write_errors"], r["read_errors"], r["closed"], r["stall"],
            fmt(r["stall_window"][0]), fmt(r["stall_window"][1]), r["lost_regress"],
            r["lost_new"][0], r["lost_new"][1], fmt(r["switch_first"]), fmt(r["switch_all"])))


def details(name, rnd, r, verbose):
    print("\n%s round %d %s:" % (name, rnd, r["scenario"]))
    if not r["ok"]:
        print("  failed: %s%s" % (r["failed"], "  (files kept in %s)" % r["dir"] if "dir" in r else ""))
        if verbose:
            print("  " + r["trace"].rstrip().replace("\n", "\n  "))
        if "note" in r:
            print("  at exit: %s" % r["note"])
        return
    print("  cluster setup %.2f s; %d ops; times below are seconds after the trigger" % (r["setup"], r["ops"]))
    for kind, n in sorted(r["error_kinds"].items(), key=lambda kv: -kv[1]):
        print("  %4d x %s" % (n, kind))
    if r["error_kinds"]:
        print("  error replies from %s to %s" % (fmt(r["first_error"]), fmt(r["last_error"])))
    # The milestones, first occurrence of each (per kind of instance: +sdown master
    # and +sdown slave differ), unless asked for everything.
    keep = ("+sdown", "+odown", "+elected-leader", "+promoted-slave", "+failover-end",
            "+switch-master", "+convert-to-slave")
    seen = set()
    for t, port, ch, payload in r["sentinel_events"]:
        key = (ch, payload.split(" ", 1)[0])
        if verbose or (ch in keep and key not in seen):
            seen.add(key)
            print("  %6.2f  sentinel %d  %s %s" % (t, port, ch, payload))
    for t, port, state in r["proxy_changes"]:
        print("  %6.2f  proxy marks %s %s" % (t, node_name(r, port), state))
    if r["scenario"] == "planned":
        print("  old master: last INCR accepted at %s, demoted to replica at %s" % (
            fmt(r["old_last_write"]), fmt(r["old_demoted"]) if r["old_demoted"] is not None else "(not yet)"))
    if "note" in r:
        print("  at exit: %s" % r["note"])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--respgate", metavar="BIN", help="also run through this respgate binary")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--scenario", choices=("planned", "kill", "both"), default="both")
    p.add_argument("--no-haproxy", action="store_true")
    p.add_argument("--lead", type=float, default=2.0, help="seconds of load before the trigger")
    p.add_argument("--tail", type=float, default=3.0, help="seconds of load after +switch-master")
    p.add_argument("--watch", type=float, default=20.0,
                   help="planned: how long after the trigger to wait for the old master's demotion")
    p.add_argument("--down-after-ms", type=int, default=600)
    p.add_argument("--failover-timeout-ms", type=int, default=4000)
    p.add_argument("--verbose", action="store_true",
                   help="print every Sentinel event, and tracebacks of failed runs")
    opts = p.parse_args()

    targets = [] if opts.no_haproxy else [HAProxy]
    if opts.respgate:
        harness.RESPGATE = os.path.abspath(opts.respgate)
        targets.append(RespgateTarget)
    scenarios = ("planned", "kill") if opts.scenario == "both" else (opts.scenario,)
    print("Sentinel: 3 Sentinels, quorum 2, down-after-milliseconds %d, failover-timeout %d; "
          "master + 2 replicas; load: 6 INCR + 2 GET clients, one connection each, "
          "%.0f s before the trigger and %.0f s after +switch-master" % (
              opts.down_after_ms, opts.failover_timeout_ms, opts.lead, opts.tail))
    if HAProxy in targets:
        print("\nHAProxy (%s), balance roundrobin (the default), config:\n\n```\n%s```" % (
            HAPROXY, HAPROXY_CFG.format(port="PORT", servers="\n".join(
                HAPROXY_SERVER.format(port=p) for p in ("P1", "P2", "P3")))))

    results = {t.name: [] for t in targets}
    for rnd in range(1, opts.rounds + 1):
        for target in targets:
            for scenario in scenarios:
                r = run(target, scenario, opts)
                results[target.name].append((rnd, r))
                details(target.name, rnd, r, opts.verbose)
                sys.stdout.flush()
    for name, rs in results.items():
        table(name, rs)


if __name__ == "__main__":
    main()
