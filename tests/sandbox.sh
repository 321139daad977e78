#!/usr/bin/env bash
# The local sandbox behind `make run`: a Redis master on 127.0.0.1:7400, two replicas
# on 7401 and 7402, and respgate in front on 127.0.0.1:7379 (config/sandbox.json).
# Ctrl-C stops everything.
set -euo pipefail
bin=${1:-build/respgate}
config=${2:-config/sandbox.json}
ports=(7400 7401 7402)
dir=$(mktemp -d -t respgate-sandbox-XXXXXX)
pids=()

stop() {
    trap - INT TERM EXIT
    echo
    echo "stopping the sandbox"
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap stop INT TERM EXIT

for port in "${ports[@]}"; do
    if redis-cli -p "$port" ping >/dev/null 2>&1; then
        echo "port $port is already in use; stop whatever holds it first" >&2
        exit 1
    fi
done
for port in "${ports[@]}"; do
    role=()
    [ "$port" = "${ports[0]}" ] || role=(--replicaof 127.0.0.1 "${ports[0]}")
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --repl-diskless-sync-delay 0 --dir "$dir" --dbfilename "dump-$port.rdb" \
        --logfile "$dir/redis-$port.log" --daemonize no "${role[@]}" &
    pids+=($!)
done
for port in "${ports[@]}"; do
    for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
done

"$bin" --config "$config" &
pids+=($!)
for _ in $(seq 50); do redis-cli -p 7379 ping >/dev/null 2>&1 && break; sleep 0.1; done

cat <<MSG

respgate sandbox is up:
  Redis master   127.0.0.1:${ports[0]}   replicas 127.0.0.1:${ports[1]}, 127.0.0.1:${ports[2]}
  respgate       127.0.0.1:7379   (config $config; Redis logs in $dir)

Reads go to the replicas, writes to the master; see it with
  redis-cli -p ${ports[1]} info commandstats

Connect:   redis-cli -p 7379
Benchmark: redis-benchmark -p 7379 -t set,get -P 16 -q
Ctrl-C stops everything.

MSG
wait "${pids[${#ports[@]}]}"
