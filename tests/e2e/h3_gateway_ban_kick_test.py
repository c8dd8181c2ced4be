"""End-to-end: a ban made through one apps/h3-gateway instance's admin API (the /api/bans query
form) closes the client connections it covers that are already open on another instance sharing
the same Redis (started here: redis_fixture.RedisServer); a kept-alive connection the ban does
not cover keeps serving; h3gw_ban_kicks_total counts the kick.

Clients are raw HTTP/1.1 keep-alive sockets from distinct loopback addresses (127.0.0.x), and
HTTP/3 connections (our ngtcp2 client, h3_gateway_h3_0rtt_client.cpp in its hold mode) from the
same addresses, left idle after one request: the banned one must see the gateway's
CONNECTION_CLOSE (H3_REQUEST_REJECTED, the ban message as its reason), the other stays open.

Usage: h3_gateway_ban_kick_test.py PATH_TO_H3_GATEWAY PATH_TO_H3_CLIENT [unittest args]"""
import http.server
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import unittest

import harness
from h3_gateway_cluster_test import Ok, curl, gateway_config, metric
from redis_fixture import RedisServer, redis_available

BINARY = None
H3_CLIENT = None
H3_REQUEST_REJECTED = 0x10b


def quic_config(tls_port, cert, key):
    """A TLS listener with HTTP/3 on its port (QUIC over UDP)."""
    return f"""tls:
  listen: 127.0.0.1:{tls_port}
  certificates: [ {{ cert: {cert}, key: {key} }} ]
quic: {{ }}
"""


def read_line(proc, timeout):
    """The client's next JSON line, waited for at most `timeout` seconds."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else b""
    assert line, f"no line from the HTTP/3 client in {timeout} s"
    return json.loads(line)


class Http3Hold:
    """An HTTP/3 connection from `src`: GET /guarded, then idle until the gateway closes it."""

    def __init__(self, port, cert, src):
        self.proc = subprocess.Popen([H3_CLIENT, "--port", str(port), "--ca", cert, "--sni", "localhost", "--bind", src,
                                      "--path", "/guarded", "--hold", "60"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.first = read_line(self.proc, 15)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


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
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
        gws, socks, holds = [], [], []
        try:
            for name in ("a", "b"):
                bans = os.path.join(d, f"bans-{name}.txt")
                open(bans, "w").close()
                port, admin, tls = harness.free_port(), harness.free_port(), harness.free_port()
                gw = harness.Program(BINARY, gateway_config(port, admin, backend.server_address[1], redis.port, bans) +
                                     quic_config(tls, cert, key), args=["--workers", "2"], name=f"h3gw-kick-{name}")
                gw.port, gw.admin, gw.tls = port, admin, tls
                gw.start(wait_ports=[port, admin, tls])
                gws.append(gw)
            a, b = gws
            for gw in gws:
                harness.wait_until(lambda: metric(gw.admin, "rproxy_cluster_degraded") == 0, timeout=10, what="connected to Redis")
            banned, other = keep_alive(b.port, "127.0.0.51"), keep_alive(b.port, "127.0.0.52")
            socks = [banned, other]
            self.assertEqual(get(banned, "/guarded"), 200)
            self.assertEqual(get(other, "/open"), 200)
            # HTTP/3 connections to b from the same two addresses, idle after one request.
            h3_banned = Http3Hold(b.tls, cert, "127.0.0.51")
            holds.append(h3_banned)
            h3_other = Http3Hold(b.tls, cert, "127.0.0.52")
            holds.append(h3_other)
            self.assertEqual((h3_banned.first["conn"], h3_banned.first["status"]), ("held", 200), h3_banned.first)
            self.assertEqual((h3_other.first["conn"], h3_other.first["status"]), ("held", 200), h3_other.first)
            self.assertEqual(metric(b.admin, "h3gw_ban_kicks_total"), 0)

            code, body = curl(f"http://127.0.0.1:{a.admin}/api/bans?kind=addr&subject=127.0.0.51&ttl=600&reason=e2e", "-X", "POST")
            self.assertEqual((code, body.strip()), (200, '{"banned":1}'))
            self.assertEqual(banned.recv(1), b"", "the banned client's connection was closed by b")
            # The banned HTTP/3 connection is closed by b, not left to its next request.
            closed = read_line(h3_banned.proc, 15)
            self.assertEqual((closed["conn"], closed["by_peer"], closed["app_error"], closed["code"], closed["reason"]),
                             ("closed", True, True, H3_REQUEST_REJECTED, "banned"), closed)
            self.assertEqual(h3_banned.proc.wait(10), 0)
            harness.wait_until(lambda: metric(b.admin, "h3gw_ban_kicks_total") == 2, what="both kicks counted on b")
            self.assertEqual(metric(a.admin, "h3gw_ban_kicks_total"), 0)  # it had no such connection
            self.assertEqual(get(other, "/guarded"), 200, "a connection the ban does not cover keeps serving")
            self.assertIsNone(h3_other.proc.poll(), "an HTTP/3 connection the ban does not cover stays open")

            code, body = curl(f"http://127.0.0.1:{b.admin}/api/bans?kind=addr&subject=127.0.0.51", "-X", "DELETE")
            self.assertEqual((code, body.strip()), (200, '{"lifted":true}'))
        finally:
            for h in holds:
                h.close()
            for s in socks:
                s.close()
            for gw in gws:
                self.assertEqual(gw.stop(), 0)
            redis.kill()
            backend.shutdown()


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    H3_CLIENT = os.path.abspath(sys.argv.pop(1))
    import h3_gateway_cluster_test
    h3_gateway_cluster_test.BINARY = BINARY
    unittest.main(verbosity=2)
