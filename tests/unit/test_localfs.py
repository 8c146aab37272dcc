"""Local side: walk order and symlink policy, safe joins, atomic writes, the rate limiter."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from pos3lite.engine.model import Action, Entry, Reason
from pos3lite.errors import UnsafeKeyError
from pos3lite.localfs import TEMP_SUFFIX, file_md5, safe_join, walk, write_atomic
from pos3lite.transfer import Batch, ByteRateLimiter


def make_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def test_walk_lists_files_and_only_empty_dirs_in_utf8_key_order(tmp_path: Path) -> None:
    make_tree(tmp_path, {"a.txt": b"1", "a/b": b"22", "a0": b"", "é": b"x", "z": b"z"})
    (tmp_path / "empty" / "deeper").mkdir(parents=True)
    got = walk(tmp_path)
    assert [e.key for e in got.entries] == ["a.txt", "a/b", "a0", "empty/deeper/", "z", "é"]
    sizes = {e.key: e.size for e in got.entries}
    assert sizes["a/b"] == 2 and sizes["empty/deeper/"] == 0
    assert got.skipped == []


def test_walk_of_a_missing_folder_is_empty_and_of_a_file_is_an_error(tmp_path: Path) -> None:
    assert walk(tmp_path / "nope").entries == []
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        walk(tmp_path / "f")


@pytest.mark.parametrize("kw", [{"follow_symlinks": True}, {"follow_dir_links": True}])
def test_walk_follows_symlinks_on_request_and_skips_broken_links_and_loops(
    tmp_path: Path, kw: dict[str, bool]
) -> None:
    outside = tmp_path / "outside"
    make_tree(outside, {"real.txt": b"real", "d/inner.txt": b"in"})
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside / "real.txt", root / "link.txt")
    os.symlink(outside / "d", root / "linked-dir")
    os.symlink(tmp_path / "missing", root / "broken")
    os.symlink(root, root / "loop")
    got = walk(root, **kw)
    keys = [e.key for e in got.entries]
    assert keys == ["link.txt", "linked-dir/inner.txt"]
    assert sorted(got.skipped) == ["broken", "loop/"]


def test_walk_ignores_pos3lite_temp_files(tmp_path: Path) -> None:
    make_tree(tmp_path, {"keep": b"k", f".keep.abc123{TEMP_SUFFIX}": b"partial"})
    assert [e.key for e in walk(tmp_path).entries] == ["keep"]


@pytest.mark.parametrize(
    "key", ["../x", "a/../../x", "/etc/passwd", "a\\b", "a\x00b", "a//b", "./a", ""]
)
def test_safe_join_refuses_keys_that_escape(tmp_path: Path, key: str) -> None:
    with pytest.raises(UnsafeKeyError) as info:
        safe_join(tmp_path, key)
    assert info.value.key in (key, key.rstrip("/"))


def test_safe_join_accepts_ordinary_keys(tmp_path: Path) -> None:
    assert safe_join(tmp_path, "a b/c+d~é") == tmp_path / "a b" / "c+d~é"
    assert safe_join(tmp_path, "dir/") == tmp_path / "dir"


def test_write_atomic_replaces_in_one_step_and_sets_mtime(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.bin"

    def fill(f: BinaryIO) -> None:
        f.write(b"new bytes")
        assert not target.exists()  # nothing at the final path while writing

    write_atomic(target, fill, mtime=1_000_000_000.0)
    assert target.read_bytes() == b"new bytes"
    assert target.stat().st_mtime == 1_000_000_000.0
    assert os.listdir(target.parent) == ["f.bin"]


def test_write_atomic_failure_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")

    def fill(f: BinaryIO) -> None:
        f.write(b"half")
        raise ConnectionResetError("boom")

    with pytest.raises(ConnectionResetError):
        write_atomic(target, fill)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f"]


def test_file_md5(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abc")
    assert file_md5(tmp_path / "f", block_size=1) == "900150983cd24fb0d6963f7d28e17f72"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s


def test_rate_limiter_books_one_shared_timeline() -> None:
    clock = FakeClock()
    lim = ByteRateLimiter(1000, clock=clock, sleep=clock.sleep)
    lim.consume(500)
    lim.consume(500)
    lim.consume(0)
    lim.consume(-100)  # a rewind never waits
    assert clock.slept == [0.5, 0.5]
    clock.now += 10  # idle time earns no burst credit
    lim.consume(1000)
    assert clock.slept[-1] == 1.0


@pytest.mark.parametrize("rate", [0, -1, float("nan")])
def test_rate_limiter_rejects_non_positive_rates(rate: float) -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        ByteRateLimiter(rate)


def test_infinite_rate_never_waits() -> None:
    clock = FakeClock()
    ByteRateLimiter(float("inf"), clock=clock, sleep=clock.sleep).consume(10**9)
    assert clock.slept == []


def test_batch_runs_everything_and_collects_failures() -> None:
    actions = [Action(f"k{i}", Reason.MISSING, Entry(f"k{i}", 1, 0.0), None) for i in range(50)]
    done: list[str] = []

    def fn(a: Action) -> None:
        if a.key.endswith("7"):
            raise OSError(f"failed {a.key}")
        done.append(a.key)

    with ThreadPoolExecutor(4) as ex:
        batch = Batch(ex)
        batch.run(actions, fn, window=3)
        failures = batch.failures
    assert len(done) == 45
    assert sorted(str(f) for f in failures) == sorted(
        f"failed k{i}" for i in range(50) if str(i).endswith("7")
    )


def test_batch_keeps_the_window_and_refills_it_a_quarter_at_a_time() -> None:
    # The feeding thread sleeps until a quarter of the window is free (not at every
    # completion: each wake-up is a thread hand-off), and never exceeds the window.
    with ThreadPoolExecutor(3) as ex:
        batch = Batch(ex)
        waits: list[int] = []
        most = [0]
        real_wait, real_submit = batch.wait_below, batch.submit

        def wait_below(n: int) -> None:
            waits.append(n)
            real_wait(n)

        def submit(fn: Any, *args: Any) -> None:
            real_submit(fn, *args)
            most[0] = max(most[0], batch._pending)

        batch.wait_below = wait_below  # type: ignore[method-assign]
        batch.submit = submit  # type: ignore[method-assign]
        done: list[int] = []
        batch.run(range(40), lambda i: (time.sleep(0.001), done.append(i)), window=8)
    assert sorted(done) == list(range(40))
    assert most[0] <= 8
    # wait_below(7): go on once at most 6 are pending, so every wait is followed by at least
    # two submissions; the final join is wait_below(1)
    assert set(waits[:-1]) <= {7} and waits[-1] == 1
    assert len(waits) <= 40 // 2 + 1


def test_batch_wakes_waiters_of_different_thresholds() -> None:
    release = threading.Event()
    with ThreadPoolExecutor(4) as ex:
        batch = Batch(ex)
        for _ in range(4):
            batch.submit(release.wait)
        woke: list[int] = []
        waiters = [
            threading.Thread(target=lambda n=n: (batch.wait_below(n), woke.append(n)))
            for n in (1, 3)
        ]
        for t in waiters:
            t.start()
        time.sleep(0.05)
        assert woke == []
        release.set()
        for t in waiters:
            t.join(5)
    assert sorted(woke) == [1, 3]


@pytest.mark.parametrize("kw", [{"destination": True}, {"follow_dir_links": False}])
def test_download_destinations_neither_list_nor_enter_symlinks(
    tmp_path: Path, kw: dict[str, bool]
) -> None:
    outside = tmp_path / "outside"
    make_tree(outside, {"precious.txt": b"keep"})
    root = tmp_path / "root"
    make_tree(root, {"own.txt": b"o"})
    os.symlink(outside, root / "linked")
    os.symlink(outside / "precious.txt", root / "file-link")
    got = walk(root, **kw)
    # Not listed, so never deleted; not in skipped, so a remote key there is still planned
    # and its write fails naming the link (never written through).
    assert [e.key for e in got.entries] == ["own.txt"]
    assert got.skipped == []
    assert sorted(got.links) == ["file-link", "linked/"]


def test_unlocked_temp_files_are_removed_whatever_their_age(tmp_path: Path) -> None:
    from pos3lite.localfs import remove_stale_temps

    old = tmp_path / "sub" / f".a.bin.0123456789ab{TEMP_SUFFIX}"
    fresh = tmp_path / f".b.bin.ba9876543210{TEMP_SUFFIX}"
    make_tree(
        tmp_path, {"sub/a.bin": b"a", old.relative_to(tmp_path).as_posix(): b"x", fresh.name: b"y"}
    )
    os.utime(old, (1_000_000, 1_000_000))
    found = walk(tmp_path)
    assert sorted(p for p, _ in found.temp_files) == sorted([str(old), str(fresh)])
    # No writer holds their lock (a writer that died, or an older pos3lite): both go.
    assert remove_stale_temps(found, now=fresh.stat().st_mtime + 10) == 2
    assert not old.exists() and not fresh.exists()
    assert (tmp_path / "sub" / "a.bin").read_bytes() == b"a"
