"""WebSocket conformance (RFC 6455, RFC 7692) from a client that writes raw frames.

Usage: ws_conformance_test.py TARGET [--max-message N] [--no-echo] [unittest args]
  TARGET is a ws:// URL of an echo server (every text or binary message comes back whole), or
  the path of a program to start: ws_echo_peer (it prints "listening PORT"), or apps/ws-server
  (its binary is named ws-server: started on a free port with a config of its own: anonymous,
  no rate limits, no chat page, max_message 64 KiB; graded with --no-echo).
  --max-message: the server's message limit (default 1 MiB; large cases scale to it).
  --no-echo: a server that does not echo (apps/ws-server answers each text message with a JSON
  reply): its data messages are not graded, only pings, closes and the close codes, and the
  cases' data frames must still be taken without error (text and binary alike).

The cases mirror the sections of Autobahn|Testsuite's fuzzingclient: 1 framing (every length
encoding), 2 ping/pong, 3 reserved bits, 4 opcodes, 5 fragmentation (control frames
interleaved), 6 UTF-8 (split anywhere across fragments, invalid sequences, fail fast), 7 close
(codes, reasons, what follows a close), 9 limits (large and many-framed messages, 1009),
10 misc, 12 and 13 permessage-deflate (messages of every size, then each parameter). Added:
unmasked client frames (1002), bad handshakes (400/426), oversized frames, 64-bit lengths with
the top bit set. Each case is a row of a table: what the client writes, what must come back.
The oracles are independent of the code under test: Python's hashlib/base64 (and the RFC's
own accept-key example), zlib, and the codecs module for UTF-8.

Outcomes, as Autobahn grades them strictly: an echo is the same message (opcode and bytes); a
protocol error is a close frame with the expected code, after which the server sends nothing
more and drops the connection; nothing that followed the bad frame is answered. Every wait is
bounded (5 s per case)."""
import base64
import codecs
import hashlib
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import zlib

import harness

TARGET = None  # (host, port, path)
MAX_MESSAGE = 1 << 20  # the echo peer's limit (started with it); --max-message N for a URL
ECHO = True            # --no-echo: data messages from the server are not graded
WAIT = 5.0

TEXT, BINARY, CLOSE, PING, PONG, CONT = 1, 2, 8, 9, 10, 0


# ---------------------------------------------------------------- frames

def frame(op, payload=b"", fin=True, rsv=0, mask=True, length_form=None, key=None):
    """One frame. length_form forces 7, 16 or 64 (bits of the length field)."""
    if isinstance(payload, str):
        payload = payload.encode()
    b0 = (0x80 if fin else 0) | (rsv << 4) | op
    n = len(payload)
    form = length_form or (7 if n <= 125 else 16 if n <= 0xFFFF else 64)
    mbit = 0x80 if mask else 0
    if form == 7:
        head = bytes([b0, mbit | n])
    elif form == 16:
        head = bytes([b0, mbit | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = key if key is not None else os.urandom(4)
    return head + key + bytes(b ^ key[i & 3] for i, b in enumerate(payload))


def close_frame(code=None, reason=b""):
    if isinstance(reason, str):
        reason = reason.encode()
    return frame(CLOSE, b"" if code is None else struct.pack("!H", code) + reason)


class Conn:
    """A client connection: the handshake, raw writes, and the server's frames as items:
    ("text"|"binary", bytes), ("ping"|"pong", bytes), ("close", code, reason), ("eof",)."""

    def __init__(self, extensions=None, headers=None, raw_request=None):
        host, port, path = TARGET
        self.sock = socket.create_connection((host, port), timeout=WAIT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.inflate = None
        self.msg = None
        self.key = base64.b64encode(os.urandom(16)).decode()
        if raw_request is None:
            lines = ["GET %s HTTP/1.1" % path, "Host: %s:%d" % (host, port), "Upgrade: websocket",
                     "Connection: Upgrade", "Sec-WebSocket-Key: " + self.key, "Sec-WebSocket-Version: 13"]
            if extensions:
                lines.append("Sec-WebSocket-Extensions: " + extensions)
            lines += headers or []
            raw_request = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self.sock.sendall(raw_request)
        head = self._read_head()
        status_line, *fields = head.split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {}
        for f in fields:
            name, _, value = f.partition(":")
            self.headers.setdefault(name.strip().lower(), []).append(value.strip())

    def _read_head(self):
        deadline = time.monotonic() + WAIT
        while b"\r\n\r\n" not in self.buf:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            b = self.sock.recv(65536)
            if not b:
                raise AssertionError("connection closed before a response head: %r" % self.buf)
            self.buf += b
            if len(self.buf) > 16384:
                raise AssertionError("response head too long")
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        return head.decode("latin-1")

    def header(self, name):
        v = self.headers.get(name.lower())
        return v[0] if v else None

    def expect_accepted(self, test):
        test.assertEqual(self.status, 101, self.headers)
        expected = base64.b64encode(hashlib.sha1((self.key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
                                                 .encode()).digest()).decode()
        test.assertEqual(self.header("sec-websocket-accept"), expected)
        return self

    def use_deflate(self, server_window=15, reset=False):
        self.inflate = (server_window, reset, zlib.decompressobj(-server_window))

    def send(self, data, chop=None):
        """Writes data (in pieces of `chop` bytes); False once the server has gone (it may close
        before reading everything the case writes)."""
        try:
            if chop is None:
                self.sock.sendall(data)
            else:
                for i in range(0, len(data), chop):
                    self.sock.sendall(data[i:i + chop])
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True

    def _recv(self, deadline):
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            b = self.sock.recv(1 << 20)
        except ConnectionResetError:
            b = b""
        return b

    def next_item(self, deadline):
        """The next item, or None when the deadline passes first."""
        while True:
            item = self._parse_one()
            if item is not None:
                return item
            try:
                b = self._recv(deadline)
            except socket.timeout:
                return None
            if not b:
                return ("eof",)
            self.buf += b

    def _parse_one(self):
        while True:
            if len(self.buf) < 2:
                return None
            b0, b1 = self.buf[0], self.buf[1]
            if b1 & 0x80:
                raise AssertionError("the server sent a masked frame")
            n, at = b1 & 0x7F, 2
            if n == 126:
                if len(self.buf) < 4:
                    return None
                n, at = struct.unpack("!H", self.buf[2:4])[0], 4
            elif n == 127:
                if len(self.buf) < 10:
                    return None
                n, at = struct.unpack("!Q", self.buf[2:10])[0], 10
            if len(self.buf) < at + n:
                return None
            payload, self.buf = self.buf[at:at + n], self.buf[at + n:]
            fin, rsv, op = b0 & 0x80, (b0 >> 4) & 7, b0 & 0x0F
            if op >= 8:
                if op == CLOSE:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                    return ("close", code, payload[2:])
                return ("ping" if op == PING else "pong", payload)
            if op != CONT:
                if self.msg is not None:
                    raise AssertionError("the server started a message inside another")
                self.msg = [op, bool(rsv & 4), b""]
            elif self.msg is None:
                raise AssertionError("the server sent a continuation with no message open")
            if rsv & 4 and op == CONT:
                raise AssertionError("RSV1 on a continuation frame from the server")
            if rsv & 4 and self.inflate is None:
                raise AssertionError("RSV1 from the server without permessage-deflate")
            self.msg[2] += payload
            if not fin:
                continue
            op, compressed, data = self.msg
            self.msg = None
            if compressed:
                window, reset, d = self.inflate
                data = d.decompress(data + b"\x00\x00\xff\xff")
                if reset:
                    self.inflate = (window, reset, zlib.decompressobj(-window))
            return ("text" if op == TEXT else "binary", data)

    def items_until_close(self, wait=WAIT):
        """Everything the server sends until it drops the connection (or `wait` passes)."""
        out = []
        deadline = time.monotonic() + wait
        while True:
            it = self.next_item(deadline)
            if it is None:
                out.append(("timeout",))
                return out
            out.append(it)
            if it[0] == "eof":
                return out

    def close(self):
        self.sock.close()


# ---------------------------------------------------------------- the table

def echo(payload, op=TEXT):
    return ("text" if op == TEXT else "binary", payload.encode() if isinstance(payload, str) else payload)


def pong(payload=b""):
    return ("pong", payload.encode() if isinstance(payload, str) else payload)


def closed(code):
    """The server's close with `code`, then the end of the connection."""
    return [("close", code), ("eof",)]


def clean_close():
    """After the case, the client closes with 1000: the server answers 1000 and drops."""
    return [("close", 1000), ("eof",)]


def graded(items):
    """A close's reason is not graded, its code is; an empty close (no code) may be answered
    with an empty close or with 1000 (RFC 6455 §5.5.1, §7.4.1)."""
    out = []
    for g in items:
        if g[0] == "close":
            g = ("close", g[1])
        if not ECHO and g[0] in ("text", "binary"):
            continue
        out.append(g)
    return out


def utf8_valid(b):
    try:
        codecs.decode(b, "utf-8", errors="strict")
        return True
    except UnicodeDecodeError:
        return False


def case_table():
    """(id, description, [writes], expected items, chop). `writes` are bytes written in order;
    chop splits each write into pieces of that many bytes. A case whose expectation does not end
    with a close gets the client's close 1000 appended and expects the server's 1000."""
    c = []
    add = lambda cid, desc, writes, expect, chop=None: c.append((cid, desc, writes, expect, chop))
    # 1 Framing: text and binary of every length form, chopped.
    for i, n in enumerate([0, 125, 126, 127, 128, 65535, 65536], 1):
        add("1.1.%d" % i, "text of %d bytes" % n, [frame(TEXT, b"*" * n)], [echo(b"*" * n)])
        add("1.2.%d" % i, "binary of %d bytes" % n, [frame(BINARY, b"\xfe" * n)], [echo(b"\xfe" * n, BINARY)])
    add("1.1.8", "text of 65536 bytes written in 997-byte pieces", [frame(TEXT, b"*" * 65536)],
        [echo(b"*" * 65536)], 997)
    add("1.2.8", "binary of 65536 bytes written in 997-byte pieces", [frame(BINARY, b"\xfe" * 65536)],
        [echo(b"\xfe" * 65536, BINARY)], 997)
    add("1.3.1", "text of 5 bytes with a 16-bit length (non-minimal, allowed)",
        [frame(TEXT, b"Hello", length_form=16)], [echo("Hello")])
    add("1.3.2", "text of 5 bytes with a 64-bit length (non-minimal, allowed)",
        [frame(TEXT, b"Hello", length_form=64)], [echo("Hello")])
    # 2 Pings and pongs.
    add("2.1", "ping without payload", [frame(PING)], [pong()])
    add("2.2", "ping with text payload", [frame(PING, "Hello, world!")], [pong("Hello, world!")])
    add("2.3", "ping with binary payload", [frame(PING, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff")],
        [pong(b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff")])
    add("2.4", "ping with 125 bytes", [frame(PING, b"\xfe" * 125)], [pong(b"\xfe" * 125)])
    add("2.5", "ping with 126 bytes (16-bit length)", [frame(PING, b"\xfe" * 126)], closed(1002))
    add("2.6", "ping with 125 bytes written byte by byte", [frame(PING, b"\xfe" * 125)], [pong(b"\xfe" * 125)], 1)
    add("2.7", "unsolicited pong without payload", [frame(PONG)], [])
    add("2.8", "unsolicited pong with payload", [frame(PONG, "unsolicited pong payload")], [])
    add("2.9", "unsolicited pong, then ping", [frame(PONG, "unsolicited"), frame(PING, "my ping")], [pong("my ping")])
    add("2.10", "10 pings", [frame(PING, "payload-%d" % i) for i in range(10)],
        [pong("payload-%d" % i) for i in range(10)])
    add("2.11", "10 pings written byte by byte", [frame(PING, "payload-%d" % i) for i in range(10)],
        [pong("payload-%d" % i) for i in range(10)], 1)
    add("2.12", "ping with 0 bytes and a 64-bit length", [frame(PING, b"", length_form=64)], closed(1002))
    # 3 Reserved bits (no extension negotiated): the frame before is echoed, the one after is not.
    for i, (rsv, op) in enumerate([(1, TEXT), (2, TEXT), (3, TEXT), (4, BINARY), (5, PING), (6, CLOSE), (7, CLOSE)], 1):
        add("3.%d" % i, "RSV=%d on a %s frame" % (rsv, {TEXT: "text", BINARY: "binary", PING: "ping", CLOSE: "close"}[op]),
            [frame(TEXT, "before"), frame(op, b"\x03\xe8" if op == CLOSE else b"x", rsv=rsv), frame(PING, "after")],
            [echo("before")] + closed(1002))
    # 4 Opcodes: reserved data (3-7) and control (11-15) opcodes.
    for i, op in enumerate([3, 4, 5, 6, 7], 1):
        add("4.1.%d" % i, "reserved non-control opcode %d" % op,
            [frame(TEXT, "before"), frame(op, b"" if i == 1 else b"reserved"), frame(PING, "after")],
            [echo("before")] + closed(1002))
    for i, op in enumerate([11, 12, 13, 14, 15], 1):
        add("4.2.%d" % i, "reserved control opcode %d" % op,
            [frame(TEXT, "before"), frame(op, b"" if i == 1 else b"reserved"), frame(PING, "after")],
            [echo("before")] + closed(1002))
    # 5 Fragmentation.
    add("5.1", "ping in 2 fragments", [frame(PING, "frag1", fin=False), frame(CONT, "frag2")], closed(1002))
    add("5.2", "pong in 2 fragments", [frame(PONG, "frag1", fin=False), frame(CONT, "frag2")], closed(1002))
    add("5.3", "text in 2 fragments", [frame(TEXT, "frag1", fin=False), frame(CONT, "frag2")], [echo("frag1frag2")])
    add("5.4", "text in 2 fragments, byte by byte", [frame(TEXT, "frag1", fin=False), frame(CONT, "frag2")],
        [echo("frag1frag2")], 1)
    add("5.6", "text in 2 fragments, a ping between", [frame(TEXT, "frag1", fin=False), frame(PING, "ping"),
                                                      frame(CONT, "frag2")], [pong("ping"), echo("frag1frag2")])
    add("5.7", "the same, byte by byte", [frame(TEXT, "frag1", fin=False), frame(PING, "ping"), frame(CONT, "frag2")],
        [pong("ping"), echo("frag1frag2")], 1)
    add("5.9", "a final continuation with no message open", [frame(CONT, "non-continuation payload"),
                                                            frame(TEXT, "Hello")], closed(1002))
    add("5.10", "the same, written byte by byte", [frame(CONT, "non-continuation payload"), frame(TEXT, "Hello")],
        closed(1002), 1)
    add("5.12", "a non-final continuation with no message open",
        [frame(CONT, "non-continuation payload", fin=False), frame(TEXT, "Hello")], closed(1002))
    add("5.13", "the same, written byte by byte",
        [frame(CONT, "non-continuation payload", fin=False), frame(TEXT, "Hello")], closed(1002), 1)
    add("5.16", "a non-final continuation with none open, then a fragmented text",
        [frame(CONT, "again", fin=False), frame(TEXT, "fragment1", fin=False), frame(CONT, "fragment2")], closed(1002))
    add("5.15", "a message, then continuations with none open",
        [frame(TEXT, "fragment1", fin=False), frame(CONT, "fragment2"), frame(CONT, "fragment3", fin=False),
         frame(TEXT, "fragment4")], [echo("fragment1fragment2")] + closed(1002))
    add("5.17", "a text frame inside a fragmented text message",
        [frame(TEXT, "fragment1", fin=False), frame(TEXT, "fragment2")], closed(1002))
    add("5.18", "text in 2 fragments, non-final first, ping and pong between",
        [frame(TEXT, "fragment1", fin=False), frame(PONG, "pong"), frame(PING, "ping"), frame(CONT, "fragment2")],
        [pong("ping"), echo("fragment1fragment2")])
    add("5.19", "text in 5 fragments, pings between, some empty",
        [frame(TEXT, "fragment1", fin=False), frame(CONT, "", fin=False), frame(PING, "pongme 1!"),
         frame(CONT, "fragment3", fin=False), frame(PING, "pongme 2!"), frame(CONT, "", fin=False),
         frame(CONT, "fragment5")],
        [pong("pongme 1!"), pong("pongme 2!"), echo("fragment1fragment3fragment5")])
    add("5.20", "binary in 3 fragments",
        [frame(BINARY, b"\x01", fin=False), frame(CONT, b"\x02", fin=False), frame(CONT, b"\x03")],
        [echo(b"\x01\x02\x03", BINARY)])
    add("5.21", "binary continuation inside a text message",
        [frame(TEXT, "a", fin=False), frame(BINARY, b"b")], closed(1002))
    # 6 UTF-8.
    add("6.1.1", "empty text", [frame(TEXT, b"")], [echo(b"")])
    add("6.1.2", "text of 3 empty fragments", [frame(TEXT, b"", fin=False), frame(CONT, b"", fin=False),
                                              frame(CONT, b"")], [echo(b"")])
    add("6.1.3", "text of empty, 'middle', empty fragments",
        [frame(TEXT, b"", fin=False), frame(CONT, b"middle", fin=False), frame(CONT, b"")], [echo("middle")])
    kosme = "κόσμε".encode()
    add("6.2.1", "valid UTF-8 in one frame", [frame(TEXT, "Hello-µ@ßöäüàá-UTF-8!!")], [echo("Hello-µ@ßöäüàá-UTF-8!!")])
    for cut in range(1, len(kosme)):
        add("6.2.2.%d" % cut, "κόσμε split after byte %d (inside a character or not)" % cut,
            [frame(TEXT, kosme[:cut], fin=False), frame(CONT, kosme[cut:])], [echo(kosme)])
    add("6.2.3", "valid UTF-8, one byte per fragment",
        [frame(TEXT if i == 0 else CONT, kosme[i:i + 1], fin=i == len(kosme) - 1) for i in range(len(kosme))],
        [echo(kosme)])
    add("6.2.4", "a 4-byte character split in every fragment", [frame(TEXT, b"\xf0", fin=False),
                                                                frame(CONT, b"\x9f", fin=False),
                                                                frame(CONT, b"\x98", fin=False),
                                                                frame(CONT, b"\x80")], [echo("😀")])
    valid = ["\x00", "\x7f", "\u0080", "\u07ff", "\u0800", "\uffff", "\U00010000", "\U0010ffff", "\ud7ff", "\ue000",
             "\ufffd", "\ufeff"]
    for i, s in enumerate(valid, 1):
        b = s.encode()
        add("6.5.%d" % i, "valid boundary character %r" % b, [frame(TEXT, b)], [echo(b)])
    invalid = [
        b"\x80", b"\xbf", b"\x80\xbf", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf",  # lone, overlong /
        b"\xc1\xbf", b"\xe0\x9f\xbf", b"\xf0\x8f\xbf\xbf",                                # largest overlongs
        b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xed\xa0\x80\xed\xb0\x80",                    # surrogates
        b"\xf4\x90\x80\x80", b"\xf7\xbf\xbf\xbf", b"\xf8\x88\x80\x80\x80", b"\xfc\x84\x80\x80\x80\x80",  # > U+10FFFF
        b"\xfe", b"\xff", b"\xfe\xfe\xff\xff",                                            # never in UTF-8
        b"\xc0", b"\xe0\x80", b"\xf0\x80\x80", b"\xdf", b"\xef\xbf", b"\xf4\x8f\xbf",      # truncated
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",
    ]
    for i, b in enumerate(invalid, 1):
        assert not utf8_valid(b), b  # the oracle (Python's codec) agrees these are invalid
        add("6.8.%d" % i, "invalid UTF-8 %s in one frame" % b.hex(), [frame(TEXT, b)], closed(1007))
        # The same split across two fragments after each byte (invalid only once joined, or early).
        add("6.9.%d" % i, "invalid UTF-8 %s, one byte per fragment" % b.hex(),
            [frame(TEXT if j == 0 else CONT, b[j:j + 1], fin=j == len(b) - 1) for j in range(len(b))], closed(1007))
    add("6.10.1", "valid text, then invalid UTF-8 in the next message", [frame(TEXT, "ok"), frame(TEXT, b"\xff")],
        [echo("ok")] + closed(1007))
    add("6.10.2", "a valid fragment, then a fragment with invalid UTF-8", [frame(TEXT, kosme, fin=False),
                                                                          frame(CONT, b"\xed\xa0\x80edited")],
        closed(1007))
    add("7.5.1", "invalid UTF-8 in a close reason", [close_frame(1000, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80")],
        closed(1007))
    # 7 Close.
    add("7.1.1", "text, then close", [frame(TEXT, "Hello World!"), close_frame(1000)], [echo("Hello World!")] + closed(1000))
    add("7.1.2", "close twice", [close_frame(1000), close_frame(1000)], closed(1000))
    add("7.1.3", "ping after close", [close_frame(1000), frame(PING, "Hello World!")], closed(1000))
    add("7.1.4", "text after close", [close_frame(1000), frame(TEXT, "Hello World!")], closed(1000))
    add("7.1.5", "a fragment, then close", [frame(TEXT, "fragment1", fin=False), close_frame(1000),
                                            frame(CONT, "fragment2")], closed(1000))
    add("7.3.1", "close without payload", [close_frame()], [("close", "none or 1000"), ("eof",)])
    add("7.3.2", "close with a 1-byte payload", [frame(CLOSE, b"\x03")], closed(1002))
    add("7.3.3", "close with a code only", [close_frame(1000)], closed(1000))
    add("7.3.4", "close with code and reason", [close_frame(1000, "Hello World!")], closed(1000))
    add("7.3.5", "close with a 123-byte reason", [close_frame(1000, b"*" * 123)], closed(1000))
    add("7.3.6", "close with a 124-byte reason (payload of 126)", [close_frame(1000, b"*" * 124)], closed(1002))
    for i, code in enumerate([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                              3000, 3999, 4000, 4999], 1):
        add("7.7.%d" % i, "close with the valid code %d" % code, [close_frame(code)], closed(code))
    for i, code in enumerate([0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535], 1):
        add("7.9.%d" % i, "close with the invalid code %d" % code, [close_frame(code)], closed(1002))
    # 9 Limits (scaled to the target's MAX_MESSAGE limit).
    big = MAX_MESSAGE
    for i, n in enumerate(sorted({min(64 * 1024, big), min(256 * 1024, big), big}), 1):
        add("9.1.%d" % i, "text of %d bytes in one frame" % n, [frame(TEXT, b"*" * n)], [echo(b"*" * n)])
        add("9.2.%d" % i, "binary of %d bytes in one frame" % n, [frame(BINARY, b"\xfe" * n)], [echo(b"\xfe" * n, BINARY)])
    for i, size in enumerate([64, 256, 4096, 65536], 1):
        n = min(256 * 1024, big)
        data = bytes((j * 31) % 256 for j in range(n))
        frames = [frame(BINARY if j == 0 else CONT, data[j:j + size], fin=j + size >= n) for j in range(0, n, size)]
        add("9.3.%d" % i, "binary of %d bytes in frames of %d" % (n, size), [b"".join(frames)], [echo(data, BINARY)])
    add("9.4.1", "1000 text messages of 20 bytes in one write", [b"".join(frame(TEXT, "%020d" % j) for j in range(1000))],
        [echo("%020d" % j) for j in range(1000)])
    n = min(256 * 1024, big)
    add("9.5.1", "text of %d bytes written in 4000-byte pieces" % n, [frame(TEXT, b"x" * n)], [echo(b"x" * n)], 4000)
    # Over the limit: refused at the frame header, before its payload (only 1 KiB of it is sent).
    add("9.6.1", "a text frame of the limit plus one byte (1009)", [frame(TEXT, b"*" * (big + 1))[:1024]], closed(1009))
    add("9.6.2", "fragments adding up to the limit plus one byte (1009)",
        [frame(TEXT, b"*" * (big // 2), fin=False), frame(CONT, b"*" * (big // 2 + 1))[:1024]], closed(1009))
    # Oversized: the header alone announces too much; the server must not wait for the payload.
    add("9.7.1", "a header announcing 2^40 bytes (1009, at once)", [bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 40) + b"\0" * 4],
        closed(1009))
    add("9.7.2", "a header announcing 2^63 - 1 bytes (1009, at once)",
        [bytes([0x82, 0xFF]) + struct.pack("!Q", (1 << 63) - 1) + b"\0" * 4], closed(1009))
    add("9.7.3", "a 64-bit length with the top bit set (1002)", [bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 63) + b"\0" * 4],
        closed(1002))
    add("9.7.4", "a 64-bit length of all ones (1002)", [bytes([0x82, 0xFF]) + b"\xff" * 8 + b"\0" * 4], closed(1002))
    # 10 Misc.
    k = min(51, big // 1300)
    data = b"".join(frame(TEXT if j == 0 else CONT, b"m" * 1300, fin=j == k - 1) for j in range(k))
    add("10.1.1", "text of %d bytes in %d frames of 1300" % (1300 * k, k), [data], [echo(b"m" * 1300 * k)])
    # Unmasked client frames.
    add("11.1", "an unmasked text frame (1002)", [frame(TEXT, "Hello", mask=False)], closed(1002))
    add("11.2", "an unmasked ping (1002)", [frame(PING, "ping", mask=False)], closed(1002))
    add("11.3", "an unmasked close (1002)", [frame(CLOSE, struct.pack("!H", 1000), mask=False)], closed(1002))
    add("11.4", "a valid message, then an unmasked continuation (1002)",
        [frame(TEXT, "ok"), frame(TEXT, "a", fin=False), frame(CONT, "b", mask=False)], [echo("ok")] + closed(1002))
    return c


def fail_fast_cases():
    """UTF-8 fail fast (Autobahn 6.4): the close must come before the rest of the message is
    sent. (id, description, first write, the rest, never sent)"""
    kosme = "κόσμε".encode()
    return [
        ("6.4.1", "invalid UTF-8 in the first part of a frame", frame(TEXT, kosme + b"\xf4\x90\x80\x80" + b"edited")[:-6], b"edited"),
        ("6.4.2", "invalid UTF-8 in the first fragment of a message",
         frame(TEXT, kosme + b"\xed\xa0\x80", fin=False), frame(CONT, b"edited")),
        ("6.4.3", "invalid UTF-8 in the middle of a long frame",
         frame(TEXT, b"a" * 1000 + b"\xc0\xaf" + b"b" * 60000)[:1100], b""),
    ]


class Conformance(unittest.TestCase):
    def run_case(self, cid, writes, expect, chop):
        conn = Conn().expect_accepted(self)
        try:
            for w in writes:
                if not conn.send(w, chop):
                    break
            if not expect or expect[-1][0] != "eof":
                conn.send(close_frame(1000))
                expect = list(expect) + clean_close()
            expect = graded(expect)
            got = graded(conn.items_until_close())
        finally:
            conn.close()
        if len(got) == len(expect):  # 7.3.1: an empty close is answered with no code or 1000
            got = [("close", "none or 1000") if e == ("close", "none or 1000") and g in (("close", None), ("close", 1000))
                   else g for g, e in zip(got, expect)]
        if got != expect:
            shown = lambda items: [i if i[0] not in ("text", "binary") or len(i[1]) < 80
                                   else (i[0], "%d bytes" % len(i[1])) for i in items]
            self.fail("case %s: got %s, expected %s" % (cid, shown(got), shown(expect)))

    def test_table(self):
        cases = case_table()
        for cid, desc, writes, expect, chop in cases:
            with self.subTest(case=cid, what=desc):
                self.run_case(cid, writes, expect, chop)
        print("\nws conformance: %d table cases" % len(cases), file=sys.stderr)

    def test_utf8_fails_fast(self):
        for cid, desc, first, rest in fail_fast_cases():
            with self.subTest(case=cid, what=desc):
                conn = Conn().expect_accepted(self)
                try:
                    conn.send(first)
                    # The rest of the frame is not sent: the close must come now.
                    got = graded(conn.items_until_close())
                finally:
                    conn.close()
                self.assertEqual(got, closed(1007), cid)

    def test_opening_handshake(self):
        # RFC 6455 §1.3's own example: key dGhlIHNhbXBsZSBub25jZQ== -> s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
        host, port, path = TARGET
        req = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, host, port))
        conn = Conn(raw_request=req.encode())
        try:
            self.assertEqual(conn.status, 101)
            self.assertEqual(conn.header("sec-websocket-accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
            self.assertEqual(conn.header("upgrade").lower(), "websocket")
            self.assertIn("upgrade", conn.header("connection").lower())
        finally:
            conn.close()
        # Case-insensitive tokens, lists in Connection and Upgrade.
        req = ("GET %s HTTP/1.1\r\nHost: h\r\nUpgrade: foo, WebSocket\r\nConnection: keep-alive, UPGRADE\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" % path)
        conn = Conn(raw_request=req.encode())
        try:
            self.assertEqual(conn.status, 101)
        finally:
            conn.close()

    def test_bad_handshakes(self):
        host, port, path = TARGET
        key = "dGhlIHNhbXBsZSBub25jZQ=="
        good = {"Host": "%s:%d" % (host, port), "Upgrade": "websocket", "Connection": "Upgrade",
                "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"}

        def request(method="GET", version="HTTP/1.1", drop=(), **replace):
            fields = dict(good)
            for k in drop:
                del fields[k]
            for k, v in replace.items():
                fields[k.replace("_", "-")] = v
            return ("%s %s %s\r\n" % (method, path, version) + "".join("%s: %s\r\n" % kv for kv in fields.items())
                    + "\r\n").encode()

        cases = [
            ("POST", request(method="POST"), 400),
            ("HTTP/1.0", request(version="HTTP/1.0"), 400),
            ("no Host", request(drop=["Host"]), 400),
            # Without an Upgrade to websocket the request is not a handshake: a server that also
            # speaks plain HTTP may answer 426 (RFC 9110 §15.5.22) as well as 400.
            ("no Upgrade", request(drop=["Upgrade"]), (400, 426)),
            ("Upgrade: h2c", request(Upgrade="h2c"), (400, 426)),
            ("no Connection", request(drop=["Connection"]), 400),
            ("Connection: keep-alive", request(Connection="keep-alive"), 400),
            ("no key", request(drop=["Sec-WebSocket-Key"]), 400),
            ("key of 15 bytes", request(Sec_WebSocket_Key=base64.b64encode(b"x" * 15).decode()), 400),
            ("key not base64", request(Sec_WebSocket_Key="!!!!!!!!!!!!!!!!!!!!!!=="), 400),
            ("no version", request(drop=["Sec-WebSocket-Version"]), 400),
            ("version 8", request(Sec_WebSocket_Version="8"), 426),
            ("version 14", request(Sec_WebSocket_Version="14"), 426),
            ("malformed extensions", request(Sec_WebSocket_Extensions="permessage-deflate; ="), 400),
            ("not HTTP", b"HELLO\r\n\r\n", 400),
        ]
        for name, raw, status in cases:
            with self.subTest(handshake=name):
                conn = Conn(raw_request=raw)
                try:
                    self.assertIn(conn.status, status if isinstance(status, tuple) else (status,), conn.headers)
                    self.assertIsNone(conn.header("sec-websocket-accept"))
                    if status == 426:
                        self.assertEqual(conn.header("sec-websocket-version"), "13")
                finally:
                    conn.close()

    # ------------------------------------------------------------ 12, 13: permessage-deflate

    def deflate_conn(self, offer):
        conn = Conn(extensions=offer).expect_accepted(self)
        ext = conn.header("sec-websocket-extensions")
        self.assertIsNotNone(ext, "permessage-deflate was not accepted for %r" % offer)
        params = [p.strip() for p in ext.split(";")]
        self.assertEqual(params[0], "permessage-deflate")
        agreed = {}
        for p in params[1:]:
            k, _, v = p.partition("=")
            agreed[k.strip()] = int(v) if v else True
        return conn, agreed

    def deflate_exchange(self, offer, client_window, client_reset, messages):
        conn, agreed = self.deflate_conn(offer)
        try:
            # What the response says binds the client (RFC 7692 §7.1).
            server_window = agreed.get("server_max_window_bits", 15)
            if "client_max_window_bits" in agreed:
                client_window = min(client_window, agreed["client_max_window_bits"])
            client_reset = client_reset or agreed.get("client_no_context_takeover", False)
            conn.use_deflate(server_window, agreed.get("server_no_context_takeover", False))
            # (zlib writes raw deflate with a window of at least 9 bits, so offers stay within 9-15.)
            comp = zlib.compressobj(wbits=-max(client_window, 9))
            out = b""
            for op, m in messages:
                data = comp.compress(m) + comp.flush(zlib.Z_SYNC_FLUSH)
                self.assertTrue(data.endswith(b"\x00\x00\xff\xff"))
                out += frame(op, data[:-4], rsv=4)
                if client_reset:
                    comp = zlib.compressobj(wbits=-max(client_window, 9))
            conn.send(out)
            conn.send(close_frame(1000))
            got = graded(conn.items_until_close())
        finally:
            conn.close()
        self.assertEqual(got, graded([("text" if op == TEXT else "binary", m) for op, m in messages] + clean_close()), offer)
        return agreed

    def test_deflate_messages(self):
        """Autobahn 12: compressed messages of every size, echoed (the echo is compressed too)."""
        texts = [b"", b"a", b"Hello, world!", ("Grüße, κόσμε, 😀 " * 40).encode(), b"x" * 65536,
                 (bytes(range(256)) * 512)[:MAX_MESSAGE - 300]]
        sizes = [n for n in [16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536, 131072] if n <= MAX_MESSAGE]
        for n, size in enumerate(sizes, 1):
            with self.subTest(case="12.1.%d" % n, size=size):
                msgs = [(TEXT, (b"abcdefghij" * (size // 10 + 1))[:size]) for _ in range(10)]
                self.deflate_exchange("permessage-deflate", 15, False, msgs)
        with self.subTest(case="12.2.1", what="text and binary, mixed sizes"):
            msgs = [(TEXT, t) if i % 2 == 0 else (BINARY, os.urandom(300) + t) for i, t in enumerate(texts)]
            self.deflate_exchange("permessage-deflate", 15, False, msgs)

    def test_deflate_parameters(self):
        """Autobahn 13: each negotiation parameter, then compressed traffic under it."""
        msgs = [(TEXT, ("message %d " % i).encode() * 50) for i in range(20)]
        offers = [
            ("13.1", "permessage-deflate", 15, False),
            ("13.2", "permessage-deflate; client_no_context_takeover", 15, True),
            ("13.3", "permessage-deflate; server_no_context_takeover", 15, False),
            ("13.4", "permessage-deflate; client_max_window_bits", 15, False),
            ("13.5", "permessage-deflate; server_no_context_takeover; client_no_context_takeover", 15, True),
        ]
        for bits in range(9, 16):
            offers.append(("13.6.%d" % bits, "permessage-deflate; client_max_window_bits=%d" % bits, bits, False))
            offers.append(("13.7.%d" % bits, "permessage-deflate; server_max_window_bits=%d" % bits, 15, False))
            offers.append(("13.8.%d" % bits, "permessage-deflate; server_max_window_bits=%d; client_max_window_bits=%d;"
                           " client_no_context_takeover; server_no_context_takeover" % (bits, bits), bits, True))
        for cid, offer, window, reset in offers:
            with self.subTest(case=cid, offer=offer):
                agreed = self.deflate_exchange(offer, window, reset, msgs)
                if "server_no_context_takeover" in offer:
                    self.assertIn("server_no_context_takeover", agreed)
                if "server_max_window_bits=" in offer:
                    asked = int(offer.split("server_max_window_bits=")[1].split(";")[0])
                    self.assertLessEqual(agreed.get("server_max_window_bits", 15), asked)
                self.assertLessEqual(agreed.get("client_max_window_bits", 15), window)

    def test_deflate_refusals(self):
        """Offers the server must decline (no extension in the 101), and frames it must refuse."""
        for offer in ["permessage-deflate; server_max_window_bits=16", "permessage-deflate; server_max_window_bits=7",
                      "permessage-deflate; client_max_window_bits=16", "permessage-deflate; unknown_param",
                      "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                      "x-webkit-deflate-frame"]:
            with self.subTest(offer=offer):
                conn = Conn(extensions=offer).expect_accepted(self)
                try:
                    self.assertIsNone(conn.header("sec-websocket-extensions"), offer)
                finally:
                    conn.close()
        cases = [
            ("RSV1 on a continuation", lambda c: [frame(TEXT, c(b"ab"), fin=False, rsv=4), frame(CONT, b"", rsv=4)], 1002),
            ("RSV1 on a ping", lambda c: [frame(PING, b"x", rsv=4)], 1002),
            ("not DEFLATE data", lambda c: [frame(TEXT, b"\xff\xff\xff\xff\xff", rsv=4)], 1007),
            ("invalid UTF-8 once inflated", lambda c: [frame(TEXT, c(b"ok \xed\xa0\x80"), rsv=4)], 1007),
            ("a bomb past the limit (1009)", lambda c: [frame(BINARY, c(b"\0" * (MAX_MESSAGE + 1)), rsv=4)], 1009),
        ]
        for name, writes, code in cases:
            with self.subTest(frames=name):
                conn, _ = self.deflate_conn("permessage-deflate")
                comp = zlib.compressobj(wbits=-15)
                compress = lambda m: (comp.compress(m) + comp.flush(zlib.Z_SYNC_FLUSH))[:-4]
                try:
                    conn.use_deflate()
                    for w in writes(compress):
                        conn.send(w)
                    got = graded(conn.items_until_close())
                finally:
                    conn.close()
                self.assertEqual(got, closed(code), name)


def parse_target(arg):
    u = urllib.parse.urlsplit(arg)
    if u.scheme != "ws":
        raise SystemExit("ws_conformance_test.py: only ws:// URLs: %s" % arg)
    return (u.hostname, u.port or 80, (u.path or "/") + ("?" + u.query if u.query else ""))


if __name__ == "__main__":
    arg = sys.argv.pop(1)
    if "--max-message" in sys.argv:
        i = sys.argv.index("--max-message")
        MAX_MESSAGE = int(sys.argv[i + 1])
        del sys.argv[i:i + 2]
    if "--no-echo" in sys.argv:
        sys.argv.remove("--no-echo")
        ECHO = False
    proc = work = None
    if arg.startswith("ws://"):
        TARGET = parse_target(arg)
    elif os.path.basename(arg) == "ws-server":
        ECHO = False
        MAX_MESSAGE = 65536
        port = harness.free_port()
        work = tempfile.mkdtemp(prefix="ws_conformance-")
        cfg = os.path.join(work, "ws-server.yaml")
        with open(cfg, "w") as f:
            f.write("listen: 127.0.0.1:%d\nanonymous: true\nchat_page: false\nwebsocket: { max_message: %d }\n"
                    % (port, MAX_MESSAGE))
        log = open(os.path.join(work, "ws-server.log"), "w")
        proc = subprocess.Popen([os.path.abspath(arg), "--workers", "1", "run", "--config", cfg],
                                stdout=log, stderr=subprocess.STDOUT)
        harness.wait_port(port)
        TARGET = ("127.0.0.1", port, "/?user=conformance")
    else:
        proc = subprocess.Popen([os.path.abspath(arg), "0", str(MAX_MESSAGE)], stdout=subprocess.PIPE, text=True)
        line = proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "listening":
            proc.kill()
            raise SystemExit("ws_conformance_test.py: %s did not start" % arg)
        TARGET = ("127.0.0.1", int(line[1]), "/")
    ok = False
    try:
        ok = unittest.main(verbosity=2, exit=False).result.wasSuccessful()
        if proc is not None and proc.poll() is not None:
            ok = False
            print("ws_conformance_test.py: the server exited during the suite (status %d)" % proc.returncode,
                  file=sys.stderr)
        if not ok and work is not None:  # the server's own account (a sanitizer report, say)
            with open(os.path.join(work, "ws-server.log")) as f:
                print("--- ws-server's output (last 60 lines):\n" + "".join(f.readlines()[-60:]), file=sys.stderr)
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if ok else 1)
