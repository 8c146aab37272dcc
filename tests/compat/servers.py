"""Start and stop the S3 implementations of the compatibility tier, each on a free 127.0.0.1
port, from the executables their PyPI packages install beside this interpreter.

Every server is described by a :class:`Server`: how to start it, its credentials, and what it
can do (``writable``, ``anonymous``), so one scenario suite runs against all of them. Quirks
are documented in ``docs/compatibility.md``; a scenario that a server cannot pass is skipped
or xfailed there by name, with the quirk as the reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.seaweedfs import SeaweedFS

ACCESS_KEY = "AKIDCOMPATTEST"
SECRET_KEY = "compat-secret-key/123"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def binary(name: str) -> str:
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name!r} not found: install the compat extra (see .ci/run)")
    return found


@dataclass
class Server:
    """One running S3 implementation.

    Attributes:
        name: the parameter id (``seaweedfs``, ``rclone``, ...).
        version: the version the quirks in docs/compatibility.md were recorded against.
        endpoint: ``http://127.0.0.1:PORT`` once started.
        access_key, secret_key: the credentials it checks (``None``: it checks none).
        writable: False for read-only servers (hadro): scenarios then seed through
            ``seed`` (files on disk) instead of uploads.
        anonymous: what an unsigned request gets: ``"denied"`` (an S3 error),
            ``"list-only"`` (listings answered, object reads 403: moto without public-read
            ACLs) or ``"n/a"`` (the server checks no credentials at all: allowed).
        data: the folder a folder-backed server serves (buckets are sub-folders).
    """

    name: str
    version: str
    argv: Callable[[int, Path], list[str]]
    access_key: str | None = ACCESS_KEY
    secret_key: str | None = SECRET_KEY
    writable: bool = True
    anonymous: str = "denied"
    env: dict[str, str] = field(default_factory=dict)
    bucket_by_mkdir: bool = False
    endpoint: str = ""
    data: Path = Path()
    _proc: subprocess.Popen[bytes] | None = None
    _tmp: tempfile.TemporaryDirectory[str] | None = None
    _weed: SeaweedFS | None = None

    def start(self, timeout: float = 60.0) -> Server:
        self._tmp = tempfile.TemporaryDirectory(prefix=f"pos3lite-compat-{self.name}-")
        root = Path(self._tmp.name)
        self.data = root / "data"
        self.data.mkdir()
        if self.name == "seaweedfs":
            self._weed = SeaweedFS(workdir=root).start()
            self.endpoint = self._weed.endpoint
            self.access_key, self.secret_key = self._weed.access_key, self._weed.secret_key
            return self
        log = open(root / "server.log", "wb")  # noqa: SIM115 - closed with the process
        for _ in range(3):
            port = free_port()
            self._proc = subprocess.Popen(
                self.argv(port, self.data),
                cwd=root,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
            )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self._proc.poll() is None:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).close()
                    ready = True
                except urllib.error.HTTPError:
                    ready = True  # any HTTP answer: it is listening
                except OSError:
                    ready = False
                if ready:
                    self.endpoint = f"http://127.0.0.1:{port}"
                    log.close()
                    return self
                time.sleep(0.2)
            self.stop_process()
        log.close()
        tail = (root / "server.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{self.name} did not start; log tail:\n{tail}")

    def stop_process(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def stop(self) -> None:
        if self._weed is not None:
            self._weed.stop()
            self._weed = None
        self.stop_process()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _seaweedfs(port: int, data: Path) -> list[str]:
    raise AssertionError("started through tests.support.seaweedfs")


SERVERS: dict[str, Callable[[], Server]] = {
    "seaweedfs": lambda: Server("seaweedfs", "4.48", _seaweedfs),
    "rclone": lambda: Server(
        "rclone",
        "1.75.2",
        lambda port, data: [
            binary("rclone"),
            "serve",
            "s3",
            "--addr",
            f"127.0.0.1:{port}",
            "--auth-key",
            f"{ACCESS_KEY},{SECRET_KEY}",
            "--config",
            "/dev/null",
            str(data),
        ],
    ),
    "moto": lambda: Server(
        "moto",
        "5.2.6",
        lambda port, data: [binary("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        anonymous="list-only",
    ),
    "localbucket": lambda: Server(
        "localbucket",
        "1.2.1",
        lambda port, data: [
            binary("localbucket"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            str(data),
        ],
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        anonymous="n/a",
    ),
    "hadro": lambda: Server(
        "hadro",
        "0.7.1",
        lambda port, data: [
            binary("hadro"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--region",
            "us-east-1",
            "--access-key",
            ACCESS_KEY,
            "--secret-key",
            SECRET_KEY,
            "--log-level",
            "warning",
            str(data),
        ],
        writable=False,
        bucket_by_mkdir=True,
    ),
}
