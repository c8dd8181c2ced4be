"""End-to-end tests of apps/h3-gateway: curl and http.client as clients, small Python backends
and nginx (when installed) as servers, all started here on loopback.

Usage: h3_gateway_test.py PATH_TO_H3_GATEWAY [unittest args]"""
import hashlib
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import harness

BINARY = None


class Echo(http.server.BaseHTTPRequestHandler):
    """Answers with JSON naming the backend and what it received; /die-mid dies mid-body."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self):
        try:
            self.respond()
        except (ValueError, OSError):  # a request the gateway cut (a body over a route's limit)
            self.close_connection = True

    def respond(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while (size := int(self.rfile.readline().split(b";")[0], 16)) > 0:
                body += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path.endswith("/die-mid"):
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if self.path.endswith("/slow"):
            time.sleep(3)
        if self.path.endswith("/big"):
            out = b"y" * (8 * 1024 * 1024)
        else:
            out = json.dumps({"backend": self.server.name, "path": self.path,
                              "headers": {k.lower(): v for k, v in self.headers.items()},
                              "body_len": len(body), "body_sha": hashlib.sha256(body).hexdigest()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.send_header("X-Backend-Debug", "on")
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_HEAD = answer


class Backend:
    def __init__(self, name):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
        self.server.daemon_threads = True
        self.server.name = name
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def curl(url, *args, timeout=30):
    """(status, {lowercase header: value}, body bytes, curl exit code)."""
    d = tempfile.mkdtemp(prefix="rproxy-curl-")
    hfile, bfile = os.path.join(d, "h"), os.path.join(d, "b")
    p = subprocess.run(["curl", "-sS", "--max-time", str(timeout), "-o", bfile, "-D", hfile, "-w", "%{http_code}", url, *args],
                       capture_output=True, text=True, timeout=timeout + 10)
    heads = {}
    if os.path.exists(hfile):
        with open(hfile, "rb") as f:
            blocks = [b for b in f.read().decode("latin-1").split("\r\n\r\n") if b.strip()]
        for line in (blocks[-1].split("\r\n")[1:] if blocks else []):
            k, _, v = line.partition(":")
            heads[k.strip().lower()] = v.strip()
    body = b""
    if os.path.exists(bfile):
        with open(bfile, "rb") as f:
            body = f.read()
    shutil.rmtree(d, ignore_errors=True)
    code = int(p.stdout[-3:]) if p.stdout[-3:].isdigit() else 0
    return code, heads, body, p.returncode


def read_response(f):
    """(status, {lowercase header: value}, body) of one Content-Length response from a socket file."""
    line = f.readline()
    if not line:
        raise AssertionError("connection closed before a response")
    status = int(line.split()[1])
    heads = {}
    while (h := f.readline()) not in (b"\r\n", b""):
        k, _, v = h.decode("latin-1").partition(":")
        heads[k.strip().lower()] = v.strip()
    return status, heads, f.read(int(heads.get("content-length", "0")))


def dead_port():
    """A reserved port nothing listens on."""
    return harness.free_port()


def config(port, admin, groups, routes, extra=""):
    out = f"admin: {{ listen: 127.0.0.1:{admin} }}\nlisten: 127.0.0.1:{port}\ngroups:\n"
    for name, ports, more in groups:
        out += f"  - name: {name}\n    backends: [ {', '.join(f'{{ address: 127.0.0.1:{p} }}' for p in ports)} ]\n"
        out += "".join(f"    {line}\n" for line in more)
    return out + "http:\n  routes:\n" + "".join("    " + line + "\n" for line in routes.strip("\n").split("\n")) + extra


class GatewayTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.a, cls.b, cls.c = Backend("a"), Backend("b"), Backend("canary")
        cls.dir = tempfile.mkdtemp(prefix="rproxy-h3gw-")
        cls.key = "k-" + os.urandom(12).hex()
        cls.keys = os.path.join(cls.dir, "keys.txt")
        with open(cls.keys, "w") as f:
            f.write(f"{hashlib.sha256(cls.key.encode()).hexdigest()} client-one\n")
        cls.port, cls.admin = harness.free_port(), harness.free_port()
        cls.routes = """- name: users
  hosts: [ api.test ]
  path: /v1/users/:id
  rewrite: /users/{id}
  backends: [ { group: main } ]
  request_headers: { set: { X-Route: users }, remove: [ X-Debug ], add: { X-Extra: one } }
  response_headers: { set: { Cache-Control: no-store }, remove: [ X-Backend-Debug ] }
- name: wild
  hosts: [ "*.wild.test" ]
  prefix: /
  backends: [ { group: other } ]
- name: static
  prefix: /static
  strip_prefix: /static
  backends: [ { group: main } ]
  max_body: 1KiB
- name: canary
  path: /split/*rest
  backends: [ { group: main, weight: 80 }, { group: canary, weight: 20 } ]
- name: private
  prefix: /private
  backends: [ { group: main } ]
  middleware: [ api_keys ]
- name: files
  prefix: /files
  backends: [ { group: main } ]
- name: slow
  prefix: /slow
  backends: [ { group: main } ]
  timeout: 400ms
- name: blocked
  prefix: /blocked
  backends: [ { group: main } ]
  middleware: [ ip_filter ]
- name: limited
  prefix: /limited
  backends: [ { group: main } ]
  middleware: [ rate_limit ]
- name: down
  prefix: /down
  backends: [ { group: down } ]
"""
        cls.dead = dead_port()
        cls.groups = [("main", [cls.a.port], []), ("other", [cls.b.port], []), ("canary", [cls.c.port], []),
                      ("down", [cls.dead], ["health_check: { type: tcp, interval: 200ms, timeout: 200ms, rise: 1, fall: 1 }"])]
        cls.extra = (f"api_keys: {{ file: {cls.keys} }}\nretry_after: 7\n"
                     "ip_filter: { deny: [ 127.0.0.0/8 ] }\n"
                     "rate_limit:\n  key: [ ip ]\n  tiers: [ { name: default, limit: 3, window: 1m } ]\n")
        cls.gw = harness.Program(BINARY, config(cls.port, cls.admin, cls.groups, cls.routes, cls.extra), args=["--workers", "2"],
                                 name="h3gw")
        cls.gw.start(wait_ports=[cls.port, cls.admin])
        cls.url = f"http://127.0.0.1:{cls.port}"

    @classmethod
    def tearDownClass(cls):
        rc = cls.gw.stop()
        for b in (cls.a, cls.b, cls.c):
            b.close()
        if rc != 0:
            cls.gw.dump()
        assert rc == 0, rc

    def get(self, path, *args):
        code, heads, body, rc = curl(self.url + path, *args)
        self.assertEqual(rc, 0, (path, body))
        return code, heads, body

    def test_routing_table_params_rewrites_and_header_edits(self):
        code, heads, body = self.get("/v1/users/42?x=1&y=%20", "-H", "Host: api.test", "-H", "X-Debug: secret",
                                     "-H", "X-Route: forged")
        self.assertEqual(code, 200, body)
        seen = json.loads(body)
        self.assertEqual(seen["backend"], "a")
        self.assertEqual(seen["path"], "/users/42?x=1&y=%20")
        self.assertEqual(seen["headers"].get("x-route"), "users")
        self.assertEqual(seen["headers"].get("x-extra"), "one")
        self.assertNotIn("x-debug", seen["headers"])
        self.assertEqual(heads.get("cache-control"), "no-store")
        self.assertNotIn("x-backend-debug", heads)
        # Another host: that route is not there; the wildcard host goes to its own group.
        code, _, body = self.get("/v1/users/42", "-H", "Host: other.test")
        self.assertEqual(code, 404)
        self.assertEqual(json.loads(body), {"error": "not_found", "message": "no route"})
        code, _, body = self.get("/v1/users/42", "-H", "Host: x.wild.test")
        self.assertEqual((code, json.loads(body)["backend"], json.loads(body)["path"]), (200, "b", "/v1/users/42"))
        # strip_prefix, and a normalised path is what is forwarded.
        code, _, body = self.get("/static/css/../app.css", "--path-as-is")
        self.assertEqual((code, json.loads(body)["path"]), (200, "/app.css"))
        code, _, body = self.get("/static")
        self.assertEqual((code, json.loads(body)["path"]), (200, "/"))

    def test_route_body_limit_is_413(self):
        code, _, body = self.get("/static/up", "--data-binary", "x" * 2000)
        self.assertEqual(code, 413)
        self.assertEqual(json.loads(body), {"error": "body_too_large", "route": "static", "message": "request body too large"})
        code, _, body = self.get("/static/up", "--data-binary", "x" * 1000)
        self.assertEqual((code, json.loads(body)["body_len"]), (200, 1000))
        code, _, body = self.get("/static/up", "--data-binary", "x" * 2000, "-H", "Transfer-Encoding: chunked")
        self.assertEqual(code, 413)
        self.assertEqual(json.loads(body)["error"], "body_too_large")

    def test_keep_alive_after_a_refusal(self):
        """A 401 (and a 404) answered by a stage leaves the connection open: the next request on
        the same socket is served."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            f = s.makefile("rb")
            for path, want in (("/private/x", 401), ("/nothing-here", 404), ("/private/y", 401), ("/files/x", 200)):
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
                status, heads, body = read_response(f)
                self.assertEqual(status, want, (path, body))
                self.assertNotEqual(heads.get("connection", "").lower(), "close", path)
            # POST with its whole body, refused before the body is read: skipped, still open.
            s.sendall(b"POST /private/z HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
            self.assertEqual(read_response(f)[0], 401)
            s.sendall(b"GET /files/last HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            status, heads, body = read_response(f)
            self.assertEqual((status, json.loads(body)["path"]), (200, "/files/last"))
            self.assertEqual(f.read(), b"")  # closed after the request that asked for it

    def test_middleware_only_on_the_routes_that_list_it(self):
        code, _, body = self.get("/private/x")
        self.assertEqual(code, 401)
        self.assertEqual(json.loads(body)["error"], "unauthorized")
        code, _, body = self.get("/private/x", "-H", f"X-API-Key: {self.key}")
        self.assertEqual(code, 200, body)
        self.assertNotIn("x-api-key", json.loads(body)["headers"])  # the key is not passed on
        self.assertNotIn(self.key.encode(), body)
        code, _, _ = self.get("/files/x")
        self.assertEqual(code, 200)
        # The IP filter only where listed (it would refuse every loopback client).
        code, _, body = self.get("/blocked/x")
        self.assertEqual((code, json.loads(body)["error"], json.loads(body)["route"]), (403, "forbidden", "blocked"))
        # The rate limit only where listed: 3 a minute, then 429 with X-RateLimit-* and Retry-After.
        for i in range(3):
            code, heads, _ = self.get("/limited/x")
            self.assertEqual((code, heads.get("x-ratelimit-remaining")), (200, str(2 - i)))
        code, heads, body = self.get("/limited/x")
        self.assertEqual((code, json.loads(body)["error"]), (429, "rate_limited"))
        self.assertEqual(heads.get("x-ratelimit-limit"), "3")
        self.assertTrue(int(heads.get("retry-after", "0")) > 0, heads)
        for _ in range(5):
            self.assertEqual(self.get("/files/x")[0], 200)

    def test_route_timeout_is_a_504_and_metrics_count_by_route_status_and_backend(self):
        code, _, body = self.get("/slow/slow")
        self.assertEqual(code, 504)
        self.assertEqual(json.loads(body), {"error": "backend_timeout", "route": "slow"})
        code, _, _ = self.get("/files/after-timeout")
        self.assertEqual(code, 200)
        _, _, text = self.get(f"/metrics", "--connect-to", f"::127.0.0.1:{self.admin}")
        text = text.decode()
        series = f'h3gw_requests_total{{route="files",status_class="2xx",backend="127.0.0.1:{self.a.port}"}}'
        self.assertRegex(text, re.escape(series) + r" [1-9]")
        series = f'h3gw_requests_total{{route="slow",status_class="5xx",backend="127.0.0.1:{self.a.port}"}}'
        self.assertRegex(text, re.escape(series) + r" 1\n")
        # Flows that never had a request (a kept connection closing) are not requests.
        self.assertRegex(text, re.escape('h3gw_requests_total{route="",status_class="none",backend=""}') + r" 0\n")

    def test_canary_ratio(self):
        counts = {"a": 0, "canary": 0}
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        n = 400
        for i in range(n):
            conn.request("GET", f"/split/{i}")
            r = conn.getresponse()
            self.assertEqual(r.status, 200)
            counts[json.loads(r.read())["backend"]] += 1
        conn.close()
        # Binomial(400, 0.2): mean 80, sd 8; 5 sd either side fails a correct split ~1 in 1.7 million.
        self.assertTrue(40 <= counts["canary"] <= 120, counts)
        self.assertEqual(counts["a"] + counts["canary"], n)

    def test_group_down_is_503_json_with_retry_after(self):
        def refused():
            code, heads, body, _ = curl(self.url + "/down/x")
            return (code, heads, body) if code == 503 else None
        code, heads, body = harness.wait_until(refused, timeout=10, what="the dead group's backend marked down")
        self.assertEqual(json.loads(body), {"error": "no_backend", "route": "down", "message": "no backend available"})
        self.assertEqual(heads.get("retry-after"), "7")
        self.assertEqual(heads.get("content-type"), "application/json")
        self.assertIn("backend down", self.gw.output())

    def test_bodies_both_ways_chunked_and_a_backend_dying_mid_response(self):
        data = os.urandom(6 * 1024 * 1024)
        path = os.path.join(self.dir, "up.bin")
        with open(path, "wb") as f:
            f.write(data)
        for extra in ([], ["-H", "Transfer-Encoding: chunked"]):
            code, _, body = self.get("/files/up", "--data-binary", "@" + path, *extra)
            self.assertEqual(code, 200)
            got = json.loads(body)
            self.assertEqual((got["body_len"], got["body_sha"]), (len(data), hashlib.sha256(data).hexdigest()))
        code, _, body = self.get("/files/big")
        self.assertEqual((code, len(body)), (200, 8 * 1024 * 1024))
        code, _, body, rc = curl(self.url + "/files/die-mid")
        self.assertNotEqual(rc, 0)  # a truncated body: curl says so, it never sees a whole wrong one
        code, _, body = self.get("/files/after")
        self.assertEqual(code, 200)


class AdminApiTest(unittest.TestCase):
    """The admin REST API: behind the token; weights, drain and reload act at once and show in
    routing and in /metrics."""

    @classmethod
    def setUpClass(cls):
        cls.x, cls.y = Backend("x"), Backend("y")
        cls.dir = tempfile.mkdtemp(prefix="rproxy-h3gw-api-")
        cls.token = "t-" + os.urandom(16).hex()
        cls.token_file = os.path.join(cls.dir, "token")
        with open(cls.token_file, "w") as f:
            f.write(cls.token + "\n")
        cls.port, cls.admin = harness.free_port(), harness.free_port()
        cls.groups = [("pair", [cls.x.port, cls.y.port], ["balancer: weighted_round_robin"])]
        cls.route = "- name: pair\n  prefix: /p\n  backends: [ { group: pair } ]\n"
        cls.gw = harness.Program(BINARY, cls.conf(cls.route), args=["--workers", "1"], name="h3gw-api").start(wait_ports=[cls.port, cls.admin])
        cls.auth = ["-H", f"Authorization: Bearer {cls.token}"]
        cls.xid, cls.yid = f"127.0.0.1:{cls.x.port}", f"127.0.0.1:{cls.y.port}"

    @classmethod
    def conf(cls, routes):
        text = config(cls.port, cls.admin, cls.groups, routes)
        return text.replace(f"admin: {{ listen: 127.0.0.1:{cls.admin} }}",
                            f"admin: {{ listen: 127.0.0.1:{cls.admin}, token_file: {cls.token_file} }}")

    @classmethod
    def tearDownClass(cls):
        rc = cls.gw.stop()
        for b in (cls.x, cls.y):
            b.close()
        if rc != 0 or cls.token in cls.gw.output():
            cls.gw.dump()
        assert rc == 0, rc
        assert cls.token not in cls.gw.output(), "the admin token was logged"

    def api(self, method, path, body=None, auth=True):
        args = ["-X", method] + (self.auth if auth else [])
        if body is not None:
            args += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(body)]
        code, _, out, rc = curl(f"http://127.0.0.1:{self.admin}{path}", *args)
        self.assertEqual(rc, 0)
        return code, (json.loads(out) if out.startswith(b"{") else out)

    def backends(self):
        code, doc = self.api("GET", "/api/backends")
        self.assertEqual(code, 200, doc)
        return {b["id"]: b for g in doc["groups"] for b in g["backends"]}

    def metrics(self):
        code, _, text, _ = curl(f"http://127.0.0.1:{self.admin}/metrics")
        self.assertEqual(code, 200)
        return text.decode()

    def metric(self, text, name, **labels):
        want = ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}") if labels else ""
        m = re.search(r"(?m)^" + re.escape(name + want) + r" (\S+)$", text)
        return float(m.group(1)) if m else None

    def spread(self, n):
        """How many of n requests (one kept connection) each backend served."""
        counts = {"x": 0, "y": 0}
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        for i in range(n):
            conn.request("GET", f"/p/{i}")
            r = conn.getresponse()
            self.assertEqual(r.status, 200)
            counts[json.loads(r.read())["backend"]] += 1
        conn.close()
        return counts

    def setUp(self):
        for b in (self.xid, self.yid):  # every test starts from weight 1, undrained
            self.assertEqual(self.api("PUT", f"/api/backends/pair/{b}/weight", {"weight": 1})[0], 200)
            self.assertEqual(self.api("POST", f"/api/backends/pair/{b}/undrain")[0], 200)

    def test_token_is_required_even_to_read(self):
        code, _ = self.api("GET", "/api/backends", auth=False)
        self.assertEqual(code, 401)
        code, _, _, _ = curl(f"http://127.0.0.1:{self.admin}/api/backends", "-H", "Authorization: Bearer wrong")
        self.assertEqual(code, 401)
        code, _ = self.api("PUT", f"/api/backends/pair/{self.xid}/weight", {"weight": 5}, auth=False)
        self.assertEqual(code, 401)
        self.assertEqual(self.backends()[self.xid]["weight"], 1)
        code, _, _, _ = curl(f"http://127.0.0.1:{self.admin}/metrics")  # scrapes stay open
        self.assertEqual(code, 200)

    def test_routes_and_backends(self):
        code, doc = self.api("GET", "/api/routes")
        self.assertEqual((code, doc), (200, {"routes": [{"name": "pair", "groups": ["pair"]}]}))
        b = self.backends()
        self.assertEqual(set(b), {self.xid, self.yid})
        for k in ("state", "available", "drained", "weight", "in_flight", "selections", "successes", "failures",
                  "ejections", "breaker", "latency_ewma_seconds"):
            self.assertIn(k, b[self.xid])
        self.assertEqual((b[self.xid]["state"], b[self.xid]["weight"], b[self.xid]["in_flight"]), ("healthy", 1, 0))
        before = b[self.xid]["selections"] + b[self.yid]["selections"]
        self.spread(4)
        after = self.backends()
        self.assertEqual(after[self.xid]["selections"] + after[self.yid]["selections"], before + 4)
        code, doc = self.api("PUT", f"/api/backends/pair/{self.xid}/weight", {"weight": "heavy"})
        self.assertEqual((code, doc["error"]), (400, "bad_request"))
        code, doc = self.api("POST", "/api/backends/pair/127.0.0.1:1/drain")
        self.assertEqual((code, doc["error"]), (404, "not_found"))

    def test_weight_change_shows_in_routing_and_metrics(self):
        self.assertLessEqual(abs(self.spread(40)["x"] - 20), 2)
        code, doc = self.api("PUT", f"/api/backends/pair/{self.yid}/weight", {"weight": 3})
        self.assertEqual((code, doc["weight"]), (200, 3))
        self.assertEqual(self.metric(self.metrics(), "rproxy_backend_weight", route="pair", backend=self.yid), 3)
        got = self.spread(200)
        self.assertLessEqual(abs(got["y"] - 150), 3, got)  # smooth weighted round robin, one worker: 3 in 4
        code, _ = self.api("POST", f"/api/backends/pair/{self.yid}/weight", {"weight": 0})
        self.assertEqual(code, 200)
        self.assertEqual(self.spread(20), {"x": 20, "y": 0})
        text = self.metrics()
        self.assertEqual(self.metric(text, "rproxy_backend_weight", route="pair", backend=self.yid), 0)
        self.assertEqual(self.metric(text, "rproxy_backend_up", route="pair", backend=self.yid), 0)

    def test_drain_stops_new_requests_and_undrain_brings_them_back(self):
        code, doc = self.api("POST", f"/api/backends/pair/{self.xid}/drain")
        self.assertEqual((code, doc["state"], doc["drained"]), (200, "draining", True))
        self.assertEqual(self.metric(self.metrics(), "rproxy_backend_state", route="pair", backend=self.xid, state="draining"), 1)
        self.assertEqual(self.spread(30), {"x": 0, "y": 30})
        code, doc = self.api("POST", f"/api/backends/pair/{self.xid}/undrain")
        self.assertEqual((code, doc["state"]), (200, "healthy"))
        self.assertEqual(self.metric(self.metrics(), "rproxy_backend_state", route="pair", backend=self.xid, state="healthy"), 1)
        got = self.spread(10)
        self.assertGreaterEqual(min(got.values()), 3, got)

    def test_latency_histograms_and_connections_in_metrics(self):
        self.spread(10)
        text = self.metrics()
        n = self.metric(text, "h3gw_request_duration_seconds_count", route="pair")
        self.assertIsNotNone(n)
        self.assertGreaterEqual(n, 10)
        inf = self.metric(text, "h3gw_request_duration_seconds_bucket", route="pair", le="+Inf")
        self.assertEqual(inf, n)
        up = self.metric(text, "h3gw_upstream_duration_seconds_count", route="pair", backend=self.xid)
        self.assertGreaterEqual(up, 5)
        self.assertGreater(self.metric(text, "h3gw_upstream_duration_seconds_sum", route="pair", backend=self.xid), 0)
        self.assertRegex(text, r"# TYPE h3gw_request_duration_seconds histogram\n")
        with socket.create_connection(("127.0.0.1", self.port), timeout=10):
            harness.wait_until(lambda: self.metric(self.metrics(), "h3gw_connections_active") == 1, what="one open connection")
        harness.wait_until(lambda: self.metric(self.metrics(), "h3gw_connections_active") == 0, what="no open connection")

    def test_reload_via_rest(self):
        try:
            self.gw.write_config(self.conf(self.route + "- name: extra\n  prefix: /e\n  backends: [ { group: pair } ]\n"))
            code, doc = self.api("POST", "/api/reload")
            self.assertEqual((code, doc), (200, {"reloaded": True}))
            code, doc = self.api("GET", "/api/routes")
            self.assertEqual([r["name"] for r in doc["routes"]], ["pair", "extra"])
            code, _, body, _ = curl(f"http://127.0.0.1:{self.port}/e/1")
            self.assertEqual((code, json.loads(body)["path"]), (200, "/e/1"))
            self.gw.write_config(self.conf(self.route.replace("group: pair", "group: nope")))
            code, doc = self.api("POST", "/api/reload")
            self.assertEqual((code, doc["reloaded"]), (422, False))
            self.assertEqual(len(self.api("GET", "/api/routes")[1]["routes"]), 2)  # the previous config serves
            self.assertEqual(self.api("POST", "/api/reload", auth=False)[0], 401)
        finally:
            self.gw.write_config(self.conf(self.route))
            self.assertEqual(self.api("POST", "/api/reload")[0], 200)

    def test_restart_only_keys_listed_by_validate_and_warned_on_reload(self):
        """`validate` lists what a reload keeps (config::restart_only); a reload that moves the
        listener says "restart required" naming it, keeps the old listener, and applies the rest
        (a new route)."""
        v = subprocess.run([BINARY, "validate", self.gw.config], capture_output=True, text=True, timeout=30)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertIn("restart-only keys (a reload keeps the values the process started with):", v.stdout)
        for line in (f"  listen: 127.0.0.1:{self.port}", "  tls: off", "  tls.listen: (unset)", "  quic: (unset)",
                     "  limits.max_body: 8MiB", "  limits.idle_timeout: 1m", "  h2: ", "  forwarding: ", "  audit: ", "  redis: (unset)"):
            self.assertIn("\n" + line, v.stdout)
        self.assertIn(f'  admin: listen: "127.0.0.1:{self.admin}"; token_file: "{self.token_file}"', v.stdout)
        moved = harness.free_port()
        # Each write reloads at least twice: the API's reload and the file watcher's (debounced), in
        # either order; a watcher reload left pending by an earlier test may land too. Reloads run
        # one at a time, each reads the file as it is then and logs its "restart required" just
        # before its "config reloaded"; so the last reload logged after the API's read the new file.
        def reloads_since(mark):
            lines = self.gw.output()[mark:].splitlines()
            return [(lines[i - 1] if i else "") for i, l in enumerate(lines) if "config reloaded" in l]
        mark = len(self.gw.output())
        try:
            text = self.conf(self.route + "- name: extra\n  prefix: /e\n  backends: [ { group: pair } ]\n")
            self.gw.write_config(text.replace(f"listen: 127.0.0.1:{self.port}\n", f"listen: 127.0.0.1:{moved}\n"))
            code, doc = self.api("POST", "/api/reload")
            self.assertEqual((code, doc), (200, {"reloaded": True}))
            harness.wait_until(lambda: len(reloads_since(mark)) >= 2, what="the API's and the watcher's reloads")
            last = reloads_since(mark)[-1]
            self.assertTrue(last.endswith("restart required: these changes apply at the next start keys=listen"), last)
            code, _, body, _ = curl(f"http://127.0.0.1:{self.port}/e/1")  # the new route, on the old listener
            self.assertEqual((code, json.loads(body)["path"]), (200, "/e/1"))
            with self.assertRaises(OSError):
                socket.create_connection(("127.0.0.1", moved), timeout=2).close()
        finally:
            mark = len(self.gw.output())
            self.gw.write_config(self.conf(self.route))
            self.assertEqual(self.api("POST", "/api/reload")[0], 200)
            harness.wait_until(lambda: len(reloads_since(mark)) >= 2, what="the API's and the watcher's reloads")
        # Back to the listener it runs with: no warning.
        self.assertNotIn("restart required", reloads_since(mark)[-1])


class FailoverAndReloadTest(unittest.TestCase):
    def test_failover_to_the_live_backend(self):
        live = Backend("live")
        port, admin = harness.free_port(), harness.free_port()
        groups = [("g", [dead_port(), live.port],
                   ["health_check: { type: tcp, interval: 200ms, timeout: 200ms, rise: 1, fall: 1 }"])]
        gw = harness.Program(BINARY, config(port, admin, groups, "- name: all\n  prefix: /\n  backends: [ { group: g } ]\n"),
                             name="h3gw-fo").start(wait_ports=[port, admin])
        try:
            for i in range(40):  # before and after the checker marks the dead one: every request served
                code, _, body, rc = curl(f"http://127.0.0.1:{port}/{i}")
                self.assertEqual((rc, code, json.loads(body)["backend"]), (0, 200, "live"))
            harness.wait_until(lambda: "backend down" in gw.output(), what="the dead backend marked down")
        finally:
            self.assertEqual(gw.stop(), 0)
            live.close()

    def test_reload_under_load_changes_a_route_with_no_failed_request(self):
        a, b = Backend("a"), Backend("b")
        port, admin = harness.free_port(), harness.free_port()
        groups = [("one", [a.port], []), ("two", [b.port], [])]
        route = "- name: api\n  prefix: /api\n  backends: [ { group: %s } ]\n  rewrite: %s\n"
        gw = harness.Program(BINARY, config(port, admin, groups, route % ("one", "/v1")), args=["--workers", "2"],
                             name="h3gw-rl").start(wait_ports=[port, admin])
        results, stop = [], threading.Event()

        def load():
            while not stop.is_set():
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                try:
                    c.request("GET", "/api")
                    r = c.getresponse()
                    results.append((r.status, json.loads(r.read())))
                except Exception as e:  # any failure is recorded and fails the test
                    results.append((0, repr(e)))
                finally:
                    c.close()
        threads = [threading.Thread(target=load) for _ in range(3)]
        try:
            for t in threads:
                t.start()
            harness.wait_until(lambda: len(results) > 50, what="traffic before the reload")
            gw.write_config(config(port, admin, groups, route % ("two", "/v2")))
            gw.signal(signal.SIGHUP)
            harness.wait_until(lambda: any(s == 200 and r["backend"] == "b" for s, r in results[-20:]), what="the new route")
            n = len(results)
            harness.wait_until(lambda: len(results) > n + 50, what="traffic after the reload")
            # A bad file is refused with its line and column; the routes stay as they were.
            gw.write_config(config(port, admin, groups, route % ("three", "/v3")))
            gw.signal(signal.SIGHUP)
            harness.wait_until(lambda: "no group named 'three'" in gw.output(), what="the bad reload logged")
            n = len(results)
            harness.wait_until(lambda: len(results) > n + 20, what="traffic after the bad reload")
        finally:
            stop.set()
            for t in threads:
                t.join()
            rc = gw.stop()
            a.close()
            b.close()
        self.assertEqual(rc, 0)
        bad = [r for r in results if r[0] != 200]
        self.assertEqual(bad, [], f"{len(bad)} of {len(results)} failed")
        self.assertTrue(all((r["backend"], r["path"]) in (("a", "/v1"), ("b", "/v2")) for _, r in results))
        self.assertEqual(results[-1][1]["path"], "/v2")

    @harness.need(harness.nginx_path(), "nginx not installed")
    def test_nginx_backend_large_file(self):
        root = tempfile.mkdtemp(prefix="rproxy-www-")
        os.makedirs(os.path.join(root, "assets"))
        data = os.urandom(3 * 1024 * 1024)
        with open(os.path.join(root, "assets", "big.bin"), "wb") as f:
            f.write(data)
        for d in (root, os.path.join(root, "assets")):
            os.chmod(d, 0o755)
        os.chmod(os.path.join(root, "assets", "big.bin"), 0o644)
        ng_port = harness.free_port()
        ng_dir = tempfile.mkdtemp(prefix="rproxy-nginx-")
        with open(os.path.join(ng_dir, "nginx.conf"), "w") as f:
            f.write(f"""daemon off; pid {ng_dir}/nginx.pid; error_log {ng_dir}/error.log;
events {{ worker_connections 64; }}
http {{ access_log off; client_body_temp_path {ng_dir}/body; proxy_temp_path {ng_dir}/proxy;
  fastcgi_temp_path {ng_dir}/fcgi; uwsgi_temp_path {ng_dir}/uwsgi; scgi_temp_path {ng_dir}/scgi;
  server {{ listen 127.0.0.1:{ng_port}; root {root}; }} }}
""")
        ng = subprocess.Popen([harness.nginx_path(), "-c", os.path.join(ng_dir, "nginx.conf"), "-p", ng_dir],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port, admin = harness.free_port(), harness.free_port()
        gw = None
        try:
            harness.wait_port(ng_port)
            route = "- name: www\n  prefix: /www\n  strip_prefix: /www\n  backends: [ { group: nginx } ]\n"
            gw = harness.Program(BINARY, config(port, admin, [("nginx", [ng_port], [])], route), name="h3gw-ng")
            gw.start(wait_ports=[port, admin])
            for _ in range(2):
                code, _, body, rc = curl(f"http://127.0.0.1:{port}/www/assets/big.bin")
                self.assertEqual((rc, code), (0, 200))
                self.assertEqual(hashlib.sha256(body).hexdigest(), hashlib.sha256(data).hexdigest())
            code, _, _, _ = curl(f"http://127.0.0.1:{port}/www/missing")
            self.assertEqual(code, 404)
        finally:
            if gw:
                self.assertEqual(gw.stop(), 0)
            ng.send_signal(signal.SIGQUIT)
            ng.wait(10)


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
