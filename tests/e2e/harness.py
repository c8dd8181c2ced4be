"""Small helpers shared by the e2e tests: free ports, starting a built program on a config,
waiting for its ports, stopping it and checking it exited cleanly. Standard library only."""
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time


def free_port(host="127.0.0.1"):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(port, host="127.0.0.1", timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            with socket.create_connection((host, port), timeout=0.5):
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


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
