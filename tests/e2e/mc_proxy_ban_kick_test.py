"""End-to-end: a ban made through mc-proxy's admin API while players are connected disconnects
the players it covers (npm minecraft-protocol 1.68.0 clients in play state, tests/e2e/mc/
client.js with --stay; backend tests/e2e/mc/backend.js): by username (any case) and by address;
a player the ban does not cover stays; kicks are counted in mc_ban_kicks_total; the player who
joins again is refused with the ban message. A ban file edit does the same.

In play state the proxy relays bytes it does not parse (packet boundaries, compression,
encryption), so it cannot put a Disconnect packet among them: the client sees the connection end
(client.js exit 3, "connection closed"), and the ban message with the refusal when it joins again.

Usage: mc_proxy_ban_kick_test.py PATH_TO_MC_PROXY [unittest args]"""
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import unittest
import urllib.request

import harness
import mc_proxy_test as mc

VERSION = "1.20.4"
MESSAGE = "You are banned from this server."


class Player:
    """One `client.js login --stay 1` process: logged in, it stays until it is disconnected."""

    def __init__(self, port, username, local="127.0.0.1"):
        self.username = username
        self.proc = subprocess.Popen(
            [mc.NODE, mc.CLIENT_JS, "login", "--port", str(port), "--vhost", "kick.example.com", "--version", VERSION,
             "--username", username, "--local", local, "--stay", "1", "--timeout", "90000"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
        mc._procs.append(self.proc)
        self.events = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                self.events.put({"event": "text", "text": line.rstrip()})

    def wait_event(self, name, timeout=30):
        """The first event called `name`; the events before it are dropped."""
        seen = []
        while True:
            try:
                e = self.events.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"{self.username}: no '{name}' event within {timeout}s (saw {seen})")
            seen.append(e)
            if e.get("event") == name:
                return e

    def wait_exit(self, timeout=15):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.username}: still connected {timeout}s after the ban")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)


class BanKickTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.be = mc.Backend(VERSION, "on", name="KICK").start()
        cls.tmp = tempfile.mkdtemp(prefix="rproxy-mc-kick-")
        cls.bans = os.path.join(cls.tmp, "bans.txt")
        with open(cls.bans, "w") as f:
            f.write("# rproxy bans v1\n")
        cls.proxy = mc.Proxy(cls, [mc.server("kick", ["kick.example.com"], [cls.be.address])],
                             bans={"file": cls.bans}).start()

    @classmethod
    def tearDownClass(cls):
        rc = cls.proxy.stop()
        cls.be.stop()
        if rc != 0:
            raise AssertionError(f"mc-proxy exited {rc} on SIGTERM (expected 0)")

    def kicks(self):
        return mc.metric(self.proxy.metrics(), "mc_ban_kicks_total")

    def players_online(self):
        return mc.metric(self.proxy.metrics(), "mc_players_online") or 0

    def post_bans(self, body):
        req = urllib.request.Request(f"http://127.0.0.1:{self.proxy.admin}/bans", method="POST", data=body.encode())
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())

    def join_again(self, username, local="127.0.0.1"):
        p = subprocess.run([mc.NODE, mc.CLIENT_JS, "login", "--port", str(self.proxy.port), "--vhost", "kick.example.com",
                            "--version", VERSION, "--username", username, "--local", local, "--timeout", "15000"],
                           capture_output=True, text=True, timeout=40)
        return p.returncode, p.stdout

    def test_a_admin_ban_disconnects_connected_players(self):
        base = self.kicks()
        self.assertEqual(base, 0)
        griefer = Player(self.proxy.port, "Griefer", "127.0.0.31")
        spammer = Player(self.proxy.port, "alice", "127.0.0.32")
        bystander = Player(self.proxy.port, "bob", "127.0.0.33")
        players = [griefer, spammer, bystander]
        try:
            for p in players:
                p.wait_event("echo")  # logged in and in play: the chat echo came back through the proxy
            harness.wait_until(lambda: self.players_online() == 3, what="three players online")

            # a username ban (another case) and an address ban, in one admin call
            status, body = self.post_bans("identity griefer 1h griefing the spawn\naddr 127.0.0.32 10m spam")
            self.assertEqual((status, body), (200, {"banned": 2}))
            for p in (griefer, spammer):
                self.assertEqual(p.wait_exit(), 3, f"{p.username}: disconnected")
                self.assertIn("failed: connection closed", p.wait_event("text", timeout=5)["text"])
            harness.wait_until(lambda: self.players_online() == 1, what="the banned players gone")
            self.assertEqual(self.kicks(), 2)
            self.assertIsNone(bystander.proc.poll(), "a player the bans do not cover stays connected")

            # joining again: refused at login, with the ban message
            rc, out = self.join_again("GRIEFER", "127.0.0.34")
            self.assertEqual(rc, 2, out)
            self.assertIn("kicked: " + MESSAGE, out)
            rc, out = self.join_again("carol", "127.0.0.32")
            self.assertEqual(rc, 2, out)
            self.assertIn("kicked: " + MESSAGE, out)
            log = self.proxy.output()
            self.assertIn("ban_kick", log)
            self.assertIn("griefing the spawn", log)
        finally:
            for p in players:
                p.stop()

    def test_b_ban_file_edit_disconnects_connected_players(self):
        base = self.kicks()
        mallory = Player(self.proxy.port, "mallory", "127.0.0.41")
        try:
            mallory.wait_event("echo")
            tmp = self.bans + ".tmp"
            with open(tmp, "w") as f:
                f.write("# rproxy bans v1\naddr 127.0.0.40/30 0 from%20the%20file\n")
            os.replace(tmp, self.bans)
            self.proxy.prog.signal(signal.SIGHUP)
            self.assertEqual(mallory.wait_exit(), 3)
            harness.wait_until(lambda: self.kicks() == base + 1, what="the kick counted")
        finally:
            mallory.stop()


if __name__ == "__main__":
    mc.BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
