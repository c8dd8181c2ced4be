"""End-to-end tests of response compression (middleware/compress.hpp) in apps/h3-gateway: curl
(--compressed: its own zlib, brotli and zstd decoders) and Python's gzip module decode what the
gateway sends; a small Python backend started here serves JSON, PNG, SSE and chunked bodies.

Usage: compress_test.py PATH_TO_H3_GATEWAY [unittest args]"""
import gzip
import hashlib
import http.client
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest

import harness

BINARY = None

# A large JSON document, deterministic, compressible (about 400 KiB).
LARGE = json.dumps([{"id": i, "name": f"user-{i}", "email": f"user{i}@example.com", "tags": ["a", "b", str(i % 7)],
                     "score": (i * 7919) % 1000} for i in range(5000)]).encode()
SMALL = b'{"ok":true}'
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
TEXT = b"".join(b"line %d of a chunked text body\n" % i for i in range(20000))


class Backend(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_whole(self, body, ctype, extra=()):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        if self.path.endswith("/large.json"):
            self.send_whole(LARGE, "application/json", [("ETag", '"v1"')])
        elif self.path.endswith("/small.json"):
            self.send_whole(SMALL, "application/json")
        elif self.path.endswith("/image.png"):
            self.send_whole(PNG, "image/png")
        elif self.path.endswith("/encoded.txt"):
            self.send_whole(gzip.compress(TEXT), "text/plain", [("Content-Encoding", "gzip")])
        elif self.path.endswith("/chunked.txt"):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(TEXT), 7000):
                piece = TEXT[i:i + 7000]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        elif self.path.endswith("/events"):
            # Server-Sent Events: the second event waits until the client has decoded the first.
            st = self.server.sse
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i, ev in enumerate((b"data: one\n\n", b"data: two\n\n", b"data: three\n\n")):
                if i > 0:
                    st["in_time"].append(st["seen"][i - 1].wait(20))  # bounded: a stuck client fails the test
                self.wfile.write(b"%x\r\n%s\r\n" % (len(ev), ev))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_whole(b"not found", "text/plain")

    do_HEAD = do_GET


def curl(url, *args, timeout=30):
    """(status, {lowercase header: value}, body bytes, curl exit code)."""
    d = tempfile.mkdtemp(prefix="rproxy-curl-")
    hfile, bfile = os.path.join(d, "h"), os.path.join(d, "b")
    p = subprocess.run(["curl", "-sS", "--max-time", str(timeout), "-o", bfile, "-D", hfile, "-w", "%{http_code}", url, *args],
                       capture_output=True, text=True, timeout=timeout + 10)
    heads = {}
    with open(hfile, "rb") as f:
        blocks = [b for b in f.read().decode("latin-1").split("\r\n\r\n") if b.strip()]
    for line in (blocks[-1].split("\r\n")[1:] if blocks else []):
        k, _, v = line.partition(":")
        heads.setdefault(k.strip().lower(), []).append(v.strip())
    with open(bfile, "rb") as f:
        body = f.read() if os.path.exists(bfile) else b""
    shutil.rmtree(d, ignore_errors=True)
    code = int(p.stdout[-3:]) if p.stdout[-3:].isdigit() else 0
    return code, {k: ", ".join(v) for k, v in heads.items()}, body, p.returncode


class CompressTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.backend = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Backend)
        cls.backend.daemon_threads = True
        threading.Thread(target=cls.backend.serve_forever, daemon=True).start()
        cls.port, cls.admin = harness.free_port(), harness.free_port()
        cfg = (f"admin: {{ listen: 127.0.0.1:{cls.admin} }}\nlisten: 127.0.0.1:{cls.port}\n"
               f"groups:\n  - name: main\n    backends: [ {{ address: 127.0.0.1:{cls.backend.server_address[1]} }} ]\n"
               "http:\n  routes:\n"
               "    - { name: plain, prefix: /plain, backends: [ { group: main } ] }\n"
               "    - { name: zipped, prefix: /, backends: [ { group: main } ], middleware: [ compress ] }\n"
               "compress: { prefer: [ zstd, br, gzip ], gzip_level: 6, br_level: 5, zstd_level: 3, min_size: 1KiB }\n")
        cls.gw = harness.Program(BINARY, cfg, args=["--workers", "2"], name="h3gw-compress")
        cls.gw.start(wait_ports=[cls.port, cls.admin])
        cls.url = f"http://127.0.0.1:{cls.port}"

    @classmethod
    def tearDownClass(cls):
        rc = cls.gw.stop()
        cls.backend.shutdown()
        cls.backend.server_close()
        if rc != 0:
            cls.gw.dump()
        assert rc == 0, rc

    def get(self, path, *args):
        code, heads, body, rc = curl(self.url + path, *args)
        self.assertEqual(rc, 0, (path, body[:200]))
        return code, heads, body

    def test_large_json_decoded_by_curl_equals_the_backends_bytes(self):
        for coding in ("gzip", "br", "zstd"):
            with self.subTest(coding=coding):
                # raw: what the gateway sends
                code, heads, raw = self.get("/api/large.json", "-H", f"Accept-Encoding: {coding}")
                self.assertEqual(code, 200)
                self.assertEqual(heads.get("content-encoding"), coding)
                self.assertNotIn("content-length", heads)
                self.assertEqual(heads.get("transfer-encoding"), "chunked")
                self.assertIn("Accept-Encoding", heads.get("vary", ""))
                self.assertEqual(heads.get("etag"), 'W/"v1"')
                self.assertLess(len(raw), len(LARGE) // 4)
                # decoded by curl's own decoder
                code, heads, body = self.get("/api/large.json", "--compressed", "-H", f"Accept-Encoding: {coding}")
                self.assertEqual(heads.get("content-encoding"), coding)
                self.assertEqual(hashlib.sha256(body).hexdigest(), hashlib.sha256(LARGE).hexdigest())
                if coding == "gzip":  # and by Python's
                    self.assertEqual(gzip.decompress(raw), LARGE)

    def test_curl_default_accept_encoding_gets_the_servers_first_choice(self):
        code, heads, body = self.get("/api/large.json", "--compressed")  # curl: deflate, gzip, br, zstd
        self.assertEqual(heads.get("content-encoding"), "zstd")
        self.assertEqual(body, LARGE)
        code, heads, body = self.get("/api/large.json", "--compressed", "-H", "Accept-Encoding: zstd;q=0.5, gzip")
        self.assertEqual(heads.get("content-encoding"), "gzip")
        self.assertEqual(body, LARGE)

    def test_http10_client_gets_the_body_ended_by_the_close(self):
        code, heads, body = self.get("/api/large.json", "--http1.0", "--compressed", "-H", "Accept-Encoding: gzip")
        self.assertEqual((code, heads.get("content-encoding")), (200, "gzip"))
        self.assertNotIn("content-length", heads)
        self.assertNotIn("transfer-encoding", heads)
        self.assertEqual(body, LARGE)

    def test_chunked_text_of_unknown_length_is_compressed(self):
        code, heads, body = self.get("/api/chunked.txt", "--compressed", "-H", "Accept-Encoding: br")
        self.assertEqual((code, heads.get("content-encoding")), (200, "br"))
        self.assertEqual(body, TEXT)

    def test_left_alone(self):
        cases = [("/api/small.json", SMALL, "application/json"), ("/api/image.png", PNG, "image/png"),
                 ("/plain/large.json", LARGE, "application/json")]  # a route without compress
        for path, expected, ctype in cases:
            with self.subTest(path=path):
                code, heads, body = self.get(path, "-H", "Accept-Encoding: gzip, br, zstd")
                self.assertEqual(code, 200)
                self.assertNotIn("content-encoding", heads)
                self.assertEqual(heads.get("content-length"), str(len(expected)))
                self.assertEqual(heads.get("content-type"), ctype)
                self.assertEqual(body, expected)
        # already encoded by the backend: passed as it is
        code, heads, body = self.get("/api/encoded.txt", "-H", "Accept-Encoding: gzip, br, zstd")
        self.assertEqual(heads.get("content-encoding"), "gzip")
        self.assertEqual(gzip.decompress(body), TEXT)
        # no Accept-Encoding: identity, but Vary says it could have been otherwise
        code, heads, body = self.get("/api/large.json")
        self.assertNotIn("content-encoding", heads)
        self.assertIn("Accept-Encoding", heads.get("vary", ""))
        self.assertEqual(heads.get("etag"), '"v1"')
        self.assertEqual(body, LARGE)

    def test_head_untouched(self):
        code, heads, body = self.get("/api/large.json", "-I", "-H", "Accept-Encoding: gzip")
        self.assertEqual(code, 200)
        self.assertNotIn("content-encoding", heads)
        self.assertEqual(heads.get("content-length"), str(len(LARGE)))
        self.assertEqual(heads.get("etag"), '"v1"')

    def test_sse_events_arrive_one_by_one_compressed(self):
        for coding in ("gzip", "br", "zstd"):
            with self.subTest(coding=coding):
                st = {"seen": [threading.Event() for _ in range(3)], "in_time": []}
                self.backend.sse = st
                d = tempfile.mkdtemp(prefix="rproxy-sse-")
                hfile = os.path.join(d, "h")
                p = subprocess.Popen(["curl", "-sSN", "--max-time", "60", "--compressed", "-H", f"Accept-Encoding: {coding}",
                                      "-D", hfile, self.url + "/api/events"], stdout=subprocess.PIPE)
                try:
                    got = []
                    for i in range(3):
                        lines = []
                        while True:  # one event: lines up to the blank line (readline blocks until curl writes)
                            line = p.stdout.readline()
                            self.assertNotEqual(line, b"", f"stream ended after {got}")
                            if line == b"\n":
                                break
                            lines.append(line)
                        got.append(b"".join(lines))
                        st["seen"][i].set()  # the backend sends the next event only now
                    self.assertEqual(got, [b"data: one\n", b"data: two\n", b"data: three\n"])
                    self.assertEqual(p.stdout.read(), b"")
                    self.assertEqual(p.wait(30), 0)
                    self.assertEqual(st["in_time"], [True, True])  # no event waited for the next
                    with open(hfile, "rb") as f:
                        head = f.read().decode("latin-1").lower()
                    self.assertIn(f"content-encoding: {coding}\r\n", head)
                finally:
                    if p.poll() is None:
                        p.kill()
                        p.wait()
                    p.stdout.close()
                    shutil.rmtree(d, ignore_errors=True)

    def test_keep_alive_connection_serves_compressed_and_plain_in_turn(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            for path, ae in (("/api/large.json", "gzip"), ("/api/small.json", "gzip"), ("/api/large.json", "identity"),
                             ("/api/large.json", "gzip")):
                c.request("GET", path, headers={"Accept-Encoding": ae})
                r = c.getresponse()
                body = r.read()
                self.assertEqual(r.status, 200)
                if r.getheader("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                self.assertEqual(body, LARGE if path.endswith("large.json") else SMALL)
                self.assertEqual(r.getheader("Content-Encoding"), "gzip" if (ae == "gzip" and "large" in path) else None)
        finally:
            c.close()


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
