"""A redis-server of the test's own, on a free loopback port (harness.free_port), for the e2e
tests of instances sharing state (cluster/). No test touches a Redis it did not start.

    from redis_fixture import RedisServer, redis_available
    with RedisServer() as redis:            # or RedisServer(password="s3cret", user="proxy")
        redis.port                          # for the apps' `redis: {address: 127.0.0.1:PORT}`
        redis.command("SET", "k", "v")      # a RESP command on a connection of its own
        redis.kill(); redis.restart()       # gone, back on the same port
        redis.pause(); redis.resume()       # SIGSTOP / SIGCONT: a Redis that does not answer

    with RedisServer(tls=True) as redis:    # also a TLS port, with a test CA made here
        redis.tls_address                   # 127.0.0.1:TLS_PORT, for `redis: {address: ..., tls: ...}`
        redis.cert("ca.pem")                # the CA that signed the server's (and the client's) certificate;
                                            # other.pem: a CA that signed nothing; client.pem/.key
        redis.tls_config()                  # the `tls:` block that reaches it (SNI redis.test)

TLS: Redis' default `tls-auth-clients yes` (pass tls_auth_clients="no" to drop it), so the
client needs a certificate; the plain port stays open for the test's own checks (command()).
The certificates are made by the openssl CLI (a missing openssl fails the test).

Standard library only: commands are RESP written and read here."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import harness

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def redis_available():
    return os.access(REDIS_SERVER, os.X_OK)


class RedisError(Exception):
    pass


def _openssl(args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _make_certs():
    """A test CA (ca), a CA that signed nothing here (other), the server's leaf (redis: redis.test and
    127.0.0.1) and a client's leaf (client), in a new temporary directory."""
    d = tempfile.mkdtemp(prefix="rproxy-redis-certs-")
    for ca in ("ca", "other"):
        _openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                  "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-subj", f"/CN={ca}",
                  "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)
    for leaf, ext in (("redis", "subjectAltName=DNS:redis.test,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
                      ("client", "extendedKeyUsage=clientAuth\n")):
        _openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                  "-keyout", f"{leaf}.key", "-out", f"{leaf}.csr", "-subj", f"/CN={leaf}"], d)
        with open(os.path.join(d, f"{leaf}.ext"), "w") as f:
            f.write("basicConstraints=CA:FALSE\n" + ext)
        _openssl(["x509", "-req", "-in", f"{leaf}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                  "-days", "2", "-out", f"{leaf}.pem", "-extfile", f"{leaf}.ext"], d)
    return d


def _read_reply(f):
    line = f.readline()
    if not line:
        raise ConnectionError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RedisError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2].decode(errors="replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(f) for _ in range(n)]
    raise RedisError(f"unexpected reply {line!r}")


def _encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class RedisServer:
    def __init__(self, password=None, user=None, user_password=None, extra=(), tls=False, tls_auth_clients="yes"):
        """password: requirepass (the default user); user/user_password: an ACL user made at start;
        tls: a TLS port too (tls_port), its certificates in cert_dir."""
        self.port = harness.free_port()
        self.tls_port = harness.free_port() if tls else None
        self.cert_dir = _make_certs() if tls else None
        self.tls_auth_clients = tls_auth_clients
        self.password = password
        self.user = user
        self.user_password = user_password
        self.extra = list(extra)
        self.proc = None
        self._start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()
        if self.cert_dir:
            shutil.rmtree(self.cert_dir, ignore_errors=True)

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    @property
    def tls_address(self):
        return f"127.0.0.1:{self.tls_port}"

    def cert(self, name):
        return os.path.join(self.cert_dir, name)

    def tls_config(self, ca="ca.pem", sni="redis.test"):
        """The apps' `redis: tls:` block for this server (with the client certificate)."""
        return {"ca": self.cert(ca), "sni": sni, "cert": self.cert("client.pem"), "key": self.cert("client.key")}

    def _start(self):
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning", "--logfile", ""]
        if self.password:
            args += ["--requirepass", self.password]
        if self.user:
            args += ["--user", self.user, "on", ">" + (self.user_password or ""), "~*", "&*", "+@all"]
        if self.tls_port:
            args += ["--tls-port", str(self.tls_port), "--tls-cert-file", self.cert("redis.pem"),
                     "--tls-key-file", self.cert("redis.key"), "--tls-ca-cert-file", self.cert("ca.pem"),
                     "--tls-auth-clients", self.tls_auth_clients]
        self.proc = subprocess.Popen(args + self.extra, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        harness.wait_until(self._answers, timeout=10, what=f"redis-server on {self.port} answering")

    def _answers(self):
        try:
            return self.command("PING") == "PONG"
        except (OSError, RedisError):
            return False

    def command(self, *args, timeout=2.0):
        """One command on a fresh connection (AUTH first when the server has a password)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            f = s.makefile("rb")
            if self.password:
                s.sendall(_encode(["AUTH", self.password]))
                _read_reply(f)
            s.sendall(_encode(args))
            return _read_reply(f)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(timeout=10)

    def restart(self):
        self.kill()
        self._start()

    def pause(self):
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)
