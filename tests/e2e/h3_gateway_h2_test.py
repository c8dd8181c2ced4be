"""End-to-end tests of apps/h3-gateway over HTTP/2: curl (--http2-prior-knowledge, --http2 over
TLS), nghttp and h2load (nghttp2-client) as clients, small Python HTTP/1.1 backends that count
the whole requests they receive, all started here on loopback. Malformed requests are written as
raw HTTP/2 frames (no client library sends them).

Usage: h3_gateway_h2_test.py PATH_TO_H3_GATEWAY [unittest args]"""
import gzip
import hashlib
import http.server
import io
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import unittest

import harness
import h3_gateway_test as base  # its Echo backend and curl helper (its tests are not run here)

BINARY = None


class Counted(base.Echo):
    """The Echo backend; counts the requests that arrived whole (head and the body its framing
    announced), so a cut or refused request is seen not to have reached it."""

    def respond(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while (size := int(self.rfile.readline().split(b";")[0], 16)) > 0:
                body += self.rfile.read(size)
                if self.rfile.readline() != b"\r\n":
                    raise ValueError("cut")
            while (line := self.rfile.readline()) not in (b"\r\n", b"\n"):
                if not line:
                    raise ValueError("cut")
        else:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            if len(body) != length:
                raise ValueError("cut")
        with self.server.lock:
            self.server.count += 1
        # Echo reads the body again: hand it over as a Content-Length body.
        del self.headers["Transfer-Encoding"]
        del self.headers["Content-Length"]
        self.headers["Content-Length"] = str(len(body))
        real, self.rfile = self.rfile, io.BytesIO(body)
        try:
            super().respond()
        finally:
            self.rfile = real


class Backend:
    def __init__(self, name):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Counted)
        self.server.daemon_threads = True
        self.server.name = name
        self.server.count = 0
        self.server.lock = threading.Lock()
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def count(self):
        with self.server.lock:
            return self.server.count

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def run(*cmd, timeout=60):
    p = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def make_cert(d, name):
    """A self-signed certificate for `name` (its own CA for curl --cacert)."""
    cert, key = os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")
    rc, out = run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                  "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=" + name, "-addext", "subjectAltName=DNS:" + name)
    assert rc == 0, out
    return cert, key


# --- raw HTTP/2 frames (RFC 9113 §4; HPACK literals without indexing, RFC 7541 §6.2.2) --------
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def hpack_int(n, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if n < limit:
        return bytes([first | n])
    out, n = [first | limit], n - limit
    while n >= 128:
        out.append((n & 127) | 128)
        n >>= 7
    return bytes(out + [n])


def hpack(fields):
    out = b""
    for name, value in fields:
        out += b"\x00" + hpack_int(len(name), 7) + name.encode() + hpack_int(len(value), 7) + value.encode()
    return out


def raw_h2(port, fields, data=None, end_with_headers=True):
    """Sends one request on stream 1; returns what the server did with it: ("rst", code) or
    ("status", first header block byte) or ("goaway", code) or ("none", None)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        out = PREFACE + frame(4, 0, 0)  # SETTINGS
        flags = 0x4 | (0x1 if end_with_headers and data is None else 0)
        out += frame(1, flags, 1, hpack(fields))
        if data is not None:
            out += frame(0, 0x1, 1, data)
        s.sendall(out)
        buf = b""
        while True:
            while len(buf) >= 9:
                n = int.from_bytes(buf[:3], "big")
                if len(buf) < 9 + n:
                    break
                kind, sid, payload = buf[3], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF, buf[9:9 + n]
                buf = buf[9 + n:]
                if kind == 3 and sid == 1:
                    return "rst", int.from_bytes(payload[:4], "big")
                if kind == 1 and sid == 1:
                    return "status", payload[0] if payload else None
                if kind == 7:
                    return "goaway", int.from_bytes(payload[4:8], "big")
            chunk = s.recv(65536)
            if not chunk:
                return "none", None
            buf += chunk
    finally:
        s.close()


def h2_status(first):
    """The :status of a response header block's first HPACK byte when it is a static-table
    entry (RFC 7541 Appendix A: 8 ... 14 are :status 200 204 206 304 400 404 500), else None."""
    return {0x88: 200, 0x89: 204, 0x8a: 206, 0x8b: 304, 0x8c: 400, 0x8d: 404, 0x8e: 500}.get(first)


class GatewayH2Test(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.a, cls.b = Backend("a"), Backend("b")
        cls.dir = tempfile.mkdtemp(prefix="rproxy-h3gw-h2-")
        cls.cert_a = make_cert(cls.dir, "a.test")
        cls.cert_b = make_cert(cls.dir, "b.test")
        cls.key = "k-" + os.urandom(12).hex()
        keys = os.path.join(cls.dir, "keys.txt")
        with open(keys, "w") as f:
            f.write(f"{hashlib.sha256(cls.key.encode()).hexdigest()} client-one\n")
        cls.port, cls.admin, cls.tls_port = harness.free_port(), harness.free_port(), harness.free_port()
        routes = """- name: users
  hosts: [ api.test ]
  path: /v1/users/:id
  rewrite: /users/{id}
  backends: [ { group: main } ]
  request_headers: { set: { X-Route: users } }
  response_headers: { set: { Cache-Control: no-store }, remove: [ X-Backend-Debug ] }
- name: private
  prefix: /private
  backends: [ { group: main } ]
  middleware: [ api_keys ]
- name: limited
  prefix: /limited
  backends: [ { group: main } ]
  middleware: [ rate_limit ]
- name: other
  prefix: /other
  backends: [ { group: other } ]
- name: files
  prefix: /
  backends: [ { group: main } ]
"""
        groups = [("main", [cls.a.port], []), ("other", [cls.b.port], [])]
        extra = (f"api_keys: {{ file: {keys} }}\n"
                 "rate_limit:\n  key: [ ip ]\n  tiers: [ { name: default, limit: 2, window: 1m } ]\n"
                 "limits: { max_body: 16MiB }\n"
                 "compress: { prefer: [ gzip ], min_size: 1KiB }\ndefault_middleware: [ compress ]\n"
                 f"tls:\n  listen: 127.0.0.1:{cls.tls_port}\n  certificates:\n"
                 f"    - {{ cert: {cls.cert_a[0]}, key: {cls.cert_a[1]}, server_names: [ a.test ] }}\n"
                 f"    - {{ cert: {cls.cert_b[0]}, key: {cls.cert_b[1]} }}\n")
        cls.gw = harness.Program(BINARY, base.config(cls.port, cls.admin, groups, routes, extra), args=["--workers", "2"],
                                 name="h3gw-h2")
        cls.gw.start(wait_ports=[cls.port, cls.admin, cls.tls_port])
        cls.url = f"http://127.0.0.1:{cls.port}"

    @classmethod
    def tearDownClass(cls):
        rc = cls.gw.stop()
        cls.a.close()
        cls.b.close()
        shutil.rmtree(cls.dir, ignore_errors=True)
        if rc != 0:
            cls.gw.dump()
        assert rc == 0, rc

    def h2(self, path, *args):
        code, heads, body, rc = base.curl(self.url + path, "--http2-prior-knowledge", *args)
        self.assertEqual(rc, 0, (path, body))
        return code, heads, body

    def test_prior_knowledge_routes_like_http1(self):
        code, heads, body = self.h2("/v1/users/42?x=1", "-H", "Host: api.test", "-H", "X-Route: forged")
        self.assertEqual(code, 200, body)
        seen = json.loads(body)
        self.assertEqual((seen["backend"], seen["path"]), ("a", "/users/42?x=1"))
        self.assertEqual(seen["headers"].get("x-route"), "users")
        self.assertEqual(seen["headers"].get("host"), "api.test")
        self.assertEqual(seen["headers"].get("x-forwarded-for"), "127.0.0.1")
        self.assertEqual(heads.get("cache-control"), "no-store")
        self.assertNotIn("x-backend-debug", heads)
        self.assertIn("x-request-id", heads)
        # The same port still speaks HTTP/1.1.
        code, _, body, rc = base.curl(self.url + "/other/x", "--http1.1")
        self.assertEqual((rc, code, json.loads(body)["backend"]), (0, 200, "b"))
        rc, out = run("curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version}", self.url + "/x")
        self.assertEqual((rc, out), (0, "2"))

    def test_tls_alpn_and_sni(self):
        for name, (cert, _) in (("a.test", self.cert_a), ("b.test", self.cert_b)):
            # --cacert with that name's own certificate: the handshake only verifies if SNI chose it.
            rc, out = run("curl", "-sS", "--http2", "--cacert", cert, "--resolve", f"{name}:{self.tls_port}:127.0.0.1",
                          "-w", "\n%{http_version} %{http_code}", f"https://{name}:{self.tls_port}/other/tls")
            self.assertEqual(rc, 0, out)
            body, _, tail = out.rpartition("\n")
            self.assertEqual(tail, "2 200")
            self.assertEqual(json.loads(body)["path"], "/other/tls")
        # A client without HTTP/2: ALPN http/1.1, the same routes.
        rc, out = run("curl", "-sS", "--http1.1", "--cacert", self.cert_a[0], "--resolve", f"a.test:{self.tls_port}:127.0.0.1",
                      "-w", "\n%{http_version} %{http_code}", f"https://a.test:{self.tls_port}/other/tls1")
        self.assertEqual(rc, 0, out)
        body, _, tail = out.rpartition("\n")
        self.assertEqual((tail, json.loads(body)["path"]), ("1.1 200", "/other/tls1"))
        # The wrong certificate for the name fails verification (the check above is not vacuous).
        rc, out = run("curl", "-sS", "--http2", "--cacert", self.cert_a[0], "--resolve", f"b.test:{self.tls_port}:127.0.0.1",
                      f"https://b.test:{self.tls_port}/")
        self.assertNotEqual(rc, 0, out)

    def test_certificates_reload_with_the_config(self):
        d = tempfile.mkdtemp(prefix="rproxy-h3gw-h2-reload-")
        port, admin, tls = harness.free_port(), harness.free_port(), harness.free_port()
        first = make_cert(d, "r.test")
        second_dir = os.path.join(d, "second")
        os.mkdir(second_dir)
        second = make_cert(second_dir, "r.test")
        routes = "- name: all\n  prefix: /\n  backends: [ { group: main } ]\n"

        def cfg(cert):
            return base.config(port, admin, [("main", [self.a.port], [])], routes,
                               f"tls:\n  listen: 127.0.0.1:{tls}\n  certificates: [ {{ cert: {cert[0]}, key: {cert[1]} }} ]\n")

        def fetch(ca):
            return run("curl", "-sS", "--http2", "--cacert", ca, "--resolve", f"r.test:{tls}:127.0.0.1", "-o", "/dev/null",
                       "-w", "%{http_code}", f"https://r.test:{tls}/")

        gw = harness.Program(BINARY, cfg(first), name="h3gw-h2-reload").start(wait_ports=[port, admin, tls])
        try:
            self.assertEqual(fetch(first[0]), (0, "200"))
            self.assertNotEqual(fetch(second[0])[0], 0)
            gw.write_config(cfg(second))
            gw.signal(signal.SIGHUP)
            harness.wait_until(lambda: fetch(second[0]) == (0, "200"), what="the new certificate after the reload")
            self.assertNotEqual(fetch(first[0])[0], 0)
            # A bad certificate file is refused (by the config's validation, at its line); the
            # previous one keeps serving.
            bad = os.path.join(d, "bad.pem")
            with open(bad, "w") as f:
                f.write("not a certificate\n")
            gw.write_config(cfg((bad, second[1])))
            gw.signal(signal.SIGHUP)
            harness.wait_until(lambda: "config reload failed" in gw.output(), what="the bad reload logged")
            self.assertIn("bad.pem", gw.output())
            self.assertEqual(fetch(second[0]), (0, "200"))
        finally:
            self.assertEqual(gw.stop(), 0)
            shutil.rmtree(d, ignore_errors=True)

    def test_nghttp_concurrent_streams(self):
        urls = [f"{self.url}/s/{i}" for i in range(12)]
        rc, out = run("nghttp", "-n", "-s", *urls)
        self.assertEqual(rc, 0, out)
        rows = re.findall(r"^\s*\d+\s+\S+\s+\S+\s+\S+\s+(\d{3})\s+\S+\s+(/s/\d+)$", out, re.M)
        self.assertEqual(sorted(p for _, p in rows), sorted(f"/s/{i}" for i in range(12)), out)
        self.assertTrue(all(c == "200" for c, _ in rows), out)

    def test_h2load_no_failures(self):
        rc, out = run("h2load", "-c4", "-m10", "-n2000", self.url + "/load", timeout=120)
        self.assertEqual(rc, 0, out)
        m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
        self.assertIsNotNone(m, out)
        self.assertEqual(m.groups(), ("2000", "2000", "2000", "2000", "0", "0"), out)
        self.assertIn("status codes: 2000 2xx", out)

    def test_large_bodies_both_ways(self):
        data = os.urandom(6 * 1024 * 1024 + 7)
        path = os.path.join(self.dir, "up.bin")
        with open(path, "wb") as f:
            f.write(data)
        code, _, body = self.h2("/up", "--data-binary", "@" + path)
        self.assertEqual(code, 200)
        seen = json.loads(body)
        self.assertEqual((seen["body_len"], seen["body_sha"]), (len(data), hashlib.sha256(data).hexdigest()))
        code, heads, body = self.h2("/big")
        self.assertEqual((code, len(body), body.strip(b"y")), (200, 8 * 1024 * 1024, b""))
        self.assertEqual(heads.get("content-length"), str(8 * 1024 * 1024))

    def test_compressed_response_over_h2(self):
        # The compression stage transforms the body: no Content-Length, gzip that Python decodes.
        d = tempfile.mkdtemp(prefix="rproxy-h2-gz-")
        try:
            out = os.path.join(d, "b")
            rc, err = run("curl", "-sS", "--http2-prior-knowledge", "-H", "Accept-Encoding: gzip", "-D", os.path.join(d, "h"),
                          "-o", out, self.url + "/big")
            self.assertEqual(rc, 0, err)
            with open(os.path.join(d, "h")) as f:
                heads = f.read().lower()
            self.assertIn("content-encoding: gzip", heads)
            self.assertNotIn("content-length", heads)
            with open(out, "rb") as f:
                body = gzip.decompress(f.read())
            self.assertEqual((len(body), body.strip(b"y")), (8 * 1024 * 1024, b""))
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def test_refusals_are_the_http1_json(self):
        before = self.a.count
        code, _, body = self.h2("/private/x")
        self.assertEqual((code, json.loads(body)["error"], json.loads(body)["route"]), (401, "unauthorized", "private"))
        code, _, body = self.h2("/private/x", "-H", f"X-API-Key: {self.key}")
        self.assertEqual(code, 200, body)
        self.assertNotIn("x-api-key", json.loads(body)["headers"])  # the key is not passed on
        self.assertNotIn(self.key.encode(), body)
        for i in range(2):
            code, heads, _ = self.h2("/limited/x")
            self.assertEqual((code, heads.get("x-ratelimit-remaining")), (200, str(1 - i)))
        code, heads, body = self.h2("/limited/x")
        self.assertEqual((code, json.loads(body)["error"]), (429, "rate_limited"))
        self.assertTrue(int(heads.get("retry-after", "0")) > 0, heads)
        self.assertEqual(self.a.count, before + 3)  # the two refusals never reached the backend

    def test_backend_dying_mid_response_resets_that_stream_only(self):
        rc, out = run("curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null", self.url + "/die-mid")
        self.assertNotEqual(rc, 0)
        self.assertIn("INTERNAL_ERROR", out)
        # On one connection: the dying stream is reset, the others complete.
        rc, out = run("nghttp", "-v", self.url + "/one", self.url + "/die-mid", self.url + "/two")
        self.assertIn("recv RST_STREAM", out)
        self.assertIn("error_code=INTERNAL_ERROR", out)
        self.assertIn('"path": "/one"', out)
        self.assertIn('"path": "/two"', out)
        code, _, body = self.h2("/after")
        self.assertEqual((code, json.loads(body)["path"]), (200, "/after"))

    def test_malformed_and_smuggling_never_reach_the_backend(self):
        port = self.port
        good = [(":method", "POST"), (":scheme", "http"), (":path", "/smuggle"), (":authority", "x.test")]
        cases = {
            "content-length larger than the body": (good + [("content-length", "10")], b"12345"),
            "content-length smaller than the body": (good + [("content-length", "2")], b"12345"),
            "connection-specific field": (good + [("connection", "keep-alive")], None),
            "transfer-encoding": (good + [("transfer-encoding", "chunked")], b"5\r\nhello\r\n0\r\n\r\n"),
            "uppercase field name": (good + [("X-Upper", "1")], None),
            "te other than trailers": (good + [("te", "gzip")], None),
            "host differing from :authority": (good + [("host", "other.test")], None),
            "request-target not a path": ([(":method", "GET"), (":scheme", "http"), (":path", "x y"), (":authority", "x.test")], None),
            "a fragment in :path": ([(":method", "GET"), (":scheme", "http"), (":path", "/a#b"), (":authority", "x.test")], None),
            "CR LF in a value": (good + [("x-a", "1\r\nx-b: 2")], None),
            "CONNECT (a tunnel)": ([(":method", "CONNECT"), (":authority", "x.test:443")], None),
            "missing :path": ([(":method", "GET"), (":scheme", "http"), (":authority", "x.test")], None),
        }
        before = self.a.count
        for what, (fields, data) in cases.items():
            with self.subTest(what):
                kind, value = raw_h2(port, fields, data)
                print(f"  {what}: {kind} {value if kind != 'status' else h2_status(value)}", file=sys.stderr)
                if kind == "status":
                    status = h2_status(value)
                    self.assertTrue(status is None or 400 <= status < 500, (what, hex(value)))
                    self.assertNotEqual(value, 0x88, what)  # not a 200
                else:
                    self.assertIn(kind, ("rst", "goaway"), what)
        # A well-formed request on the same path does reach it: the counter works.
        self.assertEqual(self.a.count, before, "a malformed request reached the backend")
        kind, value = raw_h2(port, good + [("content-length", "5")], b"12345")
        self.assertEqual((kind, h2_status(value)), ("status", 200))
        self.assertEqual(self.a.count, before + 1)


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
