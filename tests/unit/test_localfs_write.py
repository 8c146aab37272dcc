"""Writes into a tree someone else can change: dir-fd opens with O_NOFOLLOW, a symlink
swapped in mid-write, locked temp files and their cleanup, the cache root."""

from __future__ import annotations

import importlib
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from pos3lite.errors import ConfigError, UnsafeKeyError
from pos3lite.localfs import (
    TEMP_SUFFIX,
    FolderCache,
    TempFile,
    ensure_cache_root,
    fallback_cache_root,
    make_dirs,
    remove,
    remove_stale_temps,
    walk,
    write_atomic,
)

write_module = importlib.import_module("pos3lite.localfs.write")
REPO = Path(__file__).resolve().parents[2]


def _outside_and_root(tmp_path: Path) -> tuple[Path, Path]:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    return outside, root


def _fill(data: bytes) -> Any:
    def fill(f: BinaryIO) -> None:
        f.write(data)

    return fill


# ---------------------------------------------------------------------------- symlinked folders


def test_a_symlinked_folder_on_the_way_is_an_error_naming_it(tmp_path: Path) -> None:
    outside, root = _outside_and_root(tmp_path)
    os.symlink(outside, root / "linked")
    with pytest.raises(UnsafeKeyError) as info:
        write_atomic(root / "linked" / "sub" / "f.txt", _fill(b"x"))
    assert repr(str(root / "linked")) in str(info.value)
    assert os.listdir(outside) == []  # neither the file nor the folder "sub" was made there


def test_make_dirs_refuses_a_symlink_and_makes_nothing_through_it(tmp_path: Path) -> None:
    outside, root = _outside_and_root(tmp_path)
    os.symlink(outside, root / "linked")
    with pytest.raises(UnsafeKeyError, match="is a symlink"):
        make_dirs(root / "linked" / "a" / "b")
    assert os.listdir(outside) == []
    make_dirs(root / "real" / "a" / "b")
    assert (root / "real" / "a" / "b").is_dir()


def test_a_file_where_a_folder_is_needed_is_named(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        write_atomic(tmp_path / "file" / "x", _fill(b"x"))


def test_root_may_itself_be_reached_through_a_symlink(tmp_path: Path) -> None:
    _outside, root = _outside_and_root(tmp_path)
    os.symlink(root, tmp_path / "alias")
    with pytest.raises(UnsafeKeyError):  # without root every component must be real
        write_atomic(tmp_path / "alias" / "f", _fill(b"a"))
    write_atomic(tmp_path / "alias" / "d" / "f", _fill(b"a"), root=tmp_path / "alias")
    assert (root / "d" / "f").read_bytes() == b"a"


def test_a_folder_swapped_for_a_symlink_mid_write_cannot_redirect_the_write(
    tmp_path: Path,
) -> None:
    # The race, made deterministic: the folder is swapped while fill() runs, after the
    # folder was opened and before the rename.
    outside, root = _outside_and_root(tmp_path)
    (root / "sub").mkdir()

    def fill(f: BinaryIO) -> None:
        f.write(b"payload")
        os.rename(root / "sub", tmp_path / "sub-moved")
        os.symlink(outside, root / "sub")

    write_atomic(root / "sub" / "f.txt", fill, mtime=1_000_000.0)
    assert os.listdir(outside) == []  # nothing written outside the destination
    moved = tmp_path / "sub-moved" / "f.txt"  # the write landed in the folder it opened
    assert moved.read_bytes() == b"payload" and moved.stat().st_mtime == 1_000_000.0
    assert [p.name for p in (tmp_path / "sub-moved").iterdir()] == ["f.txt"]


def test_a_folder_swapped_before_the_write_is_refused(tmp_path: Path) -> None:
    outside, root = _outside_and_root(tmp_path)
    (root / "sub").mkdir()
    assert [e.key for e in walk(root).entries] == ["sub/"]  # the walk saw a real folder
    os.rename(root / "sub", tmp_path / "sub-moved")
    os.symlink(outside, root / "sub")
    with pytest.raises(UnsafeKeyError, match="sub"):
        write_atomic(root / "sub" / "f.txt", _fill(b"x"))
    assert os.listdir(outside) == []


# ---------------------------------------------------------------------------- folder cache


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_folder_cache_opens_each_folder_once_and_closes_what_it_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _outside, root = _outside_and_root(tmp_path)
    (root / "a").mkdir()
    (root / "b").mkdir()
    opened: list[Path] = []
    real_open_dir = write_module.open_dir

    def counting(path: Path, **kw: Any) -> int:
        opened.append(Path(path))
        return int(real_open_dir(path, **kw))

    monkeypatch.setattr(write_module, "open_dir", counting)
    before = _open_fds()
    with FolderCache(size=1) as folders:
        for name in ("a/1", "a/2", "a/3", "b/1", "b/2", "a/4"):
            write_atomic(root / name, _fill(name.encode()), make_parents=False, folders=folders)
        assert _open_fds() == before + 1  # size=1: only the last folder is kept
    assert _open_fds() == before
    # a once, b once, a again after b pushed it out of the one-slot cache
    assert opened == [root / "a", root / "b", root / "a"]
    for name in ("a/1", "a/2", "a/3", "b/1", "b/2", "a/4"):
        assert (root / name).read_bytes() == name.encode()
    assert sorted(os.listdir(root / "a")) == ["1", "2", "3", "4"]  # no temp file left


def test_a_cached_folder_swapped_for_a_symlink_is_never_written_through(tmp_path: Path) -> None:
    # The cache keeps the descriptor of the folder it opened: a later swap cannot redirect
    # a write outside, exactly as for the swap during one write above.
    outside, root = _outside_and_root(tmp_path)
    (root / "sub").mkdir()
    with FolderCache() as folders:
        write_atomic(root / "sub" / "1", _fill(b"one"), folders=folders)
        os.rename(root / "sub", tmp_path / "sub-moved")
        os.symlink(outside, root / "sub")
        write_atomic(root / "sub" / "2", _fill(b"two"), folders=folders)
    assert os.listdir(outside) == []
    assert sorted(os.listdir(tmp_path / "sub-moved")) == ["1", "2"]
    # a fresh cache opens the path again and refuses the link, as a cache-less write does
    with FolderCache() as folders, pytest.raises(UnsafeKeyError, match="sub"):
        write_atomic(root / "sub" / "3", _fill(b"x"), folders=folders)


def test_a_cached_folder_removed_and_made_again_is_opened_again(tmp_path: Path) -> None:
    _outside, root = _outside_and_root(tmp_path)
    (root / "sub").mkdir()
    with FolderCache() as folders:
        write_atomic(root / "sub" / "1", _fill(b"one"), make_parents=False, folders=folders)
        (root / "sub" / "1").unlink()
        (root / "sub").rmdir()
        (root / "sub").mkdir()
        write_atomic(root / "sub" / "2", _fill(b"two"), make_parents=False, folders=folders)
        assert os.listdir(root / "sub") == ["2"]
        (root / "sub" / "2").unlink()
        (root / "sub").rmdir()
        with pytest.raises(FileNotFoundError):  # gone for good: the error a plain write gives
            write_atomic(root / "sub" / "3", _fill(b"x"), make_parents=False, folders=folders)


def test_a_symlink_at_the_target_name_is_replaced_not_written_through(tmp_path: Path) -> None:
    outside, root = _outside_and_root(tmp_path)
    (outside / "victim").write_bytes(b"keep")
    os.symlink(outside / "victim", root / "f")
    write_atomic(root / "f", _fill(b"new"))
    assert (outside / "victim").read_bytes() == b"keep"
    assert not (root / "f").is_symlink() and (root / "f").read_bytes() == b"new"


def test_ranged_writers_reopen_the_same_locked_file(tmp_path: Path) -> None:
    target = tmp_path / "big"
    with TempFile(target) as tmp:
        os.ftruncate(tmp.fd, 6)
        with tmp.reopen() as a, tmp.reopen() as b:
            b.seek(3)
            b.write(b"def")
            a.write(b"abc")
        tmp.commit(2_000_000.0)
    assert target.read_bytes() == b"abcdef" and target.stat().st_mtime == 2_000_000.0
    assert [p.name for p in tmp_path.iterdir()] == ["big"]


def test_the_mtime_is_set_after_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_replace, real_utime = os.replace, os.utime

    def replace(*a: Any, **kw: Any) -> None:
        calls.append("replace")
        real_replace(*a, **kw)

    def utime(*a: Any, **kw: Any) -> None:
        calls.append("utime")
        real_utime(*a, **kw)

    monkeypatch.setattr(write_module.os, "replace", replace)
    monkeypatch.setattr(write_module.os, "utime", utime)
    write_atomic(tmp_path / "f", _fill(b"x"), mtime=1_000_000.0)
    assert calls == ["replace", "utime"]
    assert (tmp_path / "f").stat().st_mtime == 1_000_000.0


# ---------------------------------------------------------------------------- temp-file locks

_HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from pos3lite.localfs import TempFile
    tmp = TempFile(Path(sys.argv[1]))
    tmp.writer().write(b"partial")
    print(tmp.path, flush=True)
    time.sleep(600)
    """
)


def _holder(target: Path) -> tuple[subprocess.Popen[bytes], Path]:
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(target)], stdout=subprocess.PIPE, cwd=REPO
    )
    assert child.stdout is not None
    line = child.stdout.readline().decode().strip()
    assert line.endswith(TEMP_SUFFIX), line
    return child, Path(line)


def test_a_live_writers_temp_file_is_never_removed_and_a_killed_ones_is_whatever_its_age(
    tmp_path: Path,
) -> None:
    child, temp = _holder(tmp_path / "data.bin")
    try:
        os.utime(temp, (1_000_000, 1_000_000))  # ancient by the old one-hour rule
        found = walk(tmp_path)
        assert [p for p, _ in found.temp_files] == [str(temp)]
        assert remove_stale_temps(found, now=time.time()) == 0
        assert temp.read_bytes() == b"partial"  # alive: kept, however old
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        os.utime(temp)  # fresh: age does not matter either way
        assert remove_stale_temps(walk(tmp_path), now=time.time()) == 1
        assert not temp.exists()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        assert child.stdout is not None
        child.stdout.close()


def test_a_cleaner_that_wins_the_race_before_the_lock_makes_the_writer_start_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Between O_CREAT and flock a cleaner can take the (free) lock and remove the file;
    # the writer must notice and make a new temp file, not write into an unlinked inode.
    real_flock = write_module.fcntl.flock
    raced: list[str] = []

    def flock(fd: int, op: int) -> None:
        if not raced:
            (name,) = [n for n in os.listdir(tmp_path) if n.endswith(TEMP_SUFFIX)]
            raced.append(name)
            assert remove_stale_temps([(str(tmp_path / name), 0.0)]) == 1
        real_flock(fd, op)

    monkeypatch.setattr(write_module.fcntl, "flock", flock)
    with TempFile(tmp_path / "t") as tmp:
        assert raced and tmp.name != raced[0]
        assert (tmp_path / tmp.name).exists()
        with tmp.writer() as f:
            f.write(b"ok")
        tmp.commit()
    assert (tmp_path / "t").read_bytes() == b"ok"


def test_failed_writes_remove_their_temp_file(tmp_path: Path) -> None:
    def boom(f: BinaryIO) -> None:
        f.write(b"half")
        raise OSError("disk on fire")

    with pytest.raises(OSError, match="disk on fire"):
        write_atomic(tmp_path / "f", boom)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------- cache root


def test_the_cache_root_is_created_private(tmp_path: Path) -> None:
    root = tmp_path / "a" / "cache"
    assert ensure_cache_root(root) == root
    assert stat.S_IMODE(root.stat().st_mode) == 0o700


def test_the_fallback_cache_root_is_per_user_private_and_owner_checked(tmp_path: Path) -> None:
    path = fallback_cache_root(str(tmp_path))
    assert path == tmp_path.resolve() / f"pos3lite-cache-{os.getuid()}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert fallback_cache_root(str(tmp_path)) == path  # an existing own folder is reused
    os.chmod(path, 0o777)
    with pytest.raises(ConfigError, match="writable by other users"):
        fallback_cache_root(str(tmp_path))
    os.rmdir(path)
    os.symlink(tmp_path, path)  # planted by someone else
    with pytest.raises(ConfigError, match="not a folder"):
        fallback_cache_root(str(tmp_path))


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to plant another user's folder")
def test_a_fallback_cache_root_planted_by_another_user_is_refused(tmp_path: Path) -> None:
    path = tmp_path / f"pos3lite-cache-{os.getuid()}"
    path.mkdir(mode=0o700)
    os.chown(path, 65534, 65534)
    with pytest.raises(ConfigError, match="belongs to uid 65534"):
        fallback_cache_root(str(tmp_path))


def test_default_cache_root_falls_back_without_a_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    from pos3lite._mirror import default_cache_root  # the re-export still works

    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))

    def no_home(self: Path) -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "expanduser", no_home)
    assert default_cache_root({}) == tmp_path.resolve() / f"pos3lite-cache-{os.getuid()}"


# ---------------------------------------------------------------------------- deletes


def test_deletes_never_go_through_a_symlinked_folder(tmp_path: Path) -> None:
    outside, root = _outside_and_root(tmp_path)
    (outside / "victim").write_bytes(b"keep")
    (outside / "empty").mkdir()
    os.symlink(outside, root / "sub")  # e.g. swapped in after the walk listed sub/victim
    with pytest.raises(UnsafeKeyError, match="is a symlink"):
        remove(root / "sub" / "victim")
    with pytest.raises(UnsafeKeyError, match="is a symlink"):
        remove(root / "sub" / "empty", folder=True)
    assert (outside / "victim").read_bytes() == b"keep" and (outside / "empty").is_dir()
    remove(root / "sub")  # the link itself goes, not what it points at
    assert not os.path.lexists(root / "sub") and (outside / "victim").exists()


def test_the_cache_root_is_not_made_for_a_path_outside_it(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    ensure_cache_root(root, tmp_path / "elsewhere" / "x")
    assert not root.exists()
    ensure_cache_root(root, root / "_" / "bucket")
    assert stat.S_IMODE(root.stat().st_mode) == 0o700


def test_errors_name_the_full_path_not_the_name_relative_to_a_descriptor(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "dir").mkdir()
    os.chmod(ro, 0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("this user can write into a read-only folder (root)")
        with pytest.raises(PermissionError) as info:
            write_atomic(ro / "f", _fill(b"x"))
        assert os.path.dirname(str(info.value.filename)) == str(ro)
        assert str(info.value.filename).endswith(TEMP_SUFFIX)
        with pytest.raises(PermissionError) as info:
            remove(ro / "dir", folder=True)
        assert info.value.filename == str(ro / "dir")
    finally:
        os.chmod(ro, 0o700)
