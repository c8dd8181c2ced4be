"""Two apps/h3-gateway instances on one Redis of the test's own hold one per-address connection
cap together (`conn_limit: { max_per_ip: 2 }` with a `redis:` block), over TCP and QUIC alike:
two kept-alive connections from one address on A, and a third from it on B is refused (429 on
HTTP/1.1 and on HTTP/3); once one of the two on A closes, B admits it. Two HTTP/3 connections
held open on A count the same way against a TCP connection on B.

Clients: raw HTTP/1.1 keep-alive sockets from distinct loopback addresses (127.0.0.x) and our
ngtcp2 client (h3_gateway_h3_0rtt_client.cpp in its hold mode). Every wait is a bounded poll.

Usage: h3_gateway_cluster_conns_test.py PATH_TO_H3_GATEWAY PATH_TO_H3_CLIENT [unittest args]"""
import http.server
import os
import socket
import subprocess
import sys
import tempfile
import threading
import unittest

import harness
import h3_gateway_ban_kick_test as bk
from h3_gateway_cluster_test import Ok, metric
from redis_fixture import RedisServer, redis_available

BINARY = None
REFUSED = 429  # the conn_limit refusal on HTTP (codec/http1/reject.hpp)


def gateway_config(port, admin, tls, backend, redis_port, cert, key):
    return f"""admin: {{ listen: 127.0.0.1:{admin} }}
listen: 127.0.0.1:{port}
tls:
  listen: 127.0.0.1:{tls}
  certificates: [ {{ cert: {cert}, key: {key} }} ]
quic: {{ }}
groups:
  - name: main
    backends: [ {{ address: 127.0.0.1:{backend} }} ]
http:
  routes:
    - name: open
      prefix: /
      backends: [ {{ group: main }} ]
      middleware: []
default_middleware: []
conn_limit: {{ max_per_ip: 2 }}
redis:
  address: 127.0.0.1:{redis_port}
  key_prefix: "gwc:"
  command_timeout: 300ms
  connect_timeout: 500ms
  reconnect_min: 50ms
  reconnect_max: 400ms
"""


def request(s):
    """GET / on a kept-alive connection -> the status code, or 0 when the gateway closed it
    without a response."""
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            return 0
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(l.split(b":", 1)[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = s.recv(4096)
        if not chunk:
            break
        body += chunk
    return int(head.split(b" ", 2)[1])


def connect(gw, src):
    return socket.create_connection(("127.0.0.1", gw.port), timeout=10, source_address=(src, 0))


class ClusterConnsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not redis_available():
            raise AssertionError("redis-server is not installed (scripts/setup installs it)")
        cls.redis = RedisServer()
        cls.backend = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
        cls.backend.daemon_threads = True
        threading.Thread(target=cls.backend.serve_forever, daemon=True).start()
        d = tempfile.mkdtemp(prefix="rproxy-h3gw-conns-")
        cls.cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-keyout", key, "-out", cls.cert, "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
        cls.gws, cls.socks, cls.holds = [], [], []
        for name in ("a", "b"):
            port, admin, tls = harness.free_port(), harness.free_port(), harness.free_port()
            gw = harness.Program(BINARY, gateway_config(port, admin, tls, cls.backend.server_address[1], cls.redis.port, cls.cert, key),
                                 args=["--workers", "2"], name=f"h3gw-conns-{name}")
            gw.port, gw.admin, gw.tls = port, admin, tls
            gw.start(wait_ports=[port, admin, tls])
            cls.gws.append(gw)
        cls.a, cls.b = cls.gws
        for gw in cls.gws:
            harness.wait_until(lambda: metric(gw.admin, "rproxy_cluster_redis_up") == 1, timeout=10, what="connected to Redis")

    @classmethod
    def tearDownClass(cls):
        try:
            for h in cls.holds:
                h.close()
            for s in cls.socks:
                s.close()
            rcs = [gw.stop() for gw in cls.gws]
            assert rcs == [0, 0], f"h3-gateway exit codes on SIGTERM: {rcs}"
        finally:
            cls.redis.kill()
            cls.backend.shutdown()

    def keep(self, gw, src):
        s = connect(gw, src)
        self.socks.append(s)
        return s

    def hold(self, gw, src):
        h = bk.Http3Hold(gw.tls, self.cert, src)
        self.holds.append(h)
        return h

    def members(self, src):
        return self.redis.command("ZCARD", f"gwc:conn{{{src}/32}}")

    def test_1_cap_holds_across_instances(self):
        src = "127.0.0.71"
        first, second = self.keep(self.a, src), self.keep(self.a, src)
        self.assertEqual([request(first), request(second)], [200, 200])
        self.assertEqual(self.members(src), 2, "A's two connections are in Redis")

        third = self.keep(self.b, src)
        self.assertEqual(request(third), REFUSED, "a third from the address on B is refused")
        self.assertEqual(third.recv(1), b"", "and its connection closed")
        h3 = self.hold(self.b, src)
        self.assertEqual((h3.first["conn"], h3.first["status"]), ("held", REFUSED), f"HTTP/3 on B is refused too: {h3.first}")
        other = self.keep(self.b, "127.0.0.72")
        self.assertEqual(request(other), 200, "another address on B is served")

        first.close()  # one of A's two goes: its slot comes back

        def admitted():
            with connect(self.b, src) as s:
                return request(s) == 200
        harness.wait_until(admitted, timeout=10, interval=0.1, what="B admits the third once one on A closed")
        self.assertEqual(request(second), 200, "A's other connection still serves")
        for gw in self.gws:
            self.assertEqual(metric(gw.admin, "rproxy_cluster_degraded"), 0)

    def test_2_http3_connections_count_too(self):
        src = "127.0.0.73"
        held = [self.hold(self.a, src), self.hold(self.a, src)]
        self.assertEqual([(h.first["conn"], h.first["status"]) for h in held], [("held", 200)] * 2, [h.first for h in held])
        self.assertEqual(self.members(src), 2, "A's two HTTP/3 connections are in Redis")
        s = self.keep(self.b, src)
        self.assertEqual(request(s), REFUSED, "a TCP connection from the address on B is refused")
        for h in held:
            self.assertIsNone(h.proc.poll(), "the held HTTP/3 connections stay open")


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    bk.H3_CLIENT = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
