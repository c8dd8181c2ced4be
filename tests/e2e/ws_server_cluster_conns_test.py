"""Two apps/ws-server instances on one Redis of the test's own hold one per-address connection
cap together (`conn_limit: { max_per_ip: 2 }` with a `redis:` block): two npm `ws` clients from
one address open on A, a third from it on B is refused (the upgrade answered 429, no
WebSocket); once one of the two on A closes, B admits it.

Clients: tests/e2e/ws_cluster/clients.js (npm `ws` 8, one node process, line by line), from
distinct loopback source addresses. Every wait is a bounded poll.

Usage: ws_server_cluster_conns_test.py PATH_TO_WS_SERVER [unittest args]"""
import os
import sys
import unittest

import harness
from harness import metrics
from redis_fixture import RedisServer, redis_available
from ws_cluster_test import HERE, Clients

BINARY = None
REFUSED = "Unexpected server response: 429"  # what npm ws says of the refused upgrade


def config(port, admin, redis_port):
    return f"""admin: {{ listen: 127.0.0.1:{admin} }}
listen: 127.0.0.1:{port}
anonymous: true
conn_limit: {{ max_per_ip: 2 }}
redis: {{ address: 127.0.0.1:{redis_port}, key_prefix: "wsc:", reconnect_min: 50ms, reconnect_max: 400ms }}
"""


class ClusterConnsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not redis_available():
            raise AssertionError("redis-server is not installed (scripts/setup installs it)")
        if not os.path.isdir(os.path.join(HERE, "node_modules", "ws")):
            raise AssertionError("npm ws is missing: run scripts/setup (tests/e2e/node_modules)")
        cls.redis = RedisServer()
        cls.servers = []
        for name in ("a", "b"):
            port, admin = harness.free_port(), harness.free_port()
            srv = harness.Program(BINARY, config(port, admin, cls.redis.port), args=["--workers", "2"], name="ws-conns-" + name)
            srv.start(wait_ports=[port, admin])
            srv.port, srv.admin = port, admin
            cls.servers.append(srv)
        cls.a, cls.b = cls.servers
        for s in cls.servers:
            harness.wait_until(lambda: metrics(s.admin).get("rproxy_cluster_redis_up") == 1.0, timeout=10, what="connected to Redis")
        cls.c = Clients()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.c.close()
            rcs = [s.stop() for s in cls.servers]
            assert rcs == [0, 0], f"ws-server exit codes on SIGTERM: {rcs}"
        finally:
            cls.redis.kill()

    def open(self, name, srv, src):
        return self.c(cmd="open", name=name, port=srv.port, user=name, local=src, timeout=5000)

    def test_cap_holds_across_instances(self):
        src = "127.0.0.81"
        self.assertEqual(self.open("one", self.a, src), {"ok": True})
        self.assertEqual(self.open("two", self.a, src), {"ok": True})
        self.assertEqual(self.redis.command("ZCARD", f"wsc:conn{{{src}/32}}"), 2, "A's two connections are in Redis")

        r = self.open("three", self.b, src)
        self.assertIn(REFUSED, r.get("error", ""), f"a third from the address on B is refused: {r}")
        self.assertEqual(self.open("other", self.b, "127.0.0.82"), {"ok": True}, "another address on B is served")

        self.assertEqual(self.c.ok(cmd="close", name="one")["closed"]["code"], 1000)  # its slot comes back
        harness.wait_until(lambda: self.open("three", self.b, src) == {"ok": True}, timeout=10, interval=0.1,
                           what="B admits the third once one on A closed")
        self.assertEqual(self.c.ok(cmd="ask", name="two", req={"op": "list"}, timeout=5000)["type"], "ok",
                         "A's other connection still serves")
        for s in self.servers:
            self.assertEqual(metrics(s.admin).get("rproxy_cluster_degraded"), 0.0)


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
