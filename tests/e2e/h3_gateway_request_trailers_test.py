"""End-to-end: a request with content-length *and* a trailer section, from HTTP/2 and HTTP/3
clients, keeps its trailers through h3-gateway to every kind of backend.

HTTP/2 and HTTP/3 let a client send trailers after a body of announced length; HTTP/1.1 carries
trailers only after a chunked body. So when the forwarding rules allow a trailer
(`forwarding.allow_trailers`), such a request goes to an HTTP/1.1 backend chunked, its length
dropped; HTTP/2 and HTTP/3 backends get the trailers as a trailing HEADERS frame.

Clients: nghttp (Debian nghttp2-client: `-d FILE` sends content-length, `--trailer` a trailing
HEADERS frame) over h2c, and bench/h3/h3bench (`--body-size` sends content-length, `--trailer`
the trailers) over HTTP/3. Backends: a Python HTTP/1.1 server that records the framing and the
chunked trailers it got; a second gateway reached over h2c (its HTTP/2 listener) in front of
that server; h3_trailers_server (an HTTP/3 server on codec/h3 that echoes request trailers).

  nghttp / h3bench --> gateway --HTTP/1.1--> echo server
                               --h2c-------> gateway (h2 listener) --HTTP/1.1--> echo server
                               --HTTP/3----> h3_trailers_server

Usage: h3_gateway_request_trailers_test.py H3_GATEWAY H3_TRAILERS_SERVER H3BENCH [unittest args]"""
import http.server
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest

import harness
from h3_gateway_security_test import EchoHandler

BINARY = SERVER = H3BENCH = None
BODY = 50000


class RecordingEcho(EchoHandler):
    """The security e2e's echo backend (JSON of what it got, chunked trailers included), which
    also keeps each request's record for clients that do not show the response body."""
    seen = []

    def answer(self):
        body = self.read_body()
        self.seen.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                          "trailers": self.trailers, "body_len": len(body), "port": self.client_address[1]})
        out = json.dumps(self.seen[-1]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = answer


class RequestTrailers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for tool in ("nghttp", "openssl"):
            assert shutil.which(tool), f"{tool} is missing: run scripts/setup"
        cls.dir = tempfile.mkdtemp(prefix="rproxy-reqtrailers-")
        cls.cert, key = f"{cls.dir}/cert.pem", f"{cls.dir}/key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-keyout", key, "-out", cls.cert, "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
        cls.upload = os.path.join(cls.dir, "upload.bin")
        with open(cls.upload, "wb") as f:
            f.write(b"u" * BODY)

        cls.echo = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RecordingEcho)
        threading.Thread(target=cls.echo.serve_forever, daemon=True).start()
        echo = f"127.0.0.1:{cls.echo.server_address[1]}"

        cls.own_port = harness.free_port()
        cls.own = subprocess.Popen([SERVER, "--port", str(cls.own_port), "--cert", cls.cert, "--key", key],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        ready, _, _ = select.select([cls.own.stdout], [], [], 10)
        line = cls.own.stdout.readline() if ready else b""
        assert line.strip() == b"listening", f"h3_trailers_server did not start: {line!r}"

        # The HTTP/2 backend: a second gateway, h2c on its plain listener.
        cls.back_port = harness.free_port()
        cls.back = harness.Program(BINARY, f"""listen: 127.0.0.1:{cls.back_port}
access_log: false
forwarding: {{ allow_trailers: [ X-Checksum ] }}
groups:
  - name: echo
    backends: [ {{ address: {echo} }} ]
http:
  routes:
    - name: all
      prefix: /
      backends: [ {{ group: echo }} ]
""", args=["--workers", "1"], name="reqtrailers-back").start(wait_ports=[cls.back_port])

        # The gateway under test: h2c on its plain port, HTTP/3 on its TLS port; x-checksum is
        # the one request trailer it forwards (none by default).
        cls.port, cls.tls_port = harness.free_port(), harness.free_port()
        cls.gw = harness.Program(BINARY, f"""listen: 127.0.0.1:{cls.port}
tls: {{ listen: 127.0.0.1:{cls.tls_port}, certificates: [ {{ cert: {cls.cert}, key: {key} }} ] }}
quic: {{ }}
access_log: false
forwarding: {{ allow_trailers: [ X-Checksum ] }}
groups:
  - name: echo
    backends: [ {{ address: {echo} }} ]
  - name: h2
    proto: h2c
    backends: [ {{ address: 127.0.0.1:{cls.back_port} }} ]
  - name: h3
    proto: h3
    h3: {{ ca_file: {cls.cert}, server_name: localhost }}
    backends: [ {{ address: 127.0.0.1:{cls.own_port} }} ]
http:
  routes:
    - name: h2
      prefix: /via-h2
      backends: [ {{ group: h2 }} ]
    - name: h3
      prefix: /via-h3
      backends: [ {{ group: h3 }} ]
    - name: all
      prefix: /
      backends: [ {{ group: echo }} ]
""", args=["--workers", "1"], name="reqtrailers-front").start(wait_ports=[cls.port, cls.tls_port])

    @classmethod
    def tearDownClass(cls):
        rc, brc = cls.gw.stop(), cls.back.stop()
        cls.own.kill()
        cls.own.wait()
        cls.echo.shutdown()
        if rc != 0:
            cls.gw.dump()
        if brc != 0:
            cls.back.dump()
        shutil.rmtree(cls.dir, ignore_errors=True)
        assert (rc, brc) == (0, 0), f"gateway exit codes {rc}, {brc}"

    def nghttp(self, path, *args):
        """POST of BODY bytes with content-length, then trailers x-checksum (allowed) and x-other:
        nghttp's output (the response body; with -v, the frames around it)."""
        p = subprocess.run(["nghttp", *args, "-d", self.upload, "--trailer", "x-checksum: abc123", "--trailer", "x-other: no",
                            f"http://127.0.0.1:{self.port}{path}"], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout.decode()

    def test_0_the_http2_client_sends_a_length_then_trailers(self):
        out = self.nghttp("/h1", "-v")
        self.assertIn(f"content-length: {BODY}", out)
        # The last HEADERS frame it sends carries END_STREAM (flags 0x05) and the trailers.
        last = out[out.rindex("send HEADERS frame"):]
        self.assertIn("flags=0x05", last.splitlines()[0])
        self.assertIn("x-checksum: abc123", last)

    def test_1_http2_client_to_http1_backend(self):
        got = json.loads(self.nghttp("/h1"))
        self.assertEqual(got["body_len"], BODY)
        self.assertEqual(got["headers"].get("transfer-encoding"), "chunked")
        self.assertNotIn("content-length", got["headers"])
        self.assertEqual(got["trailers"], {"x-checksum": "abc123"})

    def h3bench(self, *args, n=1, path="/h3-up"):
        return subprocess.run([H3BENCH, "-c", "1", "-m", "1", "-n", str(n), "--ca-file", self.cert, *args,
                               f"https://localhost:{self.tls_port}{path}"], capture_output=True, timeout=60)

    def wait_h3(self):
        """The QUIC listener answers (bounded: it comes up with the TLS one)."""
        harness.wait_until(lambda: self.h3bench().returncode == 0, timeout=10, what="the gateway's HTTP/3 listener")

    def test_2_http3_client_to_http1_backend(self):
        self.wait_h3()
        before = len(RecordingEcho.seen)
        p = self.h3bench("--method", "POST", "--body-size", str(BODY), "--trailer", "x-checksum: abc123", "--trailer", "x-other: no")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        posts = [r for r in RecordingEcho.seen[before:] if r["body_len"] == BODY]
        self.assertEqual(len(posts), 1, RecordingEcho.seen[before:])
        self.assertEqual(posts[0]["headers"].get("transfer-encoding"), "chunked")
        self.assertNotIn("content-length", posts[0]["headers"])
        self.assertEqual(posts[0]["trailers"], {"x-checksum": "abc123"})

    def test_3_http2_client_to_http2_backend(self):
        # Through the second gateway: h2c to it (trailing HEADERS), then chunked to the echo.
        got = json.loads(self.nghttp("/via-h2"))
        self.assertEqual(got["path"], "/via-h2")
        self.assertEqual(got["body_len"], BODY)
        self.assertEqual(got["trailers"], {"x-checksum": "abc123"})

    def test_4_http2_client_to_http3_backend(self):
        out = self.nghttp("/via-h3")
        body = [l for l in out.splitlines() if l.startswith("body=") or l.startswith("trailer ")]
        self.assertTrue(body and body[0] == "body=" + "u" * BODY, f"{len(out)} bytes: {out[:300]!r}")
        self.assertEqual(body[1:], ["trailer x-checksum=abc123"])

    def test_5_http3_streams_share_a_kept_backend_connection(self):
        # One QUIC connection, five GETs one after another: the first connects to the backend,
        # the others take the connection it left (HTTP keep-alive across the streams).
        self.wait_h3()
        before = len(RecordingEcho.seen)
        p = self.h3bench(n=5, path="/kept")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        gets = [r for r in RecordingEcho.seen[before:] if r["path"] == "/kept"]
        self.assertEqual(len(gets), 5)
        self.assertEqual(len({r["port"] for r in gets}), 1, gets)


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    SERVER = os.path.abspath(sys.argv.pop(1))
    H3BENCH = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
