"""Hostile keys through the whole download path.

SeaweedFS refuses or normalises keys with ``..``, ``\\`` and ``//``, so the integration tier
cannot produce them; real S3 stores them verbatim. This test serves such a listing through
MockTransport (the S3 client, engine, transfer and file system are all real) and checks that
nothing lands outside the destination and that no delete runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, quote_plus, urlsplit

import pytest

import pos3lite
from pos3lite import _mirror
from pos3lite.errors import TransferError, UnsafeKeyError
from pos3lite.s3.client import S3Client
from pos3lite.transport.base import MockTransport, Request, Response

KEYS = {
    "data/ok.txt": b"fine",
    "data/../../escape.txt": b"evil",
    "data/..": b"evil",
    "data/a\\b.txt": b"evil",
    "data//abs.txt": b"evil",
    "data/x//y.txt": b"evil",
    "data/nul\x00.txt": b"evil",
}


def listing() -> bytes:
    items = "".join(
        f"<Contents><Key>{quote_plus(k)}</Key><Size>{len(v)}</Size>"
        "<LastModified>2026-11-21T23:03:25.000Z</LastModified>"
        f"<ETag>&quot;e{i}&quot;</ETag></Contents>"
        for i, (k, v) in enumerate(sorted(KEYS.items(), key=lambda kv: kv[0].encode()))
    )
    return (
        "<ListBucketResult><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>"
        f"{items}</ListBucketResult>"
    ).encode()


def handler(r: Request) -> Response:
    parts = urlsplit(r.url)
    if r.method == "HEAD":
        return Response(404, {})
    if "list-type" in parse_qs(parts.query):
        return Response(200, {}, chunks=iter([listing()]))
    from urllib.parse import unquote

    key = unquote(parts.path.split("/", 2)[2])
    data = KEYS[key]
    return Response(
        200,
        {"content-length": str(len(data)), "last-modified": "Sat, 21 Nov 2026 23:03:25 GMT"},
        chunks=iter([data]),
    )


def test_hostile_keys_are_refused_and_nothing_escapes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = S3Client(MockTransport(handler), region="us-east-1", endpoint="http://s3.test")
    monkeypatch.setattr(_mirror._Mirror, "client", lambda self, profile: fake)
    dest = tmp_path / "a" / "b" / "dest"
    dest.mkdir(parents=True)
    (dest / "local-extra.txt").write_bytes(b"keep me")
    with (
        pytest.raises(TransferError) as info,
        pos3lite.mirror(cache_root=tmp_path / "cache", show_progress=False),
    ):
        pos3lite.download("s3://bkt/data", local=dest, delete=True)
    refused = {e.key for e in info.value.failures if isinstance(e, UnsafeKeyError)}
    assert refused == set(KEYS) - {"data/ok.txt"}
    assert (dest / "ok.txt").read_bytes() == b"fine"
    assert (dest / "local-extra.txt").read_bytes() == b"keep me"  # no delete after refusals
    written = sorted(
        str(Path(d, f).relative_to(tmp_path)) for d, _, fs in os.walk(tmp_path) for f in fs
    )
    assert written == ["a/b/dest/local-extra.txt", "a/b/dest/ok.txt"]
