"""Multipart upload and parallel ranged download against the real server.

Sizes are kept small by lowering the thresholds (5 MiB parts, the S3 minimum), so the same
code paths run as for multi-gigabyte files.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import pytest

import pos3lite
from pos3lite import _mirror
from pos3lite.errors import ChecksumMismatchError, S3Error, TransferError
from pos3lite.s3.client import GetResult, S3Client
from pos3lite.transfer import TransferConfig

from .conftest import get

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
SMALL_PARTS = TransferConfig(multipart_threshold=5 * MiB, part_size=5 * MiB)


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every mirror in the test uses 5 MiB thresholds and parts."""
    real_init = _mirror._Mirror.__init__

    def init(self: Any, *a: Any, **kw: Any) -> None:
        real_init(self, *a, **kw)
        self.transfer_config = SMALL_PARTS

    monkeypatch.setattr(_mirror._Mirror, "__init__", init)


def composite_etag(data: bytes, part: int) -> str:
    digests = b"".join(hashlib.md5(data[o : o + part]).digest() for o in range(0, len(data), part))
    return f"{hashlib.md5(digests).hexdigest()}-{-(-len(data) // part)}"


def no_temp_files(root: Path) -> bool:
    return not [p for p in root.rglob("*") if p.name.endswith(".pos3lite-tmp")]


def test_multipart_upload_round_trip(
    s3_env: Any, oracle: Any, bucket: str, tmp_path: Path, small_parts: None
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    data = os.urandom(17 * MiB + 123)
    (src / "big.bin").write_bytes(data)
    (src / "small.txt").write_bytes(b"small")
    with pos3lite.mirror(cache_root=tmp_path / "c", show_progress=False, max_workers=4):
        pos3lite.upload(f"s3://{bucket}/up", local=src, interval=None)
    head = oracle.head_object(Bucket=bucket, Key="up/big.bin")
    assert head["ETag"].strip('"') == composite_etag(data, 5 * MiB)  # 4 parts of 5 MiB
    assert get(oracle, bucket, "up/big.bin") == data
    assert get(oracle, bucket, "up/small.txt") == b"small"
    assert not oracle.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_a_failed_part_aborts_the_multipart_upload(
    s3_env: Any,
    oracle: Any,
    bucket: str,
    tmp_path: Path,
    small_parts: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(16 * MiB))
    sent: list[int] = []

    def failing_version_of(real: Any) -> Any:
        def failing(
            self: S3Client, bucket: str, key: str, uid: str, n: int, *a: Any, **kw: Any
        ) -> str:
            if n == 3:
                raise S3Error("InvalidPart", "injected", status=400, bucket=bucket, key=key)
            sent.append(n)
            return str(real(self, bucket, key, uid, n, *a, **kw))

        return failing

    # parts go out from memory (upload_part_bytes) or, over the memory budget, streamed
    for name in ("upload_part", "upload_part_bytes"):
        monkeypatch.setattr(S3Client, name, failing_version_of(getattr(S3Client, name)))
    with (
        pytest.raises(TransferError) as info,
        pos3lite.mirror(cache_root=tmp_path / "c", show_progress=False, max_workers=4),
    ):
        pos3lite.upload(f"s3://{bucket}/up", local=src, interval=None)
    assert any(isinstance(e, S3Error) and e.code == "InvalidPart" for e in info.value.failures)
    assert sent  # other parts went out before the abort
    assert not oracle.list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert "Contents" not in oracle.list_objects_v2(Bucket=bucket, Prefix="up/")


@pytest.mark.parametrize("multipart_source", [True, False], ids=["multipart-etag", "md5-etag"])
def test_ranged_download_verifies_and_lands_atomically(
    s3_env: Any,
    oracle: Any,
    bucket: str,
    tmp_path: Path,
    small_parts: None,
    multipart_source: bool,
) -> None:
    from boto3.s3.transfer import TransferConfig as BotoConfig

    data = os.urandom(13 * MiB + 7)
    src = tmp_path / "obj.bin"
    src.write_bytes(data)
    threshold = 5 * MiB if multipart_source else 64 * MiB
    oracle.upload_file(
        str(src),
        bucket,
        "big/obj.bin",
        Config=BotoConfig(multipart_threshold=threshold, multipart_chunksize=5 * MiB),
    )
    etag = oracle.head_object(Bucket=bucket, Key="big/obj.bin")["ETag"].strip('"')
    assert ("-" in etag) is multipart_source
    dest = tmp_path / "dest"
    with pos3lite.mirror(cache_root=tmp_path / "c", show_progress=False, max_workers=4):
        got = pos3lite.download(f"s3://{bucket}/big", local=dest)
        single = pos3lite.download(f"s3://{bucket}/big/obj.bin", local=tmp_path / "one.bin")
    assert (got / "obj.bin").read_bytes() == data
    assert single.read_bytes() == data
    assert no_temp_files(tmp_path)


def test_an_object_overwritten_mid_download_is_fetched_again_not_stitched(
    s3_env: Any,
    oracle: Any,
    bucket: str,
    tmp_path: Path,
    small_parts: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old = os.urandom(16 * MiB)
    new = os.urandom(16 * MiB)
    oracle.put_object(Bucket=bucket, Key="d/obj.bin", Body=old)
    real = S3Client.get_object
    ranges_seen: list[tuple[int, int]] = []
    lock = threading.Lock()
    overwritten = threading.Event()

    def spying(self: S3Client, *a: Any, **kw: Any) -> GetResult:
        result = real(self, *a, **kw)
        with lock:
            if kw.get("byte_range") is not None:
                ranges_seen.append(kw["byte_range"])
                if not overwritten.is_set():
                    # After the first range of the old version arrives, replace the object.
                    oracle.put_object(Bucket=bucket, Key="d/obj.bin", Body=new)
                    overwritten.set()
        return result

    monkeypatch.setattr(S3Client, "get_object", spying)
    dest = tmp_path / "dest"
    with pos3lite.mirror(cache_root=tmp_path / "c", show_progress=False, max_workers=2):
        pos3lite.download(f"s3://{bucket}/d", local=dest)
    assert overwritten.is_set()
    body = (dest / "obj.bin").read_bytes()
    assert body == new  # the new version, whole: never half old, half new
    assert len(ranges_seen) > 4  # the first attempt was abandoned and the object refetched
    assert no_temp_files(tmp_path)


def test_a_persistent_checksum_mismatch_fails_without_a_file_at_the_final_path(
    s3_env: Any,
    oracle: Any,
    bucket: str,
    tmp_path: Path,
    small_parts: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from boto3.s3.transfer import TransferConfig as BotoConfig

    src = tmp_path / "obj.bin"
    src.write_bytes(os.urandom(11 * MiB))
    oracle.upload_file(
        str(src),
        bucket,
        "m/obj.bin",
        Config=BotoConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB),
    )
    real = S3Client.get_object

    def corrupting(self: S3Client, *a: Any, **kw: Any) -> GetResult:
        result = real(self, *a, **kw)
        if kw.get("byte_range") is not None:
            return GetResult(result.size, result.etag, result.last_modified, "0" * 32)
        return result

    monkeypatch.setattr(S3Client, "get_object", corrupting)
    dest = tmp_path / "dest"
    with (
        pytest.raises(TransferError) as info,
        pos3lite.mirror(cache_root=tmp_path / "c", show_progress=False, max_workers=3),
    ):
        pos3lite.download(f"s3://{bucket}/m", local=dest)
    assert any(isinstance(e, ChecksumMismatchError) for e in info.value.failures)
    assert not (dest / "obj.bin").exists()
    assert no_temp_files(tmp_path)


def test_part_size_grows_to_stay_within_10000_parts() -> None:
    cfg = TransferConfig()
    assert cfg.part_size_for(100 * MiB) == 8 * MiB
    five_tib = 5 * 1024 * 1024 * MiB
    part = cfg.part_size_for(five_tib)
    assert -(-five_tib // part) <= 10_000 and part % MiB == 0
    assert cfg.part_size_for(80_000 * MiB) == 8 * MiB  # exactly 10,000 parts
    assert cfg.part_size_for(80_001 * MiB) == 9 * MiB
    with pytest.raises(ValueError, match="5 TiB"):
        cfg.part_size_for(five_tib + 1)
