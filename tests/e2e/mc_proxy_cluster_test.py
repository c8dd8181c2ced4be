"""Two mc-proxy instances on one Redis of the test's own (redis_fixture.py): a ban made on one
(its ban file) refuses the player on the other, and a per-IP status limit counted in Redis
(`shared_limits: {mode: exact}`) holds for both together. A third instance pointed at a port
where nothing listens says so once at start and keeps serving on local state.

Usage: mc_proxy_cluster_test.py PATH_TO_MC_PROXY [unittest args]

The backend is npm minecraft-protocol (tests/e2e/mc/backend.js); pings are raw sockets from
distinct loopback addresses (127.0.0.x). Every wait is a bounded poll."""
import os
import signal
import sys
import unittest

import harness
import mc_proxy_test as mt
from redis_fixture import RedisServer, redis_available

MOTD_HOST = "cl.example.com"


def status_ok(proxy, src, be):
    st = mt.raw_status(proxy.port, MOTD_HOST, 47, src=src)
    return st is not None and mt.text_of(st.get("description")) == be.motd


@unittest.skipUnless(redis_available(), "redis-server is not installed (scripts/setup installs it)")
class McProxyClusterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer().__enter__()
        cls.be = mt.Backend("1.8.8", "on", name="CL").start()
        cls.servers = [mt.server("cl", [MOTD_HOST], [cls.be.address])]
        top = {"redis": {"address": f"127.0.0.1:{cls.redis.port}", "key_prefix": "mc:"},
               "shared_limits": {"mode": "exact", "on_failure": "local"},
               "limits": {"status": {"limit": 4, "window": "60s"}, "message": "Slow down please"}}
        cls.a = mt.Proxy(cls, cls.servers, **top)
        cls.bans = os.path.join(cls.a.dir, "bans.txt")
        with open(cls.bans, "w") as f:
            f.write(mt.BANS_HEADER)
        cls.a.rewrite(bans={"file": cls.bans, "message": "You are banned"})
        cls.a.start()
        cls.b = mt.Proxy(cls, cls.servers, **top).start()
        for p in (cls.a, cls.b):
            ok = mt.poll(lambda: mt.metric(p.metrics(), "rproxy_cluster_redis_up") == 1, 10)
            assert ok, "both instances connect to Redis"

    @classmethod
    def tearDownClass(cls):
        rcs = [cls.a.stop(), cls.b.stop()]
        cls.be.stop()
        cls.redis.__exit__(None, None, None)
        assert rcs == [0, 0], f"mc-proxy exit codes on SIGTERM: {rcs}"

    def test_ban_on_one_refuses_on_the_other(self):
        self.assertTrue(status_ok(self.b, "127.0.0.61", self.be), "before the ban")
        with open(self.bans + ".tmp", "w") as f:
            f.write(mt.BANS_HEADER + "addr 127.0.0.61/32 0 griefing\n")
        os.replace(self.bans + ".tmp", self.bans)
        self.a.prog.signal(signal.SIGHUP)
        refused = mt.poll(lambda: not status_ok(self.b, "127.0.0.61", self.be), 5, 0.2)
        self.assertTrue(refused, "the ban made on A refuses the address on B")
        self.assertFalse(status_ok(self.a, "127.0.0.61", self.be), "and on A")
        self.assertTrue(status_ok(self.b, "127.0.0.62", self.be), "another address still passes on B")
        self.assertEqual(self.redis.command("HLEN", "mc:bans{bans}"), 1, "the ban is in Redis")

    def test_status_limit_is_shared(self):
        src = "127.0.0.63"
        got = [status_ok(p, src, self.be) for p in (self.a, self.b, self.a, self.b)]
        self.assertEqual(got, [True] * 4, "4 pings within the shared limit of 4")
        for p, name in ((self.a, "A"), (self.b, "B")):
            st = mt.raw_status(p.port, MOTD_HOST, 47, src=src)
            self.assertIsNotNone(st, f"the 5th ping on {name} is answered")
            self.assertIn("Slow down please", mt.text_of(st.get("description")), f"and refused on {name}: the count is shared")
        self.assertTrue(status_ok(self.b, "127.0.0.64", self.be), "another address has its own count")
        for p in (self.a, self.b):
            m = p.metrics()
            self.assertEqual(mt.metric(m, "rproxy_cluster_degraded"), 0)
            self.assertEqual(mt.metric(m, "rproxy_cluster_redis_up"), 1)

    def test_unreachable_redis_at_start_is_said_once_and_serving_goes_on(self):
        dead = harness.free_port()
        c = mt.Proxy(self, self.servers, redis={"address": f"127.0.0.1:{dead}", "reconnect_min": "20ms", "reconnect_max": "50ms"},
                     shared_limits={"mode": "exact", "on_failure": "closed"},
                     limits={"status": {"limit": 100, "window": "60s"}}).start()
        try:
            said = mt.poll(lambda: "redis unreachable at start" in c.output(), 10)
            self.assertTrue(said, "a warning at start")
            m = c.metrics()
            self.assertEqual(mt.metric(m, "rproxy_cluster_redis_up"), 0)
            self.assertEqual(mt.metric(m, "rproxy_cluster_degraded"), 1)
            self.assertEqual(mt.metric(m, "rproxy_cluster_redis_transitions_total"), 0)
            # on_failure: closed refuses what the limit counts; the instance itself is up
            st = mt.raw_status(c.port, MOTD_HOST, 47, src="127.0.0.65")
            self.assertIsNotNone(st, "the instance answers")
            self.assertNotEqual(mt.text_of(st.get("description")), self.be.motd, "refused by on_failure: closed")
            # reconnect attempts (20-50 ms apart) went on meanwhile: still one line about Redis
            lines = [l for l in c.output().splitlines() if "redis" in l.lower()]
            self.assertEqual(len(lines), 1, lines)
            self.assertIn(f"127.0.0.1:{dead}", lines[0])
            self.assertIn("on_failure=closed", lines[0])
        finally:
            self.assertEqual(c.stop(), 0)


if __name__ == "__main__":
    mt.BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
