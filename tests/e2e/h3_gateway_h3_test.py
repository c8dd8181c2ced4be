"""End-to-end: apps/h3-gateway's HTTP/3 listener (`quic:`) with a real HTTP/3 client nobody here
wrote: Debian Chromium, headless, driven by npm puppeteer-core (tests/e2e/h3_gateway/h3_browser.js),
QUIC forced on for the gateway's origin and its self-signed certificate trusted by SPKI hash.
Through the gateway to an HTTP/1.1 backend (h3_gateway_test.py's Echo, which reports what it
received): a page, a GET, a POST of more than 1 MiB (the body's SHA-256 checked at the backend),
and 20 requests at once; each must have gone over h3 (Resource Timing's nextHopProtocol).
Then a graceful shutdown (SIGTERM) while HTTP/3 requests are in flight: none fails.

A missing Chromium or puppeteer-core fails the test (scripts/setup installs both).

Usage: h3_gateway_h3_test.py PATH_TO_H3_GATEWAY [unittest args]"""
import base64
import http.server
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

import harness
import h3_gateway_test as base

BINARY = None
HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "h3_gateway", "h3_browser.js")
CHROMIUM = os.environ.get("RPROXY_CHROMIUM", "/usr/bin/chromium")


def make_cert(d):
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    pub = subprocess.run(["openssl", "x509", "-in", cert, "-pubkey", "-noout"], check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, check=True, capture_output=True).stdout
    digest = subprocess.run(["openssl", "dgst", "-sha256", "-binary"], input=der, check=True, capture_output=True).stdout
    return cert, key, base64.b64encode(digest).decode()


class Slow(base.Echo):
    """Echo; /slow/* is counted on arrival and answered a second later (requests in flight at
    shutdown)."""

    def respond(self):
        if "/slow/" in self.path:
            with self.server.lock:
                self.server.slow += 1
            time.sleep(1.0)
        super().respond()


def backend(name):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    srv.daemon_threads = True
    srv.name = name
    srv.slow = 0
    srv.lock = threading.Lock()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def metrics(admin):
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
    out = {}
    for l in text.splitlines():
        if l and not l.startswith("#"):
            k, v = l.rsplit(" ", 1)
            out[k] = float(v)
    return out


class Http3Test(unittest.TestCase):
    def start(self, quic="{ }"):
        if not os.access(CHROMIUM, os.X_OK):
            raise AssertionError(f"{CHROMIUM} is missing: run scripts/setup (apt package chromium)")
        if not os.path.isdir(os.path.join(HERE, "node_modules", "puppeteer-core")):
            raise AssertionError("npm puppeteer-core is missing: run scripts/setup (tests/e2e/node_modules)")
        self.dir = tempfile.mkdtemp(prefix="rproxy-h3-")
        self.cert, self.key, self.spki = make_cert(self.dir)
        self.be = backend("one")
        self.port, self.plain, self.admin = harness.free_port(), harness.free_port(), harness.free_port()
        cfg = f"""admin: {{ listen: 127.0.0.1:{self.admin} }}
listen: 127.0.0.1:{self.plain}
tls:
  listen: 127.0.0.1:{self.port}
  certificates: [ {{ cert: {self.cert}, key: {self.key} }} ]
quic: {quic}
groups:
  - name: g
    backends: [ {{ address: 127.0.0.1:{self.be.server_address[1]} }} ]
http:
  routes:
    - name: all
      prefix: /
      backends: [ {{ group: g }} ]
limits: {{ max_body: 8MiB }}
access_log: false
"""
        self.gw = harness.Program(BINARY, cfg, args=["--workers", "2"], name="h3-gateway-h3").start(wait_ports=[self.plain, self.port, self.admin])

    def setUp(self):
        pass

    def tearDown(self):
        self.be.shutdown()
        self.be.server_close()

    def browser(self, extra=()):
        p = subprocess.run(["node", SCRIPT, "--port", str(self.port), "--spki", self.spki, "--chromium", CHROMIUM, "--timeout", "30000", *extra],
                           capture_output=True, text=True, timeout=120)
        lines = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
        if p.returncode != 0 or not lines or "error" in lines[-1]:
            self.gw.dump()
            raise AssertionError(f"h3_browser.js failed (rc {p.returncode}): {p.stdout}\n{p.stderr[-4000:]}")
        return lines[-1]

    def test_chromium_get_and_large_post_over_h3(self):
        self.start()
        try:
            r = self.browser()
            sys.stderr.write(f"browser: {r['chromium']}\n")
            self.assertEqual(r["page_status"], 200)
            self.assertEqual(r["page_protocol"], "h3")
            self.assertEqual(json.loads(r["page_body"])["path"], "/page")
            self.assertEqual(r["get_status"], 200)
            self.assertEqual(r["get_protocol"], "h3")
            self.assertEqual(r["get_body"]["backend"], "one")
            self.assertEqual(r["get_body"]["path"], "/get?x=1")
            self.assertEqual(r["get_body"]["headers"]["host"], f"localhost:{self.port}")
            self.assertEqual(r["get_body"]["headers"]["x-forwarded-proto"], "https")
            self.assertEqual(r["post_status"], 200)
            self.assertEqual(r["post_protocol"], "h3")
            self.assertEqual(r["post_body"]["body_len"], 1048576 + 12345)
            self.assertEqual(r["post_body"]["body_sha"], r["post_sha"])
            self.assertEqual(r["many_ok"], 20)
            self.assertEqual(r["many_protocols"], ["h3"])
            # The TCP listeners advertise HTTP/3.
            with urllib.request.urlopen(f"http://127.0.0.1:{self.plain}/alt", timeout=5) as resp:
                self.assertEqual(resp.headers.get("alt-svc"), f'h3=":{self.port}"; ma=86400')
            m = metrics(self.admin)
            self.assertGreaterEqual(m.get('h3gw_quic_handshakes_total', 0), 1, {k: v for k, v in m.items() if "quic" in k})
            self.assertGreaterEqual(m.get('h3gw_requests_by_protocol_total{protocol="h3"}', 0), 23)
        finally:
            self.assertEqual(self.gw.stop(), 0)

    def test_retry_address_validation_with_chromium(self):
        """quic: { retry: true }: Chromium's first Initial gets a Retry; it comes back with the
        token and its requests go through over h3."""
        self.start("{ retry: true }")
        try:
            r = self.browser(["--post-bytes", "70000", "--parallel", "3"])
            self.assertEqual((r["get_status"], r["get_protocol"]), (200, "h3"))
            self.assertEqual(r["post_body"]["body_sha"], r["post_sha"])
            m = metrics(self.admin)
            self.assertGreaterEqual(m.get("h3gw_quic_retries_sent_total", 0), 1)
            self.assertGreaterEqual(m.get("h3gw_quic_handshakes_total", 0), 1)
            self.assertEqual(m.get("h3gw_quic_bad_tokens_total", 0), 0)
        finally:
            self.assertEqual(self.gw.stop(), 0)

    def test_graceful_shutdown_during_h3_requests(self):
        """SIGTERM while 10 slow requests are in flight over HTTP/3: every one gets its answer."""
        self.start()
        page = os.path.join(HERE, "h3_gateway", "h3_shutdown.js")
        proc = subprocess.Popen(["node", page, "--port", str(self.port), "--spki", self.spki, "--chromium", CHROMIUM, "--timeout", "30000"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()
            self.assertTrue(line.startswith('{"sent"'), line + (proc.stderr.read() if proc.poll() is not None else ""))
            # In flight: the backend has all 10 and holds each for a second (bounded poll).
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with self.be.lock:
                    if self.be.slow == 10:
                        break
                time.sleep(0.01)
            with self.be.lock:
                self.assertEqual(self.be.slow, 10)
            self.gw.signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
            lines = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
            self.assertTrue(lines and "error" not in lines[-1], out + err[-3000:])
            r = lines[-1]
            self.assertEqual(r["ok"], 10, r)
            self.assertEqual(r["protocols"], ["h3"], r)
            self.assertEqual(self.gw.proc.wait(30), 0)
        finally:
            if proc.poll() is None:
                proc.kill()
            self.gw.stop()


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
