"""End-to-end tests of apps/h3-gateway's HTTP/2 backends (groups with `proto: h2c`, and
`proto: h2`: HTTP/2 over TLS):
  - nghttpd (Debian nghttp2-server, --no-tls: HTTP/2 with prior knowledge) as the backend,
    curl --http2-prior-knowledge, curl --http1.1 and h2load (nghttp2-client) as clients through
    the gateway; nghttpd's own log says how many connections it accepted;
  - nghttpd with TLS (a certificate from a test CA made here by the openssl CLI) behind a
    `proto: h2` group: the same clients; nghttpd's log shows ALPN h2 negotiated and the
    requests' :scheme https; a CA that did not sign the certificate, or the system's store, is
    a 502 naming the verification failure; `openssl s_server -alpn http/1.1` (no h2 in ALPN) is
    a 502 naming it and a connect failure; `validate` names the file and line of bad settings;
  - nghttpd behind a relay that, when told to, drops a connection as a request's HEADERS frame
    comes (a backend that died, no GOAWAY): a GET goes again on a new connection and gets its
    file; a POST gets a 502 saying it was not sent again;
  - gRPC (Debian python3-grpcio) both sides: a server behind the gateway, a client in front,
    unary and server-streaming calls, a non-OK status and trailing metadata passed through, a
    backend restarted between calls.

Usage: h3_gateway_h2_upstream_test.py PATH_TO_H3_GATEWAY [unittest args]"""
import concurrent.futures
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import unittest
import urllib.request

import harness
from h3_gateway_tls_upstream_test import make_ca, make_leaf

BINARY = None

try:
    import grpc  # noqa: F401
except ImportError:
    # Debian's python3-grpcio lives in the system Python's dist-packages; a Python of the same
    # minor version (the one ctest was configured with) can load it from there.
    if sys.version_info[:2] == (3, 11) and os.path.isdir("/usr/lib/python3/dist-packages"):
        sys.path.append("/usr/lib/python3/dist-packages")


def metric(admin, name, backend):
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
    m = re.search(rf'^{name}(?:_total)?{{backend="{re.escape(backend)}"}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def gateway(port, admin, group_block, name):
    return harness.Program(BINARY, f"""admin: {{ listen: 127.0.0.1:{admin} }}
listen: 127.0.0.1:{port}
access_log: false
groups:
{group_block}http:
  routes:
    - name: all
      prefix: /
      backends: [ {{ group: up }} ]
""", args=["--workers", "1"], name=name)


def start_nghttpd(cls, docroot):
    """nghttpd --no-tls on a free port serving `docroot`, its -v log in cls.log (cls.dir)."""
    cls.backend_port = harness.free_port()
    cls.log = open(os.path.join(cls.dir, "nghttpd.log"), "w")
    cls.nghttpd = subprocess.Popen(["nghttpd", "--no-tls", "-v", "-d", docroot, "-a", "127.0.0.1", str(cls.backend_port)],
                                   stdout=cls.log, stderr=subprocess.STDOUT)
    harness.wait_port(cls.backend_port)


def stop_gateway_and_nghttpd(cls):
    rc = cls.gw.stop()
    cls.nghttpd.kill()
    cls.nghttpd.wait()
    cls.log.close()
    if rc != 0:
        cls.gw.dump()
    assert rc == 0, f"gateway exit code {rc}"


class Nghttpd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require(shutil.which("nghttpd") is not None, "nghttpd is missing: run scripts/setup (nghttp2-server)")
        cls.dir = tempfile.mkdtemp(prefix="rproxy-h2up-")
        cls.docroot = os.path.join(cls.dir, "www")
        os.makedirs(cls.docroot)
        with open(os.path.join(cls.docroot, "hello.txt"), "w") as f:
            f.write("hello over h2c\n")
        cls.big = os.urandom(3 * 1024 * 1024)
        with open(os.path.join(cls.docroot, "big.bin"), "wb") as f:
            f.write(cls.big)
        start_nghttpd(cls, cls.docroot)
        cls.label = f"127.0.0.1:{cls.backend_port}"
        cls.port, cls.admin = harness.free_port(), harness.free_port()
        cls.gw = gateway(cls.port, cls.admin, f"""  - name: up
    proto: h2c
    h2: {{ max_connections: 2, response_timeout: 10s }}
    backends: [ {{ address: {cls.label} }} ]
""", "h2up").start(wait_ports=[cls.port, cls.admin])

    @classmethod
    def tearDownClass(cls):
        stop_gateway_and_nghttpd(cls)

    def sessions(self):
        """Connections nghttpd accepted: its -v log numbers each session (id=N)."""
        with open(self.log.name) as f:
            return set(re.findall(r"\[id=(\d+)\]", f.read()))

    def curl(self, *args):
        return subprocess.run(["curl", "-sS", "-w", "\\n%{http_code} %{http_version}", *args], capture_output=True, timeout=60)

    def test_1_curl_h2c_and_http1_through_to_nghttpd(self):
        for proto in ("--http2-prior-knowledge", "--http1.1"):
            out = self.curl(proto, f"http://127.0.0.1:{self.port}/hello.txt")
            body, _, code = out.stdout.rpartition(b"\n")
            self.assertEqual(code.split()[0], b"200", out.stderr)
            self.assertEqual(body, b"hello over h2c\n")
        out = self.curl("--http2-prior-knowledge", f"http://127.0.0.1:{self.port}/missing")
        self.assertEqual(out.stdout.rpartition(b"\n")[2].split()[0], b"404")

    def test_2_large_download_streams_whole(self):
        out = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", f"http://127.0.0.1:{self.port}/big.bin"],
                             capture_output=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(len(out.stdout), len(self.big))
        self.assertTrue(out.stdout == self.big)

    def test_3_concurrent_streams_share_one_backend_connection(self):
        before = self.sessions()
        opened = metric(self.admin, "h3gw_upstream_h2_connections", self.label)
        out = subprocess.run(["h2load", "-n", "200", "-c", "4", "-m", "10", f"http://127.0.0.1:{self.port}/hello.txt"],
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed", out.stdout)
        self.assertIsNotNone(m, out.stdout)
        self.assertEqual(m.group(4), "200", out.stdout)
        # one worker, streams well under the backend's limit: one connection carried them all
        self.assertLessEqual(len(self.sessions() - before), 1)
        self.assertLessEqual(metric(self.admin, "h3gw_upstream_h2_connections", self.label) - opened, 1)
        self.assertGreaterEqual(metric(self.admin, "h3gw_upstream_h2_requests", self.label), 200)
        harness.wait_until(lambda: metric(self.admin, "h3gw_upstream_h2_streams_active", self.label) == 0, what="no stream left open")
        self.assertEqual(metric(self.admin, "h3gw_upstream_h2_connections_active", self.label), 1)


class Cutter:
    """A TCP relay in front of an HTTP/2 backend. While `armed` > 0, a connection on which the
    gateway sends a HEADERS frame (a request) is closed there, the frame not passed on, as if
    the backend had died (no GOAWAY); `armed` goes down by one. Bounded: stop() ends it."""

    def __init__(self, target_port):
        self.target, self.armed, self.cut, self.accepted = ("127.0.0.1", target_port), 0, 0, 0
        self.lock, self.running = threading.Lock(), True
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.srv.settimeout(0.2)
        self.port = self.srv.getsockname()[1]
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while self.running:
            try:
                c, _ = self.srv.accept()
            except (socket.timeout, OSError):
                continue
            self.accepted += 1
            up = socket.create_connection(self.target)
            threading.Thread(target=self.up_loop, args=(c, up), daemon=True).start()
            threading.Thread(target=self.pipe, args=(up, c), daemon=True).start()

    def up_loop(self, c, up):
        """Gateway to backend, frame by frame after the 24-byte preface."""
        buf, preface = b"", True
        try:
            while self.running:
                data = c.recv(65536)
                if not data:
                    break
                buf += data
                out = b""
                if preface:
                    if len(buf) < 24:
                        continue
                    out, buf, preface = buf[:24], buf[24:], False
                while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
                    n = 9 + int.from_bytes(buf[:3], "big")
                    with self.lock:
                        cut = buf[3] == 0x1 and self.armed > 0
                        if cut:
                            self.armed -= 1
                            self.cut += 1
                    if cut:
                        up.sendall(out)
                        raise ConnectionAbortedError
                    out, buf = out + buf[:n], buf[n:]
                up.sendall(out)
        except OSError:
            pass
        for x in (c, up):
            x.close()

    def pipe(self, a, b):
        try:
            while self.running:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for x in (a, b):
            x.close()

    def stop(self):
        self.running = False
        self.srv.close()


class BackendDiesMidRequest(unittest.TestCase):
    """nghttpd (h2c) behind a Cutter: a request whose connection ends before the answer."""

    @classmethod
    def setUpClass(cls):
        harness.require(shutil.which("nghttpd") is not None, "nghttpd is missing: run scripts/setup (nghttp2-server)")
        cls.dir = tempfile.mkdtemp(prefix="rproxy-h2cut-")
        with open(os.path.join(cls.dir, "hello.txt"), "w") as f:
            f.write("hello after a cut\n")
        start_nghttpd(cls, cls.dir)
        cls.cutter = Cutter(cls.backend_port)
        cls.label = f"127.0.0.1:{cls.cutter.port}"
        cls.port, cls.admin = harness.free_port(), harness.free_port()
        cls.gw = gateway(cls.port, cls.admin, f"""  - name: up
    proto: h2c
    h2: {{ response_timeout: 10s }}
    backends: [ {{ address: {cls.label} }} ]
""", "h2cut").start(wait_ports=[cls.port, cls.admin])

    @classmethod
    def tearDownClass(cls):
        cls.cutter.stop()
        stop_gateway_and_nghttpd(cls)

    def curl(self, *args):
        out = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", *args], capture_output=True, timeout=60)
        body, _, code = out.stdout.rpartition(b"\n")
        return int(code), body

    def test_1_get_goes_again_on_a_new_connection(self):
        retries = metric(self.admin, "h3gw_upstream_h2_retries", self.label)
        accepted = self.cutter.accepted
        self.cutter.armed = 1
        code, body = self.curl(f"http://127.0.0.1:{self.port}/hello.txt")
        self.assertEqual((code, body), (200, b"hello after a cut\n"))
        self.assertEqual(self.cutter.cut, 1)
        self.assertGreaterEqual(self.cutter.accepted - accepted, 1)  # the retry's connection
        self.assertEqual(metric(self.admin, "h3gw_upstream_h2_retries", self.label) - retries, 1)

    def test_2_post_is_not_sent_again(self):
        retries = metric(self.admin, "h3gw_upstream_h2_retries", self.label)
        cut = self.cutter.cut
        self.cutter.armed = 1
        code, body = self.curl("--data-binary", "once only", f"http://127.0.0.1:{self.port}/hello.txt")
        self.assertEqual(code, 502, body)
        self.assertIn(b"not idempotent", body)
        self.assertEqual(self.cutter.cut - cut, 1)
        self.assertEqual(metric(self.admin, "h3gw_upstream_h2_retries", self.label), retries)
        # the next request gets a new connection
        self.assertEqual(self.curl(f"http://127.0.0.1:{self.port}/hello.txt"), (200, b"hello after a cut\n"))


class NghttpdTls(unittest.TestCase):
    """proto: h2 to nghttpd over TLS, verified against the test CA, SNI backend.test."""

    @classmethod
    def setUpClass(cls):
        for tool in ("nghttpd", "h2load", "openssl", "curl"):
            if shutil.which(tool) is None:
                raise AssertionError(f"{tool} is missing: run scripts/setup")
        cls.dir = d = tempfile.mkdtemp(prefix="rproxy-h2tls-")
        make_ca(d, "ca")
        make_ca(d, "other-ca")
        make_leaf(d, "backend", "ca", "DNS:backend.test,IP:127.0.0.1")
        cls.docroot = os.path.join(d, "www")
        os.makedirs(cls.docroot)
        with open(os.path.join(cls.docroot, "hello.txt"), "w") as f:
            f.write("hello over h2\n")
        cls.big = os.urandom(3 * 1024 * 1024)
        with open(os.path.join(cls.docroot, "big.bin"), "wb") as f:
            f.write(cls.big)
        cls.backend_port = harness.free_port()
        cls.log = open(os.path.join(d, "nghttpd.log"), "w")
        cls.nghttpd = subprocess.Popen(["nghttpd", "-v", "-d", cls.docroot, "-a", "127.0.0.1", str(cls.backend_port),
                                        os.path.join(d, "backend.key"), os.path.join(d, "backend.pem")],
                                       stdout=cls.log, stderr=subprocess.STDOUT)
        # TLS servers with the same certificate (a backend address belongs to one group: the
        # gateway reaches it through that group's stand-ins): one whose ALPN list has no h2 (it
        # refuses the gateway's offer, alert 120), two for the groups whose trust refuses it.
        cls.servers, ports = [], []
        for alpn in ("http/1.1", "h2", "h2"):
            ports.append(harness.free_port())
            cls.servers.append(subprocess.Popen(
                ["openssl", "s_server", "-accept", f"127.0.0.1:{ports[-1]}", "-cert", os.path.join(d, "backend.pem"),
                 "-key", os.path.join(d, "backend.key"), "-alpn", alpn, "-www"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port in [cls.backend_port] + ports:
            harness.wait_port(port)
        cls.label = f"127.0.0.1:{cls.backend_port}"
        cls.h1_label, wrongca, system = (f"127.0.0.1:{p}" for p in ports)
        cls.port, cls.admin = harness.free_port(), harness.free_port()
        groups = {
            "up": (cls.label, f"{{ sni: backend.test, ca: {d}/ca.pem }}"),
            "wrongca": (wrongca, f"{{ sni: backend.test, ca: {d}/other-ca.pem }}"),
            "system": (system, None),  # no tls: block: verified against the system's store
            "noh2": (cls.h1_label, f"{{ sni: backend.test, ca: {d}/ca.pem }}"),
        }
        text = f"admin: {{ listen: 127.0.0.1:{cls.admin} }}\nlisten: 127.0.0.1:{cls.port}\naccess_log: false\ngroups:\n"
        routes = ""
        for name, (addr, tls) in groups.items():
            text += f"  - name: {name}\n    proto: h2\n    h2: {{ max_connections: 2, response_timeout: 10s }}\n"
            text += f"    backends: [ {{ address: {addr} }} ]\n    outlier: {{ consecutive_failures: 0 }}\n"
            if tls:
                text += f"    tls: {tls}\n"
            if name != "up":
                routes += f"    - {{ name: {name}, prefix: /{name}, backends: [ {{ group: {name} }} ] }}\n"
        routes += "    - { name: all, prefix: /, backends: [ { group: up } ] }\n"
        text += "http:\n  routes:\n" + routes
        cls.gw = harness.Program(BINARY, text, args=["--workers", "1"], name="h2tls").start(wait_ports=[cls.port, cls.admin])

    @classmethod
    def tearDownClass(cls):
        rc = cls.gw.stop()
        for p in [cls.nghttpd] + cls.servers:
            p.kill()
            p.wait()
        cls.log.close()
        if rc != 0:
            cls.gw.dump()
        shutil.rmtree(cls.dir, ignore_errors=True)
        assert rc == 0, f"gateway exit code {rc}"

    def nghttpd_log(self):
        with open(self.log.name) as f:
            return f.read()

    def sessions(self):
        """Connections nghttpd accepted: its -v log numbers each session (id=N)."""
        return set(re.findall(r"\[id=(\d+)\]", self.nghttpd_log()))

    def curl(self, *args):
        return subprocess.run(["curl", "-sS", "--max-time", "30", "-w", "\\n%{http_code}", *args], capture_output=True, timeout=60)

    def test_1_curl_h2_and_http1_through_to_nghttpd_over_tls(self):
        for proto in ("--http2-prior-knowledge", "--http1.1"):
            out = self.curl(proto, f"http://127.0.0.1:{self.port}/hello.txt")
            body, _, code = out.stdout.rpartition(b"\n")
            self.assertEqual(code, b"200", out.stdout + out.stderr)
            self.assertEqual(body, b"hello over h2\n")
        log = self.nghttpd_log()
        self.assertIn("The negotiated protocol: h2", log)  # ALPN, as nghttpd saw it
        self.assertIn(":scheme: https", log)
        self.assertIn(":path: /hello.txt", log)
        self.assertGreaterEqual(metric(self.admin, "h3gw_upstream_h2_connections_active", self.label), 1)

    def test_2_large_download_streams_whole(self):
        out = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", f"http://127.0.0.1:{self.port}/big.bin"],
                             capture_output=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(len(out.stdout), len(self.big))
        self.assertTrue(out.stdout == self.big)

    def test_3_concurrent_streams_share_one_backend_connection(self):
        self.assertEqual(self.curl(f"http://127.0.0.1:{self.port}/hello.txt").returncode, 0)  # one connection open
        before = self.sessions()
        opened = metric(self.admin, "h3gw_upstream_h2_connections", self.label)
        out = subprocess.run(["h2load", "-n", "200", "-c", "4", "-m", "10", f"http://127.0.0.1:{self.port}/hello.txt"],
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed", out.stdout)
        self.assertIsNotNone(m, out.stdout)
        self.assertEqual(m.group(4), "200", out.stdout)
        # one worker, 40 streams at most, under nghttpd's 100: the open TLS connection carried them all
        self.assertEqual(self.sessions() - before, set())
        self.assertEqual(metric(self.admin, "h3gw_upstream_h2_connections", self.label), opened)
        harness.wait_until(lambda: metric(self.admin, "h3gw_upstream_h2_streams_active", self.label) == 0, what="no stream left open")
        self.assertEqual(metric(self.admin, "h3gw_upstream_h2_connections_active", self.label), 1)

    def assert_502(self, path, *causes):
        for proto in ("--http2-prior-knowledge", "--http1.1"):
            out = self.curl(proto, f"http://127.0.0.1:{self.port}{path}")
            body, _, code = out.stdout.rpartition(b"\n")
            self.assertEqual(code, b"502", out.stdout + out.stderr)
            for cause in causes:
                self.assertIn(cause, body.decode())

    def test_4_certificate_not_verified_is_a_502_naming_it(self):
        self.assert_502("/wrongca/hello.txt", "TLS to the HTTP/2 backend: backend certificate verification failed",
                        "unable to get local issuer certificate")
        # no tls: block: verification is on, against the system's store (which lacks the test CA)
        self.assert_502("/system/hello.txt", "backend certificate verification failed")

    def test_5_backend_without_h2_in_alpn_fails_cleanly(self):
        failed = metric(self.admin, "h3gw_upstream_h2_connect_failures", self.h1_label)
        self.assert_502("/noh2/x", "TLS to the HTTP/2 backend", "no application protocol")
        self.assertGreaterEqual(metric(self.admin, "h3gw_upstream_h2_connect_failures", self.h1_label), failed + 2)
        self.assertEqual(metric(self.admin, "h3gw_upstream_h2_connections_active", self.h1_label), 0)
        # the gateway still serves the good group
        out = self.curl("--http2-prior-knowledge", f"http://127.0.0.1:{self.port}/hello.txt")
        self.assertEqual(out.stdout.rpartition(b"\n")[2], b"200")

    def test_6_validate_names_bad_tls_settings(self):
        d = self.dir
        route = "http:\n  routes:\n    - { name: r, prefix: /, backends: [ { group: g } ] }\n"
        group = "groups:\n  - name: g\n    backends: [ { address: 127.0.0.1:1 } ]\n"
        cases = {
            "h2c-with-tls": (group + "    proto: h2c\n    tls: { sni: backend.test }\n", 5, "HTTP/2 over TLS is proto: h2"),
            "missing-ca": (group + f"    proto: h2\n    tls: {{ ca: {d}/no-such-ca.pem }}\n", 5, "no-such-ca.pem"),
            "bad-sni": (group + "    proto: h2\n    tls: { sni: 'not a name' }\n", 5, "sni must be a host name"),
            "h2-block-on-http": (group + "    h2: { max_connections: 1 }\n", 4, "an h2: block needs proto: h2c or h2"),
            "idle-timeout-zero": (group + "    proto: h2c\n    h2: { idle_timeout: 0s }\n", 5, "must be positive"),
            "h2-body-buffer-small": (group + "    proto: h2c\n    h2: { max_body_buffer: 1KiB }\n", 5, "must be between 16KiB and 64MiB"),
            "h3-body-buffer-large": (group + "    proto: h3\n    h3: { max_body_buffer: 1GiB }\n", 5, "must be between 16KiB and 64MiB"),
            # a stand-in is found by the backend's address: another group cannot list it too
            "shared-backend": (group + "    proto: h2c\n  - name: other\n    backends: [ { address: 127.0.0.1:1 } ]\n", 6,
                               "backend 127.0.0.1:1 is also in group 'g'"),
        }
        for name, (text, line, named) in cases.items():
            with self.subTest(name):
                path = os.path.join(d, f"{name}.yaml")
                with open(path, "w") as f:
                    f.write(text + route)
                v = subprocess.run([BINARY, "validate", path], capture_output=True, text=True, timeout=30)
                self.assertEqual(v.returncode, 1, v.stdout + v.stderr)
                self.assertIn(f"{path}:{line}:", v.stderr)
                self.assertIn(named, v.stderr)
        path = os.path.join(d, "good.yaml")
        with open(path, "w") as f:
            f.write(group + f"    proto: h2\n    tls: {{ sni: backend.test, ca: {d}/ca.pem }}\n    h2: {{ max_body_buffer: 256KiB }}\n" + route)
        v = subprocess.run([BINARY, "validate", path], capture_output=True, text=True, timeout=30)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)


def grpc_server(port):
    import grpc

    def unary(req, ctx):
        ctx.set_trailing_metadata((("x-served-by", "py"),))
        return b"echo:" + req

    def stream(req, ctx):
        for i in range(int(req.decode())):
            yield f"part-{i}".encode() * 100

    def fail(req, ctx):
        ctx.abort(grpc.StatusCode.NOT_FOUND, "no such thing: " + req.decode())

    handlers = grpc.method_handlers_generic_handler("test.Echo", {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
    })
    s = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=8))
    s.add_generic_rpc_handlers((handlers,))
    s.add_insecure_port(f"127.0.0.1:{port}")
    s.start()
    return s


class Grpc(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        try:
            import grpc  # noqa: F401
        except ImportError:
            harness.require(False, "python3-grpcio is missing: run scripts/setup")
        cls.backend_port = harness.free_port()
        cls.server = grpc_server(cls.backend_port)
        cls.label = f"127.0.0.1:{cls.backend_port}"
        cls.port, cls.admin = harness.free_port(), harness.free_port()
        cls.gw = gateway(cls.port, cls.admin, f"""  - name: up
    proto: h2c
    backends: [ {{ address: {cls.label} }} ]
""", "h2grpc").start(wait_ports=[cls.port, cls.admin])

    @classmethod
    def tearDownClass(cls):
        rc = cls.gw.stop()
        cls.server.stop(0)
        if rc != 0:
            cls.gw.dump()
        assert rc == 0, f"gateway exit code {rc}"

    def channel(self):
        import grpc
        return grpc.insecure_channel(f"127.0.0.1:{self.port}")

    def test_1_unary_with_trailing_metadata(self):
        with self.channel() as ch:
            call = ch.unary_unary("/test.Echo/Unary")
            reply, info = call.with_call(b"ping", timeout=10)
            self.assertEqual(reply, b"echo:ping")
            self.assertIn(("x-served-by", "py"), tuple(info.trailing_metadata()))
            import grpc
            self.assertEqual(info.code(), grpc.StatusCode.OK)

    def test_2_server_streaming(self):
        with self.channel() as ch:
            parts = list(ch.unary_stream("/test.Echo/Stream")(b"50", timeout=10))
            self.assertEqual(parts, [f"part-{i}".encode() * 100 for i in range(50)])

    def test_3_non_ok_status_and_message_pass_through(self):
        import grpc
        with self.channel() as ch:
            with self.assertRaises(grpc.RpcError) as e:
                ch.unary_unary("/test.Echo/Fail")(b"x42", timeout=10)
            self.assertEqual(e.exception.code(), grpc.StatusCode.NOT_FOUND)
            self.assertEqual(e.exception.details(), "no such thing: x42")
            with self.assertRaises(grpc.RpcError) as e:
                ch.unary_unary("/test.Echo/Nope")(b"", timeout=10)
            self.assertEqual(e.exception.code(), grpc.StatusCode.UNIMPLEMENTED)

    def test_4_concurrent_calls(self):
        # 100 at once on one client connection: grpc-core sends one or two WINDOW_UPDATEs per
        # new stream before any response DATA, which the listener's flood budget must allow.
        with self.channel() as ch:
            call = ch.unary_unary("/test.Echo/Unary")
            futures = [call.future(f"n{i}".encode(), timeout=20) for i in range(100)]
            self.assertEqual([f.result() for f in futures], [f"echo:n{i}".encode() for i in range(100)])

    def test_5_backend_restarted_next_calls_work_on_a_new_connection(self):
        with self.channel() as ch:
            self.assertEqual(ch.unary_unary("/test.Echo/Unary")(b"a", timeout=10), b"echo:a")
        opened = metric(self.admin, "h3gw_upstream_h2_connections", self.label)
        type(self).server.stop(0).wait()
        type(self).server = grpc_server(self.backend_port)
        harness.wait_until(lambda: metric(self.admin, "h3gw_upstream_h2_connections_active", self.label) == 0,
                           what="the dead backend connection dropped")
        with self.channel() as ch:
            self.assertEqual(ch.unary_unary("/test.Echo/Unary")(b"b", timeout=10), b"echo:b")
        self.assertEqual(metric(self.admin, "h3gw_upstream_h2_connections", self.label), opened + 1)


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
