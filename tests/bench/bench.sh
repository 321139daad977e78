#!/usr/bin/env bash
# Side-by-side benchmark: one redis-server, and in front of it respgate, HAProxy
# (tcp mode) and nutcracker (twemproxy), all on loopback. redis-benchmark runs
# against direct Redis and each proxy; every round rotates the order of the
# targets so that drift on a shared machine hits them all alike. Prints medians
# over rounds and ratios to direct as a markdown table.
#
#   tests/bench/bench.sh [--out FILE]
#   env: RESPGATE (binary), RESPGATE_BASE (a second respgate binary, e.g. the
#        previous commit's, run as target "base" for an A/B in the same run),
#        THREADS (respgate workers, 2), ROUNDS (3),
#        REQUESTS (pipelined, 400000), REQUESTS_P1 (100000), REQUESTS_C1 (20000),
#        BUSY_POLL (200: a second respgate, "busypoll", with busy_poll_us 200; 0: none),
#        MODE=replicas: the master gets two replicas; respgate reads from them and is
#        compared with direct Redis (the peers here cannot split reads), and a second
#        respgate ("durable") adds durability.min_replicas 1,
#        PIN=1 (default when there are 3 cores or more): Redis on CPU 0, the proxy under
#        test on CPU 1, redis-benchmark on CPU 2, so that they do not trade places
# Workloads: -c 50 -P 16, -c 50 -P 1, -c 1, and -c 50 -P 16 in RESP3 (redis-benchmark
# -3: HELLO 3 first; nutcracker has no HELLO and sits that one out). The latency one
# client sees is timed by tests/bench/pingpong.c to the microsecond (redis-benchmark's
# histogram steps by 8 µs there).
# Besides rps (median, and the spread: the lowest and highest round as a percentage of
# the median), it reports each process's CPU time per request (from /proc/PID/stat),
# the figure that does not depend on how busy the machine is.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
RESPGATE=${RESPGATE:-$repo/build/respgate}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
REQUESTS=${REQUESTS:-400000}
REQUESTS_P1=${REQUESTS_P1:-100000}
REQUESTS_C1=${REQUESTS_C1:-20000}
BUSY_POLL=${BUSY_POLL:-200}
MODE=${MODE:-single}
PIN=${PIN:-$([ "$(nproc)" -ge 3 ] && echo 1 || echo 0)}
pin() { # cpu command...: run pinned when PIN=1; exec, so that $! is the process itself
    local cpu=$1
    shift
    if [ "$PIN" = 1 ]; then exec taskset -c "$cpu" "$@"; else exec "$@"; fi
}
out=""
[ "${1:-}" = "--out" ] && out=$2
[ "$ROUNDS" -ge 3 ] || { echo "ROUNDS must be at least 3" >&2; exit 2; }

. "$(dirname "$0")/lib.sh"
bench_setup bench
cc -O2 -o "$dir/pingpong" "$repo/tests/bench/pingpong.c"
wait_ping() {
    for _ in $(seq 100); do
        [ "$(redis-cli -p "$1" ping 2>/dev/null)" = "PONG" ] && return 0
        sleep 0.1
    done
    return 1
}

declare -A pid # each target's process, for its CPU time
redis_port=$(free_port)
pin 0 redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
    --logfile "$dir/redis.log" --daemonize no &
pids+=($!)
pid[direct]=$!
wait_ping "$redis_port" || { echo "redis-server did not start" >&2; exit 1; }

declare -A port
port[direct]=$redis_port
targets=(direct)
nodes="\"127.0.0.1:$redis_port\""
if [ "$MODE" = replicas ]; then
    for k in 1 2; do
        rport=$(free_port)
        mkdir -p "$dir/replica$k"
        redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir/replica$k" \
            --logfile "$dir/replica$k.log" --daemonize no --replicaof 127.0.0.1 "$redis_port" &
        pids+=($!)
        wait_ping "$rport" || { echo "replica did not start" >&2; exit 1; }
        nodes="$nodes, \"127.0.0.1:$rport\""
    done
    redis-cli -p "$redis_port" config set repl-diskless-sync-delay 0 >/dev/null
    sleep 1
fi

template_port=$(free_port)
cat > "$dir/respgate.template.json" <<JSON
{"listen": "127.0.0.1:$template_port", "threads": $THREADS, "log": {"level": "warn"},
 "regions": [{"name": "bench", "nodes": [$nodes]}],
 "upstream": {"connections_per_node": 2}, "admin": {"listen": null}}
JSON
start_respgate() { # target binary: the config above, on a port of its own
    local p
    p=$(free_port)
    sed "s/:$template_port\"/:$p\"/" "${template:-$dir/respgate.template.json}" >"$dir/$1.json"
    port[$1]=$p
    pin 1 "$2" -c "$dir/$1.json" 2>"$dir/$1.log" &
    pids+=($!)
    pid[$1]=$!
    if wait_ping "${port[$1]}"; then targets+=("$1"); else echo "$1 did not start" >&2; fi
}
start_respgate respgate "$RESPGATE"
[ -n "${RESPGATE_BASE:-}" ] && start_respgate base "$RESPGATE_BASE"
if [ "$BUSY_POLL" != 0 ] && [ "$MODE" != replicas ]; then # the latency it buys, and its cost
    sed "s/\"admin\": {\"listen\": null}/\"admin\": {\"listen\": null}, \"busy_poll_us\": $BUSY_POLL/" \
        "$dir/respgate.template.json" >"$dir/busypoll.template.json"
    template="$dir/busypoll.template.json" start_respgate busypoll "$RESPGATE"
fi
if [ "$MODE" = replicas ]; then # the cost of durability.min_replicas 1 (a WAIT per pass)
    sed 's/"admin": {"listen": null}/"admin": {"listen": null}, "durability": {"min_replicas": 1}/' \
        "$dir/respgate.template.json" >"$dir/durable.template.json"
    template="$dir/durable.template.json" start_respgate durable "$RESPGATE"
fi

[ "$MODE" = replicas ] && peers=no || peers=yes
port[haproxy]=$(free_port)
cat > "$dir/haproxy.cfg" <<CFG
global
    nbthread 2
    maxconn 4000
defaults
    mode tcp
    timeout connect 5s
    timeout client 1m
    timeout server 1m
listen redis
    bind 127.0.0.1:${port[haproxy]}
    server r1 127.0.0.1:$redis_port
CFG
if [ "$peers" = no ]; then
    :
elif command -v haproxy >/dev/null; then
    pin 1 haproxy -f "$dir/haproxy.cfg" -db >"$dir/haproxy.log" 2>&1 &
    pids+=($!)
    pid[haproxy]=$!
    if wait_ping "${port[haproxy]}"; then targets+=(haproxy); else echo "haproxy did not start (n/a)" >&2; fi
else
    echo "haproxy not installed (n/a): apt-get install haproxy" >&2
fi

port[nutcracker]=$(free_port)
cat > "$dir/nutcracker.yml" <<YML
bench:
  listen: 127.0.0.1:${port[nutcracker]}
  redis: true
  hash: fnv1a_64
  distribution: ketama
  auto_eject_hosts: false
  preconnect: true
  server_connections: 2
  servers:
    - 127.0.0.1:$redis_port:1
YML
if [ "$peers" = no ]; then
    :
elif command -v nutcracker >/dev/null; then
    pin 1 nutcracker -c "$dir/nutcracker.yml" -o "$dir/nutcracker.log" -s "$(free_port)" &
    pids+=($!)
    pid[nutcracker]=$!
    if wait_ping "${port[nutcracker]}"; then targets+=(nutcracker); else echo "nutcracker did not start (n/a)" >&2; fi
else
    echo "nutcracker not installed (n/a): apt-get install nutcracker" >&2
fi

# name|redis-benchmark options|requests
workloads=(
    "P16|-c 50 -P 16|$REQUESTS"
    "P1|-c 50 -P 1|$REQUESTS_P1"
    "C1|-c 1 -P 1|$REQUESTS_C1"
    "R3|-c 50 -P 16 -3|$REQUESTS"
)
[ "$MODE" = replicas ] && workloads=("P16|-c 50 -P 16|$REQUESTS" "P1|-c 50 -P 1|$REQUESTS_P1")
results="$dir/results.csv" # target,workload,test,rps,p50_ms,p99_ms
cpu="$dir/cpu.csv"         # target,workload,own,redis,loadgen (CPU µs per request)
latency="$dir/latency.csv" # target,test,p50_us,p99_us (pingpong, one client)
: > "$results"
: > "$cpu"
: > "$latency"

# redis-benchmark --csv: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",
# "p95_latency_ms","p99_latency_ms","max_latency_ms"
run() { # target workload opts requests
    local before after rbefore rafter gen TIMEFORMAT='%U %S'
    before=$(ticks "${pid[$1]}")
    rbefore=$(ticks "${pid[direct]}")
    # time: the load generator's CPU (user and system seconds), on stderr
    gen=$({ time pin 2 redis-benchmark -p "${port[$1]}" $3 -n "$4" -r 100000 -d 32 -t set,get --csv 2>/dev/null |
        awk -F'","' -v t="$1" -v w="$2" 'NR > 1 { gsub(/"/, ""); split($0, f, ","); print t "," w "," f[1] "," f[2] "," f[5] "," f[7] }' >> "$results"; } 2>&1)
    after=$(ticks "${pid[$1]}")
    rafter=$(ticks "${pid[direct]}")
    # SET and GET ran: 2 × requests. For a proxy, own is its CPU alone; Redis' and the
    # load generator's are beside it, since on 2 cores all three share the machine.
    echo "$1,$2,$(cpu_per_request "$before" "$after" $((2 * $4))),$(cpu_per_request "$rbefore" "$rafter" $((2 * $4))),$(awk -v g="$gen" -v n=$((2 * $4)) 'BEGIN { split(g, t, " "); printf "%.3f", (t[1] + t[2]) / n * 1e6 }')" >> "$cpu"
}

echo "targets: ${targets[*]}; $ROUNDS rounds; $(nproc) cores; pinned: $PIN" >&2
n=${#targets[@]}
for ((round = 0; round < ROUNDS; round++)); do
    for wl in "${workloads[@]}"; do
        IFS='|' read -r name opts reqs <<<"$wl"
        for ((k = 0; k < n; k++)); do
            t=${targets[$(((k + round) % n))]}
            [ "$name" = R3 ] && [ "$t" = nutcracker ] && continue # it has no HELLO
            run "$t" "$name" "$opts" "$reqs"
        done
    done
    if [ "$MODE" != replicas ]; then
        for ((k = 0; k < n; k++)); do
            t=${targets[$(((k + round) % n))]}
            for test in set get; do
                pin 2 "$dir/pingpong" "${port[$t]}" "$test" "$REQUESTS_C1" 32 |
                    awk -v t="$t" -v x="${test^^}" '{ print t "," x "," $1 "," $2 }' >> "$latency"
            done
        done
    fi
    echo "round $((round + 1)) of $ROUNDS done" >&2
done

report() {
    [ "$MODE" = replicas ] && echo "Mode: a master and two replicas; respgate reads from the replicas, direct is the master alone."
    echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(redis-server --version | cut -d' ' -f3); respgate threads=$THREADS; $ROUNDS rounds, medians (spread: lowest and highest round against the median); pinned to CPUs: $PIN; $(date -u +%Y-%m-%d)"
    python3 - "$results" "$cpu" "$latency" "${targets[@]}" <<'PY'
import csv, os, statistics, sys
cores = len(os.sched_getaffinity(0))
path, cpu_path, lat_path, targets = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
data = {}
for t, w, test, rps, p50, p99 in csv.reader(open(path)):
    data.setdefault((w, test, t), []).append((float(rps), float(p50), float(p99)))
def table(title, columns):
    """A table's lead: its title (if any) and its header over columns."""
    if title:
        print()
        print(title)
    print()
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
def spread(w, test, t):
    v = [x[0] for x in data.get((w, test, t), [])]
    if len(v) < 2:
        return ""
    m = statistics.median(v)
    return " %+.0f/%+.0f%%" % ((min(v) - m) / m * 100, (max(v) - m) / m * 100)
def med(w, test, t, i):
    v = data.get((w, test, t))
    return statistics.median(x[i] for x in v) if v else None
peers = [t for t in targets if t != "direct"]
table(None, ["workload", "direct rps"] + ["%s rps (× direct)" % t for t in peers])
names = {"P16": "-c 50 -P 16", "P1": "-c 50 -P 1", "C1": "-c 1",
         "R3": "-c 50 -P 16, RESP3 (-3)"}
for w in ("P16", "P1", "C1", "R3"):
    for test in ("SET", "GET"):
        d = med(w, test, "direct", 0)
        if d is None:
            continue
        cells = []
        for t in peers:
            v = med(w, test, t, 0)
            cells.append("n/a" if v is None else "%.0f (%.2f×)%s" % (v, v / d, spread(w, test, t)))
        print("| %s %s | %.0f%s | %s |" % (test, names[w], d, spread(w, test, "direct"),
                                            " | ".join(cells)))
lat = {}
for t, test, p50, p99 in csv.reader(open(lat_path)):
    lat.setdefault((test, t), []).append((float(p50), float(p99)))
if lat:
    table("One client, one request at a time (pingpong), µs: p50 (added over direct) / p99, "
          "medians over rounds.", ["latency", "direct"] + peers)
    for test in ("SET", "GET"):
        if (test, "direct") not in lat:
            continue
        m = {t: [statistics.median(x[i] for x in lat[(test, t)]) for i in (0, 1)]
             for t in targets if (test, t) in lat}
        d = m["direct"]
        cells = ["n/a" if t not in m else "%.1f (+%.1f) / %.1f" % (m[t][0], m[t][0] - d[0], m[t][1])
                 for t in peers]
        print("| %s | %.1f / %.1f | %s |" % (test, d[0], d[1], " | ".join(cells)))
cpu, total = {}, {}
for t, w, own, redis, gen in csv.reader(open(cpu_path)):
    cpu.setdefault((w, t), []).append(float(own))
    # every process serving the request: Redis, the proxy (none for direct), the client
    total.setdefault((w, t), []).append(float(redis) + float(gen) + (float(own) if t != "direct" else 0))
table("CPU time per request (SET and GET), µs, median over rounds: the process's own "
      "(for direct, redis-server's; for a proxy, the proxy's alone).", ["workload"] + targets)
for w in ("P16", "P1", "C1", "R3"):
    if not any(k[0] == w for k in cpu):
        continue
    print("| %s | %s |" % (names[w], " | ".join(
        "%.2f" % statistics.median(cpu[(w, t)]) if (w, t) in cpu else "n/a" for t in targets)))
table("CPU time per request, µs, of every process serving it (Redis, the proxy, "
      "redis-benchmark), and the most throughput the machine's %d cores allow at that cost "
      "(cores / total), against direct's measured throughput (SET and GET averaged): a ratio "
      "a target cannot pass while the cores are the limit." % cores, ["workload"] + targets)
for w in ("P16", "P1", "C1", "R3"):
    if (w, "direct") not in total:
        continue
    d = statistics.mean(med(w, test, "direct", 0) for test in ("SET", "GET"))
    def cell(t):
        if (w, t) not in total:
            return "n/a"
        us = statistics.median(total[(w, t)])
        return "%.2f (≤ %.2f×)" % (us, cores * 1e6 / us / d)
    print("| %s | %s |" % (names[w], " | ".join(cell(t) for t in targets)))
PY
}
report | tee ${out:+"$out"}
