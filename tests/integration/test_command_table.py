"""The command table is generated from Redis' own COMMAND reply; the committed copy
must match what the generator makes from the redis-server the tests run."""
import os
import subprocess
import sys
import unittest

from harness import REPO, Harness, main


class CommandTable(unittest.TestCase):

    def test_committed_table_matches_the_generator_output(self):
        h = Harness()
        try:
            r = h.redis()
            fresh = subprocess.run([sys.executable, os.path.join(REPO, "proxy", "gen_commands.py"),
                                    "--port", str(r.port)], capture_output=True, text=True,
                                   check=True, timeout=30).stdout
        finally:
            h.close()
        with open(os.path.join(REPO, "proxy", "commands.def")) as f:
            committed = f.read()
        self.assertEqual(committed, fresh, "proxy/commands.def is stale: regenerate it with "
                         "proxy/gen_commands.py --port <a Redis 7 port> > proxy/commands.def")


if __name__ == "__main__":
    main()
