"""The command line: --check-config, --version, --help; and shutdown on SIGTERM
or SIGINT, which stops accepting and lets in-flight requests finish."""
import glob
import json
import os
import signal
import socket
import subprocess
import time
import unittest

from harness import REPO, RESPGATE, ProxyTestCase, encode, main


def check_config(path):
    return subprocess.run([RESPGATE, "--check-config", path], capture_output=True, text=True,
                          timeout=10)


class CheckConfig(unittest.TestCase):

    def setUp(self):
        import tempfile
        self.dir = tempfile.mkdtemp(prefix="respgate-cli-")

    def write(self, text):
        path = os.path.join(self.dir, "c.json")
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_every_shipped_example_config_is_valid(self):
        files = glob.glob(os.path.join(REPO, "config", "*.json"))
        self.assertTrue(files)
        for f in files:
            if f.endswith(".schema.json"):
                continue
            with self.subTest(os.path.basename(f)):
                out = check_config(f)
                self.assertEqual(out.returncode, 0, out.stderr)
                self.assertIn("configuration OK", out.stdout)

    def test_bad_configs_exit_1_with_a_message_naming_the_key(self):
        good = {"regions": [{"name": "a", "nodes": ["127.0.0.1:6379"]}]}
        cases = {
            "bogus": dict(good, bogus=1),
            "threads": dict(good, threads="2"),
            "upstream.connections_per_node": dict(good, upstream={"connections_per_node": 0}),
            "limits.max_clients": dict(good, limits={"max_clients": -1}),
            "regions[0].nodes[0]": {"regions": [{"name": "a", "nodes": ["127.0.0.1:99999"]}]},
            "regions": {},
        }
        for key, cfg in cases.items():
            with self.subTest(key):
                out = check_config(self.write(json.dumps(cfg)))
                self.assertEqual(out.returncode, 1)
                self.assertIn(key, out.stderr)

    def test_invalid_json_and_missing_file_are_errors(self):
        out = check_config(self.write('{"regions": ['))
        self.assertEqual(out.returncode, 1)
        self.assertIn("line", out.stderr)
        self.assertEqual(check_config(os.path.join(self.dir, "nope.json")).returncode, 1)

    def test_version_and_help(self):
        out = subprocess.run([RESPGATE, "--version"], capture_output=True, text=True)
        self.assertEqual(out.returncode, 0)
        self.assertTrue(out.stdout.startswith("respgate "))
        out = subprocess.run([RESPGATE, "--help"], capture_output=True, text=True)
        self.assertEqual(out.returncode, 0)
        self.assertIn("--check-config", out.stdout)
        self.assertEqual(subprocess.run([RESPGATE, "--bogus"], capture_output=True).returncode, 2)


SLOW_SCRIPT = ("local t0 = redis.call('TIME') "
               "while true do local t = redis.call('TIME') "
               "if (t[1] - t0[1]) * 1000000 + (t[2] - t0[2]) > 400000 then break end end "
               "return 'slow done'")


class Shutdown(ProxyTestCase):

    def test_sigterm_lets_in_flight_requests_finish_then_exits_0(self):
        c = self.gate.client()
        c.send(encode("EVAL", SLOW_SCRIPT, 0) + encode("PING"))
        time.sleep(0.1)
        self.gate.proc.send_signal(signal.SIGTERM)
        self.assertEqual(c.read(), b"slow done")
        self.assertEqual(c.read(), "PONG")
        self.assertEqual(c.read_all_until_closed(), b"")
        self.assertEqual(self.gate.proc.wait(10), 0)
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", self.gate.port), timeout=1)
        self.gate.stop()

    def test_idle_clients_do_not_delay_shutdown(self):
        idle = [self.gate.client() for _ in range(20)]
        for c in idle:
            c.call("PING")
        t0 = time.monotonic()
        self.gate.proc.send_signal(signal.SIGINT)
        self.assertEqual(self.gate.proc.wait(10), 0)
        self.assertLess(time.monotonic() - t0, 2.0)
        self.gate.stop()


if __name__ == "__main__":
    main()
