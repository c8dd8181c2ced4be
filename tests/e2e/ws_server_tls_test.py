"""End-to-end tests of apps/ws-server's TLS listener (wss): npm `ws` 8 clients over wss and over
plain ws in the same rooms (tests/e2e/ws_server/tls_client.js), a client that does not trust the
certificate, the certificate read again on reload, and the idle ping and close over TLS checked
by a raw RFC 6455 client on Python's ssl module (shares nothing with the server).

The test CA and the server certificates are made here with the openssl CLI.

Usage: ws_server_tls_test.py PATH_TO_WS_SERVER [unittest args]"""
import base64
import hashlib
import json
import signal
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import unittest
import urllib.request

import harness
from harness import metrics

BINARY = None
HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.join(HERE, "ws_server", "tls_client.js")
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=rproxy test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)


def make_server_cert(d, name):
    """A certificate for 127.0.0.1 signed by the test CA: NAME.pem, NAME.key."""
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={name}", cwd=d)
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)


def fingerprint(path):
    out = subprocess.run(["openssl", "x509", "-in", path, "-noout", "-fingerprint", "-sha256"], check=True,
                         capture_output=True, text=True).stdout
    return out.strip().split("=", 1)[1]


def run_client(scenario, port, tls_port, ca=None, timeout=60):
    cmd = ["node", CLIENT, scenario, "--port", str(port), "--tls_port", str(tls_port)]
    if ca:
        cmd += ["--ca", ca]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    lines = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    if p.returncode != 0 or not lines or "error" in lines[-1]:
        raise AssertionError(f"client {scenario} failed (rc {p.returncode}): {p.stdout}\n{p.stderr}")
    return lines


class RawTls:
    """RFC 6455 over Python's ssl: the upgrade, then frames read as they come."""

    def __init__(self, port, ca, user):
        ctx = ssl.create_default_context(cafile=ca)
        raw = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall(f"GET /?user={user} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            b = self.s.recv(4096)
            if not b:
                raise AssertionError("closed during the handshake")
            self.buf += b
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        head = head.decode()
        assert head.startswith("HTTP/1.1 101"), head
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        assert f"Sec-WebSocket-Accept: {accept}" in head, head

    def _need(self, n):
        while len(self.buf) < n:
            b = self.s.recv(65536)
            if not b:
                raise EOFError
            self.buf += b

    def frame(self):
        """(opcode, payload) of the next frame (server frames are not masked)."""
        self._need(2)
        op, n = self.buf[0] & 0x0F, self.buf[1] & 0x7F
        assert self.buf[1] & 0x80 == 0, "a masked server frame"
        at = 2
        if n == 126:
            self._need(4)
            n, at = int.from_bytes(self.buf[2:4], "big"), 4
        elif n == 127:
            self._need(10)
            n, at = int.from_bytes(self.buf[2:10], "big"), 10
        self._need(at + n)
        payload, self.buf = self.buf[at:at + n], self.buf[at + n:]
        return op, payload


class TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.isdir(os.path.join(HERE, "node_modules", "ws")):
            raise AssertionError("npm ws is missing: run scripts/setup (tests/e2e/node_modules)")
        cls.dir = tempfile.mkdtemp(prefix="rproxy-wss-")
        make_ca(cls.dir)
        make_server_cert(cls.dir, "one")
        make_server_cert(cls.dir, "two")
        cls.ca = os.path.join(cls.dir, "ca.pem")
        # The server reads server.pem/server.key: "one" now, "two" after the reload test.
        shutil.copy(os.path.join(cls.dir, "one.pem"), os.path.join(cls.dir, "server.pem"))
        shutil.copy(os.path.join(cls.dir, "one.key"), os.path.join(cls.dir, "server.key"))
        cls.port, cls.tls_port, cls.admin = harness.free_port(), harness.free_port(), harness.free_port()
        cls.srv = harness.Program(BINARY, cls.config(), args=["--workers", "2"], name="wss")
        cls.srv.start(wait_ports=[cls.port, cls.tls_port, cls.admin])

    @classmethod
    def config(cls):
        return f"""admin: {{ listen: 127.0.0.1:{cls.admin} }}
listen: 127.0.0.1:{cls.port}
tls:
  listen: 127.0.0.1:{cls.tls_port}
  certificates: [ {{ cert: {cls.dir}/server.pem, key: {cls.dir}/server.key }} ]
anonymous: true
websocket: {{ idle_timeout: 1s, close_timeout: 2s }}
rooms: {{ max_message_bytes: 40000, max_request_bytes: 60000 }}
"""

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)
        if rc != 0:
            raise AssertionError(f"ws-server exited {rc}")

    def test_wss_and_ws_members_share_a_room(self):
        lines = run_client("mixed", self.port, self.tls_port, ca=self.ca)
        r = lines[0]
        self.assertEqual(r["created"]["type"], "ok", r)
        self.assertEqual(r["bob_join"]["type"], "ok", r)
        self.assertEqual(r["carol_join"]["type"], "ok", r)
        self.assertEqual(r["pm"]["type"], "ok", r)
        self.assertEqual(r["alice_texts"], ["before bob", "from ws", "from wss"])
        self.assertEqual(r["bob_texts"], ["before bob", "from ws", "from wss"])  # the first one replayed on join
        self.assertEqual(r["carol_texts"], ["before bob", "from ws", "from wss"])
        self.assertEqual([p["text"] for p in r["alice_private"]], ["psst"])
        self.assertEqual(r["burst_in_order"], [True, True])
        self.assertIn("permessage-deflate", r["bob_deflate"])
        self.assertEqual(r["fingerprint"], fingerprint(os.path.join(self.dir, "one.pem")))
        self.assertEqual([c["code"] for c in lines[1]["closes"]], [1000, 1000, 1000])

    def test_client_that_does_not_trust_the_ca_fails_the_handshake(self):
        before = metrics(self.admin)
        r = run_client("connect", self.port, self.tls_port)[0]
        self.assertFalse(r["opened"], r)
        self.assertRegex(r["error_message"], "certificate")
        self.assertEqual(metrics(self.admin).get("ws_upgrades_total", 0), before.get("ws_upgrades_total", 0))  # no upgrade came through
        # Node's TLS hangs up without an alert: the server sees a close (`closed`). OpenSSL's
        # client (Python's ssl) sends the alert "unknown CA": `untrusted`.
        closed, untrusted = 'ws_tls_handshake_failures_total{reason="closed"}', 'ws_tls_handshake_failures_total{reason="untrusted"}'
        harness.wait_until(lambda: metrics(self.admin).get(closed, 0) >= before.get(closed, 0) + 1, timeout=10,
                           what="the hang-up counted")
        raw = socket.create_connection(("127.0.0.1", self.tls_port), timeout=10)
        with self.assertRaises(ssl.SSLCertVerificationError):
            ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")  # the system CAs only
        raw.close()
        harness.wait_until(lambda: metrics(self.admin).get(untrusted, 0) == before.get(untrusted, 0) + 1, timeout=10,
                           what="the untrusted handshake counted")

    def test_handshake_failures_counted_by_reason(self):
        # Plain HTTP on the TLS port is not a TLS record: `bad_record`. A connection that closes
        # without a byte: `closed`. Both end the connection; the listener goes on serving.
        key = 'ws_tls_handshake_failures_total{reason="%s"}'
        before = metrics(self.admin)
        with socket.create_connection(("127.0.0.1", self.tls_port), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            try:
                while s.recv(4096):  # the server's alert (if any), then its close
                    pass
            except ConnectionResetError:
                pass
        socket.create_connection(("127.0.0.1", self.tls_port), timeout=10).close()
        harness.wait_until(lambda: metrics(self.admin).get(key % "bad_record", 0) == before.get(key % "bad_record", 0) + 1,
                           timeout=10, what="bad_record counted")
        harness.wait_until(lambda: metrics(self.admin).get(key % "closed", 0) >= before.get(key % "closed", 0) + 1,
                           timeout=10, what="closed counted")
        self.assertEqual(run_client("connect", self.port, self.tls_port, ca=self.ca)[0]["fingerprint"],
                         fingerprint(os.path.join(self.dir, "one.pem")))

    def test_idle_ping_then_close_over_tls(self):
        # npm ws answers pings: it stays open.
        r = run_client("idle", self.port, self.tls_port, ca=self.ca)[0]
        self.assertGreaterEqual(r["pings"], 2)
        self.assertIsNone(r["closed"])
        # A raw client that never answers: a ping after idle_timeout, then close 1001.
        c = RawTls(self.tls_port, self.ca, "silent")
        ops = []
        while True:
            op, payload = c.frame()
            ops.append(op)
            if op == 0x8:
                self.assertEqual(int.from_bytes(payload[:2], "big"), 1001)
                break
        self.assertEqual(ops, [0x9, 0x8])
        c.s.close()

    def test_zz_certificate_reload(self):
        # Named to run last: the other tests check certificate "one".
        self.assertEqual(run_client("connect", self.port, self.tls_port, ca=self.ca)[0]["fingerprint"],
                         fingerprint(os.path.join(self.dir, "one.pem")))
        keep = RawTls(self.tls_port, self.ca, "kept")  # a connection made before the reload
        shutil.copy(os.path.join(self.dir, "two.pem"), os.path.join(self.dir, "server.pem.tmp"))
        shutil.copy(os.path.join(self.dir, "two.key"), os.path.join(self.dir, "server.key.tmp"))
        os.replace(os.path.join(self.dir, "server.key.tmp"), os.path.join(self.dir, "server.key"))
        os.replace(os.path.join(self.dir, "server.pem.tmp"), os.path.join(self.dir, "server.pem"))
        req = urllib.request.Request(f"http://127.0.0.1:{self.admin}/reload", method="POST")
        self.assertEqual(urllib.request.urlopen(req, timeout=10).status, 200)
        want = fingerprint(os.path.join(self.dir, "two.pem"))
        harness.wait_until(lambda: run_client("connect", self.port, self.tls_port, ca=self.ca)[0]["fingerprint"] == want,
                           timeout=15, what="the new certificate on new connections")
        op, _ = keep.frame()  # the old connection still works: its idle ping comes
        self.assertEqual(op, 0x9)
        keep.s.close()

    def test_zzzz_shutdown_sends_1001_over_tls(self):
        # Last: SIGTERM sends 1001 to a wss member; the server exits 0 once it has gone.
        c = RawTls(self.tls_port, self.ca, "leaving")
        self.srv.signal(signal.SIGTERM)
        while True:
            op, payload = c.frame()
            if op == 0x8:
                break
        self.assertEqual(int.from_bytes(payload[:2], "big"), 1001)
        c.s.sendall(bytes([0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xE9 ^ 2]))  # our close (1001), masked
        self.assertEqual(self.srv.proc.wait(15), 0)
        c.s.close()


class WssOnlyTest(unittest.TestCase):
    """A config with a tls block and no `listen`: only wss:// is served."""

    def test_wss_only_listener(self):
        d = tempfile.mkdtemp(prefix="rproxy-wss-only-")
        try:
            make_ca(d)
            make_server_cert(d, "server")
            tls_port, admin = harness.free_port(), harness.free_port()
            conf = f"""admin: {{ listen: 127.0.0.1:{admin} }}
tls:
  listen: 127.0.0.1:{tls_port}
  certificates: [ {{ cert: {d}/server.pem, key: {d}/server.key }} ]
anonymous: true
"""
            path = os.path.join(d, "only.yaml")
            with open(path, "w") as f:
                f.write(conf)
            v = subprocess.run([BINARY, "validate", path], capture_output=True, text=True, timeout=30)
            self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
            srv = harness.Program(BINARY, conf, args=["--workers", "1"], name="wss-only").start(wait_ports=[tls_port, admin])
            try:
                c = RawTls(tls_port, os.path.join(d, "ca.pem"), "solo")
                c.s.sendall(bytes([0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xE8 ^ 2]))  # our close (1000), masked
                op, payload = c.frame()
                self.assertEqual((op, int.from_bytes(payload[:2], "big")), (0x8, 1000))
                c.s.close()
                # No ws:// listener besides it (the default 127.0.0.1:8095 is only for a config without tls).
                self.assertIn("listener=websocket-tls", srv.output())
                self.assertNotIn("listener=websocket ", srv.output())
                self.assertEqual(metrics(admin)["ws_upgrades_total"], 1)
            finally:
                self.assertEqual(srv.stop(), 0)
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
