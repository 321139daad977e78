"""TLS from respgate to Redis and to Sentinel (upstream.tls, regions[].sentinel.tls).

Every Redis here listens on a plaintext port, which only the test uses (INFO, CLIENT
LIST, checks), and on a --tls-port, which is the only one respgate is given. Since a
plaintext client cannot talk on a TLS port, a respgate that works at all spoke TLS; the
tests also look at CLIENT LIST (laddr) to see which port respgate's commands came in
on. Certificates are made by the test with the openssl command line (test_tls.Certs).

- UpstreamTLS: commands, pipelines, MULTI/EXEC and multi-megabyte values through a TLS
  upstream, from redis-cli and redis-py, in plaintext and through respgate's own TLS
  listener; reconnecting after Redis drops the TLS connections.
- UpstreamMutualTLS: Redis with --tls-auth-clients yes: respgate's client certificate
  (cert_file, key_file) is needed, and without it (or with one of another CA) clients
  get an error, not a hang, and the log says why.
- UpstreamWrongCA: a Redis certificate of a CA respgate does not trust is refused
  ("certificate verify failed", the failure counted with reason="certificate"), and
  accepted with "verify": false, with a warning.
- UpstreamServerName: server_name is what the certificate is checked against; without
  it, the node's IP must be in the certificate.
- SentinelTLS: master, two replicas and three Sentinels all on TLS (tls-replication
  yes), respgate following the Sentinels' TLS ports; the master killed under writers.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

import redis

from adminhttp import admin_port, get_json
from failover_load import Load
from harness import Harness, Redis, RespError, encode, free_port, main, wait_until
from sentinel import NAME, Cluster, Sentinel
from test_tls import Certs, TLSClient

HOLD_MS = 1000  # failover.hold_ms where no master can be reached: errors come fast


class UpstreamCerts(Certs):
    """test_tls.Certs (ca, other-ca; server for IP:127.0.0.1 and DNS:localhost; client
    of ca, stranger of other-ca) and "named", a server certificate of ca whose only
    name is DNS:redis.example."""

    def __init__(self, d):
        super().__init__(d)
        with open(os.path.join(d, "named.ext"), "w") as f:
            f.write("subjectAltName=DNS:redis.example\n")
        self.issue("named", "ca", ext="named.ext")


_shared = {}


def shared_certs():
    """One set of certificates for the whole file: making them takes a second or two,
    and no test changes them."""
    if "certs" not in _shared:
        _shared["certs"] = UpstreamCerts(tempfile.mkdtemp(prefix="respgate-tls-upstream-"))
    return _shared["certs"]


def tearDownModule():
    certs = _shared.pop("certs", None)
    if certs and not os.environ.get("KEEP_TEST_DIR"):
        shutil.rmtree(certs.d, ignore_errors=True)


def other_port(*taken):
    while True:
        p = free_port()
        if p not in taken:
            return p


class TLSRedis(Redis):
    """A redis-server on a plaintext port (for the test) and a TLS port (for respgate).
    cert: the server certificate's name in certs; auth_clients: Redis'
    tls-auth-clients (no, yes, optional)."""

    def __init__(self, h, certs, cert="server", auth_clients="no", extra=()):
        self.certs = certs
        self.tls_port = other_port()
        port = other_port(self.tls_port)
        tls = ["--tls-port", str(self.tls_port),
               "--tls-cert-file", certs.path(cert + ".crt"),
               "--tls-key-file", certs.path(cert + ".key"),
               "--tls-ca-cert-file", certs.path("ca.crt"),
               "--tls-auth-clients", auth_clients]
        super().__init__(h, port=port, extra=tls + list(extra))

    @property
    def addr(self):
        """The address respgate is given, and names in its log."""
        return "127.0.0.1:%d" % self.tls_port

    def tls_cli(self, *args):
        """redis-cli over this node's TLS port, with the client certificate."""
        return redis_cli(self.tls_port, self.certs, *args, cert="client")

    def clients(self):
        """CLIENT LIST, one dict per connection, and the id of the asking one."""
        c = self.client()
        try:
            me = c.call("CLIENT", "ID")
            text = c.call("CLIENT", "LIST").decode()
        finally:
            c.close()
        return [dict(kv.split("=", 1) for kv in line.split(" ") if "=" in kv)
                for line in text.splitlines()], me

    def check_commands_came_over_tls(self, test, commands):
        """Every connection that ran one of commands came in on the TLS port, and at
        least one did (respgate's; the test's own connections are on the plaintext
        port and never run these)."""
        entries, me = self.clients()
        ran = [e for e in entries if e.get("cmd") in commands and e.get("id") != str(me)]
        test.assertTrue(ran, "no connection ran %s: %s" % (commands, entries))
        for e in ran:
            test.assertEqual(e["laddr"], self.addr, "a command came over plaintext: %s" % e)
        on_tls = [e for e in entries if e.get("laddr") == self.addr]
        test.assertTrue(on_tls)
        return on_tls


def redis_cli(port, certs, *args, cert=None, tls=True):
    cmd = ["redis-cli", "-p", str(port)]
    if tls:
        cmd += ["--tls", "--cacert", certs.path("ca.crt")]
        if cert:
            cmd += ["--cert", certs.path(cert + ".crt"), "--key", certs.path(cert + ".key")]
    r = subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, timeout=15)
    return r.stdout.strip() + r.stderr.strip()


def tls_options(certs, ca="ca", cert=None, **kw):
    """An upstream.tls or sentinel.tls object."""
    opts = {"enabled": True, "ca_file": certs.path(ca + ".crt")}
    if cert:
        opts.update(cert_file=certs.path(cert + ".crt"), key_file=certs.path(cert + ".key"))
    opts.update(kw)
    return opts


def metrics(gate):
    """GET /metrics: {(name, frozenset of (label, value)): value}."""
    port = json.load(open(gate.config_path))["admin"]["listen"].rsplit(":", 1)[1]
    with urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port, timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, value = line.rsplit(" ", 1)
        name, _, labels = series.partition("{")
        out[(name, frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels)))] = float(value)
    return out


def metric(gate, name, **labels):
    """The sum of the series of name whose labels include labels (in any order)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in metrics(gate).items() if n == name and want <= ls)


def handshakes(gate, **labels):
    return metric(gate, "respgate_tls_handshakes_total", **labels)


def wait_for(gate, predicate, what, timeout=10):
    """wait_until, with the end of respgate's log in the failure."""
    try:
        wait_until(predicate, timeout=timeout, what=what)
    except AssertionError as e:
        raise AssertionError("%s\nrespgate's log ends:\n%s" % (e, gate.output()[-3000:])) from None


def log_lines(gate, *needles):
    """The lines of respgate's log that contain every one of needles."""
    return [line for line in gate.output().splitlines() if all(n in line for n in needles)]


class UpstreamTestCase(unittest.TestCase):
    """A harness and certificates; each test starts its own Redis and respgate."""

    def setUp(self):
        self.h = Harness()
        try:
            self.certs = shared_certs()
        except BaseException:
            self.h.close(ok=False)
            raise

    def tearDown(self):
        self.h.close()  # stops every respgate (SIGTERM, sanitizer check), then the rest

    def gate(self, node, upstream_tls, **kw):
        """A respgate whose only node is node's TLS port, with upstream.tls."""
        upstream = dict(kw.pop("upstream", {}), tls=upstream_tls)
        return self.h.respgate(node.tls_port, upstream=upstream, **kw)

    def assert_works(self, gate, key="k"):
        c = gate.client()
        try:
            self.assertEqual(c.call("SET", key, "v-" + key), "OK", gate.output()[-3000:])
            self.assertEqual(c.call("GET", key), b"v-" + key.encode())
        finally:
            c.close()

    def assert_refused(self, gate):
        """Requests get an error reply (within the client's 10 s timeout: no hang), and
        the connection stays usable for the next one."""
        c = gate.client(timeout=10)
        try:
            for cmd in (("SET", "k", "v"), ("GET", "k"), ("PING",)):
                reply = c.call(*cmd)
                self.assertIsInstance(reply, RespError, "%s answered %r" % (cmd, reply))
        finally:
            c.close()

    def wait_logged(self, gate, *needles, timeout=10):
        wait_for(gate, lambda: log_lines(gate, *needles), timeout=timeout,
                 what="a log line with %s" % (needles,))
        return log_lines(gate, *needles)


class UpstreamTLS(UpstreamTestCase):
    """One Redis on TLS; respgate with upstream.tls and its own TLS listener."""

    def setUp(self):
        super().setUp()
        try:
            self.redis = TLSRedis(self.h, self.certs)
            self.tls_port = free_port()
            self.g = self.gate(self.redis, tls_options(self.certs), tls={
                "listen": "127.0.0.1:%d" % self.tls_port,
                "cert_file": self.certs.path("server.crt"),
                "key_file": self.certs.path("server.key")})
        except BaseException:
            self.h.close(ok=False)
            raise

    def test_commands_pipelines_and_transactions_go_over_tls(self):
        self.assertEqual(self.redis.tls_cli("PING"), "PONG", "the Redis TLS port itself")
        cli = lambda *a: redis_cli(self.g.port, self.certs, *a, tls=False)
        self.assertEqual(cli("SET", "cli", "1"), "OK")
        self.assertEqual(cli("GET", "cli"), "1")
        py = redis.Redis(port=self.g.port, socket_timeout=10)
        py.set("py", "2")
        self.assertEqual(py.get("py"), b"2")
        pipe = py.pipeline(transaction=False)
        for i in range(500):
            pipe.set("p%d" % i, "x" * (i * 40))  # requests and replies across TLS records
            pipe.get("p%d" % i)
        replies = pipe.execute()
        self.assertEqual(len(replies), 1000)
        self.assertEqual(replies[-1], b"x" * 19960)
        tx = py.pipeline(transaction=True)
        tx.incr("n").incr("n").get("n")
        self.assertEqual(tx.execute(), [1, 2, b"2"])
        c = self.g.client()
        self.assertEqual(c.call("MULTI"), "OK")
        self.assertEqual(c.call("SET", "m", "1"), "QUEUED")
        self.assertEqual(c.call("INCR", "m"), "QUEUED")
        self.assertEqual(c.call("EXEC"), ["OK", 2])
        big = "y" * (3 << 20)  # many TLS records each way, more than one read's worth
        c.send(encode("SET", "big", big) + encode("GET", "big") + encode("STRLEN", "big"))
        self.assertEqual([c.read(), c.read(), c.read()], ["OK", big.encode(), 3 << 20])
        c.close()
        # Redis ran all of it, the probe's INFO too, on connections to its TLS port.
        self.redis.check_commands_came_over_tls(
            self, {"set", "get", "incr", "exec", "strlen", "multi", "info"})
        direct = self.redis.client()
        self.assertEqual(direct.call("GET", "m"), b"2")
        self.assertEqual(direct.call("STRLEN", "big"), 3 << 20)
        direct.close()
        wait_until(lambda: handshakes(self.g, side="upstream", result="ok") >= 1,
                   what='respgate_tls_handshakes_total{side="upstream",result="ok"}')
        self.assertEqual(handshakes(self.g, side="upstream", result="failed"), 0)
        self.assertEqual(log_lines(self.g, "certificate verify failed"), [])

    def test_tls_clients_through_tls_upstream(self):
        """redis-cli --tls -> respgate's TLS listener -> Redis' TLS port."""
        cli = lambda *a: redis_cli(self.tls_port, self.certs, *a)
        self.assertEqual(cli("SET", "both", "tls"), "OK")
        self.assertEqual(cli("GET", "both"), "tls")
        py = redis.Redis(port=self.tls_port, ssl=True, ssl_ca_certs=self.certs.path("ca.crt"),
                         socket_timeout=10)
        pipe = py.pipeline(transaction=True)
        for i in range(300):
            pipe.set("t%d" % i, "z" * (i * 60))
        self.assertEqual(len(pipe.execute()), 300)
        self.assertEqual(py.get("t299"), b"z" * 17940)
        c = TLSClient(self.tls_port, self.certs.path("ca.crt"))
        big = "w" * (2 << 20)
        c.send(encode("SET", "big", big) + encode("GET", "big"))
        self.assertEqual([c.read(), c.read()], ["OK", big.encode()])
        c.close()
        self.redis.check_commands_came_over_tls(self, {"set", "get", "exec", "multi"})
        wait_until(lambda: handshakes(self.g, side="client", result="ok") >= 3 and
                   handshakes(self.g, side="upstream", result="ok") >= 1,
                   what="client and upstream handshakes counted")

    def test_connections_redis_drops_come_back_over_tls(self):
        self.assert_works(self.g, "before")
        wait_until(lambda: handshakes(self.g, side="upstream", result="ok") >= 1,
                   what="upstream handshakes counted")
        before = handshakes(self.g, side="upstream", result="ok")
        direct = self.redis.client()
        killed = direct.call("CLIENT", "KILL", "LADDR", self.redis.addr)
        direct.close()
        self.assertGreaterEqual(killed, 1, "respgate had no connection on the TLS port")

        def works():
            c = self.g.client()
            try:
                return c.call("SET", "after", "1") == "OK"
            finally:
                c.close()
        wait_until(works, timeout=10, interval=0.1, what="respgate writing again")
        self.assert_works(self.g, "after")
        wait_until(lambda: handshakes(self.g, side="upstream", result="ok") > before,
                   what="new upstream handshakes counted")
        # The reconnects resumed the sessions of the connections before them.
        wait_until(lambda: metric(self.g, "respgate_tls_handshakes_resumed_total",
                                  side="upstream") >= 1, what="a resumed upstream session")
        self.redis.check_commands_came_over_tls(self, {"set", "get"})


class UpstreamMutualTLS(UpstreamTestCase):
    """Redis with --tls-auth-clients yes."""

    def setUp(self):
        super().setUp()
        try:
            self.redis = TLSRedis(self.h, self.certs, auth_clients="yes")
        except BaseException:
            self.h.close(ok=False)
            raise

    def test_with_a_client_certificate_it_works(self):
        self.assertEqual(self.redis.tls_cli("PING"), "PONG")
        g = self.gate(self.redis, tls_options(self.certs, cert="client"))
        self.assert_works(g)
        py = redis.Redis(port=g.port, socket_timeout=10)
        tx = py.pipeline(transaction=True)
        tx.set("a", "1").incr("a")
        self.assertEqual(tx.execute(), [True, 2])
        self.redis.check_commands_came_over_tls(self, {"set", "get", "exec"})
        self.assertEqual(handshakes(g, side="upstream", result="failed"), 0)

    def test_without_a_certificate_of_its_ca_clients_get_an_error(self):
        no_cert = redis_cli(self.redis.tls_port, self.certs, "PING")
        self.assertNotIn("PONG", no_cert, "Redis let a client without a certificate in")
        for cert in (None, "stranger"):
            with self.subTest(cert=cert):
                g = self.gate(self.redis, tls_options(self.certs, cert=cert),
                              failover={"hold_ms": HOLD_MS})
                self.assert_refused(g)
                # TLS 1.3: respgate's side of the handshake completes; Redis' refusal
                # ("certificate required", "unknown ca") is an alert on the first read.
                lines = self.wait_logged(g, self.redis.addr)
                self.assertTrue([l for l in lines if re.search(r"certificate|alert", l)],
                                "no log line says why:\n" + g.output()[-3000:])
                wait_until(lambda: handshakes(g, side="upstream", result="failed") >= 1,
                           what='respgate_tls_handshakes_total{side="upstream",result="failed"}')
                g.stop()


class UpstreamWrongCA(UpstreamTestCase):

    def setUp(self):
        super().setUp()
        try:
            self.redis = TLSRedis(self.h, self.certs)
        except BaseException:
            self.h.close(ok=False)
            raise

    def test_a_certificate_of_another_ca_is_refused(self):
        g = self.gate(self.redis, tls_options(self.certs, ca="other-ca"),
                      failover={"hold_ms": HOLD_MS})
        self.assert_refused(g)
        self.wait_logged(g, "certificate verify failed", self.redis.addr)
        wait_until(lambda: handshakes(g, side="upstream", result="failed",
                                      reason="certificate") > 0,
                   what='respgate_tls_handshakes_total{side="upstream",result="failed",'
                        'reason="certificate"}')
        self.assertEqual(handshakes(g, side="upstream", result="ok"), 0)
        entries, _ = self.redis.clients()
        self.assertEqual([e for e in entries if e.get("laddr") == self.redis.addr and
                          e.get("cmd") != "NULL"], [], "Redis ran a command over TLS")

    def test_verify_false_accepts_it_and_warns(self):
        g = self.gate(self.redis, tls_options(self.certs, ca="other-ca", verify=False))
        self.assert_works(g)
        self.assertTrue([l for l in g.output().splitlines()
                         if re.search(r"\bwarn", l) and "verify" in l],
                        "no warning about verify:\n" + g.output()[-3000:])
        self.assertEqual(log_lines(g, "certificate verify failed"), [])
        self.redis.check_commands_came_over_tls(self, {"set", "get"})


class UpstreamBackup(UpstreamTestCase):
    """POST /backup takes its snapshot (SYNC) over upstream.tls; a CA that does not
    sign Redis' certificate fails the backup with the reason, writing nothing."""

    def admin(self, gate, path, post=False):
        return get_json(admin_port(gate), path, "POST" if post else "GET")

    def backup(self, g):
        """POST /backup (409 until the probe has seen a source), then waits for it."""
        started = {}
        wait_until(lambda: started.update(r=self.admin(g, "/backup", post=True)) or
                   started["r"][0] == 202, what="POST /backup accepted")
        bid = started["r"][1]["id"]
        wait_until(lambda: self.admin(g, "/backups")[1]["running"] is None, timeout=30,
                   what="the backup done")
        return bid, {b["id"]: b for b in self.admin(g, "/backups")[1]["backups"]}

    def test_a_backup_syncs_over_tls_and_a_wrong_ca_fails_it(self):
        self.redis = TLSRedis(self.h, self.certs)
        c = self.redis.client()
        for i in range(500):
            c.call("SET", "key:%d" % i, "x" * 100)
        c.close()
        syncs = self.redis.calls("sync")
        d = os.path.join(self.h.dir, "backups")
        g = self.gate(self.redis, tls_options(self.certs), backup={"dir": d, "source": "master"})
        bid, backups = self.backup(g)
        self.assertIn(bid, backups, g.output()[-3000:])
        self.assertEqual(backups[bid]["keys"], {"db0": 500})
        self.assertTrue(os.path.exists(os.path.join(d, "backup-%s.rdb" % bid)))
        self.assertEqual(self.redis.calls("sync"), syncs + 1)
        self.redis.check_commands_came_over_tls(self, {"info"})
        # A reload to a CA that did not sign Redis' certificate: the probe's open
        # connection keeps the master known, and the next backup's handshake fails.
        with open(g.config_path) as f:
            cfg = json.load(f)
        cfg["upstream"]["tls"] = tls_options(self.certs, ca="other-ca")
        with open(g.config_path, "w") as f:
            json.dump(cfg, f)
        self.assertEqual(self.admin(g, "/reload", post=True)[0], 200)
        bid, backups = self.backup(g)
        self.assertNotIn(bid, backups)
        self.assertFalse(os.path.exists(os.path.join(d, "backup-%s.rdb" % bid)))
        lines = [l for l in g.output().splitlines() if "backup %s failed" % bid in l]
        self.assertTrue(lines and "certificate verify failed" in lines[0], g.output()[-3000:])
        self.assertEqual(self.redis.calls("sync"), syncs + 1, "no SYNC over a refused handshake")


class UpstreamServerName(UpstreamTestCase):
    """Redis' certificate names only DNS:redis.example."""

    def setUp(self):
        super().setUp()
        try:
            self.redis = TLSRedis(self.h, self.certs, cert="named")
        except BaseException:
            self.h.close(ok=False)
            raise

    def test_server_name_is_what_is_verified(self):
        g = self.gate(self.redis, tls_options(self.certs, server_name="redis.example"))
        self.assert_works(g)
        self.redis.check_commands_came_over_tls(self, {"set", "get"})
        for name in (None, "other.example"):
            with self.subTest(server_name=name):
                opts = tls_options(self.certs) if name is None else \
                    tls_options(self.certs, server_name=name)
                bad = self.gate(self.redis, opts, failover={"hold_ms": HOLD_MS})
                self.assert_refused(bad)
                self.wait_logged(bad, "certificate verify failed", self.redis.addr)
                wait_until(lambda: handshakes(bad, side="upstream", result="failed",
                                              reason="certificate") > 0,
                           what="the failed verification counted")
                bad.stop()
        self.assert_works(g, "still")


# --- Sentinel over TLS -----------------------------------------------------------

class TLSSentinel(Sentinel):
    """A redis-sentinel on a plaintext port (for the test) and a TLS port. With
    tls-replication yes it speaks TLS to the nodes and the other Sentinels, and
    announces its TLS port to them; peers and nodes are named by their TLS ports."""

    def __init__(self, h, myid, certs):
        self.certs = certs
        self.tls_port = other_port()
        super().__init__(h, myid, port=other_port(self.tls_port))

    def start(self, master, replicas, peers, down_after_ms, failover_timeout_ms, quorum=2):
        c = self.certs.path
        self.launch(["tls-port %d" % self.tls_port,
                     "tls-cert-file %s" % c("server.crt"), "tls-key-file %s" % c("server.key"),
                     "tls-ca-cert-file %s" % c("ca.crt"), "tls-auth-clients yes",
                     "tls-replication yes"] +
                    self.monitor_lines(master, replicas, peers, down_after_ms,
                                       failover_timeout_ms, quorum,
                                       port_of=lambda node: node.tls_port))

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.tls_port


class TLSCluster:
    """sentinel.Cluster on TLS: every node and Sentinel has a plaintext port and a TLS
    port, replication and Sentinel use TLS (tls-replication yes, tls-auth-clients yes),
    and the Sentinels name the nodes (and each other) by their TLS ports. nodes is keyed
    by TLS port.

    down-after-milliseconds is 1500, not sentinel.Cluster's 600: with TLS, Redis 7.0's
    Sentinel often fails its first connection to a just-promoted master (while it also
    retries the dead one, whose TLS set-up fails every second) and reconnects only a
    second later (its reconnect period); with 600 ms it then finds the new master down
    and fails over again, and again (four or five +switch-master in five seconds here).
    With plaintext, or with 1500 ms, there is one."""

    def __init__(self, h, certs, nreplicas=2, nsentinels=3, down_after_ms=1500,
                 failover_timeout_ms=4000):
        self.h, self.certs = h, certs
        self.master = self.node()
        self.replicas = [self.replica_of(self.master) for _ in range(nreplicas)]
        self.nodes = {r.tls_port: r for r in [self.master] + self.replicas}
        self.sentinels = [TLSSentinel(h, "%040x" % (0x7e << 100 | i), certs)
                          for i in range(nsentinels)]
        for s in self.sentinels:
            s.start(self.master, self.replicas, self.sentinels, down_after_ms,
                    failover_timeout_ms)
        wait_until(self._agreed, timeout=20, what="sentinels agreeing")

    def node(self, extra=()):
        return TLSRedis(self.h, self.certs, auth_clients="yes",
                        extra=["--tls-replication", "yes"] + list(extra))

    def replica_of(self, master):
        """As Harness.replica_of, replicating from the master's TLS port."""
        r = self.node(extra=["--replicaof", master.host, str(master.tls_port)])
        wait_until(lambda: r.info("replication").get("master_link_status") == "up",
                   what="replica %d linked over TLS" % r.tls_port)
        c = master.client()
        c.call("SET", "__harness_sync", r.port)
        c.close()
        wait_until(lambda: r.info("replication")["slave_repl_offset"] ==
                   master.info("replication")["master_repl_offset"],
                   what="replica %d streaming" % r.tls_port)
        return r

    # The same checks as sentinel.Cluster's, on these Sentinels and replicas.
    _agreed = Cluster._agreed
    live_sentinels = Cluster.live_sentinels

    # Sentinel.master_port() is the port the Sentinels name: here the TLS port, which
    # nodes is keyed by.
    settled_master = Cluster.settled_master

    def wait_switched(self, old_tls_port, timeout=20):
        return self.nodes[Cluster.wait_switched(self, old_tls_port, timeout)]


def sentinel_clients(s, cmd=None):
    """CLIENT LIST entries of Sentinel s (whose last command was cmd)."""
    entries = [dict(kv.split("=", 1) for kv in line.split(" ") if "=" in kv)
               for line in s.call("CLIENT", "LIST").decode().splitlines()]
    return [e for e in entries if cmd is None or e.get("cmd") == cmd]


def fields(flat):
    return {k.decode(): v.decode() if isinstance(v, bytes) else v
            for k, v in zip(flat[::2], flat[1::2])}


class SentinelTLS(UpstreamTestCase):

    def setUp(self):
        super().setUp()
        try:
            self.cl = TLSCluster(self.h, self.certs)
            tls = tls_options(self.certs, cert="client")
            self.gate = self.h.respgate(self.cl.master.tls_port, upstream={"tls": tls}, regions=[
                {"name": "local", "priority": 1,
                 "sentinel": {"addresses": [s.addr for s in self.cl.sentinels],
                              "master_name": NAME, "tls": tls}}],
                failover={"hold_ms": 15000})
            wait_for(self.gate, lambda: "master is %s" % self.cl.master.addr in
                     self.gate.output(), what="respgate following the master")
        except BaseException:
            self.h.close(ok=False)
            raise

    def check_sentinels_speak_tls(self):
        """What Sentinel reports with tls-replication yes: TLS ports everywhere."""
        m, cl = self.cl.master, self.cl
        for s in cl.sentinels:
            self.assertEqual(s.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", NAME),
                             [b"127.0.0.1", str(m.tls_port).encode()])
            self.assertEqual(sorted(int(fields(r)["port"]) for r in
                                    s.call("SENTINEL", "REPLICAS", NAME)),
                             sorted(r.tls_port for r in cl.replicas))
            self.assertEqual(sorted(int(fields(p)["port"]) for p in
                                    s.call("SENTINEL", "SENTINELS", NAME)),
                             sorted(p.tls_port for p in cl.sentinels if p is not s))
            # respgate's event subscription came in on the Sentinel's TLS port (it may
            # still be connecting to a Sentinel that did not answer first).
            wait_for(self.gate, lambda: sentinel_clients(s, "psubscribe"),
                     what="respgate's PSUBSCRIBE on Sentinel %s" % s.addr)
            for e in sentinel_clients(s, "psubscribe"):
                self.assertEqual(e["laddr"], s.addr)
        # The master lists its replicas by their TLS ports (replica-announce: the
        # replica's tls-port, with tls-replication yes).
        info = m.info("replication")
        self.assertEqual(sorted(int(dict(kv.split("=") for kv in info["slave%d" % i].split(","))
                                    ["port"]) for i in range(len(cl.replicas))),
                         sorted(r.tls_port for r in cl.replicas))

    def test_a_killed_master_fails_over_under_tls(self):
        self.check_sentinels_speak_tls()
        old = self.cl.master
        load = Load(self.gate.port, writers=4, readers=1)
        load.wait_flowing()
        old.check_commands_came_over_tls(self, {"incr"})
        t_kill = time.monotonic()
        old.kill()
        new = self.cl.wait_switched(old.tls_port)
        wait_for(self.gate, lambda: "-> %s (" % new.addr in self.gate.output(),
                 what="respgate following the new master")
        # Writes resume on the new master, over TLS.
        counts = [len(w.ok_times) for w in load.writers]
        wait_for(self.gate, lambda: all(len(w.ok_times) > n + 20
                                        for w, n in zip(load.writers, counts)),
                 timeout=15, what="every writer writing again")
        load.stop()
        rep = load.report(t_kill)
        print("\nmaster killed, TLS: writes %d, reads %d, write errors %d, read errors %d, "
              "closed %d, lost %d, writes resumed %.3f s after the kill" % (
                  rep["writes"], rep["reads"], len(rep["write_errors"]),
                  len(rep["read_errors"]), rep["closed"], rep["lost"],
                  load.writes_resumed(t_kill) - t_kill), file=sys.stderr)
        self.assertEqual(rep["lost"], 0, "acknowledged writes lost")
        self.assertEqual(rep["closed"], 0)
        self.assertLessEqual(rep["max_write_errors_per_client"], 1, rep["write_errors"])
        for _, e in rep["write_errors"]:
            self.assertIn("may or may not have run", e)
        settled = self.cl.settled_master()
        self.assertEqual(load.missing_on(settled), [], "acknowledged writes not on the master")
        settled.check_commands_came_over_tls(self, {"incr"})
        self.assertEqual(log_lines(self.gate, "certificate verify failed"), [])
        self.assertGreater(handshakes(self.gate, side="upstream", result="ok"), 0)


class SentinelCertificates(UpstreamTestCase):
    """One TLS master and one TLS Sentinel (quorum 1): sentinel.tls is checked like
    upstream.tls."""

    def setUp(self):
        super().setUp()
        try:
            self.master = TLSRedis(self.h, self.certs, auth_clients="yes",
                                   extra=["--tls-replication", "yes"])
            self.sentinel = TLSSentinel(self.h, "%040x" % (0x7f << 100), self.certs)
            self.sentinel.start(self.master, [], [self.sentinel], 1500, 4000, quorum=1)
        except BaseException:
            self.h.close(ok=False)
            raise

    def sentinel_gate(self, sentinel_tls):
        return self.h.respgate(
            self.master.tls_port, upstream={"tls": tls_options(self.certs, cert="client")},
            regions=[{"name": "local", "priority": 1,
                      "sentinel": {"addresses": [self.sentinel.addr], "master_name": NAME,
                                   "tls": sentinel_tls}}],
            failover={"hold_ms": HOLD_MS})

    def test_a_sentinel_of_a_trusted_ca_is_followed_and_one_of_another_is_not(self):
        good = self.sentinel_gate(tls_options(self.certs, cert="client"))
        wait_for(good, lambda: "master is %s" % self.master.addr in good.output(),
                 what="respgate following the master the Sentinel names")
        c = good.client()
        self.assertEqual(c.call("SET", "s", "1"), "OK")
        c.close()
        good.stop()
        bad = self.sentinel_gate(tls_options(self.certs, ca="other-ca", cert="client"))
        self.wait_logged(bad, "certificate verify failed", self.sentinel.addr)
        wait_for(bad, lambda: handshakes(bad, side="upstream", result="failed",
                                         reason="certificate") > 0,
                 what="the Sentinel's failed verification counted")
        self.assertNotIn("master is", bad.output())
        c = bad.client(timeout=10)
        self.assertIsInstance(c.call("SET", "s", "2"), RespError)
        c.close()
        self.assertEqual([e for e in sentinel_clients(self.sentinel)
                          if e["laddr"] == self.sentinel.addr and e["cmd"] != "NULL"], [],
                         "the Sentinel ran a command from a respgate that does not trust it")


if __name__ == "__main__":
    main()
