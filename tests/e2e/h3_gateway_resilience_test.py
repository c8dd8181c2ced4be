"""End-to-end tests of apps/h3-gateway's resilience: per-route retries and their budget, circuit
breakers and passive ejection per backend, the 502/503/504 JSON bodies (HTTP/1.1 and HTTP/2
clients alike), and the PROXY protocol on the TLS listener. Clients: curl (HTTP/1.1,
--http2-prior-knowledge, TLS with --haproxy-protocol) and raw sockets for hand-made PROXY
headers; backends: small Python servers started here on loopback whose behaviour the test
switches (answer, reset the connection, answer 503).

Usage: h3_gateway_resilience_test.py PATH_TO_H3_GATEWAY [unittest args]"""
import http.server
import json
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import unittest

import harness
import h3_gateway_test as base  # its Echo backend, curl helper and config writer (its tests are not run here)

BINARY = None


class Switchable(base.Echo):
    """The Echo backend, with a mode the test sets: "ok" answers, "reset" reads the request and
    resets the connection (SO_LINGER 0) with no response, "503" answers 503. Counts requests by
    method and mode."""

    def respond(self):
        srv = self.server
        with srv.lock:
            mode = srv.mode
            srv.seen[(self.command, mode)] = srv.seen.get((self.command, mode), 0) + 1
        if mode == "ok":
            return super().respond()
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if mode == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        body = b'{"backend_says":"busy"}'
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Backend(base.Backend):
    def __init__(self, name, mode="ok"):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Switchable)
        self.server.daemon_threads = True
        self.server.name = name
        self.server.mode = mode
        self.server.lock = threading.Lock()
        self.server.seen = {}
        self.port = self.server.server_address[1]
        self.id = f"127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def set_mode(self, mode):
        with self.server.lock:
            self.server.mode = mode

    def count(self, method=None, mode=None):
        with self.server.lock:
            return sum(n for (m, md), n in self.server.seen.items() if method in (None, m) and mode in (None, md))


def metric(text, name, **labels):
    want = ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}") if labels else ""
    m = re.search(r"(?m)^" + re.escape(name + want) + r" (\S+)$", text)
    return float(m.group(1)) if m else None


class ResilienceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.good = Backend("good")
        cls.flaky = Backend("flaky", "reset")        # retries: resets every request
        cls.busy = Backend("busy", "503")            # budget: answers 503
        cls.good2 = Backend("good2")
        cls.sw = Backend("switch", "reset")          # breaker: fails, then recovers
        cls.good3 = Backend("good3")
        cls.solo = Backend("solo", "reset")          # breaker with no alternative
        cls.ej = Backend("ejected", "reset")         # outlier ejection
        cls.good4 = Backend("good4")
        cls.good5 = Backend("good5")
        cls.slowb = Backend("slow")
        cls.dead = base.dead_port()
        cls.port, cls.admin = harness.free_port(), harness.free_port()
        off = "outlier: { consecutive_failures: 0 }"
        groups = [
            ("pair", [cls.flaky.port, cls.good.port], [off]),
            ("busy", [cls.busy.port, cls.good2.port], [off]),
            ("brk", [cls.sw.port, cls.good3.port], [off, "breaker: { consecutive_failures: 3, cool_down: 5s }"]),
            ("solo", [cls.solo.port], [off, "breaker: { consecutive_failures: 2, cool_down: 60s }"]),
            ("ej", [cls.ej.port, cls.good4.port],
             ["outlier: { consecutive_failures: 2, base_ejection: 2s, max_ejection: 2s, max_ejected_percent: 50 }"]),
            ("shed", [cls.dead, cls.good5.port], [off]),
            ("one", [cls.slowb.port], []),
        ]
        routes = """- name: retry
  prefix: /r
  backends: [ { group: pair } ]
  retry: { count: 2, on: [ connect_error, reset, http_502, http_503 ] }
- name: noretry
  prefix: /n
  backends: [ { group: pair } ]
  retry: { count: 0 }
- name: budget
  prefix: /b
  backends: [ { group: busy } ]
  retry: { count: 1, on: [ http_503 ], budget: { ratio: 0.1, min_per_second: 0, window: 10m } }
- name: brk
  prefix: /c
  backends: [ { group: brk } ]
  retry: { count: 1, on: [ reset ] }
- name: solo
  prefix: /s
  backends: [ { group: solo } ]
  retry: { count: 0 }
- name: ej
  prefix: /e
  backends: [ { group: ej } ]
  retry: { count: 1, on: [ reset ] }
- name: shed
  prefix: /d
  backends: [ { group: shed } ]
  retry: { count: 2, on: [ connect_error ], budget: { ratio: 0, min_per_second: 0 }, retry_after: 4 }
- name: slow
  prefix: /slow
  backends: [ { group: one } ]
  timeout: 300ms
"""
        cls.gw = harness.Program(BINARY, base.config(cls.port, cls.admin, groups, routes, "retry_after: 9\n"),
                                 args=["--workers", "1"], name="h3gw-res")
        cls.gw.start(wait_ports=[cls.port, cls.admin])
        cls.url = f"http://127.0.0.1:{cls.port}"

    @classmethod
    def tearDownClass(cls):
        rc = cls.gw.stop()
        for b in (cls.good, cls.flaky, cls.busy, cls.good2, cls.sw, cls.good3, cls.solo, cls.ej, cls.good4, cls.good5, cls.slowb):
            b.close()
        if rc != 0:
            cls.gw.dump()
        assert rc == 0, rc

    def req(self, path, *args, h2=False):
        code, heads, body, rc = base.curl(self.url + path, *(["--http2-prior-knowledge"] if h2 else []), *args)
        self.assertEqual(rc, 0, (path, body))
        return code, heads, body

    def metrics(self):
        code, _, text, _ = base.curl(f"http://127.0.0.1:{self.admin}/metrics")
        self.assertEqual(code, 200)
        return text.decode()

    def backend(self, group, bid):
        code, _, out, _ = base.curl(f"http://127.0.0.1:{self.admin}/api/backends")
        self.assertEqual(code, 200, out)
        for g in json.loads(out)["groups"]:
            if g["name"] == group:
                for b in g["backends"]:
                    if b["id"] == bid:
                        return b
        raise AssertionError(f"no backend {bid} in {group}")

    def test_post_reset_is_not_retried_but_a_get_is(self):
        for h2 in (False, True):
            good_posts, flaky_posts = self.good.count("POST"), self.flaky.count("POST")
            answers = [self.req(f"/r/post{i}", "--data-binary", "hello", h2=h2) for i in range(6)]
            failed = [json.loads(b) for c, _, b in answers if c == 502]
            served = [json.loads(b) for c, _, b in answers if c == 200]
            self.assertEqual(len(failed) + len(served), 6, answers)
            self.assertGreaterEqual(len(failed), 2, answers)  # round robin: every other one meets the resetting backend
            # Each failed POST reached the resetting backend once and went nowhere else.
            self.assertEqual(failed, [{"error": "backend_reset", "route": "retry"}] * len(failed))
            self.assertEqual(self.flaky.count("POST") - flaky_posts, len(failed))
            self.assertEqual(self.good.count("POST") - good_posts, len(served))
            self.assertTrue(all(s["backend"] == "good" for s in served))
            before = metric(self.metrics(), "h3gw_retries_total", route="retry") or 0
            flaky_gets = self.flaky.count("GET")
            for i in range(6):
                code, _, body = self.req(f"/r/get{i}", h2=h2)
                self.assertEqual((code, json.loads(body)["backend"]), (200, "good"), body)
            hit = self.flaky.count("GET") - flaky_gets
            self.assertGreaterEqual(hit, 2)  # the resetting backend got its share, and each was retried
            self.assertEqual(metric(self.metrics(), "h3gw_retries_total", route="retry") - before, hit)

    def test_a_route_without_retries_answers_the_reset(self):
        codes = []
        for i in range(4):
            code, heads, body = self.req(f"/n/{i}")
            codes.append(code)
            if code == 502:
                self.assertEqual(json.loads(body), {"error": "backend_reset", "route": "noretry"})
                self.assertEqual(heads.get("content-type"), "application/json")
        self.assertIn(502, codes)
        self.assertIn(200, codes)

    def test_retry_budget_caps_retries_of_503s(self):
        """ratio 0.1, no floor: at most one retry per ten requests; the others see the backend's own 503."""
        n = 60
        busy_before, ok_before = self.busy.count(), self.good2.count()
        codes = {200: 0, 503: 0}
        for i in range(n):
            code, _, body = self.req(f"/b/{i}")
            codes[code] += 1
            if code == 503:
                self.assertEqual(json.loads(body), {"backend_says": "busy"})
        retries = metric(self.metrics(), "h3gw_retries_total", route="budget")
        busy_hits = self.busy.count() - busy_before
        self.assertEqual(busy_hits + (self.good2.count() - ok_before), n + retries)
        self.assertGreaterEqual(retries, 1)
        self.assertLessEqual(retries, n * 0.1)  # what the budget allows, far below the ~30 failures
        self.assertEqual(codes[503], busy_hits - retries)  # a retried 503 became a 200
        self.assertEqual(codes[200], n - codes[503])

    def test_budget_spent_on_connect_errors_is_shed_with_retry_after(self):
        shed = []
        for h2 in (False, True):
            for i in range(4):
                code, heads, body = self.req(f"/d/{i}", h2=h2)
                if code != 200:
                    self.assertEqual(code, 503, body)
                    self.assertEqual(json.loads(body), {"error": "shed", "route": "shed", "message": "retry budget exhausted"})
                    self.assertEqual(heads.get("retry-after"), "4")
                    shed.append(h2)
        self.assertIn(False, shed)
        self.assertIn(True, shed)
        self.assertEqual(metric(self.metrics(), "h3gw_retries_shed_total", route="shed"), len(shed))
        self.assertEqual(metric(self.metrics(), "h3gw_retries_total", route="shed") or 0, 0)

    def test_breaker_opens_sends_traffic_to_the_other_and_closes_after_the_cool_down(self):
        self.sw.set_mode("reset")

        def opened():
            code, _, body = self.req("/c/x")
            self.assertEqual(code, 200, body)  # the reset is retried on the other backend
            return self.backend("brk", self.sw.id)["breaker"] == "open"
        harness.wait_until(opened, timeout=20, what="the breaker to open")
        text = self.metrics()
        self.assertEqual(metric(text, "rproxy_backend_breaker_state", route="brk", backend=self.sw.id, state="open"), 1)
        self.assertEqual(metric(text, "rproxy_backend_up", route="brk", backend=self.sw.id), 0)
        seen = self.sw.count()
        for i in range(4):  # open: nothing goes to it
            code, _, body = self.req(f"/c/{i}")
            self.assertEqual((code, json.loads(body)["backend"]), (200, "good3"))
        self.assertEqual(self.sw.count(), seen)
        self.sw.set_mode("ok")

        def closed():
            self.assertEqual(self.req("/c/y")[0], 200)
            return self.backend("brk", self.sw.id)["breaker"] == "closed"
        harness.wait_until(closed, timeout=30, what="a half-open trial to close the breaker")
        self.assertEqual(metric(self.metrics(), "rproxy_backend_breaker_state", route="brk", backend=self.sw.id, state="closed"), 1)
        got = {json.loads(self.req(f"/c/back{i}")[2])["backend"] for i in range(4)}
        self.assertEqual(got, {"switch", "good3"})

    def test_open_breaker_with_no_alternative_is_503_json_with_retry_after(self):
        for _ in range(2):
            code, _, body = self.req("/s/x")
            self.assertEqual((code, json.loads(body)), (502, {"error": "backend_reset", "route": "solo"}))
        harness.wait_until(lambda: self.backend("solo", self.solo.id)["breaker"] == "open", what="the breaker to open")
        seen = self.solo.count()
        for h2 in (False, True):
            code, heads, body = self.req("/s/x", h2=h2)
            self.assertEqual(code, 503)
            self.assertEqual(json.loads(body), {"error": "breaker_open", "route": "solo", "message": "circuit breaker open"})
            self.assertEqual(heads.get("retry-after"), "9")
        self.assertEqual(self.solo.count(), seen)

    def test_failing_backend_is_ejected_then_comes_back(self):
        self.ej.set_mode("reset")
        harness.wait_until(lambda: self.req("/e/x")[0] == 200 and self.backend("ej", self.ej.id)["state"] == "ejected",
                           timeout=20, what="the failing backend ejected")
        self.assertGreaterEqual(metric(self.metrics(), "rproxy_backend_ejections_total", route="ej", backend=self.ej.id), 1)
        self.assertGreaterEqual(self.backend("ej", self.ej.id)["ejections"], 1)
        self.ej.set_mode("ok")
        harness.wait_until(lambda: self.backend("ej", self.ej.id)["state"] == "healthy", timeout=20, what="the ejection to end")
        got = {json.loads(self.req(f"/e/{i}")[2])["backend"] for i in range(4)}
        self.assertEqual(got, {"ejected", "good4"})

    def test_timeout_body_is_the_same_on_both_protocols(self):
        for h2 in (False, True):
            code, heads, body = self.req("/slow/slow", h2=h2)
            self.assertEqual((code, heads.get("content-type")), (504, "application/json"))
            self.assertEqual(json.loads(body), {"error": "backend_timeout", "route": "slow"})

    def test_connect_refused_body_is_the_same_on_both_protocols(self):
        port, admin = harness.free_port(), harness.free_port()
        gw = harness.Program(BINARY, base.config(port, admin, [("g", [base.dead_port()], ["outlier: { consecutive_failures: 0 }"])],
                                                 "- name: dead\n  prefix: /\n  backends: [ { group: g } ]\n"),
                             name="h3gw-dead").start(wait_ports=[port, admin])
        try:
            bodies = []
            for extra in ([], ["--http2-prior-knowledge"]):
                code, heads, body, rc = base.curl(f"http://127.0.0.1:{port}/x", *extra)
                self.assertEqual((rc, code, heads.get("content-type")), (0, 502, "application/json"))
                bodies.append(json.loads(body))
            self.assertEqual(bodies, [{"error": "connect_refused", "route": "dead"}] * 2)
        finally:
            self.assertEqual(gw.stop(), 0)


class ConfigTest(unittest.TestCase):
    def test_validate_names_the_line_of_a_bad_retry_or_breaker(self):
        d = tempfile.mkdtemp(prefix="rproxy-h3gw-cfg-")
        try:
            path = os.path.join(d, "gw.yaml")
            text = ("listen: 127.0.0.1:18080\ngroups:\n  - name: g\n    backends: [ { address: 127.0.0.1:9 } ]\n"
                    "    breaker: { consecutive_failures: 3, cool_down: 0s }\nhttp:\n  routes:\n    - name: r\n      prefix: /\n"
                    "      backends: [ { group: g } ]\n      retry: { count: 2, on: [ connect_error%s ], budget: { ratio: -1 } }\n")
            with open(path, "w") as f:
                f.write(text % ", bogus")
            p = subprocess.run([BINARY, "validate", path], capture_output=True, text=True, timeout=30)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn(f"{path}:11:47: unknown value 'bogus', expected one of: connect_error, reset, http_502, http_503", p.stderr + p.stdout)
            with open(path, "w") as f:
                f.write(text % "")
            p = subprocess.run([BINARY, "validate", path], capture_output=True, text=True, timeout=30)
            out = p.stderr + p.stdout
            self.assertNotEqual(p.returncode, 0)
            self.assertIn(f"{path}:5:52: cool_down must be positive", out)
            self.assertIn(f"{path}:11:66: ratio must be between 0 and 10", out)
            init = subprocess.run([BINARY, "init"], capture_output=True, text=True, timeout=30).stdout
            for key in ("# breaker: <breaker_block>", "outlier:", "# retry: <retry_block>", "proxy_protocol:"):
                self.assertIn(key, init)
        finally:
            shutil.rmtree(d, ignore_errors=True)


class LoadToolTest(unittest.TestCase):
    """A canary split measured over 1,000 requests from h2load, and reloads under wrk and h2load
    load against nginx with no failed request."""

    def test_canary_split_over_a_thousand_h2load_requests(self):
        stable, canary = Backend("stable"), Backend("canary")
        port, admin = harness.free_port(), harness.free_port()
        route = "- name: split\n  prefix: /\n  backends: [ { group: stable, weight: 80 }, { group: canary, weight: 20 } ]\n"
        gw = harness.Program(BINARY, base.config(port, admin, [("stable", [stable.port], []), ("canary", [canary.port], [])], route),
                             args=["--workers", "2"], name="h3gw-canary").start(wait_ports=[port, admin])
        try:
            p = subprocess.run(["h2load", "-n", "1000", "-c", "4", "-m", "4", f"http://127.0.0.1:{port}/c"],
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertRegex(p.stdout, r"requests: 1000 total, 1000 started, 1000 done, 1000 succeeded, 0 failed, 0 errored")
        finally:
            self.assertEqual(gw.stop(), 0)
            stable.close()
            canary.close()
        n_stable, n_canary = stable.count("GET"), canary.count("GET")
        print(f"\n  canary split over 1000: stable {n_stable}, canary {n_canary}", file=sys.stderr)
        self.assertEqual(n_stable + n_canary, 1000)
        # Binomial(1000, 0.2): mean 200, sd 12.6; 5 sd either side fails a correct split ~1 in 1.7 million.
        self.assertTrue(137 <= n_canary <= 263, (n_stable, n_canary))

    @harness.need(harness.nginx_path(), "nginx not installed")
    def test_reload_under_wrk_and_h2load_load_to_nginx(self):
        root = tempfile.mkdtemp(prefix="rproxy-www-")
        for v in ("v1", "v2"):
            os.makedirs(os.path.join(root, v))
            with open(os.path.join(root, v, "x"), "w") as f:
                f.write(v)
        for d in (root, os.path.join(root, "v1"), os.path.join(root, "v2")):
            os.chmod(d, 0o755)
        ng_port = harness.free_port()
        ng_dir = tempfile.mkdtemp(prefix="rproxy-nginx-")
        with open(os.path.join(ng_dir, "nginx.conf"), "w") as f:
            f.write(f"""daemon off; pid {ng_dir}/nginx.pid; error_log {ng_dir}/error.log;
events {{ worker_connections 256; }}
http {{ access_log off; client_body_temp_path {ng_dir}/body; proxy_temp_path {ng_dir}/proxy;
  fastcgi_temp_path {ng_dir}/fcgi; uwsgi_temp_path {ng_dir}/uwsgi; scgi_temp_path {ng_dir}/scgi;
  server {{ listen 127.0.0.1:{ng_port}; root {root}; }} }}
""")
        ng = subprocess.Popen([harness.nginx_path(), "-c", os.path.join(ng_dir, "nginx.conf"), "-p", ng_dir],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port, admin = harness.free_port(), harness.free_port()
        route = "- name: www\n  prefix: /x\n  rewrite: /%s/x\n  backends: [ { group: nginx } ]\n"
        gw = None
        try:
            harness.wait_port(ng_port)
            gw = harness.Program(BINARY, base.config(port, admin, [("nginx", [ng_port], [])], route % "v1"), args=["--workers", "2"],
                                 name="h3gw-wrk").start(wait_ports=[port, admin])
            reloads = 0
            for tool in (["wrk", "-t", "2", "-c", "16", "-d", "4s", f"http://127.0.0.1:{port}/x"],
                         ["h2load", "-c", "8", "-m", "10", "-D", "4", f"http://127.0.0.1:{port}/x"]):
                load = subprocess.Popen(tool, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

                def served():
                    code, _, text, _ = base.curl(f"http://127.0.0.1:{admin}/metrics")
                    return code == 200 and (metric(text.decode(), "h3gw_requests_total", route="www", status_class="2xx",
                                                   backend=f"127.0.0.1:{ng_port}") or 0) > 200 * (reloads + 1)
                harness.wait_until(served, timeout=30, what="load through the gateway")
                reloads += 1
                gw.write_config(base.config(port, admin, [("nginx", [ng_port], [])], route % ("v2" if reloads % 2 else "v1")))
                gw.signal(signal.SIGHUP)
                harness.wait_until(lambda: gw.output().count("routes updated") >= reloads, what="the reload")
                out, _ = load.communicate(timeout=60)
                print("\n  " + tool[0] + ": " + " | ".join(l.strip() for l in out.splitlines() if "requests" in l), file=sys.stderr)
                self.assertEqual(load.returncode, 0, out)
                if tool[0] == "wrk":
                    self.assertNotIn("Non-2xx", out)
                    self.assertNotIn("Socket errors", out)
                    self.assertRegex(out, r"\d+ requests in")
                else:
                    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
                    self.assertTrue(m, out)
                    self.assertEqual((m.group(5), m.group(6)), ("0", "0"), out)
                    self.assertEqual(m.group(3), m.group(4), out)
                code, _, body, _ = base.curl(f"http://127.0.0.1:{port}/x")
                self.assertEqual((code, body), (200, b"v2" if reloads % 2 else b"v1"))
        finally:
            if gw:
                self.assertEqual(gw.stop(), 0)
            ng.send_signal(signal.SIGQUIT)
            ng.wait(10)
            shutil.rmtree(root, ignore_errors=True)
            shutil.rmtree(ng_dir, ignore_errors=True)


def make_cert(d, name):
    cert, key = os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                        "-out", cert, "-days", "2", "-subj", "/CN=" + name, "-addext", "subjectAltName=DNS:" + name],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return cert, key


def proxy_v2(src, sport, dst, dport):
    """A PROXY v2 header (TCP over IPv4)."""
    addr = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(addr)) + addr


class ProxyProtocolTlsTest(unittest.TestCase):
    """PROXY v1/v2 before the TLS handshake, from trusted peers; the request forwarded with the
    client address from the header and proto https."""

    @classmethod
    def setUpClass(cls):
        cls.echo = Backend("echo")
        cls.dir = tempfile.mkdtemp(prefix="rproxy-h3gw-pp-")
        cls.cert, cls.key = make_cert(cls.dir, "a.test")
        cls.port, cls.admin, cls.tls_port = harness.free_port(), harness.free_port(), harness.free_port()
        cls.gw = cls.start(["127.0.0.0/8"], "optional")

    @classmethod
    def start(cls, trusted, accept, tls_port=None, name="h3gw-pp"):
        port, admin, tls = (cls.port, cls.admin, cls.tls_port) if tls_port is None else (harness.free_port(), harness.free_port(), tls_port)
        extra = (f"tls:\n  listen: 127.0.0.1:{tls}\n  certificates:\n    - {{ cert: {cls.cert}, key: {cls.key} }}\n"
                 f"proxy_protocol: {{ accept: {accept}, trusted: [ {', '.join(trusted)} ] }}\n")
        gw = harness.Program(BINARY, base.config(port, admin, [("g", [cls.echo.port], [])],
                                                 "- name: all\n  prefix: /\n  backends: [ { group: g } ]\n", extra), name=name)
        return gw.start(wait_ports=[port, admin, tls])

    @classmethod
    def tearDownClass(cls):
        rc = cls.gw.stop()
        cls.echo.close()
        shutil.rmtree(cls.dir, ignore_errors=True)
        if rc != 0:
            cls.gw.dump()
        assert rc == 0, rc

    def tls_request(self, header, port=None, alpn="http/1.1"):
        """Sends `header` (raw bytes) then a TLS handshake and one HTTP/1.1 request; the parsed response."""
        ctx = ssl.create_default_context(cafile=self.cert)
        ctx.set_alpn_protocols([alpn])
        with socket.create_connection(("127.0.0.1", port or self.tls_port), timeout=10) as raw:
            raw.sendall(header)
            with ctx.wrap_socket(raw, server_hostname="a.test") as s:
                s.sendall(b"GET /pp HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
                return base.read_response(s.makefile("rb"))

    def test_v1_and_v2_headers_before_tls_set_the_client_address_and_https(self):
        for header, who in ((b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 443\r\n", "203.0.113.7"),
                            (proxy_v2("198.51.100.9", 40001, "127.0.0.1", 443), "198.51.100.9")):
            status, _, body = self.tls_request(header)
            self.assertEqual(status, 200, body)
            h = json.loads(body)["headers"]
            self.assertEqual(h.get("x-forwarded-for"), who)
            self.assertEqual(h.get("x-forwarded-proto"), "https")
            self.assertEqual(h.get("forwarded"), f"for={who};host=a.test;proto=https")
        # No header at all (optional): a plain TLS client, its own address.
        status, _, body = self.tls_request(b"")
        self.assertEqual((status, json.loads(body)["headers"].get("x-forwarded-for")), (200, "127.0.0.1"))

    def test_curl_haproxy_protocol_over_tls_both_protocols(self):
        for version, want in (("--http1.1", "1.1"), ("--http2", "2")):
            p = subprocess.run(["curl", "-sS", "--max-time", "20", "--haproxy-protocol", version, "--cacert", self.cert,
                                "--resolve", f"a.test:{self.tls_port}:127.0.0.1", "-w", "\n%{http_version} %{http_code}",
                                f"https://a.test:{self.tls_port}/curl"], capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
            body, _, tail = p.stdout.rpartition("\n")
            self.assertEqual(tail, f"{want} 200")
            h = json.loads(body)["headers"]
            self.assertEqual((h.get("x-forwarded-proto"), h.get("x-forwarded-for")), ("https", "127.0.0.1"))
        # Plain HTTP on the other listener says http.
        code, _, body, _ = base.curl(f"http://127.0.0.1:{self.port}/plain")
        self.assertEqual((code, json.loads(body)["headers"].get("x-forwarded-proto")), (200, "http"))

    def test_plain_listener_reads_the_header_too(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(b"PROXY TCP4 192.0.2.44 127.0.0.1 40002 80\r\nGET /plain HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            status, _, body = base.read_response(s.makefile("rb"))
        h = json.loads(body)["headers"]
        self.assertEqual((status, h.get("x-forwarded-for"), h.get("x-forwarded-proto")), (200, "192.0.2.44", "http"))

    def test_untrusted_peer_is_refused_before_the_handshake(self):
        tls = harness.free_port()
        gw = self.start(["10.0.0.0/8"], "optional", tls_port=tls, name="h3gw-pp-untrusted")
        try:
            with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
                self.tls_request(b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 443\r\n", port=tls)
            status, _, body = self.tls_request(b"", port=tls)  # without a header it is a plain client
            self.assertEqual((status, json.loads(body)["headers"].get("x-forwarded-for")), (200, "127.0.0.1"))
        finally:
            self.assertEqual(gw.stop(), 0)


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
