"""End-to-end test of WebSockets over HTTP/2 (RFC 8441) through apps/h3-gateway: Debian
Chromium (npm puppeteer-core, tests/e2e/h3_gateway/h2_ws_browser.js) loads a page over the TLS
listener (HTTP/2 by ALPN), then opens `wss://` from it: Chromium sends the extended CONNECT on
that connection because the gateway's SETTINGS allow it; the gateway passes it to an HTTP/1.1
WebSocket backend (npm ws, tests/e2e/h3_gateway/ws_peer.js) as an Upgrade and relays the frames
as DATA. nghttp shows the SETTINGS; the gateway's access log shows the CONNECT.

A missing Chromium, puppeteer-core or ws fails the test (scripts/setup installs them).

Usage: h3_gateway_h2_websocket_test.py PATH_TO_H3_GATEWAY [unittest args]"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import urllib.request

import harness
from h3_gateway_upstream_test import WsBackend

BINARY = None
HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "h3_gateway", "h2_ws_browser.js")
CHROMIUM = os.environ.get("RPROXY_CHROMIUM", "/usr/bin/chromium")


def run(cmd, cwd, **kw):
    return subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, timeout=60, **kw)


class H2WebSocketTest(unittest.TestCase):
    def test_chromium_websocket_over_http2(self):
        if not os.access(CHROMIUM, os.X_OK):
            raise AssertionError(f"{CHROMIUM} is missing: run scripts/setup (apt package chromium)")
        for m in ("puppeteer-core", "ws"):
            if not os.path.isdir(os.path.join(HERE, "node_modules", m)):
                raise AssertionError(f"npm {m} is missing: run scripts/setup (tests/e2e/node_modules)")
        d = tempfile.mkdtemp(prefix="rproxy-h2ws-")
        self.addCleanup(shutil.rmtree, d, True)
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
             "-keyout", "gw.key", "-out", "gw.pem", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], d)
        der = run(["openssl", "x509", "-in", "gw.pem", "-pubkey", "-noout"], d).stdout
        der = run(["openssl", "pkey", "-pubin", "-outform", "der"], d, input=der).stdout
        spki = base64.b64encode(run(["openssl", "dgst", "-sha256", "-binary"], d, input=der).stdout).decode()

        backend = WsBackend()
        self.addCleanup(backend.close)
        port, tport, admin = harness.free_port(), harness.free_port(), harness.free_port()
        cfg = f"""admin: {{ listen: 127.0.0.1:{admin} }}
listen: 127.0.0.1:{port}
tls:
  listen: 127.0.0.1:{tport}
  certificates: [ {{ cert: {d}/gw.pem, key: {d}/gw.key }} ]
groups:
  - name: ws
    backends: [ {{ address: 127.0.0.1:{backend.port} }} ]
http:
  routes:
    - {{ name: ws, prefix: /ws, backends: [ {{ group: ws }} ] }}
"""
        gw = harness.Program(BINARY, cfg, name="h3gw-h2ws").start(wait_ports=[port, tport, admin])
        try:
            # The server's SETTINGS carry SETTINGS_ENABLE_CONNECT_PROTOCOL (0x8) = 1.
            p = subprocess.run(["nghttp", "-nv", f"https://127.0.0.1:{tport}/ws/page"], capture_output=True, text=True, timeout=30)
            recv_settings = [l for l in p.stdout.splitlines() if "recv SETTINGS frame" in l]
            self.assertTrue(recv_settings, p.stdout)
            self.assertRegex(p.stdout, r"\[(SETTINGS_ENABLE_CONNECT_PROTOCOL|UNKNOWN)\(0x08\):1\]")

            p = subprocess.run(["node", SCRIPT, "--origin", f"https://localhost:{tport}", "--page", "/ws/page", "--ws", "/ws/echo",
                                "--spki", spki, "--chromium", CHROMIUM, "--timeout", "30000"],
                               capture_output=True, text=True, timeout=120)
            lines = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
            if p.returncode != 0 or not lines or "error" in lines[-1]:
                gw.dump()
                raise AssertionError(f"h2_ws_browser.js failed (rc {p.returncode}): {p.stdout}\n{p.stderr[-4000:]}")
            r = lines[-1]
            self.assertEqual(r["protocol"], "h2", r)  # the page came over HTTP/2
            self.assertEqual(len(r["messages"]), 2, r)
            welcome = json.loads(r["messages"][0])
            self.assertEqual(welcome["welcome"], "/ws/echo")
            # The backend got an HTTP/1.1 upgrade with a key the gateway made (RFC 8441 has none).
            self.assertEqual(welcome["headers"]["upgrade"], "websocket")
            self.assertTrue(welcome["headers"]["sec-websocket-key"])
            self.assertEqual(welcome["headers"]["sec-websocket-version"], "13")
            self.assertEqual(r["messages"][1], "echo:hello over h2")
            self.assertEqual(r["code"], 1000)
            # The request arrived as an extended CONNECT on HTTP/2, answered 200.
            harness.wait_until(lambda: "method=CONNECT target=/ws/echo" in gw.output(), what="the CONNECT in the access log")
            line = next(l for l in gw.output().splitlines() if "method=CONNECT target=/ws/echo" in l)
            self.assertIn("status=200", line)
            text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
            self.assertIn('h3gw_upgrades_total{route="ws"} 1', text)
        finally:
            self.assertEqual(gw.stop(), 0)


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
