"""deny_commands: commands that would break respgate's view of the nodes (or other
clients') get a clear error and never reach Redis."""
import unittest

from harness import ProxyTestCase, main


class DefaultDenyList(ProxyTestCase):

    def test_dangerous_commands_are_refused_and_never_reach_redis(self):
        c = self.gate.client()
        for cmd in (["SHUTDOWN", "NOSAVE"], ["REPLICAOF", "127.0.0.1", "1"], ["DEBUG", "SLEEP", "0"],
                    ["client", "pause", "10"], ["FAILOVER"]):
            with self.subTest(cmd[0]):
                reply = c.call(*cmd)
                self.assertEqual(reply, "ERR command '%s' is not allowed through respgate "
                                 "(deny_commands)" % cmd[0].lower())
        self.assertTrue(self.redis.ping(), "Redis is still up")
        self.assertEqual(self.redis.calls("client|pause") + self.redis.calls("replicaof"), 0)

    def test_harmless_subcommands_of_the_same_command_still_work(self):
        c = self.gate.client()
        self.assertIn(b"addr=", c.call("CLIENT", "LIST"))
        self.assertEqual(c.call("CLIENT", "SETNAME", "x"), "OK")


class CustomDenyList(ProxyTestCase):
    respgate_options = {"deny_commands": ["flushall", "CONFIG|SET"]}

    def test_a_custom_list_replaces_the_default(self):
        c = self.gate.client()
        self.assertEqual(c.call("SET", "k", "v"), "OK")
        self.assertTrue(c.call("FLUSHALL").startswith("ERR command 'flushall' is not allowed"))
        self.assertTrue(c.call("CONFIG", "SET", "maxmemory", "0").startswith("ERR command 'config'"))
        self.assertEqual(c.call("CONFIG", "GET", "maxmemory"), [b"maxmemory", b"0"])
        self.assertEqual(c.call("GET", "k"), b"v")
        reply = c.call("DEBUG", "HELP")  # no longer refused by respgate (Redis may refuse it)
        self.assertFalse(str(reply).startswith("ERR command 'debug' is not allowed"), reply)


if __name__ == "__main__":
    main()
