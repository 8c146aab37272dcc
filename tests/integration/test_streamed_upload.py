"""An upload's copies stream into the transfer pool while the local walk, the listing and
the sync state are still merged (issue 12 item 1), against the real SeaweedFS fixture: every
request the mirror sends is seen at its transport, with listing pages made small so one
pass takes several. The uploads run in the mirror's final sync (``interval=None``). The
download phase of a two-way sync streams its copies the same way (last test)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
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

from .conftest import keys, open_mirror, put, tree

pytestmark = pytest.mark.integration

PAGE = 10


class Log:
    """Requests in the order they happened: ("list-answered", path) when a ListObjectsV2
    page came back, ("put", key) when an object PUT was sent, ("put-answered", key) when it
    came back, ("delete", path) when a DeleteObjects request was sent, ("get", key) when an
    object GET was sent."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, str]] = []

    def add(self, what: str, detail: str) -> None:
        with self.lock:
            self.events.append((what, detail))

    def since(self, mark: int) -> list[tuple[str, str]]:
        with self.lock:
            return self.events[mark:]


def puts_before_last_page(events: list[tuple[str, str]]) -> int:
    last = max(i for i, (w, _) in enumerate(events) if w == "list-answered")
    return sum(1 for w, _ in events[:last] if w == "put")


@contextmanager
def watched_mirror(
    tmp_path: Path, profile: Any, monkeypatch: pytest.MonkeyPatch, **kw: Any
) -> Iterator[Log]:
    """``open_mirror`` with listing pages of PAGE keys and every request logged. The listing
    is sequential (``list_concurrency=1``) unless a test asks otherwise, so that "the last
    page" is one point in time; the split listing has its own tests (test_listing_split)."""
    monkeypatch.setattr(scan_mod, "LIST_PAGE_SIZE", PAGE)  # the mirror's listings
    kw.setdefault("list_concurrency", 1)
    log = Log()
    with open_mirror(tmp_path, profile, **kw):
        m = ctx._require_active()
        transport = m.client(profile)._transport  # the pool every client of the mirror shares
        real = transport.send

        def send(request: Any) -> Any:
            path = request.url.split("/", 3)[-1]
            key = path.split("?", 1)[0]
            listing = request.method == "GET" and "list-type=2" in path
            if request.method == "PUT":
                log.add("put", key)
            if request.method == "GET" and not listing:
                log.add("get", key)
            if request.method == "POST" and "delete" in path.split("?", 1)[-1]:
                log.add("delete", path)
            answer = real(request)
            if listing:
                log.add("list-answered", path)
            if request.method == "PUT":
                log.add("put-answered", key)
            return answer

        transport.send = send
        yield log


class Totals:
    """A progress factory recording every total, byte count and finished file."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.total = 0
        self.moved = 0
        self.grown = 0  # add_total calls
        self.files = 0  # file_done calls

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

            def file_done(self, verb: str, src: str, dst: str | None) -> None:
                with outer.lock:
                    outer.files += 1

            def close(self) -> None:
                pass

        return P()


def remote_tree(oracle: Any, bucket: str, prefix: str) -> dict[str, bytes]:
    out = {}
    for k in keys(oracle, bucket, prefix):
        out[k[len(prefix) :]] = oracle.get_object(Bucket=bucket, Key=k)["Body"].read()
    return out


def remote_extras(oracle: Any, bucket: str, prefix: str, n: int) -> dict[str, bytes]:
    """``n`` objects only on S3: ``d<i%3>/f<i>.r``, so every listing page holds some."""
    want = {f"d{i % 3}/f{i:04d}.r": f"remote {i} ".encode() for i in range(n)}
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda kv: put(oracle, bucket, prefix + kv[0], kv[1]), want.items()))
    return want


def local_files(root: Path, n: int, step: int = 2) -> dict[str, bytes]:
    """New local files ``d<i%3>/f<i>.l`` that sort between the remote extras' keys."""
    want = {f"d{i % 3}/f{i:04d}.l": f"local {i} ".encode() * (i + 1) for i in range(0, n, step)}
    for k, v in want.items():
        (root / k).parent.mkdir(parents=True, exist_ok=True)
        (root / k).write_bytes(v)
    return want


def state_keys(tmp_path: Path, url: str, root: Path) -> set[str]:
    return set(SyncState(tmp_path / "cache").load(registration_name("test", url, root.resolve())))


def test_upload_starts_before_the_listing_ends_and_the_total_grows(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extras = remote_extras(oracle, bucket, "many/", 120)
    src = tmp_path / "src"
    mine = local_files(src, 120)
    totals = Totals()
    url = f"s3://{bucket}/many"
    with use_factory(totals.factory), watched_mirror(tmp_path, profile, monkeypatch) as log:
        pos3lite.upload(url, local=src, interval=None, delete=False)
    events = log.since(0)
    assert sum(1 for w, _ in events if w == "list-answered") >= 120 // PAGE
    # Objects were sent while later pages of the listing were still to come.
    assert puts_before_last_page(events) > 0
    assert remote_tree(oracle, bucket, "many/") == {**extras, **mine}  # byte for byte
    assert sorted(d for w, d in events if w == "put") == sorted(
        f"{bucket}/many/{k}" for k in mine
    )  # each file sent once
    # The bar's total grew with the copies as they were planned, to the bytes and files sent.
    size = sum(len(v) for v in mine.values())
    assert totals.grown == len(mine)
    assert totals.total == size
    assert totals.moved == size
    assert totals.files == len(mine)
    assert state_keys(tmp_path, url, src) == set(mine)  # each streamed copy recorded


def test_upload_with_a_failing_copy_mid_stream_runs_no_deletes(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extras = remote_extras(oracle, bucket, "fail/", 120)
    src = tmp_path / "src"
    mine = local_files(src, 120)
    real = S3Client.put_object_from_file

    def failing(self: S3Client, bucket_: str, key: str, *a: Any, **kw: Any) -> Any:
        if key.endswith("f0050.l"):
            raise OSError("refused")
        return real(self, bucket_, key, *a, **kw)

    monkeypatch.setattr(S3Client, "put_object_from_file", failing)
    url = f"s3://{bucket}/fail"
    with (
        pytest.raises(TransferError) as info,
        watched_mirror(tmp_path, profile, monkeypatch) as log,
    ):
        pos3lite.upload(url, local=src, interval=None, delete=True)
    events = log.since(0)
    assert puts_before_last_page(events) > 0  # it streamed
    assert [str(f) for f in info.value.failures] == ["refused"]
    assert not [e for e in events if e[0] == "delete"]  # no delete after a failed copy
    sent = {k: v for k, v in mine.items() if not k.endswith("f0050.l")}
    assert remote_tree(oracle, bucket, "fail/") == {**extras, **sent}
    assert state_keys(tmp_path, url, src) == set(sent)  # the files that went up, recorded
    assert tree(src) == mine  # nothing local touched
    # Once the copy succeeds, the extras go and only the failed file is sent.
    monkeypatch.setattr(S3Client, "put_object_from_file", real)
    with watched_mirror(tmp_path, profile, monkeypatch) as log:
        pos3lite.upload(url, local=src, interval=None, delete=True)
    assert [d for w, d in log.since(0) if w == "put"] == [f"{bucket}/fail/d2/f0050.l"]
    assert remote_tree(oracle, bucket, "fail/") == mine


def test_listing_error_after_uploads_started_runs_no_deletes(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extras = remote_extras(oracle, bucket, "cut/", 120)
    src = tmp_path / "src"
    mine = local_files(src, 120)
    real_page = S3Client.list_page
    pages: list[int] = []

    def cut_listing(self: S3Client, bucket_: str, prefix: str = "", **kw: Any) -> Any:
        pages.append(1)
        if len(pages) == 9:  # after 80 keys: uploads of the first ones have started
            raise OSError("connection lost")
        return real_page(self, bucket_, prefix, **kw)

    monkeypatch.setattr(S3Client, "list_page", cut_listing)
    url = f"s3://{bucket}/cut"
    with (
        pytest.raises(OSError, match="connection lost"),
        watched_mirror(tmp_path, profile, monkeypatch) as log,
    ):
        pos3lite.upload(url, local=src, interval=None, delete=True)
    events = log.since(0)
    assert not [e for e in events if e[0] == "delete"]  # an incomplete listing deletes nothing
    got = remote_tree(oracle, bucket, "cut/")
    assert {k: got.pop(k) for k in extras} == extras
    # Uploads had started before the cut; what went up is whole and recorded.
    assert got and set(got) < set(mine)
    assert all(mine[k] == v for k, v in got.items())
    assert state_keys(tmp_path, url, src) == set(got)
    assert tree(src) == mine


def test_sync_with_delete_remote_after_streamed_uploads_deletes_exactly_the_extras(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced = remote_extras(oracle, bucket, "s/", 90)  # every object is downloaded first
    dest = tmp_path / "dest"
    url = f"s3://{bucket}/s"
    with watched_mirror(tmp_path, profile, monkeypatch) as log:
        pos3lite.sync(url, local=dest, interval=None, delete_remote=True)
        assert tree(dest) == synced
        # Locally: a third removed (remote extras now), new files between every key.
        gone = sorted(k for i, k in enumerate(sorted(synced)) if i % 3 == 0)
        for k in gone:
            (dest / k).unlink()
        mine = local_files(dest, 90, step=1)
        mark = len(log.since(0))
    events = log.since(mark)  # the final sync's upload pass
    assert puts_before_last_page(events) > 0  # it streamed
    want = {k: v for k, v in synced.items() if k not in gone} | mine
    assert tree(dest) == want
    assert remote_tree(oracle, bucket, "s/") == want  # exactly the extras deleted
    deletes = [i for i, (w, _) in enumerate(events) if w == "delete"]
    assert len(deletes) == 1
    # The delete came after the whole listing was read and every upload was answered.
    last_page = max(i for i, (w, _) in enumerate(events) if w == "list-answered")
    last_put = max(i for i, (w, _) in enumerate(events) if w == "put-answered")
    assert deletes[0] > last_page and deletes[0] > last_put


def test_twins_found_after_one_streamed_are_deleted_again(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "Notes.txt" sorts pages before "notes.txt": its upload streams before its twin is
    # walked. Neither may be on S3 in the end (one file on case-insensitive systems).
    extras = remote_extras(oracle, bucket, "tw/", 60)
    src = tmp_path / "src"
    mine = local_files(src, 60)
    (src / "Notes.txt").write_bytes(b"upper")
    (src / "notes.txt").write_bytes(b"lower")
    url = f"s3://{bucket}/tw"
    with (
        pytest.raises(TransferError) as info,
        watched_mirror(tmp_path, profile, monkeypatch) as log,
    ):
        pos3lite.upload(url, local=src, interval=None, delete=False)
    assert "Notes.txt" in str(info.value) and "notes.txt" in str(info.value)
    puts = [d for w, d in log.since(0) if w == "put"]
    assert f"{bucket}/tw/Notes.txt" in puts  # it had streamed
    assert remote_tree(oracle, bucket, "tw/") == {**extras, **mine}  # the twins gone again
    assert state_keys(tmp_path, url, src) == set(mine)  # and not recorded as in sync
    assert sorted(puts) == sorted(
        f"{bucket}/tw/{k}" for k in (*mine, "Notes.txt", "notes.txt")
    )  # nothing sent twice


def test_listing_found_out_of_order_after_uploads_started_sends_each_file_once(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The store's last two keys come swapped: the disorder is found after most copies were
    # fed. They land before the listing is read again, sorted, and compare equal then.
    extras = remote_extras(oracle, bucket, "oo/", 60)
    src = tmp_path / "src"
    mine = local_files(src, 60)
    real_page = S3Client.list_page

    def swapped(self: S3Client, bucket_: str, prefix: str = "", **kw: Any) -> Any:
        page = real_page(self, bucket_, prefix, **kw)
        if page.next_token is None and len(page.entries) >= 2:  # the last page
            *head, a, b = page.entries
            page = dataclasses.replace(page, entries=[*head, b, a])
        return page

    monkeypatch.setattr(S3Client, "list_page", swapped)
    url = f"s3://{bucket}/oo"
    with watched_mirror(tmp_path, profile, monkeypatch) as log:
        pos3lite.upload(url, local=src, interval=None, delete=True)
    events = log.since(0)
    puts = [d for w, d in events if w == "put"]
    # Two listings (the second sorted); uploads had started between them, and every one
    # of those was answered before the listing was read again.
    firsts = [
        i for i, (w, d) in enumerate(events) if w == "list-answered" and "continuation" not in d
    ]
    assert len(firsts) == 2
    before = events[: firsts[1]]
    assert sum(1 for w, _ in before if w == "put") > 0
    assert sum(1 for w, _ in before if w == "put") == sum(
        1 for w, _ in before if w == "put-answered"
    )
    assert sorted(puts) == sorted(f"{bucket}/oo/{k}" for k in mine)  # each sent once
    assert remote_tree(oracle, bucket, "oo/") == mine  # extras deleted from the full listing
    assert state_keys(tmp_path, url, src) == set(mine)
    del extras


def test_sync_download_phase_streams_and_keeps_replaced_local_versions(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = remote_extras(oracle, bucket, "tw2/", 120)
    dest = tmp_path / "dest"
    (dest / "d1").mkdir(parents=True)
    # No sync state yet and a different local file: the remote wins, the local version is
    # kept aside under the cache root before it is replaced (a held copy, not streamed).
    (dest / "d1" / "f0100.r").write_bytes(b"mine, longer than the object")
    url = f"s3://{bucket}/tw2"
    with watched_mirror(tmp_path, profile, monkeypatch) as log:
        pos3lite.sync(url, local=dest, interval=None)
        events = log.since(0)
    gets = [i for i, (w, _) in enumerate(events) if w == "get"]
    last_page = max(i for i, (w, _) in enumerate(events) if w == "list-answered")
    assert sum(1 for i in gets if i < last_page) > 0  # objects fetched while listing
    assert len(gets) == len(remote)  # each once
    assert tree(dest) == remote
    kept = list((tmp_path / "cache" / ".pos3lite" / "conflicts").rglob("f0100.r"))
    assert [p.read_bytes() for p in kept] == [b"mine, longer than the object"]
    assert state_keys(tmp_path, url, dest) == set(remote)
