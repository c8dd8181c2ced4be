"""End-to-end tests of apps/h3-gateway's TLS to backends: nginx serving HTTPS with a certificate
from a test CA made here by the openssl CLI (the independent side of every check: nginx reports
the SNI it received and its connection serial numbers), curl as the client over HTTP/1.1 and
HTTP/2 (h2c). Verified by default, against a `ca:` file or the system store; a wrong CA, a wrong
name or a backend that does not speak TLS is a 502 naming the cause, never a hang.

Usage: h3_gateway_tls_upstream_test.py PATH_TO_H3_GATEWAY [unittest args]"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

import harness
from harness import metrics

BINARY = None


def run(cmd, cwd):
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(d, name):
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
         "-keyout", f"{name}.key", "-out", f"{name}.pem", "-subj", f"/CN={name}",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)


def make_leaf(d, name, ca, sans):
    run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}"], d)
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write(f"subjectAltName={sans}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    run(["openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
         "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext"], d)


def curl(url, *args, timeout=20):
    """[(status, body)] for each URL curl fetched (several URLs: one connection, kept alive), curl's exit code."""
    p = subprocess.run(["curl", "-sS", "--max-time", str(timeout), "-w", "\n@@%{http_code}@@\n", url, *args],
                       capture_output=True, text=True, timeout=timeout + 10)
    out = []
    for part in p.stdout.split("@@\n"):
        if "\n@@" in part:
            body, _, code = part.rpartition("\n@@")
            out.append((int(code), body))
    return out, p.returncode


class TlsUpstreamTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not harness.nginx_path():
            raise AssertionError("nginx is missing: run scripts/setup")
        cls.dir = d = tempfile.mkdtemp(prefix="rproxy-tlsup-")
        make_ca(d, "ca")
        make_ca(d, "other-ca")
        make_leaf(d, "backend", "ca", "DNS:backend.test,IP:127.0.0.1")
        cls.tls_port, cls.plain_port, cls.once_port = harness.free_port(), harness.free_port(), harness.free_port()
        cls.once13_port = harness.free_port()
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write(f"""daemon off; pid {d}/nginx.pid; error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{ access_log off; client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  default_type text/plain; keepalive_requests 1000;
  server {{ listen 127.0.0.1:{cls.tls_port} ssl; ssl_certificate {d}/backend.pem; ssl_certificate_key {d}/backend.key;
    location / {{ return 200 "tls sni=$ssl_server_name conn=$connection uri=$request_uri\\n"; }} }}
  server {{ listen 127.0.0.1:{cls.once_port} ssl; ssl_certificate {d}/backend.pem; ssl_certificate_key {d}/backend.key;
    keepalive_requests 1;
    location / {{ return 200 "once reused=$ssl_session_reused proto=$ssl_protocol conn=$connection\\n"; }} }}
  server {{ listen 127.0.0.1:{cls.once13_port} ssl; ssl_certificate {d}/backend.pem; ssl_certificate_key {d}/backend.key;
    keepalive_requests 1; ssl_protocols TLSv1.3;
    location / {{ return 200 "once reused=$ssl_session_reused proto=$ssl_protocol conn=$connection\\n"; }} }}
  server {{ listen 127.0.0.1:{cls.plain_port};
    location / {{ return 200 "plain conn=$connection\\n"; }} }} }}
""")
        cls.nginx = subprocess.Popen([harness.nginx_path(), "-c", os.path.join(d, "nginx.conf"), "-p", d],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        harness.wait_port(cls.tls_port)
        harness.wait_port(cls.plain_port)
        harness.wait_port(cls.once_port)
        harness.wait_port(cls.once13_port)
        cls.port, cls.admin = harness.free_port(), harness.free_port()
        groups = {
            "good": f"{{ sni: backend.test, ca: {d}/ca.pem }}",
            "by-ip": f"{{ ca: {d}/ca.pem }}",  # no SNI: the certificate's IP SAN is checked
            "wrong-ca": f"{{ sni: backend.test, ca: {d}/other-ca.pem }}",
            "wrong-name": f"{{ sni: other.test, ca: {d}/ca.pem }}",
            "system-store": "{ sni: backend.test }",  # the test CA is not in the system's store
            "unverified": f"{{ sni: other.test, ca: {d}/other-ca.pem, verify: false }}",
        }
        text = f"admin: {{ listen: 127.0.0.1:{cls.admin} }}\nlisten: 127.0.0.1:{cls.port}\ngroups:\n"
        routes = ""
        for name, tls in groups.items():
            text += f"  - name: {name}\n    backends: [ {{ address: 127.0.0.1:{cls.tls_port} }} ]\n    tls: {tls}\n"
            text += "    outlier: { consecutive_failures: 0 }\n"
            routes += f"    - {{ name: {name}, prefix: /{name}, backends: [ {{ group: {name} }} ] }}\n"
        # TLS to a backend that speaks plain HTTP: a handshake failure; and the same backend in plain.
        text += f"  - name: not-tls\n    backends: [ {{ address: 127.0.0.1:{cls.plain_port} }} ]\n    tls: {{ sni: backend.test, ca: {d}/ca.pem }}\n"
        text += "    outlier: { consecutive_failures: 0 }\n"
        text += f"  - name: plain\n    backends: [ {{ address: 127.0.0.1:{cls.plain_port} }} ]\n"
        # A backend that closes after each response (keepalive_requests 1): every request a new
        # TLS connection, resumed from the session the previous one left.
        text += f"  - name: once\n    backends: [ {{ address: 127.0.0.1:{cls.once_port} }} ]\n    tls: {{ sni: backend.test, ca: {d}/ca.pem }}\n"
        text += f"  - name: once13\n    backends: [ {{ address: 127.0.0.1:{cls.once13_port} }} ]\n    tls: {{ sni: backend.test, ca: {d}/ca.pem }}\n"
        routes += "    - { name: once13, prefix: /once13, backends: [ { group: once13 } ] }\n"
        routes += "    - { name: once, prefix: /once, backends: [ { group: once } ] }\n"
        routes += "    - { name: not-tls, prefix: /not-tls, backends: [ { group: not-tls } ] }\n"
        routes += "    - { name: plain, prefix: /plain, backends: [ { group: plain } ] }\n"
        text += "http:\n  routes:\n" + routes + "limits: { connect_timeout: 3s }\n"
        cls.gw = harness.Program(BINARY, text, name="h3gw-tlsup")
        cls.gw.start(wait_ports=[cls.port, cls.admin])

    @classmethod
    def tearDownClass(cls):
        rc = cls.gw.stop()
        cls.nginx.send_signal(signal.SIGQUIT)
        cls.nginx.wait(10)
        shutil.rmtree(cls.dir, ignore_errors=True)
        assert rc == 0, f"h3-gateway exited with {rc}"

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def test_verified_backend_with_sni_and_kept_connections(self):
        before = metrics(self.admin)
        reused_key = 'h3gw_upstream_connections_total{transport="tls",connection="reused"}'
        # Three requests on one client connection: one backend connection, kept between them.
        got, rc = curl(self.url("/good/a"), self.url("/good/b"), self.url("/good/c"))
        self.assertEqual(rc, 0)
        self.assertEqual([c for c, _ in got], [200, 200, 200], got)
        for (_, body), path in zip(got, ("/good/a", "/good/b", "/good/c")):
            self.assertIn("tls sni=backend.test ", body)
            self.assertIn(f"uri={path}", body)
        conns = {body.split("conn=")[1].split()[0] for _, body in got}
        self.assertEqual(len(conns), 1, f"nginx saw {conns}: the TLS connection was not reused")
        after = metrics(self.admin)
        self.assertGreaterEqual(after.get(reused_key, 0) - before.get(reused_key, 0), 2)

    def test_second_connection_resumes_the_session(self):
        """TLS session resumption to a backend: nginx (the independent side) reports the second
        connection's session as reused ($ssl_session_reused), and so does the gateway's metric.
        nginx 1.22 negotiates TLS 1.2 here (its default protocols)."""
        self.resumes("/once", "TLSv1.2")

    def test_second_connection_resumes_the_session_tls13(self):
        """The same over TLS 1.3: the session comes in a ticket after the handshake (a PSK)."""
        self.resumes("/once13", "TLSv1.3")

    def resumes(self, prefix, version):
        def handshakes():
            m = metrics(self.admin)
            return (m.get('h3gw_upstream_tls_handshakes_total{session="full"}', 0),
                    m.get('h3gw_upstream_tls_handshakes_total{session="resumed"}', 0))
        full0, resumed0 = handshakes()
        out, rc = curl(self.url(f"{prefix}/1"))
        self.assertEqual(rc, 0)
        self.assertEqual(out[0][0], 200, out)
        first = out[0][1]
        self.assertIn(f"once reused=. proto={version} ", first)  # a full handshake: nothing kept yet
        self.assertEqual(handshakes(), (full0 + 1, resumed0))
        for i in range(2, 5):
            out, rc = curl(self.url(f"{prefix}/{i}"))
            self.assertEqual((rc, out[0][0]), (0, 200), out)
            self.assertIn(f"once reused=r proto={version} ", out[0][1])  # resumed, as nginx saw it
            self.assertNotEqual(out[0][1].split("conn=")[1], first.split("conn=")[1])  # a new connection each time
        self.assertEqual(handshakes(), (full0 + 1, resumed0 + 3))

    def test_http2_client_to_tls_backend(self):
        # nghttp (nghttp2-client): one h2c stream, the body as nginx sent it over TLS.
        p = subprocess.run(["nghttp", "-s", self.url("/good/h2")], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("tls sni=backend.test conn=", p.stdout)
        self.assertIn("uri=/good/h2", p.stdout)
        # h2load: 20 requests one after another on one h2c connection; the TLS backend
        # connection is kept between them (per client connection).
        reused_key = 'h3gw_upstream_connections_total{transport="tls",connection="reused"}'
        before = metrics(self.admin).get(reused_key, 0)
        p = subprocess.run(["h2load", "-n20", "-c1", "-m1", self.url("/good/load")], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("20 succeeded", p.stdout)
        self.assertIn("status codes: 20 2xx", p.stdout)
        self.assertGreaterEqual(metrics(self.admin).get(reused_key, 0) - before, 19)

    def test_ip_address_verified_without_sni(self):
        got, rc = curl(self.url("/by-ip/x"))
        self.assertEqual((rc, got[0][0]), (0, 200), got)
        self.assertIn("tls sni= ", got[0][1])  # nginx received no server name

    def assert_502(self, path, cause, *args):
        got, rc = curl(self.url(path), *args)
        self.assertEqual(rc, 0, got)
        code, body = got[0]
        self.assertEqual(code, 502, body)
        self.assertEqual(json.loads(body)["error"], cause, body)

    def test_wrong_ca_is_a_502_tls_verify(self):
        self.assert_502("/wrong-ca/x", "tls_verify")
        self.assert_502("/wrong-ca/x", "tls_verify", "--http2-prior-knowledge")  # the same from an HTTP/2 client

    def test_wrong_name_is_a_502_tls_verify(self):
        self.assert_502("/wrong-name/x", "tls_verify")

    def test_verification_on_by_default_against_the_system_store(self):
        self.assert_502("/system-store/x", "tls_verify")

    def test_backend_without_tls_is_a_502_tls_handshake(self):
        self.assert_502("/not-tls/x", "tls_handshake")
        got, rc = curl(self.url("/plain/x"))  # the same backend, plain: fine
        self.assertEqual((rc, got[0][0]), (0, 200), got)
        self.assertIn("plain conn=", got[0][1])

    def test_verify_false_connects_and_is_logged(self):
        got, rc = curl(self.url("/unverified/x"))
        self.assertEqual((rc, got[0][0]), (0, 200), got)
        self.assertIn("tls sni=other.test ", got[0][1])
        log = self.gw.output()
        self.assertIn("TLS to backends without certificate verification", log)
        self.assertIn("unverified", log)

    def test_validate_reads_the_certificate_files(self):
        """`validate` loads what `run` would: a missing or non-PEM CA, a missing certificate or a key
        that is not its certificate's is an error at the line naming the file."""
        d = self.dir
        with open(os.path.join(d, "not-pem.pem"), "w") as f:
            f.write("not a certificate\n")
        group = "groups:\n  - name: g\n    backends: [ { address: 127.0.0.1:1 } ]\n"
        route = "http:\n  routes:\n    - { name: r, prefix: /, backends: [ { group: g } ] }\n"
        cases = {
            "missing-ca": (group + f"    tls: {{ ca: {d}/no-such-ca.pem }}\n" + route, 4, "no-such-ca.pem"),
            "not-pem-ca": (group + f"    tls: {{ ca: {d}/not-pem.pem }}\n" + route, 4, "not-pem.pem"),
            "wrong-key": (f"tls:\n  listen: 127.0.0.1:1\n  certificates:\n"
                          f"    - {{ cert: {d}/backend.pem, key: {d}/ca.key }}\n" + group + route, 4, "backend.pem"),
            "missing-cert": (f"tls:\n  listen: 127.0.0.1:1\n  certificates:\n"
                             f"    - {{ cert: {d}/no-such.pem, key: {d}/backend.key }}\n" + group + route, 4, "no-such.pem"),
        }
        for name, (text, line, named) in cases.items():
            with self.subTest(name):
                path = os.path.join(d, f"{name}.yaml")
                with open(path, "w") as f:
                    f.write(text)
                v = subprocess.run([BINARY, "validate", path], capture_output=True, text=True, timeout=30)
                self.assertEqual(v.returncode, 1, v.stdout + v.stderr)
                self.assertIn(f"{path}:{line}:", v.stderr)
                self.assertIn(named, v.stderr)
        path = os.path.join(d, "good.yaml")
        with open(path, "w") as f:
            f.write(f"tls:\n  listen: 127.0.0.1:1\n  certificates:\n    - {{ cert: {d}/backend.pem, key: {d}/backend.key }}\n"
                    + group + f"    tls: {{ ca: {d}/ca.pem }}\n" + route)
        v = subprocess.run([BINARY, "validate", path], capture_output=True, text=True, timeout=30)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
