"""The same scenarios on every S3 implementation of the compatibility tier (issue 9).

A tree with odd key characters, an empty file and a multipart file goes up and comes back
byte for byte; re-runs transfer nothing (requests counted); same-size edits are seen both
ways; deletes work both ways; ls, plans, more than 1000 objects, missing key and bucket,
wrong secret and anonymous access behave. Read-only servers (hadro) are seeded on disk and
run the read scenarios. Skips name the server's documented quirk (docs/compatibility.md).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

import pos3lite
from pos3lite.errors import (
    AccessDeniedError,
    NotFoundError,
    RemoteNotFoundError,
    S3Error,
    TransferError,
)
from tests.compat.conftest import Counter, admin_client, profile_for
from tests.compat.servers import Server

MiB = 1024 * 1024

# Spaces, unicode, and each of + % ~ = & ! ' ( ) ; , @ $ # [ ] ^ *
ODD = [
    "with space.txt",
    "caf\u00e9 \u65e5\u672c.txt",
    "emoji \U0001f600.bin",
    "plus+sign.txt",
    "100%20off.txt",
    "tilde~eq=amp&bang!.txt",
    "quote'paren(1);comma,at@dollar$.txt",
    "hash#brackets[1]caret^star*.txt",
    "sub dir/n\u00e9sted+%.txt",
]


def tree(root: Path) -> dict[str, bytes]:
    files = {name: f"content of {name}\n".encode() for name in ODD}
    files["empty.txt"] = b""
    files["big/multipart.bin"] = (b"0123456789abcdef" * (MiB // 16)) * 9  # 9 MiB: 2 parts
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def read_tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def mirror(tmp_path: Path, server: Server, **kw: Any) -> Any:
    return pos3lite.mirror(
        cache_root=tmp_path / "cache",
        show_progress=False,
        default_profile=profile_for(server, **kw),
        max_workers=4,
    )


def seed(server: Server, bucket: str, tmp_path: Path) -> dict[str, bytes]:
    """Put the scenario tree under ``bucket/t/``: uploaded, or on disk for read-only ones."""
    if not server.writable:
        return tree(server.data / bucket / "t")
    src = tmp_path / "src"
    files = tree(src)
    with mirror(tmp_path, server):
        pos3lite.upload(f"s3://{bucket}/t", local=src)
    return files


def test_round_trip_is_byte_for_byte_and_reruns_transfer_nothing(
    server: Server, bucket: str, tmp_path: Path, counter: Counter
) -> None:
    files = seed(server, bucket, tmp_path)
    out = tmp_path / "out"
    with mirror(tmp_path, server):
        pos3lite.download(f"s3://{bucket}/t", local=out)
    assert read_tree(out) == files

    counter.clear()
    with mirror(tmp_path, server):
        pos3lite.download(f"s3://{bucket}/t", local=out)
    assert counter.objects() == [], "a no-op re-download fetched or changed objects"
    assert counter.requests, "the re-download listed nothing"

    if server.writable:
        counter.clear()
        with mirror(tmp_path, server):
            pos3lite.upload(f"s3://{bucket}/t", local=tmp_path / "src")
        assert counter.objects() == [], "a no-op re-upload sent objects"


def test_same_size_edits_are_seen_both_ways(server: Server, bucket: str, tmp_path: Path) -> None:
    if not server.writable:
        pytest.skip(f"{server.name} is read-only")
    seed(server, bucket, tmp_path)
    src = tmp_path / "src"
    target = src / "plus+sign.txt"
    before = target.read_bytes()
    target.write_bytes(before.upper())  # same size, new bytes, newer mtime
    later = time.time() + 60
    os.utime(target, (later, later))
    with mirror(tmp_path, server):
        pos3lite.upload(f"s3://{bucket}/t", local=src)
    out = tmp_path / "out"
    with mirror(tmp_path, server):
        pos3lite.download(f"s3://{bucket}/t", local=out)
    assert (out / "plus+sign.txt").read_bytes() == before.upper()

    time.sleep(1.1)  # LastModified has one-second resolution
    client = admin_client(server)
    try:
        client.put_object(bucket, "t/plus+sign.txt", before.lower())
    finally:
        client.close()
    with mirror(tmp_path, server):
        pos3lite.download(f"s3://{bucket}/t", local=out)
    assert (out / "plus+sign.txt").read_bytes() == before.lower()


def test_deletes_both_ways(server: Server, bucket: str, tmp_path: Path) -> None:
    if not server.writable:
        pytest.skip(f"{server.name} is read-only")
    seed(server, bucket, tmp_path)
    src = tmp_path / "src"
    (src / "tilde~eq=amp&bang!.txt").unlink()
    with mirror(tmp_path, server):
        pos3lite.upload(f"s3://{bucket}/t", local=src, delete=True)
    with mirror(tmp_path, server):
        listed = pos3lite.ls(f"s3://{bucket}/t", recursive=True)
    assert f"s3://{bucket}/t/tilde~eq=amp&bang!.txt" not in listed
    assert f"s3://{bucket}/t/plus+sign.txt" in listed

    out = tmp_path / "out"
    with mirror(tmp_path, server):
        pos3lite.download(f"s3://{bucket}/t", local=out)
    client = admin_client(server)
    try:
        assert client.delete_objects(bucket, ["t/100%20off.txt", "t/with space.txt"]) == []
    finally:
        client.close()
    with mirror(tmp_path, server):
        pos3lite.download(f"s3://{bucket}/t", local=out, delete=True)
    assert not (out / "100%20off.txt").exists() and not (out / "with space.txt").exists()
    assert (out / "plus+sign.txt").exists()


def test_ls_recursive_and_not_and_plans(server: Server, bucket: str, tmp_path: Path) -> None:
    files = seed(server, bucket, tmp_path)
    with mirror(tmp_path, server):
        deep = pos3lite.ls(f"s3://{bucket}/t", recursive=True)
        shallow = pos3lite.ls(f"s3://{bucket}/t/")
        plan = pos3lite.plan_download(f"s3://{bucket}/t", local=tmp_path / "empty")
    assert sorted(deep) == sorted(f"s3://{bucket}/t/{k}" for k in files)
    top = {f"s3://{bucket}/t/{k.split('/')[0]}" + ("/" if "/" in k else "") for k in files}
    assert sorted(shallow) == sorted(top)
    assert sorted(remote for remote, _ in plan.to_copy) == sorted(deep)
    if server.writable:
        with mirror(tmp_path, server):
            up = pos3lite.plan_upload(f"s3://{bucket}/t", local=tmp_path / "src")
        assert up.to_copy == [] and up.to_delete == []


def test_more_than_1000_objects(server: Server, bucket: str, tmp_path: Path) -> None:
    n = 1005
    root = (server.data / bucket / "many") if not server.writable else tmp_path / "many"
    root.mkdir(parents=True)
    for i in range(n):
        (root / f"f{i:05d}").write_bytes(b"x")
    if server.writable:
        with pos3lite.mirror(
            cache_root=tmp_path / "cache",
            show_progress=False,
            default_profile=profile_for(server),
            max_workers=12,
        ):
            pos3lite.upload(f"s3://{bucket}/many", local=root)
    with mirror(tmp_path, server):
        listed = pos3lite.ls(f"s3://{bucket}/many", recursive=True)
        out = pos3lite.download(f"s3://{bucket}/many", local=tmp_path / "back")
    assert len(listed) == n
    assert len(os.listdir(out)) == n


def test_missing_key_and_bucket(server: Server, bucket: str, tmp_path: Path) -> None:
    with mirror(tmp_path, server), pytest.raises(RemoteNotFoundError):
        pos3lite.download(f"s3://{bucket}/no/such/key.txt", local=tmp_path / "x")
    with mirror(tmp_path, server), pytest.raises(NotFoundError) as info:
        pos3lite.download("s3://no-such-bucket-c0mpat/key.txt", local=tmp_path / "y")
    assert info.value.code == "NoSuchBucket"
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_wrong_secret_is_access_denied_with_its_code(
    server: Server, bucket: str, tmp_path: Path
) -> None:
    if server.name in ("moto", "localbucket"):
        pytest.skip(f"{server.name} checks no signatures (docs/compatibility.md)")
    seed(server, bucket, tmp_path)
    with (
        mirror(tmp_path, server, secret_key="wrong-secret"),
        pytest.raises(AccessDeniedError) as info,
    ):
        pos3lite.download(f"s3://{bucket}/t", local=tmp_path / "out")
    assert info.value.code == "SignatureDoesNotMatch"
    # One object: the HEAD probe's 403 has no body; the listing fallback names the code.
    with (
        mirror(tmp_path, server, secret_key="wrong-secret"),
        pytest.raises(AccessDeniedError) as one,
    ):
        pos3lite.download(f"s3://{bucket}/t/plus+sign.txt", local=tmp_path / "one")
    assert one.value.code == "SignatureDoesNotMatch"
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_anonymous_profile(server: Server, bucket: str, tmp_path: Path) -> None:
    files = seed(server, bucket, tmp_path)
    with mirror(tmp_path, server, public=True):
        if server.anonymous == "denied":
            # rclone answers 400 UnsupportedAlgorithm; SeaweedFS and hadro 403.
            with pytest.raises(S3Error):
                pos3lite.download(f"s3://{bucket}/t", local=tmp_path / "anon")
            return
        if server.anonymous == "list-only":
            # moto: anonymous GET/HEAD are 403 unless the object is public-read.
            listed = pos3lite.ls(f"s3://{bucket}/t", recursive=True)
            assert sorted(listed) == sorted(f"s3://{bucket}/t/{k}" for k in files)
            with pytest.raises(TransferError) as info:
                pos3lite.download(f"s3://{bucket}/t", local=tmp_path / "anon")
            assert all(isinstance(e, AccessDeniedError) for e in info.value.failures)
            return
        out = pos3lite.download(f"s3://{bucket}/t", local=tmp_path / "anon")
    assert read_tree(out) == files
