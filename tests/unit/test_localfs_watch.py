"""The inotify watcher of background ticks (pos3lite/localfs/watch.py), on the real file
system under tmp_path: each kind of change is reported, its rows equal the full walk's rows
for the same files, and every doubt asks for a full walk."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import mmap
import os
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pos3lite.errors import UnsafeKeyError
from pos3lite.localfs import Walk, iter_stamps, watch
from pos3lite.localfs.watch import Changes, Watcher, WatchUnavailable, parse_events, stamp_rows

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify: Linux")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "tree"
    (r / "sub").mkdir(parents=True)
    (r / "a.txt").write_bytes(b"aaa")
    (r / "sub" / "b.txt").write_bytes(b"bbb")
    return r


@pytest.fixture
def watcher(root: Path) -> Iterator[Watcher]:
    w = Watcher(root)
    yield w
    w.close()


def rows_of(root: Path, ch: Changes) -> dict[str, tuple[object, ...]]:
    report = Walk()
    return {r[0].decode(): r[1:] for r in stamp_rows(root, ch, max_key_bytes=1024, report=report)}


def walk_rows(root: Path) -> dict[str, tuple[object, ...]]:
    return {r[0].decode(): r[1:] for r in iter_stamps(root)}


def test_nothing_changed_gives_no_change(watcher: Watcher) -> None:
    assert watcher.watched == 2  # the root and sub/
    ch = watcher.drain()
    assert ch.empty and not ch.full


def test_a_created_file_is_reported_with_the_walks_row(root: Path, watcher: Watcher) -> None:
    (root / "sub" / "new.bin").write_bytes(b"new")
    ch = watcher.drain()
    assert ch.files == {"sub/new.bin"} and not ch.full
    assert rows_of(root, ch) == {"sub/new.bin": walk_rows(root)["sub/new.bin"]}


def test_a_file_rewritten_in_place_is_reported(root: Path, watcher: Watcher) -> None:
    with open(root / "a.txt", "r+b") as f:
        f.write(b"AAA")
    ch = watcher.drain()
    assert ch.files == {"a.txt"}
    assert rows_of(root, ch)["a.txt"] == walk_rows(root)["a.txt"]


def test_an_append_to_a_file_still_open_is_reported(root: Path, watcher: Watcher) -> None:
    """IN_MODIFY: a log kept open is seen at the tick, not only when it is closed."""
    with open(root / "sub" / "b.txt", "ab") as f:
        f.write(b"more")
        f.flush()
        ch = watcher.drain()
        assert ch.files == {"sub/b.txt"}
        assert rows_of(root, ch)["sub/b.txt"][0] == 7


def test_a_write_through_mmap_is_reported_when_the_file_is_closed(
    root: Path, watcher: Watcher
) -> None:
    """IN_CLOSE_WRITE: a write through mmap gives no IN_MODIFY, but closing the descriptor
    opened for writing does."""
    fd = os.open(root / "a.txt", os.O_RDWR)
    with mmap.mmap(fd, 3) as m:
        m[:3] = b"xyz"
        m.flush()
    assert watcher.drain().empty  # the kernel said nothing about the mmap write itself
    os.close(fd)
    assert watcher.drain().files == {"a.txt"}
    assert (root / "a.txt").read_bytes() == b"xyz"


def test_metadata_changes_are_reported(root: Path, watcher: Watcher) -> None:
    os.utime(root / "a.txt", ns=(1, 2))
    os.chmod(root / "sub" / "b.txt", 0o600)
    assert watcher.drain().files == {"a.txt", "sub/b.txt"}


def test_a_file_renamed_in_is_reported_and_one_renamed_out_is_not(
    root: Path, tmp_path: Path, watcher: Watcher
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"out")
    os.rename(outside, root / "sub" / "in.txt")
    os.rename(root / "a.txt", tmp_path / "gone.txt")
    ch = watcher.drain()
    assert ch.files == {"sub/in.txt"}
    assert ch.touched == {"", "sub/"}  # both folders' emptiness is looked at again
    assert set(rows_of(root, ch)) == {"sub/in.txt"}


def test_a_deleted_file_gives_no_row_and_its_emptied_folder_one(
    root: Path, watcher: Watcher
) -> None:
    (root / "sub" / "b.txt").unlink()
    ch = watcher.drain()
    assert ch.files == set() and ch.touched == {"sub/"}
    assert rows_of(root, ch) == {"sub/": (None, None, None, None)}
    assert "sub/" in walk_rows(root)  # the walk lists it as an empty folder too


def test_a_new_nested_folder_with_files_written_at_once_is_watched_and_walked(
    root: Path, watcher: Watcher
) -> None:
    """Files created before the new folders' watches existed are found by the walk of the
    new folder; later writes in it are events."""
    (root / "n" / "m").mkdir(parents=True)
    (root / "n" / "m" / "f.txt").write_bytes(b"f")
    (root / "n" / "e").mkdir()
    ch = watcher.drain()
    assert ch.walk == {"n/"}
    got = rows_of(root, ch)
    full = walk_rows(root)
    assert got == {k: full[k] for k in ("n/e/", "n/m/f.txt")}
    assert watcher.watched == 5  # "", sub/, n/, n/m/, n/e/
    (root / "n" / "m" / "g.txt").write_bytes(b"g")
    assert watcher.drain().files == {"n/m/g.txt"}


def test_a_folder_renamed_within_the_tree_reports_under_its_new_name(
    root: Path, watcher: Watcher
) -> None:
    os.rename(root / "sub", root / "moved")
    ch = watcher.drain()
    assert ch.gone == {"sub/"} and ch.walk == {"moved/"} and not ch.full
    (root / "moved" / "b.txt").write_bytes(b"changed")
    assert watcher.drain().files == {"moved/b.txt"}


def test_a_folder_moved_out_or_deleted_is_no_longer_watched(
    root: Path, tmp_path: Path, watcher: Watcher
) -> None:
    (root / "d2" / "deep").mkdir(parents=True)
    assert watcher.drain().walk == {"d2/"}
    os.rename(root / "sub", tmp_path / "away")
    (root / "d2" / "deep").rmdir()
    (root / "d2").rmdir()
    ch = watcher.drain()
    assert ch.gone >= {"sub/", "d2/"} and not ch.full
    (tmp_path / "away" / "b.txt").write_bytes(b"elsewhere")
    ch = watcher.drain()
    assert ch.empty, ch
    assert watcher.watched == 1


def test_symlinks_are_not_followed(root: Path, tmp_path: Path, watcher: Watcher) -> None:
    target = tmp_path / "target"
    target.mkdir()
    os.symlink(target, root / "link")
    os.symlink(root / "a.txt", root / "flink")
    ch = watcher.drain()
    assert ch.files == {"link", "flink"} and ch.walk == set()
    report = Walk()
    assert stamp_rows(root, ch, max_key_bytes=1024, report=report) == []
    assert sorted(report.skipped) == ["flink", "link"]
    (target / "x.txt").write_bytes(b"x")  # inside the link's target: not watched
    assert watcher.drain().empty
    assert watcher.watched == 2


def test_a_name_that_is_not_utf8_is_reported_as_the_walk_reports_it(
    root: Path, watcher: Watcher
) -> None:
    bad = os.fsencode(root / "sub") + b"/caf\xe9.txt"
    with open(bad, "wb") as f:
        f.write(b"x")
    ch = watcher.drain()
    report, walked = Walk(), Walk()
    assert stamp_rows(root, ch, max_key_bytes=1024, report=report) == []
    list(iter_stamps(root, report=walked))
    assert [type(e) for e in report.failures] == [UnsafeKeyError]
    assert [str(e) for e in report.failures] == [str(e) for e in walked.failures]


def test_a_queue_overflow_asks_for_a_full_walk(root: Path, watcher: Watcher) -> None:
    """More events than fs.inotify.max_queued_events (16,384 by default): the kernel drops
    the rest and queues IN_Q_OVERFLOW. Alternating two files keeps the kernel from merging
    identical events."""
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    if limit > 100_000:
        pytest.skip(f"max_queued_events is {limit}")
    a, b = root / "a.txt", root / "sub" / "b.txt"
    for i in range(limit // 2 + 10):
        os.utime(a, ns=(i, i))
        os.utime(b, ns=(i, i))
    ch = watcher.drain()
    assert ch.full
    watcher.restart()
    assert watcher.drain().empty and watcher.watched == 2


def test_a_watch_dropped_under_us_asks_for_a_full_walk(root: Path, watcher: Watcher) -> None:
    """IN_IGNORED for a folder still in the tree (as after an unmount)."""
    wd = watcher._keys["sub/"]
    assert watcher.lib.rm_watch(watcher.fd, wd) == 0
    assert watcher.drain().full


def test_the_root_moved_or_deleted_asks_for_a_full_walk(root: Path, tmp_path: Path) -> None:
    w = Watcher(root)
    os.rename(root, tmp_path / "elsewhere")
    assert w.drain().full
    w.close()
    with pytest.raises(FileNotFoundError):
        Watcher(root)


def test_a_forked_child_never_reads_the_parents_queue(root: Path, watcher: Watcher) -> None:
    (root / "a.txt").write_bytes(b"before fork")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0 if watcher.drain().full else 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert watcher.drain().files == {"a.txt"}  # still there for the parent


def test_close_closes_the_inotify_descriptor(root: Path) -> None:
    w = Watcher(root)
    fd = w.fd
    assert os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify"
    w.close()
    w.close()
    assert w.fd == -1 and w.drain().full
    with contextlib.suppress(FileNotFoundError):
        assert os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:inotify"


def test_an_unavailable_inotify_is_reported(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail() -> watch.Inotify:
        raise WatchUnavailable(errno.ENOSYS, "no inotify here")

    monkeypatch.setattr(watch, "load_inotify", fail)
    with pytest.raises(WatchUnavailable):
        Watcher(root)
    monkeypatch.undo()
    monkeypatch.setattr(watch.sys, "platform", "darwin")
    with pytest.raises(WatchUnavailable, match="Linux only"):
        watch.load_inotify()


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EMFILE])
def test_a_watch_limit_makes_the_watcher_unavailable_and_leaves_nothing_open(
    root: Path, err: int
) -> None:
    real = watch.load_inotify()
    opened: list[int] = []
    calls = []

    def init1(flags: int) -> int:
        fd = real.init1(flags)
        opened.append(fd)
        return fd

    def add_watch(fd: int, path: bytes, mask: int) -> int:
        calls.append(path)
        if len(calls) == 2:  # the root is watched, the next folder hits the limit
            ctypes.set_errno(err)
            return -1
        return real.add_watch(fd, path, mask)

    lib = watch.Inotify(init1, add_watch, real.rm_watch)
    with pytest.raises(WatchUnavailable) as info:
        Watcher(root, lib=lib)
    assert info.value.errno == err
    with pytest.raises(OSError):
        os.fstat(opened[0])  # closed


def test_parse_events_reads_several_events_and_odd_names() -> None:
    def event(wd: int, mask: int, cookie: int, name: bytes, pad: int) -> bytes:
        raw = name + b"\0" * pad if name or pad else b""
        return struct.pack("iIII", wd, mask, cookie, len(raw)) + raw

    names = [b"plain.txt", b"caf\xe9 \xff\xfe", b"with\nnewline and spaces", "日本".encode()]
    buf = b"".join(
        event(i + 1, watch.IN_CREATE, 0, n, 16 - len(n) % 16) for i, n in enumerate(names)
    )
    buf += event(-1, watch.IN_Q_OVERFLOW, 0, b"", 0)
    buf += event(3, watch.IN_MOVED_TO | watch.IN_ISDIR, 77, b"d", 3)
    got = parse_events(buf)
    assert got == [(i + 1, watch.IN_CREATE, 0, n) for i, n in enumerate(names)] + [
        (-1, watch.IN_Q_OVERFLOW, 0, b""),
        (3, watch.IN_MOVED_TO | watch.IN_ISDIR, 77, b"d"),
    ]
    with pytest.raises(ValueError, match="truncated"):
        parse_events(buf[:-2])
    with pytest.raises(ValueError, match="truncated"):
        parse_events(buf[:10])


def test_an_overflow_event_in_a_read_asks_for_a_full_walk(root: Path, watcher: Watcher) -> None:
    """The parser's IN_Q_OVERFLOW reaches the watcher's decision (a crafted event, applied
    as a read would)."""
    out = Changes()
    for event in parse_events(struct.pack("iIII", -1, watch.IN_Q_OVERFLOW, 0, 0)):
        watcher._apply(event, out)
    assert watcher.drain().full


def test_a_symlinked_root_is_followed_as_the_walk_follows_it(root: Path, tmp_path: Path) -> None:
    link = tmp_path / "link-to-tree"
    os.symlink(root, link)
    w = Watcher(link)
    try:
        (root / "sub" / "b.txt").write_bytes(b"changed")
        ch = w.drain()
        assert ch.files == {"sub/b.txt"}
        assert rows_of(link, ch) == {"sub/b.txt": walk_rows(link)["sub/b.txt"]}
    finally:
        w.close()
