"""End-to-end: apps/ws-server holding 10,000 WebSocket connections with messages flowing.

The server is started with a soft open-files limit of 1024 (the hard one as it is): it must raise
its own soft limit to the hard one, or the 10,000 connections could not be accepted. The client
is bench/ws_load's `hold` mode (C++, one thread): 10,000 connections in 100 rooms of 100 members,
every member reading from its join on; then one member of each room posts 10 messages and every
member must get all of them in order, while all the connections stay open. The server's RSS
with every connection held is printed, with the RSS per connection.

Usage: ws_server_scale_test.py PATH_TO_WS_SERVER PATH_TO_WS_LOAD [unittest args]"""
import os
import re
import resource
import subprocess
import sys
import time
import unittest
import urllib.request

import harness

BINARY = None
CLIENT = None
CONNS = 10000
ROOMS = 100
MESSAGES = 10
# A connection after the upgrade holds no coroutine frame or buffer (docs/ws-server.md "What a
# connection costs"): one allocation (the session with its flow), and its socket is watched by the
# worker's poller (no asio descriptor state or pending wait). Held in a room here (the registry's
# membership too, two workers) it measured 1,344 bytes in Debug (2,246 before the poller, 2.5 KB
# before that); the bound leaves room for the machine's noise and catches a return to asio's
# per-socket state, per-connection frames or buffers (13 KB with one). Idle and in no room:
# 620-750 bytes (bench/ws_load/run; the target is 1 KB).
MAX_BYTES_PER_CONN = {"Release": 2048, "Debug": 2048}


def build_type(binary):
    """CMAKE_BUILD_TYPE of the build tree that holds `binary` (Debug when none is found)."""
    d = os.path.dirname(os.path.abspath(binary))
    while d != os.path.dirname(d):
        cache = os.path.join(d, "CMakeCache.txt")
        if os.path.exists(cache):
            with open(cache) as f:
                m = re.search(r"^CMAKE_BUILD_TYPE:\w+=(\w*)$", f.read(), re.M)
            return "Release" if m and m.group(1) in ("Release", "RelWithDebInfo", "MinSizeRel") else "Debug"
        d = os.path.dirname(d)
    return "Debug"


def metrics(admin):
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=10).read().decode()
    return {l.rsplit(" ", 1)[0]: float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l and not l.startswith("#")}


def soft_limit_of(pid):
    with open(f"/proc/{pid}/limits") as f:
        m = re.search(r"Max open files\s+(\d+)\s+(\d+)", f.read())
    return int(m.group(1)), int(m.group(2))


class ScaleTest(unittest.TestCase):
    def test_ten_thousand_connections_with_messages(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and hard < CONNS + 256:
            raise AssertionError(f"the hard open-files limit ({hard}) is below {CONNS + 256}: raise it (ulimit -Hn) to run this test")
        port, admin = harness.free_port(), harness.free_port()
        cfg = f"""admin: {{ listen: 127.0.0.1:{admin} }}
listen: 127.0.0.1:{port}
anonymous: true
websocket: {{ idle_timeout: 120s }}
"""
        srv = harness.Program(BINARY, cfg, args=["--workers", "2"], name="ws-scale")
        # The server starts with a low soft limit (the hard one unchanged) and must raise it itself.
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
        try:
            srv.start(wait_ports=[port, admin])
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        try:
            server_soft, server_hard = soft_limit_of(srv.proc.pid)
            self.assertEqual(server_soft, server_hard, "the server did not raise its soft open-files limit")
            self.assertGreaterEqual(server_soft, CONNS + 256)
            t0 = time.monotonic()
            p = subprocess.Popen([CLIENT, "hold", "--port", str(port), "--pid", str(srv.proc.pid), "--conns", str(CONNS),
                                  "--rooms", str(ROOMS), "--messages", str(MESSAGES), "--timeout", "90", "--wait-stdin", "1"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                line = p.stdout.readline()  # the client's figures, once every member got every message
                secs = time.monotonic() - t0
                if not line.startswith("hold "):
                    p.kill()
                    srv.dump()
                    raise AssertionError(f"ws_load hold failed (rc {p.wait(10)}): {line}\n{p.stderr.read()[-4000:]}")
                r = {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", line)}
                m = metrics(admin)  # every connection still open
            finally:
                if p.poll() is None:
                    p.stdin.close()
                    p.wait(30)
                p.stdout.close()
                p.stderr.close()
            per_conn = r["bytes_per_conn"]
            sys.stderr.write(f"scale: {CONNS} connections in {ROOMS} rooms, {MESSAGES} messages per room: "
                             f"server RSS {r['rss_before_kb']:.0f} KiB before, {r['rss_held_kb']:.0f} KiB with all held "
                             f"({per_conn:.0f} bytes per connection), {r['rss_after_kb']:.0f} KiB after the messages; "
                             f"handshakes {r['open_ms']:.0f} ms, joins {r['join_ms']:.0f} ms, messages {r['flow_ms']:.0f} ms, {secs:.1f} s in all\n")
            self.assertEqual(r["deliveries"], CONNS * MESSAGES)  # every member got every message of its room
            self.assertEqual(m["ws_connections"], CONNS + 1)  # the client's warm-up connection too
            self.assertEqual(m["ws_rooms"], ROOMS)
            self.assertEqual(m.get("ws_send_dropped_total{policy=\"drop_oldest\"}", 0), 0)  # nobody was too slow
            fanouts = m["ws_fanout_latency_seconds_count"]
            self.assertGreaterEqual(fanouts, ROOMS * MESSAGES + (CONNS - ROOMS))  # the messages and the joins' presence
            sys.stderr.write(f"scale: fan-out latency over {fanouts:.0f} deliveries (100 members each at most): "
                             f"mean {m['ws_fanout_latency_seconds_sum'] / fanouts * 1e6:.0f} us\n")
            # Not under ASan: its shadow memory and quarantine make RSS track allocations.
            if not harness.sanitized(BINARY):
                bound = MAX_BYTES_PER_CONN[build_type(BINARY)]
                self.assertLessEqual(per_conn, bound, f"{per_conn:.0f} bytes per connection ({build_type(BINARY)} bound {bound})")
        finally:
            self.assertEqual(srv.stop(timeout=60), 0)


if __name__ == "__main__":
    CLIENT = os.path.abspath(sys.argv.pop(2))
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
