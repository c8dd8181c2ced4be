"""End-to-end: trailers from HTTP/3 backends (groups with `proto: h3`) reach the gateway's
clients. gRPC (Debian python3-grpcio) both sides: a client in front speaking h2c to the gateway
under test, a server behind. Between them the HTTP/3 backend that sends trailers: a second
h3-gateway whose QUIC listener (codec/h3's server side) proxies to the gRPC server over h2c.
(Caddy 2.6, the packaged HTTP/3 server, cannot be that backend: its HTTP/3 server (quic-go)
drops response trailers, so a gRPC reply through it arrives without grpc-status, while the same
Caddy over HTTP/2 sends them; nothing else in Debian serves HTTP/3.) The front
gateway's metrics prove each call went over HTTP/3; curl --http2-prior-knowledge shows
grpc-status arriving as a trailer (after the body), for unary, server-streaming and failing
calls.

  client --h2c--> gateway (h3 group) --HTTP/3--> gateway (quic listener) --h2c--> gRPC server
                                     --HTTP/3--> h3_trailers_server

The second HTTP/3 backend is a small server of our own (h3_gateway_h3_trailers_server.cpp, on
codec/h3's server side) for what the chain above cannot produce: gRPC's Trailers-Only answer
(one HEADERS frame with grpc-status and END_STREAM, no DATA), a body with content-length followed
by trailers, and an echo of the request trailers it received (sent by nghttp --trailer, the
only packaged client that sends request trailers).

Usage: h3_gateway_h3_trailers_test.py PATH_TO_H3_GATEWAY PATH_TO_H3_TRAILERS_SERVER [unittest args]"""
import os
import re
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest
import urllib.request

import harness
from h3_gateway_h2_upstream_test import grpc_server  # (it puts Debian's grpc on sys.path)

BINARY = None
SERVER = None


def metric(admin, name, backend):
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
    m = re.search(rf'^{name}(?:_total)?{{backend="{re.escape(backend)}"}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


class Http3Trailers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        try:
            import grpc  # noqa: F401
        except ImportError:
            harness.require(False, "python3-grpcio is missing: run scripts/setup")
        cls.dir = tempfile.mkdtemp(prefix="rproxy-h3trailers-")
        cert, key = f"{cls.dir}/cert.pem", f"{cls.dir}/key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
        cls.grpc_port = harness.free_port()
        cls.server = grpc_server(cls.grpc_port)
        # The HTTP/3 backend: QUIC on the TLS port, h2c to the gRPC server.
        cls.h3_port, cls.h3_plain, cls.h3_admin = harness.free_port(), harness.free_port(), harness.free_port()
        cls.backend = harness.Program(BINARY, f"""admin: {{ listen: 127.0.0.1:{cls.h3_admin} }}
listen: 127.0.0.1:{cls.h3_plain}
tls:
  listen: 127.0.0.1:{cls.h3_port}
  certificates: [ {{ cert: {cert}, key: {key} }} ]
quic: {{ }}
access_log: false
groups:
  - name: grpc
    proto: h2c
    backends: [ {{ address: 127.0.0.1:{cls.grpc_port} }} ]
http:
  routes:
    - name: all
      prefix: /
      backends: [ {{ group: grpc }} ]
""", args=["--workers", "1"], name="h3-backend").start(wait_ports=[cls.h3_port, cls.h3_plain, cls.h3_admin])
        # Our own HTTP/3 server (UDP: it says when it is bound).
        cls.own_port = harness.free_port()
        cls.own = subprocess.Popen([SERVER, "--port", str(cls.own_port), "--cert", cert, "--key", key],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        ready, _, _ = select.select([cls.own.stdout], [], [], 10)
        line = cls.own.stdout.readline() if ready else b""
        assert line.strip() == b"listening", f"h3_trailers_server did not start: {line!r}"
        # The gateway under test: its backend groups speak HTTP/3; it forwards the request
        # trailer x-checksum (none by default).
        cls.port, cls.admin = harness.free_port(), harness.free_port()
        cls.label = f"127.0.0.1:{cls.h3_port}"
        cls.own_label = f"127.0.0.1:{cls.own_port}"
        cls.gw = harness.Program(BINARY, f"""admin: {{ listen: 127.0.0.1:{cls.admin} }}
listen: 127.0.0.1:{cls.port}
access_log: false
forwarding: {{ allow_trailers: [ X-Checksum ] }}
groups:
  - name: edge
    proto: h3
    h3: {{ ca_file: {cert}, server_name: localhost }}
    backends: [ {{ address: {cls.label} }} ]
  - name: own
    proto: h3
    h3: {{ ca_file: {cert}, server_name: localhost }}
    backends: [ {{ address: {cls.own_label} }} ]
http:
  routes:
    - name: missing
      prefix: /test.Missing/
      backends: [ {{ group: own }} ]
    - name: length
      prefix: /length
      backends: [ {{ group: own }} ]
    - name: echo
      prefix: /echo
      backends: [ {{ group: own }} ]
    - name: once
      prefix: /once/
      backends: [ {{ group: own }} ]
    - name: all
      prefix: /
      backends: [ {{ group: edge }} ]
""", args=["--workers", "1"], name="h3-front").start(wait_ports=[cls.port, cls.admin])

    @classmethod
    def tearDownClass(cls):
        rc, brc = cls.gw.stop(), cls.backend.stop()
        cls.server.stop(0)
        cls.own.kill()
        cls.own.wait()
        if rc != 0:
            cls.gw.dump()
        if brc != 0:
            cls.backend.dump()
        assert (rc, brc) == (0, 0), f"gateway exit codes {rc}, {brc}"

    def channel(self):
        import grpc
        return grpc.insecure_channel(f"127.0.0.1:{self.port}")

    def h3_requests(self):
        return metric(self.admin, "h3gw_upstream_h3_requests", self.label)

    def test_1_unary_status_and_trailing_metadata(self):
        import grpc
        before = self.h3_requests()
        with self.channel() as ch:
            reply, info = ch.unary_unary("/test.Echo/Unary").with_call(b"ping", timeout=10)
        self.assertEqual(reply, b"echo:ping")
        self.assertEqual(info.code(), grpc.StatusCode.OK)
        self.assertIn(("x-served-by", "py"), tuple(info.trailing_metadata()))
        self.assertEqual(self.h3_requests() - before, 1)  # it went over HTTP/3

    def test_2_server_streaming(self):
        before = self.h3_requests()
        with self.channel() as ch:
            call = ch.unary_stream("/test.Echo/Stream")(b"50", timeout=10)
            parts = list(call)
            import grpc
            self.assertEqual(call.code(), grpc.StatusCode.OK)
        self.assertEqual(parts, [f"part-{i}".encode() * 100 for i in range(50)])
        self.assertEqual(self.h3_requests() - before, 1)

    def test_3_non_ok_status_and_message(self):
        import grpc
        before = self.h3_requests()
        with self.channel() as ch:
            with self.assertRaises(grpc.RpcError) as e:
                ch.unary_unary("/test.Echo/Fail")(b"x42", timeout=10)
            self.assertEqual(e.exception.code(), grpc.StatusCode.NOT_FOUND)
            self.assertEqual(e.exception.details(), "no such thing: x42")
            with self.assertRaises(grpc.RpcError) as e:
                ch.unary_unary("/test.Echo/Nope")(b"", timeout=10)
            self.assertEqual(e.exception.code(), grpc.StatusCode.UNIMPLEMENTED)
        self.assertEqual(self.h3_requests() - before, 2)

    def test_4_concurrent_calls_share_the_quic_connection(self):
        conns = metric(self.admin, "h3gw_upstream_h3_connections", self.label)
        with self.channel() as ch:
            call = ch.unary_unary("/test.Echo/Unary")
            futures = [call.future(f"n{i}".encode(), timeout=20) for i in range(50)]
            self.assertEqual([f.result() for f in futures], [f"echo:n{i}".encode() for i in range(50)])
        self.assertLessEqual(metric(self.admin, "h3gw_upstream_h3_connections", self.label) - conns, 1)

    def curl_grpc(self, method, payload, service="test.Echo"):
        """One gRPC call with curl (HTTP/2 with prior knowledge): the response's header blocks
        as curl dumped them (the head, then the trailers after the body), and the body."""
        frame = b"\0" + struct.pack(">I", len(payload)) + payload
        return self.curl(f"/{service}/{method}", frame, "-X", "POST", "-H", "content-type: application/grpc", "-H", "te: trailers")

    def curl(self, path, data, *args):
        dump, body = os.path.join(self.dir, "headers.txt"), os.path.join(self.dir, "body.bin")
        p = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", *args, "--data-binary", "@-", "-D", dump, "-o", body,
                            f"http://127.0.0.1:{self.port}{path}"], input=data, capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(dump, "rb") as f:
            blocks = [b for b in f.read().decode().replace("\r\n", "\n").split("\n\n") if b.strip()]
        with open(body, "rb") as f:
            return blocks, f.read()

    def test_5_curl_sees_grpc_status_as_a_trailer(self):
        # Unary: the head (200, application/grpc, no grpc-status), the message, then the trailers.
        blocks, body = self.curl_grpc("Unary", b"curl")
        self.assertEqual(len(blocks), 2, blocks)
        head, trailers = blocks
        self.assertTrue(head.startswith("HTTP/2 200"), head)
        self.assertIn("content-type: application/grpc", head)
        self.assertNotIn("grpc-status", head)
        self.assertEqual(body, b"\0" + struct.pack(">I", len(b"echo:curl")) + b"echo:curl")
        self.assertIn("grpc-status: 0", trailers.splitlines())
        self.assertIn("x-served-by: py", trailers.splitlines())
        # Server streaming: 3 messages, then the status.
        blocks, body = self.curl_grpc("Stream", b"3")
        self.assertEqual(len(blocks), 2, blocks)
        self.assertNotIn("grpc-status", blocks[0])
        self.assertIn("grpc-status: 0", blocks[1].splitlines())
        self.assertEqual(len(body), sum(5 + len(f"part-{i}".encode() * 100) for i in range(3)))
        # A failing call (the gRPC server answers Trailers-Only): the status still comes last.
        blocks, body = self.curl_grpc("Fail", b"y7")
        self.assertEqual(body, b"")
        self.assertIn("grpc-status: 5", blocks[-1].splitlines(), blocks)
        self.assertIn("grpc-message: no such thing: y7", blocks[-1].splitlines(), blocks)

    # --- against our own HTTP/3 server ---------------------------------------------------------

    def own_requests(self):
        return metric(self.admin, "h3gw_upstream_h3_requests", self.own_label)

    def test_6_trailers_only_answer_is_a_status_the_grpc_client_reads(self):
        # The backend answers Trailers-Only (grpc-status in its one HEADERS frame, no DATA).
        import grpc
        before = self.own_requests()
        with self.channel() as ch:
            with self.assertRaises(grpc.RpcError) as e:
                ch.unary_unary("/test.Missing/Method")(b"x", timeout=10)
        self.assertEqual(e.exception.code(), grpc.StatusCode.UNIMPLEMENTED)
        self.assertEqual(e.exception.details(), "unknown method")
        self.assertEqual(self.own_requests() - before, 1)  # it went over HTTP/3
        # Downstream it is a head, then the status as trailers (as for an HTTP/2 backend).
        blocks, body = self.curl_grpc("Method", b"", service="test.Missing")
        self.assertEqual(body, b"")
        self.assertEqual(len(blocks), 2, blocks)
        self.assertTrue(blocks[0].startswith("HTTP/2 200"), blocks)
        self.assertIn("content-type: application/grpc", blocks[0])
        self.assertNotIn("grpc-status", blocks[0])
        self.assertIn("grpc-status: 12", blocks[1].splitlines())
        self.assertIn("grpc-message: unknown method", blocks[1].splitlines())

    def test_7_trailers_after_a_body_with_content_length_are_kept(self):
        blocks, body = self.curl("/length", b"")
        self.assertEqual(body, b"hello, trailers\n")
        self.assertEqual(len(blocks), 2, blocks)
        self.assertTrue(blocks[0].startswith("HTTP/2 200"), blocks)
        self.assertIn("x-checksum: c0ffee", blocks[1].splitlines())
        self.assertIn("grpc-status: 0", blocks[1].splitlines())
        # Over HTTP/1.1 the body comes chunked, the trailers after its last chunk.
        p = subprocess.run(["curl", "-sS", "--raw", "-H", "te: trailers", f"http://127.0.0.1:{self.port}/length"],
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout.endswith(b"0\r\nx-checksum: c0ffee\r\ngrpc-status: 0\r\n\r\n"), p.stdout)

    def test_8_request_trailers_reach_the_http3_backend(self):
        nghttp = shutil.which("nghttp")
        self.assertIsNotNone(nghttp, "nghttp (Debian nghttp2-client) is missing: run scripts/setup")
        data = os.path.join(self.dir, "upload.bin")
        with open(data, "wb") as f:
            f.write(b"u" * 50000)
        before = self.own_requests()
        # x-checksum is allowed by the gateway's forwarding rules, x-other is not. (nghttp sends
        # content-length, then the trailers: they follow the body all the same.)
        p = subprocess.run([nghttp, "-d", data, "--trailer", "x-checksum: abc123", "--trailer", "x-other: no",
                            f"http://127.0.0.1:{self.port}/echo"], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.decode().splitlines()
        self.assertTrue(lines and lines[0] == "body=" + "u" * 50000, f"{len(p.stdout)} bytes: {p.stdout[:200]!r}")
        self.assertEqual([l for l in lines if l.startswith("trailer ")], ["trailer x-checksum=abc123"])
        self.assertEqual(self.own_requests() - before, 1)

    def fetch(self, method, path, data=None):
        """One HTTP/1.1 request through the gateway with curl (with `data`: that body, from a
        file): (status, body)."""
        body = os.path.join(self.dir, "fetch.bin")
        upload = []
        if data is not None:
            with open(os.path.join(self.dir, "upload.bin"), "wb") as f:
                f.write(data)
            upload = ["--data-binary", "@" + os.path.join(self.dir, "upload.bin"), "-H", "content-type: application/octet-stream"]
        p = subprocess.run(["curl", "-sS", "-X", method, *upload, "-o", body, "-w", "%{http_code}", f"http://127.0.0.1:{self.port}{path}"],
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(body, "rb") as f:
            return int(p.stdout), f.read()

    def own_retries(self):
        return metric(self.admin, "h3gw_upstream_h3_retries", self.own_label)

    def test_9_idempotent_request_goes_again_when_the_backend_drops_the_connection(self):
        # The backend closes its QUIC connection (H3_INTERNAL_ERROR) with the request open: a GET
        # goes again on a new connection and gets its answer; a POST is not sent twice.
        retries = self.own_retries()
        status, body = self.fetch("GET", "/once/drop/get")
        self.assertEqual((status, body), (200, b"body=\n"))
        self.assertEqual(self.own_retries() - retries, 1)
        status, body = self.fetch("POST", "/once/drop/post")
        self.assertEqual(status, 502, body)
        self.assertIn(b"not sent again: the method is not idempotent", body)
        self.assertEqual(self.own_retries() - retries, 1)
        self.assertEqual(self.fetch("POST", "/once/drop/post"), (200, b"body=\n"))  # (the backend answers it now)

    def test_10_a_request_the_backend_rejected_unprocessed_goes_again_whatever_its_method(self):
        # H3_REQUEST_REJECTED: the backend did not process it, so even a POST goes again.
        retries = self.own_retries()
        status, body = self.fetch("POST", "/once/reject/post")
        self.assertEqual((status, body), (200, b"body=\n"))
        self.assertEqual(self.own_retries() - retries, 1)

    def test_11_a_request_with_a_body_goes_again_with_its_body_while_it_is_held(self):
        # The gateway keeps a copy of a request body of up to max_body_buffer (1 MiB here) until
        # the answer's head: a PUT whose connection dropped and a POST the backend rejected go
        # again with their bodies; a larger body is not kept, and its POST gets a 502 saying so.
        retries = self.own_retries()
        payload = bytes(range(32, 127)) * 700  # 66,500 bytes: several QUIC packets
        status, body = self.fetch("PUT", "/once/drop/put-body", data=payload)
        self.assertEqual((status, body), (200, b"body=" + payload + b"\n"))
        self.assertEqual(self.own_retries() - retries, 1)
        status, body = self.fetch("POST", "/once/reject/post-body", data=b"form=1&x=2")
        self.assertEqual((status, body), (200, b"body=form=1&x=2\n"))
        self.assertEqual(self.own_retries() - retries, 2)
        big = b"z" * (1024 * 1024 + 1)
        status, body = self.fetch("POST", "/once/reject/big-body", data=big)
        self.assertEqual(status, 502, body[:200])
        self.assertIn(b"not sent again: its body was larger than max_body_buffer", body)
        self.assertEqual(self.own_retries() - retries, 2)


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    SERVER = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
