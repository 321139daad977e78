#!/usr/bin/env bash
# The local sandbox behind `make run`: a Redis master on 127.0.0.1:7400 and respgate
# in front of it on 127.0.0.1:7379 (config/sandbox.json). Ctrl-C stops both.
set -euo pipefail
bin=${1:-build/respgate}
config=${2:-config/sandbox.json}
redis_port=7400
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

if redis-cli -p "$redis_port" ping >/dev/null 2>&1; then
    echo "port $redis_port is already in use; stop whatever holds it first" >&2
    exit 1
fi
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$dir" --logfile "$dir/redis-$redis_port.log" --daemonize no &
pids+=($!)
for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

"$bin" --config "$config" &
pids+=($!)
for _ in $(seq 50); do redis-cli -p 7379 ping >/dev/null 2>&1 && break; sleep 0.1; done

cat <<MSG

respgate sandbox is up:
  Redis master   127.0.0.1:$redis_port   (logs in $dir)
  respgate       127.0.0.1:7379          (config $config)

Connect:   redis-cli -p 7379
Benchmark: redis-benchmark -p 7379 -t set,get -P 16 -q
Ctrl-C stops everything.

MSG
wait "${pids[1]}"
