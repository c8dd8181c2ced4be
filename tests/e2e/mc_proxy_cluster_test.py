"""Two mc-proxy instances on one Redis of the test's own (redis_fixture.py): a ban made on one
(its ban file, or its admin API: POST /bans) refuses the player on the other and DELETE /bans
lifts it on both, and a per-IP status limit counted in Redis
(`shared_limits: {mode: exact}`) holds for both together. A third instance pointed at a port
where nothing listens says so once at start and keeps serving on local state.

Usage: mc_proxy_cluster_test.py PATH_TO_MC_PROXY [unittest args]

The backend and the players are npm minecraft-protocol (tests/e2e/mc/backend.js, client.js);
pings are raw sockets from distinct loopback addresses (127.0.0.x). Every wait is a bounded poll."""
import json
import os
import shutil
import signal
import sys
import unittest
import urllib.error
import urllib.request

import harness
import mc_proxy_test as mt
from redis_fixture import RedisServer, redis_available

MOTD_HOST = "cl.example.com"
# The backend and players (mc/backend.js, client.js) need it; node finds it from tests/e2e/mc.
MC_INSTALLED = os.path.isdir(os.path.join(mt.HERE, "node_modules", "minecraft-protocol"))


def status_ok(proxy, src, be):
    st = mt.raw_status(proxy.port, MOTD_HOST, 47, src=src)
    return st is not None and mt.text_of(st.get("description")) == be.motd


@harness.need(redis_available(), "redis-server is not installed (scripts/setup installs it)")
@harness.need(shutil.which("node") and MC_INSTALLED, "node and tests/e2e/node_modules/minecraft-protocol (scripts/setup) are needed")
class McProxyClusterTest(unittest.TestCase):
    @classmethod
    def start_redis(cls):
        """-> (the Redis of this class, the instances' `redis:` block); the TLS variant
        (mc_proxy_cluster_tls_test.py) gives its own."""
        redis = RedisServer().__enter__()
        return redis, {"address": f"127.0.0.1:{redis.port}", "key_prefix": "mc:"}

    @classmethod
    def setUpClass(cls):
        cls.redis, redis_block = cls.start_redis()
        cls.be = mt.Backend("1.8.8", "on", name="CL").start()
        cls.servers = [mt.server("cl", [MOTD_HOST], [cls.be.address])]
        top = {"redis": redis_block,
               "shared_limits": {"mode": "exact", "on_failure": "local"},
               "limits": {"status": {"limit": 4, "window": "60s"}, "message": "Slow down please"}}
        cls.a = mt.Proxy(cls, cls.servers, **top)
        cls.bans = os.path.join(cls.a.dir, "bans.txt")
        with open(cls.bans, "w") as f:
            f.write(mt.BANS_HEADER)
        cls.token = os.path.join(cls.a.dir, "admin.token")
        with open(cls.token, "w") as f:
            f.write("e2e-admin-token\n")
        cls.a.rewrite(bans={"file": cls.bans, "message": "You are banned"},
                      admin_options={"token_file": cls.token})
        cls.a.start()
        cls.b = mt.Proxy(cls, cls.servers, **top)
        cls.b.rewrite(bans={"message": "You are banned"}, admin_options={"token_file": cls.token})
        cls.b.start()
        cls.client = mt.Client()
        for p in (cls.a, cls.b):
            ok = mt.poll(lambda: mt.metric(p.metrics(), "rproxy_cluster_redis_up") == 1, 10)
            assert ok, "both instances connect to Redis"

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        rcs = [cls.a.stop(), cls.b.stop()]
        cls.be.stop()
        cls.redis.__exit__(None, None, None)
        assert rcs == [0, 0], f"mc-proxy exit codes on SIGTERM: {rcs}"

    def test_ban_on_one_refuses_on_the_other(self):
        self.assertTrue(status_ok(self.b, "127.0.0.61", self.be), "before the ban")
        with open(self.bans + ".tmp", "w") as f:
            f.write(mt.BANS_HEADER + "addr 127.0.0.61/32 0 griefing\n")
        os.replace(self.bans + ".tmp", self.bans)
        self.a.prog.signal(signal.SIGHUP)
        refused = mt.poll(lambda: not status_ok(self.b, "127.0.0.61", self.be), 5, 0.2)
        self.assertTrue(refused, "the ban made on A refuses the address on B")
        self.assertFalse(status_ok(self.a, "127.0.0.61", self.be), "and on A")
        self.assertTrue(status_ok(self.b, "127.0.0.62", self.be), "another address still passes on B")
        self.assertEqual(self.redis.command("HLEN", "mc:bans{bans}"), 1, "the ban is in Redis")

    def bans_api(self, proxy, method, path="/bans", body=None, token=True):
        """-> (status, parsed JSON body) of an admin /bans request."""
        req = urllib.request.Request(f"http://127.0.0.1:{proxy.admin}{path}", method=method,
                                     data=body.encode() if body is not None else None)
        if token:
            req.add_header("Authorization", "Bearer e2e-admin-token")
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            text = e.read().decode()
            return e.code, (json.loads(text) if text.startswith("{") else text)

    def login(self, proxy, name, src):
        return self.client.login(port=proxy.port, vhost=MOTD_HOST, version="1.8.8", username=name, local=src)

    def test_admin_api_ban_on_one_kicks_on_the_other_and_delete_lifts_it_on_both(self):
        r = self.login(self.b, "Spammer", "127.0.0.71")
        self.assertTrue(r.get("ok"), f"before the ban: {r}")
        since = self.be.mark()
        # by address, through A's admin API (a line), and by name (JSON)
        code, body = self.bans_api(self.a, "POST", body="addr 127.0.0.72/32 10m flooding\n")
        self.assertEqual((code, body), (200, {"banned": 1}))
        code, body = self.bans_api(self.a, "POST", body=json.dumps({"kind": "identity", "subject": "Spammer", "reason": "spam"}))
        self.assertEqual((code, body), (200, {"banned": 1}))
        # B learns them through Redis (pub/sub, so after A's answer): from then on the backend never sees the name
        # (a login tried before that would rightly pass, and reach the backend)
        knows = lambda: {(b["kind"], b["subject"]) for b in self.bans_api(self.b, "GET")[1]["bans"]} >= {
            ("addr", "127.0.0.72/32"), ("identity", "spammer")}
        self.assertTrue(mt.poll(knows, 5, 0.05), "B lists both bans made on A")

        kicked = lambda proxy, name, src: (lambda r: r if r.get("kicked") else None)(self.login(proxy, name, src))
        r = mt.poll(lambda: kicked(self.b, "spammer", "127.0.0.73"), 5, 0.2)
        self.assertTrue(r, "the name banned on A is refused on B (names ignore case)")
        self.assertIn("You are banned", r["reason"])
        r = mt.poll(lambda: kicked(self.b, "Innocent", "127.0.0.72"), 5, 0.2)
        self.assertTrue(r, "the address banned on A is refused on B")
        self.assertIn("You are banned", r["reason"])
        r = self.login(self.a, "Spammer", "127.0.0.74")
        self.assertTrue(r.get("kicked"), f"and on A at once: {r}")
        r = self.login(self.b, "Innocent", "127.0.0.75")
        self.assertTrue(r.get("ok"), f"another player from another address still plays on B: {r}")
        self.assertEqual(self.be.logins("spammer", since) + self.be.logins("Spammer", since), [], "the backend never saw the banned name")

        # B lists both (it learned them from Redis)
        code, body = self.bans_api(self.b, "GET")
        self.assertEqual(code, 200)
        self.assertTrue(body["shared"])
        got = {(b["kind"], b["subject"]): b for b in body["bans"]}
        self.assertIn(("addr", "127.0.0.72/32"), got)
        self.assertEqual(got[("addr", "127.0.0.72/32")]["reason"], "flooding")
        self.assertGreater(got[("addr", "127.0.0.72/32")]["until"], 0)
        self.assertIn(("identity", "spammer"), got)
        self.assertEqual(got[("identity", "spammer")]["until"], 0, "no duration: permanent")

        # lifted through B: on both
        self.assertEqual(self.bans_api(self.b, "DELETE", "/bans/identity/Spammer"), (200, {"lifted": True}))
        self.assertEqual(self.bans_api(self.b, "DELETE", "/bans/addr/127.0.0.72"), (200, {"lifted": True}))
        for p, name in ((self.a, "A"), (self.b, "B")):
            r = mt.poll(lambda: (lambda r: r if r.get("ok") else None)(self.login(p, "Spammer", "127.0.0.72")), 5, 0.2)
            self.assertTrue(r, f"DELETE on B lifts both bans on {name}")
        for p in (self.a, self.b):
            self.assertEqual(self.bans_api(p, "GET")[1]["bans"], [])
        self.assertEqual(self.redis.command("HEXISTS", "mc:bans{bans}", "identity spammer"), 0)

    def test_admin_api_refuses_a_bad_body_with_its_reason_and_requests_without_the_token(self):
        code, body = self.bans_api(self.a, "POST", body="addr 127.0.0.80\naddr 300.1.2.3 1h\n")
        self.assertEqual(code, 400)
        self.assertEqual(body, {"error": "bad_request", "message": "line 2: bad address or CIDR block '300.1.2.3'"})
        code, body = self.bans_api(self.a, "POST", body='{"kind":"addr","subject":"127.0.0.81","ttl":5}')
        self.assertEqual(code, 400)
        self.assertIn("unknown member 'ttl'", body["message"])
        code, _ = self.bans_api(self.a, "POST", body="addr 127.0.0.82\n", token=False)
        self.assertEqual(code, 401)
        code, _ = self.bans_api(self.b, "GET", token=False)
        self.assertEqual(code, 401, "the list names players and addresses: it needs the token too")
        self.assertTrue(status_ok(self.b, "127.0.0.80", self.be), "nothing of the bad body was banned")
        self.assertTrue(status_ok(self.a, "127.0.0.82", self.be), "nor without the token")

    def test_status_limit_is_shared(self):
        src = "127.0.0.63"
        got = [status_ok(p, src, self.be) for p in (self.a, self.b, self.a, self.b)]
        self.assertEqual(got, [True] * 4, "4 pings within the shared limit of 4")
        for p, name in ((self.a, "A"), (self.b, "B")):
            st = mt.raw_status(p.port, MOTD_HOST, 47, src=src)
            self.assertIsNotNone(st, f"the 5th ping on {name} is answered")
            self.assertIn("Slow down please", mt.text_of(st.get("description")), f"and refused on {name}: the count is shared")
        self.assertTrue(status_ok(self.b, "127.0.0.64", self.be), "another address has its own count")
        for p in (self.a, self.b):
            m = p.metrics()
            self.assertEqual(mt.metric(m, "rproxy_cluster_degraded"), 0)
            self.assertEqual(mt.metric(m, "rproxy_cluster_redis_up"), 1)

    def test_unreachable_redis_at_start_is_said_once_and_serving_goes_on(self):
        dead = harness.free_port()
        c = mt.Proxy(self, self.servers, redis={"address": f"127.0.0.1:{dead}", "reconnect_min": "20ms", "reconnect_max": "50ms"},
                     shared_limits={"mode": "exact", "on_failure": "closed"},
                     limits={"status": {"limit": 100, "window": "60s"}}).start()
        try:
            said = mt.poll(lambda: "redis unreachable at start" in c.output(), 10)
            self.assertTrue(said, "a warning at start")
            m = c.metrics()
            self.assertEqual(mt.metric(m, "rproxy_cluster_redis_up"), 0)
            self.assertEqual(mt.metric(m, "rproxy_cluster_degraded"), 1)
            self.assertEqual(mt.metric(m, "rproxy_cluster_redis_transitions_total"), 0)
            # on_failure: closed refuses what the limit counts; the instance itself is up
            st = mt.raw_status(c.port, MOTD_HOST, 47, src="127.0.0.65")
            self.assertIsNotNone(st, "the instance answers")
            self.assertNotEqual(mt.text_of(st.get("description")), self.be.motd, "refused by on_failure: closed")
            # reconnect attempts (20-50 ms apart) went on meanwhile: still one line about Redis
            lines = [l for l in c.output().splitlines() if "redis" in l.lower()]
            self.assertEqual(len(lines), 1, lines)
            self.assertIn(f"127.0.0.1:{dead}", lines[0])
            self.assertIn("on_failure=closed", lines[0])
        finally:
            self.assertEqual(c.stop(), 0)


if __name__ == "__main__":
    mt.BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
