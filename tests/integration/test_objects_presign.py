"""Presigned URLs used with plain urllib against SeaweedFS (signatures checked), and the
conditional-write probe on a server that enforces conditional writes."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from pos3lite import Client
from tests.integration.conftest import get, put

pytestmark = pytest.mark.integration


@pytest.fixture
def client(profile: Any) -> Iterator[Client]:
    with Client(profile) as c:
        yield c


def fetch(url: str, *, method: str = "GET", data: bytes | None = None, **headers: str) -> Any:
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    return urllib.request.urlopen(request, timeout=10)


def test_presigned_get_with_urllib(client: Client, oracle: Any, bucket: str) -> None:
    put(oracle, bucket, "dir/shared file.txt", b"shared bytes")
    url = client.presign(f"s3://{bucket}/dir/shared file.txt", expires=60)
    with fetch(url) as resp:
        assert resp.read() == b"shared bytes"
    # a tampered signature is refused by the server
    with pytest.raises(urllib.error.HTTPError) as caught:
        fetch(url[:-4] + ("0000" if not url.endswith("0000") else "1111"))
    assert caught.value.code == 403


def test_presigned_get_with_response_overrides(client: Client, oracle: Any, bucket: str) -> None:
    put(oracle, bucket, "report", b"a,b\n")
    url = client.presign(
        f"s3://{bucket}/report",
        response_headers={
            "content-disposition": "attachment; filename=report.csv",
            "content-type": "text/csv",
        },
    )
    with fetch(url) as resp:
        assert resp.read() == b"a,b\n"
        assert resp.headers["Content-Disposition"] == "attachment; filename=report.csv"
        assert resp.headers["Content-Type"] == "text/csv"


def test_presigned_put_with_urllib(client: Client, oracle: Any, bucket: str) -> None:
    url = client.presign(
        f"s3://{bucket}/upload.csv", method="PUT", expires=60, content_type="text/csv"
    )
    with fetch(url, method="PUT", data=b"x,y\n", **{"Content-Type": "text/csv"}) as resp:
        assert resp.status == 200
    assert get(oracle, bucket, "upload.csv") == b"x,y\n"
    assert oracle.head_object(Bucket=bucket, Key="upload.csv")["ContentType"] == "text/csv"


def test_presigned_url_expires(client: Client, oracle: Any, bucket: str) -> None:
    put(oracle, bucket, "soon", b"gone soon")
    url = client.presign(f"s3://{bucket}/soon", expires=1)
    with fetch(url) as resp:
        assert resp.read() == b"gone soon"
    time.sleep(2.5)
    with pytest.raises(urllib.error.HTTPError) as caught:
        fetch(url)
    assert caught.value.code == 403


def test_seaweedfs_enforces_conditional_writes_and_the_probe_cleans_up(
    client: Client, oracle: Any, bucket: str
) -> None:
    assert client.check_conditional_writes(f"s3://{bucket}/locks/") is True
    assert oracle.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
