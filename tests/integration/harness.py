"""Integration test harness: real redis-server and respgate processes.

Every process is started on a free loopback port inside a temporary directory,
tracked by PID and killed at the end of the test, whatever happens. respgate's
stderr is kept; a sanitizer report in it fails the test.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import warnings

# Tests drop sockets on purpose (clients that vanish); the warnings are noise.
warnings.simplefilter("ignore", ResourceWarning)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESPGATE = os.environ.get("RESPGATE_BIN") or os.path.join(REPO, "build", "respgate")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "WARNING: ThreadSanitizer")


def free_port():
    """A port free now, below the kernel's ephemeral range (32768 and up by default),
    so that an outgoing connection of a test running beside this one cannot take it
    before the server binds it (ctest -j N)."""
    import random
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # crowded: let the kernel choose
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout=10.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))


# --- a minimal RESP client for raw-byte tests ---------------------------------

def encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class ConnectionClosed(Exception):
    pass


class Raw:
    """A socket with a RESP2 reply reader. Errors come back as RespError values."""

    def __init__(self, port, timeout=10.0, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def call(self, *args):
        self.send(encode(*args))
        return self.read()

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionClosed()
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return RespError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self._fill()
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise AssertionError("unexpected reply line %r" % line)

    def read_all_until_closed(self, timeout=5.0):
        """Everything the server sends until it closes; fails if it stays open."""
        self.sock.settimeout(timeout)
        data = self.buf
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return data
            data += chunk


class RespError(str):
    pass


# --- processes -----------------------------------------------------------------

class Redis:
    def __init__(self, h, port=None, extra=(), password=None, host="127.0.0.1"):
        self.h = h
        self.host = host  # any 127/8 address: tests give each region its own
        self.port = port or free_port()
        self.password = password
        self.extra = list(extra) + (["--requirepass", password] if password else [])
        self.proc = None
        self.start()

    def start(self):
        d = os.path.join(self.h.dir, "redis-%d" % self.port)
        os.makedirs(d, exist_ok=True)
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", self.host,
                "--save", "", "--appendonly", "no", "--dir", d, "--daemonize", "no",
                "--repl-diskless-sync-delay", "0",
                "--logfile", os.path.join(d, "redis.log")] + self.extra
        if self.host != "127.0.0.1":  # its master would see 127.0.0.1, the source address
            args += ["--replica-announce-ip", self.host]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.h.track(self.proc)
        wait_until(self.ping, what="redis-server on port %d" % self.port)

    def ping(self):
        try:
            c = self.client(timeout=1)
            try:
                return c.call("PING") == "PONG"
            finally:
                c.close()
        except OSError:
            return False

    def client(self, timeout=10.0):
        c = Raw(self.port, timeout=timeout, host=self.host)
        if self.password:
            c.call("AUTH", self.password)
        return c

    def kill(self):
        """SIGKILL, as a crash would."""
        self.proc.kill()
        self.proc.wait()

    def freeze(self):
        """SIGSTOP: the process holds its connections but answers nothing."""
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self):
        self.proc.send_signal(signal.SIGCONT)

    def _commandstat(self, command, field):
        stats = {k.lower(): v for k, v in self.info("commandstats").items()}  # modules keep case
        stat = stats.get("cmdstat_" + command.lower(), "")
        fields = dict(kv.split("=") for kv in stat.split(",") if "=" in kv)
        return int(fields.get(field, 0))

    def calls(self, command):
        """How many times this node ran command (INFO commandstats)."""
        return self._commandstat(command, "calls")

    def rejected(self, command):
        """How many times this node refused command (READONLY, wrong args...)."""
        return self._commandstat(command, "rejected_calls")

    def info(self, section):
        c = self.client()
        try:
            text = c.call("INFO", section).decode()
        finally:
            c.close()
        out = {}
        for line in text.splitlines():
            if ":" in line and not line.startswith("#"):
                k, v = line.split(":", 1)
                out[k] = v
        return out


class Respgate:
    def __init__(self, h, upstream_port, environ=None, config_path=None, **overrides):
        self.h = h
        self.port = free_port()
        cfg = {
            "listen": "127.0.0.1:%d" % self.port,
            "threads": 2,
            "shutdown_timeout_ms": 3000,
            "regions": [{"name": "local", "priority": 1,
                         "nodes": ["127.0.0.1:%d" % upstream_port]}],
            "upstream": {"connections_per_node": 2, "connect_timeout_ms": 500},
            "admin": {"listen": "127.0.0.1:%d" % free_port()},
        }
        for k, v in overrides.items():
            if isinstance(v, dict) and isinstance(cfg.get(k), dict):
                cfg[k].update(v)
            else:
                cfg[k] = v
        # config_path: where to write it (a ConfigMap-style link, say) and start from.
        self.config_path = config_path or os.path.join(h.dir, "respgate-%d.json" % self.port)
        with open(self.config_path, "w") as f:
            json.dump(cfg, f)
        self.log_path = os.path.join(h.dir, "respgate-%d.log" % self.port)
        self.log = open(self.log_path, "wb")
        env = dict(os.environ, **(environ or {}))
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:halt_on_error=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        self.proc = subprocess.Popen([RESPGATE, "-c", self.config_path], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env)
        self.h.track(self.proc)
        self.h.gates.append(self)
        wait_until(self._accepting, what="respgate on port %d" % self.port)
        admin = cfg.get("admin", {}).get("listen")
        if admin:  # bound by the control thread, a moment after the listeners
            wait_until(lambda: self._accepting(int(admin.rsplit(":", 1)[1])),
                       what="respgate's admin endpoint")

    def _accepting(self, port=None):
        if self.proc.poll() is not None:
            raise AssertionError("respgate exited early:\n" + self.output())
        try:
            socket.create_connection(("127.0.0.1", port or self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def client(self, timeout=10.0):
        return Raw(self.port, timeout=timeout)

    def output(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Stops respgate and checks it exited cleanly with no sanitizer report."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise AssertionError("respgate did not stop within %.0fs" % timeout)
        self.log.close()
        self.check_clean()
        return self.proc.returncode

    def check_clean(self):
        out = self.output()
        for mark in SANITIZER_MARKS:
            if mark in out:
                raise AssertionError("sanitizer report from respgate:\n" + out[-6000:])
        if self.proc.returncode not in (0, None):
            raise AssertionError("respgate exited with %s:\n%s" % (self.proc.returncode, out[-6000:]))


def main():
    """unittest.main, without the ResourceWarnings of sockets that tests drop on purpose."""
    unittest.main(verbosity=2, warnings="ignore")


class Harness:
    """Owns a temp dir and every process started in it."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="respgate-test-")
        self.procs = []
        self.gates = []

    def track(self, proc):
        self.procs.append(proc)

    def redis(self, **kw):
        return Redis(self, **kw)

    def replica_of(self, master, **kw):
        """A replica of master, returned once its link is up and it has synced."""
        r = Redis(self, extra=["--replicaof", master.host, str(master.port)] + list(kw.pop("extra", ())), **kw)
        wait_until(lambda: r.info("replication").get("master_link_status") == "up",
                   what="replica %d linked" % r.port)
        # After a diskless sync, Redis 7 streams writes to a replica only once it has
        # sent its first REPLCONF ACK (once a second): wait until one arrives.
        c = master.client()
        c.call("SET", "__harness_sync", r.port)
        c.close()
        wait_until(lambda: r.info("replication")["slave_repl_offset"] ==
                   master.info("replication")["master_repl_offset"],
                   what="replica %d streaming" % r.port)
        return r

    def respgate(self, upstream_port, **kw):
        return Respgate(self, upstream_port, **kw)

    def close(self, ok=True):
        try:
            # Stop respgate first, the clean way, so leaks and sanitizer reports show.
            errors = []
            for g in self.gates:
                try:
                    g.stop()
                except AssertionError as e:
                    errors.append(str(e))
            if errors:
                raise AssertionError("\n".join(errors))
        finally:
            for p in self.procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            if ok and not os.environ.get("KEEP_TEST_DIR"):
                shutil.rmtree(self.dir, ignore_errors=True)


class ProxyTestCase(unittest.TestCase):
    """A Redis and a respgate in front of it, fresh for every test."""

    respgate_options = {}

    def setUp(self):
        self.h = Harness()
        try:
            self.redis = self.h.redis()
            self.gate = self.h.respgate(self.redis.port, **self.respgate_options)
        except BaseException:
            self.h.close(ok=False)
            raise

    def tearDown(self):
        self.h.close()
