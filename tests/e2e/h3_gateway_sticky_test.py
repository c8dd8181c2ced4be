"""End-to-end: session affinity in apps/h3-gateway without shared state. A group with
`balancer: consistent_hash` behind a route with `sticky: { cookie: session }`: every request of a
session reaches one backend, on every worker and on a second gateway instance with the same
config (nothing shared between them: the hash is the same everywhere); sessions spread over
the backends; a request without the cookie goes by the client's address. Draining a backend on
both instances moves only the sessions it held (Maglev keeps the others where they were), and
undraining it brings them back.

Usage: h3_gateway_sticky_test.py PATH_TO_H3_GATEWAY [unittest args]"""
import http.client
import json
import os
import sys
import unittest

import harness
from h3_gateway_test import Backend, config, curl

BINARY = None
SESSIONS = 40


class StickyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.backends = [Backend(name) for name in ("a", "b", "c", "d")]
        cls.ids = {b.server.name: f"127.0.0.1:{b.port}" for b in cls.backends}
        cls.gws = []
        for name in ("sticky-a", "sticky-b"):
            port, admin = harness.free_port(), harness.free_port()
            text = config(port, admin, [("pool", [b.port for b in cls.backends], ["balancer: consistent_hash"])],
                          "- name: app\n  prefix: /\n  backends: [ { group: pool } ]\n  sticky: { cookie: session }\n")
            gw = harness.Program(BINARY, text, args=["--workers", "2"], name=name).start(wait_ports=[port, admin])
            cls.gws.append((gw, port, admin))

    @classmethod
    def tearDownClass(cls):
        rcs = [gw.stop() for gw, _, _ in cls.gws]
        for b in cls.backends:
            b.close()
        for (gw, _, _), rc in zip(cls.gws, rcs):
            if rc != 0:
                gw.dump()
        assert rcs == [0, 0], rcs

    def backend_of(self, port, session=None):
        """The backend one request (a new connection: any worker) reached."""
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/where", headers={"Cookie": f"theme=dark; session={session}"} if session else {})
            r = conn.getresponse()
            self.assertEqual(r.status, 200)
            return json.loads(r.read())["backend"]
        finally:
            conn.close()

    def placement(self):
        """Each session's backend, asked three times of each instance: one answer, or a failure."""
        out = {}
        for i in range(SESSIONS):
            seen = {self.backend_of(port, f"s{i}") for _, port, _ in self.gws for _ in range(3)}
            self.assertEqual(len(seen), 1, f"session s{i} reached {seen}")
            out[f"s{i}"] = seen.pop()
        return out

    def drain(self, name, action):
        for _, _, admin in self.gws:
            code, _, body, _ = curl(f"http://127.0.0.1:{admin}/api/backends/pool/{self.ids[name]}/{action}", "-X", "POST")
            self.assertEqual(code, 200, body)

    def test_1_a_session_stays_on_one_backend_on_every_worker_and_instance(self):
        where = self.placement()
        counts = {n: list(where.values()).count(n) for n in self.ids}
        self.assertGreaterEqual(sum(1 for c in counts.values() if c > 0), 3, counts)  # spread
        self.assertLessEqual(max(counts.values()), SESSIONS // 2, counts)
        # no cookie: the client's address is the key (all of these come from 127.0.0.1)
        self.assertEqual(len({self.backend_of(port) for _, port, _ in self.gws for _ in range(4)}), 1)

    def test_2_draining_a_backend_moves_only_its_sessions(self):
        before = self.placement()
        victim = max(self.ids, key=lambda n: list(before.values()).count(n))
        self.drain(victim, "drain")
        try:
            during = self.placement()
            for s, b in before.items():
                if b == victim:
                    self.assertNotEqual(during[s], victim, s)
                else:
                    self.assertEqual(during[s], b, f"{s} moved from {b} to {during[s]} although {victim} was drained")
        finally:
            self.drain(victim, "undrain")
        self.assertEqual(self.placement(), before)


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
