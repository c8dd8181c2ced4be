"""End-to-end tests of the life of apps/h3-gateway's HTTP/2 backend connections, each judged by
the backend (a real server nobody in this project wrote), not by the gateway:
  - REFUSED_STREAM retried: nginx with `http2_body_preread_size 0` refuses (RST_STREAM
    REFUSED_STREAM, and says so in its error log: "client sent stream with data before settings
    were acknowledged") a request with a body that arrives before the gateway's SETTINGS ACK, as
    the first request on a new connection often does. Every such POST still gets its 200, and
    the gateway's h3gw_upstream_h2_retries_total equals the refusals nginx logged. (nghttpd
    does not refuse: with -m 1 the gateway keeps to its SETTINGS_MAX_CONCURRENT_STREAMS, and
    nothing else in it refuses a stream.)
  - idle connections closed: nghttpd (--no-tls, -v) logs the GOAWAY NO_ERROR the gateway sends
    after `idle_timeout` without a stream; the active-connections gauge goes to 0, and the next
    request opens a new connection (a new nghttpd session).
  - TLS session resumption for `proto: h2`: nginx over TLS 1.3 (a PSK from a ticket) and TLS 1.2
    reports `$ssl_session_reused` "r" for the second connection, which the idle timeout forces;
    so does h3gw_upstream_tls_handshakes_total{session="resumed"}. (For HTTP/1.1 TLS backends
    the same is checked in h3_gateway_tls_upstream_test.py.)

Usage: h3_gateway_h2_upstream_conns_test.py PATH_TO_H3_GATEWAY [unittest args]"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

import harness
from h3_gateway_tls_upstream_test import make_ca, make_leaf

BINARY = None


def metric(admin, name, backend):
    m = harness.metrics(admin)
    return m.get(f'{name}_total{{backend="{backend}"}}', m.get(f'{name}{{backend="{backend}"}}', 0.0))


def curl(*args):
    """(body, status) of one request; curl must succeed."""
    p = subprocess.run(["curl", "-sS", "--max-time", "20", "-w", "\n%{http_code}", *args], capture_output=True, text=True, timeout=40)
    assert p.returncode == 0, p.stderr
    body, _, code = p.stdout.rpartition("\n")
    return body, int(code)


class H2ConnsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for tool in ("nghttpd", "openssl", "curl"):
            if shutil.which(tool) is None:
                raise AssertionError(f"{tool} is missing: run scripts/setup")
        if not harness.nginx_path():
            raise AssertionError("nginx is missing: run scripts/setup")
        cls.dir = d = tempfile.mkdtemp(prefix="rproxy-h2conns-")
        make_ca(d, "ca")
        make_leaf(d, "backend", "ca", "DNS:backend.test,IP:127.0.0.1")
        cls.refusing, cls.tls13, cls.tls12, cls.idle = (harness.free_port() for _ in range(4))
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write(f"""daemon off; pid {d}/nginx.pid; error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{ access_log off; client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  default_type text/plain;
  server {{ listen 127.0.0.1:{cls.refusing} http2; http2_body_preread_size 0;
    location / {{ return 200 "h2c method=$request_method conn=$connection\\n"; }} }}
  server {{ listen 127.0.0.1:{cls.tls13} ssl http2; ssl_protocols TLSv1.3;
    ssl_certificate {d}/backend.pem; ssl_certificate_key {d}/backend.key;
    location / {{ return 200 "reused=$ssl_session_reused proto=$ssl_protocol h2=$http2 conn=$connection\\n"; }} }}
  server {{ listen 127.0.0.1:{cls.tls12} ssl http2; ssl_protocols TLSv1.2;
    ssl_certificate {d}/backend.pem; ssl_certificate_key {d}/backend.key;
    location / {{ return 200 "reused=$ssl_session_reused proto=$ssl_protocol h2=$http2 conn=$connection\\n"; }} }} }}
""")
        cls.nginx = subprocess.Popen([harness.nginx_path(), "-c", os.path.join(d, "nginx.conf"), "-p", d],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cls.www = os.path.join(d, "www")
        os.makedirs(cls.www)
        with open(os.path.join(cls.www, "hello.txt"), "w") as f:
            f.write("hello\n")
        cls.nghttpd_log = open(os.path.join(d, "nghttpd.log"), "w")
        cls.nghttpd = subprocess.Popen(["nghttpd", "--no-tls", "-v", "-d", cls.www, "-a", "127.0.0.1", str(cls.idle)],
                                       stdout=cls.nghttpd_log, stderr=subprocess.STDOUT)
        for p in (cls.refusing, cls.tls13, cls.tls12, cls.idle):
            harness.wait_port(p)
        cls.port, cls.admin = harness.free_port(), harness.free_port()
        tls = f"tls: {{ sni: backend.test, ca: {d}/ca.pem }}"
        cls.gw = harness.Program(BINARY, f"""admin: {{ listen: 127.0.0.1:{cls.admin} }}
listen: 127.0.0.1:{cls.port}
access_log: false
groups:
  - name: refusing
    proto: h2c
    h2: {{ idle_timeout: 100ms }}
    backends: [ {{ address: 127.0.0.1:{cls.refusing} }} ]
    outlier: {{ consecutive_failures: 0 }}
  - name: tls13
    proto: h2
    {tls}
    h2: {{ idle_timeout: 300ms }}
    backends: [ {{ address: 127.0.0.1:{cls.tls13} }} ]
  - name: tls12
    proto: h2
    {tls}
    h2: {{ idle_timeout: 300ms }}
    backends: [ {{ address: 127.0.0.1:{cls.tls12} }} ]
  - name: idle
    proto: h2c
    h2: {{ idle_timeout: 500ms }}
    backends: [ {{ address: 127.0.0.1:{cls.idle} }} ]
http:
  routes:
    - {{ name: refusing, prefix: /refusing, backends: [ {{ group: refusing }} ] }}
    - {{ name: tls13, prefix: /tls13, backends: [ {{ group: tls13 }} ] }}
    - {{ name: tls12, prefix: /tls12, backends: [ {{ group: tls12 }} ] }}
    - {{ name: idle, prefix: /, backends: [ {{ group: idle }} ] }}
""", args=["--workers", "1"], name="h2conns").start(wait_ports=[cls.port, cls.admin])

    @classmethod
    def tearDownClass(cls):
        rc = cls.gw.stop()
        cls.nginx.send_signal(signal.SIGQUIT)
        cls.nginx.wait(10)
        cls.nghttpd.kill()
        cls.nghttpd.wait()
        cls.nghttpd_log.close()
        if rc != 0:
            cls.gw.dump()
        shutil.rmtree(cls.dir, ignore_errors=True)
        assert rc == 0, f"gateway exit code {rc}"

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_closed(self, port):
        backend = f"127.0.0.1:{port}"
        harness.wait_until(lambda: metric(self.admin, "h3gw_upstream_h2_connections_active", backend) == 0,
                           what=f"the idle connection to {backend} closed")

    def nginx_refusals(self):
        with open(os.path.join(self.dir, "error.log")) as f:
            return f.read().count("client sent stream with data before settings were acknowledged")

    def test_refused_stream_is_sent_again(self):
        backend = f"127.0.0.1:{self.refusing}"
        retries0, refusals0 = metric(self.admin, "h3gw_upstream_h2_retries", backend), self.nginx_refusals()
        # Each POST the first request on a new connection (the last one idled out); nginx refuses
        # most of them. Bounded: 40 rounds at most, done after 3 refusals.
        rounds = 0
        while rounds < 40 and self.nginx_refusals() - refusals0 < 3:
            rounds += 1
            self.wait_closed(self.refusing)
            for proto in ("--http2-prior-knowledge", "--http1.1"):
                body, code = curl(proto, "-d", f"round {rounds}", self.url(f"/refusing/{rounds}"))
                self.assertEqual(code, 200, body)
                self.assertIn("h2c method=POST", body)
        refused = self.nginx_refusals() - refusals0
        self.assertGreaterEqual(refused, 1, f"nginx refused no stream in {rounds} rounds")
        harness.wait_until(lambda: metric(self.admin, "h3gw_upstream_h2_retries", backend) - retries0 == refused,
                           what=f"{refused} retries counted")
        self.assertEqual(metric(self.admin, "h3gw_upstream_h2_failures", backend), 0)

    def nghttpd_text(self):
        with open(self.nghttpd_log.name) as f:
            return f.read()

    def test_idle_connection_closed_with_goaway(self):
        backend = f"127.0.0.1:{self.idle}"
        body, code = curl("--http2-prior-knowledge", self.url("/hello.txt"))
        self.assertEqual((code, body), (200, "hello\n"))
        sessions = set(re.findall(r"\[id=(\d+)\]", self.nghttpd_text()))
        self.wait_closed(self.idle)
        # nghttpd saw the gateway's GOAWAY (NO_ERROR) on that connection
        harness.wait_until(lambda: re.search(r"recv GOAWAY frame <[^>]*>\s*\(last_stream_id=\d+, error_code=NO_ERROR",
                                             self.nghttpd_text()), what="nghttpd logged the GOAWAY")
        body, code = curl("--http1.1", self.url("/hello.txt"))
        self.assertEqual((code, body), (200, "hello\n"))
        self.assertEqual(len(set(re.findall(r"\[id=(\d+)\]", self.nghttpd_text())) - sessions), 1, "a new connection")
        self.assertEqual(metric(self.admin, "h3gw_upstream_h2_connections", backend), 2)

    def resumed(self, version, port):
        def handshakes():
            m = harness.metrics(self.admin)
            return (m.get('h3gw_upstream_tls_handshakes_total{session="full"}', 0),
                    m.get('h3gw_upstream_tls_handshakes_total{session="resumed"}', 0))
        full0, resumed0 = handshakes()
        body, code = curl("--http2-prior-knowledge", self.url(f"/{version}/1"))
        self.assertEqual(code, 200, body)
        self.assertIn(f"reused=. proto=TLSv1.{version[-1]} h2=h2 ", body)  # a full handshake: nothing kept yet
        first = body.split("conn=")[1]
        for i in (2, 3):
            self.wait_closed(port)  # idle_timeout: the next request needs a new connection
            body, code = curl("--http2-prior-knowledge", self.url(f"/{version}/{i}"))
            self.assertEqual(code, 200, body)
            self.assertIn(f"reused=r proto=TLSv1.{version[-1]} h2=h2 ", body)  # resumed, as nginx saw it
            self.assertNotEqual(body.split("conn=")[1], first)
        self.assertEqual(handshakes(), (full0 + 1, resumed0 + 2))

    def test_tls13_session_resumed_on_the_next_connection(self):
        self.resumed("tls13", self.tls13)

    def test_tls12_session_resumed_on_the_next_connection(self):
        self.resumed("tls12", self.tls12)


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
