"""End-to-end tests of apps/ws-server with npm `ws` 8 clients (tests/e2e/ws_server/client.js):
rooms, history, private messages, JWT, Origin, rate limits, a malformed upgrade, graceful
shutdown, and backpressure with a reader that never reads (a raw socket here).

Usage: ws_server_test.py PATH_TO_WS_SERVER [unittest args]"""
import base64
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

import harness
from harness import metrics

BINARY = None
HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.join(HERE, "ws_server", "client.js")


def need_node():
    if not os.path.isdir(os.path.join(HERE, "node_modules", "ws")):
        raise AssertionError("npm ws is missing: run scripts/setup (tests/e2e/node_modules)")


def config(port, admin, extra=""):
    return f"""admin: {{ listen: 127.0.0.1:{admin} }}
listen: 127.0.0.1:{port}
{extra}"""


def run_client(scenario, port, timeout=60, **kw):
    cmd = ["node", CLIENT, scenario, "--port", str(port)]
    for k, v in kw.items():
        cmd += ["--" + k, str(v)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    lines = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    if p.returncode != 0 or not lines or "error" in lines[-1]:
        raise AssertionError(f"client {scenario} failed (rc {p.returncode}): {p.stdout}\n{p.stderr}")
    return lines


def jwt(secret, claims):
    """An HS256 token made here (Python's hmac), independent of the server's code."""
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def raw_upgrade(port, path="/?user=slow", rcvbuf=None, extra=""):
    """A raw socket that does the upgrade; returns (socket, response head)."""
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n".encode())
    head = b""
    s.settimeout(10)
    while b"\r\n\r\n" not in head:
        b = s.recv(1)
        if not b:
            break
        head += b
    return s, head.decode(errors="replace")


def masked_text(text):
    data = text.encode()
    key = os.urandom(4)
    assert len(data) < 126
    return bytes([0x81, 0x80 | len(data)]) + key + bytes(b ^ key[i % 4] for i, b in enumerate(data))


class RoomsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        need_node()
        cls.port, cls.admin = harness.free_port(), harness.free_port()
        extra = """anonymous: true
allowed_origins: [ "http://good.example" ]
"""
        cls.srv = harness.Program(BINARY, config(cls.port, cls.admin, extra), args=["--workers", "2"], name="ws")
        cls.srv.start(wait_ports=[cls.port, cls.admin])

    @classmethod
    def tearDownClass(cls):
        assert cls.srv.stop() == 0

    def test_rooms_history_private_messages(self):
        r, closes = run_client("rooms", self.port)
        self.assertEqual((r["created"]["type"], r["created"]["role"]), ("ok", "owner"))
        self.assertEqual((r["joined"]["type"], r["joined"]["members"]), ("ok", 2))
        texts = [m["text"] for m in r["bob_messages"]]
        self.assertEqual(texts, ["one", "two <b>three</b>"])  # decoded: the frame escaped < > as \u003c \u003e
        self.assertEqual([m["msg_id"] for m in r["bob_messages"]], [1, 2])
        # carol joined after both messages: the history is replayed, oldest first, same frames
        self.assertEqual(r["carol_messages"], r["bob_messages"])
        self.assertEqual(r["carol_join"]["last_id"], 2)
        self.assertEqual([(p["from"], p["to"], p["text"]) for p in r["carol_private"]], [("bob", "carol", "psst")])
        self.assertEqual(r["alice_private"], [])
        self.assertEqual((r["bad"]["type"], r["bad"]["code"]), ("error", "unknown_op"))
        self.assertIn("permessage-deflate", r["bob_deflate"])
        self.assertEqual([c["code"] for c in closes["closes"]], [1000, 1000, 1000])  # the close echoed

    def test_origin_allow_list(self):
        self.assertEqual(run_client("connect", self.port, origin="http://evil.example", query="?user=eve")[-1], {"status": 403})
        ok = run_client("connect", self.port, origin="http://good.example", query="?user=gina")[-1]
        self.assertTrue(ok["opened"])
        self.assertEqual(ok["members"][0]["user"], "gina")
        # a client without Origin (not a browser) is not affected
        self.assertTrue(run_client("connect", self.port, query="?user=nora")[-1]["opened"])

    def test_anonymous_needs_a_valid_name(self):
        self.assertEqual(run_client("connect", self.port, query="?x=1")[-1], {"status": 401})
        self.assertEqual(run_client("connect", self.port, query="?user=%3Cscript%3E")[-1], {"status": 400})

    def test_bad_upgrades_get_400_and_426(self):
        s, head = raw_upgrade(self.port, extra="")
        s.close()
        self.assertTrue(head.startswith("HTTP/1.1 101"), head)
        for bad, status in (("Sec-WebSocket-Version: 8\r\n", "426"), ("Sec-WebSocket-Key: x\r\n", "400")):
            s = socket.create_connection(("127.0.0.1", self.port))
            s.sendall((f"GET /?user=x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{bad}"
                      + ("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" if "Key" not in bad else "Sec-WebSocket-Version: 13\r\n")
                      + "\r\n").encode())
            resp = harness_read_all(s)
            self.assertTrue(resp.startswith(f"HTTP/1.1 {status}"), resp)
            if status == "426":
                self.assertIn("Sec-WebSocket-Version: 13", resp)

    def test_unmasked_frame_closes_with_1002(self):
        s, head = raw_upgrade(self.port)
        self.assertIn("101", head.split("\r\n")[0])
        s.sendall(b"\x81\x02hi")  # a client frame without the mask bit
        data = harness_read_all(s, text=False)
        self.assertEqual(data[:2], b"\x88\x02" if len(data) == 4 else data[:2])
        self.assertEqual(int.from_bytes(data[2:4], "big"), 1002)

    def test_chat_page(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=5) as r:
            body = r.read().decode()
            self.assertEqual(r.headers["Content-Type"], "text/html; charset=utf-8")
        self.assertIn("new WebSocket(", body)
        self.assertIn("textContent", body)


def harness_read_all(s, text=True):
    s.settimeout(10)
    out = b""
    while True:
        try:
            b = s.recv(65536)
        except ConnectionResetError:
            break
        if not b:
            break
        out += b
    s.close()
    return out.decode(errors="replace") if text else out


class RateLimitTest(unittest.TestCase):
    def test_rate_limit_closes_with_1008(self):
        need_node()
        port, admin = harness.free_port(), harness.free_port()
        extra = """anonymous: true
rate_limits:
  message: { key: [ ip ], tiers: [ { name: default, limit: 30, window: 1m } ] }
"""
        srv = harness.Program(BINARY, config(port, admin, extra), name="ws-rl").start(wait_ports=[port, admin])
        try:
            r = run_client("flood", port, count=200)[-1]
            self.assertEqual(r["closed"]["code"], 1008)
            self.assertEqual(r["ok"], 30)  # exactly the limit went through
            self.assertEqual(metrics(admin)['ws_rejections_total{reason="rate_limited"}'], 1)
        finally:
            self.assertEqual(srv.stop(), 0)


class JwtTest(unittest.TestCase):
    def test_jwt_header_cookie_query(self):
        need_node()
        d = tempfile.mkdtemp(prefix="rproxy-ws-jwt-")
        secret = "s-" + os.urandom(24).hex()
        with open(os.path.join(d, "jwt.secret"), "w") as f:
            f.write(secret)
        port, admin = harness.free_port(), harness.free_port()
        extra = f"""jwt: {{ keys: [ {{ type: hmac, file: {d}/jwt.secret, algorithm: HS256 }} ], query: token, cookie: ws_token }}
"""
        srv = harness.Program(BINARY, config(port, admin, extra), name="ws-jwt").start(wait_ports=[port, admin])
        try:
            good = jwt(secret, {"sub": "dana", "role": "admin", "exp": int(time.time()) + 300})
            forged = jwt("wrong-" + secret, {"sub": "dana", "exp": int(time.time()) + 300})
            expired = jwt(secret, {"sub": "dana", "exp": int(time.time()) - 3600})
            self.assertEqual(run_client("connect", port)[-1], {"status": 401})
            self.assertEqual(run_client("connect", port, query="?user=dana")[-1], {"status": 401})  # no anonymous names
            self.assertEqual(run_client("connect", port, bearer=forged)[-1], {"status": 401})
            self.assertEqual(run_client("connect", port, query="?token=" + expired)[-1], {"status": 401})
            for how in ({"bearer": good}, {"query": "?token=" + good}, {"cookie": "ws_token=" + good}):
                r = run_client("connect", port, **how)[-1]
                self.assertTrue(r.get("opened"), (how, r))
                self.assertEqual(r["members"][0]["user"], "dana")  # the token's sub
                self.assertEqual(r["members"][0]["role"], "owner")
            # the token's subject banned through the admin API (no redis: this instance alone)
            req = urllib.request.Request(f"http://127.0.0.1:{admin}/bans", method="POST",
                                         data=b'{"kind":"identity","subject":"dana","duration":"1h"}')
            with urllib.request.urlopen(req, timeout=5) as resp:
                self.assertEqual(json.loads(resp.read()), {"banned": 1})
            r = run_client("connect", port, bearer=good)[-1]
            self.assertFalse(r.get("opened"), f"a banned subject is refused: {r}")
            other = jwt(secret, {"sub": "erin", "exp": int(time.time()) + 300})
            self.assertTrue(run_client("connect", port, bearer=other)[-1].get("opened"), "another subject is not")
            req = urllib.request.Request(f"http://127.0.0.1:{admin}/bans/identity/dana", method="DELETE")
            with urllib.request.urlopen(req, timeout=5) as resp:
                self.assertEqual(resp.status, 200)
            self.assertTrue(run_client("connect", port, bearer=good)[-1].get("opened"), "lifted")
            self.assertNotIn(secret, srv.output())
            self.assertNotIn(good, srv.output())
        finally:
            self.assertEqual(srv.stop(), 0)


class BackpressureTest(unittest.TestCase):
    """A member that never reads while the room keeps flowing: the others get every message, the
    slow one is dropped or closed per policy, and the server's memory stays bounded."""

    def run_policy(self, policy):
        need_node()
        port, admin = harness.free_port(), harness.free_port()
        extra = f"""anonymous: true
websocket:
  send_queue: {{ max_messages: 512, max_bytes: 1MiB, policy: {policy}, write_timeout: 30s }}
"""
        srv = harness.Program(BINARY, config(port, admin, extra), args=["--workers", "2"], name="ws-bp").start(wait_ports=[port, admin])
        try:
            count, size = 4000, 4000  # 16 MB through the room: far past the slow member's queue and socket buffers
            node = subprocess.Popen(["node", CLIENT, "fanout", "--port", str(port), "--readers", "3", "--count", str(count),
                                     "--size", str(size), "--timeout", "120000"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            self.assertEqual(json.loads(node.stdout.readline()), {"ready": True})
            slow, head = raw_upgrade(port, "/?user=slow", rcvbuf=4096)
            self.assertIn("101", head.split("\r\n")[0])
            slow.sendall(masked_text('{"op":"join","room":"flow","id":1}'))
            harness.wait_until(lambda: metrics(admin).get("ws_messages_in_total", 0) >= 5, what="the slow member's join")
            base = rss_kib(srv.proc.pid)
            node.stdin.write("go\n")
            node.stdin.flush()
            result = json.loads(node.stdout.readline())
            node.wait(30)
            node.stdin.close()
            node.stdout.close()
            after = rss_kib(srv.proc.pid)
            self.assertNotIn("error", result, result)
            self.assertEqual(result["delivered"], [count] * 3)  # every other member got every message
            self.assertTrue(result["in_order"])
            m = metrics(admin)
            drops = m['ws_send_dropped_total{policy="%s"}' % policy]
            sys.stderr.write(f"{policy}: {count} x {size} B to 3 readers + 1 that never reads in {result['ms']} ms; "
                             f"RSS {base} -> {after} KiB; drops {drops}\n")
            self.assertGreater(drops, 0)
            # Bounded: the slow member's 16 MB never piled up in the server (its queue holds at
            # most 1 MiB; the kernel's socket buffers take a few MB, not 10). Not under ASan: its
            # quarantine keeps freed memory resident, so RSS tracks allocations, not live memory.
            if not harness.sanitized(BINARY):
                self.assertLess(after - base, 6 * 1024, f"RSS grew from {base} to {after} KiB")
            if policy == "close":
                # the slow member was closed: once it reads, its stream ends (after a 1013 close frame
                # when the frame fit in the buffers, else the write timed out)
                data = harness_read_all(slow, text=False)
                self.assertGreater(len(data), 0)
            else:
                slow.close()
        finally:
            self.assertEqual(srv.stop(), 0)

    def test_drop_oldest(self):
        self.run_policy("drop_oldest")

    def test_close_1013(self):
        self.run_policy("close")


class ShutdownTest(unittest.TestCase):
    def test_sigterm_sends_1001(self):
        port, admin = harness.free_port(), harness.free_port()
        srv = harness.Program(BINARY, config(port, admin, "anonymous: true\n"), name="ws-stop").start(wait_ports=[port, admin])
        s, head = raw_upgrade(port)
        self.assertIn("101", head.split("\r\n")[0])
        srv.signal(signal.SIGTERM)
        s.settimeout(10)
        frame = s.recv(64)
        self.assertEqual(frame[0], 0x88)  # a close frame
        self.assertEqual(int.from_bytes(frame[2:4], "big"), 1001)
        key = os.urandom(4)
        s.sendall(bytes([0x88, 0x82]) + key + bytes(b ^ key[i] for i, b in enumerate(b"\x03\xe9")))  # our close
        self.assertEqual(srv.proc.wait(15), 0)
        self.assertEqual(srv.stop(), 0)
        s.close()


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
