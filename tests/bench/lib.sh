# Shared by the benchmark scripts (sourced): a scratch directory and the processes
# started in it, killed and removed on exit; free loopback ports; waiting for one.
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
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # port: accepting connections within 10 s
    for _ in $(seq 100); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 1)" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
