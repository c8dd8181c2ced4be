"""Two mc-proxy instances on one Redis of the test's own in front of one wake-on-join server:
a player plays through A, nobody through B. B has no players of its own for far longer than
idle_timeout, yet it does not stop the server while A's player stays (the instances share their
player counts: cluster/shared_players.hpp). Once the player leaves, the server is stopped after
idle_timeout.

Both instances stop the idle server before the player joins (it is up from the start, with
nobody on it) and see it sleeping from then on; a status ping through B that reaches the backend
shows B the server online again, so B alone would stop it idle_timeout later. The test looks at
what each instance decides (its log) from the moment B has learned of A's player.

Usage: mc_proxy_cluster_wake_test.py PATH_TO_MC_PROXY [unittest args]

The server is an npm minecraft-protocol backend (tests/e2e/mc/backend.js) that is already up;
its start and stop commands only append a line to a file, which the test reads. Every wait is a
bounded poll."""
import os
import sys
import tempfile
import time
import unittest

import mc_proxy_ban_kick_test as bk
import mc_proxy_test as mt
from redis_fixture import RedisServer, redis_available

HOST = "kick.example.com"  # the vhost bk.Player logs in with
IDLE = 2.0                 # idle_timeout, seconds
KEPT = "wake: clients on other instances keep the backends awake"
STOPPING = "wake: no clients for the idle timeout; stopping the backend"


class McProxyClusterWakeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not redis_available():
            raise AssertionError("redis-server is not installed (scripts/setup installs it)")
        cls.redis = RedisServer().__enter__()
        cls.be = mt.Backend(bk.VERSION, "on", name="CW").start()
        cls.tmp = tempfile.mkdtemp(prefix="rproxy-mc-cluster-wake-")
        cls.log = os.path.join(cls.tmp, "commands")
        servers = [mt.server("cw", [HOST], [cls.be.address],
                             wake={"start_command": f"echo start >> {cls.log}", "stop_command": f"echo stop >> {cls.log}",
                                   "idle_timeout": f"{int(IDLE * 1000)}ms", "start_timeout": "30s"})]
        top = {"redis": {"address": f"127.0.0.1:{cls.redis.port}", "key_prefix": "mc:",
                         "reconnect_min": "50ms", "reconnect_max": "200ms"}}
        cls.a = mt.Proxy(cls, servers, **top).start()
        cls.b = mt.Proxy(cls, servers, **top).start()
        cls.players = []
        for p in (cls.a, cls.b):
            assert mt.poll(lambda: mt.metric(p.metrics(), "rproxy_cluster_redis_up") == 1, 10), "both instances connect to Redis"

    @classmethod
    def tearDownClass(cls):
        for p in cls.players:
            p.stop()
        rcs = [cls.a.stop(), cls.b.stop()]
        cls.be.stop()
        cls.redis.__exit__(None, None, None)
        assert rcs == [0, 0], f"mc-proxy exit codes on SIGTERM: {rcs}"

    def commands(self):
        try:
            with open(self.log) as f:
                return f.read().split()
        except FileNotFoundError:
            return []

    def test_no_stop_while_a_player_plays_through_another_instance(self):
        player = bk.Player(self.a.port, "Miner", local="127.0.0.95")
        self.players.append(player)
        player.wait_event("login")
        mark_a = len(self.a.output())  # A has a player from here on
        self.assertTrue(mt.poll(lambda: self.redis.command("HLEN", "mc:players{cw}") == 1, 5, 0.1),
                        "A publishes its player count (B, with none, writes no field)")
        [value] = self.redis.command("HVALS", "mc:players{cw}")
        self.assertTrue(value.startswith("1 "), f"one player, then when the count lapses: {value}")
        self.assertTrue(mt.poll(lambda: KEPT in self.b.output(), 10, 0.1), "B learns that A's player keeps the server awake")
        mark_b = self.b.output().index(KEPT)
        st = mt.raw_status(self.b.port, HOST, 765, src="127.0.0.96")
        self.assertEqual(mt.text_of(st["description"]) if st else None, self.be.motd,
                         "a ping through B reaches the backend: B sees the server online (idle on B from now)")

        # B's own idle time passes idle_timeout several times over: neither instance stops the server
        t0 = time.monotonic()
        stops = lambda: self.a.output()[mark_a:].count(STOPPING) + self.b.output()[mark_b:].count(STOPPING)
        self.assertFalse(mt.poll(lambda: stops() > 0, 4 * IDLE, 0.2),
                         f"no stop while A's player plays:\nA: {self.a.output()[mark_a:]}\nB: {self.b.output()[mark_b:]}")
        self.assertGreater(time.monotonic() - t0, 3 * IDLE)
        self.assertIsNone(player.proc.poll(), "the player is still connected")

        # the player leaves: the server is stopped once it has been idle everywhere for idle_timeout
        before = self.commands().count("stop")
        player.stop()
        left = time.monotonic()
        self.assertTrue(mt.poll(lambda: stops() > 0, 10 * IDLE, 0.1), "an instance stops the server once nobody plays")
        # (B counts its idle time from its last tick that saw A's player: up to one 1 s tick before the leave)
        self.assertGreater(time.monotonic() - left, IDLE - 1.2, "not before idle_timeout")
        self.assertTrue(mt.poll(lambda: self.commands().count("stop") > before, 5, 0.1), "stop_command ran")
        self.assertNotIn("start", self.commands(), "the server was up all along: never started")


if __name__ == "__main__":
    mt.BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
