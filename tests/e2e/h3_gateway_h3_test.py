"""End-to-end: apps/h3-gateway's HTTP/3 listener (`quic:`) with a real HTTP/3 client nobody here
wrote: Debian Chromium, headless, driven by npm puppeteer-core (tests/e2e/h3_gateway/h3_browser.js),
QUIC forced on for the gateway's origin and its self-signed certificate trusted by SPKI hash.
Through the gateway to an HTTP/1.1 backend (h3_gateway_test.py's Echo, which reports what it
received): a page, a GET, a POST of more than 1 MiB (the body's SHA-256 checked at the backend),
and 20 requests at once; each must have gone over h3 (Resource Timing's nextHopProtocol). The
same again through HTTP/2 (h2c) and HTTP/3 backends: Caddy in front of the Echo backend.
Then a graceful shutdown (SIGTERM) while HTTP/3 requests are in flight: none fails.
0-RTT (tests/e2e/h3_gateway/h3_0rtt.js): Chromium resumes new connections in the same profile;
with `early_data: true` the GET it sends in early data reaches the backend with Early-Data: 1
(RFC 8470 §5.1), and a POST and a PUT reach it once each, unmarked, after the handshake; with
early_data off (the default) nothing arrives in early data.

A missing Chromium or puppeteer-core fails the test (scripts/setup installs both).

Usage: h3_gateway_h3_test.py PATH_TO_H3_GATEWAY [unittest args]"""
import base64
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

import harness
from harness import metrics
import h3_gateway_test as base

BINARY = None
HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "h3_gateway", "h3_browser.js")
SCRIPT_0RTT = os.path.join(HERE, "h3_gateway", "h3_0rtt.js")
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


class Recorder(Slow):
    """Slow, and keeps (method, path, Early-Data header or None) of each request it gets."""

    def respond(self):
        with self.server.lock:
            self.server.seen.append((self.command, self.path, self.headers.get("Early-Data")))
        super().respond()


def backend(name):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    srv.daemon_threads = True
    srv.name = name
    srv.slow = 0
    srv.seen = []
    srv.lock = threading.Lock()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


class LossyRelay:
    """A UDP relay on 127.0.0.1 in front of the gateway's QUIC port that drops every `nth`
    datagram the gateway sends to the client (none when nth is 0) and delays the others by
    `delay` seconds (one upstream socket per client address). Bounded: it stops with stop(), and
    its sockets time out every 0.2 s to see that."""

    def __init__(self, target_port, nth, delay=0.0):
        self.target, self.nth, self.delay = ("127.0.0.1", target_port), nth, delay
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.ups, self.lock, self.running = {}, threading.Lock(), True
        self.down, self.dropped = 0, 0
        self.threads = [threading.Thread(target=self.from_clients, daemon=True)]
        self.threads[0].start()

    def from_clients(self):
        while self.running:
            try:
                data, client = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            with self.lock:
                up = self.ups.get(client)
                if up is None:
                    up = self.ups[client] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    up.settimeout(0.2)
                    up.connect(self.target)
                    t = threading.Thread(target=self.from_server, args=(up, client), daemon=True)
                    self.threads.append(t)
                    t.start()
            up.send(data)

    def from_server(self, up, client):
        while self.running:
            try:
                data = up.recv(65536)
            except (socket.timeout, ConnectionRefusedError):
                continue
            with self.lock:
                self.down += 1
                drop = self.nth > 0 and self.down % self.nth == 0
                self.dropped += drop
            if drop:
                continue
            if self.delay:
                threading.Timer(self.delay, self.forward, (data, client)).start()
            else:
                self.sock.sendto(data, client)

    def forward(self, data, client):
        try:
            self.sock.sendto(data, client)
        except OSError:  # stopped meanwhile
            pass

    def stop(self):
        self.running = False
        for t in self.threads:
            t.join(timeout=2)
        for u in self.ups.values():
            u.close()
        self.sock.close()


class Http3Test(unittest.TestCase):
    def start(self, quic="{ }", group=None):
        if not os.access(CHROMIUM, os.X_OK):
            raise AssertionError(f"{CHROMIUM} is missing: run scripts/setup (apt package chromium)")
        if not os.path.isdir(os.path.join(HERE, "node_modules", "puppeteer-core")):
            raise AssertionError("npm puppeteer-core is missing: run scripts/setup (tests/e2e/node_modules)")
        self.dir = tempfile.mkdtemp(prefix="rproxy-h3-")
        self.cert, self.key, self.spki = make_cert(self.dir)
        self.be = backend("one")
        self.port, self.plain, self.admin = harness.free_port(), harness.free_port(), harness.free_port()
        group = group or f"  - name: g\n    backends: [ {{ address: 127.0.0.1:{self.be.server_address[1]} }} ]\n"
        cfg = f"""admin: {{ listen: 127.0.0.1:{self.admin} }}
listen: 127.0.0.1:{self.plain}
tls:
  listen: 127.0.0.1:{self.port}
  certificates: [ {{ cert: {self.cert}, key: {self.key} }} ]
quic: {quic}
groups:
{group}http:
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

    def browser(self, extra=(), port=None):
        p = subprocess.run(["node", SCRIPT, "--port", str(port or self.port), "--spki", self.spki, "--chromium", CHROMIUM, "--timeout", "30000", *extra],
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

    def test_chromium_through_to_http2_and_http3_backends(self):
        """Chromium over HTTP/3 to the gateway; the gateway over h2c, then over HTTP/3, to Caddy
        (Go's HTTP/2 and quic-go: servers nobody here wrote), Caddy to the Echo backend. Caddy's
        access log says which protocol each request reached it on."""
        import shutil
        from h3_gateway_h3_upstream_test import Caddy
        self.assertTrue(shutil.which("caddy"), "caddy is missing: run scripts/setup")
        for proto, logged in (("h2c", "HTTP/2.0"), ("h3", "HTTP/3.0")):
            with self.subTest(backend=proto):
                d = tempfile.mkdtemp(prefix=f"rproxy-h3-{proto}-")
                make_cert(d)  # (d/cert.pem: Caddy's certificate, the gateway's CA for it)
                echo = backend("one")
                caddy = Caddy(d, harness.free_port(), echo.server_address[1], h2c=proto == "h2c").start()
                tls = f"\n    h3: {{ ca_file: {d}/cert.pem, server_name: localhost }}" if proto == "h3" else ""
                try:
                    self.start(group=f"""  - name: g
    proto: {proto}{tls}
    backends: [ {{ address: 127.0.0.1:{caddy.port} }} ]
""")
                    try:
                        r = self.browser()
                        self.assertEqual((r["page_status"], r["page_protocol"]), (200, "h3"))
                        self.assertEqual((r["get_status"], r["get_protocol"]), (200, "h3"))
                        self.assertEqual(r["get_body"]["backend"], "one")
                        self.assertEqual(r["get_body"]["path"], "/get?x=1")
                        self.assertEqual((r["post_status"], r["post_protocol"]), (200, "h3"))
                        self.assertEqual(r["post_body"]["body_len"], 1048576 + 12345)
                        self.assertEqual(r["post_body"]["body_sha"], r["post_sha"])
                        self.assertEqual(r["many_ok"], 20)
                        # page, GET, POST and 20 at once: each reached Caddy over the group's protocol
                        harness.wait_until(lambda: len(caddy.protos()) >= 23, what="Caddy's access log of 23 requests")
                        self.assertEqual(set(caddy.protos()), {logged})
                    finally:
                        self.assertEqual(self.gw.stop(), 0)
                finally:
                    caddy.kill()
                    echo.shutdown()
                    echo.server_close()

    def resume(self, attempts):
        """h3_0rtt.js against the gateway, through a relay that delays what the gateway sends by
        50 ms (RTT 50 ms, not loopback's 1 ms: Chromium 156 hands the navigation to the QUIC session
        some 10 ms after starting its handshake, so on loopback the handshake is over first and
        nothing is left to send in 0-RTT); the GET resumed up to `attempts` times. Its JSON line,
        and what the backend saw."""
        relay = LossyRelay(self.port, 0, delay=0.05)
        try:
            p = subprocess.run(["node", SCRIPT_0RTT, "--port", str(relay.port), "--spki", self.spki, "--admin", str(self.admin),
                                "--chromium", CHROMIUM, "--timeout", "30000", "--attempts", str(attempts),
                                *(["--netlog", os.environ["RPROXY_NETLOG"]] if os.environ.get("RPROXY_NETLOG") else [])],
                               capture_output=True, text=True, timeout=300)
        finally:
            relay.stop()
        lines = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
        if p.returncode != 0 or not lines or "error" in lines[-1]:
            self.gw.dump()
            raise AssertionError(f"h3_0rtt.js failed (rc {p.returncode}): {p.stdout}\n{p.stderr[-4000:]}")
        r = lines[-1]
        # HTTP/3 responses advertise no Alt-Svc (the client is there already; the listener's own
        # port would also send it around the relay).
        self.assertEqual([k for k in ("first", "early", "post", "put") if r[k].get("alt_svc")], [], r)
        with self.be.lock:
            return r, list(self.be.seen)

    def test_0rtt_safe_methods_forwarded_with_early_data(self):
        self.start("{ idle_timeout: 1s, early_data: true }")
        try:
            r, seen = self.resume(20)
            m = metrics(self.admin)
            early = {k: v for k, v in m.items() if "early_data" in k}
            sys.stderr.write(f"0-RTT: backend saw {seen}; {early}\n")
            sys.stderr.write(f"0-RTT GET after {r['early_attempts']} resumption(s)\n")
            for step in ("first", "early", "post", "put"):
                self.assertEqual(r[step]["status"], 200, r)
                self.assertEqual(r[step]["protocol"], "h3", r)
            # A full handshake first: nothing early.
            self.assertNotIn("early-data", r["first"]["body"]["headers"])
            # The resumed GET came in 0-RTT and was forwarded marked (RFC 8470 §5.1).
            # (Chromium counts a ticket's age in whole seconds and GnuTLS refuses early data whose
            # age exceeds its own: the script resumes up to 20 times; see h3_0rtt.js.)
            self.assertEqual(r["early"]["body"]["headers"].get("early-data"), "1", r)
            self.assertIn(("GET", "/early", "1"), seen)
            self.assertEqual(m.get('h3gw_early_data_requests_total{outcome="forwarded"}', 0), len([s for s in seen if s[2] == "1"]), early)
            # POST and PUT on resumed connections: whether the client sent them early (then 425
            # and sent again after the handshake) or held them, the backend saw each once,
            # after the handshake (unmarked), with its body.
            self.assertEqual([s for s in seen if s[1] == "/post"], [("POST", "/post", None)], seen)
            self.assertEqual([s for s in seen if s[1] == "/put"], [("PUT", "/put", None)], seen)
            self.assertEqual(r["post"]["body"]["body_len"], len("payload-0rtt"))
            self.assertEqual(r["put"]["body"]["body_len"], len("put-0rtt"))
            # Nothing but safe methods ever reached the backend marked.
            self.assertEqual([s for s in seen if s[2] is not None and s[0] not in ("GET", "HEAD", "OPTIONS")], [], seen)
        finally:
            self.assertEqual(self.gw.stop(), 0)

    def test_0rtt_off_by_default(self):
        self.start("{ idle_timeout: 1s }")
        try:
            r, seen = self.resume(3)
            for step in ("first", "early", "post", "put"):
                self.assertEqual(r[step]["status"], 200, r)
                self.assertEqual(r[step]["protocol"], "h3", r)
                self.assertNotIn("early-data", r[step]["body"]["headers"], r)
            self.assertEqual([s for s in seen if s[2] is not None], [], seen)
            self.assertEqual([s for s in seen if s[1] in ("/post", "/put")], [("POST", "/post", None), ("PUT", "/put", None)], seen)
            m = metrics(self.admin)
            self.assertEqual(m.get('h3gw_early_data_requests_total{outcome="forwarded"}'), 0, m)
            self.assertEqual(m.get('h3gw_early_data_requests_total{outcome="too_early"}'), 0, m)
        finally:
            self.assertEqual(self.gw.stop(), 0)

    def test_requests_by_protocol(self):
        """h3gw_requests_by_protocol_total counts what each client spoke, whichever flow carried
        it (one stage of the shared request pipeline): curl over HTTP/1.0, HTTP/1.1 and h2c on the
        plain listener and HTTP/1.1 and h2 over TLS (ALPN), then Chromium over h3. Each request
        moves its own series by one, and no other."""
        self.start()
        try:
            key = 'h3gw_requests_by_protocol_total{protocol="%s"}'
            names = ["http/1.0", "http/1.1", "h2", "h3"]

            def counts():
                m = metrics(self.admin)
                return {n: m.get(key % n, 0) for n in names}

            plain, tls = f"http://127.0.0.1:{self.plain}", f"https://localhost:{self.port}"
            for args, url, proto in [(["--http1.0"], plain, "http/1.0"), (["--http1.1"], plain, "http/1.1"),
                                     (["--http2-prior-knowledge"], plain, "h2"), (["--http1.1"], tls, "http/1.1"),
                                     (["--http2"], tls, "h2")]:
                before = counts()
                p = subprocess.run(["curl", "-sS", "-k", "--resolve", f"localhost:{self.port}:127.0.0.1", "-o", "/dev/null",
                                    "-w", "%{http_code} %{http_version}", *args, f"{url}/by-protocol"],
                                   capture_output=True, text=True, timeout=30)
                self.assertEqual(p.returncode, 0, p.stderr)
                status, version = p.stdout.split()
                self.assertEqual(status, "200", (args, url))
                # (the response's version: an HTTP/1.0 request gets an HTTP/1.1 status line, RFC 9110 §6.2)
                self.assertEqual(version, {"http/1.0": "1.1", "http/1.1": "1.1", "h2": "2"}[proto], (args, url))
                after = counts()
                want = dict(before)
                want[proto] += 1
                self.assertEqual(after, want, (args, url))
            before = counts()
            r = self.browser(["--post-bytes", "1000", "--parallel", "3"])
            self.assertEqual((r["get_status"], r["get_protocol"]), (200, "h3"))
            after = counts()
            self.assertGreaterEqual(after["h3"] - before["h3"], 6)  # page, GET, POST and 3 at once (a favicon may add one)
            self.assertEqual({n: after[n] for n in names[:3]}, {n: before[n] for n in names[:3]})
        finally:
            self.assertEqual(self.gw.stop(), 0)

    def test_packets_lost_and_rtt_through_a_lossy_relay(self):
        """Chromium reaches the QUIC listener through a relay that drops every 4th datagram the
        gateway sends: the requests still succeed, h3gw_quic_packets_lost_total counts the
        gateway's lost packets, and once the connection is closed the mean smoothed RTT is set."""
        self.start()
        relay = LossyRelay(self.port, 4)
        try:
            m = metrics(self.admin)
            self.assertEqual(m.get("h3gw_quic_packets_lost_total"), 0)
            self.assertEqual(m.get("h3gw_quic_smoothed_rtt_seconds"), 0)
            r = self.browser(["--post-bytes", "20000", "--parallel", "20"], port=relay.port)
            self.assertEqual((r["get_status"], r["get_protocol"]), (200, "h3"))
            self.assertEqual(r["post_body"]["body_sha"], r["post_sha"])
            self.assertEqual(r["many_ok"], 20)
            self.assertGreater(relay.dropped, 0)
            deadline = time.monotonic() + 20  # streams close (and count) once their last data is acknowledged; RTT at the connection's end
            while time.monotonic() < deadline:
                m = metrics(self.admin)
                if m.get("h3gw_quic_packets_lost_total", 0) > 0 and m.get("h3gw_quic_smoothed_rtt_seconds", 0) > 0:
                    break
                time.sleep(0.2)
            sys.stderr.write(f"relay dropped {relay.dropped} of {relay.down}; lost {m.get('h3gw_quic_packets_lost_total')}, "
                             f"rtt {m.get('h3gw_quic_smoothed_rtt_seconds')}\n")
            self.assertGreater(m.get("h3gw_quic_packets_lost_total", 0), 0)
            self.assertLessEqual(m.get("h3gw_quic_packets_lost_total", 0), relay.dropped * 4)  # (a packet counts once per stream it carried)
            self.assertGreater(m.get("h3gw_quic_smoothed_rtt_seconds", 0), 0)
            self.assertLess(m.get("h3gw_quic_smoothed_rtt_seconds", 0), 5)
        finally:
            relay.stop()
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
