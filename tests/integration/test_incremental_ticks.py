"""Incremental background ticks and flushes (issue 12 item 4), against the real SeaweedFS
fixture: every request the mirror sends is counted at its transport."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import pos3lite
from pos3lite import TransferError
from pos3lite.mirror import context as ctx
from pos3lite.mirror import md5cache, policy
from pos3lite.s3.client import S3Client

from .conftest import get, keys, open_mirror, put

pytestmark = pytest.mark.integration

TICK = policy.Phase.TICK


class Requests:
    """The requests a mirror's transport sent, as ``(method, path?query)``."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def take(self) -> list[tuple[str, str]]:
        out, self.sent = self.sent, []
        return out


def lists(reqs: list[tuple[str, str]]) -> int:
    return sum(1 for m, u in reqs if m == "GET" and "list-type=2" in u)


def puts(reqs: list[tuple[str, str]]) -> list[str]:
    return [u.split("?", 1)[0] for m, u in reqs if m == "PUT"]


@contextmanager
def counted_mirror(tmp_path: Path, profile: Any, **kw: Any) -> Iterator[tuple[Any, Requests]]:
    with open_mirror(tmp_path, profile, **kw):
        m = ctx._require_active()
        transport = m.client(profile)._transport  # the pool every client of the mirror shares
        real = transport.send
        seen = Requests()

        def send(request: Any) -> Any:
            seen.sent.append((request.method, request.url.split("/", 3)[-1]))
            return real(request)

        transport.send = send
        yield m, seen


def registration(m: Any, url: str) -> Any:
    (reg,) = [r for r in m._uploads.values() if r.url == url]
    return reg


def rewrite(path: Path, data: bytes) -> None:
    """Rewrite ``path`` in place with the same size in the same second (only st_mtime_ns,
    st_ctime_ns tell)."""
    before = path.stat()
    path.write_bytes(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1))


@pytest.fixture
def tree_of_files(tmp_path: Path) -> Path:
    root = tmp_path / "run"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"aaa")
    (root / "sub" / "b.txt").write_bytes(b"bbb")
    (root / "sub" / "deep" / "c.bin").write_bytes(b"c" * 100)
    (root / "empty").mkdir()
    return root


def test_a_tick_over_unchanged_files_sends_no_request(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path, tree_of_files: Path
) -> None:
    url = f"s3://{bucket}/run"
    with counted_mirror(tmp_path, profile) as (m, seen):
        pos3lite.upload(url, local=tree_of_files, interval=None)
        reg = registration(m, url)
        m._sync_upload(reg, TICK)  # first tick: never listed, lists in full
        first = seen.take()
        assert lists(first) == 1
        assert len(puts(first)) == 4  # three files and the empty folder's marker
        for _ in range(3):
            m._sync_upload(reg, TICK)
            assert seen.take() == []
    want = ["run/a.txt", "run/empty/", "run/sub/b.txt", "run/sub/deep/c.bin"]
    assert keys(oracle, bucket) == want


def test_a_changed_file_costs_one_put_and_no_list(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path, tree_of_files: Path
) -> None:
    url = f"s3://{bucket}/run"
    with counted_mirror(tmp_path, profile) as (m, seen):
        pos3lite.upload(url, local=tree_of_files, interval=None)
        reg = registration(m, url)
        m._sync_upload(reg, TICK)
        seen.take()
        rewrite(tree_of_files / "sub" / "b.txt", b"BBB")  # same size, same second
        m._sync_upload(reg, TICK)
        assert seen.take() == [("PUT", f"{bucket}/run/sub/b.txt")]
        assert get(oracle, bucket, "run/sub/b.txt") == b"BBB"
        # A new file and a new empty folder: one PUT each, no LIST.
        (tree_of_files / "sub" / "new.txt").write_bytes(b"new")
        (tree_of_files / "sub" / "e2").mkdir()
        m._sync_upload(reg, TICK)
        assert sorted(puts(seen.take())) == [f"{bucket}/run/sub/e2/", f"{bucket}/run/sub/new.txt"]
        m._sync_upload(reg, TICK)
        assert seen.take() == []  # both are known now
        # A deleted local file: nothing (ticks never delete), still no request.
        (tree_of_files / "a.txt").unlink()
        m._sync_upload(reg, TICK)
        assert seen.take() == []
    assert get(oracle, bucket, "run/sub/new.txt") == b"new"
    assert "run/a.txt" not in keys(oracle, bucket)  # the final sync listed and deleted it


def test_every_tenth_tick_lists_in_full(
    bucket: str, profile: Any, tmp_path: Path, tree_of_files: Path
) -> None:
    url = f"s3://{bucket}/run"
    with counted_mirror(tmp_path, profile) as (m, seen):
        pos3lite.upload(url, local=tree_of_files, interval=None)
        reg = registration(m, url)
        listed = []
        for i in range(21):
            m._sync_upload(reg, TICK)
            if lists(seen.take()):
                listed.append(i)
        assert listed == [0, 10, 20]
        # The final sync at exit always lists in full.
    assert lists(seen.take()) == 1


def test_a_remote_object_deleted_by_another_client_comes_back_with_the_next_full_listing(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path, tree_of_files: Path
) -> None:
    url = f"s3://{bucket}/run"
    with counted_mirror(tmp_path, profile) as (m, seen):
        pos3lite.upload(url, local=tree_of_files, interval=None)
        reg = registration(m, url)
        m._sync_upload(reg, TICK)
        seen.take()
        oracle.delete_object(Bucket=bucket, Key="run/a.txt")
        for _ in range(policy.FULL_LISTING_EVERY - 1):
            m._sync_upload(reg, TICK)  # incremental: the documented blind spot
        assert "run/a.txt" not in keys(oracle, bucket)
        assert lists(seen.take()) == 0
        m._sync_upload(reg, TICK)  # the tenth lists and uploads it again
        tenth = seen.take()
        assert lists(tenth) == 1 and puts(tenth) == [f"{bucket}/run/a.txt"]
        assert get(oracle, bucket, "run/a.txt") == b"aaa"


def test_after_an_error_the_next_tick_lists_in_full(
    oracle: Any,
    bucket: str,
    profile: Any,
    tmp_path: Path,
    tree_of_files: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"s3://{bucket}/run"

    def failing(self: S3Client, *a: Any, **kw: Any) -> Any:
        raise OSError("disk on fire")

    with counted_mirror(tmp_path, profile) as (m, seen):
        pos3lite.upload(url, local=tree_of_files, interval=None)
        reg = registration(m, url)
        m._sync_upload(reg, TICK)
        seen.take()
        (tree_of_files / "a.txt").write_bytes(b"a2")
        with monkeypatch.context() as mp:
            mp.setattr(S3Client, "put_object_from_file", failing)
            with pytest.raises(TransferError):
                m._sync_upload(reg, TICK)
        assert seen.take() == []  # incremental, and the PUT never reached the transport
        m._sync_upload(reg, TICK)
        after = seen.take()
        assert lists(after) == 1 and puts(after) == [f"{bucket}/run/a.txt"]
        m._sync_upload(reg, TICK)
        assert seen.take() == []  # listed and succeeded: incremental again
    assert get(oracle, bucket, "run/a.txt") == b"a2"


def test_flush_is_incremental_once_listed_and_never_misses_a_change(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path, tree_of_files: Path
) -> None:
    url = f"s3://{bucket}/run"
    with counted_mirror(tmp_path, profile) as (_, seen):
        pos3lite.upload(url, local=tree_of_files, interval=None)
        pos3lite.flush(url)  # never listed in this mirror: lists in full
        assert lists(seen.take()) == 1
        rewrite(tree_of_files / "a.txt", b"AAA")
        (tree_of_files / "sub" / "deep" / "d.txt").write_bytes(b"d")
        pos3lite.flush(url)
        got = seen.take()
        assert lists(got) == 0
        assert sorted(puts(got)) == [f"{bucket}/run/a.txt", f"{bucket}/run/sub/deep/d.txt"]
        assert get(oracle, bucket, "run/a.txt") == b"AAA"
        assert get(oracle, bucket, "run/sub/deep/d.txt") == b"d"
        for _ in range(12):
            pos3lite.flush(url)
        assert seen.take() == []  # flushes never count towards the tenth tick


def test_a_file_with_a_failed_state_write_is_uploaded_again(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path, tree_of_files: Path
) -> None:
    """The state holds no record (lost, or never written): the file is changed, so it is
    uploaded; a missing record never skips a file."""
    url = f"s3://{bucket}/run"
    with counted_mirror(tmp_path, profile) as (m, seen):
        pos3lite.upload(url, local=tree_of_files, interval=None)
        reg = registration(m, url)
        reg.watch_off = True  # stat-walk ticks (watched ones: test_watched_ticks.py)
        m._sync_upload(reg, TICK)
        seen.take()
        name = ctx._state_name(reg.url, reg.profile, reg.local_path)
        m.state_store.update(name, [], forget=["sub/b.txt"])
        m._sync_upload(reg, TICK)
        assert seen.take() == [("PUT", f"{bucket}/run/sub/b.txt")]


def test_the_background_thread_ticks_incrementally(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path, tree_of_files: Path
) -> None:
    url = f"s3://{bucket}/run"
    with counted_mirror(tmp_path, profile) as (m, seen):
        m.scheduler.first_delay = 0.0
        pos3lite.upload(url, local=tree_of_files, interval=0.1)
        reg = registration(m, url)
        deadline = time.monotonic() + 20
        while (reg.passes or 0) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reg.passes is not None and reg.passes >= 3
        got = seen.take()
        # The first tick's LIST and 4 PUTs; later ticks send nothing (unless a tenth lists).
        assert len(puts(got)) == 4 and len(got) - 4 == lists(got) <= 2
        (tree_of_files / "late.txt").write_bytes(b"late")
        while "run/late.txt" not in keys(oracle, bucket) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert get(oracle, bucket, "run/late.txt") == b"late"


# ------------------------------------------------------------------ checksum mode: MD5 cache


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The local files actually read to compute an MD5 (names only)."""
    calls: list[str] = []
    real = md5cache.file_md5

    def counting(path: Path, **kw: int) -> str:
        calls.append(Path(path).name)
        return real(path, **kw)

    monkeypatch.setattr(md5cache, "file_md5", counting)
    return calls


def test_checksum_ticks_do_not_rehash_unchanged_files(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path, tree_of_files: Path, hashed: list[str]
) -> None:
    url = f"s3://{bucket}/run"
    with counted_mirror(tmp_path, profile, compare="checksum") as (m, seen):
        pos3lite.upload(url, local=tree_of_files, interval=None)
        reg = registration(m, url)
        m._sync_upload(reg, TICK)
        assert sorted(hashed) == ["a.txt", "b.txt", "c.bin"]
        hashed.clear()
        seen.take()
        m._sync_upload(reg, TICK)  # checksum mode lists (no state), but hashes nothing
        assert hashed == []
        assert puts(seen.take()) == []
        rewrite(tree_of_files / "sub" / "b.txt", b"XYZ")  # same size, same second
        m._sync_upload(reg, TICK)
        assert hashed == ["b.txt"]
        assert puts(seen.take()) == [f"{bucket}/run/sub/b.txt"]
        assert get(oracle, bucket, "run/sub/b.txt") == b"XYZ"


def test_checksum_resync_downloads_do_not_rehash_unchanged_files(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path, hashed: list[str]
) -> None:
    for name in ("x.bin", "y/z.bin"):
        put(oracle, bucket, f"d/{name}", name.encode() * 10)
    dest = tmp_path / "d"
    for _ in range(3):
        with open_mirror(tmp_path, profile, compare="checksum"):
            pos3lite.download(f"s3://{bucket}/d", local=dest)
    # The first run had nothing local, the second hashed both files, the third none.
    assert sorted(hashed) == ["x.bin", "z.bin"]
    assert (dest / "y" / "z.bin").read_bytes() == b"y/z.bin" * 10


def test_a_file_changed_while_an_incremental_tick_uploads_it_is_sent_again(
    oracle: Any,
    bucket: str,
    profile: Any,
    tmp_path: Path,
    tree_of_files: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"s3://{bucket}/run"
    real = S3Client.put_object_from_file

    def rewriting(self: S3Client, bucket_: str, key: str, path: Path, **kw: Any) -> Any:
        out = real(self, bucket_, key, path, **kw)
        Path(path).write_bytes(b"written during the upload")  # after the bytes were sent
        return out

    with counted_mirror(tmp_path, profile) as (m, seen):
        pos3lite.upload(url, local=tree_of_files, interval=None)
        reg = registration(m, url)
        m._sync_upload(reg, TICK)
        (tree_of_files / "a.txt").write_bytes(b"v2")
        seen.take()
        with monkeypatch.context() as mp:
            mp.setattr(S3Client, "put_object_from_file", rewriting)
            m._sync_upload(reg, TICK)
        assert puts(seen.take()) == [f"{bucket}/run/a.txt"]
        assert get(oracle, bucket, "run/a.txt") == b"v2"
        m._sync_upload(reg, TICK)  # not recorded as in sync: sent again, still no LIST
        assert seen.take() == [("PUT", f"{bucket}/run/a.txt")]
        assert get(oracle, bucket, "run/a.txt") == b"written during the upload"
        m._sync_upload(reg, TICK)
        assert seen.take() == []
