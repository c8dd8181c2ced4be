"""End-to-end operations of apps/ws-server: reload of the rate limits and rooms limits (an
existing connection gets the new limits on its next message; a bad file keeps the old config
with a file:line error), the metrics (silent connections apart from handshake failures, the
fan-out latency histogram), `validate` (with the keys only a restart changes) and `init`, and moderation over the wire (a private
room with a password, mute, ban with a duration that expires).

The WebSocket client here is written in this file from RFC 6455 (raw frames over a socket), so
the server is checked by code that shares nothing with it.

Usage: ws_server_ops_test.py PATH_TO_WS_SERVER [unittest args]"""
import base64
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import unittest
import urllib.error
import urllib.request

import harness

BINARY = None
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3


class Client:
    """A minimal RFC 6455 client: masked text frames out, unmasked frames in."""

    def __init__(self, port, user):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
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
        self.next_id = 0
        self.events = []     # frames that are not replies, in order
        self.close = None    # (code, reason) once the server closed

    def send(self, obj):
        data = json.dumps(obj).encode()
        mask = os.urandom(4)
        n = len(data)
        head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big"))
        self.s.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _need(self, n):
        while len(self.buf) < n:
            b = self.s.recv(65536)
            if not b:
                raise EOFError
            self.buf += b

    def frame(self):
        """The next frame: (opcode, payload)."""
        self._need(2)
        op, n = self.buf[0] & 0x0F, self.buf[1] & 0x7F
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

    def message(self):
        """The next text message (a close is recorded and raises EOFError)."""
        while True:
            op, payload = self.frame()
            if op == 0x1:
                return json.loads(payload)
            if op == 0x8:
                self.close = (int.from_bytes(payload[:2], "big"), payload[2:].decode())
                raise EOFError
            # pings are not expected within these tests' time; anything else is skipped

    def ask(self, **req):
        """Sends a request and returns its reply; events before it are kept in self.events."""
        self.next_id += 1
        req["id"] = self.next_id
        self.send(req)
        while True:
            m = self.message()
            if m.get("type") in ("ok", "error") and m.get("id") == self.next_id:
                return m
            self.events.append(m)

    def event(self, pred):
        for i, m in enumerate(self.events):
            if pred(m):
                return self.events.pop(i)
        while True:
            m = self.message()
            if pred(m):
                return m
            self.events.append(m)

    def closed_code(self):
        """Reads until the server's close frame; its code."""
        try:
            while True:
                self.message()
        except EOFError:
            pass
        return self.close[0] if self.close else None


def metrics(admin):
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
    return {l.rsplit(" ", 1)[0]: float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l and not l.startswith("#")}


def reload(admin):
    req = urllib.request.Request(f"http://127.0.0.1:{admin}/reload", method="POST", data=b"")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def config(port, admin, extra=""):
    return f"""admin: {{ listen: 127.0.0.1:{admin} }}
listen: 127.0.0.1:{port}
anonymous: true
{extra}"""


class ReloadTest(unittest.TestCase):
    def test_reload_limits_apply_to_the_next_operation(self):
        port, admin = harness.free_port(), harness.free_port()
        srv = harness.Program(BINARY, config(port, admin, """rooms: { max_members: 1000 }
rate_limits:
  message: { key: [ ip ], tiers: [ { name: default, limit: 1000, window: 1m } ] }
"""), args=["--workers", "2"], name="ws-reload").start(wait_ports=[port, admin])
        try:
            alice, bob = Client(port, "alice"), Client(port, "bob")
            self.assertEqual(alice.ask(op="create", room="r")["type"], "ok")
            self.assertEqual(bob.ask(op="join", room="r")["members"], 2)
            # Lower both: 2 members per room, 3 messages a minute.
            srv.write_config(config(port, admin, """rooms: { max_members: 2 }
rate_limits:
  message: { key: [ ip ], tiers: [ { name: default, limit: 3, window: 1m } ] }
"""))
            self.assertEqual(reload(admin), 200)
            carol = Client(port, "carol")
            self.assertEqual(carol.ask(op="join", room="r")["code"], "full")     # a room made before the reload
            self.assertEqual(carol.ask(op="create", room="c", max_members=3)["code"], "limit")
            # alice's connection is older than the reload: its next messages meet the new limit
            for i in range(3):
                self.assertEqual(alice.ask(op="message", room="r", text=f"m{i}")["type"], "ok")
            alice.send({"op": "message", "room": "r", "text": "one too many", "id": 99})
            self.assertEqual(alice.closed_code(), 1008)
            # A bad file: refused with its file:line, the previous config keeps serving.
            srv.write_config(config(port, admin, "rooms:\n  max_members: 0\n"))
            self.assertEqual(reload(admin), 422)
            harness.wait_until(lambda: re.search(r"config\.yaml:\d+", srv.output()) is not None, what="the file:line error")
            line = next(l for l in srv.output().splitlines() if re.search(r"config\.yaml:\d+", l))
            self.assertIn("config.yaml:5:", line)  # rooms.max_members is on line 5
            self.assertIn("must be at least 1", line)
            self.assertEqual(carol.ask(op="join", room="r")["code"], "full")   # still 2
            self.assertEqual(Client(port, "dave").ask(op="create", room="d", max_members=2)["type"], "ok")
            m = metrics(admin)
            self.assertEqual(m['rproxy_config_reloads_total{result="ok"}'], 1)
            self.assertEqual(m['rproxy_config_reloads_total{result="error"}'], 1)
        finally:
            self.assertEqual(srv.stop(), 0)

    def test_reload_websocket_block_applies_to_new_connections(self):
        # max_message 4 KiB, then 1 KiB: a connection accepted after the reload is closed with 1009
        # for a 2 KB message; one accepted before keeps its 4 KiB. A listener change is logged as
        # needing a restart (and the old listener keeps serving).
        port, admin, other = harness.free_port(), harness.free_port(), harness.free_port()
        srv = harness.Program(BINARY, config(port, admin, "websocket: { max_message: 4KiB }\n"),
                              args=["--workers", "2"], name="ws-reload-ws").start(wait_ports=[port, admin])
        try:
            old = Client(port, "old")
            self.assertEqual(old.ask(op="create", room="w")["type"], "ok")
            srv.write_config(config(other, admin, "websocket: { max_message: 1KiB, idle_timeout: 30s }\n"))
            self.assertEqual(reload(admin), 200)
            harness.wait_until(lambda: "restart required" in srv.output(), what="the restart-required line")
            line = next(l for l in srv.output().splitlines() if "restart required" in l)
            self.assertIn("listen", line)
            text = "x" * 2000
            new = Client(port, "new")  # the old listener still serves (listen applies at restart)
            self.assertEqual(new.ask(op="join", room="w")["type"], "ok")
            new.send({"op": "message", "room": "w", "text": text, "id": 7})
            self.assertEqual(new.closed_code(), 1009)
            reply = old.ask(op="message", room="w", text=text)  # 2 KB under the old connection's 4 KiB
            self.assertEqual(reply["type"], "ok", reply)
            self.assertEqual(old.event(lambda m: m.get("type") == "message")["text"], text)
        finally:
            self.assertEqual(srv.stop(), 0)


class MetricsTest(unittest.TestCase):
    def test_silent_connections_and_fanout_latency(self):
        port, admin = harness.free_port(), harness.free_port()
        srv = harness.Program(BINARY, config(port, admin), args=["--workers", "2"], name="ws-metrics").start(wait_ports=[port, admin])
        try:
            # harness.start's wait for the port was a probe itself: counted first
            harness.wait_until(lambda: metrics(admin)["ws_silent_connections_total"] == 1, what="the harness's port probe")
            base = metrics(admin)
            for _ in range(3):  # port probes: connect, say nothing, close
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
            s = socket.create_connection(("127.0.0.1", port), timeout=5)  # a broken upgrade
            s.sendall(b"GET /?user=x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n")
            self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 400"))
            s.close()
            silent = lambda: metrics(admin)["ws_silent_connections_total"] - base["ws_silent_connections_total"]
            harness.wait_until(lambda: silent() == 3, what="3 silent connections")
            m = metrics(admin)
            self.assertEqual(m["ws_handshake_failures_total"] - base["ws_handshake_failures_total"], 1)  # the probes are not failures
            # A room across both workers: each message is one delivery (and each join's presence).
            members = [Client(port, f"u{i}") for i in range(6)]
            self.assertEqual(members[0].ask(op="create", room="fan")["type"], "ok")
            for c in members[1:]:
                self.assertEqual(c.ask(op="join", room="fan")["type"], "ok")
            for i in range(20):
                members[i % 6].ask(op="message", room="fan", text=f"t{i}")
            for c in members:
                c.event(lambda e: e.get("type") == "message" and e.get("msg_id") == 20)
            # one observation per delivery: 20 messages and 5 joins' presence events (a create has none)
            harness.wait_until(lambda: metrics(admin)["ws_fanout_latency_seconds_count"] == 25, what="25 fan-out observations")
            m = metrics(admin)
            count = m["ws_fanout_latency_seconds_count"]
            self.assertEqual(m['ws_fanout_latency_seconds_bucket{le="+Inf"}'], count)
            self.assertGreater(m["ws_fanout_latency_seconds_sum"], 0)
            sys.stderr.write(f"fan-out latency: {count:.0f} deliveries to 6 members, mean {m['ws_fanout_latency_seconds_sum'] / count * 1e6:.0f} us\n")
            self.assertEqual(m["ws_messages_in_total"] - base.get("ws_messages_in_total", 0), 26)
            self.assertGreater(m["ws_bytes_out_total"], m["ws_bytes_in_total"])
            self.assertEqual(m["ws_rooms"], 1)
            self.assertEqual(m["ws_connections"], 6)
        finally:
            self.assertEqual(srv.stop(), 0)


class ConnectionCapTest(unittest.TestCase):
    def test_per_ip_cap_refuses_the_next_upgrade(self):
        port, admin = harness.free_port(), harness.free_port()
        srv = harness.Program(BINARY, config(port, admin, "conn_limit: { max_per_ip: 2 }\n"),
                              name="ws-cap").start(wait_ports=[port, admin])
        try:
            harness.wait_until(lambda: metrics(admin)["ws_silent_connections_total"] == 1, what="the harness's port probe to end")
            a, b = Client(port, "a"), Client(port, "b")
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"GET /?user=c HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
            head = s.recv(4096).decode(errors="replace")
            s.close()
            self.assertRegex(head, r"^HTTP/1.1 (429|503) ")
            harness.wait_until(lambda: metrics(admin).get('ws_rejections_total{reason="too_many_connections"}', 0) == 1,
                               what="the rejection counted")
            self.assertEqual(a.ask(op="list")["type"], "ok")  # the two admitted ones are unaffected
            a.s.close()
            harness.wait_until(lambda: metrics(admin)["ws_connections"] == 1, what="a's connection to end")
            self.assertEqual(Client(port, "c").ask(op="list")["type"], "ok")  # a place is free again
            b.s.close()
        finally:
            self.assertEqual(srv.stop(), 0)


class ModerationTest(unittest.TestCase):
    def test_private_room_mute_and_ban_with_duration(self):
        port, admin = harness.free_port(), harness.free_port()
        srv = harness.Program(BINARY, config(port, admin, "rooms: { password: { iterations: 1000 } }\n"),
                              name="ws-mod").start(wait_ports=[port, admin])
        try:
            alice, bob, carol = Client(port, "alice"), Client(port, "bob"), Client(port, "carol")
            self.assertEqual(alice.ask(op="create", room="staff", private=True, password="correct horse")["private"], True)
            self.assertEqual(carol.ask(op="list")["rooms"], [])                        # unlisted
            self.assertEqual(carol.ask(op="members", room="staff")["code"], "not_found")
            self.assertEqual(bob.ask(op="join", room="staff", password="wrong one")["code"], "wrong_password")
            self.assertEqual(bob.ask(op="join", room="staff", password="correct horse")["type"], "ok")
            p = alice.event(lambda e: e.get("type") == "presence" and e.get("user") == "bob")
            self.assertEqual((p["event"], p["members"]), ("join", 2))
            self.assertEqual([r["name"] for r in bob.ask(op="list")["rooms"]], ["staff"])  # listed to its members
            # mute: bob stays, his messages are refused for the duration
            self.assertEqual(alice.ask(op="mute", room="staff", user="bob", seconds=600)["type"], "ok")
            e = bob.ask(op="message", room="staff", text="hello?")
            self.assertEqual(e["code"], "muted")
            self.assertRegex(e["error"], r"for (599|600) more seconds")
            self.assertEqual(alice.ask(op="unmute", room="staff", user="bob")["type"], "ok")
            self.assertEqual(bob.ask(op="message", room="staff", text="thanks")["type"], "ok")
            # ban with a duration: bob is removed and refused until it expires
            self.assertEqual(alice.ask(op="ban", room="staff", user="bob", seconds=2)["type"], "ok")
            banned = bob.event(lambda e: e.get("type") == "banned")
            self.assertEqual((banned["room"], banned["by"], banned["seconds"]), ("staff", "alice", 2))
            self.assertEqual(alice.event(lambda e: e.get("type") == "moderation")["action"], "mute")
            refused = bob.ask(op="join", room="staff", password="correct horse")
            self.assertEqual(refused["code"], "banned")
            # the ban expires: a bounded poll of joins (each a real request)
            last = {}
            def joined():
                last.update(bob.ask(op="join", room="staff", password="correct horse"))
                return last["type"] == "ok"
            harness.wait_until(joined, timeout=10, interval=0.25, what="the ban to expire")
            self.assertEqual(last["members"], 2)
        finally:
            self.assertEqual(srv.stop(), 0)


class CommandsTest(unittest.TestCase):
    def test_validate_and_init(self):
        d = tempfile.mkdtemp(prefix="rproxy-ws-cmd-")
        init = subprocess.run([BINARY, "init"], capture_output=True, text=True, timeout=30)
        self.assertEqual(init.returncode, 0, init.stderr)
        for key in ("rooms:", "max_members:", "websocket:", "send_queue:", "rate_limits:", "allowed_origins:"):
            self.assertIn(key, init.stdout)
        # what init prints is a config validate accepts (made usable: a user source)
        path = os.path.join(d, "init.yaml")
        with open(path, "w") as f:
            f.write(init.stdout + "\nanonymous: true\n" if "\nanonymous:" not in init.stdout else init.stdout.replace("anonymous: false", "anonymous: true"))
        v = subprocess.run([BINARY, "validate", path], capture_output=True, text=True, timeout=30)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        bad = os.path.join(d, "bad.yaml")
        with open(bad, "w") as f:
            f.write("listen: 127.0.0.1:8095\nanonymous: true\nrooms:\n  max_membres: 10\n")
        v = subprocess.run([BINARY, "validate", bad], capture_output=True, text=True, timeout=30)
        self.assertNotEqual(v.returncode, 0)
        out = v.stdout + v.stderr
        self.assertIn("bad.yaml:4", out)
        self.assertIn("max_members", out)  # the suggestion for the misspelt key
        with open(bad, "w") as f:
            f.write("listen: 127.0.0.1:8095\n")  # neither jwt nor anonymous: nobody could connect
        v = subprocess.run([BINARY, "validate", bad], capture_output=True, text=True, timeout=30)
        self.assertNotEqual(v.returncode, 0)
        self.assertIn("anonymous", v.stdout + v.stderr)


    def test_validate_lists_the_keys_a_reload_does_not_apply(self):
        # After "ok", the keys only a restart changes, with their values in this file; a reload
        # that changes one of them (here the audit file) is logged as needing a restart.
        d = tempfile.mkdtemp(prefix="rproxy-ws-cmd-")
        port, admin = harness.free_port(), harness.free_port()
        audit = os.path.join(d, "audit.log")
        text = config(port, admin, f"audit: {{ file: {audit} }}\n")
        path = os.path.join(d, "ws.yaml")
        with open(path, "w") as f:
            f.write(text)
        v = subprocess.run([BINARY, "validate", path], capture_output=True, text=True, timeout=30)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        lines = v.stdout.splitlines()
        self.assertEqual(lines[0], f"{path}: ok")
        self.assertEqual(lines[1], "restart-only keys (a reload keeps the values the process started with):")
        keys = {l.strip().split(": ", 1)[0]: l.strip().split(": ", 1)[1] for l in lines[2:]}
        self.assertEqual(list(keys), ["listen", "tls", "tls.listen", "admin", "audit", "redis", "cluster"])
        self.assertEqual(keys["listen"], f"127.0.0.1:{port}")
        self.assertEqual(keys["tls"], "off")
        self.assertEqual(keys["tls.listen"], "(unset)")
        self.assertIn(f"127.0.0.1:{admin}", keys["admin"])
        self.assertIn(audit, keys["audit"])
        self.assertEqual(keys["redis"], "(unset)")
        srv = harness.Program(BINARY, text, name="ws-restart-keys").start(wait_ports=[port, admin])
        try:
            srv.write_config(config(port, admin, f"audit: {{ file: {audit}.2 }}\n"))
            self.assertEqual(reload(admin), 200)
            harness.wait_until(lambda: "restart required" in srv.output(), what="the restart-required line")
            line = next(l for l in srv.output().splitlines() if "restart required" in l)
            self.assertIn("audit", line)
            self.assertNotIn("listen", line)
        finally:
            self.assertEqual(srv.stop(), 0)

if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
