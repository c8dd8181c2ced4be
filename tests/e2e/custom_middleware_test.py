"""e2e of examples/custom_middleware: the user-written business_hours stage with its own config
block lets clients in during opening hours and refuses them otherwise (counted in /metrics).
Usage: custom_middleware_test.py PATH_TO_BINARY"""
import asyncio
import os
import sys
import unittest
import urllib.request

import harness
from tcp_proxy_test import Backend, echo, echo_roundtrip

BINARY = None


def config(port, backend, admin, open_hour, close_hour):
    return (f"admin:\n  listen: 127.0.0.1:{admin}\n"
            f"routes:\n  - name: shop\n    listen: 127.0.0.1:{port}\n"
            f"    backends:\n      - address: 127.0.0.1:{backend}\n"
            f"business_hours:\n  open_hour: {open_hour}\n  close_hour: {close_hour}\n"
            f"  message: closed for the test\n")


class CustomMiddlewareTest(unittest.TestCase):
    def run_case(self, open_hour, close_hour):
        async def main():
            async with Backend(echo) as b:
                port, admin = harness.free_port(), harness.free_port()
                prog = harness.Program(BINARY, config(port, b.port, admin, open_hour, close_hour),
                                       name="custom")
                prog.start(wait_ports=[port, admin])
                try:
                    got = await echo_roundtrip(port, b"hello")
                    metrics = await asyncio.to_thread(
                        lambda: urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode())
                finally:
                    self.assertEqual(prog.stop(), 0)
                return got, metrics
        return asyncio.run(asyncio.wait_for(main(), 60))

    def test_open_hours_let_clients_in(self):
        got, metrics = self.run_case(0, 24)
        self.assertEqual(got, b"hello")
        self.assertNotIn('reason="forbidden"', metrics)

    def test_closed_hours_refuse_clients(self):
        got, metrics = self.run_case(0, 0)
        self.assertEqual(got, b"")
        self.assertRegex(metrics, r'rproxy_rejects_total\{route="shop",reason="forbidden"\} [1-9]')

    def test_config_block_is_validated_and_documented(self):
        import subprocess
        p = subprocess.run([BINARY, "init"], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0)
        self.assertIn("business_hours:", p.stdout)
        self.assertIn("open_hour: 0", p.stdout)
        bad = harness.Program(BINARY, config(1, 2, 3, 0, 24).replace("open_hour", "opn_hour"), name="bad")
        p = subprocess.run([BINARY, "validate", bad.config], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn("did you mean 'open_hour'", p.stderr)


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
