#!/usr/bin/env bash
# TLS side by side (issue 16): one redis-server on loopback; respgate in front of it in
# plaintext and with its TLS listener, and HAProxy terminating TLS (mode tcp) in front
# of the same Redis; then TLS on both hops (client to proxy, proxy to Redis' tls-port)
# through respgate (upstream.tls) and HAProxy (server ... ssl verify required).
# redis-benchmark --tls against each; every round rotates the order.
# Prints medians (and the spread) as a markdown table: pipelined and unpipelined SET/GET,
# and new connections per second (-k 0: a TLS handshake per request).
#
#   tests/bench/tls.sh
#   env: RESPGATE (binary, build/respgate), THREADS (2), ROUNDS (3), REQUESTS (200000),
#        REQUESTS_P1 (60000), REQUESTS_NEW (5000)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
RESPGATE=${RESPGATE:-$repo/build/respgate}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
REQUESTS=${REQUESTS:-200000}
REQUESTS_P1=${REQUESTS_P1:-60000}
REQUESTS_NEW=${REQUESTS_NEW:-5000}

. "$(dirname "$0")/lib.sh"
bench_setup tls-bench

# A CA and a certificate for 127.0.0.1 (RSA 2048, as most deployments use).
(cd "$dir" &&
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 1 -subj /CN=bench-ca &&
    openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1 &&
    printf 'subjectAltName=IP:127.0.0.1\n' >ext &&
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt \
        -days 1 -extfile ext &&
    cat server.crt server.key >server.pem) >/dev/null 2>&1

redis_port=$(free_port)
redis_tls=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
    --logfile "$dir/redis.log" --daemonize no --tls-port "$redis_tls" \
    --tls-cert-file "$dir/server.crt" --tls-key-file "$dir/server.key" \
    --tls-ca-cert-file "$dir/ca.crt" --tls-auth-clients no &
pids+=($!)
wait_port "$redis_port"

declare -A port tls
port[respgate]=$(free_port)
port[respgate-tls]=$(free_port)
port[haproxy-tls]=$(free_port)
port[respgate-tls2]=$(free_port)
port[haproxy-tls2]=$(free_port)
tls[respgate]=no
tls[respgate-tls]=yes
tls[haproxy-tls]=yes
tls[respgate-tls2]=yes
tls[haproxy-tls2]=yes
# respgate_start NAME TLS_PORT NODE_PORT PLAIN_PORT UPSTREAM: a respgate with a TLS listener.
respgate_start() {
    cat >"$dir/$1.json" <<JSON
{"listen": "127.0.0.1:$4", "threads": $THREADS, "log": {"level": "warn"},
 "regions": [{"name": "bench", "nodes": ["127.0.0.1:$3"]}], "admin": {"listen": null},
 "limits": {"max_clients": 4000}, "upstream": {$5},
 "tls": {"listen": "127.0.0.1:$2", "cert_file": "$dir/server.crt", "key_file": "$dir/server.key"}}
JSON
    "$RESPGATE" -c "$dir/$1.json" 2>"$dir/$1.log" &
    pids+=($!)
    wait_port "$2"
}
declare -A proc # the process whose CPU each target costs
respgate_start respgate "${port[respgate-tls]}" "$redis_port" "${port[respgate]}" ""
proc[respgate]=${pids[-1]}
proc[respgate-tls]=${pids[-1]}
respgate_start respgate2 "${port[respgate-tls2]}" "$redis_tls" "$(free_port)" \
    "\"tls\": {\"ca_file\": \"$dir/ca.crt\"}"
proc[respgate-tls2]=${pids[-1]}
cat >"$dir/haproxy.cfg" <<CFG
global
    nbthread $THREADS
    maxconn 4000
defaults
    mode tcp
    timeout connect 5s
    timeout client 1m
    timeout server 1m
listen redis
    bind 127.0.0.1:${port[haproxy-tls]} ssl crt $dir/server.pem
    server r1 127.0.0.1:$redis_port
listen redis-tls
    bind 127.0.0.1:${port[haproxy-tls2]} ssl crt $dir/server.pem
    server r1 127.0.0.1:$redis_tls ssl verify required ca-file $dir/ca.crt
CFG
haproxy -f "$dir/haproxy.cfg" -db >"$dir/haproxy.log" 2>&1 &
pids+=($!)
proc[haproxy-tls]=$!
proc[haproxy-tls2]=$!
wait_port "${port[haproxy-tls]}"
targets=(respgate respgate-tls haproxy-tls respgate-tls2 haproxy-tls2)

results="$dir/results.csv" # target,workload,test,rps
cpu="$dir/cpu.csv"         # target,workload,cpu_us_per_request
: >"$results"
: >"$cpu"
run() { # target workload opts requests
    local t=() before after
    [ "${tls[$1]}" = yes ] && t=(--tls --cacert "$dir/ca.crt")
    before=$(ticks "${proc[$1]}")
    redis-benchmark -p "${port[$1]}" "${t[@]}" $3 -n "$4" -r 100000 -d 32 -t set,get --csv 2>/dev/null |
        awk -F'","' -v t="$1" -v w="$2" 'NR > 1 { gsub(/"/, ""); split($0, f, ","); print t "," w "," f[1] "," f[2] }' >>"$results"
    after=$(ticks "${proc[$1]}")
    echo "$1,$2,$(cpu_per_request "$before" "$after" $((2 * $4)))" >>"$cpu" # SET and GET
}
workloads=("P16|-c 50 -P 16|$REQUESTS" "P1|-c 50 -P 1|$REQUESTS_P1" "NEW|-c 20 -k 0|$REQUESTS_NEW")
echo "targets: ${targets[*]}; $ROUNDS rounds; $(nproc) cores" >&2
n=${#targets[@]}
for ((round = 0; round < ROUNDS; round++)); do
    for wl in "${workloads[@]}"; do
        IFS='|' read -r name opts reqs <<<"$wl"
        for ((k = 0; k < n; k++)); do
            run "${targets[$(((k + round) % n))]}" "$name" "$opts" "$reqs"
        done
    done
    echo "round $((round + 1)) of $ROUNDS done" >&2
done

echo "Targets: respgate (plaintext), respgate-tls and haproxy-tls (TLS from the client), respgate-tls2 and haproxy-tls2 (TLS on both hops)"
echo "Machine: $(nproc) cores; $(openssl version); respgate and HAProxy threads=$THREADS; $ROUNDS rounds, medians (spread); $(date -u +%Y-%m-%d)"
echo
python3 - "$results" "$cpu" "${targets[@]}" <<'PY'
import csv, statistics, sys
path, cpu_path, targets = sys.argv[1], sys.argv[2], sys.argv[3:]
data = {}
for t, w, test, rps in csv.reader(open(path)):
    data.setdefault((w, test, t), []).append(float(rps))
names = {"P16": "-c 50 -P 16", "P1": "-c 50 -P 1", "NEW": "-c 20 -k 0 (a new connection per request)"}
print("| workload | " + " | ".join("%s rps" % t for t in targets) + " |")
print("|---|" + "---|" * len(targets))
for w in ("P16", "P1", "NEW"):
    for test in ("SET", "GET"):
        cells = []
        for t in targets:
            v = data.get((w, test, t))
            if not v:
                cells.append("n/a")
                continue
            m = statistics.median(v)
            cells.append("%.0f (%+.0f/%+.0f%%)" % (m, (min(v) - m) / m * 100, (max(v) - m) / m * 100))
        print("| %s %s | %s |" % (test, names[w], " | ".join(cells)))
cpu = {}
for t, w, us in csv.reader(open(cpu_path)):
    cpu.setdefault((w, t), []).append(float(us))
print()
print("The proxy's own CPU per request (utime + stime over SET and GET), median of the rounds:")
print()
print("| workload | " + " | ".join("%s µs" % t for t in targets) + " |")
print("|---|" + "---|" * len(targets))
for w in ("P16", "P1", "NEW"):
    cells = ["%.2f" % statistics.median(cpu[(w, t)]) if cpu.get((w, t)) else "n/a" for t in targets]
    print("| %s | %s |" % (names[w], " | ".join(cells)))
PY
