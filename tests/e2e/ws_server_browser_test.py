"""End-to-end: apps/ws-server's chat page in a real browser. Debian Chromium, headless, driven by
npm puppeteer-core (tests/e2e/ws_server_browser/chat.js), opens the page served at `/`, two
pages and one npm `ws` client join one room and each sends a message the others must see.
The server's Origin allow-list is on, so the browser's own Origin header is checked too.

A missing Chromium or puppeteer-core fails the test (scripts/setup installs both).

Usage: ws_server_browser_test.py PATH_TO_WS_SERVER [unittest args]"""
import json
import os
import subprocess
import sys
import unittest

import harness

BINARY = None
HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "ws_server_browser", "chat.js")
CHROMIUM = os.environ.get("RPROXY_CHROMIUM", "/usr/bin/chromium")


class BrowserChatTest(unittest.TestCase):
    def test_chat_page_in_chromium(self):
        if not os.access(CHROMIUM, os.X_OK):
            raise AssertionError(f"{CHROMIUM} is missing: run scripts/setup (apt package chromium)")
        for m in ("puppeteer-core", "ws"):
            if not os.path.isdir(os.path.join(HERE, "node_modules", m)):
                raise AssertionError(f"npm {m} is missing: run scripts/setup (tests/e2e/node_modules)")
        port, admin = harness.free_port(), harness.free_port()
        cfg = f"""admin: {{ listen: 127.0.0.1:{admin} }}
listen: 127.0.0.1:{port}
anonymous: true
allowed_origins: [ "http://127.0.0.1:{port}" ]
"""
        srv = harness.Program(BINARY, cfg, args=["--workers", "2"], name="ws-browser").start(wait_ports=[port, admin])
        try:
            p = subprocess.run(["node", SCRIPT, "--port", str(port), "--chromium", CHROMIUM, "--timeout", "30000"],
                               capture_output=True, text=True, timeout=120)
            lines = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
            if p.returncode != 0 or not lines or "error" in lines[-1]:
                srv.dump()
                raise AssertionError(f"chat.js failed (rc {p.returncode}): {p.stdout}\n{p.stderr[-4000:]}")
            r = lines[-1]
            sys.stderr.write(f"browser: {r['chromium']}\n")
            room = "browsers"
            expected = [f"[{room}] alice: hello from alice", f"[{room}] carol: carol <b>here</b> & there", f"[{room}] bob: bob says hi"]
            # both pages show the three messages, in the room's order
            for who in ("alice_log", "carol_log"):
                self.assertEqual([l for l in r[who] if l.startswith(f"[{room}]")], expected, who)
            self.assertIn(f"in {room} as owner", r["alice_log"])   # alice's page created the room
            self.assertIn(f"in {room} as member", r["carol_log"])
            self.assertEqual(r["bob_join"]["type"], "ok")
            self.assertEqual(r["bob_join"]["members"], 3)
            self.assertEqual(r["bob_messages"], [
                {"from": "alice", "text": "hello from alice", "msg_id": 1},
                {"from": "carol", "text": "carol <b>here</b> & there", "msg_id": 2},
                {"from": "bob", "text": "bob says hi", "msg_id": 3},
            ])
            # presence events reached the page: carol's and bob's joins
            self.assertTrue(any(l.startswith(f"* carol joined {room}") for l in r["alice_presence"]), r["alice_presence"])
            self.assertTrue(any(l.startswith(f"* bob joined {room}") for l in r["alice_presence"]), r["alice_presence"])
            self.assertEqual(r["markup_elements"], 0)  # carol's <b> stayed text
            self.assertEqual(r["page_errors"], [])
            m = metrics(admin)
            self.assertGreaterEqual(m["ws_pages_total"], 2)
            self.assertGreaterEqual(m["ws_upgrades_total"], 3)
        finally:
            self.assertEqual(srv.stop(), 0)


def metrics(admin):
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
    return {l.rsplit(" ", 1)[0]: float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l and not l.startswith("#")}


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
