"""End-to-end tests of apps/h3-gateway's upstream side: WebSocket upgrades proxied to a backend
(npm ws 8 client and server, tests/e2e/h3_gateway/ws_peer.js, and raw sockets checked against
RFC 6455's accept-key rule), Server-Sent Events streamed event by event, and a large upload
streamed to a slow backend with the gateway's memory bounded.

Usage: h3_gateway_upstream_test.py PATH_TO_H3_GATEWAY [unittest args]"""
import base64
import hashlib
import json
import os
import queue
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import unittest

import harness
from harness import metrics

BINARY = None
HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "h3_gateway", "ws_peer.js")
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3


def need_node():
    if not os.path.isdir(os.path.join(HERE, "node_modules", "ws")):
        raise AssertionError("npm ws is missing: run scripts/setup (tests/e2e/node_modules)")


class WsBackend:
    """ws_peer.js server: its upgrade log is read line by line into a queue."""

    def __init__(self):
        self.proc = subprocess.Popen(["node", PEER, "server"], stdout=subprocess.PIPE, text=True)
        first = json.loads(self.proc.stdout.readline())
        self.port = first["port"]
        self.seen = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.seen.put(json.loads(line))

    def upgrades(self):
        """Every upgrade request seen so far (paths and headers)."""
        out = []
        while True:
            try:
                out.append(self.seen.get_nowait())
            except queue.Empty:
                return out

    def close(self):
        self.proc.kill()
        self.proc.wait()
        self.reader.join(10)  # it ends at the pipe's EOF
        self.proc.stdout.close()


def ws_client(url, *args):
    p = subprocess.run(["node", PEER, "client", url, *args], capture_output=True, text=True, timeout=60)
    lines = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    if p.returncode != 0 or not lines:
        raise AssertionError(f"ws client failed (rc {p.returncode}): {p.stdout}\n{p.stderr}")
    return lines[-1]


def read_head(s):
    """(status, {lowercase header: value}, bytes after the head) from a raw socket."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = s.recv(65536)
        if not b:
            raise AssertionError(f"closed before a response head: {buf!r}")
        buf += b
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    heads = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        heads[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), heads, rest


def masked_text_frame(text):
    """A client's masked text frame (RFC 6455 section 5.2), built here."""
    data = text.encode()
    mask = os.urandom(4)
    assert len(data) < 126
    return bytes([0x81, 0x80 | len(data)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def read_frame(s, buf):
    """(opcode, payload, rest) of one unmasked server frame, `buf` holding bytes already read."""
    while True:
        if len(buf) >= 2:
            n, off = buf[1] & 0x7F, 2
            if n == 126 and len(buf) >= 4:
                n, off = struct.unpack("!H", buf[2:4])[0], 4
            elif n == 127 and len(buf) >= 10:
                n, off = struct.unpack("!Q", buf[2:10])[0], 10
            if n < 126 or off > 2:
                if len(buf) >= off + n:
                    return buf[0] & 0x0F, buf[off:off + n], buf[off + n:]
        b = s.recv(65536)
        if not b:
            raise AssertionError("closed mid-frame")
        buf += b


def config(port, admin, ws_port, keys=None, extra=""):
    """Routes /ws and /idle (idle_timeout 300ms) to the ws backend; with an API key file, also
    /private (api_keys)."""
    private = f"""    - name: private
      prefix: /private
      strip_prefix: /private
      backends: [ {{ group: ws }} ]
      middleware: [ api_keys ]
""" if keys else ""
    return f"""admin: {{ listen: 127.0.0.1:{admin} }}
listen: 127.0.0.1:{port}
groups:
  - name: ws
    backends: [ {{ address: 127.0.0.1:{ws_port} }} ]
http:
  routes:
    - name: ws
      prefix: /ws
      strip_prefix: /ws
      backends: [ {{ group: ws }} ]
      request_headers: {{ set: {{ X-Route: ws }} }}
{private}    - name: idle
      prefix: /idle
      strip_prefix: /idle
      backends: [ {{ group: ws }} ]
      idle_timeout: 300ms
""" + (f"api_keys: {{ file: {keys} }}\n" if keys else "") + extra


class WebSocketThroughGatewayTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        need_node()
        cls.ws = WsBackend()
        cls.dir = tempfile.mkdtemp(prefix="rproxy-h3gw-up-")
        cls.key = "k-" + os.urandom(12).hex()
        cls.keys = os.path.join(cls.dir, "keys.txt")
        with open(cls.keys, "w") as f:
            f.write(f"{hashlib.sha256(cls.key.encode()).hexdigest()} client-one\n")
        cls.port, cls.admin = harness.free_port(), harness.free_port()
        cls.gw = harness.Program(BINARY, config(cls.port, cls.admin, cls.ws.port, cls.keys), args=["--workers", "2"],
                                 name="h3gw-up")
        cls.gw.start(wait_ports=[cls.port, cls.admin])

    @classmethod
    def tearDownClass(cls):
        rc = cls.gw.stop()
        cls.ws.close()
        if rc != 0:
            cls.gw.dump()
        assert rc == 0, rc

    def url(self, path):
        return f"ws://127.0.0.1:{self.port}{path}"

    def upgrades_total(self, route):
        return metrics(self.admin).get(f'h3gw_upgrades_total{{route="{route}"}}', 0)

    def test_messages_both_ways_through_the_route(self):
        before = self.upgrades_total("ws")
        r = ws_client(self.url("/ws/chat?room=1"), "--messages", "20", "--binary", "300000")
        self.assertNotIn("error", r, r)
        # The route ran: its path rewrite, its header, the forwarding fields.
        self.assertEqual(r["welcome"]["welcome"], "/chat?room=1")
        seen = r["welcome"]["headers"]
        self.assertEqual(seen.get("x-route"), "ws")
        self.assertEqual(seen.get("x-forwarded-for"), "127.0.0.1")
        self.assertEqual(seen.get("upgrade"), "websocket")
        self.assertEqual((r["echoes"], r["binary_ok"], r["close"]), (20, True, 1000), r)
        harness.wait_until(lambda: self.upgrades_total("ws") == before + 1, what="h3gw_upgrades_total to count the upgrade")

    def test_backend_closes_first(self):
        r = ws_client(self.url("/ws/close-first"), "--wait-close")
        self.assertEqual((r.get("close"), r.get("reason")), (4001, "server closes"), r)

    def test_backend_refusal_is_relayed_and_the_connection_carries_on(self):
        r = ws_client(self.url("/ws/refused"))
        self.assertEqual((r.get("status"), r.get("body")), (403, "backend says no"), r)
        # Raw: the refusal, then the next request on the same connection.
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            key = base64.b64encode(os.urandom(16)).decode()
            s.sendall(f"GET /ws/refused HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
            status, heads, rest = read_head(s)
            self.assertEqual(status, 403)
            while len(rest) < int(heads["content-length"]):
                rest += s.recv(65536)
            self.assertEqual(rest, b"backend says no")
            self.assertNotIn("upgrade", heads)
            s.sendall(b"GET /ws/plain HTTP/1.1\r\nHost: t\r\n\r\n")
            status, _, _ = read_head(s)
            self.assertEqual(status, 404)  # the ws backend's answer to a plain request

    def test_refused_by_auth_never_reaches_the_backend(self):
        r = ws_client(self.url("/private/secret"))
        self.assertEqual(r.get("status"), 401, r)
        self.assertEqual(json.loads(r["body"])["error"], "unauthorized")
        r = ws_client(self.url("/private/open"), "--header", f"X-API-Key: {self.key}", "--messages", "3")
        self.assertEqual((r.get("echoes"), r.get("close")), (3, 1000), r)
        # The backend saw the second upgrade only (it logs each one before answering it; the
        # log is read by a thread, so wait for the second one to show).
        seen = []
        harness.wait_until(lambda: seen.extend(u["upgrade"] for u in self.ws.upgrades()) or "/open" in seen,
                           what="the backend's log of /open")
        self.assertNotIn("/secret", seen)

    def test_raw_upgrade_with_early_frame_and_accept_key(self):
        """The client's first frame goes in the same segment as its request; the 101's
        Sec-WebSocket-Accept is checked against RFC 6455's rule, computed here."""
        key = base64.b64encode(os.urandom(16)).decode()
        req = (f"GET /ws/raw HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nKeep-Alive: timeout=5\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(req + masked_text_frame("early"))
            status, heads, rest = read_head(s)
            self.assertEqual(status, 101)
            want = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
            self.assertEqual(heads.get("sec-websocket-accept"), want)
            self.assertEqual(heads.get("upgrade", "").lower(), "websocket")
            self.assertIn("upgrade", heads.get("connection", "").lower())
            self.assertNotIn("keep-alive", heads)
            op, payload, rest = read_frame(s, rest)
            self.assertEqual((op, json.loads(payload)["welcome"]), (1, "/raw"))
            op, payload, rest = read_frame(s, rest)
            self.assertEqual((op, payload), (1, b"echo:early"))

    def test_other_upgrades_get_501(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(b"GET /ws/x HTTP/1.1\r\nHost: t\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                      b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
            status, _, _ = read_head(s)
            self.assertEqual(status, 501)
        # A WebSocket upgrade with a body is not passed on either.
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(b"POST /ws/x HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Content-Length: 2\r\n\r\nhi")
            status, _, _ = read_head(s)
            self.assertEqual(status, 501)

    def test_idle_timeout_ends_a_silent_websocket(self):
        """The route's idle_timeout (300ms) ends an upgraded connection nobody writes to."""
        key = base64.b64encode(os.urandom(16)).decode()
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(f"GET /idle/x HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
            status, _, rest = read_head(s)
            self.assertEqual(status, 101)
            _, _, rest = read_frame(s, rest)  # the welcome
            s.settimeout(10)  # bounded: the gateway closes well before this
            while True:
                try:
                    b = s.recv(65536)
                except ConnectionResetError:
                    break
                if not b:
                    break


class WebSocketTlsAndDrainTest(unittest.TestCase):
    """wss:// through the gateway's tls: listener (the relay over a TLS client stream), and a
    graceful stop with an upgraded connection open."""

    def test_wss_through_the_tls_listener_and_a_stop_with_a_websocket_open(self):
        need_node()
        ws = WsBackend()
        d = tempfile.mkdtemp(prefix="rproxy-h3gw-wss-")
        cert, key = os.path.join(d, "gw.pem"), os.path.join(d, "gw.key")
        p = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                            "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=wss.test",
                            "-addext", "subjectAltName=DNS:wss.test,IP:127.0.0.1"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        port, admin, tls = harness.free_port(), harness.free_port(), harness.free_port()
        text = config(port, admin, ws.port, extra=f"tls:\n  listen: 127.0.0.1:{tls}\n  certificates: [ {{ cert: {cert}, key: {key} }} ]\n")
        gw = harness.Program(BINARY, text, args=["--workers", "1", "--drain-timeout", "1"], name="h3gw-wss")
        try:
            gw.start(wait_ports=[port, admin, tls])
            r = ws_client(f"wss://127.0.0.1:{tls}/ws/secure", "--ca", cert, "--messages", "10", "--binary", "200000")
            self.assertEqual((r.get("echoes"), r.get("binary_ok"), r.get("close")), (10, True, 1000), r)
            self.assertEqual(r["welcome"]["welcome"], "/secure")
            # An upgraded connection open at SIGTERM: the gateway still stops cleanly (at the
            # drain deadline), and the connection is closed.
            wskey = base64.b64encode(os.urandom(16)).decode()
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(f"GET /ws/held HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          f"Sec-WebSocket-Key: {wskey}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
                status, _, rest = read_head(s)
                self.assertEqual(status, 101)
                read_frame(s, rest)  # the welcome
                self.assertEqual(gw.stop(timeout=15), 0)
                s.settimeout(10)
                try:
                    while s.recv(65536):
                        pass
                except ConnectionResetError:
                    pass
        finally:
            if gw.proc and gw.proc.poll() is None:
                gw.stop()
            ws.close()


class SseBackend:
    """A Server-Sent Events backend the test drives: /events writes one event, then waits until
    the test calls release(), then writes the second and ends the stream (chunked)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.gate = threading.Event()
        self.second_sent = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def release(self):
        self.gate.set()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(c,), daemon=True).start()

    def _one(self, c):
        # This request's events, as they are now: a connection left from an earlier test (one the
        # gateway gave up, still waiting at its gate) must not set the next test's second_sent.
        gate, second_sent = self.gate, self.second_sent
        with c:
            buf = b""
            while b"\r\n\r\n" not in buf:
                b = c.recv(65536)
                if not b:
                    return
                buf += b
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n")
            ev = b"id: 1\ndata: first\n\n"
            c.sendall(b"%x\r\n%s\r\n" % (len(ev), ev))
            if not gate.wait(30):  # the test releases it once the client has the first event
                return
            ev = b"id: 2\ndata: second\n\n"
            c.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(ev), ev))
            second_sent.set()
            c.recv(1)

    def close(self):
        self.sock.close()


class SlowSink:
    """A backend that reads a request body slowly (64 KiB reads with a pause between them, the
    load model of a slow consumer), hashes it, and answers {"len":N,"sha":HEX}."""

    def __init__(self, pause=0.001):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.pause = pause
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        import time
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                buf = b""
                while b"\r\n\r\n" not in buf:
                    buf += c.recv(65536)
                head, _, body = buf.partition(b"\r\n\r\n")
                want = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
                h = hashlib.sha256(body)
                got = len(body)
                while got < want:
                    b = c.recv(min(65536, want - got))
                    if not b:
                        break
                    h.update(b)
                    got += len(b)
                    time.sleep(self.pause)
                out = json.dumps({"len": got, "sha": h.hexdigest()}).encode()
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                          b"Connection: close\r\n\r\n%s" % (len(out), out))

    def close(self):
        self.sock.close()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


class StreamingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sse, cls.sink = SseBackend(), SlowSink()
        cls.port, cls.admin = harness.free_port(), harness.free_port()
        text = f"""admin: {{ listen: 127.0.0.1:{cls.admin} }}
listen: 127.0.0.1:{cls.port}
limits: {{ max_body: 512MiB, buffer_size: 16KiB }}
groups:
  - name: sse
    backends: [ {{ address: 127.0.0.1:{cls.sse.port} }} ]
  - name: sink
    backends: [ {{ address: 127.0.0.1:{cls.sink.port} }} ]
http:
  routes:
    - name: sse
      prefix: /events
      backends: [ {{ group: sse }} ]
    - name: upload
      prefix: /upload
      backends: [ {{ group: sink }} ]
"""
        cls.gw = harness.Program(BINARY, text, args=["--workers", "1"], name="h3gw-stream")
        cls.gw.start(wait_ports=[cls.port, cls.admin])

    @classmethod
    def tearDownClass(cls):
        rc = cls.gw.stop()
        cls.sse.close()
        cls.sink.close()
        if rc != 0:
            cls.gw.dump()
        assert rc == 0, rc

    def sse_through(self, *curl_args):
        """The first event reaches the client while the backend holds the second back."""
        self.sse.gate = threading.Event()  # (new ones: see SseBackend._one)
        self.sse.second_sent = threading.Event()
        p = subprocess.Popen(["curl", "-sSN", "--max-time", "30", *curl_args, f"http://127.0.0.1:{self.port}/events"],
                             stdout=subprocess.PIPE)
        try:
            lines = []
            while b"data: first\n" not in lines:
                line = p.stdout.readline()  # curl's --max-time bounds this
                self.assertTrue(line, f"the stream ended before the first event: {lines}")
                lines.append(line)
            self.assertFalse(self.sse.second_sent.is_set())  # it arrived alone, not with the second
            self.sse.release()
            while b"data: second\n" not in lines:
                line = p.stdout.readline()
                self.assertTrue(line, f"the stream ended before the second event: {lines}")
                lines.append(line)
            self.assertEqual(lines, [b"id: 1\n", b"data: first\n", b"\n", b"id: 2\n", b"data: second\n"])
            self.assertEqual(p.wait(30), 0)
        finally:
            self.sse.release()
            if p.poll() is None:
                p.kill()
            p.wait()
            p.stdout.close()

    def test_sse_event_by_event_http1(self):
        self.sse_through()

    def test_sse_event_by_event_h2c(self):
        self.sse_through("--http2-prior-knowledge")

    def test_large_upload_streams_with_backpressure(self):
        """200 MiB up to a backend that reads slowly: it arrives whole, and the gateway's RSS
        stays within a few MiB of where it started (nothing is buffered whole)."""
        size = 200 * 1024 * 1024
        pid = self.gw.proc.pid
        base = rss_kib(pid)
        peak = [base]
        done = threading.Event()

        def watch():
            while not done.wait(0.05):
                peak[0] = max(peak[0], rss_kib(pid))

        threading.Thread(target=watch, daemon=True).start()
        sent = hashlib.sha256()
        piece = bytes(range(256)) * 4096  # 1 MiB
        with socket.create_connection(("127.0.0.1", self.port), timeout=120) as s:
            s.sendall(f"POST /upload/big HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\n\r\n".encode())
            for i in range(size // len(piece)):
                chunk = piece[i % 256:] + piece[:i % 256]
                sent.update(chunk)
                s.sendall(chunk)
            status, heads, rest = read_head(s)
            while len(rest) < int(heads["content-length"]):
                rest += s.recv(65536)
        done.set()
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(rest), {"len": size, "sha": sent.hexdigest()})
        growth = peak[0] - base
        print(f"\n  upload 200 MiB: gateway RSS {base} KiB before, peak {peak[0]} KiB (+{growth} KiB)", file=sys.stderr)
        # Under AddressSanitizer RSS also counts its shadow memory and its quarantine of freed
        # blocks (about +30 MiB measured for this upload, against +0.3 MiB without): a looser
        # bound there, still well below the body's 200 MiB.
        self.assertLess(growth, (128 if harness.sanitized(BINARY) else 32) * 1024)


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
