"""What a container needs of the binary (issue 14), without a container:

- `respgate --probe URL`: one GET against the admin endpoint, exit 0 on 2xx and 1
  otherwise, for a HEALTHCHECK in an image with no shell and no curl.
- RESPGATE_CONFIG names the config when the command line does not.
- A config mounted the way Kubernetes mounts a ConfigMap (a directory whose files are
  links through "..data", which an update swaps atomically) is reloaded on every
  swap, and so is one SIGHUP reads after a swap."""
import json
import os
import signal
import subprocess
import tempfile
import time

from harness import RESPGATE, ProxyTestCase, RespError, free_port, main, wait_until


def probe(url):
    return subprocess.run([RESPGATE, "--probe", url], capture_output=True, text=True, timeout=10)


class ConfigMap:
    """A directory laid out as kubelet lays out a ConfigMap volume."""

    def __init__(self, root):
        self.root, self.n = root, 0
        os.makedirs(root)
        self.path = os.path.join(root, "respgate.json")
        self._version("{}")
        os.symlink("..data/respgate.json", self.path)

    def _version(self, text):
        self.n += 1
        d = os.path.join(self.root, "..2026_12_02_%02d" % self.n)
        os.makedirs(d)
        with open(os.path.join(d, "respgate.json"), "w") as f:
            f.write(text)
        tmp = os.path.join(self.root, "..data_tmp")
        os.symlink(os.path.basename(d), tmp)
        os.rename(tmp, os.path.join(self.root, "..data"))  # the atomic swap
        old = os.path.join(self.root, "..2026_12_02_%02d" % (self.n - 1))
        if os.path.isdir(old):
            for f in os.listdir(old):
                os.unlink(os.path.join(old, f))
            os.rmdir(old)

    def update(self, cfg):
        self._version(json.dumps(cfg))


class Sidecar(ProxyTestCase):

    def admin_url(self, path):
        with open(self.gate.config_path) as f:
            return "http://%s%s" % (json.load(f)["admin"]["listen"], path)

    def test_probe_mode_answers_by_exit_code(self):
        ok = probe(self.admin_url("/healthz"))
        self.assertEqual((ok.returncode, ok.stderr), (0, ""))
        wait_until(lambda: probe(self.admin_url("/readyz")).returncode == 0, what="ready")
        self.assertEqual(probe(self.admin_url("/nothing-here")).returncode, 1)
        self.redis.kill()  # no master: not ready, still alive
        wait_until(lambda: probe(self.admin_url("/readyz")).returncode == 1, what="not ready")
        self.assertEqual(probe(self.admin_url("/healthz")).returncode, 0)
        refused = probe("http://127.0.0.1:1/healthz")
        self.assertEqual(refused.returncode, 1)
        self.assertIn("refused", refused.stderr)
        self.assertEqual(probe("https://127.0.0.1/healthz").returncode, 1)
        start = time.monotonic()  # a listener that never answers: the deadline holds
        import socket
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        r = probe("http://127.0.0.1:%d/healthz" % silent.getsockname()[1])
        self.assertEqual(r.returncode, 1)
        self.assertLess(time.monotonic() - start, 5)
        silent.close()

    def test_probe_takes_the_admin_address_from_the_config(self):
        wait_until(lambda: subprocess.run([RESPGATE, "--probe", "/readyz", "--config",
                                           self.gate.config_path]).returncode == 0,
                   what="ready by the config's admin.listen")
        r = subprocess.run([RESPGATE, "--probe", "/healthz"], capture_output=True, text=True,
                           env=dict(os.environ, RESPGATE_CONFIG=self.gate.config_path), timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = subprocess.run([RESPGATE, "--probe", "/healthz"], capture_output=True, text=True,
                           env={k: v for k, v in os.environ.items() if k != "RESPGATE_CONFIG"},
                           timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertIn("RESPGATE_CONFIG", r.stderr)

    def test_threads_default_to_the_cpus_respgate_may_use(self):
        with open(self.gate.config_path) as f:
            cfg = json.load(f)
        del cfg["threads"]
        cfg["listen"] = "127.0.0.1:%d" % free_port()  # beside the running one
        cfg["admin"]["listen"] = "127.0.0.1:%d" % free_port()
        path = self.gate.config_path + ".nothreads"
        with open(path, "w") as f:
            json.dump(cfg, f)
        out = subprocess.run(["taskset", "-c", "0", RESPGATE, "--check-config", path],
                             capture_output=True, text=True, timeout=10)
        self.assertEqual(out.returncode, 0, out.stderr)
        # The effective value shows in /config; here, check it through a short run.
        proc = subprocess.Popen(["taskset", "-c", "0", RESPGATE, "-c", path],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            line = ""
            deadline = time.monotonic() + 10
            while "worker thread" not in line and time.monotonic() < deadline:
                line = proc.stdout.readline()
            self.assertIn("with 1 worker threads", line)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)

    def test_the_config_can_come_from_the_environment(self):
        r = subprocess.run([RESPGATE, "--check-config"], capture_output=True, text=True,
                           env=dict(os.environ, RESPGATE_CONFIG=self.gate.config_path), timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(self.gate.config_path, r.stdout)


class ConfigMapReload(ProxyTestCase):

    def setUp(self):
        tmp = tempfile.mkdtemp(prefix="respgate-cm-")
        self.cm = ConfigMap(os.path.join(tmp, "config"))
        self.respgate_options = {"config_path": self.cm.path}
        super().setUp()
        with open(self.cm.path) as f:
            self.cfg = json.load(f)

    def denied(self):
        r = self.gate.client().call("CONFIG", "GET", "maxmemory")
        return isinstance(r, RespError) and "deny_commands" in r

    def test_every_swap_of_the_data_link_is_reloaded(self):
        self.assertFalse(self.denied())
        self.cm.update(dict(self.cfg, deny_commands=["config"]))
        wait_until(self.denied, what="the swapped ConfigMap applied")
        self.cm.update(dict(self.cfg, deny_commands=[]))
        wait_until(lambda: not self.denied(), what="the second swap applied")
        self.assertGreaterEqual(self.gate.output().count("config file %s changed" % self.cm.path), 2)
        # SIGHUP after a swap reads the new files too.
        self.cm.update(dict(self.cfg, deny_commands=["config"]))
        self.gate.proc.send_signal(signal.SIGHUP)
        wait_until(self.denied, what="the swap read on SIGHUP")
        self.assertEqual(self.gate.client().call("SET", "k", "v"), "OK", "no client was dropped")


if __name__ == "__main__":
    main()
