"""End-to-end tests of apps/h3-gateway's HTTP/2 backends (groups with `proto: h2c`):
  - nghttpd (Debian nghttp2-server, --no-tls: HTTP/2 with prior knowledge) as the backend,
    curl --http2-prior-knowledge, curl --http1.1 and h2load (nghttp2-client) as clients through
    the gateway; nghttpd's own log says how many connections it accepted;
  - gRPC (Debian python3-grpcio) both sides: a server behind the gateway, a client in front,
    unary and server-streaming calls, a non-OK status and trailing metadata passed through, a
    backend restarted between calls.

Usage: h3_gateway_h2_upstream_test.py PATH_TO_H3_GATEWAY [unittest args]"""
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
import urllib.request

import harness

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


class Nghttpd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.need(shutil.which("nghttpd") is not None, "nghttpd is missing: run scripts/setup (nghttp2-server)")
        cls.dir = tempfile.mkdtemp(prefix="rproxy-h2up-")
        cls.docroot = os.path.join(cls.dir, "www")
        os.makedirs(cls.docroot)
        with open(os.path.join(cls.docroot, "hello.txt"), "w") as f:
            f.write("hello over h2c\n")
        cls.big = os.urandom(3 * 1024 * 1024)
        with open(os.path.join(cls.docroot, "big.bin"), "wb") as f:
            f.write(cls.big)
        cls.backend_port = harness.free_port()
        cls.log = open(os.path.join(cls.dir, "nghttpd.log"), "w")
        cls.nghttpd = subprocess.Popen(["nghttpd", "--no-tls", "-v", "-d", cls.docroot, "-a", "127.0.0.1", str(cls.backend_port)],
                                       stdout=cls.log, stderr=subprocess.STDOUT)
        harness.wait_port(cls.backend_port)
        cls.label = f"127.0.0.1:{cls.backend_port}"
        cls.port, cls.admin = harness.free_port(), harness.free_port()
        cls.gw = gateway(cls.port, cls.admin, f"""  - name: up
    proto: h2c
    h2: {{ max_connections: 2, response_timeout: 10s }}
    backends: [ {{ address: {cls.label} }} ]
""", "h2up").start(wait_ports=[cls.port, cls.admin])

    @classmethod
    def tearDownClass(cls):
        rc = cls.gw.stop()
        cls.nghttpd.kill()
        cls.nghttpd.wait()
        cls.log.close()
        if rc != 0:
            cls.gw.dump()
        assert rc == 0, f"gateway exit code {rc}"

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
            harness.need(False, "python3-grpcio is missing: run scripts/setup")
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
