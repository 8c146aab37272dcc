"""The external sort behind listings of stores that list out of UTF-8 byte order (issue 12,
item 1): sorted runs spilled under the cache root's metadata folder beyond a bound, merged
in the engine's order, every file removed afterwards (also after an error)."""

from __future__ import annotations

import random
import stat
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from pos3lite.engine.diff import sort_key
from pos3lite.engine.model import Entry
from pos3lite.errors import UnsafeKeyError
from pos3lite.mirror import spill
from pos3lite.mirror.scan import scan_remote
from pos3lite.mirror.spill import sorted_entries
from pos3lite.s3.listscan import ScannedPage
from pos3lite.urls import S3URL

ALPHABET = ["a", "b", "z", "A", "/", ".", "-", "0", "é", "ü", "€", "日", "😀", "\x7f", "ß"]


def _random_entries(rng: random.Random, n: int) -> list[Entry]:
    out = []
    for i in range(n):
        key = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 6)))
        if rng.random() < 0.2:
            key += "/"  # folders are keyed as "name/"
        size = 0 if key.endswith("/") else rng.randint(0, 10**12)
        etag = None if rng.random() < 0.1 else f"{i:032x}"
        out.append(Entry(key, size, 1_700_000_000.0 + rng.random() * 1e6, etag))
    return out


def _full(e: Entry) -> tuple[str, int, float, str | None]:
    return (e.key, e.size, e.mtime, e.etag)


def _spilled(meta: Path) -> list[Path]:
    """The run files and folders under ``meta`` (each sort folder's ``lock`` aside)."""
    return sorted(p for p in meta.rglob("*") if p.name != "lock") if meta.exists() else []


@pytest.mark.parametrize("bound", [1, 7, 100, 1000, 10_000])
def test_order_is_exactly_a_stable_sort_by_the_engine_key(tmp_path: Path, bound: int) -> None:
    rng = random.Random(bound)
    # Short keys over a small alphabet: many equal keys, whose listing order must be kept.
    entries = _random_entries(rng, 3000)
    assert len({e.key for e in entries}) < len(entries)
    got = list(sorted_entries(entries, tmp_path / "cache", bound=bound))
    want = sorted(entries, key=lambda e: sort_key(e.key))
    assert [_full(e) for e in got] == [_full(e) for e in want]
    assert not (tmp_path / "cache").exists()  # made for the runs, removed with them


def test_utf8_byte_order_not_code_unit_order(tmp_path: Path) -> None:
    keys = ["é", "z", "a/", "a.txt", "a/b", "a0", "😀", "\uffff", "日"]
    entries = [Entry(k, 1, 0.0) for k in keys]
    got = [e.key for e in sorted_entries(entries, tmp_path, bound=2)]
    assert got == ["a.txt", "a/", "a/b", "a0", "z", "é", "日", "\uffff", "😀"]


def test_under_the_bound_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spill, "SPILL_BOUND", 50)
    entries = [Entry(f"k{i:03d}", i, 0.0) for i in range(49)][::-1]
    stream = sorted_entries(entries, tmp_path / "cache")
    first = next(stream)
    assert first.key == "k000"
    assert not (tmp_path / "cache").exists()
    assert [e.key for e in stream] == [f"k{i:03d}" for i in range(1, 49)]


def test_runs_are_spilled_privately_under_the_metadata_folder_and_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spill, "SPILL_BOUND", 100)
    monkeypatch.setattr(spill, "RECORD_ENTRIES", 7)
    root = tmp_path / "cache"
    root.mkdir()
    (root / "user-file").write_bytes(b"x")
    entries = _random_entries(random.Random(1), 1050)
    stream = sorted_entries(entries, root)
    first = next(stream)
    files = [p for p in _spilled(root / ".pos3lite") if p.is_file()]
    assert len(files) == 10  # ten full runs; the last 50 entries stay in memory
    folder = files[0].parent
    assert folder.parent == root / ".pos3lite"
    assert stat.S_IMODE((root / ".pos3lite").stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
    rest = list(stream)
    want = sorted(entries, key=lambda e: sort_key(e.key))
    assert [_full(e) for e in [first, *rest]] == [_full(e) for e in want]
    assert not (root / ".pos3lite").exists()
    assert sorted(p.name for p in root.iterdir()) == ["user-file"]


def test_an_existing_metadata_folder_is_kept_and_only_the_runs_go(tmp_path: Path) -> None:
    meta = tmp_path / ".pos3lite"
    meta.mkdir(mode=0o700)
    (meta / "state.sqlite3").write_bytes(b"db")
    entries = _random_entries(random.Random(2), 500)
    assert len(list(sorted_entries(entries, tmp_path, bound=60))) == 500
    assert [p.name for p in meta.iterdir()] == ["state.sqlite3"]


def test_runs_are_removed_when_the_listing_fails_while_they_are_written(tmp_path: Path) -> None:
    seen: list[list[Path]] = []  # the run files on disk when the listing broke

    def listing() -> Iterator[Entry]:
        for i in range(250):
            yield Entry(f"k{249 - i}", i, 0.0)
        seen.append([p for p in _spilled(tmp_path / ".pos3lite") if p.is_file()])
        raise ConnectionError("listing broke on page 3")

    with pytest.raises(ConnectionError, match="page 3"):
        next(sorted_entries(listing(), tmp_path, bound=100))
    assert len(seen[0]) == 2
    assert not (tmp_path / ".pos3lite").exists()


def test_runs_are_removed_when_the_consumer_fails_or_stops_early(tmp_path: Path) -> None:
    entries = _random_entries(random.Random(3), 400)
    stream = sorted_entries(entries, tmp_path, bound=50)
    with pytest.raises(RuntimeError):
        for n, _ in enumerate(stream):
            assert _spilled(tmp_path / ".pos3lite")
            if n == 10:
                stream.throw(RuntimeError("planner failed"))
    assert not (tmp_path / ".pos3lite").exists()
    stream = sorted_entries(entries, tmp_path, bound=50)
    next(stream)
    assert _spilled(tmp_path / ".pos3lite")
    stream.close()
    assert not (tmp_path / ".pos3lite").exists()


def test_a_key_the_engine_cannot_order_is_refused_and_nothing_stays(tmp_path: Path) -> None:
    entries = [Entry(f"k{i}", 1, 0.0) for i in range(10)] + [Entry("bad\udcff", 1, 0.0)]
    with pytest.raises(UnicodeEncodeError):
        list(sorted_entries(entries, tmp_path, bound=4))
    assert not (tmp_path / ".pos3lite").exists()


def test_an_empty_listing_and_a_listing_of_exactly_the_bound(tmp_path: Path) -> None:
    assert list(sorted_entries([], tmp_path, bound=3)) == []
    entries = [Entry(k, 1, 0.0) for k in ("c", "a", "b", "f", "e", "d")]
    assert [e.key for e in sorted_entries(entries, tmp_path, bound=3)] == list("abcdef")
    assert not (tmp_path / ".pos3lite").exists()


class _BackwardsStore:
    """A listing no local server gives: out of byte order, with keys that must be refused
    (ListObjectsV2 pages of 7 keys, as ``S3Client.list_page`` returns them)."""

    start_after_unreliable = False

    def __init__(self, keys: list[str], fail_after: int | None = None) -> None:
        self.keys, self.fail_after = keys, fail_after
        self.pool = ThreadPoolExecutor(2)

    def list_executor(self) -> ThreadPoolExecutor:
        return self.pool

    def list_page(self, bucket: str, prefix: str = "", **kw: Any) -> ScannedPage:
        keys = sorted(self.keys, reverse=True)
        start = int(kw.get("token") or 0)
        end = min(start + 7, len(keys))
        if self.fail_after is not None and start <= self.fail_after < end:
            raise ConnectionError("page 2 failed")
        entries = [
            (k, 0 if k.endswith("/") else len(k), 1_700_000_000.0, f"e-{k}")
            for k in keys[start:end]
        ]
        return ScannedPage(entries, [], str(end) if end < len(keys) else None, True)


def test_scan_remote_sorts_a_spilled_listing_with_unsafe_keys_refused_and_excluded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spill, "SPILL_BOUND", 5)
    keys = [f"p/{i:02d}.txt" for i in range(20)] + [
        "p/",  # the prefix's own marker: never an entry
        "p/../escape",
        "p/skip/../x",  # unsafe but excluded: neither refused nor listed
        "p/é/ü.txt",
        "p/sub/",
        "p/z",
    ]
    store = _BackwardsStore(keys)
    scan = scan_remote(store, S3URL("bkt", "p/"), ["skip/**"], stream=True, spill_root=tmp_path)  # type: ignore[arg-type]
    assert scan.found
    assert [(type(e), getattr(e, "key", None)) for e in scan.unsafe] == [
        (UnsafeKeyError, "p/../escape")
    ]
    assert list((tmp_path / ".pos3lite").glob("sort-*/run-*"))  # 24 entries: spilled
    assert scan.stream is not None
    got = [e.key for e in scan.stream]
    want = sorted(
        (k[2:] for k in keys if k not in ("p/", "p/../escape", "p/skip/../x")), key=sort_key
    )
    assert got == want and got[-1] == "é/ü.txt"
    assert not (tmp_path / ".pos3lite").exists()


def test_scan_remote_spilled_listing_is_removed_when_closed_or_when_listing_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spill, "SPILL_BOUND", 100)
    keys = [f"p/{i:03d}" for i in range(300)]
    scan = scan_remote(_BackwardsStore(keys), S3URL("bkt", "p/"), stream=True, spill_root=tmp_path)  # type: ignore[arg-type]
    assert list((tmp_path / ".pos3lite").glob("sort-*/run-*"))
    assert scan.stream is not None and next(scan.stream).key == "000"
    scan.close()
    assert not (tmp_path / ".pos3lite").exists()
    with pytest.raises(ConnectionError):
        scan_remote(
            _BackwardsStore(keys, 250), S3URL("bkt", "p/"), stream=True, spill_root=tmp_path
        )  # type: ignore[arg-type]
    assert not (tmp_path / ".pos3lite").exists()


def test_a_sort_folder_left_by_a_killed_process_is_removed_and_a_live_one_kept(
    tmp_path: Path,
) -> None:
    import fcntl

    meta = tmp_path / ".pos3lite"
    meta.mkdir(mode=0o700)
    dead = meta / "sort-dead"
    dead.mkdir()
    (dead / "lock").write_bytes(b"")
    (dead / "run-0").write_bytes(b"x" * 100)  # what a process killed mid-sort leaves
    live = meta / "sort-live"
    live.mkdir()
    (live / "run-0").write_bytes(b"y")
    with (live / "lock").open("wb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another process is sorting right now
        stream = sorted_entries(
            (Entry(f"k{i % 7}{i}", i, 0.0) for i in range(30)), tmp_path, bound=5
        )
        next(stream)
        assert not dead.exists()
        assert (live / "run-0").read_bytes() == b"y"
        stream.close()
    assert live.exists()
