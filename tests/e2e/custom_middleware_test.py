"""e2e of examples/custom_middleware: mc-proxy plus a user-written stage (business_hours) with its
own config block. During opening hours a server-list ping gets mc-proxy's own answer; outside
them the client is told the stage's message in its protocol (the MOTD), counted in /metrics.
Usage: custom_middleware_test.py PATH_TO_BINARY"""
import json
import os
import re
import socket
import subprocess
import sys
import unittest
import urllib.request

import harness

BINARY = None


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def read_varint(sock):
    n = shift = 0
    while True:
        b = sock.recv(1)
        if not b:
            raise EOFError("closed inside a VarInt")
        n |= (b[0] & 0x7F) << shift
        shift += 7
        if not b[0] & 0x80:
            return n


def packet(pid, body=b""):
    data = varint(pid) + body
    return varint(len(data)) + data


def status_motd(port, host):
    """A 1.20.4 server-list ping (handshake + status request) answered by whoever is at `port`."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        addr = host.encode()
        hs = varint(765) + varint(len(addr)) + addr + port.to_bytes(2, "big") + varint(1)
        s.sendall(packet(0x00, hs) + packet(0x00))
        length = read_varint(s)
        data = b""
        while len(data) < length:
            chunk = s.recv(length - len(data))
            if not chunk:
                raise EOFError("closed inside the status response")
            data += chunk
    body = data[1:]  # packet id 0x00
    strlen = 0
    shift = i = 0
    while True:
        strlen |= (body[i] & 0x7F) << shift
        shift += 7
        i += 1
        if not body[i - 1] & 0x80:
            break
    status = json.loads(body[i:i + strlen].decode())
    d = status["description"]
    return d if isinstance(d, str) else d.get("text", "")


def forbidden(metrics):
    m = re.search(r'^mc_rejects_total\{reason="forbidden"\} (\d+)$', metrics, re.M)
    if not m:
        raise AssertionError("no mc_rejects_total{reason=forbidden} in /metrics")
    return int(m.group(1))


def config(port, admin, backend, open_hour, close_hour):
    return (f"listen: 127.0.0.1:{port}\nadmin:\n  listen: 127.0.0.1:{admin}\n"
            f"servers:\n  - name: shop\n    domains: [shop.example.com]\n"
            f"    backends:\n      - address: 127.0.0.1:{backend}\n"
            f"    status:\n      offline: {{motd: shop is offline, version_name: off}}\n"
            f"business_hours:\n  open_hour: {open_hour}\n  close_hour: {close_hour}\n"
            f"  message: closed for the test\n")


class CustomMiddlewareTest(unittest.TestCase):
    def run_case(self, open_hour, close_hour, probe_refused):
        port, admin, backend = harness.free_port(), harness.free_port(), harness.free_port()
        prog = harness.Program(BINARY, config(port, admin, backend, open_hour, close_hour), name="custom")
        prog.start(wait_ports=[port, admin])
        scrape = lambda: urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
        idle = lambda: re.search(r"^rproxy_flows_active 0$", scrape(), re.M) is not None
        try:
            # the start-up port probe was a flow too: count from when it has closed. No flow
            # active is also true before the probe is accepted: when closed hours refuse it, wait
            # for its refusal to be counted as well (else it may count after `before`).
            harness.wait_until(lambda: idle() and (not probe_refused or forbidden(scrape()) >= 1),
                               what="the port probe's flow closed")
            before = forbidden(scrape())
            motd = status_motd(port, "shop.example.com")
            harness.wait_until(idle, what="the ping's flow closed (it is counted as it closes)")
            after = forbidden(scrape())
        finally:
            self.assertEqual(prog.stop(), 0, prog.output())
        return motd, after - before

    def test_open_hours_let_clients_in(self):
        motd, refused = self.run_case(0, 24, probe_refused=False)
        self.assertEqual(motd, "shop is offline")  # mc-proxy answered: no backend listens there
        self.assertEqual(refused, 0)

    def test_closed_hours_refuse_clients(self):
        motd, refused = self.run_case(0, 0, probe_refused=True)
        self.assertEqual(motd, "closed for the test")
        self.assertEqual(refused, 1)

    def test_config_block_is_validated_and_documented(self):
        p = subprocess.run([BINARY, "init"], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0)
        self.assertIn("business_hours:", p.stdout)
        self.assertIn("open_hour: 0", p.stdout)
        self.assertIn("servers:", p.stdout)  # every mc-proxy block is there too
        bad = harness.Program(BINARY, config(1, 2, 3, 0, 24).replace("open_hour", "opn_hour"), name="bad")
        p = subprocess.run([BINARY, "validate", bad.config], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn("did you mean 'open_hour'", p.stderr)


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
