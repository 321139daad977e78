#!/usr/bin/python3
"""respgate's container image, built and run with podman (issue 14; docs/container.md).

Run by tests/container/run.sh (make container-test), which installs what is missing.
Against a real Redis master, a replica and a Sentinel on loopback, it shows:

- the image builds from the source tree (only CMakeLists.txt and proxy/ go in), is
  FROM scratch, small, and declares its user, ports, config and HEALTHCHECK;
- the container runs as uid 10001 with a read-only root filesystem and no
  capabilities, answers PING/SET/GET through respgate, /readyz is 200 and the
  HEALTHCHECK passes; with no master, /readyz is 503 and the HEALTHCHECK fails while
  /healthz stays 200; the start-to-ready time;
- a ConfigMap-style update (the "..data" link swapped) of the mounted directory is
  reloaded without a restart and without dropping a connection;
- `podman stop` lets a request in flight finish and the container exits 0 within its
  grace period;
- docker/kubernetes/app-with-respgate.yaml under `podman play kube` (its ConfigMap
  pointed at the host's Sentinel): the sidecar is ready and alive by the manifest's own
  probe commands and the app container reaches Redis through it;
- docker/compose.yaml under docker-compose against `podman system service`: the app
  container in respgate's network namespace counts through respgate, and goes on
  through a Sentinel failover (RG_COMPOSE=0 skips this part).

Everything runs with --network host on 127.0.0.1, and is removed at the end, whatever
happens. The last line says "N passed, N failed".
"""
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PREFIX = "rgtest"  # every container this test makes is named so
IMAGE = "respgate:latest"
REDIS_IMAGE = "docker.io/library/redis:7.0"
MANIFEST = os.path.join(REPO, "docker", "kubernetes", "app-with-respgate.yaml")
COMPOSE = os.path.join(REPO, "docker", "compose.yaml")
COMPOSE_PROJECT = PREFIX + "-demo"
COMPOSE_PORTS = (6390, 6391, 6392, 26390, 26391, 26392, 7379, 7380)
SHUTDOWN_TIMEOUT_MS = 5000
STOP_GRACE_S = 15

T0 = time.monotonic()
passed = []
results = {}  # figures for the summary


def log(msg):
    print("[%6.1fs] %s" % (time.monotonic() - T0, msg), flush=True)


class Failure(Exception):
    pass


def check(cond, what, detail=""):
    if not cond:
        raise Failure(what + (": " + detail if detail else ""))
    passed.append(what)
    log("ok   " + what)


def wait_until(pred, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return time.monotonic()
        time.sleep(interval)
    raise Failure("timed out after %.0f s waiting for %s" % (timeout, what))


def noise_free(text):
    """podman without systemd complains on every healthcheck timer; not ours."""
    return "\n".join(l for l in text.splitlines() if "systemd connection" not in l)


# --- podman ----------------------------------------------------------------------

PODMAN = ["podman"]
ENV = dict(os.environ)


def podman_setup():
    out = subprocess.run([os.path.join(REPO, "docker", "podman-local.sh"), "--setup"],
                         stdout=subprocess.PIPE, text=True, timeout=900)
    if out.returncode != 0:
        raise Failure("docker/podman-local.sh --setup failed (its messages are above)")
    global PODMAN
    for line in out.stdout.splitlines():
        key, _, value = line.partition("=")
        value = shlex.split(value)[0] if value else ""
        if key == "CONTAINERS_CONF" and value:
            ENV["CONTAINERS_CONF"] = value
        elif key == "PODMAN":
            PODMAN = shlex.split(value)


def podman(*args, check=True, timeout=120, input=None):
    r = subprocess.run(PODMAN + list(args), capture_output=True, text=True, env=ENV,
                       timeout=timeout, input=input)
    if check and r.returncode != 0:
        raise Failure("podman %s: exit %d\n%s" % (" ".join(args), r.returncode,
                                                   noise_free(r.stderr).strip()))
    return r


def inspect(name, fmt):
    return podman("inspect", "--format", fmt, name).stdout.strip()


def container_logs(name):
    r = podman("logs", name, check=False)
    return noise_free(r.stdout + "\n" + r.stderr)


def container_exists(name):
    return podman("container", "exists", name, check=False).returncode == 0


# --- Redis and HTTP on the host ----------------------------------------------------

def port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port(avoid=()):
    import random
    rng = random.SystemRandom()
    for _ in range(500):
        port = rng.randrange(20000, 32000)
        if port not in avoid and port_free(port):
            return port
    raise Failure("no free loopback port")


class Resp:
    """A RESP2 connection. Errors come back as RespError values."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def send(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("connection closed")
                self.buf += chunk
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data.decode(errors="replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise ConnectionError("bad reply %r" % line)

    def call(self, *args):
        self.send(*args)
        return self.reply()


class RespError(str):
    pass


def call(port, *args, timeout=3.0):
    c = Resp(port, timeout)
    try:
        return c.call(*args)
    finally:
        c.close()


def try_call(port, *args):
    try:
        return call(port, *args)
    except OSError:
        return None


def http_status(url, timeout=2.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except OSError:
        return None, ""


class Host:
    """Redis master, a replica Sentinel must never promote (replica-priority 0, so
    that stopping the master leaves no master at all), and a Sentinel, on loopback."""

    def __init__(self, tmp, master_name):
        self.tmp, self.name, self.procs = tmp, master_name, []
        self.master, self.replica, self.sentinel = free_port(), None, None
        self.replica = free_port({self.master})
        self.sentinel = free_port({self.master, self.replica})

    def _spawn(self, argv, logname):
        f = open(os.path.join(self.tmp, logname), "w")
        p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, cwd=self.tmp,
                             start_new_session=True)
        self.procs.append(p)
        return p

    def start(self):
        common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                  "--dir", self.tmp, "--repl-diskless-sync-delay", "0"]
        self.master_proc = self._spawn(["redis-server", "--port", str(self.master)] + common +
                                       ["--dbfilename", "m.rdb"], "master.log")
        self._spawn(["redis-server", "--port", str(self.replica)] + common +
                    ["--dbfilename", "r.rdb", "--replicaof", "127.0.0.1", str(self.master),
                     "--replica-priority", "0"], "replica.log")
        wait_until(lambda: try_call(self.master, "PING") == "PONG", 10, "the Redis master")
        wait_until(lambda: "master_link_status:up" in (try_call(self.replica, "INFO", "replication") or ""),
                   15, "the Redis replica in sync")
        conf = os.path.join(self.tmp, "sentinel.conf")
        with open(conf, "w") as f:
            f.write("port %d\nbind 127.0.0.1\ndir %s\n"
                    "sentinel monitor %s 127.0.0.1 %d 1\n"
                    "sentinel down-after-milliseconds %s 1000\n"
                    "sentinel failover-timeout %s 5000\n" % (
                        self.sentinel, self.tmp, self.name, self.master, self.name, self.name))
        self._spawn(["redis-sentinel", conf], "sentinel.log")
        wait_until(lambda: isinstance(try_call(self.sentinel, "SENTINEL", "MASTER", self.name), list),
                   10, "the Sentinel to watch the master")

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGCONT)
                    p.kill()
                except OSError:
                    pass
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass


# --- the config, laid out as kubelet lays out a ConfigMap volume --------------------

class ConfigMapDir:
    def __init__(self, root):
        self.root, self.n = root, 0
        os.makedirs(root)
        os.chmod(root, 0o755)

    def write(self, cfg):
        self.n += 1
        version = "..2026_12_02_00_00_%02d.%d" % (self.n, os.getpid())
        d = os.path.join(self.root, version)
        os.makedirs(d)
        os.chmod(d, 0o755)
        with open(os.path.join(d, "respgate.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        os.chmod(os.path.join(d, "respgate.json"), 0o644)
        link = os.path.join(self.root, "respgate.json")
        if not os.path.islink(link):
            os.symlink("..data/respgate.json", link)
        old = os.readlink(os.path.join(self.root, "..data")) if self.n > 1 else None
        tmp = os.path.join(self.root, "..data_tmp")
        os.symlink(version, tmp)
        os.rename(tmp, os.path.join(self.root, "..data"))  # the atomic swap
        if old:
            shutil.rmtree(os.path.join(self.root, old))


# --- the parts -----------------------------------------------------------------------

def podman_build(args, cwd, timeout):
    """podman build, stopped by SIGTERM if this test is (so that it removes its working
    containers), by SIGKILL only if it does not stop."""
    p = subprocess.Popen(PODMAN + ["build"] + args, cwd=cwd, env=ENV, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except BaseException:
        p.terminate()
        try:
            p.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
        raise
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def build_images():
    start = time.monotonic()
    log("building %s from docker/Dockerfile (podman build --pull=never --network host --format docker)" % IMAGE)
    r = podman_build(["--pull=never", "--network", "host", "--format", "docker", "-f", "docker/Dockerfile",
                      "-t", IMAGE, "-t", "respgate:0.1.0", "."], REPO, 1200)
    if r.returncode != 0:
        print(r.stdout[-6000:], noise_free(r.stderr)[-4000:], sep="\n")
        raise Failure("the image did not build (podman build output above)")
    results["build_s"] = time.monotonic() - start
    check(True, "the image builds from docker/Dockerfile (%.0f s)" % results["build_s"])
    r = podman_build(["--pull=never", "--network", "host", "--format", "docker", "-t", REDIS_IMAGE, "."],
                     os.path.join(REPO, "tests", "container", "redis-image"), 900)
    if r.returncode != 0:
        print(r.stdout[-4000:], noise_free(r.stderr)[-4000:], sep="\n")
        raise Failure("the stand-in %s did not build" % REDIS_IMAGE)
    log("stand-in %s (Debian's Redis) ready" % REDIS_IMAGE)


def check_image():
    size = int(inspect(IMAGE, "{{.Size}}"))
    results["size"] = size
    log("image size: %d bytes (%.2f MB)" % (size, size / 1e6))
    check(size < 20 * 1000 * 1000, "the image is small (%.1f MB)" % (size / 1e6))
    cfg = json.loads(inspect(IMAGE, "{{json .Config}}"))
    check(cfg.get("User") == "10001:10001", "the image runs as uid 10001", str(cfg.get("User")))
    check(set(cfg.get("ExposedPorts") or {}) == {"7379/tcp", "7380/tcp"}, "the image exposes 7379 and 7380",
          str(cfg.get("ExposedPorts")))
    check("RESPGATE_CONFIG=/etc/respgate/respgate.json" in (cfg.get("Env") or []),
          "RESPGATE_CONFIG names /etc/respgate/respgate.json", str(cfg.get("Env")))
    check(cfg.get("StopSignal") == "SIGTERM", "STOPSIGNAL is SIGTERM", str(cfg.get("StopSignal")))
    hc = json.loads(inspect(IMAGE, "{{json .HealthCheck}}") or "null")
    want = ["CMD", "/usr/local/bin/respgate", "--probe", "/readyz"]
    check(hc and hc.get("Test") == want, "the HEALTHCHECK is `respgate --probe .../readyz`, exec form",
          json.dumps(hc))
    layers = json.loads(inspect(IMAGE, "{{json .RootFS.Layers}}"))
    check(len(layers) == 1, "the image is one layer over scratch", "%d layers" % len(layers))
    r = podman("run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", IMAGE, "-c", "true", check=False)
    check(r.returncode != 0, "the image has no shell")


def respgate_config(host, port, admin):
    return {
        "listen": "127.0.0.1:%d" % port,
        "admin": {"listen": "127.0.0.1:%d" % admin},
        "threads": 2,
        "log": {"level": "info", "format": "json"},
        "shutdown_timeout_ms": SHUTDOWN_TIMEOUT_MS,
        "limits": {"max_clients": 4096},
        "regions": [{"name": "host",
                     "sentinel": {"master_name": host.name,
                                  "addresses": ["127.0.0.1:%d" % host.sentinel]}}],
    }


def run_container(tmp, host):
    # Free ports, not the image's defaults: its HEALTHCHECK (--probe /readyz) finds the
    # admin endpoint in the mounted config, so it is the image's own check that runs.
    port = free_port({host.master, host.replica, host.sentinel})
    admin = free_port({host.master, host.replica, host.sentinel, port})
    health = []
    cm = ConfigMapDir(os.path.join(tmp, "config"))
    cfg = respgate_config(host, port, admin)
    cm.write(cfg)
    name = PREFIX + "-respgate"
    base = "http://127.0.0.1:%d" % admin
    start = time.monotonic()
    podman("run", "-d", "--name", name, "--network", "host", "--read-only", "--cap-drop", "ALL",
           "--security-opt", "no-new-privileges", "--stop-timeout", str(STOP_GRACE_S),
           "-e", "RESPGATE_REGION=host", "-v", "%s:/etc/respgate:ro" % cm.root, *health, IMAGE)
    ready = wait_until(lambda: http_status(base + "/readyz", 0.5)[0] == 200, 30, "/readyz 200",
                       interval=0.02)
    results["ready_s"] = ready - start
    check(True, "the container is ready %.2f s after `podman run`" % results["ready_s"])

    # Who and how it runs.
    pid = int(inspect(name, "{{.State.Pid}}"))
    with open("/proc/%d/status" % pid) as f:
        status = f.read()
    uids = re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()
    check(set(uids) == {"10001"}, "respgate runs as uid 10001, not root", " ".join(uids))
    check(inspect(name, "{{.HostConfig.ReadonlyRootfs}}") == "true", "the root filesystem is read-only")
    capeff = re.search(r"^CapEff:\s+(\S+)", status, re.M).group(1)
    check(int(capeff, 16) == 0, "respgate holds no capability", capeff)
    started_at = inspect(name, "{{.State.StartedAt}}")

    # Redis through it.
    check(call(port, "PING") == "PONG", "PING through respgate answers PONG")
    c = Resp(port)  # one connection: read-your-writes holds per connection
    got = (c.call("SET", "rgtest:k", "v1"), c.call("GET", "rgtest:k"))
    c.close()
    check(got == ("OK", "v1"), "SET and GET through respgate", repr(got))
    check(call(host.master, "GET", "rgtest:k") == "v1", "the write reached the Redis master")
    code, body = http_status(base + "/readyz")
    check(code == 200, "/readyz is 200 with a master", "%s %s" % (code, body.strip()))
    r = podman("exec", name, "respgate", "--probe", base + "/readyz", check=False)
    check(r.returncode == 0, "`respgate --probe .../readyz` inside the container exits 0", r.stderr.strip())
    r = podman("healthcheck", "run", name, check=False)
    check(r.returncode == 0 and "unhealthy" not in r.stdout, "`podman healthcheck run` passes",
          (r.stdout + noise_free(r.stderr)).strip())
    code, body = http_status(base + "/config")
    local = json.loads(body).get("config", {}).get("local_region") if code == 200 else None
    check(local == "host", "RESPGATE_REGION from the environment is the local region", str(local))
    lines = [l for l in container_logs(name).splitlines() if l.strip()]
    bad = [l for l in lines if not l.startswith("{") or not json.loads(l).get("msg")]
    check(lines and not bad, "its log is JSON lines on stderr", bad[0] if bad else "")

    # No master: not ready and unhealthy, still alive.
    log("stopping the Redis master (SIGSTOP; its replica has replica-priority 0, so no failover)")
    os.kill(host.master_proc.pid, signal.SIGSTOP)
    try:
        wait_until(lambda: http_status(base + "/readyz", 1.0)[0] == 503, 15, "/readyz 503 without a master")
        check(True, "/readyz is 503 with no master")
        r = podman("healthcheck", "run", name, check=False)
        check(r.returncode != 0, "`podman healthcheck run` fails with no master", r.stdout.strip())
        r = podman("exec", name, "respgate", "--probe", base + "/healthz", check=False)
        check(r.returncode == 0, "/healthz (liveness) still passes with no master", r.stderr.strip())
    finally:
        os.kill(host.master_proc.pid, signal.SIGCONT)
    wait_until(lambda: http_status(base + "/readyz", 1.0)[0] == 200, 30, "/readyz 200 once the master is back")
    r = podman("healthcheck", "run", name, check=False)
    check(r.returncode == 0, "the healthcheck passes again once the master is back", r.stdout.strip())

    # A ConfigMap update: the ..data link swapped under the mounted directory.
    held = Resp(port)
    check(not isinstance(held.call("CONFIG", "GET", "maxmemory"), RespError), "CONFIG GET is allowed before")
    errors, stop = [], threading.Event()

    def traffic():  # a client busy all through the reload, on a connection of its own
        try:
            c = Resp(port)
            while not stop.is_set():
                r = c.call("INCR", "rgtest:during-reload")
                if not isinstance(r, int):
                    errors.append(r)
        except Exception as e:  # noqa: BLE001 - any failure is the finding
            errors.append(repr(e))

    t = threading.Thread(target=traffic)
    t.start()
    time.sleep(0.2)
    cm.write(dict(cfg, deny_commands=["config"]))
    swapped = time.monotonic()
    try:
        wait_until(lambda: isinstance(held.call("CONFIG", "GET", "maxmemory"), RespError), 10,
                   "the swapped config to apply")
    finally:
        stop.set()
        t.join(10)
    results["reload_s"] = time.monotonic() - swapped
    check(True, "the ..data swap is reloaded (%.2f s) on a connection opened before it" % results["reload_s"])
    check(held.call("PING") == "PONG", "that connection was not dropped")
    check(not errors and call(host.master, "GET", "rgtest:during-reload") not in (None, "0"),
          "a client busy through the reload saw no error", str(errors[:3]))
    check(inspect(name, "{{.State.StartedAt}}") == started_at and inspect(name, "{{.RestartCount}}") == "0"
          and int(inspect(name, "{{.State.Pid}}")) == pid, "the container did not restart")
    code, body = http_status(base + "/config")
    src = json.loads(body).get("last_reload", {}).get("source") if code == 200 else None
    check(src == "file", "/config says the file watch reloaded it", str(src))
    held.close()

    # podman stop: a request in flight finishes, then exit 0.
    log("CLIENT PAUSE WRITE 2000 on the master, a SET through respgate, then podman stop -t %d" % STOP_GRACE_S)
    check(call(host.master, "CLIENT", "PAUSE", "2000", "WRITE") == "OK", "the master pauses writes")
    inflight = Resp(port, timeout=15)
    inflight.send("SET", "rgtest:drain", "done")
    time.sleep(0.2)
    stop_start = time.monotonic()
    stopper = subprocess.Popen(PODMAN + ["stop", "-t", str(STOP_GRACE_S), name], env=ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    reply = inflight.reply()
    replied = time.monotonic() - stop_start
    stopper.wait(STOP_GRACE_S + 15)
    stopped = time.monotonic() - stop_start
    results["stop_s"] = stopped
    check(reply == "OK", "the SET in flight when SIGTERM came was answered OK (%.2f s later)" % replied,
          repr(reply))
    check(call(host.master, "GET", "rgtest:drain") == "done", "and it reached Redis")
    code = inspect(name, "{{.State.ExitCode}}")
    check(code == "0", "the container exited 0 after SIGTERM", "exit code " + code)
    check(stopped < SHUTDOWN_TIMEOUT_MS / 1000 + 2,
          "podman stop took %.2f s: within shutdown_timeout_ms, far inside the %d s grace period"
          % (stopped, STOP_GRACE_S))
    logs = container_logs(name)
    check("SIGTERM: no longer accepting" in logs and '"stopped"' in logs,
          "respgate logged the drain and its stop")
    podman("rm", "-f", name)
    return port, admin


def adapt_manifest(text, host, port, admin, tmp):
    """The manifest as shipped, but for: its ConfigMap's regions point at the host's
    Sentinel, one replica, ports moved if 7379/7380 are taken here."""
    m = re.search(r"(  respgate\.json: \|\n)((?:    .*\n|\n)+)", text)
    if not m:
        raise Failure("cannot find the ConfigMap's respgate.json in " + MANIFEST)
    cfg = json.loads(m.group(2))
    region = cfg["regions"][0]["name"]
    cfg["regions"] = respgate_config(host, port, admin)["regions"]
    cfg["regions"][0]["name"] = region  # the one the pod's label names
    cfg["listen"], cfg["admin"]["listen"] = "127.0.0.1:%d" % port, "127.0.0.1:%d" % admin
    body = "\n".join("    " + l for l in json.dumps(cfg, indent=2).splitlines())
    text = text[:m.start(2)] + body + "\n" + text[m.end(2):]
    text, n = re.subn(r"replicas: \d+", "replicas: 1", text)
    if n != 1:
        raise Failure("cannot find the Deployment's replicas in " + MANIFEST)
    text = text.replace("127.0.0.1:7380", "127.0.0.1:%d" % admin).replace("-p 7379", "-p %d" % port)
    path = os.path.join(tmp, "pod.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


def run_pod(tmp, host, port, admin):
    with open(MANIFEST) as f:
        text = f.read()
    pod_yaml = adapt_manifest(text, host, port, admin, tmp)
    probes = re.findall(r'command: \["/usr/local/bin/respgate", "--probe", "([^"]+)"\]',
                        open(pod_yaml).read())
    check(len(probes) == 2 and probes[0].endswith("/readyz") and probes[1].endswith("/healthz"),
          "the manifest has exec readiness (/readyz) and liveness (/healthz) probes", str(probes))
    grace = int(re.search(r"terminationGracePeriodSeconds: (\d+)", text).group(1))
    pre = re.search(r"preStop:\s*\n\s*sleep:\s*\n\s*seconds: (\d+)", text)
    shutdown = json.loads(re.search(r"  respgate\.json: \|\n((?:    .*\n|\n)+)", text).group(1)).get(
        "shutdown_timeout_ms", 5000)
    need = (int(pre.group(1)) if pre else 0) + shutdown / 1000
    check(grace > need, "terminationGracePeriodSeconds (%d) exceeds preStop + shutdown_timeout_ms (%.0f s)"
          % (grace, need))
    deployment = re.search(r"kind: Deployment\nmetadata:\n  name: (\S+)", text).group(1)
    pod = deployment + "-pod-0"
    sidecar, app = pod + "-respgate", pod + "-app"
    cleanup_pod(pod)
    log("podman play kube --network host %s (the shipped manifest, its ConfigMap aimed at the host)"
        % os.path.relpath(MANIFEST, REPO))
    start = time.monotonic()
    podman("play", "kube", "--network", "host", pod_yaml, timeout=180)

    def probe_ok(url):
        return podman("exec", sidecar, "/usr/local/bin/respgate", "--probe", url, check=False).returncode == 0

    ready = wait_until(lambda: probe_ok(probes[0]), 30, "the sidecar's readiness probe", interval=0.2)
    check(True, "the sidecar's readinessProbe command passes (%.2f s after play kube)" % (ready - start))
    check(probe_ok(probes[1]), "its livenessProbe command passes")
    check(inspect(sidecar, "{{.Config.User}}") in ("10001", "10001:10001"), "the sidecar runs as uid 10001",
          inspect(sidecar, "{{.Config.User}}"))
    check(inspect(sidecar, "{{.HostConfig.ReadonlyRootfs}}") == "true", "the sidecar's root filesystem is read-only")
    check("no-new-privileges" in inspect(sidecar, "{{.HostConfig.SecurityOpt}}"),
          "the sidecar cannot gain privileges")
    pid = int(inspect(sidecar, "{{.State.Pid}}"))
    with open("/proc/%d/status" % pid) as f:
        capeff = re.search(r"^CapEff:\s+(\S+)", f.read(), re.M).group(1)
    check(int(capeff, 16) == 0, "the sidecar holds no capability", capeff)
    env = inspect(sidecar, "{{json .Config.Env}}")
    check("RESPGATE_REGION=main" in env, "RESPGATE_REGION comes from the pod label (downward API)", env)
    code, body = http_status("http://127.0.0.1:%d/config" % admin)
    check(code == 200 and json.loads(body)["config"].get("local_region") == "main",
          "respgate took it as its local region")

    def counts():
        return [int(l) for l in container_logs(app).split() if l.isdigit()]

    wait_until(lambda: len(counts()) >= 3, 30, "the app container's INCRs through the sidecar", interval=0.5)
    c = counts()
    check(c == sorted(c) and c[-1] >= 3, "the app container counts through the sidecar", str(c[-5:]))
    direct = int(call(host.master, "GET", "demo:counter") or 0)
    check(direct >= c[-1], "its writes are in the Redis master (demo:counter = %d)" % direct)

    start = time.monotonic()
    podman("pod", "stop", "-t", "30", pod, timeout=60)
    took = time.monotonic() - start
    code = inspect(sidecar, "{{.State.ExitCode}}")
    check(code == "0", "the sidecar exits 0 when the pod stops", "exit code " + code)
    check(took < 10, "the pod stops in %.1f s, on SIGTERM, not at the 30 s kill" % took)
    podman("play", "kube", "--down", pod_yaml, check=False, timeout=120)
    podman("volume", "rm", "-f", "respgate-config", check=False)
    check(not container_exists(sidecar), "play kube --down removed the pod")


def cleanup_pod(pod):
    if podman("pod", "exists", pod, check=False).returncode == 0:
        podman("pod", "rm", "-f", "-t", "0", pod, check=False)
    podman("volume", "rm", "-f", "respgate-config", check=False)


def run_compose(tmp):
    busy = [p for p in COMPOSE_PORTS if not port_free(p)]
    if busy:
        log("SKIPPED the compose demo: ports %s are taken on this machine (it uses fixed ports)"
            % ", ".join(map(str, busy)))
        results["compose"] = "skipped (ports busy)"
        return
    if not shutil.which("docker-compose"):
        raise Failure("docker-compose is not installed (run.sh installs it)")
    sock = os.path.join(tmp, "podman.sock")
    log("podman system service on %s; docker-compose -f docker/compose.yaml up -d" % sock)
    svc = subprocess.Popen(PODMAN + ["system", "service", "--time=0", "unix://" + sock], env=ENV,
                           stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "service.log"), "w"),
                           start_new_session=True)
    CLEANUP.append(lambda: stop_proc(svc))
    wait_until(lambda: os.path.exists(sock), 15, "the podman API socket")
    cenv = dict(ENV, DOCKER_HOST="unix://" + sock, COMPOSE_HTTP_TIMEOUT="180")
    dc = ["docker-compose", "-p", COMPOSE_PROJECT, "-f", COMPOSE]
    CLEANUP.append(lambda: compose_down(dc, cenv))
    start = time.monotonic()
    up = subprocess.Popen(dc + ["up", "-d", "--no-build"], env=cenv, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, start_new_session=True)
    # podman runs no periodic healthcheck without systemd: run the image's HEALTHCHECK
    # by hand, as docker's daemon would, until compose sees it healthy and starts the app.
    gate = COMPOSE_PROJECT + "_respgate_1"
    healthy = False
    deadline = time.monotonic() + 180
    while up.poll() is None and time.monotonic() < deadline:
        if container_exists(gate) and not healthy:
            healthy = podman("healthcheck", "run", gate, check=False).returncode == 0
        time.sleep(0.5)
    if up.poll() is None:
        up.kill()
    out = up.communicate()[0]
    if up.returncode != 0:
        print(out[-4000:])
        raise Failure("docker-compose up failed (output above)")
    check(healthy, "compose: respgate's HEALTHCHECK turned healthy and the app started (%.1f s)"
          % (time.monotonic() - start))
    app = COMPOSE_PROJECT + "_app_1"
    check(inspect(app, "{{.HostConfig.NetworkMode}}").startswith("container:"),
          "compose: the app shares respgate's network namespace")

    def counts():
        return [l.split("=", 1)[1].strip() for l in container_logs(app).splitlines()
                if "demo:counter =" in l]

    wait_until(lambda: len(counts()) >= 3, 30, "the app's counter through respgate", interval=0.5)
    c = counts()
    check(all(v.isdigit() for v in c), "compose: the app counts through respgate", str(c[-5:]))
    before = call(26390, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "demo")
    log("compose: SENTINEL FAILOVER demo (master %s)" % ":".join(before))
    check(call(26390, "SENTINEL", "FAILOVER", "demo") == "OK", "compose: Sentinel accepts a failover")
    seen = len(c)
    wait_until(lambda: call(26390, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "demo") != before, 30,
               "the failover")
    wait_until(lambda: len(counts()) >= seen + 4, 30, "the app going on after the failover", interval=0.5)
    after = counts()[seen:]
    check(all(v.isdigit() for v in after), "compose: the app saw no error through the failover",
          str(after))
    log("compose: master now %s" % ":".join(call(26390, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "demo")))
    gone = compose_down(dc, cenv)
    check(gone, "compose: down removed every container")
    results["compose"] = "ran"


def compose_down(dc, cenv):
    """docker-compose 1.29 against podman removes respgate and the app that joined its
    namespace in parallel, and podman refuses the first: down again, then by label."""
    label = "label=com.docker.compose.project=" + COMPOSE_PROJECT
    for _ in range(2):
        subprocess.run(dc + ["down", "-t", "10"], env=cenv, capture_output=True, timeout=120)
        if not podman("ps", "-aq", "--filter", label, check=False).stdout.strip():
            return True
    leftovers()
    return False


def leftovers():
    """Removes whatever this test makes: its container, the pod, the compose project."""
    podman("rm", "-f", "-t", "0", PREFIX + "-respgate", check=False, timeout=60)
    with open(MANIFEST) as f:
        m = re.search(r"kind: Deployment\nmetadata:\n  name: (\S+)", f.read())
    if m:
        cleanup_pod(m.group(1) + "-pod-0")
    for _ in range(2):  # twice: the app must go before respgate, whose namespace it joined
        ids = podman("ps", "-aq", "--filter", "label=com.docker.compose.project=" + COMPOSE_PROJECT,
                     check=False).stdout.split()
        for i in ids:
            podman("rm", "-f", "-t", "0", i, check=False, timeout=60)


def stop_proc(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


CLEANUP = []


def main():
    tmp = tempfile.mkdtemp(prefix="respgate-container-")
    os.chmod(tmp, 0o755)
    host = None
    failed = None

    def on_signal(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)

    signal.signal(signal.SIGTERM, on_signal)
    try:
        podman_setup()
        leftovers()  # of a run that was killed
        # and the working containers of a build that was killed (the store is this test's
        # and make image's only)
        for line in podman("ps", "-a", "--external", "--format", "{{.ID}} {{.Status}}", check=False).stdout.splitlines():
            if line.endswith(" Storage"):
                podman("rm", "-f", "--storage", line.split()[0], check=False)
        build_images()
        check_image()
        host = Host(tmp, "rgtest")
        log("Redis master 127.0.0.1:%d, replica :%d (never promoted), Sentinel :%d"
            % (host.master, host.replica, host.sentinel))
        host.start()
        port, admin = run_container(tmp, host)
        run_pod(tmp, host, port, admin)
        if os.environ.get("RG_COMPOSE", "1") != "0":
            run_compose(tmp)
        else:
            results["compose"] = "skipped (RG_COMPOSE=0)"
            log("SKIPPED the compose demo (RG_COMPOSE=0)")
    except Failure as e:
        failed = str(e)
    except KeyboardInterrupt as e:
        failed = "interrupted (%s)" % e
    except Exception as e:  # noqa: BLE001 - reported as the failure
        import traceback
        traceback.print_exc()
        failed = "%s: %s" % (type(e).__name__, e)
    finally:
        for fn in reversed(CLEANUP):
            try:
                fn()
            except Exception as e:  # noqa: BLE001
                log("cleanup: %s" % e)
        try:
            leftovers()
            # Builds leave unnamed layers (the build cache): keep a week's worth.
            podman("image", "prune", "-f", "--filter", "until=168h", check=False, timeout=120)
        except Exception as e:  # noqa: BLE001
            log("cleanup: %s" % e)
        if host:
            host.stop()
        if failed and os.environ.get("RG_KEEP"):
            log("RG_KEEP: logs left in " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    total = time.monotonic() - T0
    if "size" in results:
        print("image size: %d bytes (%.2f MB)" % (results["size"], results["size"] / 1e6))
    if "ready_s" in results:
        print("start to ready: %.2f s (podman run to /readyz 200)" % results["ready_s"])
    if "compose" in results:
        print("compose demo: " + results["compose"])
    print("time: %.0f s" % total)
    if failed:
        print("FAILED: " + failed, flush=True)
    print("container: %d passed, %d failed" % (len(passed), 1 if failed else 0), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
