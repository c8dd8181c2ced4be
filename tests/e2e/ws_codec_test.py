"""Cross-check of codec/ws against the npm `ws` package (8.x, pinned in package.json).

Usage: ws_codec_test.py PATH_TO_WS_CODEC_PEER [unittest args]

ws's own Sender produces frames (masked client frames, fragmented and compressed messages,
pings, closes) that our parser must decode to the same items (ws_codec_peer decode), and our
writer's frames must decode in ws's Receiver to what was sent (ws_codec_peer encode). Both
directions run for each role and each permessage-deflate configuration: none, context
takeover, no context takeover, small windows. Malformed frames must be refused by both with
the same close code. Node and tests/e2e/node_modules (scripts/setup) are required: missing,
the tests are skipped locally and fail under CI=true."""
import json
import os
import shutil
import subprocess
import sys
import unittest

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
NODE = shutil.which("node")
PEER_JS = os.path.join(HERE, "ws_codec", "peer.js")
WS_INSTALLED = os.path.isfile(os.path.join(HERE, "node_modules", "ws", "lib", "receiver.js"))
BINARY = None

DEFLATE = {
    "none": None,
    "takeover": dict(server_no_context_takeover=False, client_no_context_takeover=False,
                     server_max_window_bits=15, client_max_window_bits=15),
    "no_takeover": dict(server_no_context_takeover=True, client_no_context_takeover=True,
                        server_max_window_bits=15, client_max_window_bits=15),
    "small_windows": dict(server_no_context_takeover=False, client_no_context_takeover=True,
                          server_max_window_bits=10, client_max_window_bits=9),
}


def deflate_arg(d):
    if d is None:
        return "-"
    return "%d,%d,%d,%d" % (d["server_no_context_takeover"], d["client_no_context_takeover"],
                            d["server_max_window_bits"], d["client_max_window_bits"])


def h(b):
    return b.hex()


def items():
    """Messages and control frames with every length form, UTF-8 text, fragmentation."""
    text = "Grüße, κόσμε, 😀 — " * 50
    rnd = bytes((i * 7919 + 13) % 251 for i in range(70000))
    return [
        dict(type="text", data=h(b"Hello")),
        dict(type="text", data=h(b"")),
        dict(type="binary", data=h(b"\x00\xff" * 62 + b"!")),        # 125
        dict(type="binary", data=h(bytes(range(126)))),               # 126: 16-bit length
        dict(type="ping", data=h(b"are you there")),
        dict(type="text", data=h(text.encode()), fragments=3),
        dict(type="binary", data=h(rnd[:65535])),                     # largest 16-bit length
        dict(type="pong", data=h(b"")),
        dict(type="binary", data=h(rnd)),                             # 64-bit length
        dict(type="text", data=h(("x" * 1000 + "y" * 1000).encode()), fragments=4),
        dict(type="binary", data=h(b"abc" * 5000)),
        dict(type="close", code=1000, data=h("done ✓".encode())),
    ]


def expected_lines(its):
    out = []
    for it in its:
        if it["type"] == "close":
            out.append("close %d %s" % (it["code"], it["data"]))
        else:
            out.append("%s %s" % (it["type"], it["data"]))
    return out


class WsCodecCrossCheck(unittest.TestCase):
    def node(self, mode, req):
        p = subprocess.run([NODE, PEER_JS, mode], input=json.dumps(req), capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout)

    def peer(self, mode, role, deflate, stdin):
        p = subprocess.run([BINARY, mode, role, deflate_arg(deflate)], input=stdin, capture_output=True,
                           text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout

    @harness.need(NODE and WS_INSTALLED, "node and tests/e2e/node_modules/ws (scripts/setup) are needed")
    def test_ws_sender_to_our_parser(self):
        its = items()
        for name, d in DEFLATE.items():
            for node_role, our_role in (("client", "server"), ("server", "client")):
                with self.subTest(deflate=name, sender=node_role):
                    wire = self.node("encode", dict(role=node_role, deflate=d, items=its))["wire"]
                    got = self.peer("decode", our_role, d, wire).splitlines()
                    self.assertEqual(got, expected_lines(its))

    @harness.need(NODE and WS_INSTALLED, "node and tests/e2e/node_modules/ws (scripts/setup) are needed")
    def test_our_writer_to_ws_receiver(self):
        its = items()
        stdin = ""
        for it in its:
            if it["type"] == "close":
                stdin += "close %d %s\n" % (it["code"], it["data"])
            elif it["type"] in ("ping", "pong"):
                stdin += "%s %s\n" % (it["type"], it["data"])
            else:
                size = len(it["data"]) // 2
                n = it.get("fragments", 1)
                frag = 0 if n <= 1 else -(-size // n)
                stdin += "%s %s %d\n" % (it["type"], it["data"], frag)
        for name, d in DEFLATE.items():
            for our_role, node_role in (("server", "client"), ("client", "server")):
                with self.subTest(deflate=name, sender=our_role):
                    wire = self.peer("encode", our_role, d, stdin).strip()
                    out = self.node("decode", dict(role=node_role, deflate=d, wire=wire))
                    self.assertIsNone(out["error"])
                    got = expected_lines(out["items"])
                    self.assertEqual(got, expected_lines(its))

    @harness.need(NODE and WS_INSTALLED, "node and tests/e2e/node_modules/ws (scripts/setup) are needed")
    def test_malformed_frames_get_the_same_close_code(self):
        mask = "00000000"  # masked with a zero key: the payload bytes read as they are
        cases = {
            "unmasked client frame": "8105" + h(b"Hello"),
            "rsv2 set": "a180" + mask,
            "rsv1 without deflate": "c180" + mask,
            "reserved opcode 3": "8380" + mask,
            "reserved opcode 0xb": "8b80" + mask,
            "fragmented ping": "0980" + mask,
            "ping of 126 bytes": "89fe007e" + mask + "00" * 126,
            "continuation first": "8080" + mask,
            "new message inside a fragmented one": "0181" + mask + "61" + "0181" + mask + "62",
            "close with 1 byte": "8881" + mask + "03",
            "close code 999": "8882" + mask + "03e7",
            "close code 1005": "8882" + mask + "03ed",
            "close code 1016": "8882" + mask + "03f8",
            "close code 5000": "8882" + mask + "1388",
            "close reason not UTF-8": "8883" + mask + "03e8ff",
            "text not UTF-8": "8182" + mask + "ceff",
            "text with a surrogate": "8183" + mask + "eda080",
            "fragmented text truncated": "0181" + mask + "ce" + "8080" + mask,
        }
        for name, wire in cases.items():
            with self.subTest(case=name):
                theirs = self.node("decode", dict(role="server", deflate=None, wire=wire))
                self.assertIsNotNone(theirs["error"], "ws accepted it")
                ours = self.peer("decode", "server", None, wire).splitlines()
                self.assertTrue(ours and ours[-1].startswith("error "), ours)
                self.assertEqual(int(ours[-1].split()[1]), theirs["error"]["code"], theirs["error"]["message"])


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
