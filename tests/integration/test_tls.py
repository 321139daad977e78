"""TLS for clients (issue 16): a TLS listener beside the plaintext one, mutual TLS,
and certificates that rotate without a restart. Certificates are made by the test
with the openssl command line; clients are redis-cli --tls, redis-py ssl=True and raw
TLS sockets."""
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.request

import redis

from harness import Harness, Raw, RespError, encode, free_port, main, wait_until
import unittest


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True)


class Certs:
    """A CA, a server certificate for 127.0.0.1, client certificates of that CA and of
    another one."""

    def __init__(self, d):
        self.d = d
        os.makedirs(d, exist_ok=True)
        for ca in ("ca", "other-ca"):
            openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca + ".key",
                    "-out", ca + ".crt", "-days", "2", "-subj", "/CN=" + ca, cwd=d)
        with open(os.path.join(d, "server.ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        self.issue("server", "ca", ext="server.ext")
        self.issue("client", "ca")
        self.issue("stranger", "other-ca")

    def issue(self, name, ca, ext=None, days=2):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out",
                name + ".csr", "-subj", "/CN=" + name, cwd=self.d)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
                "-CAcreateserial", "-out", name + ".crt", "-days", str(days),
                *(["-extfile", ext] if ext else []), cwd=self.d)

    def path(self, name):
        return os.path.join(self.d, name)


class TLSClient(Raw):
    def __init__(self, port, ca, cert=None, key=None, timeout=10.0):
        ctx = ssl.create_default_context(cafile=ca)
        if cert:
            ctx.load_cert_chain(cert, key)
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        self.buf = b""

    def peer_der(self):
        return self.sock.getpeercert(binary_form=True)


class TLSTestCase(unittest.TestCase):
    tls = {}

    def setUp(self):
        self.h = Harness()
        try:
            self.certs = Certs(os.path.join(self.h.dir, "certs"))
            self.setup_files()
            self.redis = self.h.redis()
            self.tls_port = free_port()
            tls = dict({"listen": "127.0.0.1:%d" % self.tls_port, "cert_file": self.cert_file,
                        "key_file": self.key_file}, **self.tls)
            self.gate = self.h.respgate(self.redis.port, tls=tls)
        except BaseException:
            self.h.close(ok=False)
            raise

    def setup_files(self):
        self.cert_file, self.key_file = self.certs.path("server.crt"), self.certs.path("server.key")

    def tearDown(self):
        self.h.close()

    def metrics(self):
        port = json.load(open(self.gate.config_path))["admin"]["listen"].rsplit(":", 1)[1]
        with urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port, timeout=5) as r:
            out = {}
            for line in r.read().decode().splitlines():
                if line and not line.startswith("#"):
                    k, v = line.rsplit(" ", 1)
                    out[k] = float(v)
            return out

    def client(self, **kw):
        return TLSClient(self.tls_port, self.certs.path("ca.crt"), **kw)


class Listener(TLSTestCase):

    def test_clients_speak_tls_beside_plaintext(self):
        r = subprocess.run(["redis-cli", "--tls", "--cacert", self.certs.path("ca.crt"), "-p",
                            str(self.tls_port), "SET", "k", "v"], capture_output=True, text=True,
                           timeout=10)
        self.assertEqual(r.stdout.strip(), "OK", r.stderr)
        py = redis.Redis(port=self.tls_port, ssl=True, ssl_ca_certs=self.certs.path("ca.crt"))
        self.assertEqual(py.get("k"), b"v")
        pipe = py.pipeline(transaction=True)
        for i in range(500):
            pipe.set("p%d" % i, "x" * (i * 40))  # replies and requests across TLS records
        self.assertEqual(len(pipe.execute()), 500)
        self.assertEqual(py.get("p499"), b"x" * 19960)
        self.assertEqual(self.gate.client().call("GET", "k"), b"v", "plaintext still served")
        c = self.client()
        big = "y" * (3 << 20)  # more than one read's worth and more than a record
        c.send(encode("SET", "big", big) + encode("GET", "big") + encode("PING"))
        self.assertEqual([c.read(), len(c.read()), c.read()], ["OK", 3 << 20, "PONG"])
        # A plaintext client on the TLS port, and a client that leaves mid-handshake.
        s = socket.create_connection(("127.0.0.1", self.tls_port), timeout=5)
        s.sendall(encode("PING"))  # not a ClientHello: at most an alert, then the close
        got = b""
        while True:
            try:
                chunk = s.recv(100)
            except ConnectionResetError:  # closed with the request unread: a reset
                break
            if not chunk:
                break
            got += chunk
        self.assertNotIn(b"PONG", got)
        s.close()
        s = socket.create_connection(("127.0.0.1", self.tls_port), timeout=5)
        s.sendall(b"\x16\x03\x01\x00")
        s.close()
        def failed():
            return sum(v for k, v in self.metrics().items()
                       if k.startswith('respgate_tls_handshakes_total{side="client",result="failed"'))
        wait_until(lambda: failed() >= 1, what="the failed handshake counted")
        m = self.metrics()
        self.assertEqual(m['respgate_tls_handshakes_total{side="client",result="failed",'
                           'reason="closed"}'], 1, "a client that left mid-handshake")
        self.assertGreaterEqual(m['respgate_tls_handshakes_total{side="client",result="ok"}'], 3)
        self.assertGreater(m["respgate_tls_cert_expiry_seconds"], time.time())
        self.assertEqual(self.client().call("PING"), "PONG", "others unaffected")


class MutualTLS(TLSTestCase):
    tls = {"client_auth": "required"}

    def setUp(self):
        self.tls = dict(self.tls)
        super().setUp()

    def setup_files(self):
        super().setup_files()
        self.tls = dict(self.tls, ca_file=self.certs.path("ca.crt"))

    def test_a_client_needs_a_certificate_of_the_ca(self):
        ok = self.client(cert=self.certs.path("client.crt"), key=self.certs.path("client.key"))
        self.assertEqual(ok.call("PING"), "PONG")
        for kw in ({}, {"cert": self.certs.path("stranger.crt"),
                        "key": self.certs.path("stranger.key")}):
            with self.subTest(cert=kw.get("cert")):
                with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
                    c = self.client(**kw)
                    c.call("PING")  # TLS 1.3: the refusal comes with the first read
        self.assertEqual(ok.call("SET", "a", "1"), "OK", "the good client is unaffected")


class Rotation(TLSTestCase):
    """Certificate and key in a directory swapped through "..data", as cert-manager and
    Kubernetes secrets do."""

    def setup_files(self):
        self.dir = os.path.join(self.h.dir, "secret")
        os.makedirs(self.dir)
        self.version = 0
        self.swap("server")
        self.cert_file = os.path.join(self.dir, "tls.crt")
        self.key_file = os.path.join(self.dir, "tls.key")
        os.symlink("..data/tls.crt", self.cert_file)
        os.symlink("..data/tls.key", self.key_file)

    def swap(self, name, cert=None, key=None):
        self.version += 1
        v = os.path.join(self.dir, "..v%d" % self.version)
        os.makedirs(v)
        shutil.copy(cert or self.certs.path(name + ".crt"), os.path.join(v, "tls.crt"))
        shutil.copy(key or self.certs.path(name + ".key"), os.path.join(v, "tls.key"))
        tmp = os.path.join(self.dir, "..data_tmp")
        os.symlink(os.path.basename(v), tmp)
        os.rename(tmp, os.path.join(self.dir, "..data"))

    def test_the_certificate_rotates_under_load_without_an_error(self):
        first = self.client().peer_der()
        stop, errors, done = threading.Event(), [], [0]

        def load(n):
            c = self.client()
            while not stop.is_set():
                c.send(b"".join(encode("INCR", "n%d" % n) for _ in range(20)))
                for _ in range(20):
                    r = c.read()
                    if not isinstance(r, int):
                        errors.append(r)
                done[0] += 1

        threads = [threading.Thread(target=load, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        self.certs.issue("server2", "ca", ext="server.ext", days=30)
        self.swap("server2")
        wait_until(lambda: self.client().peer_der() != first, timeout=10,
                   what="new connections getting the new certificate")
        wait_until(lambda: self.metrics()["respgate_tls_cert_expiry_seconds"] >
                   time.time() + 20 * 86400, what="the expiry metric following")
        # A broken swap keeps the running certificate, and says why.
        bad = os.path.join(self.h.dir, "garbage.pem")
        with open(bad, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
        current = self.client().peer_der()
        self.swap("server2", cert=bad)
        wait_until(lambda: "tls.cert_file" in self.gate.output() and "failed" in self.gate.output(),
                   what="the failed reload logged")
        self.assertEqual(self.client().peer_der(), current, "the running certificate kept")
        stop.set()
        for t in threads:
            t.join(10)
        self.assertEqual(errors, [])
        self.assertGreater(done[0], 10)


if __name__ == "__main__":
    main()
