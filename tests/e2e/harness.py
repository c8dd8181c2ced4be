"""Small helpers shared by the e2e tests: free ports, starting a built program on a config,
waiting for its ports, stopping it and checking it exited cleanly. Standard library only."""
import asyncio
import atexit
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


# Ports for the programs under test come from below the kernel's ephemeral range (so no client
# socket of any test can be holding one) and are reserved across processes: the e2e suites run
# in parallel (ctest -j), bind(0) hands the same fresh port to two of them, and rproxy listeners
# use SO_REUSEPORT, so two programs on one port would both bind and split the connections.
PORT_RANGE = (20000, 32000)
_RESERVED = os.path.join(tempfile.gettempdir(), "rproxy-e2e-ports")
_mine = []


def _release_ports():
    for d in _mine:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_release_ports)


def free_port(host="127.0.0.1"):
    """A port nothing listens on now and no other e2e process has been given (until exit)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    os.makedirs(_RESERVED, exist_ok=True)
    for _ in range(1000):
        port = random.randrange(*PORT_RANGE)
        mark = os.path.join(_RESERVED, str(port))
        with contextlib.suppress(OSError):
            if time.time() - os.stat(mark).st_mtime > 3600:  # left by a run that was killed
                shutil.rmtree(mark, ignore_errors=True)
        try:
            os.mkdir(mark)  # atomic: the reservation
        except FileExistsError:
            continue
        _mine.append(mark)
        with socket.socket(family, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue  # in use by something else: keep it reserved, try another
            return port
    raise RuntimeError("no free port in %d-%d" % PORT_RANGE)


def metrics(admin):
    """The admin listener's /metrics as {series (name and labels): value}."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def wait_port(port, host="127.0.0.1", timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            with socket.create_connection((host, port), timeout=0.5):
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def wait_until(cond, timeout=10.0, interval=0.05, what="the condition"):
    """Polls cond() until it returns a true value, which is returned; raises AssertionError
    after timeout seconds. A wait for a condition, never a sleep for a guessed time."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} did not hold within {timeout}s")
        time.sleep(interval)


async def async_wait_until(cond, timeout=10.0, interval=0.05, what="the condition"):
    """wait_until for a coroutine function cond (awaited on every poll)."""
    deadline = time.monotonic() + timeout
    while True:
        v = await cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} did not hold within {timeout}s")
        await asyncio.sleep(interval)


IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(available, why):
    """Decorates a test, or a TestCase class, that needs an optional tool or facility: skipped
    locally without it, but under CI=true it fails (CI must run every check, not skip it
    silently). On a class, its setUpClass fails, so none of its tests passes. Inside a test or a
    setUpClass, call require() instead: a decorator made and not applied does nothing."""
    import functools
    import unittest

    if available:
        return lambda f: f
    if not IN_CI:
        return unittest.skip(why)

    def fail(f):
        if isinstance(f, type):
            def setUpClass(cls):
                raise AssertionError(f"CI=true and {why}")
            f.setUpClass = classmethod(setUpClass)
            return f

        @functools.wraps(f)
        def failing(self, *a, **k):
            self.fail(f"CI=true and {why}")
        return failing
    return fail


def require(available, why):
    """need() for the body of a test or a setUpClass: without the tool it skips (the test, or
    the whole class) locally and fails under CI=true."""
    import unittest

    if available:
        return
    if IN_CI:
        raise AssertionError(f"CI=true and {why}")
    raise unittest.SkipTest(why)


def sanitized(binary):
    """Whether `binary` was built with AddressSanitizer (its runtime is linked in statically)."""
    with open(binary, "rb") as f:
        return b"AddressSanitizer" in f.read()


def nginx_path():
    """nginx on PATH, or in /usr/sbin where Debian installs it (not on a non-root PATH)."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")


def ipv6_loopback():
    """Whether ::1 can be bound."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class Program:
    """A built program started on a YAML config written to a temp file."""

    def __init__(self, binary, config_text, args=(), name="prog"):
        self.dir = tempfile.mkdtemp(prefix=f"rproxy-{name}-")
        self.config = os.path.join(self.dir, "config.yaml")
        self.log = os.path.join(self.dir, "log.txt")
        self.write_config(config_text)
        self.binary = binary
        self.args = list(args)
        self.proc = None

    def write_config(self, text):
        tmp = self.config + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config)

    def start(self, wait_ports=()):
        self.logf = open(self.log, "w")
        self.proc = subprocess.Popen([self.binary, *self.args, "run", "--config", self.config],
                                     stdout=self.logf, stderr=subprocess.STDOUT)
        for p in wait_ports:
            try:
                wait_port(p)
            except TimeoutError:
                self.dump()
                raise
        return self

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=15.0):
        """SIGTERM, then expect a clean exit (code 0) within timeout."""
        if self.proc is None or self.proc.poll() is not None:
            self.logf.close() if self.proc else None
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
            self.logf.close()
            return rc
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.dump()
            raise

    def output(self):
        if not self.logf.closed:
            self.logf.flush()
        with open(self.log) as f:
            return f.read()

    def dump(self):
        sys.stderr.write(f"---- {self.binary} log ----\n{self.output()}\n---- end ----\n")


async def read_all(reader, timeout=10.0):
    chunks = []
    while True:
        b = await asyncio.wait_for(reader.read(65536), timeout)
        if not b:
            return b"".join(chunks)
        chunks.append(b)
