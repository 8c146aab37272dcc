"""A download's copies stream into the transfer pool while the listing is still read
(issue 12 item 1), against the real SeaweedFS fixture: every request the mirror sends is
seen at its transport, with listing pages made small so one download takes several."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import pos3lite
from pos3lite import TransferError
from pos3lite.mirror import context as ctx
from pos3lite.mirror import scan as scan_mod
from pos3lite.mirror.state import SyncState, registration_name
from pos3lite.progress import use_factory
from pos3lite.s3.client import S3Client

from .conftest import open_mirror, put, tree

pytestmark = pytest.mark.integration

PAGE = 10


class Log:
    """Events in the order they happened: ("list-answered", n) when a ListObjectsV2 page
    came back, ("get", key) when an object GET was sent."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, str]] = []

    def add(self, what: str, detail: str) -> None:
        with self.lock:
            self.events.append((what, detail))

    def gets_before_last_page(self) -> int:
        last = max(i for i, (w, _) in enumerate(self.events) if w == "list-answered")
        return sum(1 for w, _ in self.events[:last] if w == "get")

    def pages(self) -> int:
        return sum(1 for w, _ in self.events if w == "list-answered")


@contextmanager
def watched_mirror(
    tmp_path: Path, profile: Any, monkeypatch: pytest.MonkeyPatch, **kw: Any
) -> Iterator[Log]:
    real_list = S3Client.list_objects

    def small_pages(self: S3Client, bucket: str, prefix: str = "", **kw: Any) -> Any:
        kw["page_size"] = PAGE
        return real_list(self, bucket, prefix, **kw)

    monkeypatch.setattr(S3Client, "list_objects", small_pages)
    monkeypatch.setattr(scan_mod, "LIST_PAGE_SIZE", PAGE)  # the mirror's listings
    with open_mirror(tmp_path, profile, **kw):
        m = ctx._require_active()
        transport = m.client(profile)._transport  # the pool every client of the mirror shares
        real = transport.send
        log = Log()

        def send(request: Any) -> Any:
            path = request.url.split("/", 3)[-1]
            listing = request.method == "GET" and "list-type=2" in path
            if request.method == "GET" and not listing:
                log.add("get", path.split("?", 1)[0])
            answer = real(request)
            if listing:
                log.add("list-answered", path)
            return answer

        transport.send = send
        yield log


class Totals:
    """A progress factory recording every total and byte count it was given."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.total = 0
        self.moved = 0
        self.grown = 0  # add_total calls

    def factory(self, enabled: bool, total: int, description: str) -> Any:
        self.total += total
        outer = self

        class P:
            def update(self, n: int) -> None:
                with outer.lock:
                    outer.moved += n

            def add_total(self, n: int) -> None:
                with outer.lock:
                    outer.total += n
                    outer.grown += 1

            def close(self) -> None:
                pass

        return P()


def fill(oracle: Any, bucket: str, prefix: str, n: int) -> dict[str, bytes]:
    want = {f"d{i % 3}/f{i:04d}.bin": f"object {i} ".encode() * (i + 1) for i in range(n)}
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda kv: put(oracle, bucket, prefix + kv[0], kv[1]), want.items()))
    return want


def test_download_starts_transfers_before_the_listing_ends(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    want = fill(oracle, bucket, "many/", 120)
    totals = Totals()
    with use_factory(totals.factory), watched_mirror(tmp_path, profile, monkeypatch) as log:
        path = pos3lite.download(f"s3://{bucket}/many")
    assert log.pages() >= 120 // PAGE
    # Objects were fetched while later pages of the listing were still to come.
    assert log.gets_before_last_page() > 0
    assert tree(path) == want  # byte for byte
    # The bar's total grew with the copies as they were planned, to the bytes moved.
    size = sum(len(v) for v in want.values())
    assert totals.grown == len(want)
    assert totals.total == size
    assert totals.moved == size


def test_resync_after_streamed_download_transfers_nothing(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(oracle, bucket, "again/", 30)  # (3 pages; streaming itself is tested above)
    dest = tmp_path / "dest"
    with watched_mirror(tmp_path, profile, monkeypatch):
        pos3lite.download(f"s3://{bucket}/again", local=dest)
    url = f"s3://{bucket}/again"
    # Every streamed copy was recorded in the sync state as it finished.
    state = SyncState(tmp_path / "cache").load(registration_name("test", url, dest.resolve()))
    assert len(state) == 30
    with watched_mirror(tmp_path, profile, monkeypatch) as log:
        pos3lite.download(url, local=dest)
    assert not [e for e in log.events if e[0] == "get"]


def test_download_with_a_failing_copy_and_local_extras_runs_no_deletes(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    want = fill(oracle, bucket, "fail/", 120)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "extra.txt").write_bytes(b"only local")
    real = S3Client.get_object

    def failing(self: S3Client, bucket_: str, key: str, *a: Any, **kw: Any) -> Any:
        if key.endswith("f0007.bin"):
            raise OSError("refused")
        return real(self, bucket_, key, *a, **kw)

    monkeypatch.setattr(S3Client, "get_object", failing)
    url = f"s3://{bucket}/fail"
    with (
        pytest.raises(TransferError) as info,
        watched_mirror(tmp_path, profile, monkeypatch) as log,
    ):
        pos3lite.download(url, local=dest, delete=True)
    assert log.gets_before_last_page() > 0  # it streamed
    assert [str(f) for f in info.value.failures] == ["refused"]
    got = tree(dest)
    assert got.pop("extra.txt") == b"only local"  # no delete after a failed copy
    assert got == {k: v for k, v in want.items() if not k.endswith("f0007.bin")}
    state = SyncState(tmp_path / "cache").load(registration_name("test", url, dest.resolve()))
    assert sorted(state) == sorted(got)  # each finished copy recorded
    # Once the copy succeeds, the extra goes.
    monkeypatch.setattr(S3Client, "get_object", real)
    with watched_mirror(tmp_path, profile, monkeypatch):
        pos3lite.download(url, local=dest, delete=True)
    assert tree(dest) == want


def test_listing_error_mid_stream_runs_no_deletes(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    want = fill(oracle, bucket, "cut/", 40)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "extra.txt").write_bytes(b"only local")
    real_page = S3Client.list_page
    monkeypatch.setattr(scan_mod, "LIST_PAGE_SIZE", PAGE)

    def cut_listing(self: S3Client, bucket_: str, prefix: str = "", **kw: Any) -> Any:
        # The second page of the last folder's listing (the mirror splits the 40 keys in
        # d0/ d1/ d2/): d0/ and d1/ are listed and streaming by then.
        if prefix.endswith("d2/") and kw.get("token"):
            raise OSError("connection lost")
        return real_page(self, bucket_, prefix, **kw)

    monkeypatch.setattr(S3Client, "list_page", cut_listing)
    with pytest.raises(OSError, match="connection lost"), open_mirror(tmp_path, profile):
        pos3lite.download(f"s3://{bucket}/cut", local=dest, delete=True)
    got = tree(dest)
    assert got.pop("extra.txt") == b"only local"  # an incomplete listing deletes nothing
    assert got and set(got) < set(want)  # what was copied before the cut is whole
    assert all(want[k] == v for k, v in got.items())


def test_twins_found_after_the_first_twin_streamed_leave_both_untouched(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "Notes.txt" sorts pages before "notes.txt": its copy streams before its twin is
    # listed. Neither may be touched in the end (one file on case-insensitive systems).
    want = fill(oracle, bucket, "tw/", 40)
    put(oracle, bucket, "tw/Notes.txt", b"upper")
    put(oracle, bucket, "tw/notes.txt", b"lower")
    dest = tmp_path / "dest"
    url = f"s3://{bucket}/tw"
    with (
        pytest.raises(TransferError) as info,
        watched_mirror(tmp_path, profile, monkeypatch) as log,
    ):
        pos3lite.download(url, local=dest)
    assert "Notes.txt" in str(info.value) and "notes.txt" in str(info.value)
    gets = [d for w, d in log.events if w == "get"]
    assert any(g.endswith("/tw/Notes.txt") for g in gets)  # it had streamed
    assert tree(dest) == want  # both twins gone again, everything else arrived
    state = SyncState(tmp_path / "cache").load(registration_name("test", url, dest.resolve()))
    assert sorted(state) == sorted(want)  # the removed twin is not recorded as in sync
