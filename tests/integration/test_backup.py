"""Backups from a replica, kept and verified by restoring them (issue 18): a snapshot
streamed over the replication protocol from the replica while the master takes
writes, several databases and large values; a restore drill that loads it in a
throw-away redis-server and finds the source's key counts; retention; a replica killed
mid-stream leaving no partial file and a clear error."""
import json
import os
import time
import urllib.error
import urllib.request

from harness import Harness, main, wait_until
import unittest


class Backups(unittest.TestCase):

    def setUp(self):
        self.h = Harness()
        try:
            self.master = self.h.redis()
            self.replica = self.h.replica_of(self.master)
            self.dir = os.path.join(self.h.dir, "backups")
            self.gate = self.h.respgate(self.master.port, regions=[
                {"name": "local", "priority": 1,
                 "nodes": ["127.0.0.1:%d" % n.port for n in (self.master, self.replica)]}],
                backup={"dir": self.dir, "retention": {"count": 2}})
            c = self.master.client()
            for db in range(3):
                c.call("SELECT", db)
                for i in range(300 * (db + 1)):
                    c.call("SET", "k%d" % i, "v" * (i % 50))
            c.call("SELECT", 0)
            c.call("SET", "big", os.urandom(3 << 20))  # a value of 3 MiB that does not compress
            moff = self.master.info("replication")["master_repl_offset"]
            wait_until(lambda: self.replica.info("replication")["slave_repl_offset"] >= moff,
                       what="the replica caught up")
        except BaseException:
            self.h.close(ok=False)
            raise

    def tearDown(self):
        self.h.close()

    def admin(self, path, post=False):
        port = json.load(open(self.gate.config_path))["admin"]["listen"].rsplit(":", 1)[1]
        req = urllib.request.Request("http://127.0.0.1:%s%s" % (port, path),
                                     method="POST" if post else "GET", data=b"" if post else None)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def backups(self):
        return {b["id"]: b for b in self.admin("/backups")[1]["backups"]}

    def idle(self):
        return self.admin("/backups")[1]["running"] is None

    def take(self):
        code, r = self.admin("/backup", post=True)
        self.assertEqual(code, 202, r)
        wait_until(lambda: self.idle() and r["id"] in self.backups(), timeout=60,
                   what="backup %s done" % r["id"])
        return r["id"]

    def test_a_snapshot_from_the_replica_restores_with_the_same_counts(self):
        writer = self.master.client()
        before = self.master.calls("sync") + self.master.calls("psync")
        bid = self.take()
        writer.call("SET", "k1", "overwritten")  # writes go on; the counts stay
        b = self.backups()[bid]
        self.assertEqual(b["source"], "127.0.0.1:%d" % self.replica.port)
        self.assertEqual(b["keys"], {"db0": 302, "db1": 600, "db2": 900})  # + the harness key
        self.assertGreater(b["size"], 3 << 20)
        self.assertEqual(self.master.calls("sync") + self.master.calls("psync"), before,
                         "nothing asked of the master")
        self.assertTrue(os.path.exists(os.path.join(self.dir, "backup-%s.rdb" % bid)))
        code, r = self.admin("/backups/%s/verify" % bid, post=True)
        self.assertEqual(code, 202, r)
        wait_until(lambda: self.idle() and self.backups()[bid]["verified"], timeout=60,
                   what="the drill")
        v = self.backups()[bid]["verified"]
        self.assertTrue(v["ok"], v)
        self.assertGreater(v["restore_seconds"], 0)
        status = self.admin("/status")[1]
        self.assertIsNotNone(status["backup"]["rpo_seconds"])
        self.assertEqual(self.admin("/backups/nope/verify", post=True)[0], 409)
        # Retention: 2 kept, the oldest removed with its manifest.
        second, third = self.take(), self.take()
        self.assertEqual(set(self.backups()), {second, third})
        self.assertFalse(os.path.exists(os.path.join(self.dir, "backup-%s.rdb" % bid)))

    def test_scheduled_backups_with_drills_start_on_reload(self):
        cfg = json.load(open(self.gate.config_path))
        cfg["backup"].update(interval_ms=400, verify=True)
        tmp = self.gate.config_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(cfg, f)
        os.rename(tmp, self.gate.config_path)
        wait_until(lambda: sum(bool(b["verified"] and b["verified"]["ok"])
                               for b in self.backups().values()) >= 2, timeout=60,
                   what="two scheduled backups, each restored by a drill")
        self.assertLessEqual(len(self.backups()), 2, "retention holds on the schedule")

    def test_a_replica_killed_mid_stream_leaves_no_partial_file(self):
        self.replica.client().call("CONFIG", "SET", "rdb-key-save-delay", "2000")  # slow stream
        code, r = self.admin("/backup", post=True)
        self.assertEqual(code, 202, r)
        time.sleep(0.5)
        self.replica.kill()
        wait_until(self.idle, timeout=60, what="the job ending")
        self.assertEqual(self.backups(), {})
        self.assertEqual([f for f in os.listdir(self.dir) if not f.startswith(".drill")], [])
        self.assertIn("backup %s failed (sync)" % r["id"], self.gate.output())
        port = json.load(open(self.gate.config_path))["admin"]["listen"].rsplit(":", 1)[1]
        with urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port, timeout=5) as m:
            self.assertIn('respgate_backup_failures_total{reason="sync"} 1', m.read().decode())
        self.assertEqual(self.gate.client().call("SET", "still", "ok"), "OK", "data plane untouched")


if __name__ == "__main__":
    main()
