"""Compatibility tier: one scenario suite over several S3 implementations (issue 9).

Each server in ``tests.compat.servers.SERVERS`` is started once per session by the ``server``
fixture (on a free 127.0.0.1 port) and stopped at the end. ``POS3LITE_COMPAT_SERVERS`` (a
comma-separated list) narrows the set; a server whose executable is missing fails the tier
rather than skipping it, so CI cannot go green without it.

The tier runs only when ``POS3LITE_COMPAT=1`` (``.ci/run`` sets it, on the primary Python,
after installing the servers); the plain ``pytest`` run skips it, since the servers are not
in the ``test`` extra.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.compat.servers import SERVERS, Server

NAMES = [n.strip() for n in os.environ.get("POS3LITE_COMPAT_SERVERS", ",".join(SERVERS)).split(",")]


ENABLED = os.environ.get("POS3LITE_COMPAT") == "1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    off = pytest.mark.skip(reason="compatibility tier: run with POS3LITE_COMPAT=1 (.ci/run)")
    for item in items:
        if "tests/compat/" in str(item.fspath):
            item.add_marker(pytest.mark.compat)
            if not ENABLED:
                item.add_marker(off)


@pytest.fixture(scope="session", params=NAMES)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    srv = SERVERS[request.param]().start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(autouse=True)
def clean_profiles(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No profiles or AWS settings from the machine."""
    from pos3lite import profiles

    monkeypatch.setenv("POS3LITE_PROFILES_FILE", str(tmp_path / "no-profiles.toml"))
    monkeypatch.delenv("POS3_PROFILES_FILE", raising=False)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    profiles._reset_for_tests()
    yield
    profiles._reset_for_tests()


def profile_for(server: Server, **kw: Any) -> Any:
    from pos3lite import Profile

    if server.access_key is None:
        kw.setdefault("public", True)
    return Profile(
        local_name=server.name,
        endpoint=server.endpoint,
        region="us-east-1",
        access_key=None if kw.get("public") else server.access_key,
        secret_key=None if kw.get("public") else kw.pop("secret_key", server.secret_key),
        **{k: v for k, v in kw.items() if k != "secret_key"},
    )


def admin_client(server: Server) -> Any:
    """A pos3lite S3Client with the server's keys, for setting up buckets and reading back."""
    from pos3lite.auth.credentials import CredentialChain, StaticProvider
    from pos3lite.s3.client import S3Client
    from pos3lite.transport.urllib3 import Urllib3Transport

    creds = None
    if server.access_key is not None and server.secret_key is not None:
        creds = CredentialChain([StaticProvider(server.access_key, server.secret_key)])
    return S3Client(
        Urllib3Transport(), region="us-east-1", endpoint=server.endpoint, credentials=creds
    )


@pytest.fixture
def bucket(server: Server) -> str:
    """A fresh, empty bucket on ``server``."""
    name = f"c-{uuid.uuid4().hex[:16]}"
    if server.bucket_by_mkdir:
        (server.data / name).mkdir()
    else:
        client = admin_client(server)
        try:
            client.create_bucket(name)
        finally:
            client.close()
    return name


class Counter:
    """Counts the requests every Urllib3Transport sends, by (method, kind)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []

    def clear(self) -> None:
        self.requests.clear()

    def objects(self) -> list[tuple[str, str]]:
        """Requests that move object bytes or change objects (not listings or HEADs)."""
        return [
            (m, u)
            for m, u in self.requests
            if m in ("PUT", "POST", "DELETE") or (m == "GET" and "list-type=" not in u)
        ]


@pytest.fixture
def counter(monkeypatch: pytest.MonkeyPatch) -> Counter:
    from pos3lite.transport import urllib3 as transport

    seen = Counter()
    original = transport.Urllib3Transport.send

    def send(self: Any, request: Any) -> Any:
        seen.requests.append((request.method, request.url))
        return original(self, request)

    monkeypatch.setattr(transport.Urllib3Transport, "send", send)
    return seen
