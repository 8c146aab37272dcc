"""Integration: pos3lite.upload against a real S3 server (SeaweedFS), boto3 as the oracle.

Covers the final sync on exit and its exit policy, byte-for-byte readback, directory
markers, deletes and their safety rules, the background thread, change detection, symlinks,
excludes and the upload rate limit.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import pos3lite
from pos3lite import Pos3liteError

from .conftest import ODD_NAMES, get, keys, open_mirror, put

pytestmark = pytest.mark.integration


def _write(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        p = root.joinpath(*rel.split("/"))
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def _remote(oracle: Any, bucket: str, prefix: str) -> dict[str, bytes]:
    """Every object under ``prefix`` as {key relative to prefix: bytes}."""
    return {k[len(prefix) :]: get(oracle, bucket, k) for k in keys(oracle, bucket, prefix)}


# ---------------------------------------------------------------------------- basics


def test_upload_on_exit_byte_for_byte(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    files = {name: f"body of {name}".encode() for name in ODD_NAMES}
    files["nested/deeper/leaf.txt"] = b"leaf"
    files["zero.bin"] = b""
    files["big.bin"] = os.urandom(3 * 1024 * 1024 + 7)
    _write(src, files)
    with open_mirror(tmp_path, profile, max_workers=4):
        path = pos3lite.upload(f"s3://{bucket}/out", local=src, interval=None)
        assert path == src.resolve()
        assert keys(oracle, bucket) == []  # nothing is sent at registration
    assert _remote(oracle, bucket, "out/") == files


def test_upload_local_none_creates_cache_folder(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    with open_mirror(tmp_path, profile):
        path = pos3lite.upload(f"s3://{bucket}/results", interval=None)
        assert path == (tmp_path / "cache" / "test" / bucket / "results").resolve()
        assert path.is_dir()
        (path / "r.txt").write_bytes(b"result")
    assert _remote(oracle, bucket, "results/") == {"r.txt": b"result"}


def test_empty_dirs_become_markers_not_root(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    _write(src, {"a.txt": b"a", "full/b.txt": b"b"})
    (src / "empty").mkdir()
    (src / "full" / "empty2").mkdir()
    with open_mirror(tmp_path, profile):
        pos3lite.upload(f"s3://{bucket}/out", local=src, interval=None)
    assert keys(oracle, bucket) == [
        "out/a.txt",
        "out/empty/",
        "out/full/b.txt",
        "out/full/empty2/",
    ]


def test_upload_to_bucket_root_has_no_slash_key(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    """pos3 bug C.13: an upload to s3://bkt created an object literally named "/"."""
    src = tmp_path / "src"
    _write(src, {"top.txt": b"t", "d/x.txt": b"x"})
    (src / "hollow").mkdir()
    with open_mirror(tmp_path, profile):
        pos3lite.upload(f"s3://{bucket}", local=src, interval=None)
    got = keys(oracle, bucket)
    assert "/" not in got and not any(k.startswith("/") for k in got)
    assert got == ["d/x.txt", "hollow/", "top.txt"]


# ---------------------------------------------------------------------------- deletes


def test_delete_true_removes_remote_extras(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    put(oracle, bucket, "out/old.txt", b"old")
    put(oracle, bucket, "out/gone/deep.txt", b"deep")
    put(oracle, bucket, "outside.txt", b"not under the prefix")
    put(oracle, bucket, "out2/x.txt", b"sibling prefix")
    src = tmp_path / "src"
    _write(src, {"new.txt": b"new"})
    with open_mirror(tmp_path, profile):
        pos3lite.upload(f"s3://{bucket}/out", local=src, interval=None, delete=True)
    assert keys(oracle, bucket) == ["out/new.txt", "out2/x.txt", "outside.txt"]


def test_delete_false_keeps_remote_extras(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    put(oracle, bucket, "out/old.txt", b"old")
    src = tmp_path / "src"
    _write(src, {"new.txt": b"new"})
    with open_mirror(tmp_path, profile):
        pos3lite.upload(f"s3://{bucket}/out", local=src, interval=None, delete=False)
    assert _remote(oracle, bucket, "out/") == {"old.txt": b"old", "new.txt": b"new"}


def test_empty_local_folder_deletes_nothing(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    """Safety rule: an empty source never empties the destination (pos3 wiped it, C.2)."""
    put(oracle, bucket, "out/a.txt", b"a")
    put(oracle, bucket, "out/sub/b.txt", b"b")
    src = tmp_path / "src"
    src.mkdir()
    with open_mirror(tmp_path, profile):
        pos3lite.upload(f"s3://{bucket}/out", local=src, interval=None, delete=True)
    assert _remote(oracle, bucket, "out/") == {"a.txt": b"a", "sub/b.txt": b"b"}


def test_missing_local_folder_uploads_nothing_quietly(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """pos3: a registration whose folder was never written uploads nothing, and deletes
    nothing remotely (issue 8)."""
    put(oracle, bucket, "out/a.txt", b"a")
    missing = tmp_path / "typo"
    with caplog.at_level(logging.WARNING), open_mirror(tmp_path, profile):
        pos3lite.upload(f"s3://{bucket}/out", local=missing, interval=None)
    assert not missing.exists()
    assert keys(oracle, bucket) == ["out/a.txt"]
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_excluded_remote_files_are_not_deleted(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    """pos3 bug C.4: upload with exclude=["logs"] and delete=True deleted remote logs."""
    put(oracle, bucket, "out/logs/a.log", b"remote log")
    put(oracle, bucket, "out/x/logs/b.log", b"deep remote log")
    put(oracle, bucket, "out/stale.txt", b"stale")
    src = tmp_path / "src"
    _write(src, {"keep.txt": b"k", "logs/local.log": b"never uploaded", "trace.log": b"t"})
    with open_mirror(tmp_path, profile):
        pos3lite.upload(
            f"s3://{bucket}/out", local=src, interval=None, exclude=["logs", "**/*.log"]
        )
    assert _remote(oracle, bucket, "out/") == {
        "keep.txt": b"k",
        "logs/a.log": b"remote log",
        "x/logs/b.log": b"deep remote log",
    }


# ---------------------------------------------------------------------------- exit policy


def _two_registrations(bucket: str, tmp_path: Path) -> None:
    for name, on_error in (("plain", False), ("onerr", True)):
        src = tmp_path / name
        _write(src, {f"{name}.txt": name.encode()})
        pos3lite.upload(f"s3://{bucket}/{name}", local=src, interval=None, sync_on_error=on_error)


@pytest.mark.parametrize(
    "exc",
    [RuntimeError("boom"), KeyboardInterrupt(), SystemExit(1), SystemExit("fatal message")],
    ids=["exception", "keyboard-interrupt", "sys-exit-1", "sys-exit-message"],
)
def test_exit_policy_row_exception_vs_interrupts(
    oracle: Any,
    bucket: str,
    profile: Any,
    tmp_path: Path,
    exc: BaseException,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Exit policy (mirror/policy.py, pos3's): KeyboardInterrupt and any SystemExit are clean
    exits, every registration uploads; only an Exception skips sync_on_error=False ones, each
    named in a WARNING."""
    with (
        caplog.at_level(logging.WARNING),
        pytest.raises(type(exc)) as info,
        open_mirror(tmp_path, profile),
    ):
        _two_registrations(bucket, tmp_path)
        raise exc
    assert info.value is exc  # the body's exception propagates unchanged
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if isinstance(exc, Exception):
        assert keys(oracle, bucket) == ["onerr/onerr.txt"]
        assert [m for m in warned if "not uploading" in m] == [
            f"not uploading s3://{bucket}/plain: the mirror exited with RuntimeError and the "
            "registration has sync_on_error=False"
        ]
    else:
        assert keys(oracle, bucket) == ["onerr/onerr.txt", "plain/plain.txt"]
        assert not [m for m in warned if "not uploading" in m]
    # Local side unchanged: both folders hold exactly what was written.
    assert sorted(p.name for p in (tmp_path / "plain").iterdir()) == ["plain.txt"]


@pytest.mark.parametrize("code", [0, None])
def test_sys_exit_zero_is_a_clean_exit(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path, code: int | None
) -> None:
    with pytest.raises(SystemExit), open_mirror(tmp_path, profile):
        _two_registrations(bucket, tmp_path)
        sys.exit(code)
    assert keys(oracle, bucket) == ["onerr/onerr.txt", "plain/plain.txt"]


def test_error_exit_does_not_mask_body_exception(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    """A failing sync_on_error upload on an error exit is logged; the body's error wins."""
    with pytest.raises(ValueError, match="body"), open_mirror(tmp_path, profile):
        pos3lite.upload(
            f"s3://{bucket}/out", local=tmp_path / "missing", interval=None, sync_on_error=True
        )
        raise ValueError("body")
    assert keys(oracle, bucket) == []


# ---------------------------------------------------------------------------- background


def test_background_thread_uploads_while_open(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    _write(src, {"first.txt": b"1"})
    with open_mirror(tmp_path, profile):
        pos3lite.upload(f"s3://{bucket}/bg", local=src, interval=1)
        seen: list[str] = []
        for _ in range(60):  # a wait of up to ~15 s, not a timing assertion
            seen = keys(oracle, bucket)
            if seen:
                break
            time.sleep(0.25)
        assert seen == ["bg/first.txt"]
        _write(src, {"second.txt": b"2"})
        for _ in range(60):
            seen = keys(oracle, bucket)
            if "bg/second.txt" in seen:
                break
            time.sleep(0.25)
        assert seen == ["bg/first.txt", "bg/second.txt"]
    assert _remote(oracle, bucket, "bg/") == {"first.txt": b"1", "second.txt": b"2"}


def test_same_size_edit_is_uploaded_next_sync(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    _write(src, {"f.txt": b"hello", "g.txt": b"untouched"})
    with open_mirror(tmp_path, profile):
        pos3lite.upload(f"s3://{bucket}/out", local=src, interval=None)
    assert get(oracle, bucket, "out/f.txt") == b"hello"
    g_stamp = oracle.head_object(Bucket=bucket, Key="out/g.txt")["LastModified"]
    while time.time() < g_stamp.timestamp() + 1.5:  # so a re-send would show a new stamp
        time.sleep(0.1)
    (src / "f.txt").write_bytes(b"world")
    future = time.time() + 120  # avoid 1-second mtime granularity against LastModified
    os.utime(src / "f.txt", (future, future))
    with open_mirror(tmp_path, profile):
        pos3lite.upload(f"s3://{bucket}/out", local=src, interval=None)
    assert get(oracle, bucket, "out/f.txt") == b"world"
    # The unchanged file was not re-sent.
    assert oracle.head_object(Bucket=bucket, Key="out/g.txt")["LastModified"] == g_stamp


def test_compare_size_skips_same_size_edit(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    """compare="size" is pos3's rule: a same-size local edit is not uploaded."""
    src = tmp_path / "src"
    _write(src, {"f.txt": b"hello"})
    with open_mirror(tmp_path, profile, compare="size"):
        pos3lite.upload(f"s3://{bucket}/out", local=src, interval=None)
    (src / "f.txt").write_bytes(b"world")
    future = time.time() + 120
    os.utime(src / "f.txt", (future, future))
    with open_mirror(tmp_path, profile, compare="size"):
        pos3lite.upload(f"s3://{bucket}/out", local=src, interval=None)
    assert get(oracle, bucket, "out/f.txt") == b"hello"


def test_compare_checksum_upload(oracle: Any, bucket: str, profile: Any, tmp_path: Path) -> None:
    src = tmp_path / "src"
    _write(src, {"f.txt": b"hello"})
    with open_mirror(tmp_path, profile, compare="checksum"):
        pos3lite.upload(f"s3://{bucket}/out", local=src, interval=None)
    # Same size, new content, mtime moved into the past: only a checksum sees the change.
    (src / "f.txt").write_bytes(b"world")
    past = time.time() - 7200
    os.utime(src / "f.txt", (past, past))
    with open_mirror(tmp_path, profile, compare="checksum"):
        pos3lite.upload(f"s3://{bucket}/out", local=src, interval=None)
    assert get(oracle, bucket, "out/f.txt") == b"world"


# ---------------------------------------------------------------------------- symlinks


def test_symlinks_are_skipped_not_followed_and_their_remote_copies_kept(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    """Issue 8: LeRobot's ``checkpoints/last -> 000010`` must not come back as a folder copy;
    pos3 skipped symlinks. A skipped link never causes its remote copy to be deleted."""
    put(oracle, bucket, "out/link.txt", b"uploaded before it became a link")
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"target content")
    src = tmp_path / "src"
    _write(src, {"real.txt": b"r", "checkpoints/000010/model.bin": b"weights"})
    (src / "link.txt").symlink_to(outside)
    (src / "checkpoints" / "last").symlink_to("000010")
    with open_mirror(tmp_path, profile):
        pos3lite.upload(f"s3://{bucket}/out", local=src, interval=None, delete=True)
    assert _remote(oracle, bucket, "out/") == {
        "real.txt": b"r",
        "checkpoints/000010/model.bin": b"weights",
        "link.txt": b"uploaded before it became a link",
    }


def test_symlinks_are_skipped_by_default_and_their_remote_copy_kept(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    """pos3 skipped symlinks; a skipped one never causes its remote copy to be deleted."""
    put(oracle, bucket, "out/link.txt", b"uploaded earlier")
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"target content")
    src = tmp_path / "src"
    _write(src, {"real.txt": b"r"})
    (src / "link.txt").symlink_to(outside)
    (src / "dirlink").symlink_to(tmp_path, target_is_directory=True)
    with open_mirror(tmp_path, profile):
        pos3lite.upload(f"s3://{bucket}/out", local=src, interval=None, delete=True)
    assert _remote(oracle, bucket, "out/") == {"real.txt": b"r", "link.txt": b"uploaded earlier"}


def test_broken_symlink_skipped_and_remote_kept(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    """pos3 bug C.7: a skipped symlink's remote counterpart was deleted with delete=True."""
    put(oracle, bucket, "out/broken.txt", b"remote copy of a now-broken link")
    put(oracle, bucket, "out/stale.txt", b"really stale")
    src = tmp_path / "src"
    _write(src, {"real.txt": b"r"})
    (src / "broken.txt").symlink_to(tmp_path / "does-not-exist")
    with open_mirror(tmp_path, profile):
        pos3lite.upload(f"s3://{bucket}/out", local=src, interval=None, delete=True)
    assert _remote(oracle, bucket, "out/") == {
        "real.txt": b"r",
        "broken.txt": b"remote copy of a now-broken link",
    }


# ---------------------------------------------------------------------------- misc


def test_rate_limited_upload_is_correct(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    files = {f"f{i}.bin": os.urandom(64 * 1024 + i) for i in range(4)}
    _write(src, files)
    with open_mirror(tmp_path, profile, max_workers=4, max_upload_bytes_per_second=4 * 1024 * 1024):
        pos3lite.upload(f"s3://{bucket}/rl", local=src, interval=None)
    assert _remote(oracle, bucket, "rl/") == files


def test_upload_with_read_only_identity_fails_loudly(
    oracle: Any, bucket: str, s3_server: Any, tmp_path: Path
) -> None:
    from pos3lite import Profile

    from .conftest import READ_ACCESS_KEY, READ_SECRET_KEY

    reader = Profile(
        local_name="reader",
        endpoint=s3_server.endpoint,
        region=s3_server.region,
        access_key=READ_ACCESS_KEY,
        secret_key=READ_SECRET_KEY,
    )
    src = tmp_path / "src"
    _write(src, {"a.txt": b"a"})
    with pytest.raises(Pos3liteError), open_mirror(tmp_path, reader):
        pos3lite.upload(f"s3://{bucket}/out", local=src, interval=None)
    assert keys(oracle, bucket) == []


def test_symlink_to_file_is_followed_with_follow_symlinks(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    """``follow_symlinks=True`` uploads what a link points to, as ``aws s3 sync`` does."""
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"target content")
    src = tmp_path / "src"
    _write(src, {"real.txt": b"r"})
    (src / "link.txt").symlink_to(outside)
    with open_mirror(tmp_path, profile):
        pos3lite.upload(f"s3://{bucket}/out", local=src, interval=None, follow_symlinks=True)
    assert _remote(oracle, bucket, "out/") == {"real.txt": b"r", "link.txt": b"target content"}
