"""End-to-end tests of apps/h3-gateway's HTTP/3 backends (groups with `proto: h3`): curl and
Python's http.client speak HTTP/1.1 to the gateway, the gateway speaks HTTP/3 to Caddy (Debian
caddy, quic-go: an implementation nobody here wrote), Caddy proxies to a Python HTTP/1.1
backend in this process that answers with what it received. Caddy's access log says which
protocol each request came in on (HTTP/3.0); the gateway's metrics say how many QUIC
connections carried them.

Usage: h3_gateway_h3_upstream_test.py PATH_TO_H3_GATEWAY [unittest args]"""
import hashlib
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import unittest
import urllib.request

import harness

BINARY = None


class Backend(http.server.ThreadingHTTPServer):
    """Answers every request with JSON: method, path, body length and SHA-256, a few headers."""

    daemon_threads = True

    def __init__(self):
        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def answer(self):
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n) if n else b""
                out = json.dumps({"method": self.command, "path": self.path, "len": len(body),
                                  "sha": hashlib.sha256(body).hexdigest(),
                                  "x-forwarded-proto": self.headers.get("x-forwarded-proto"),
                                  "x-test": self.headers.get("x-test")}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = answer

        super().__init__(("127.0.0.1", 0), H)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()


class Caddy:
    """Caddy serving HTTP/3 (and h1/h2) on 127.0.0.1:port with a test certificate (d/cert.pem,
    d/key.pem), or with h2c=True HTTP/2 with prior knowledge (and h1) over plain TCP, proxying
    to the backend, with a JSON access log."""

    def __init__(self, d, port, backend_port, h2c=False):
        self.dir, self.port = d, port
        self.log = os.path.join(d, "caddy-access.log")
        self.caddyfile = os.path.join(d, "Caddyfile")
        site = f"http://:{port}" if h2c else f"https://:{port}"
        tls = "" if h2c else f"tls {d}/cert.pem {d}/key.pem"
        with open(self.caddyfile, "w") as f:
            f.write(f"""{{
  admin off
  auto_https disable_redirects
  servers {{
    protocols h1 h2 {"h2c" if h2c else "h3"}
  }}
}}
{site} {{
  bind 127.0.0.1
  {tls}
  log {{
    output file {self.log}
    format json
  }}
  reverse_proxy 127.0.0.1:{backend_port}
}}
""")
        self.proc = None

    def start(self):
        env = dict(os.environ, HOME=self.dir, XDG_DATA_HOME=self.dir, XDG_CONFIG_HOME=self.dir)
        self.out = open(os.path.join(self.dir, "caddy.out"), "a")
        self.proc = subprocess.Popen(["caddy", "run", "--config", self.caddyfile, "--adapter", "caddyfile"],
                                     stdout=self.out, stderr=subprocess.STDOUT, env=env)
        harness.wait_port(self.port)  # (TCP and UDP open together)
        return self

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.out.close()

    def protos(self):
        """The protocol of each request Caddy logged."""
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return [json.loads(l)["request"]["proto"] for l in f if l.startswith("{") and '"request"' in l]

    def requests(self):
        """(uri, protocol) of each request Caddy logged."""
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return [(r["uri"], r["proto"]) for r in (json.loads(l)["request"] for l in f if l.startswith("{") and '"request"' in l)]


def metric(admin, name, backend):
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
    m = re.search(rf'^{name}(?:_total)?{{backend="{re.escape(backend)}"}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def backend_up(admin, group, backend):
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
    m = re.search(rf'^rproxy_backend_up{{route="{re.escape(group)}",backend="{re.escape(backend)}"}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else None


class H3UpstreamHealth(unittest.TestCase):
    """Active health checks of a `proto: h3` group: two Caddy backends, checked with an HTTP
    GET that the gateway sends over QUIC (Caddy logs it as HTTP/3.0). One Caddy stopped is
    marked down, and every request goes to the live one."""

    def test_stopped_h3_backend_is_marked_down_and_skipped(self):
        self.assertTrue(shutil.which("caddy"), "caddy is missing: run scripts/setup")
        top = tempfile.mkdtemp(prefix="rproxy-h3hc-")
        dirs = [os.path.join(top, n) for n in ("a", "b")]
        for d in dirs:
            os.makedirs(d)
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                            "-keyout", f"{d}/key.pem", "-out", f"{d}/cert.pem", "-days", "2", "-subj", "/CN=localhost",
                            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
        with open(os.path.join(top, "ca.pem"), "w") as out:
            for d in dirs:
                with open(f"{d}/cert.pem") as f:
                    out.write(f.read())
        backend = Backend()
        caddies = [Caddy(d, harness.free_port(), backend.port).start() for d in dirs]
        labels = [f"127.0.0.1:{c.port}" for c in caddies]
        port, admin = harness.free_port(), harness.free_port()
        gw = harness.Program(BINARY, f"""admin: {{ listen: 127.0.0.1:{admin} }}
listen: 127.0.0.1:{port}
access_log: false
groups:
  - name: pair
    proto: h3
    h3: {{ ca_file: {top}/ca.pem, server_name: localhost, response_timeout: 2s }}
    health_check: {{ type: http, path: /health, interval: 200ms, timeout: 1s, rise: 1, fall: 1 }}
    backends: [ {{ address: {labels[0]} }}, {{ address: {labels[1]} }} ]
http:
  routes:
    - name: all
      prefix: /
      backends: [ {{ group: pair }} ]
""", args=["--workers", "2"], name="h3hc").start(wait_ports=[port, admin])
        stopped = False

        def explain():
            text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
            return "\n".join(l for l in text.splitlines() if "backend_up" in l or "upstream_h3" in l or "health" in l)
        try:
            # Both checked over HTTP/3 and up.
            try:
                harness.wait_until(lambda: all(backend_up(admin, "pair", l) == 1 for l in labels), what="both h3 backends up")
            except AssertionError:
                gw.dump()
                raise AssertionError(explain())
            for c in caddies:
                harness.wait_until(lambda c=c: ("/health", "HTTP/3.0") in c.requests(), what="a health check over HTTP/3 in Caddy's log")
            caddies[1].kill()
            stopped = True
            harness.wait_until(lambda: backend_up(admin, "pair", labels[1]) == 0, timeout=20, what="the stopped h3 backend marked down")
            self.assertEqual(backend_up(admin, "pair", labels[0]), 1)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            for i in range(20):
                conn.request("GET", f"/after/{i}")
                r = conn.getresponse()
                self.assertEqual((r.status, json.loads(r.read())["path"]), (200, f"/after/{i}"))
            conn.close()
            served = lambda: sorted(u for u, p in caddies[0].requests() if u.startswith("/after/") and p == "HTTP/3.0")
            harness.wait_until(lambda: len(served()) == 20, what="the live Caddy's log of them")
            self.assertEqual(served(), sorted(f"/after/{i}" for i in range(20)))
        finally:
            rc = gw.stop()
            for i, c in enumerate(caddies):
                if not (stopped and i == 1):
                    c.kill()
            backend.shutdown()
            if rc != 0:
                gw.dump()
            self.assertEqual(rc, 0)


class H3Upstream(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require(shutil.which("caddy") is not None, "caddy is missing: run scripts/setup")
        cls.dir = tempfile.mkdtemp(prefix="rproxy-h3up-")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-keyout", f"{cls.dir}/key.pem", "-out", f"{cls.dir}/cert.pem", "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
        cls.backend = Backend()
        cls.caddy_port = harness.free_port()
        cls.caddy = Caddy(cls.dir, cls.caddy_port, cls.backend.port).start()
        cls.port, cls.admin = harness.free_port(), harness.free_port()
        cls.label = f"127.0.0.1:{cls.caddy_port}"
        cls.gw = harness.Program(BINARY, cls.config(), args=["--workers", "1"], name="h3up").start(wait_ports=[cls.port, cls.admin])

    @classmethod
    def config(cls, more_groups="", more_routes=""):
        return f"""admin: {{ listen: 127.0.0.1:{cls.admin} }}
listen: 127.0.0.1:{cls.port}
access_log: false
groups:
  - name: edge
    proto: h3
    h3: {{ ca_file: {cls.dir}/cert.pem, server_name: localhost, max_connections: 2 }}
    backends: [ {{ address: {cls.label} }} ]
{more_groups}http:
  routes:
{more_routes}    - name: all
      prefix: /
      backends: [ {{ group: edge }} ]
"""

    @classmethod
    def tearDownClass(cls):
        rc = cls.gw.stop()
        cls.caddy.kill()
        cls.backend.shutdown()
        if rc != 0:
            cls.gw.dump()
        assert rc == 0, f"gateway exit code {rc}"

    def get(self, conn, path, body=None, method=None, headers=None, close=False):
        conn.request(method or ("POST" if body is not None else "GET"), path, body=body, headers=headers or {})
        r = conn.getresponse()
        out = r.status, r.read()
        if close:
            conn.close()
        return out

    def test_1_curl_gets_the_backends_answer_through_caddy_over_h3(self):
        before = len(self.caddy.protos())
        out = subprocess.run(["curl", "-sS", "--http1.1", "-H", "X-Test: curl", "-w", "\\n%{http_code}",
                              f"http://127.0.0.1:{self.port}/hello?a=1"], capture_output=True, text=True, timeout=30)
        body, _, code = out.stdout.rpartition("\n")
        self.assertEqual(code, "200", out.stderr)
        seen = json.loads(body)
        self.assertEqual(seen["method"], "GET")
        self.assertEqual(seen["path"], "/hello?a=1")
        self.assertEqual(seen["x-test"], "curl")
        self.assertEqual(seen["x-forwarded-proto"], "https")  # Caddy's, over its TLS listener
        harness.wait_until(lambda: len(self.caddy.protos()) > before, what="Caddy's access log line")
        self.assertEqual(self.caddy.protos()[-1], "HTTP/3.0")

    def test_2_many_requests_share_one_quic_connection(self):
        conns0 = metric(self.admin, "h3gw_upstream_h3_connections", self.label)
        reqs0 = metric(self.admin, "h3gw_upstream_h3_requests", self.label)
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        for i in range(200):
            status, body = self.get(c, f"/n/{i}")
            self.assertEqual(status, 200)
            self.assertEqual(json.loads(body)["path"], f"/n/{i}")
        # Concurrent clients too: requests at once on the same connection(s).
        results = []

        def client(k):
            cc = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            for i in range(25):
                results.append(self.get(cc, f"/c/{k}/{i}", close=i == 24)[0])

        ts = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        c.close()
        self.assertEqual(results, [200] * 200)
        reqs = metric(self.admin, "h3gw_upstream_h3_requests", self.label) - reqs0
        conns = metric(self.admin, "h3gw_upstream_h3_connections", self.label) - conns0
        print(f"\n  400 requests over {conns:.0f} new QUIC connection(s) (requests counted: {reqs:.0f})", file=sys.stderr)
        self.assertEqual(reqs, 400)
        self.assertLessEqual(conns, 1)  # the one from test 1 (or one new one) carried them all
        self.assertLessEqual(metric(self.admin, "h3gw_upstream_h3_connections", self.label), 2)
        self.assertEqual(self.caddy.protos()[-1], "HTTP/3.0")

    def test_3_a_large_upload_and_download_stream_through(self):
        body = os.urandom(3 * 1024 * 1024 + 17)
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        status, out = self.get(c, "/upload", body=body, headers={"content-type": "application/octet-stream"}, close=True)
        self.assertEqual(status, 200)
        seen = json.loads(out)
        self.assertEqual((seen["method"], seen["len"], seen["sha"]), ("POST", len(body), hashlib.sha256(body).hexdigest()))

    def test_4_a_restarted_backend_is_reconnected(self):
        conns0 = metric(self.admin, "h3gw_upstream_h3_connections", self.label)
        self.caddy.kill()
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        status, _ = self.get(c, "/while-down", close=True)  # the QUIC connection to the dead Caddy fails
        self.assertIn(status, (502, 503, 504))
        self.caddy.start()

        def works():
            try:
                cc = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                return self.get(cc, "/again", close=True)[0] == 200
            except OSError:
                return False

        harness.wait_until(works, timeout=30, what="a request through the restarted Caddy")
        self.assertGreater(metric(self.admin, "h3gw_upstream_h3_connections", self.label), conns0)
        self.assertEqual(self.caddy.protos()[-1], "HTTP/3.0")

    def reload(self, text, outcome):
        """Writes `text`, sends SIGHUP and waits for the reload's log line (`outcome`)."""
        n = self.gw.output().count(outcome)
        self.gw.write_config(text)
        self.gw.signal(signal.SIGHUP)
        harness.wait_until(lambda: self.gw.output().count(outcome) > n, what=f"'{outcome}' logged")

    def test_5_a_reload_failing_partway_keeps_the_h3_backends(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        self.assertEqual(self.get(c, "/before", close=True)[0], 200)
        conns0 = metric(self.admin, "h3gw_upstream_h3_connections", self.label)
        # A second HTTP/3 group whose trust anchors cannot be read: the reload fails after the
        # first group's backends were taken into the new set. The running ones stay as they were.
        bad_group = f"""  - name: second
    proto: h3
    h3: {{ ca_file: {self.dir}/missing.pem, server_name: localhost }}
    backends: [ {{ address: 127.0.0.1:{harness.free_port()} }} ]
"""
        bad_route = "    - { name: second, prefix: /second, backends: [ { group: second } ] }\n"
        self.reload(self.config(bad_group, bad_route), "routes not updated")
        for i in range(5):
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            status, body = self.get(c, f"/after-bad/{i}", close=True)
            self.assertEqual((status, json.loads(body)["path"]), (200, f"/after-bad/{i}"))
        self.assertEqual(self.caddy.protos()[-1], "HTTP/3.0")
        # The same config again: its backends are still the live ones, so the QUIC connection
        # already open carries on (a set rebuilt after the failure would open a new one).
        self.reload(self.config(), "routes updated")
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        self.assertEqual(self.get(c, "/after-good", close=True)[0], 200)
        self.assertEqual(metric(self.admin, "h3gw_upstream_h3_connections", self.label), conns0)


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
