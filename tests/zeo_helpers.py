"""Starting and stopping a real ZEO server for tests and benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from batos_lab.zeo import free_port


def wait_for_port(host: str, port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"no server on {host}:{port} after {timeout} s")


class ZEOServer:
    """A `batos serve-image` subprocess on a free loopback port, stopped by its PID."""

    def __init__(self, image: Path) -> None:
        self.port = free_port()
        self.url = f"zeo://127.0.0.1:{self.port}"
        self.log = image.with_name("zeo.log").open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "batos_lab.cli",
                "serve-image",
                "--image",
                str(image),
                "--port",
                str(self.port),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port("127.0.0.1", self.port)
        except TimeoutError:
            self.stop()
            raise

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()

    def __enter__(self) -> ZEOServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
