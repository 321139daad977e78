#!/usr/bin/env bash
# respgate's own instructions per request, counted by valgrind (callgrind): the
# figure for judging a change to the hot path, because it does not move with how busy
# the machine is (CPU time and throughput do, by ±20% here). One redis-server; each
# binary given runs in front of it under callgrind (1 worker thread), counting only
# while redis-benchmark runs; every round alternates the binaries.
#
#   tests/bench/instructions.sh BINARY [BINARY...]
#   env: ROUNDS (2), REQUESTS_P16 (20000), REQUESTS_P1 (5000)
# Prints a markdown table: instructions per request (SET and GET) for -c 20 -P 16 and
# -c 20 -P 1, the median of the rounds for each binary.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 BINARY [BINARY...]" >&2; exit 2; }
ROUNDS=${ROUNDS:-2}
REQUESTS_P16=${REQUESTS_P16:-20000}
REQUESTS_P1=${REQUESTS_P1:-5000}
. "$(dirname "$0")/lib.sh"
bench_setup instructions

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
    --logfile "$dir/redis.log" --daemonize no &
pids+=($!)
wait_port "$redis_port"

count() { # binary opts requests: prints instructions per request
    local port out pid ir
    port=$(free_port)
    out="$dir/cg.$RANDOM"
    cat >"$dir/g.json" <<JSON
{"listen": "127.0.0.1:$port", "threads": 1, "log": {"level": "warn"}, "admin": {"listen": null},
 "regions": [{"name": "bench", "nodes": ["127.0.0.1:$redis_port"]}]}
JSON
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" "$1" -c "$dir/g.json" \
        2>"$dir/g.log" &
    pid=$!
    wait_port "$port"
    redis-benchmark -p "$port" -c 20 -P 16 -n 2000 -t set -q >/dev/null # warm up, not counted
    callgrind_control -i on "$pid" >/dev/null 2>&1
    redis-benchmark -p "$port" $2 -n "$3" -r 100000 -t set,get -q >/dev/null
    callgrind_control -i off "$pid" >/dev/null 2>&1
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
    ir=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
    awk -v a="$ir" -v n=$((2 * $3)) 'BEGIN { printf "%.0f", a / n }'
}

results="$dir/results.csv" # binary index,workload,instructions per request
: >"$results"
for ((round = 0; round < ROUNDS; round++)); do
    for ((k = 0; k < $#; k++)); do
        i=$(((k + round) % $#))
        bin=${@:$((i + 1)):1}
        echo "$i,P16,$(count "$bin" "-c 20 -P 16" "$REQUESTS_P16")" >>"$results"
        echo "$i,P1,$(count "$bin" "-c 20 -P 1" "$REQUESTS_P1")" >>"$results"
    done
    echo "round $((round + 1)) of $ROUNDS done" >&2
done

echo "respgate's instructions per request (callgrind, user space, 1 worker), median of $ROUNDS rounds; $(date -u +%Y-%m-%d)"
echo
python3 - "$results" "$@" <<'PY'
import csv, statistics, sys
path, bins = sys.argv[1], sys.argv[2:]
data = {}
for i, w, ir in csv.reader(open(path)):
    data.setdefault((int(i), w), []).append(float(ir))
print("| binary | -c 20 -P 16 | -c 20 -P 1 |")
print("|---|---|---|")
for i, b in enumerate(bins):
    print("| %s | %.0f | %.0f |" % (b, statistics.median(data[(i, "P16")]), statistics.median(data[(i, "P1")])))
PY
