"""The admin endpoint: health, readiness that follows the master, the topology as
JSON, and the bearer token."""
import json
import unittest
import urllib.error
import urllib.request

from harness import Harness, main, wait_until


def get(port, path, token=None):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path))
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class Admin(unittest.TestCase):

    def setUp(self):
        self.h = Harness()
        try:
            self.master = self.h.redis()
            self.replica = self.h.replica_of(self.master)
            self.gate = self.h.respgate(self.master.port, regions=[{
                "name": "local", "priority": 1, "nodes": [
                    "127.0.0.1:%d" % self.master.port, "127.0.0.1:%d" % self.replica.port]}])
            with open(self.gate.config_path) as f:
                self.port = int(json.load(f)["admin"]["listen"].split(":")[1])
        except BaseException:
            self.h.close(ok=False)
            raise

    def tearDown(self):
        self.h.close()

    def test_health_readiness_and_topology(self):
        self.assertEqual(get(self.port, "/healthz"), (200, "ok\n"))
        # Ready once the workers have verified the master, moments after the start.
        wait_until(lambda: get(self.port, "/readyz")[0] == 200, what="/readyz 200")
        self.assertEqual(get(self.port, "/readyz"),
                         (200, "ready: master 127.0.0.1:%d\n" % self.master.port))
        code, body = get(self.port, "/topology")
        self.assertEqual(code, 200)
        t = json.loads(body)
        self.assertEqual(t["master"], "127.0.0.1:%d" % self.master.port)
        nodes = {n["address"]: n for n in t["nodes"]}
        r = nodes["127.0.0.1:%d" % self.replica.port]
        self.assertEqual((r["role"], r["reachable"], r["link_up"], r["region"]),
                         ("replica", True, True, "local"))
        self.assertEqual(r["follows"], t["master"])
        self.assertTrue(r["eligible_for_reads"])
        self.assertIsInstance(r["lag_bytes"], int)
        self.assertTrue(nodes[t["master"]]["master"])
        self.assertEqual(get(self.port, "/nope")[0], 404)

    def test_readiness_follows_the_master(self):
        self.master.kill()
        seen = []
        wait_until(lambda: seen.append(get(self.port, "/readyz")) or seen[-1][0] == 503,
                   what="not ready")
        self.assertRegex(seen[-1][1], "does not answer|no reachable node reports role master|"
                         "no verified connection to the master")
        self.assertEqual(get(self.port, "/healthz")[0], 200)  # alive all the same
        self.master.start()
        wait_until(lambda: get(self.port, "/readyz")[0] == 200, what="ready again")


class Token(unittest.TestCase):

    def test_a_token_guards_everything_but_the_probes(self):
        h = Harness()
        try:
            r = h.redis()
            gate = h.respgate(r.port, admin={"token": "s3cret"})
            with open(gate.config_path) as f:
                port = int(json.load(f)["admin"]["listen"].split(":")[1])
            self.assertEqual(get(port, "/healthz")[0], 200)
            wait_until(lambda: get(port, "/readyz")[0] == 200, what="/readyz 200")
            self.assertEqual(get(port, "/topology")[0], 401)
            self.assertEqual(get(port, "/topology", token="wrong")[0], 401)
            self.assertEqual(get(port, "/topology", token="s3cret")[0], 200)
        finally:
            h.close()


if __name__ == "__main__":
    main()
