#!/usr/bin/env bash
# The local sandbox behind `make run`: a Redis master on 127.0.0.1:7400, two replicas
# on 7401 and 7402, three Sentinels on 27400-27402 watching them as "sandbox", and
# respgate in front on 127.0.0.1:7379 (config/sandbox.json). Ctrl-C stops everything.
set -euo pipefail
bin=${1:-build/respgate}
config=${2:-config/sandbox.json}
ports=(7400 7401 7402)
sentinels=(27400 27401 27402)
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

for port in "${ports[@]}" "${sentinels[@]}"; do
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
# Sentinel rewrites its config file: each gets its own copy.
for port in "${sentinels[@]}"; do
    cat >"$dir/sentinel-$port.conf" <<CONF
port $port
bind 127.0.0.1
dir $dir
logfile $dir/sentinel-$port.log
sentinel monitor sandbox 127.0.0.1 ${ports[0]} 2
sentinel down-after-milliseconds sandbox 1000
sentinel failover-timeout sandbox 5000
sentinel known-replica sandbox 127.0.0.1 ${ports[1]}
sentinel known-replica sandbox 127.0.0.1 ${ports[2]}
CONF
    redis-sentinel "$dir/sentinel-$port.conf" &
    pids+=($!)
done

"$bin" --config "$config" &
pids+=($!) # last: the script waits on it
for _ in $(seq 50); do redis-cli -p 7379 ping >/dev/null 2>&1 && break; sleep 0.1; done

cat <<MSG

respgate sandbox is up:
  Redis master   127.0.0.1:${ports[0]}   replicas 127.0.0.1:${ports[1]}, 127.0.0.1:${ports[2]}
  Sentinels      127.0.0.1:${sentinels[0]}-${sentinels[2]} (master name "sandbox")
  respgate       127.0.0.1:7379   (config $config; logs in $dir)
  admin          http://127.0.0.1:7380/status  (/metrics, /topology, /config, /readyz)

Reads go to the replicas, writes to the master; see it with
  redis-cli -p ${ports[1]} info commandstats
Fail over and watch respgate follow (no client notices), then read its RTO:
  curl -X POST http://127.0.0.1:7380/failover; curl http://127.0.0.1:7380/status
Change $config and it reloads by itself (or: kill -HUP, curl -X POST .../reload).

Connect:   redis-cli -p 7379
Benchmark: redis-benchmark -p 7379 -t set,get -P 16 -q
Ctrl-C stops everything.

MSG
wait "${pids[-1]}"
