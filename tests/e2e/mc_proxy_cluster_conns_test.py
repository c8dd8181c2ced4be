"""Two mc-proxy instances on one Redis of the test's own hold one per-IP connection cap together
(`limits.connections_per_ip: 2` with a `redis:` block): two players from one address play
through A, a third from that address is refused on B with the cap's message; once one of the
two leaves, B admits it. With Redis killed, both keep serving with their own caps (each admits
two from an address) and report `rproxy_cluster_degraded 1`.

Usage: mc_proxy_cluster_conns_test.py PATH_TO_MC_PROXY [unittest args]

Players are npm minecraft-protocol clients (tests/e2e/mc/client.js: `login --stay 1` for the ones
who stay, the `serve` process for single logins); the backend is tests/e2e/mc/backend.js. Every
wait is a bounded poll."""
import os
import sys
import unittest

import mc_proxy_ban_kick_test as bk
import mc_proxy_test as mt
from redis_fixture import RedisServer, redis_available

HOST = "kick.example.com"  # the vhost bk.Player logs in with
VERSION = bk.VERSION
CAP_MESSAGE = "Too many connections from your address."


class McProxyClusterConnsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not redis_available():
            raise AssertionError("redis-server is not installed (scripts/setup installs it)")
        cls.redis = RedisServer().__enter__()
        cls.be = mt.Backend(VERSION, "on", name="CC").start()
        servers = [mt.server("cc", [HOST], [cls.be.address])]
        top = {"redis": {"address": f"127.0.0.1:{cls.redis.port}", "key_prefix": "mc:",
                         "reconnect_min": "50ms", "reconnect_max": "200ms"},
               "limits": {"connections_per_ip": 2}}
        cls.a = mt.Proxy(cls, servers, **top).start()
        cls.b = mt.Proxy(cls, servers, **top).start()
        cls.client = mt.Client()
        cls.players = []
        for p in (cls.a, cls.b):
            assert mt.poll(lambda: mt.metric(p.metrics(), "rproxy_cluster_redis_up") == 1, 10), "both instances connect to Redis"

    @classmethod
    def tearDownClass(cls):
        for p in cls.players:
            p.stop()
        cls.client.close()
        rcs = [cls.a.stop(), cls.b.stop()]
        cls.be.stop()
        cls.redis.__exit__(None, None, None)
        assert rcs == [0, 0], f"mc-proxy exit codes on SIGTERM: {rcs}"

    def play(self, proxy, name, src):
        """A player who logs in through `proxy` from `src` and stays."""
        p = bk.Player(proxy.port, name, local=src)
        self.players.append(p)
        p.wait_event("login")
        return p

    def login(self, proxy, name, src):
        return self.client.login(port=proxy.port, vhost=HOST, version=VERSION, username=name, local=src, timeout=8000)

    def test_1_cap_holds_across_instances(self):
        src = "127.0.0.91"
        first = self.play(self.a, "Alpha", src)
        self.play(self.a, "Bravo", src)
        self.assertEqual(self.redis.command("ZCARD", "mc:conn{127.0.0.91/32}"), 2, "A's two connections are in Redis")
        r = self.login(self.b, "Charlie", src)
        self.assertTrue(r.get("kicked"), f"a third from the address on B is refused: {r}")
        self.assertIn(CAP_MESSAGE, r["reason"])
        r = self.login(self.b, "Delta", "127.0.0.92")
        self.assertTrue(r.get("ok"), f"another address on B plays: {r}")

        first.stop()  # Alpha leaves A: its slot goes back
        ok = lambda: (lambda r: r if r.get("ok") else None)(self.login(self.b, "Charlie", src))
        self.assertTrue(mt.poll(ok, 10, 0.2), "once one of the two left A, B admits the third")
        for p in (self.a, self.b):
            self.assertEqual(mt.metric(p.metrics(), "rproxy_cluster_degraded"), 0)

    def test_2_redis_killed_each_instance_keeps_its_own_cap(self):
        self.redis.kill()
        for p in (self.a, self.b):
            self.assertTrue(mt.poll(lambda: mt.metric(p.metrics(), "rproxy_cluster_degraded") == 1, 10),
                            "both report degraded")
        src = "127.0.0.93"
        self.play(self.a, "Echo", src)
        self.play(self.a, "Foxtrot", src)
        r = self.login(self.a, "Golf", src)
        self.assertTrue(r.get("kicked"), f"A still caps the address at 2 on its own: {r}")
        self.assertIn(CAP_MESSAGE, r["reason"])
        r = self.login(self.b, "Golf", src)
        self.assertTrue(r.get("ok"), f"B counts its own connections only while Redis is away: {r}")
        for p in (self.a, self.b):
            self.assertTrue(p.alive())
            self.assertEqual(mt.metric(p.metrics(), "rproxy_cluster_redis_up"), 0)


if __name__ == "__main__":
    mt.BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
