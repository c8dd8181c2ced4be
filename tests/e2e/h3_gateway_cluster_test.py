"""Two apps/h3-gateway instances sharing state through one Redis (started here, on a free
loopback port: redis_fixture.RedisServer): one rate limit (exact: together they admit exactly
the limit; batched: within the stated bound), bans made on one enforced on the other, Redis
killed (both keep serving, say degraded, recover by themselves) and paused (answers still come).

Usage: h3_gateway_cluster_test.py PATH_TO_H3_GATEWAY [unittest args]"""
import http.server
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import harness
from redis_fixture import RedisServer, redis_available

BINARY = None
LIMIT = 10


class Ok(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def curl(url, *args, timeout=10):
    """(status, body); status 0 when curl got no answer within timeout."""
    r = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", str(timeout), *args, url],
                       capture_output=True, text=True)
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body


def gateway_config(port, admin, backend, redis_port, bans_file):
    return f"""admin: {{ listen: 127.0.0.1:{admin} }}
listen: 127.0.0.1:{port}
groups:
  - name: main
    backends: [ {{ address: 127.0.0.1:{backend} }} ]
http:
  routes:
    - name: exact
      prefix: /exact
      backends: [ {{ group: main }} ]
      middleware: [ rate_limit ]
    - name: batched
      prefix: /batched
      backends: [ {{ group: main }} ]
      middleware: [ rate_limit ]
    - name: closed
      prefix: /closed
      backends: [ {{ group: main }} ]
      middleware: [ rate_limit ]
    - name: guarded
      prefix: /guarded
      backends: [ {{ group: main }} ]
      middleware: [ bans ]
    - name: open
      prefix: /open
      backends: [ {{ group: main }} ]
      middleware: []
default_middleware: []
bans: {{ file: {bans_file} }}
rate_limit:
  key: [ ip, route ]
  tiers: [ {{ name: default, limit: {LIMIT}, window: 10m }} ]
  distributed:
    mode: exact
    sync_interval: 20ms
    routes:
      - {{ route: batched, mode: batched }}
      - {{ route: closed, mode: exact, on_failure: closed }}
redis:
  address: 127.0.0.1:{redis_port}
  key_prefix: "e2e:"
  command_timeout: 300ms
  connect_timeout: 500ms
  reconnect_min: 50ms
  reconnect_max: 400ms
"""


def metric(admin, name):
    code, text = curl(f"http://127.0.0.1:{admin}/metrics")
    m = re.search(rf"^{name} (\S+)$", text, re.M) if code == 200 else None
    return float(m.group(1)) if m else None


@harness.need(redis_available(), "redis-server is not installed (scripts/setup installs it)")
class ClusterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer()
        cls.backend = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
        cls.backend.daemon_threads = True
        threading.Thread(target=cls.backend.serve_forever, daemon=True).start()
        cls.dir = tempfile.mkdtemp(prefix="rproxy-h3gw-cluster-")
        cls.gws = []
        for name in ("a", "b"):
            bans = os.path.join(cls.dir, f"bans-{name}.txt")
            open(bans, "w").close()
            port, admin = harness.free_port(), harness.free_port()
            gw = harness.Program(BINARY, gateway_config(port, admin, cls.backend.server_address[1], cls.redis.port, bans),
                                 args=["--workers", "2"], name=f"h3gw-cluster-{name}")
            gw.port, gw.admin, gw.bans = port, admin, bans
            gw.start(wait_ports=[port, admin])
            cls.gws.append(gw)
        cls.a, cls.b = cls.gws
        for gw in cls.gws:
            harness.wait_until(lambda: metric(gw.admin, "rproxy_cluster_degraded") == 0, timeout=10, what="connected to Redis")

    @classmethod
    def tearDownClass(cls):
        try:
            for gw in cls.gws:
                assert gw.stop() == 0, "the gateway did not exit cleanly"
                assert "secret" not in gw.output()
        finally:
            cls.redis.kill()
            cls.backend.shutdown()

    def get(self, gw, path, timeout=10):
        return curl(f"http://127.0.0.1:{gw.port}{path}", timeout=timeout)[0]

    def window_total(self, route):
        """The batched counter of the current window for (ip 127.0.0.1, route) in Redis."""
        script = ("local n = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do n = n + tonumber(redis.call('GET', k)) end return n")
        return self.redis.command("EVAL", script, "0", f"e2e:rlb{{*route={route}*")

    def test_1_exact_limit_is_shared(self):
        codes = [self.get(self.a if i % 2 == 0 else self.b, "/exact") for i in range(3 * LIMIT)]
        self.assertEqual(codes.count(200), LIMIT, codes)
        self.assertEqual(codes.count(429), 2 * LIMIT, codes)
        # each admitted some: the limit is one, not one per instance
        self.assertGreater(codes[0::2].count(200), 0)
        self.assertGreater(codes[1::2].count(200), 0)

    def test_2_batched_limit_within_bound(self):
        # Instance a alone takes the whole limit; its counts reach Redis at its next sync.
        # Its two workers count apart until their syncs answer: each admits at most the limit, and
        # together at least the limit (docs/scaling.md, batched).
        codes_a = [self.get(self.a, "/batched") for _ in range(2 * LIMIT + 5)]
        admitted_a = codes_a.count(200)
        self.assertGreaterEqual(admitted_a, LIMIT, codes_a)
        self.assertLessEqual(admitted_a, 2 * LIMIT, codes_a)
        self.assertEqual(codes_a[-3:], [429, 429, 429], codes_a)
        harness.wait_until(lambda: self.window_total("batched") == admitted_a, timeout=5, what="a's counts in Redis")
        # Instance b admits only what it lets through before its first sync answers (per worker),
        # then refuses: the bound is the limit plus what one interval lets through.
        codes_b = [self.get(self.b, "/batched") for _ in range(2 * LIMIT)]
        admitted_b = codes_b.count(200)
        sys.stderr.write(f"batched: a admitted {admitted_a}, b admitted {admitted_b} of {len(codes_b)} after a's counts were synced\n")
        self.assertLess(admitted_b, LIMIT, codes_b)  # b alone would have admitted the whole limit
        self.assertEqual(codes_b[-3:], [429, 429, 429], codes_b)
        harness.wait_until(lambda: self.window_total("batched") == admitted_a + admitted_b, timeout=5, what="b's counts in Redis")

    def test_3_ban_on_one_enforced_on_the_other(self):
        self.assertEqual(self.get(self.b, "/guarded"), 200)
        # an admin API ban on a
        code, _ = curl(f"http://127.0.0.1:{self.a.admin}/api/bans?kind=addr&subject=127.0.0.1&ttl=600&reason=e2e", "-X", "POST")
        self.assertEqual(code, 200)
        t0 = time.monotonic()
        harness.wait_until(lambda: self.get(self.b, "/guarded") == 403, timeout=5, what="b enforcing a's ban")
        took = time.monotonic() - t0
        sys.stderr.write(f"ban via a's admin API enforced on b after {took:.3f}s\n")
        self.assertLess(took, 1.0)
        self.assertEqual(self.get(self.a, "/guarded"), 403)
        self.assertEqual(self.get(self.b, "/open"), 200)  # only routes naming bans
        # lifted on b: lifted on a
        code, _ = curl(f"http://127.0.0.1:{self.b.admin}/api/bans?kind=addr&subject=127.0.0.1", "-X", "DELETE")
        self.assertEqual(code, 200)
        harness.wait_until(lambda: self.get(self.a, "/guarded") == 200, timeout=5, what="a lifting the ban")
        # a ban file edit on b (and a reload) reaches a
        with open(self.b.bans, "w") as f:
            f.write("# rproxy bans v1\naddr 127.0.0.0/8 0 from%20the%20file\n")
        self.b.signal(signal.SIGHUP)
        t0 = time.monotonic()
        harness.wait_until(lambda: self.get(self.a, "/guarded") == 403, timeout=10, what="a enforcing b's file ban")
        sys.stderr.write(f"ban from b's file enforced on a after {time.monotonic() - t0:.3f}s (reload included)\n")
        # an instance started later learns it from Redis
        port, admin = harness.free_port(), harness.free_port()
        late_bans = os.path.join(self.dir, "bans-late.txt")
        open(late_bans, "w").close()
        late = harness.Program(BINARY, gateway_config(port, admin, self.backend.server_address[1], self.redis.port, late_bans),
                               args=["--workers", "1"], name="h3gw-cluster-late")
        late.port, late.admin = port, admin
        late.start(wait_ports=[port, admin])
        try:
            harness.wait_until(lambda: self.get(late, "/guarded") == 403, timeout=5, what="a later instance enforcing the ban")
        finally:
            self.assertEqual(late.stop(), 0)
        # clean up for the next tests: lift it everywhere, empty b's file
        with open(self.b.bans, "w") as f:
            f.write("# rproxy bans v1\n")
        self.b.signal(signal.SIGHUP)
        curl(f"http://127.0.0.1:{self.a.admin}/api/bans?kind=addr&subject=127.0.0.0/8", "-X", "DELETE")
        harness.wait_until(lambda: self.get(self.a, "/guarded") == 200 and self.get(self.b, "/guarded") == 200, timeout=10,
                           what="the ban lifted everywhere")

    def test_4_redis_killed_then_restarted(self):
        self.redis.kill()
        for gw in self.gws:
            harness.wait_until(lambda: metric(gw.admin, "rproxy_cluster_degraded") == 1, timeout=10, what="degraded reported")
        # both keep serving: routes without limits, limits on local counters, closed routes refuse
        for gw in self.gws:
            self.assertEqual(self.get(gw, "/open"), 200)
            self.assertIn(self.get(gw, "/exact"), (200, 429))
            self.assertEqual(self.get(gw, "/closed"), 429)
        for gw in self.gws:
            log = gw.output()
            self.assertEqual(log.count("redis unavailable"), 1, "logged once per transition")
        self.redis.restart()
        for gw in self.gws:
            harness.wait_until(lambda: metric(gw.admin, "rproxy_cluster_degraded") == 0, timeout=15, what="recovered")
        # the shared limit works again: a fresh Redis, one limit for both
        codes = [self.get(self.a if i % 2 == 0 else self.b, "/closed") for i in range(2 * LIMIT)]
        self.assertEqual(codes.count(200), LIMIT, codes)
        # and bans flow again (the subscriptions came back by themselves)
        curl(f"http://127.0.0.1:{self.a.admin}/api/bans?kind=addr&subject=127.0.0.1&ttl=60", "-X", "POST")
        harness.wait_until(lambda: self.get(self.b, "/guarded") == 403, timeout=5, what="b enforcing a ban after the restart")
        curl(f"http://127.0.0.1:{self.a.admin}/api/bans?kind=addr&subject=127.0.0.1", "-X", "DELETE")
        harness.wait_until(lambda: self.get(self.b, "/guarded") == 200, timeout=5, what="lifted")

    def test_5_paused_redis_never_blocks_a_worker(self):
        self.redis.pause()
        try:
            t0 = time.monotonic()
            for gw in self.gws:
                for path in ("/exact", "/open", "/batched"):
                    code = self.get(gw, path, timeout=5)
                    self.assertIn(code, (200, 429), f"{path} unanswered with Redis paused")
            sys.stderr.write(f"6 requests answered with Redis paused in {time.monotonic() - t0:.3f}s\n")
            for gw in self.gws:
                harness.wait_until(lambda: metric(gw.admin, "rproxy_cluster_degraded") == 1, timeout=10, what="degraded while paused")
                self.assertEqual(self.get(gw, "/open", timeout=5), 200)
        finally:
            self.redis.resume()
        for gw in self.gws:
            harness.wait_until(lambda: metric(gw.admin, "rproxy_cluster_degraded") == 0, timeout=15, what="recovered after the pause")


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main(verbosity=2)
