"""apps/ws-server across instances through Redis (issue 14, rooms): two ws-server instances and
one private redis-server (started here on a free loopback port, never a Redis this test did not
start), npm `ws` 8 clients on both (tests/e2e/ws_cluster/clients.js, driven line by line).

- clients on both instances in one room see each other's messages, each sender's in order,
  every client the same order (ids 1..N);
- history after a reconnect to the other instance (join replay and `history since`);
- a ban made on one instance removes and refuses the user on the other;
- an address banned through one instance's admin API (POST /bans) is refused by the other,
  DELETE /bans/addr/... on the other lets it in again on both;
- a private message reaches a user on the other instance;
- Redis killed: both keep serving locally and report rproxy_cluster_degraded 1; Redis
  restarted: both recover by themselves and cross-instance delivery resumes;
- an instance killed (SIGKILL: no goodbye): its members leave the room's presence within its
  presence_ttl, as the other instance sees it (a full room takes a new member again, a kick of
  the dead member is not_member) and as Redis holds it (no live entry left).

Usage: ws_cluster_test.py PATH_TO_WS_SERVER [unittest args]"""
import json
import os
import signal
import subprocess
import sys
import time
import unittest
import urllib.request

import harness
from harness import metrics
from redis_fixture import RedisServer, redis_available

BINARY = None
HERE = os.path.dirname(os.path.abspath(__file__))
CLIENTS = os.path.join(HERE, "ws_cluster", "clients.js")


class Clients:
    """One node process holding named ws clients; each call is one command line and its answer."""

    def __init__(self):
        self.p = subprocess.Popen(["node", CLIENTS], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def __call__(self, **cmd):
        self.p.stdin.write(json.dumps(cmd) + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise AssertionError(f"the clients process ended on {cmd}")
        return json.loads(line)

    def ok(self, **cmd):
        out = self(**cmd)
        if "error" in out and out.get("type") != "error":
            raise AssertionError(f"{cmd}: {out}")
        return out

    def ask(self, name, timeout=20000, **req):
        return self.ok(cmd="ask", name=name, req=req, timeout=timeout)

    def wait(self, name, type, count, room=None, timeout=20000):
        return self.ok(cmd="wait", name=name, type=type, count=count, room=room, timeout=timeout)["frames"]

    def close(self):
        self.p.stdin.close()
        self.p.wait(10)


def config(port, admin, redis_port, presence_ttl="5s"):
    return f"""admin: {{ listen: 127.0.0.1:{admin} }}
listen: 127.0.0.1:{port}
anonymous: true
rooms: {{ history: 20 }}
redis: {{ address: 127.0.0.1:{redis_port}, reconnect_max: 500ms }}
cluster: {{ presence_ttl: {presence_ttl} }}
"""


@harness.need(redis_available(), "redis-server is not installed (scripts/setup installs it)")
class ClusterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.isdir(os.path.join(HERE, "node_modules", "ws")):
            raise AssertionError("npm ws is missing: run scripts/setup (tests/e2e/node_modules)")
        cls.redis = RedisServer()
        cls.servers = []
        for name in ("a", "b"):
            port, admin = harness.free_port(), harness.free_port()
            srv = harness.Program(BINARY, config(port, admin, cls.redis.port), args=["--workers", "2"], name="ws-" + name)
            srv.start(wait_ports=[port, admin])
            srv.port, srv.admin = port, admin
            cls.servers.append(srv)
        cls.a, cls.b = cls.servers
        for s in cls.servers:
            harness.wait_until(lambda: metrics(s.admin).get("rproxy_cluster_degraded") == 0.0, what="the cluster link up")
        cls.c = Clients()

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        for s in cls.servers:
            assert s.stop() == 0, s.output()
        cls.redis.kill()

    def open(self, name, srv, user=None):
        self.c.ok(cmd="open", name=name, port=srv.port, user=user or name)

    def test_0_admin_api_ban_reaches_the_other_instance(self):
        def admin(srv, method, path, body=None):
            req = urllib.request.Request(f"http://127.0.0.1:{srv.admin}{path}", method=method,
                                         data=body.encode() if body is not None else None)
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, json.loads(resp.read())

        def opens(name, srv, local):
            return "ok" in self.c(cmd="open", name=name, port=srv.port, user=name, local=local, timeout=3000)

        self.assertTrue(opens("ban0a", self.b, "127.0.0.90"), "before the ban")
        self.assertEqual(admin(self.a, "POST", "/bans", "addr 127.0.0.90 10m e2e\n"), (200, {"banned": 1}))
        harness.wait_until(lambda: not opens("ban0b", self.b, "127.0.0.90"), timeout=5, interval=0.2,
                           what="the address banned on A refused on B")
        self.assertFalse(opens("ban0c", self.a, "127.0.0.90"), "and on A")
        self.assertTrue(opens("ban0d", self.b, "127.0.0.91"), "another address still connects to B")
        self.assertEqual([b["subject"] for b in admin(self.b, "GET", "/bans")[1]["bans"]], ["127.0.0.90/32"])
        self.assertEqual(admin(self.b, "DELETE", "/bans/addr/127.0.0.90"), (200, {"lifted": True}))
        for srv, n in ((self.a, "A"), (self.b, "B")):
            harness.wait_until(lambda: opens("ban0e" + n, srv, "127.0.0.90"), timeout=5, interval=0.2,
                               what=f"DELETE on B lets the address in on {n}")

    def test_1_messages_across_instances_in_order(self):
        self.open("alice", self.a)
        self.open("bob", self.b)
        self.open("ann", self.a)
        self.assertEqual(self.c.ask("alice", op="create", room="lobby")["type"], "ok")
        joined = self.c.ask("bob", op="join", room="lobby")
        self.assertEqual(joined["type"], "ok", joined)
        self.assertEqual(self.c.ask("ann", op="join", room="lobby")["type"], "ok")
        # bob's join is seen on A (presence from the other instance)
        self.assertTrue(any(p["user"] == "bob" for p in self.c.wait("alice", "presence", 2, room="lobby")))
        # both instances' senders at once, without waiting for replies
        n = 40
        self.c.ok(cmd="send", name="alice", reqs=[{"op": "message", "room": "lobby", "text": f"a{i}"} for i in range(n)])
        self.c.ok(cmd="send", name="bob", reqs=[{"op": "message", "room": "lobby", "text": f"b{i}"} for i in range(n)])
        seen = {who: self.c.wait(who, "message", 2 * n, room="lobby") for who in ("alice", "bob", "ann")}
        for who, msgs in seen.items():
            self.assertEqual([m["msg_id"] for m in msgs], list(range(1, 2 * n + 1)), who)  # one numbering for all
            for sender, prefix in (("alice", "a"), ("bob", "b")):
                self.assertEqual([m["text"] for m in msgs if m["from"] == sender], [f"{prefix}{i}" for i in range(n)], who)
        # every client saw the same order
        self.assertEqual(seen["alice"], seen["bob"])
        self.assertEqual(seen["alice"], seen["ann"])
        # Redis' own count: every script ran by its SHA1 (loaded when each client connected); no
        # message carried a script's text
        stats = dict(l.split(":", 1) for l in self.redis.command("INFO", "commandstats").splitlines() if l.startswith("cmdstat_"))
        self.assertNotIn("cmdstat_eval", stats)
        self.assertGreaterEqual(int(stats["cmdstat_evalsha"].split(",")[0].split("=")[1]), 2 * n)
        self.assertIn("cmdstat_script|load", stats)

    def test_2_history_after_reconnect_to_the_other_instance(self):
        self.open("h1", self.a, "hal")
        self.open("w", self.a, "writer")
        self.assertEqual(self.c.ask("w", op="create", room="hist")["type"], "ok")
        self.assertEqual(self.c.ask("h1", op="join", room="hist")["type"], "ok")
        for i in range(5):
            self.c.ask("w", op="message", room="hist", text=f"m{i}")
        got = self.c.wait("h1", "message", 5, room="hist")
        last = got[-1]["msg_id"]
        # what Redis holds, read with our own RESP client: the numbering, and the stream with its expiry
        self.assertEqual(self.redis.command("GET", "rproxy:{rooms:hist}:seq"), "5")
        entries = self.redis.command("XRANGE", "rproxy:{rooms:hist}:hist", "-", "+")
        self.assertEqual([dict(zip(e[1][::2], e[1][1::2]))["i"] for e in entries], ["1", "2", "3", "4", "5"])
        self.assertEqual(json.loads(dict(zip(entries[-1][1][::2], entries[-1][1][1::2]))["f"])["text"], "m4")
        self.assertGreater(self.redis.command("PTTL", "rproxy:{rooms:hist}:hist"), 0)
        self.c.ok(cmd="close", name="h1")
        for i in range(5, 8):  # missed by hal
            self.c.ask("w", op="message", room="hist", text=f"m{i}")
        # hal comes back on B, which has no member in this room (not subscribed to it until now)
        self.open("h2", self.b, "hal")
        j = self.c.ask("h2", op="join", room="hist")
        self.assertEqual(j["type"], "ok", j)
        self.assertEqual(j["last_id"], 8)
        replay = self.c.wait("h2", "message", 8, room="hist")
        self.assertEqual([m["text"] for m in replay], [f"m{i}" for i in range(8)])
        h = self.c.ask("h2", op="history", room="hist", since=last)
        self.assertEqual((h["type"], h["count"], h["truncated"]), ("ok", 3, False))
        frames = self.c.ok(cmd="frames", name="h2")["frames"]
        self.assertEqual([m["text"] for m in frames if m.get("type") == "message"][8:], ["m5", "m6", "m7"])
        # and live messages from A now reach B's member
        self.c.ask("w", op="message", room="hist", text="live")
        self.assertEqual(self.c.wait("h2", "message", 12, room="hist")[-1]["text"], "live")

    def test_3_ban_on_one_instance_holds_on_the_other(self):
        self.open("owner", self.a)
        self.open("dave", self.b)
        self.assertEqual(self.c.ask("owner", op="create", room="modr")["type"], "ok")
        self.assertEqual(self.c.ask("dave", op="join", room="modr")["type"], "ok")
        self.assertEqual(self.c.wait("owner", "presence", 1, room="modr")[0]["user"], "dave")  # from B
        r = self.c.ask("owner", op="ban", room="modr", user="dave", seconds=600)
        self.assertEqual(r["type"], "ok", r)
        banned = self.c.wait("dave", "banned", 1)[0]
        self.assertEqual((banned["room"], banned["by"]), ("modr", "owner"))
        self.assertTrue(0 < banned["seconds"] <= 600)
        again = self.c.ask("dave", op="join", room="modr")
        self.assertEqual(again.get("code"), "banned", again)
        self.open("dave2", self.a, "dave")  # and on A
        self.assertEqual(self.c.ask("dave2", op="join", room="modr").get("code"), "banned")
        # a kick too, and the owner's members list no longer has dave
        self.open("kim", self.b)
        self.assertEqual(self.c.ask("kim", op="join", room="modr")["type"], "ok")
        self.c.wait("owner", "presence", 2, room="modr")
        self.assertEqual(self.c.ask("owner", op="kick", room="modr", user="kim")["type"], "ok")
        self.assertEqual(self.c.wait("kim", "kicked", 1)[0]["by"], "owner")
        msg = self.c.ask("kim", op="message", room="modr", text="still here?")
        self.assertEqual(msg.get("code"), "not_member", msg)

    def test_4_private_message_to_the_other_instance(self):
        self.open("pa", self.a, "pat")
        self.open("pb", self.b, "quinn")
        self.c.ask("pb", op="list")  # quinn's session is known to B
        r = self.c.ask("pa", op="private_message", user="quinn", text="psst")
        self.assertEqual(r["type"], "ok", r)
        pm = self.c.wait("pb", "private_message", 1)[0]
        self.assertEqual((pm["from"], pm["to"], pm["text"]), ("pat", "quinn", "psst"))
        self.assertEqual(self.c.ask("pa", op="private_message", user="nobody-here", text="x").get("code"), "not_online")

    def test_5_redis_killed_then_restarted(self):
        self.open("ra", self.a, "rita")
        self.open("rb", self.b, "rob")
        self.assertEqual(self.c.ask("ra", op="create", room="outage")["type"], "ok")
        self.assertEqual(self.c.ask("rb", op="join", room="outage")["type"], "ok")
        self.c.ask("ra", op="message", room="outage", text="before")
        self.c.wait("rb", "message", 1, room="outage")
        self.redis.kill()
        for s in self.servers:
            harness.wait_until(lambda: metrics(s.admin).get("rproxy_cluster_degraded") == 1.0, timeout=15,
                               what=f"{s.name if hasattr(s, 'name') else 'ws-server'} degraded")
        # each instance keeps serving its own clients: a new room on A, messages within it
        self.open("la", self.a, "lou")
        self.assertEqual(self.c.ask("ra", op="create", room="local-only")["type"], "ok")
        self.assertEqual(self.c.ask("la", op="join", room="local-only")["type"], "ok")
        self.assertEqual(self.c.ask("ra", op="message", room="local-only", text="still up")["type"], "ok")
        self.assertEqual(self.c.wait("la", "message", 1, room="local-only")[0]["text"], "still up")
        self.assertEqual(self.c.ask("rb", op="message", room="outage", text="b alone")["type"], "ok")
        self.redis.restart()
        for s in self.servers:
            harness.wait_until(lambda: metrics(s.admin).get("rproxy_cluster_degraded") == 0.0, timeout=30,
                               what="the cluster link back up")
        # cross-instance delivery resumes with no restart: the room is subscribed again
        def delivered():
            self.c.ask("ra", op="message", room="outage", text="after")
            frames = self.c.ok(cmd="frames", name="rb")["frames"]
            return any(f.get("type") == "message" and f.get("text") == "after" for f in frames)
        harness.wait_until(delivered, timeout=20, interval=0.5, what="a message from A to B after Redis came back")

    def test_6_a_paused_redis_blocks_no_worker(self):
        self.open("pa6", self.a, "paula")
        self.open("pb6", self.a, "pete")
        self.assertEqual(self.c.ask("pa6", op="create", room="paused")["type"], "ok")
        self.assertEqual(self.c.ask("pb6", op="join", room="paused")["type"], "ok")
        self.redis.pause()
        try:
            # the message's script gets no answer: past redis.command_timeout the sender is told
            # (it may have run: it is not delivered here too), and the worker goes on
            r = self.c.ask("pa6", op="message", room="paused", text="unconfirmed", timeout=10000)
            self.assertEqual((r["type"], r.get("code")), ("error", "internal"), r)
            harness.wait_until(lambda: metrics(self.a.admin).get("rproxy_cluster_degraded") == 1.0, timeout=15,
                               what="A degraded while Redis is paused")
            # degraded: the next one is numbered and delivered here at once
            r = self.c.ask("pa6", op="message", room="paused", text="while paused", timeout=10000)
            self.assertEqual(r["type"], "ok", r)
            self.assertEqual(self.c.wait("pb6", "message", 1, room="paused")[0]["text"], "while paused")
            # the other worker's connections are served meanwhile too
            self.open("pc6", self.a, "quick")
            self.assertEqual(self.c.ask("pc6", op="list")["type"], "ok")
        finally:
            self.redis.resume()
        harness.wait_until(lambda: metrics(self.a.admin).get("rproxy_cluster_degraded") == 0.0, timeout=30,
                           what="A back up after Redis resumed")

    def test_7_a_killed_instance_leaves_presence_within_its_ttl(self):
        ttl = 3.0
        port, admin = harness.free_port(), harness.free_port()
        c = harness.Program(BINARY, config(port, admin, self.redis.port, presence_ttl="3s"), args=["--workers", "2"], name="ws-c")
        c.start(wait_ports=[port, admin])
        c.port = port
        try:
            harness.wait_until(lambda: metrics(admin).get("rproxy_cluster_degraded") == 0.0, what="C's link up")
            self.open("own7", self.b, "olga")
            self.open("vic7", c, "victor")
            self.open("wen7", self.b, "wendy")
            self.assertEqual(self.c.ask("own7", op="create", room="crash", max_members=2)["type"], "ok")
            self.assertEqual(self.c.ask("vic7", op="join", room="crash")["type"], "ok")
            self.assertEqual(self.c.wait("own7", "presence", 1, room="crash")[0]["user"], "victor")  # from C
            self.assertEqual(self.c.ask("wen7", op="join", room="crash").get("code"), "full")  # olga on B, victor on C

            def live():  # "INSTANCE SESSION USER" -> expiry (ms since the epoch), entries not expired
                now_ms = int(time.time() * 1000)
                flat = self.redis.command("ZRANGEBYSCORE", "rproxy:{rooms:crash}:presence", str(now_ms), "+inf", "WITHSCORES")
                return {m.split(" ")[2]: float(sc) for m, sc in zip(flat[::2], flat[1::2])}

            self.assertEqual(sorted(live()), ["olga", "victor"])
            c.signal(signal.SIGKILL)
            c.proc.wait(10)
            killed_ms = time.time() * 1000
            # C refreshed victor's entry at most presence_ttl before its death: that is when it ends
            expiry = live().get("victor")
            self.assertIsNotNone(expiry)
            self.assertLessEqual(expiry, killed_ms + ttl * 1000)
            # B sees the room full until then, then takes wendy (its join script drops expired entries)
            harness.wait_until(lambda: self.c.ask("wen7", op="join", room="crash")["type"] == "ok",
                               timeout=ttl + 8, interval=0.2, what="wendy admitted once victor's presence expired")
            self.assertGreaterEqual(time.time() * 1000, expiry - 50)  # not before his entry expired (clock granularity)
            self.assertEqual(sorted(live()), ["olga", "wendy"])
            # and a kick from B no longer finds victor anywhere
            k = self.c.ask("own7", op="kick", room="crash", user="victor")
            self.assertEqual(k.get("code"), "not_member", k)
        finally:
            if c.proc.poll() is None:
                c.signal(signal.SIGKILL)
                c.proc.wait(10)
            c.logf.close()


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main()
