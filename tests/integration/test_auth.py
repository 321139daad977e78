"""Authentication: respgate asks clients for its own passwords (auth.*), answers
AUTH itself and never forwards it; towards Redis it uses upstream.* on every
connection it opens."""
import unittest

import redis

from harness import Harness, RespError, encode, main


class AuthTestCase(unittest.TestCase):
    upstream_password = "redis-secret"
    extra_options = {}

    def setUp(self):
        self.h = Harness()
        try:
            self.redis = self.h.redis(password="redis-secret")
            self.gate = self.h.respgate(
                self.redis.port,
                upstream={"password": self.upstream_password},
                auth={"password": "gate-secret", "users": [{"name": "app", "password": "app-pw"}]},
                **self.extra_options)
        except BaseException:
            self.h.close(ok=False)
            raise

    def tearDown(self):
        self.h.close()


class ClientAuth(AuthTestCase):

    def test_commands_before_auth_get_noauth_and_quit_still_works(self):
        c = self.gate.client()
        self.assertEqual(c.call("PING"), "NOAUTH Authentication required.")
        self.assertEqual(c.call("GET", "k"), "NOAUTH Authentication required.")
        self.assertEqual(c.call("SHUTDOWN"), "NOAUTH Authentication required.",
                         "the deny-list is not told before AUTH")
        c.send(encode("QUIT"))
        self.assertEqual(c.read_all_until_closed(), b"+OK\r\n")

    def test_wrong_passwords_get_wrongpass_and_right_ones_open_the_door(self):
        c = self.gate.client()
        wrong = "WRONGPASS invalid username-password pair or user is disabled."
        self.assertEqual(c.call("AUTH", "nope"), wrong)
        self.assertEqual(c.call("AUTH", "app", "gate-secret"), wrong)
        self.assertEqual(c.call("AUTH", "redis-secret"), wrong, "Redis' password is not ours")
        self.assertEqual(c.call("AUTH", "gate-secret"), "OK")
        self.assertEqual(c.call("SET", "k", "v"), "OK")
        other = self.gate.client()
        self.assertEqual(other.call("AUTH", "app", "app-pw"), "OK")
        self.assertEqual(other.call("AUTH", "default", "gate-secret"), "OK")
        self.assertEqual(other.call("GET", "k"), b"v")

    def test_auth_is_never_forwarded_to_redis(self):
        before = self.redis.calls("auth")
        c = self.gate.client()
        for _ in range(20):
            c.call("AUTH", "gate-secret")
            c.call("AUTH", "wrong")
        # respgate's own connections authenticate once each; none of the 40 AUTHs got through.
        self.assertLess(self.redis.calls("auth") - before, 10)

    def test_redis_py_with_a_password_works_for_commands_pipelines_and_pubsub(self):
        r = redis.Redis(port=self.gate.port, password="gate-secret")
        self.assertTrue(r.set("a", "1"))
        p = r.pipeline()
        p.incr("a")
        p.get("a")
        self.assertEqual(p.execute(), [2, b"2"])
        ps = r.pubsub()
        ps.subscribe("ch")
        self.assertEqual(ps.get_message(timeout=5)["type"], "subscribe")
        r.publish("ch", "hi")
        self.assertEqual(ps.get_message(timeout=5)["data"], b"hi")
        ps.close()

    def test_hello_with_auth_authenticates_and_hello_without_it_is_refused(self):
        c = self.gate.client()
        self.assertTrue(c.call("HELLO", "2").startswith("NOAUTH HELLO must be called"))
        reply = c.call("HELLO", "2", "AUTH", "app", "app-pw")
        self.assertIsInstance(reply, list)
        self.assertIn(b"redis", reply)
        self.assertEqual(c.call("SET", "h", "1"), "OK")
        self.assertEqual(c.call("HELLO", "2", "AUTH", "app", "bad"),
                         "WRONGPASS invalid username-password pair or user is disabled.")


class Reset(AuthTestCase):

    def test_reset_asks_for_auth_again_and_never_logs_out_a_shared_or_reused_connection(self):
        a = self.gate.client()
        self.assertEqual(a.call("AUTH", "gate-secret"), "OK")
        self.assertEqual(a.call("MULTI"), "OK")  # a pinned connection...
        self.assertEqual(a.call("DISCARD"), "OK")  # ...released to the pool
        self.assertEqual(a.call("SELECT", "2"), "OK")
        self.assertEqual(a.call("RESET"), "RESET")
        self.assertEqual(a.call("GET", "k"), "NOAUTH Authentication required.")
        self.assertEqual(a.call("AUTH", "gate-secret"), "OK")
        self.assertEqual(a.call("SET", "k", "db0"), "OK")
        # Other clients, on shared and reused pinned connections, are still logged in.
        b = self.gate.client()
        self.assertEqual(b.call("AUTH", "gate-secret"), "OK")
        for _ in range(3):
            self.assertEqual(b.call("MULTI"), "OK")
            self.assertEqual(b.call("GET", "k"), "QUEUED")
            self.assertEqual(b.call("EXEC"), [b"db0"])
        self.assertEqual(b.call("GET", "k"), b"db0")


class WrongUpstreamPassword(AuthTestCase):
    upstream_password = "not-it"
    extra_options = {"failover": {"hold_ms": 200}}

    def test_a_refused_upstream_auth_is_an_error_that_says_so(self):
        c = self.gate.client()
        self.assertEqual(c.call("AUTH", "gate-secret"), "OK")
        reply = c.call("SET", "k", "v")
        self.assertIsInstance(reply, RespError)
        self.assertIn("upstream unavailable", reply)
        self.assertIn("WRONGPASS", self.gate.output() + "")


class ClientCommands(unittest.TestCase):

    def test_client_setname_getname_and_id_answer_for_the_client_itself(self):
        h = Harness()
        try:
            r = h.redis()
            gate = h.respgate(r.port)
            a, b = gate.client(), gate.client()
            self.assertIsNone(a.call("CLIENT", "GETNAME"))
            self.assertEqual(a.call("CLIENT", "SETNAME", "worker-a"), "OK")
            self.assertEqual(a.call("CLIENT", "GETNAME"), b"worker-a")
            self.assertIsNone(b.call("CLIENT", "GETNAME"), "names are per client")
            self.assertNotEqual(a.call("CLIENT", "ID"), b.call("CLIENT", "ID"))
            self.assertTrue(a.call("CLIENT", "SETNAME", "has space").startswith("ERR Client names"))
            info = a.call("CLIENT", "INFO").decode()
            self.assertIn("name=worker-a", info)
            self.assertIn("id=%d" % a.call("CLIENT", "ID"), info)
            self.assertIn(b"addr=", a.call("CLIENT", "LIST"))  # Redis answers, on a shared conn
            # Still multiplexed: no connection of its own was opened for the name.
            self.assertEqual(r.calls("client|setname"), 0)
        finally:
            h.close()


if __name__ == "__main__":
    main()
