#!/usr/bin/python3
"""durability.min_replicas, measured (issue 15).

1. Loss trials: the crash of tests/integration/test_durability.py (writers through
   respgate, master killed while its replicas lag behind a 100 ms relay that drops
   what is on its way, Sentinel failover, acknowledged writes read back), TRIALS times
   with min_replicas 1 (and LOSS0 times with 0, to show the checker finds losses).
2. Cost: one master and one replica on loopback, two respgates in front of it side by
   side (min_replicas 0 and 1); redis-benchmark SET -P 16 (-c 50) and SET -c 1, the
   targets alternated every round; medians and the ratio.

    tests/bench/durability.py [--trials 20] [--loss0 3] [--rounds 5]
    env: RESPGATE_BIN (default build/respgate), THREADS (2)"""
import argparse
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
os.environ.setdefault("RESPGATE_BIN", os.path.join(HERE, "..", "..", "build", "respgate"))

from harness import Harness, wait_until  # noqa: E402
from test_durability import loss_trial  # noqa: E402


def trials(n, min_replicas):
    out = []
    for i in range(n):
        h = Harness()
        try:
            acked, lost, nerr, _ = loss_trial(h, min_replicas)
        finally:
            h.close()
        out.append((acked, lost, nerr))
        print("  trial %d, min_replicas %d: %d acknowledged, %d lost, %d errors" % (
            i + 1, min_replicas, acked, lost, nerr), flush=True)
    return out


def bench(port, args):
    r = subprocess.run(["redis-benchmark", "-p", str(port), "-t", "set", "-q", "--csv"] + args,
                       capture_output=True, text=True, timeout=600)
    rows = [l for l in r.stdout.splitlines() if l.startswith('"SET"')]
    if not rows:
        raise RuntimeError("redis-benchmark: %s %s" % (r.stdout, r.stderr))
    f = [float(x.strip('"')) for x in rows[0].split(",")[1:]]
    return f[0], f[3] if len(f) > 3 else float("nan")  # rps, p50 ms (rps,avg,min,p50,...)


def cost(rounds, threads):
    h = Harness()
    try:
        master = h.redis()
        h.replica_of(master)
        gates = {m: h.respgate(master.port, threads=threads,
                               durability={"min_replicas": m, "timeout_ms": 1000})
                 for m in (0, 1)}
        for g in gates.values():
            wait_until(lambda: "master is 127.0.0.1:%d" % master.port in g.output(),
                       what="respgate following")
        res = {(m, k): [] for m in gates for k in ("p16", "c1")}
        for i in range(rounds):
            for m in (sorted(gates) if i % 2 == 0 else sorted(gates, reverse=True)):
                rps, _ = bench(gates[m].port, ["-P", "16", "-c", "50", "-n", "400000"])
                res[(m, "p16")].append(rps)
                _, p50 = bench(gates[m].port, ["-c", "1", "-n", "20000"])
                res[(m, "c1")].append(p50)
        med = {k: statistics.median(v) for k, v in res.items()}
        print("\n| workload | min_replicas 0 | min_replicas 1 | ratio |")
        print("|---|---|---|---|")
        print("| SET -P16 -c50 (rps) | %.0f | %.0f | %.2fx |" % (
            med[(0, "p16")], med[(1, "p16")], med[(1, "p16")] / med[(0, "p16")]))
        print("| SET -c1 p50 (ms) | %.3f | %.3f | +%.3f ms |" % (
            med[(0, "c1")], med[(1, "c1")], med[(1, "c1")] - med[(0, "c1")]))
        for g in gates.values():
            g.stop()
    finally:
        h.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--loss0", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    print("loss trials, min_replicas 0 (the checker must see losses):")
    zero = trials(a.loss0, 0)
    print("loss trials, min_replicas 1:")
    one = trials(a.trials, 1)
    print("\nmin_replicas 0: %d trials, %d of %d acknowledged writes lost" % (
        len(zero), sum(t[1] for t in zero), sum(t[0] for t in zero)))
    print("min_replicas 1: %d trials, %d of %d acknowledged writes lost, errors per trial %s" % (
        len(one), sum(t[1] for t in one), sum(t[0] for t in one), [t[2] for t in one]))
    cost(a.rounds, int(os.environ.get("THREADS", "2")))
    return 0 if sum(t[1] for t in one) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
