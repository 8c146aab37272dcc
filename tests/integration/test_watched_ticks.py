"""Background ticks that learn local changes from inotify (pos3lite/localfs/watch.py, issue 12
item 4), against the real SeaweedFS fixture: every request the mirror sends is counted at its
transport, every full walk and every stat of a local file is counted too."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import pos3lite
from pos3lite.localfs import watch
from pos3lite.mirror import context as ctx
from pos3lite.mirror import policy

from .conftest import get, keys
from .test_incremental_ticks import counted_mirror, lists, puts, registration, rewrite

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify: Linux"),
]

TICK = policy.Phase.TICK


class FsCalls:
    """Full walks of the local folder (the mirror's ``iter_stamps``, ``iter_walk`` and
    ``walk``; a watched tick's walk of a new folder is not one), ``os.stat`` and
    ``os.scandir`` calls made while counting."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.walks = 0
        self.stats: list[str] = []
        self.scans = 0
        real_stat, real_scandir = os.stat, os.scandir

        def counted(real: Any) -> Any:
            def walk(*a: Any, **k: Any) -> Any:
                self.walks += 1
                return real(*a, **k)

            return walk

        def stat(path: Any, *a: Any, **k: Any) -> Any:
            self.stats.append(os.fsdecode(path) if not isinstance(path, int) else f"fd {path}")
            return real_stat(path, *a, **k)

        def scandir(*a: Any, **k: Any) -> Any:
            self.scans += 1
            return real_scandir(*a, **k)

        for name in ("iter_stamps", "iter_walk", "walk"):
            monkeypatch.setattr(ctx, name, counted(getattr(ctx, name)))
        monkeypatch.setattr(os, "stat", stat)
        monkeypatch.setattr(os, "scandir", scandir)

    def take(self) -> tuple[int, list[str], int]:
        out = (self.walks, self.stats, self.scans)
        self.walks, self.stats, self.scans = 0, [], 0
        return out


@pytest.fixture
def tree_of_files(tmp_path: Path) -> Path:
    root = tmp_path / "run"
    (root / "sub" / "deep").mkdir(parents=True)
    for i in range(20):
        (root / "sub" / f"f{i:02d}.txt").write_bytes(b"x" * i)
    (root / "a.txt").write_bytes(b"aaa")
    (root / "sub" / "b.txt").write_bytes(b"bbb")
    (root / "sub" / "deep" / "c.bin").write_bytes(b"c" * 100)
    return root


@pytest.fixture
def fs(monkeypatch: pytest.MonkeyPatch) -> Iterator[FsCalls]:
    yield FsCalls(monkeypatch)


def started(m: Any, url: str, seen: Any, fs: FsCalls) -> Any:
    """The registration after its first tick (full listing and walk: the baseline)."""
    reg = registration(m, url)
    m._sync_upload(reg, TICK)
    assert lists(seen.take()) == 1
    assert reg.watcher is not None and reg.watcher.baseline
    fs.take()
    return reg


def test_a_tick_with_nothing_changed_sends_nothing_and_walks_nothing(
    bucket: str, profile: Any, tmp_path: Path, tree_of_files: Path, fs: FsCalls
) -> None:
    url = f"s3://{bucket}/run"
    with counted_mirror(tmp_path, profile) as (m, seen):
        pos3lite.upload(url, local=tree_of_files, interval=None)
        reg = started(m, url, seen, fs)
        for _ in range(3):
            m._sync_upload(reg, TICK)
            assert seen.take() == []
            assert fs.take() == (0, [], 0)  # no walk, no stat, no folder listed


def test_a_tick_after_a_change_uploads_that_file_and_stats_nothing_else(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path, tree_of_files: Path, fs: FsCalls
) -> None:
    url = f"s3://{bucket}/run"
    with counted_mirror(tmp_path, profile) as (m, seen):
        pos3lite.upload(url, local=tree_of_files, interval=None)
        reg = started(m, url, seen, fs)
        rewrite(tree_of_files / "sub" / "b.txt", b"BBB")  # same size, same second
        m._sync_upload(reg, TICK)
        assert seen.take() == [("PUT", f"{bucket}/run/sub/b.txt")]
        walks, stats, scans = fs.take()
        assert walks == 0 and scans == 0
        assert stats and {os.path.basename(s) for s in stats} == {"b.txt"}, stats
        assert get(oracle, bucket, "run/sub/b.txt") == b"BBB"
        # A deleted file: nothing sent (ticks never delete); its folder is looked at.
        (tree_of_files / "a.txt").unlink()
        m._sync_upload(reg, TICK)
        assert seen.take() == []
        assert fs.take()[0] == 0
    assert "run/a.txt" not in keys(oracle, bucket)  # the final sync listed and deleted it


def test_a_file_in_a_folder_created_between_ticks_is_uploaded(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path, tree_of_files: Path, fs: FsCalls
) -> None:
    url = f"s3://{bucket}/run"
    with counted_mirror(tmp_path, profile) as (m, seen):
        pos3lite.upload(url, local=tree_of_files, interval=None)
        reg = started(m, url, seen, fs)
        (tree_of_files / "new" / "nested").mkdir(parents=True)
        (tree_of_files / "new" / "nested" / "ckpt.bin").write_bytes(b"weights")
        (tree_of_files / "new" / "empty").mkdir()
        m._sync_upload(reg, TICK)
        sent = seen.take()
        assert lists(sent) == 0
        assert sorted(puts(sent)) == [
            f"{bucket}/run/new/empty/",
            f"{bucket}/run/new/nested/ckpt.bin",
        ]
        assert fs.take()[0] == 0  # the new folder was walked, not the tree
        # The new folders are watched now: a later write there is one PUT.
        (tree_of_files / "new" / "nested" / "ckpt.bin").write_bytes(b"weights v2")
        (tree_of_files / "new" / "empty" / "log.txt").write_bytes(b"log")
        m._sync_upload(reg, TICK)
        assert sorted(puts(seen.take())) == [
            f"{bucket}/run/new/empty/log.txt",
            f"{bucket}/run/new/nested/ckpt.bin",
        ]
        assert registration(m, url).dirs == frozenset()  # new/empty/ holds a file now
        m._sync_upload(reg, TICK)
        assert seen.take() == []
    assert get(oracle, bucket, "run/new/nested/ckpt.bin") == b"weights v2"


def test_after_a_queue_overflow_the_tick_walks_in_full_and_finds_the_change(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path, tree_of_files: Path, fs: FsCalls
) -> None:
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    if limit > 100_000:
        pytest.skip(f"max_queued_events is {limit}")
    url = f"s3://{bucket}/run"
    with counted_mirror(tmp_path, profile) as (m, seen):
        pos3lite.upload(url, local=tree_of_files, interval=None)
        reg = started(m, url, seen, fs)
        a, b = tree_of_files / "sub" / "f01.txt", tree_of_files / "sub" / "f02.txt"
        st_a, st_b = a.stat(), b.stat()
        for _ in range(limit // 2 + 10):  # only ctime changes: both are uploaded again
            os.utime(a, ns=(st_a.st_atime_ns, st_a.st_mtime_ns))
            os.utime(b, ns=(st_b.st_atime_ns, st_b.st_mtime_ns))
        rewrite(tree_of_files / "sub" / "deep" / "c.bin", b"C" * 100)  # lost in the overflow
        m._sync_upload(reg, TICK)
        assert fs.take()[0] == 1  # a full walk
        sent = seen.take()
        assert lists(sent) == 0
        assert sorted(puts(sent)) == [
            f"{bucket}/run/sub/deep/c.bin",
            f"{bucket}/run/sub/f01.txt",
            f"{bucket}/run/sub/f02.txt",
        ]
        assert reg.watcher is not None and reg.watcher.baseline  # restarted, trusted again
        m._sync_upload(reg, TICK)
        assert seen.take() == [] and fs.take() == (0, [], 0)
    assert get(oracle, bucket, "run/sub/deep/c.bin") == b"C" * 100


def test_without_inotify_ticks_walk_with_stat_and_still_upload(
    bucket: str,
    profile: Any,
    tmp_path: Path,
    tree_of_files: Path,
    fs: FsCalls,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def unavailable() -> watch.Inotify:
        raise watch.WatchUnavailable(38, "inotify not available here")

    monkeypatch.setattr(watch, "load_inotify", unavailable)
    url = f"s3://{bucket}/run"
    caplog.set_level(logging.INFO, logger="pos3lite")
    with counted_mirror(tmp_path, profile) as (m, seen):
        pos3lite.upload(url, local=tree_of_files, interval=None)
        reg = registration(m, url)
        m._sync_upload(reg, TICK)
        seen.take()
        fs.take()
        assert reg.watcher is None and reg.watch_off
        m._sync_upload(reg, TICK)
        assert seen.take() == [] and fs.take()[0] == 1  # a stat walk, no request
        rewrite(tree_of_files / "sub" / "b.txt", b"BBB")
        m._sync_upload(reg, TICK)
        assert seen.take() == [("PUT", f"{bucket}/run/sub/b.txt")]
        assert fs.take()[0] == 1
    notes = [r.getMessage() for r in caplog.records if "stat every file" in r.getMessage()]
    assert len(notes) == 1 and "inotify not available here" in notes[0]


def test_the_first_tick_watches_before_its_walk(
    oracle: Any,
    bucket: str,
    profile: Any,
    tmp_path: Path,
    tree_of_files: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A file changed during the first pass, after it was walked, uploaded and recorded, is
    caught by the next tick: the watches existed before the walk."""
    url = f"s3://{bucket}/run"
    real = ctx._Mirror._execute_upload

    def execute(self: Any, *a: Any, **k: Any) -> Any:
        out = real(self, *a, **k)
        rewrite(tree_of_files / "a.txt", b"AAA")  # before the pass ends
        return out

    with counted_mirror(tmp_path, profile) as (m, seen):
        pos3lite.upload(url, local=tree_of_files, interval=None)
        reg = registration(m, url)
        with monkeypatch.context() as mp:
            mp.setattr(ctx._Mirror, "_execute_upload", execute)
            m._sync_upload(reg, TICK)
        seen.take()
        m._sync_upload(reg, TICK)
        assert seen.take() == [("PUT", f"{bucket}/run/a.txt")]
        assert get(oracle, bucket, "run/a.txt") == b"AAA"


def test_listing_ticks_flush_and_failed_passes_walk_in_full(
    bucket: str,
    profile: Any,
    tmp_path: Path,
    tree_of_files: Path,
    fs: FsCalls,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"s3://{bucket}/run"
    with counted_mirror(tmp_path, profile) as (m, seen):
        pos3lite.upload(url, local=tree_of_files, interval=None)
        reg = started(m, url, seen, fs)
        walked = []
        for i in range(1, 11):
            m._sync_upload(reg, TICK)
            if fs.take()[0]:
                walked.append((i, lists(seen.take())))
        assert walked == [(10, 1)]  # the tenth tick lists and walks; the others neither
        pos3lite.flush(url)  # promises every local change: a stat walk
        assert fs.take()[0] == 1 and seen.take() == []
        # A failed tick: the next pass lists and walks in full.
        rewrite(tree_of_files / "a.txt", b"AAA")
        with monkeypatch.context() as mp:
            mp.setattr(ctx._Mirror, "_upload_changed", lambda *a, **k: 1 / 0)
            with pytest.raises(ZeroDivisionError):
                m._sync_upload(reg, TICK)
        assert reg.watcher is not None and not reg.watcher.baseline
        fs.take()
        m._sync_upload(reg, TICK)
        sent = seen.take()
        assert lists(sent) == 1 and puts(sent) == [f"{bucket}/run/a.txt"]
        assert fs.take()[0] == 1
        assert reg.watcher.baseline
        m._sync_upload(reg, TICK)
        assert seen.take() == [] and fs.take() == (0, [], 0)


def test_a_forked_child_drops_the_watcher_and_the_exit_closes_it(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path, tree_of_files: Path, fs: FsCalls
) -> None:
    url = f"s3://{bucket}/run"
    with counted_mirror(tmp_path, profile) as (m, seen):
        pos3lite.upload(url, local=tree_of_files, interval=None)
        reg = started(m, url, seen, fs)
        w = reg.watcher
        fd = w.fd
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            ok = w.fd == -1 and m._uploads == {} and w.drain().full
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        rewrite(tree_of_files / "a.txt", b"AAA")
        m._sync_upload(reg, TICK)  # the parent's queue was left alone
        assert seen.take() == [("PUT", f"{bucket}/run/a.txt")]
    assert w.fd == -1
    with contextlib.suppress(FileNotFoundError):
        assert os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:inotify"


def test_a_lost_record_is_uploaded_by_the_next_full_walk(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path, tree_of_files: Path, fs: FsCalls
) -> None:
    """A watched tick trusts the records when no event came (nothing changed locally); a
    record lost meanwhile (a failed state write) is found by the next full walk: here a
    flush, else the tenth tick or the exit."""
    url = f"s3://{bucket}/run"
    with counted_mirror(tmp_path, profile) as (m, seen):
        pos3lite.upload(url, local=tree_of_files, interval=None)
        reg = started(m, url, seen, fs)
        name = ctx._state_name(reg.url, reg.profile, reg.local_path)
        m.state_store.update(name, [], forget=["sub/b.txt"])
        m._sync_upload(reg, TICK)
        assert seen.take() == []
        pos3lite.flush(url)
        assert seen.take() == [("PUT", f"{bucket}/run/sub/b.txt")]


def _mutations(root: Path) -> list[Any]:
    """Changes between ticks, each a function of the tree's root."""

    def step1() -> None:
        (root / "sub" / "f03.txt").write_bytes(b"grown by some bytes")
        (root / "skip.log").write_bytes(b"excluded")
        (root / "sub" / "x.pos3lite-tmp").write_bytes(b"a temp file")
        os.symlink(root / "a.txt", root / "alink")

    def step2() -> None:
        for p in (root / "sub" / "deep").iterdir():
            p.unlink()  # deep/ is empty now
        os.rename(root / "sub" / "f04.txt", root / "renamed.txt")
        (root / "n1" / "n2").mkdir(parents=True)
        (root / "n1" / "n2" / "w.bin").write_bytes(b"w")

    def step3() -> None:
        (root / "sub" / "deep" / "again.txt").write_bytes(b"again")
        os.rename(root / "n1", root / "n1moved")
        os.chmod(root / "a.txt", 0o600)

    return [step1, step2, step3]


def test_watched_ticks_send_what_stat_walk_ticks_send(
    bucket: str, profile: Any, tmp_path: Path
) -> None:
    """The same changes, once with the watcher and once with stat walks: the same PUTs
    after every tick (excluded, temp files and symlinks, an emptied folder, renames, new
    and moved folders)."""
    sent: dict[bool, list[list[str]]] = {}
    for watched in (True, False):
        root = tmp_path / f"run-{watched}"
        (root / "sub" / "deep").mkdir(parents=True)
        for i in range(6):
            (root / "sub" / f"f{i:02d}.txt").write_bytes(b"x" * i)
        (root / "a.txt").write_bytes(b"aaa")
        (root / "sub" / "deep" / "c.bin").write_bytes(b"c")
        url = f"s3://{bucket}/eq-{watched}"
        per_tick = []
        with counted_mirror(tmp_path / f"m-{watched}", profile) as (m, seen):
            pos3lite.upload(url, local=root, interval=None, exclude=["*.log"])
            reg = registration(m, url)
            reg.watch_off = not watched
            m._sync_upload(reg, TICK)
            seen.take()
            for step in _mutations(root):
                step()
                m._sync_upload(reg, TICK)
                reqs = seen.take()
                assert lists(reqs) == 0
                per_tick.append(sorted(p.split("/", 2)[2] for p in puts(reqs)))
            assert (reg.watcher is not None) is watched
        sent[watched] = per_tick
    assert sent[True] == sent[False]
    assert sent[True][0] == ["sub/f03.txt"]
    # deep/ emptied: no marker, its old keys are still on S3 (ticks never delete).
    assert sent[True][1] == ["n1/n2/w.bin", "renamed.txt"]
    assert "n1moved/n2/w.bin" in sent[True][2] and "a.txt" in sent[True][2]
