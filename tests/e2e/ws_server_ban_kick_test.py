"""End-to-end: a ban made through apps/ws-server's admin API closes the connections it covers
that are already open (npm `ws` 8 clients, tests/e2e/ws_server/stay_client.js): close code 1008
with the ban message; a client the ban does not cover stays connected; the kick is counted in
ws_ban_kicks_total; the banned address is then refused at the upgrade.

Distinct client addresses are loopback addresses (127.0.0.x).

Usage: ws_server_ban_kick_test.py PATH_TO_WS_SERVER [unittest args]"""
import json
import os
import queue
import subprocess
import sys
import threading
import unittest
import urllib.request

import harness
from harness import metrics

BINARY = None
HERE = os.path.dirname(os.path.abspath(__file__))
STAY = os.path.join(HERE, "ws_server", "stay_client.js")


class StayingClient:
    """One stay_client.js process; its JSON lines are collected as they come."""

    def __init__(self, port, user, local):
        self.proc = subprocess.Popen(["node", STAY, "--port", str(port), "--user", user, "--local", local],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                self.lines.put({"text": line.rstrip()})

    def next(self, timeout=20):
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line from the client within {timeout}s")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)


def post(admin, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{admin}{path}", method="POST", data=body.encode())
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.status, json.loads(resp.read())


class BanKickTest(unittest.TestCase):
    def test_a_new_ban_closes_open_connections_with_1008(self):
        if not os.path.isdir(os.path.join(HERE, "node_modules", "ws")):
            raise AssertionError("npm ws is missing: run scripts/setup (tests/e2e/node_modules)")
        port, admin = harness.free_port(), harness.free_port()
        cfg = f"admin: {{ listen: 127.0.0.1:{admin} }}\nlisten: 127.0.0.1:{port}\nanonymous: true\n"
        srv = harness.Program(BINARY, cfg, args=["--workers", "2"], name="ws-kick").start(wait_ports=[port, admin])
        clients = []
        try:
            banned = StayingClient(port, "mallory", "127.0.0.21")
            other = StayingClient(port, "erin", "127.0.0.22")
            clients = [banned, other]
            self.assertEqual(banned.next(), {"opened": True})
            self.assertEqual(other.next(), {"opened": True})
            harness.wait_until(lambda: metrics(admin).get("ws_connections", 0) == 2, what="both connections open")
            self.assertEqual(metrics(admin).get("ws_ban_kicks_total"), 0)

            status, body = post(admin, "/bans", "addr 127.0.0.21 1h flooding")
            self.assertEqual((status, body), (200, {"banned": 1}))
            closed = banned.next()
            self.assertEqual(closed, {"closed": {"code": 1008, "reason": "banned"}})
            self.assertEqual(banned.proc.wait(10), 0)
            harness.wait_until(lambda: metrics(admin).get("ws_connections", 0) == 1, what="the banned connection gone")
            m = metrics(admin)
            self.assertEqual(m.get("ws_ban_kicks_total"), 1)
            self.assertEqual(m.get('ws_rejections_total{reason="banned"}'), 1)
            self.assertIsNone(other.proc.poll(), "the client the ban does not cover stays connected")
            self.assertTrue(other.lines.empty(), "and was told nothing")

            # the banned address is refused at the upgrade from now on
            again = StayingClient(port, "mallory", "127.0.0.21")
            clients.append(again)
            self.assertEqual(again.next(), {"error": "upgrade refused: 403"})

            # a ban in the query form (the gateway's) works the same here
            status, body = post(admin, "/bans?kind=addr&subject=127.0.0.22&ttl=600&reason=e2e", "")
            self.assertEqual((status, body), (200, {"banned": 1}))
            self.assertEqual(other.next(), {"closed": {"code": 1008, "reason": "banned"}})
            self.assertEqual(metrics(admin).get("ws_ban_kicks_total"), 2)
            log = srv.output()
            self.assertIn("ban_kick", log)
        finally:
            for c in clients:
                c.stop()
            self.assertEqual(srv.stop(), 0)


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
