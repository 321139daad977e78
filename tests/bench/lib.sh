# Shared by the benchmark scripts (sourced): a scratch directory and the processes
# started in it, killed and removed on exit; free loopback ports; waiting for one;
# a process's CPU time per request.
#   bench_setup NAME   sets $dir, $pids and the exit trap
bench_setup() {
    dir=$(mktemp -d -t "respgate-$1-XXXXXX")
    pids=()
    trap bench_cleanup EXIT INT TERM
}
bench_cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$dir"
}
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # a process's utime + stime, in ticks
hz=$(getconf CLK_TCK)
# cpu_per_request PID_TICKS_BEFORE PID_TICKS_AFTER REQUESTS: microseconds of CPU per request
cpu_per_request() { awk -v d=$(($2 - $1)) -v hz="$hz" -v n="$3" 'BEGIN { printf "%.3f", d / hz / n * 1e6 }'; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # port: accepting connections within 10 s
    for _ in $(seq 100); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 1)" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
