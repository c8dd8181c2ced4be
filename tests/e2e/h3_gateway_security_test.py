"""End-to-end tests of apps/h3-gateway's security stages and HTTP/1.1 listener (they came with
examples/http_gateway, folded into the app): one route, `api`, over one group, with every stage
on it. curl as the client, a Python http.server (and nginx, when installed) as the backend, keys
and tokens made here with the openssl CLI and hmac.

Usage: h3_gateway_security_test.py PATH_TO_H3_GATEWAY [unittest args]"""
import base64
import hashlib
import hmac
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

import harness

BINARY = None


# ---- tokens and keys ------------------------------------------------------------------------

def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True).stdout


def der_to_raw(der, size=32):
    """ECDSA signature: DER SEQUENCE{INTEGER r, INTEGER s} -> r || s (JWS form)."""
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        out += der[i + 2:i + 2 + n].lstrip(b"\0").rjust(size, b"\0")
        i += 2 + n
    return out


class Keys:
    """An HMAC secret, an RSA-2048 and a P-256 key pair, in a temp dir."""

    def __init__(self, d):
        self.dir = d
        self.secret = os.urandom(32).hex().encode()  # 64 bytes of text
        self.hmac_file = os.path.join(d, "hmac.secret")
        with open(self.hmac_file, "wb") as f:
            f.write(self.secret)
        self.rsa_key = os.path.join(d, "rsa.pem")
        self.rsa_pub = os.path.join(d, "rsa.pub")
        self.ec_key = os.path.join(d, "ec.pem")
        self.ec_pub = os.path.join(d, "ec.pub")
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", self.rsa_key)
        openssl("pkey", "-in", self.rsa_key, "-pubout", "-out", self.rsa_pub)
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", self.ec_key)
        openssl("pkey", "-in", self.ec_key, "-pubout", "-out", self.ec_pub)

    def token(self, alg="HS256", kid=None, **claims):
        now = int(time.time())
        body = {"iss": "https://idp.test", "aud": "api", "sub": "alice", "iat": now, "exp": now + 300}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        kid = kid or {"HS256": "h1", "RS256": "r1", "ES256": "e1", "none": "h1"}[alg]
        head = {"alg": alg, "typ": "JWT", "kid": kid}
        signing = f"{b64url(json.dumps(head).encode())}.{b64url(json.dumps(body).encode())}".encode()
        if alg == "HS256":
            sig = hmac.new(self.secret, signing, hashlib.sha256).digest()
        elif alg == "RS256":
            sig = openssl("dgst", "-sha256", "-sign", self.rsa_key, data=signing)
        elif alg == "ES256":
            sig = der_to_raw(openssl("dgst", "-sha256", "-sign", self.ec_key, data=signing))
        else:
            sig = b""
        return f"{signing.decode()}.{b64url(sig)}"


# ---- backends -------------------------------------------------------------------------------

class EchoHandler(http.server.BaseHTTPRequestHandler):
    """Answers what it received as JSON; /die-early and /die-mid misbehave on purpose."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def read_body(self):
        self.trailers = {}
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while (line := self.rfile.readline()) not in (b"\r\n", b"\n", b""):
                        k, _, v = line.decode("latin-1").partition(":")
                        self.trailers[k.strip().lower()] = v.strip()
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def answer(self):
        body = self.read_body()
        if self.path == "/die-early":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if self.path == "/die-mid":
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        out = json.dumps({"path": self.path, "method": self.command,
                          "headers": {k.lower(): v for k, v in self.headers.items()}, "trailers": self.trailers,
                          "body_len": len(body), "body_sha": hashlib.sha256(body).hexdigest()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = answer


class EchoBackend:
    def __init__(self):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Nginx:
    """nginx as a non-daemon on a free loopback port, serving files from a temp dir."""

    def __init__(self, root):
        self.port = harness.free_port()
        self.dir = tempfile.mkdtemp(prefix="rproxy-nginx-")
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""daemon off; pid {self.dir}/nginx.pid; error_log {self.dir}/error.log;
events {{ worker_connections 64; }}
http {{ access_log off; client_body_temp_path {self.dir}/body; proxy_temp_path {self.dir}/proxy;
  fastcgi_temp_path {self.dir}/fcgi; uwsgi_temp_path {self.dir}/uwsgi; scgi_temp_path {self.dir}/scgi;
  keepalive_requests 1000;
  server {{ listen 127.0.0.1:{self.port}; root {root}; }} }}
""")
        self.proc = subprocess.Popen([harness.nginx_path(), "-c", conf, "-p", self.dir], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        harness.wait_port(self.port)

    def close(self):
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# ---- client ---------------------------------------------------------------------------------

def curl(url, headers=(), args=(), timeout=20):
    """(status, {lowercase header: value}, body bytes, curl exit code) of the last response."""
    d = tempfile.mkdtemp(prefix="rproxy-curl-")
    hfile, bfile = os.path.join(d, "h"), os.path.join(d, "b")
    cmd = ["curl", "-sS", "--max-time", str(timeout), "-o", bfile, "-D", hfile, "-w", "%{http_code}", url]
    for h in headers:
        cmd += ["-H", h]
    cmd += list(args)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 10)
    heads = {}
    if os.path.exists(hfile):
        with open(hfile, "rb") as f:
            blocks = f.read().decode("latin-1").split("\r\n\r\n")
        final = [b for b in blocks if b.strip()]
        for line in (final[-1].split("\r\n")[1:] if final else []):
            if ":" in line:
                k, v = line.split(":", 1)
                heads[k.strip().lower()] = v.strip()
    body = b""
    if os.path.exists(bfile):
        with open(bfile, "rb") as f:
            body = f.read()
    shutil.rmtree(d, ignore_errors=True)
    code = int(p.stdout[-3:]) if p.stdout[-3:].isdigit() else 0
    return code, heads, body, p.returncode


def raw_exchange(port, data, timeout=10):
    """Sends `data` on a fresh connection and returns all bytes until the gateway closes it."""
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(timeout)
    s.sendall(data)
    got = b""
    try:
        while (b := s.recv(65536)):
            got += b
    except OSError:
        pass
    s.close()
    return got


def echoed(response):
    """The echo backend's JSON from a raw HTTP/1.x response (one message, Content-Length)."""
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), response
    return json.loads(body)


def gateway_config(port, admin, backends, extra):
    """One route, `api`, for every request, over one group; the security stages on it (those
    whose block `extra` has, for jwt, api_keys and rate_limit)."""
    lines = [f"admin:\n  listen: 127.0.0.1:{admin}\n", f"listen: 127.0.0.1:{port}\n",
             "groups:\n  - name: api\n    backends:\n"]
    lines += [f"      - address: 127.0.0.1:{b}\n" for b in backends]
    lines += ["http:\n  routes:\n    - { name: api, prefix: /, backends: [ { group: api } ] }\n"]
    stages = ["ip_filter", "bans"] + [n for n in ("jwt", "api_keys", "rate_limit") if re.search(rf"(?m)^{n}:", extra)]
    lines += [f"default_middleware: [ {', '.join(stages)} ]\n"]
    return "".join(lines) + extra


def start_gateway(config_text, port, admin, name):
    prog = harness.Program(BINARY, config_text, args=["--workers", "2"], name=name)
    prog.start(wait_ports=[port, admin])
    return prog


def sha256_line(key, name, tier=""):
    return f"{hashlib.sha256(key.encode()).hexdigest()} {name} {tier}\n"


# ---- the main gateway: JWT, API keys, rate limits, bans, IP filter, audit -------------------

class SecurityTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="rproxy-gw-")
        cls.keys = Keys(cls.dir)
        cls.backend = EchoBackend()
        cls.api_key_1 = "k1-" + os.urandom(16).hex()
        cls.api_key_2 = "k2-" + os.urandom(16).hex()
        cls.key_file = os.path.join(cls.dir, "api_keys.txt")
        with open(cls.key_file, "w") as f:
            f.write("# test keys\n" + sha256_line(cls.api_key_1, "client-one", "tiny") +
                    sha256_line(cls.api_key_2, "client-two", "tiny"))
        cls.ban_file = os.path.join(cls.dir, "bans.txt")
        with open(cls.ban_file, "w") as f:
            f.write("# rproxy bans v1\naddr 127.0.0.2/32 0 test%20ban\n")
        cls.audit_file = os.path.join(cls.dir, "audit.log")
        cls.port, cls.admin = harness.free_port(), harness.free_port()
        extra = f"""limits:
  header_timeout: 5s
  max_header: 8KiB
ip_filter:
  deny: [ 127.0.0.3/32 ]
bans:
  file: {cls.ban_file}
jwt:
  keys:
    - {{ type: hmac, file: {cls.keys.hmac_file}, kid: h1, algorithm: HS256 }}
    - {{ type: pem, file: {cls.keys.rsa_pub}, kid: r1, algorithm: RS256 }}
    - {{ type: pem, file: {cls.keys.ec_pub}, kid: e1, algorithm: ES256 }}
  issuers: [ "https://idp.test" ]
  audiences: [ api ]
  leeway: 5s
  forward:
    - {{ claim: sub, header: X-User }}
api_keys:
  file: {cls.key_file}
require_auth: true
rate_limit:
  key: [ identity ]
  tiers:
    - {{ name: default, limit: 1000, window: 1s }}
    - {{ name: tiny, limit: 3, window: 1m }}
audit:
  file: {cls.audit_file}
  per_second: 1000
  burst: 1000
"""
        cls.gw = start_gateway(gateway_config(cls.port, cls.admin, [cls.backend.port], extra), cls.port, cls.admin,
                               "gw")
        cls.url = f"http://127.0.0.1:{cls.port}"

    @classmethod
    def tearDownClass(cls):
        rc = cls.gw.stop()
        cls.backend.close()
        if rc != 0:
            cls.gw.dump()
        assert rc == 0, rc

    def bearer(self, token):
        return [f"Authorization: Bearer {token}"]

    def audit_lines(self):
        with open(self.audit_file) as f:
            return f.read().splitlines()

    def test_jwt_valid_for_each_algorithm(self):
        for alg in ("HS256", "RS256", "ES256"):
            with self.subTest(alg=alg):
                code, heads, body, _ = curl(self.url + "/hello", self.bearer(self.keys.token(alg, sub=f"u-{alg}")) +
                                            ["X-User: forged"])
                self.assertEqual(code, 200)
                seen = json.loads(body)["headers"]
                self.assertEqual(seen["x-user"], f"u-{alg}")  # the verified claim, not the forged one
                self.assertEqual(seen["x-forwarded-for"], "127.0.0.1")
                self.assertIn("x-ratelimit-limit", heads)

    def test_jwt_without_issuers_or_audiences_warns_at_start(self):
        self.assertNotIn("neither issuers nor audiences", self.gw.output())
        port, admin = harness.free_port(), harness.free_port()
        extra = f"jwt:\n  keys:\n    - {{ type: hmac, file: {self.keys.hmac_file}, kid: h1, algorithm: HS256 }}\n"
        gw = start_gateway(gateway_config(port, admin, [self.backend.port], extra), port, admin, "gw-open")
        try:
            deadline = time.monotonic() + 10  # the log line may still be in the program's buffer
            while "neither issuers nor audiences" not in gw.output() and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertIn("neither issuers nor audiences", gw.output())
        finally:
            self.assertEqual(gw.stop(), 0)

    def test_claim_headers_cannot_be_forged_by_trailer_or_underscore(self):
        token = self.keys.token(sub="real-user")
        # A request trailer named like the claim header, after a chunked body.
        got = raw_exchange(self.port, (f"POST /t HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                                       "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                                       "5\r\nhello\r\n0\r\nX-User: admin\r\nX-Other: 1\r\n\r\n").encode())
        seen = echoed(got)
        self.assertEqual(seen["headers"]["x-user"], "real-user")
        self.assertEqual(seen["trailers"], {})  # request trailers are dropped by default
        # X_User reaches CGI/WSGI backends as HTTP_X_USER, like X-User: names with '_' are dropped.
        code, _, body, _ = curl(self.url + "/u", self.bearer(token) + ["X_User: admin", "X_Other: 1"])
        self.assertEqual(code, 200)
        seen = json.loads(body)["headers"]
        self.assertEqual(seen["x-user"], "real-user")
        self.assertNotIn("x_user", seen)
        self.assertNotIn("x_other", seen)

    def test_jwt_refusals_are_401_and_audited_once_without_the_token(self):
        before = len(self.audit_lines())
        bad = {
            "expired": self.keys.token(exp=int(time.time()) - 3600, sub="expired-user"),
            "wrong_aud": self.keys.token(aud="other", sub="aud-user"),
            "alg_none": self.keys.token("none", sub="none-user"),
            "bad_signature": self.keys.token(sub="sig-user")[:-4] + "AAAA",
        }
        for name, tok in bad.items():
            with self.subTest(case=name):
                code, _, _, _ = curl(self.url + "/x", self.bearer(tok))
                self.assertEqual(code, 401)
        code, _, _, _ = curl(self.url + "/x")  # no token at all
        self.assertEqual(code, 401)
        harness.wait_until(lambda: len(self.audit_lines()) - before >= len(bad) + 1, what="audit lines written")
        lines = self.audit_lines()[before:]
        self.assertEqual(len(lines), len(bad) + 1, lines)
        for tok in bad.values():
            for part in tok.split("."):
                if len(part) > 8:
                    self.assertFalse(any(part in l for l in lines), "audit line holds token text")
        self.assertTrue(all("code=unauthorized" in l for l in lines))

    def test_api_keys(self):
        code, _, body, _ = curl(self.url + "/k", [f"X-API-Key: {self.api_key_2}"])
        self.assertEqual(code, 200)
        self.assertNotIn("x-api-key", json.loads(body)["headers"])  # the backend never sees the key
        self.assertNotIn(self.api_key_2.encode(), body)
        before = len(self.audit_lines())
        code, _, _, _ = curl(self.url + "/k", ["X-API-Key: not-a-key-" + "z" * 20])
        self.assertEqual(code, 401)
        harness.wait_until(lambda: len(self.audit_lines()) > before, what="audit line written")
        lines = self.audit_lines()[before:]
        self.assertEqual(len(lines), 1)
        self.assertIn("unknown API key", lines[0])
        self.assertNotIn("z" * 20, lines[0])

    def test_api_key_forwarded_only_with_forward_key(self):
        """forward_key: true passes the key on, over HTTP/1.1 and HTTP/2 (prior knowledge) alike;
        the default (this class's gateway) removes it (test_api_keys)."""
        port, admin = harness.free_port(), harness.free_port()
        extra = f"api_keys:\n  file: {self.key_file}\n  header: X-Partner-Key\n  forward_key: true\nrequire_auth: true\n"
        gw = start_gateway(gateway_config(port, admin, [self.backend.port], extra), port, admin, "gw-forward-key")
        try:
            for proto in ([], ["--http2-prior-knowledge"]):
                with self.subTest(proto=proto):
                    code, _, body, _ = curl(f"http://127.0.0.1:{port}/fk", [f"X-Partner-Key: {self.api_key_2}"], proto)
                    self.assertEqual(code, 200, body)
                    self.assertEqual(json.loads(body)["headers"].get("x-partner-key"), self.api_key_2)
                    code, _, _, _ = curl(f"http://127.0.0.1:{port}/fk", [f"X-API-Key: {self.api_key_2}"], proto)
                    self.assertEqual(code, 401)  # the configured header, not the default one
        finally:
            self.assertEqual(gw.stop(), 0)

    def test_credentials_from_query_and_cookies_never_reach_the_backend(self):
        """An API key from the query (`query:`) or a cookie (`cookie:`), a JWT from a cookie with
        forward_token: false: accepted, and the backend (which echoes what it got) sees neither,
        the other parameters and cookies kept; over HTTP/1.1, HTTP/2 (curl) and HTTP/2 cookie
        crumbs sent as separate fields (nghttp)."""
        port, admin = harness.free_port(), harness.free_port()
        extra = (f"api_keys:\n  file: {self.key_file}\n  query: api_key\n  cookie: api_key\n"
                 f"jwt:\n  keys: [ {{ type: hmac, file: {self.keys.hmac_file}, kid: h1, algorithm: HS256 }} ]\n"
                 "  issuers: [ \"https://idp.test\" ]\n  audiences: [ api ]\n  cookie: access_token\n  forward_token: false\n"
                 "require_auth: true\n")
        gw = start_gateway(gateway_config(port, admin, [self.backend.port], extra), port, admin, "gw-query-cookie")
        url = f"http://127.0.0.1:{port}"
        key, token = self.api_key_1, self.keys.token(sub="cookie-user")
        try:
            for proto in ([], ["--http2-prior-knowledge"]):
                with self.subTest(proto=proto):
                    code, _, body, _ = curl(f"{url}/q?a=1&api_key={key}&b=two+words", args=proto)
                    self.assertEqual(code, 200, body)
                    got = json.loads(body)
                    self.assertEqual(got["path"], "/q?a=1&b=two+words")
                    self.assertNotIn(key.encode(), body)
                    code, _, _, _ = curl(f"{url}/q?api_key=not-a-key", args=proto)
                    self.assertEqual(code, 401)
                    code, _, body, _ = curl(f"{url}/c", [f"Cookie: theme=dark; api_key={key}; lang=en"], proto)
                    self.assertEqual(code, 200, body)
                    self.assertEqual(json.loads(body)["headers"].get("cookie"), "theme=dark; lang=en")
                    self.assertNotIn(key.encode(), body)
                    code, _, body, _ = curl(f"{url}/j", [f"Cookie: access_token={token}; theme=dark"], proto)
                    self.assertEqual(code, 200, body)
                    got = json.loads(body)
                    self.assertEqual(got["headers"].get("cookie"), "theme=dark")
                    self.assertNotIn(token.encode(), body)
                    code, _, body, _ = curl(f"{url}/j", [f"Cookie: access_token={token}"], proto)
                    self.assertEqual(code, 200, body)
                    self.assertNotIn("cookie", json.loads(body)["headers"])  # none left: no Cookie field
            # HTTP/2 cookie crumbs, each its own field (RFC 9113 8.2.3): joined, the token left out.
            p = subprocess.run(["nghttp", "-t", "20", f"{url}/crumbs", "-H", "cookie: theme=dark",
                                "-H", f"cookie: access_token={token}", "-H", "cookie: lang=en"],
                               capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
            got = json.loads(p.stdout)
            self.assertEqual(got["headers"].get("cookie"), "theme=dark; lang=en")
            self.assertNotIn(token.encode(), p.stdout)
        finally:
            self.assertEqual(gw.stop(), 0)
        self.assertNotIn(key, gw.output())  # the access log's target: api_key=[REDACTED]
        self.assertIn('target="/q?a=1&api_key=[REDACTED]&b=two+words"', gw.output())
        self.assertNotIn(token, gw.output())

    def test_rate_limit_429_with_headers_and_keys_independent(self):
        codes, last = [], None
        for _ in range(5):
            code, heads, _, _ = curl(self.url + "/r", [f"X-API-Key: {self.api_key_1}"])
            codes.append(code)
            if code == 200:
                self.assertEqual(heads["x-ratelimit-limit"], "3")
            last = heads
        self.assertEqual(codes, [200, 200, 200, 429, 429])
        self.assertEqual(last["x-ratelimit-limit"], "3")
        self.assertEqual(last["x-ratelimit-remaining"], "0")
        self.assertGreater(int(last["retry-after"]), 0)
        self.assertIn("x-ratelimit-reset", last)
        # another key has its own bucket; a JWT user is in another tier
        code, heads, _, _ = curl(self.url + "/r", [f"X-API-Key: {self.api_key_2}"])
        self.assertEqual(code, 200)
        code, heads, _, _ = curl(self.url + "/r", self.bearer(self.keys.token(sub="carol")))
        self.assertEqual((code, heads["x-ratelimit-limit"]), (200, "1000"))
        lines = [l for l in self.audit_lines() if "stage=rate_limit" in l]
        self.assertTrue(lines)
        self.assertFalse(any(self.api_key_1 in l for l in self.audit_lines()))

    def test_ip_filter_and_address_ban(self):
        code, _, _, _ = curl(self.url + "/f", self.bearer(self.keys.token()), ["--interface", "127.0.0.3"])
        self.assertEqual(code, 403)
        code, _, body, _ = curl(self.url + "/f", self.bearer(self.keys.token()), ["--interface", "127.0.0.2"])
        self.assertEqual(code, 403)
        self.assertIn(b"banned", body)

    def test_identity_ban_and_removal_after_reload(self):
        tok = self.keys.token(sub="mallory")
        self.assertEqual(curl(self.url + "/b", self.bearer(tok))[0], 200)
        with open(self.ban_file, "a") as f:
            f.write("identity mallory 0 abuse\n")
        self.gw.signal(signal.SIGHUP)
        self.wait_for(lambda: curl(self.url + "/b", self.bearer(tok))[0] == 403)
        with open(self.ban_file, "w") as f:
            f.write("# rproxy bans v1\naddr 127.0.0.2/32 0 test%20ban\n")
        self.gw.signal(signal.SIGHUP)
        self.wait_for(lambda: curl(self.url + "/b", self.bearer(tok))[0] == 200)

    def wait_for(self, cond, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return
            time.sleep(0.2)
        self.fail("condition not met in time")

    def test_oversized_header_is_431(self):
        code, _, _, _ = curl(self.url + "/big", self.bearer(self.keys.token()) + ["X-Big: " + "b" * 12000])
        self.assertEqual(code, 431)

    def test_bodies_stream_both_framings_and_keep_alive(self):
        data = os.urandom(3 * 1024 * 1024 + 17)
        f = os.path.join(self.dir, "upload.bin")
        with open(f, "wb") as out:
            out.write(data)
        for framing in ([], ["Transfer-Encoding: chunked"]):
            with self.subTest(framing=framing):
                code, _, body, _ = curl(self.url + "/up", self.bearer(self.keys.token()) + framing,
                                        ["--data-binary", "@" + f])
                self.assertEqual(code, 200)
                got = json.loads(body)
                self.assertEqual((got["body_len"], got["body_sha"]), (len(data), hashlib.sha256(data).hexdigest()))
        # several requests on one client connection
        p = subprocess.run(["curl", "-sS", "-v", "-o", "/dev/null", "-H", f"Authorization: Bearer {self.keys.token()}",
                            self.url + "/1", self.url + "/2", self.url + "/3"], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("Re-using existing connection", p.stderr)

    def test_backend_failures(self):
        code, _, _, _ = curl(self.url + "/die-early", self.bearer(self.keys.token()))
        self.assertEqual(code, 502)
        code, _, body, rc = curl(self.url + "/die-mid", self.bearer(self.keys.token()))
        self.assertEqual(code, 200)
        self.assertNotEqual(rc, 0)  # curl sees a short body: the connection closed mid-response
        self.assertLess(len(body), 100000)

    def test_metrics(self):
        def unauthorized():
            text = urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/metrics", timeout=5).read().decode()
            m = re.search(r'^h3gw_rejects_total\{route="api",reason="unauthorized"\} (\d+)$', text, re.M)
            return (int(m.group(1)) if m else 0), text
        before, _ = unauthorized()
        self.assertEqual(curl(self.url + "/m")[0], 401)   # no token
        after, text = harness.wait_until(lambda: (lambda a: a if a[0] > before else None)(unauthorized()),
                                         what="the reject counted")
        self.assertEqual(after - before, 1, text)   # this request, counted once
        self.assertIn("h3gw_connections_total ", text)


# ---- connection caps, slowloris, nginx ------------------------------------------------------

class ConnectionTest(unittest.TestCase):
    def setUp(self):
        self.backend = EchoBackend()
        self.progs = []

    def tearDown(self):
        for p in self.progs:
            self.assertEqual(p.stop(), 0)
        self.backend.close()

    def gateway(self, extra, backends=None):
        port, admin = harness.free_port(), harness.free_port()
        text = gateway_config(port, admin, backends or [self.backend.port], "require_auth: false\n" + extra)
        self.progs.append(start_gateway(text, port, admin, "gwc"))
        self.admin_port = admin
        return f"http://127.0.0.1:{port}", port

    def connections(self):
        """(accepted, in progress) client connections, from the gateway's metrics."""
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/metrics", timeout=5).read().decode()
        value = lambda name: float(re.search(r'^%s (\S+)$' % name, text, re.M).group(1))
        return value("h3gw_connections_total"), value("h3gw_connections_active")

    def no_connection_open(self):
        """Start-up's port probe has been accepted and has closed: the gateway holds no connection.
        (In progress 0 alone is also true before the probe is accepted; it would then race the
        next connection for a capped slot.)"""
        accepted, open_now = self.connections()
        return accepted >= 1 and open_now == 0

    def test_conn_cap(self):
        url, port = self.gateway("conn_limit: { max_per_ip: 1 }\nlimits: { header_timeout: 20s }\n")
        # The start-up port probe is a connection too: the held one must not race it for the slot.
        harness.wait_until(self.no_connection_open, what="the port probe's connection closed")
        accepted_before = self.connections()[0]
        held = socket.create_connection(("127.0.0.1", port))
        # The held connection counts once the gateway has accepted it (a worker may be busy when
        # the machine is loaded).
        harness.wait_until(lambda: self.connections() == (accepted_before + 1, 1), what="the held connection accepted")
        code, _, _, _ = curl(url + "/c")
        self.assertEqual(code, 429)
        held.close()
        # The slot frees once the gateway has seen the close: ask until served, within a bound.
        harness.wait_until(lambda: curl(url + "/c")[0] == 200, what="served after the held connection closed")

    def test_slowloris_is_cut_while_a_good_client_is_served(self):
        url, port = self.gateway("limits: { header_timeout: 1s }\n")
        slow = socket.create_connection(("127.0.0.1", port))
        dripping = threading.Event()
        dripping.set()

        def drip():  # one byte of a never-ending head every 0.2 s (time passes on purpose), ~23 s
            for b in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
                try:
                    slow.send(bytes([b]))
                except OSError:
                    break
                time.sleep(0.2)
            dripping.clear()
        threading.Thread(target=drip, daemon=True).start()
        self.assertEqual(curl(url + "/good", timeout=5)[0], 200)
        # The gateway cuts the connection (header_timeout is for the whole head, not per byte)
        # while the client is still dripping; 20 s only bounds the test.
        slow.settimeout(20)
        got, cut = b"", False
        try:
            while True:
                b = slow.recv(4096)
                if not b:
                    cut = True
                    break
                got += b
        except ConnectionResetError:
            cut = True
        except socket.timeout:
            pass
        still_dripping = dripping.is_set()
        slow.close()
        self.assertTrue(cut, "the gateway did not cut the slow client")
        self.assertTrue(still_dripping, "cut only after the client had sent its whole head")
        self.assertTrue(got == b"" or got.startswith(b"HTTP/1.1 408"), got)

    def test_sigterm_closes_idle_keep_alive_connections(self):
        url, port = self.gateway("limits: { header_timeout: 60s }\n")
        s = socket.create_connection(("127.0.0.1", port))
        s.settimeout(10)
        s.sendall(b"GET /k HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while b"\r\n\r\n" not in got:
            got += s.recv(65536)
        head, body = got.split(b"\r\n\r\n", 1)
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
        length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
        while len(body) < length:
            body += s.recv(65536)
        prog = self.progs.pop()  # the connection stays open, idle, kept alive
        self.assertEqual(prog.stop(timeout=20), 0)  # within 20 s: not the 60 s header timeout
        self.assertEqual(s.recv(10), b"")
        s.close()

    def test_forwarding_headers_are_replaced_unless_from_a_trusted_proxy(self):
        spoof = ["X-Forwarded-For: 6.6.6.6", "Forwarded: for=6.6.6.6", "X-Real-IP: 6.6.6.6",
                 "X-Forwarded-Host: evil.test", "X-Forwarded-Proto: https"]
        url, _ = self.gateway("forwarding: { trusted_proxies: [ 10.0.0.0/8 ] }\n")
        code, _, body, _ = curl(url + "/f", spoof + ["Host: api.test"])
        self.assertEqual(code, 200)
        seen = json.loads(body)["headers"]
        self.assertEqual(seen["x-forwarded-for"], "127.0.0.1")
        self.assertEqual(seen["forwarded"], "for=127.0.0.1;host=api.test;proto=http")
        self.assertEqual(seen["x-real-ip"], "127.0.0.1")
        self.assertEqual(seen["x-forwarded-host"], "api.test")
        self.assertEqual(seen["x-forwarded-proto"], "http")

        url, _ = self.gateway("forwarding: { trusted_proxies: [ 127.0.0.0/8 ] }\n")
        code, _, body, _ = curl(url + "/f", spoof + ["Host: api.test"])
        self.assertEqual(code, 200)
        seen = json.loads(body)["headers"]
        self.assertEqual(seen["x-forwarded-for"], "6.6.6.6, 127.0.0.1")
        self.assertEqual(seen["forwarded"], "for=6.6.6.6, for=127.0.0.1;host=api.test;proto=http")
        self.assertEqual(seen["x-real-ip"], "6.6.6.6")
        self.assertEqual(seen["x-forwarded-host"], "evil.test")
        self.assertEqual(seen["x-forwarded-proto"], "https")

    def test_request_ids_traces_and_the_access_log(self):
        url, self.gateway_port = self.gateway("")
        parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        code, heads, body, _ = curl(url + "/trace?q=1", [f"traceparent: {parent}", "tracestate: congo=t61rcWkgMzE",
                                                         "X-Request-Id: forged"])
        self.assertEqual(code, 200)
        rid = heads["x-request-id"]
        self.assertRegex(rid, r"^[0-9a-f]{32}$")
        seen = json.loads(body)["headers"]
        self.assertEqual(seen["x-request-id"], rid)  # the client's own id was replaced
        version, trace, span, flags = seen["traceparent"].split("-")
        self.assertEqual((version, trace, flags), ("00", "4bf92f3577b34da6a3ce929d0e0e4736", "01"))
        self.assertRegex(span, r"^[0-9a-f]{16}$")
        self.assertNotEqual(span, "00f067aa0ba902b7")  # this hop's own span
        self.assertEqual(seen["tracestate"], "congo=t61rcWkgMzE")
        # one access line for the request, with its status, target and id
        prog = self.progs[-1]
        line = harness.wait_until(lambda: next((l for l in prog.output().splitlines() if rid in l and "access" in l), None),
                                  what="the access log line")
        self.assertIn("200", line)
        self.assertIn("/trace?q=1", line)
        # a failed request is logged with the status the client got, and answered with its id
        code, heads, _, _ = curl(url + "/die-early")
        self.assertEqual(code, 502)
        rid = heads["x-request-id"]
        line = harness.wait_until(lambda: next((l for l in prog.output().splitlines() if rid in l), None),
                                  what="the refused request's access line")
        self.assertIn(str(code), line)
        # a malformed head is logged with its 400; a kept connection closed between requests is not
        before = prog.output().count(" access ") + prog.output().count('"access"')
        got = raw_exchange(self.gateway_port, b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\nGET /bad HTTP/1.1\r\nHost x\r\n\r\n")
        self.assertIn(b" 400 ", got)
        lines = lambda: [l for l in prog.output().splitlines() if " access " in l or '"access"' in l][before:]
        harness.wait_until(lambda: len(lines()) >= 2, what="two access lines")
        self.assertIn("status=200", lines()[0])
        self.assertIn("status=400", lines()[1])
        self.assertEqual(len(lines()), 2)

    def test_cors_preflights_are_answered_and_origins_marked(self):
        url, _ = self.gateway('cors:\n  allow_origins: [ "https://app.example.com" ]\n'
                              "  allow_methods: [ GET, PUT ]\n  allow_headers: [ Content-Type ]\n")
        preflight = ["Origin: https://app.example.com", "Access-Control-Request-Method: PUT",
                     "Access-Control-Request-Headers: content-type"]
        code, heads, _, _ = curl(url + "/c", preflight, ["-X", "OPTIONS"])
        self.assertEqual(code, 204)  # answered by the gateway: the echo backend has no OPTIONS
        self.assertEqual(heads["access-control-allow-origin"], "https://app.example.com")
        self.assertEqual(heads["access-control-allow-methods"], "GET, PUT")
        self.assertEqual(heads["access-control-allow-headers"], "content-type")
        code, _, _, _ = curl(url + "/c", ["Origin: https://evil.example", "Access-Control-Request-Method: PUT"],
                             ["-X", "OPTIONS"])
        self.assertEqual(code, 403)
        code, heads, _, _ = curl(url + "/c", ["Origin: https://app.example.com"])
        self.assertEqual(code, 200)
        self.assertEqual(heads["access-control-allow-origin"], "https://app.example.com")
        self.assertIn("Origin", heads["vary"])
        code, heads, _, _ = curl(url + "/c", ["Origin: https://evil.example"])
        self.assertEqual(code, 200)
        self.assertNotIn("access-control-allow-origin", heads)

    def test_connection_list_cannot_remove_host(self):
        _, port = self.gateway("")
        got = raw_exchange(port, b"GET /h HTTP/1.1\r\nHost: api.test\r\nConnection: host, close, x-gone\r\n"
                                 b"X-Gone: 1\r\n\r\n")
        seen = echoed(got)["headers"]
        self.assertEqual(seen.get("host"), "api.test")
        self.assertNotIn("x-gone", seen)

    def test_allowed_trailers_are_forwarded(self):
        _, port = self.gateway("forwarding: { allow_trailers: [ X-Checksum ] }\n")
        got = raw_exchange(port, b"POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
                                 b"\r\n5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n")
        self.assertEqual(echoed(got)["trailers"], {"x-checksum": "abc"})

    def test_no_100_continue_for_http10_and_strict_chunk_sizes(self):
        _, port = self.gateway("")
        got = raw_exchange(port, b"POST /c HTTP/1.0\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n"
                                 b"\r\nhello")
        self.assertTrue(got.startswith(b"HTTP/1.1 200"), got[:200])  # no interim 100 first
        self.assertNotIn(b"100 Continue", got)
        self.assertEqual(json.loads(got.partition(b"\r\n\r\n")[2])["body_len"], 5)
        got = raw_exchange(port, b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 b"5 \r\nhello\r\n0\r\n\r\n")
        self.assertTrue(got.startswith(b"HTTP/1.1 400"), got[:200])

    def test_rate_limit_key_from_a_client_header_needs_a_trusted_proxy(self):
        def validate(extra):
            prog = harness.Program(BINARY, gateway_config(1, 2, [3], "require_auth: false\n" + extra), name="validate")
            return subprocess.run([BINARY, "validate", prog.config], capture_output=True, text=True, timeout=30)
        tiers = "  tiers: [ { name: default, limit: 5 } ]\n"
        p = validate("rate_limit:\n  key: [ ip, header:X-Client-Id ]\n" + tiers)
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stdout + p.stderr, r"config\.yaml:\d+:\d+: 'header:X-Client-Id' is chosen by the client")
        p = validate("rate_limit:\n  key: [ ip, header:X-Client-Id ]\n  trusted_headers: [ x-client-id ]\n" + tiers)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    @harness.need(harness.nginx_path(), "nginx not installed")
    def test_nginx_backend_large_file_and_keep_alive(self):
        root = tempfile.mkdtemp(prefix="rproxy-www-")
        data = os.urandom(2 * 1024 * 1024)
        with open(os.path.join(root, "big.bin"), "wb") as f:
            f.write(data)
        os.chmod(root, 0o755)  # nginx workers may run as another user
        os.chmod(os.path.join(root, "big.bin"), 0o644)
        ng = Nginx(root)
        try:
            url, _ = self.gateway("", backends=[ng.port])
            for _ in range(2):
                code, heads, body, _ = curl(url + "/big.bin")
                self.assertEqual(code, 200)
                self.assertEqual(hashlib.sha256(body).hexdigest(), hashlib.sha256(data).hexdigest())
            code, _, _, _ = curl(url + "/missing")
            self.assertEqual(code, 404)
            code, heads, body, _ = curl(url + "/big.bin", args=["-I"])
            self.assertEqual((code, heads.get("content-length")), (200, str(len(data))))
        finally:
            ng.close()


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
