"""End-to-end: 0-RTT on h3-gateway's QUIC listener (RFC 8470), with a client that surely sends
in early data: h3_0rtt_client (tests/e2e/h3_gateway_h3_0rtt_client.cpp, ngtcp2 + GnuTLS +
nghttp3) takes a session ticket on a first connection, resumes on a second and sends its
request before the handshake completes. It reports what it did: whether TLS offered early data,
how many request bytes went in 0-RTT packets, whether the server accepted them, and whether it
had to send again after the handshake. The tests assert only what the client reports it did:
  - early_data on: a GET sent in accepted 0-RTT reaches the backend with Early-Data: 1; a POST
    sent in it is answered 425 and never reaches the backend; the gateway's early-data counters
    move by exactly those requests;
  - early_data off (the default): a resumed connection's early data is refused; the GET and the
    POST are sent again after the handshake and reach the backend unmarked; the counters stay 0.
(GnuTLS refuses early data whose ticket was issued before its anti-replay window restarted, so
a try can be refused even when on: the client takes a new ticket and tries again, up to 5.)

Usage: h3_gateway_h3_0rtt_test.py PATH_TO_H3_GATEWAY PATH_TO_H3_0RTT_CLIENT [unittest args]"""
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import unittest

import harness
from harness import metrics

BINARY = None
CLIENT = None


class Recorder(http.server.BaseHTTPRequestHandler):
    """Keeps (method, path, Early-Data header or None) of each request; answers with them."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def answer(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        seen = (self.command, self.path, self.headers.get("Early-Data"))
        with self.server.lock:
            self.server.seen.append(seen)
        out = json.dumps({"method": seen[0], "path": seen[1], "early_data": seen[2], "body_len": len(body)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = answer


class ZeroRtt(unittest.TestCase):
    def start(self, quic):
        self.dir = tempfile.mkdtemp(prefix="rproxy-0rtt-")
        self.cert, key = f"{self.dir}/cert.pem", f"{self.dir}/key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-keyout", key, "-out", self.cert, "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
        self.be = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
        self.be.daemon_threads = True
        self.be.seen, self.be.lock = [], threading.Lock()
        threading.Thread(target=self.be.serve_forever, daemon=True).start()
        self.port, self.plain, self.admin = harness.free_port(), harness.free_port(), harness.free_port()
        self.gw = harness.Program(BINARY, f"""admin: {{ listen: 127.0.0.1:{self.admin} }}
listen: 127.0.0.1:{self.plain}
tls:
  listen: 127.0.0.1:{self.port}
  certificates: [ {{ cert: {self.cert}, key: {key} }} ]
quic: {quic}
access_log: false
groups:
  - name: g
    backends: [ {{ address: 127.0.0.1:{self.be.server_address[1]} }} ]
http:
  routes:
    - name: all
      prefix: /
      backends: [ {{ group: g }} ]
""", args=["--workers", "2"], name="h3-0rtt").start(wait_ports=[self.port, self.plain, self.admin])

    def tearDown(self):
        rc = self.gw.stop()
        self.be.shutdown()
        self.be.server_close()
        if rc != 0:
            self.gw.dump()
        self.assertEqual(rc, 0)

    def client(self, method, path, body=None, tries=5):
        """Runs h3_0rtt_client: its resumed connections' reports (each after a ticket connection)."""
        self.assertTrue(os.access(CLIENT, os.X_OK), f"{CLIENT} is not built")
        args = [CLIENT, "--port", str(self.port), "--ca", self.cert, "--sni", "localhost", "--method", method, "--path", path,
                "--tries", str(tries), *(["--body", body] if body is not None else [])]
        p = subprocess.run(args, capture_output=True, text=True, timeout=120)
        lines = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
        if p.returncode != 0:
            self.gw.dump()
            raise AssertionError(f"h3_0rtt_client failed (rc {p.returncode}): {p.stdout}\n{p.stderr}")
        tickets = [l for l in lines if l["conn"] == "ticket"]
        resumed = [l for l in lines if l["conn"] == "resumed"]
        self.assertEqual(len(tickets), len(resumed), lines)
        for t in tickets:  # full handshakes: nothing early, a plain answer
            self.assertEqual((t["status"], t["resumed"], t["early_sent"]), (200, False, 0), t)
        for r in resumed:
            self.assertTrue(r["resumed"], r)  # the ticket was taken: TLS resumption worked
        sys.stderr.write("".join(f"\n  {method} try {r['try']}: offered={r['early_offered']} sent={r['early_sent']} "
                                 f"accepted={r['early_accepted']} resent={r['resent']} status={r['status']}" for r in resumed) + "\n")
        return resumed

    def seen(self, path):
        with self.be.lock:
            return [s for s in self.be.seen if s[1] == path]

    def early_counts(self):
        m = metrics(self.admin)
        return (m.get('h3gw_early_data_requests_total{outcome="forwarded"}', 0), m.get('h3gw_early_data_requests_total{outcome="too_early"}', 0))

    def test_on_get_in_0rtt_is_forwarded_marked_and_post_gets_425(self):
        self.start("{ early_data: true }")
        # GET
        runs = self.client("GET", "/early")
        accepted = [r for r in runs if r["early_accepted"]]
        self.assertEqual(len(accepted), 1, runs)  # the client stops at the first accepted try
        a = accepted[0]
        self.assertTrue(a["early_offered"], a)
        self.assertGreater(a["early_sent"], 0, a)  # the request really went in 0-RTT packets
        self.assertFalse(a["resent"], a)
        self.assertEqual(a["status"], 200, a)
        self.assertEqual(json.loads(a["body"])["early_data"], "1", a)  # RFC 8470 §5.1
        refused = [r for r in runs if not r["early_accepted"]]  # (a ticket older than GnuTLS's window)
        for r in refused:
            self.assertTrue(r["resent"], r)
            self.assertEqual((r["status"], json.loads(r["body"])["early_data"]), (200, None), r)
        self.assertEqual(self.seen("/early"), [("GET", "/early", None)] * len(refused) + [("GET", "/early", "1")])
        self.assertEqual(self.early_counts(), (1, 0))
        # POST: 425 from the gateway itself (RFC 8470 §5.2); the backend never sees it.
        runs = self.client("POST", "/post", body="payload-0rtt")
        accepted = [r for r in runs if r["early_accepted"]]
        self.assertEqual(len(accepted), 1, runs)
        a = accepted[0]
        self.assertGreater(a["early_sent"], 0, a)
        self.assertEqual(a["status"], 425, a)
        refused = [r for r in runs if not r["early_accepted"]]
        self.assertEqual(self.seen("/post"), [("POST", "/post", None)] * len(refused))
        self.assertEqual(self.early_counts(), (1, 1))
        # Nothing but the GET ever reached the backend marked.
        with self.be.lock:
            self.assertEqual([s for s in self.be.seen if s[2] is not None], [("GET", "/early", "1")])

    def test_off_by_default_early_data_is_refused_and_sent_again(self):
        self.start("{ }")
        for method, path, body in (("GET", "/early", None), ("POST", "/post", "payload")):
            [r] = self.client(method, path, body=body, tries=1)
            self.assertFalse(r["early_accepted"], r)
            # Whether or not the ticket let the client try (early_offered), nothing was taken
            # early: the request went (again) after the handshake.
            self.assertTrue(r["resent"], r)
            self.assertEqual(r["status"], 200, r)
            self.assertEqual(json.loads(r["body"])["early_data"], None, r)
            self.assertEqual(self.seen(path), [(method, path, None)])
        self.assertEqual(self.early_counts(), (0, 0))


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    CLIENT = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
