"""mc_proxy_cluster_test.py again, with both mc-proxy instances reaching Redis over TLS only
(`redis: tls:` with the test CA, SNI redis.test and a client certificate, as Redis' default
tls-auth-clients yes asks), and a password: shared bans and the shared limit work through it.
Also: an instance given another CA refuses the server, says so once at start with the reason
(and never the password), and serves on local state; both instances come back by themselves
after the TLS Redis restarts; `validate` names the line of a bad tls block.

Usage: mc_proxy_cluster_tls_test.py PATH_TO_MC_PROXY [unittest args]

The certificates are made by the openssl CLI (redis_fixture.py). Every wait is a bounded poll."""
import os
import subprocess
import sys
import tempfile
import unittest

import harness
import mc_proxy_cluster_test as base
import mc_proxy_test as mt
from redis_fixture import RedisServer, redis_available

PASSWORD = "e2e-redis-secret-7c1f"


def password_file():
    d = tempfile.mkdtemp(prefix="rproxy-redis-pass-")
    path = os.path.join(d, "redis.pass")
    with open(path, "w") as f:
        f.write(PASSWORD + "\n")
    return path


@harness.need(redis_available(), "redis-server is not installed (scripts/setup installs it)")
class McProxyClusterTlsTest(base.McProxyClusterTest):
    @classmethod
    def start_redis(cls):
        redis = RedisServer(tls=True, password=PASSWORD).__enter__()
        return redis, {"address": redis.tls_address, "key_prefix": "mc:", "password_file": password_file(),
                       "reconnect_max": "500ms", "tls": redis.tls_config()}

    def tls_block(self, **change):
        t = self.redis.tls_config()
        t.update(change)
        return {"address": self.redis.tls_address, "password_file": password_file(), "reconnect_min": "20ms",
                "reconnect_max": "50ms", "tls": t}

    def test_tls_another_ca_is_refused_said_once_without_the_password(self):
        c = mt.Proxy(self, self.servers, redis=self.tls_block(ca=self.redis.cert("other.pem")),
                     shared_limits={"mode": "exact", "on_failure": "local"},
                     limits={"status": {"limit": 100, "window": "60s"}}).start()
        try:
            said = mt.poll(lambda: "redis unreachable at start" in c.output(), 10)
            self.assertTrue(said, "a warning at start")
            self.assertEqual(mt.metric(c.metrics(), "rproxy_cluster_redis_up"), 0)
            self.assertEqual(mt.metric(c.metrics(), "rproxy_cluster_degraded"), 1)
            self.assertTrue(base.status_ok(c, "127.0.0.90", self.be), "it serves on local state")
            lines = [l for l in c.output().splitlines() if "redis" in l.lower()]
            self.assertEqual(len(lines), 1, lines)
            self.assertIn("TLS: server certificate refused", lines[0])
            self.assertNotIn(PASSWORD, c.output())
        finally:
            self.assertEqual(c.stop(), 0)

    def test_tls_another_name_is_refused(self):
        c = mt.Proxy(self, self.servers, redis=self.tls_block(sni="other.test")).start()
        try:
            said = mt.poll(lambda: "redis unreachable at start" in c.output(), 10)
            self.assertTrue(said, "a warning at start")
            self.assertIn("TLS: server certificate refused", c.output())
            self.assertEqual(mt.metric(c.metrics(), "rproxy_cluster_redis_up"), 0)
        finally:
            self.assertEqual(c.stop(), 0)

    def test_tls_redis_restart_both_recover_and_share_again(self):
        for p in (self.a, self.b):
            self.assertEqual(mt.metric(p.metrics(), "rproxy_cluster_redis_up"), 1)
        self.redis.restart()  # (the same ports and certificates; a second Redis that knows nothing)
        for p, name in ((self.a, "A"), (self.b, "B")):
            ok = mt.poll(lambda: mt.metric(p.metrics(), "rproxy_cluster_redis_transitions_total") >= 3
                         and mt.metric(p.metrics(), "rproxy_cluster_redis_up") == 1, 20, 0.1)
            self.assertTrue(ok, f"{name} reconnects over TLS by itself: {p.output()[-2000:]}")
        src = "127.0.0.91"
        got = [base.status_ok(p, src, self.be) for p in (self.a, self.b, self.a, self.b)]
        self.assertEqual(got, [True] * 4, "4 pings within the shared limit of 4")
        st = mt.raw_status(self.b.port, base.MOTD_HOST, 47, src=src)
        self.assertIn("Slow down please", mt.text_of(st.get("description")), "the count is shared again")

    def test_tls_validate_names_the_line(self):
        cfg = mt.mc_config(1, 2, self.servers, redis={"address": self.redis.tls_address,
                                                       "tls": {"ca": "/nonexistent/redis-ca.pem", "sni": "redis.test"}})
        prog = harness.Program(mt.BINARY, cfg, name="mc-validate")
        p = subprocess.run([mt.BINARY, "validate", prog.config], capture_output=True, text=True, timeout=30)
        out = p.stdout + p.stderr
        self.assertNotEqual(p.returncode, 0, out)
        line = next(i for i, l in enumerate(cfg.splitlines(), 1) if "/nonexistent/redis-ca.pem" in l)
        self.assertRegex(out, rf"config\.yaml:{line}:\d+: .*/nonexistent/redis-ca\.pem")


if __name__ == "__main__":
    mt.BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
