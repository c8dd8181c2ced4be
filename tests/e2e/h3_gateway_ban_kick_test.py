"""End-to-end: a ban made through one apps/h3-gateway instance's admin API (the /api/bans query
form) closes the client connections it covers that are already open on another instance sharing
the same Redis (started here: redis_fixture.RedisServer); a kept-alive connection the ban does
not cover keeps serving; h3gw_ban_kicks_total counts the kick.

Clients are raw HTTP/1.1 keep-alive sockets from distinct loopback addresses (127.0.0.x).

Usage: h3_gateway_ban_kick_test.py PATH_TO_H3_GATEWAY [unittest args]"""
import http.server
import os
import socket
import sys
import tempfile
import threading
import unittest

import harness
from h3_gateway_cluster_test import Ok, curl, gateway_config, metric
from redis_fixture import RedisServer, redis_available

BINARY = None


def keep_alive(port, src):
    s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(src, 0))
    return s


def get(s, path):
    """One request on a kept-alive connection -> the status code (the body is "ok\\n")."""
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"ok\n"):
        chunk = s.recv(4096)
        if not chunk:
            raise AssertionError(f"connection ended mid-response: {data!r}")
        data += chunk
    return int(data.split(b" ", 2)[1])


class BanKickTest(unittest.TestCase):
    def test_a_ban_on_one_instance_closes_connections_on_the_other(self):
        if not redis_available():
            self.fail("redis-server is not installed (scripts/setup installs it)")
        redis = RedisServer()
        backend = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
        backend.daemon_threads = True
        threading.Thread(target=backend.serve_forever, daemon=True).start()
        d = tempfile.mkdtemp(prefix="rproxy-h3gw-kick-")
        gws, socks = [], []
        try:
            for name in ("a", "b"):
                bans = os.path.join(d, f"bans-{name}.txt")
                open(bans, "w").close()
                port, admin = harness.free_port(), harness.free_port()
                gw = harness.Program(BINARY, gateway_config(port, admin, backend.server_address[1], redis.port, bans),
                                     args=["--workers", "2"], name=f"h3gw-kick-{name}")
                gw.port, gw.admin = port, admin
                gw.start(wait_ports=[port, admin])
                gws.append(gw)
            a, b = gws
            for gw in gws:
                harness.wait_until(lambda: metric(gw.admin, "rproxy_cluster_degraded") == 0, timeout=10, what="connected to Redis")
            banned, other = keep_alive(b.port, "127.0.0.51"), keep_alive(b.port, "127.0.0.52")
            socks = [banned, other]
            self.assertEqual(get(banned, "/guarded"), 200)
            self.assertEqual(get(other, "/open"), 200)
            self.assertEqual(metric(b.admin, "h3gw_ban_kicks_total"), 0)

            code, body = curl(f"http://127.0.0.1:{a.admin}/api/bans?kind=addr&subject=127.0.0.51&ttl=600&reason=e2e", "-X", "POST")
            self.assertEqual((code, body.strip()), (200, '{"banned":1}'))
            self.assertEqual(banned.recv(1), b"", "the banned client's connection was closed by b")
            harness.wait_until(lambda: metric(b.admin, "h3gw_ban_kicks_total") == 1, what="the kick counted on b")
            self.assertEqual(metric(a.admin, "h3gw_ban_kicks_total"), 0)  # it had no such connection
            self.assertEqual(get(other, "/guarded"), 200, "a connection the ban does not cover keeps serving")

            code, body = curl(f"http://127.0.0.1:{b.admin}/api/bans?kind=addr&subject=127.0.0.51", "-X", "DELETE")
            self.assertEqual((code, body.strip()), (200, '{"lifted":true}'))
        finally:
            for s in socks:
                s.close()
            for gw in gws:
                self.assertEqual(gw.stop(), 0)
            redis.kill()
            backend.shutdown()


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    import h3_gateway_cluster_test
    h3_gateway_cluster_test.BINARY = BINARY
    unittest.main(verbosity=2)
