"""The local walk: UTF-8 key order, laziness, depth, symlink policy, names S3 cannot hold."""

from __future__ import annotations

import importlib
import inspect
import itertools
import logging
import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pos3lite.errors import Pos3liteError, UnsafeKeyError
from pos3lite.localfs import MAX_KEY_BYTES, Walk, iter_walk, walk

# The module (the package's ``walk`` attribute is the function of the same name).
walk_module = importlib.import_module("pos3lite.localfs.walk")


def make_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def utf8_sorted(keys: list[str]) -> list[str]:
    return sorted(keys, key=lambda k: k.encode("utf-8"))


# ---------------------------------------------------------------------------- order


def test_folder_names_sort_as_name_slash_against_their_siblings(tmp_path: Path) -> None:
    # '-' (0x2d) < '.' (0x2e) < '/' (0x2f) < '0' (0x30): folder "a" sorts as "a/", so a
    # walk that sorted bare names ("a" < "a-b") would list a/x before a-b and a.b.
    make_tree(tmp_path, {"a/x": b"", "a-b": b"", "a.b": b"", "a0": b"", "b/c/d": b"", "ab/y": b""})
    (tmp_path / "a-b.d").mkdir()
    (tmp_path / "a-b.d" / "z").write_bytes(b"")
    keys = [e.key for e in walk(tmp_path).entries]
    assert keys == ["a-b", "a-b.d/z", "a.b", "a/x", "a0", "ab/y", "b/c/d"]
    assert keys == utf8_sorted(keys)


def test_non_ascii_names_sort_by_utf8_bytes_not_code_points_of_folders(tmp_path: Path) -> None:
    # U+FFFD (EF BF BD) vs U+10000 (F0 90 80 80): UTF-16 order would swap them.
    make_tree(
        tmp_path,
        {"\ufffd/f": b"", "\U00010000": b"", "z": b"", "\u00e9/g": b"", "\u00e9.txt": b""},
    )
    keys = [e.key for e in walk(tmp_path).entries]
    assert keys == ["z", "\u00e9.txt", "\u00e9/g", "\ufffd/f", "\U00010000"]


def test_random_trees_come_out_in_global_utf8_key_order(tmp_path: Path) -> None:
    rng = random.Random(8)
    alphabet = ["a", "b", "-", ".", "0", " ", "\u00e9", "_", "~", "\U0001f600"]
    for _ in range(300):
        parts = ["x" + "".join(rng.choices(alphabet, k=rng.randint(0, 3))) for _ in range(4)]
        p = tmp_path.joinpath(*parts[: rng.randint(1, 4)])
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"x") if rng.random() < 0.8 else p.mkdir(exist_ok=True)
        except OSError:
            continue  # a file where a folder was wanted, or the reverse
    expected = []  # the oracle: os.walk, then one global sort of the keys
    for d, dirs, files in os.walk(tmp_path):
        rel = Path(d).relative_to(tmp_path).as_posix()
        prefix = "" if rel == "." else rel + "/"
        expected += [prefix + f for f in files]
        if not dirs and not files:
            expected.append(prefix)
    keys = [e.key for e in walk(tmp_path).entries]
    assert len(keys) > 150
    assert keys == utf8_sorted(expected)


def test_the_walk_is_lazy_one_folder_listing_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tree(tmp_path, {f"d{i}/f": b"" for i in range(20)})
    listed: list[object] = []
    real = os.scandir

    def counting(fd: int) -> object:
        listed.append(fd)
        return real(fd)

    it = iter_walk(tmp_path)
    assert inspect.isgenerator(it)
    monkeypatch.setattr(walk_module.os, "scandir", counting)
    first = next(it)
    assert first.key == "d0/f"
    assert len(listed) == 2  # the root and d0 only, not the 19 other folders
    rest = list(it)
    assert len(rest) == 19 and len(listed) == 21


def test_the_report_fills_as_the_iterator_runs(tmp_path: Path) -> None:
    make_tree(tmp_path, {"a": b"", "z": b""})
    os.symlink(tmp_path / "a", tmp_path / "m-link")
    report = Walk()
    keys = [e.key for e in iter_walk(tmp_path, report=report)]
    assert keys == ["a", "z"] and report.entries == [] and report.skipped == ["m-link"]


# ---------------------------------------------------------------------------- depth


@pytest.fixture
def deep_root(tmp_path: Path) -> Iterator[Path]:
    """A folder for a very deep tree, removed with ``rm -rf`` (pytest's recursive rmtree
    would hit RecursionError on it)."""
    root = tmp_path / "deep"
    root.mkdir()
    yield root
    subprocess.run(["rm", "-rf", str(root)], check=True)


def _deep_chain(root: Path, depth: int, name: str = "d", file_every: int = 0) -> None:
    """``depth`` nested folders made through descriptors (the path outgrows PATH_MAX)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for level in range(1, depth + 1):
            os.mkdir(name, dir_fd=fd)
            nxt = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
            if file_every and level % file_every == 0:
                os.close(os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    finally:
        os.close(fd)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_five_thousand_nested_folders_walk_and_long_keys_fail_one_by_one(deep_root: Path) -> None:
    tmp_path = deep_root
    _deep_chain(tmp_path, 5000, file_every=100)
    before = _open_fds()
    got = walk(tmp_path)
    assert _open_fds() == before  # every folder descriptor closed again
    # Level n holds "d/" * n + "f": listed while that key fits in 1,024 bytes (n <= 511).
    # ("d/" * 200 + "f" sorts before "d/" * 100 + "f": 'd' < 'f').
    assert [e.key for e in got.entries] == utf8_sorted(
        ["d/" * n + "f" for n in range(100, 501, 100)]
    )
    long_ones = utf8_sorted(["d/" * n + "f" for n in range(600, 5001, 100)])
    assert [f.key for f in got.failures if isinstance(f, UnsafeKeyError)] == long_ones
    assert all(isinstance(f, Pos3liteError) for f in got.failures)
    assert "1201 bytes" in str(got.failures[-1]) and str(tmp_path) in str(got.failures[-1])
    assert set(long_ones) <= set(got.skipped)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_levels_beyond_the_descriptor_budget_are_reopened_on_the_way_back(tmp_path: Path) -> None:
    # Each level holds the next level "a" and a side folder "z" with a file: the side folders
    # are entered after the deep descent returns, when their parents' descriptors were closed.
    depth = walk_module.FD_BUDGET * 3
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    expected = []
    rel = ""
    for _ in range(depth):
        os.mkdir("z", dir_fd=fd)
        os.close(os.open("z/f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
        expected.append(rel + "z/f")
        os.mkdir("a", dir_fd=fd)
        nxt = os.open("a", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = nxt
        rel += "a/"
    os.close(fd)
    expected.append(rel)  # the deepest "a" is empty
    seen_max = 0
    before = _open_fds()
    keys = []
    for e in iter_walk(tmp_path):
        seen_max = max(seen_max, _open_fds() - before)
        keys.append(e.key)
    assert keys == utf8_sorted(expected)
    assert seen_max <= walk_module.FD_BUDGET + 3
    assert _open_fds() == before


def test_abandoning_the_iterator_closes_its_descriptors(tmp_path: Path) -> None:
    _deep_chain(tmp_path, 30, file_every=1)
    before = _open_fds()
    it: Iterator[object] = iter_walk(tmp_path)
    next(it)
    assert _open_fds() > before
    it.close()  # type: ignore[attr-defined]
    assert _open_fds() == before


# ---------------------------------------------------------------------------- symlinks


def _linked_tree(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    make_tree(outside, {"real.txt": b"real", "d/inner.txt": b"in"})
    root = tmp_path / "root"
    make_tree(root, {"own.txt": b"o"})
    os.symlink(outside / "real.txt", root / "link.txt")
    os.symlink(outside / "d", root / "linked-dir")
    os.symlink(tmp_path / "missing", root / "broken")
    return root


def test_symlinks_in_sources_are_skipped_by_default_logged_at_info_and_protected(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = _linked_tree(tmp_path)
    with caplog.at_level(logging.INFO, logger="pos3lite.localfs.walk"):
        got = walk(root)
    assert [e.key for e in got.entries] == ["own.txt"]
    assert sorted(got.skipped) == ["broken", "link.txt", "linked-dir/"]
    assert got.failures == []
    skipped_logs = [r for r in caplog.records if "symlink" in r.getMessage()]
    assert len(skipped_logs) == 3 and {r.levelno for r in skipped_logs} == {logging.INFO}


def test_followed_symlink_loops_are_detected_at_any_depth(tmp_path: Path) -> None:
    root = tmp_path / "root"
    make_tree(root, {"a/b/f": b"f"})
    os.symlink(root / "a", root / "a" / "b" / "up")  # a/b/up -> a: a loop two levels up
    os.symlink(root, root / "self")
    got = Walk()
    # islice: without loop detection the walk would never end.
    keys = [e.key for e in itertools.islice(iter_walk(root, follow_symlinks=True, report=got), 50)]
    assert keys == ["a/b/f"]
    assert sorted(got.skipped) == ["a/b/up/", "self/"]


@pytest.mark.parametrize("follow", [False, True])
def test_a_folder_swapped_during_the_walk_is_not_entered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, follow: bool
) -> None:
    # Between listing the root and entering "sub", sub is replaced: by a symlink to a folder
    # outside (caught by O_NOFOLLOW), or, when links are followed, the followed link is
    # retargeted outside (caught by checking the opened folder is the one listed).
    outside = tmp_path / "outside"
    make_tree(outside, {"secret": b"s"})
    inside = tmp_path / "inside"
    make_tree(inside, {"f": b""})
    root = tmp_path / "root"
    make_tree(root, {"a": b""})
    if follow:
        os.symlink(inside, root / "sub")
    else:
        (root / "sub").mkdir()
        (root / "sub" / "f").write_bytes(b"")
    real_list = walk_module._Walker.list_folder

    def swap_after_root(self: Any, fd: int, rel: str) -> Any:
        out = real_list(self, fd, rel)
        if rel == "":  # the root was listed: now swap sub
            os.rename(root / "sub", tmp_path / "sub-moved")
            os.symlink(outside, root / "sub")
        return out

    monkeypatch.setattr(walk_module._Walker, "list_folder", swap_after_root)
    got = walk(root, follow_symlinks=follow)
    assert [e.key for e in got.entries] == ["a"]
    assert got.skipped == ["sub/"]


# ---------------------------------------------------------------------------- names S3 cannot hold


def test_undecodable_names_fail_one_by_one_naming_the_path_and_the_rest_is_listed(
    tmp_path: Path,
) -> None:
    make_tree(tmp_path, {"good.txt": b"g", "z/ok": b"o"})
    base = os.fsencode(tmp_path)
    with open(base + b"/bad\xff.txt", "wb") as f:
        f.write(b"b")
    os.mkdir(base + b"/z/dir\xfe")
    with open(base + b"/z/dir\xfe/inner", "wb") as f:
        f.write(b"i")
    got = walk(tmp_path)
    assert [e.key for e in got.entries] == ["good.txt", "z/ok"]
    assert len(got.failures) == 2
    messages = sorted(str(f) for f in got.failures)
    paths = sorted([os.fsdecode(base + b"/bad\xff.txt"), os.fsdecode(base + b"/z/dir\xfe")])
    for message, path in zip(messages, paths, strict=True):
        assert repr(path) in message and "not valid UTF-8" in message
    assert all(isinstance(f, UnsafeKeyError) for f in got.failures)
    assert sorted(got.skipped) == sorted([os.fsdecode(b"bad\xff.txt"), os.fsdecode(b"z/dir\xfe/")])


def test_undecodable_names_in_a_destination_are_left_alone(tmp_path: Path) -> None:
    make_tree(tmp_path, {"good.txt": b"g"})
    with open(os.fsencode(tmp_path) + b"/bad\xff.txt", "wb") as f:
        f.write(b"b")
    got = walk(tmp_path, destination=True)
    assert [e.key for e in got.entries] == ["good.txt"]
    assert got.failures == [] and got.skipped == []


def test_keys_longer_than_the_limit_fail_named_and_the_limit_counts_bytes(tmp_path: Path) -> None:
    name = "\u00e9" * 120  # 240 bytes in UTF-8, 120 characters
    four = f"{name}/{name}/{name}/{name}/x"  # 965 bytes, 485 characters
    five = f"{name}/{four}"  # 1,206 bytes, 606 characters: too long though < 1,024 characters
    make_tree(tmp_path, {four: b"", five: b"", "short": b""})
    got = walk(tmp_path)
    assert [e.key for e in got.entries] == ["short", four]
    (err,) = got.failures
    assert isinstance(err, UnsafeKeyError) and err.key == five
    assert "1206 bytes" in str(err) and got.skipped == [five]
    # Under a 100-byte prefix the limit left for the relative key is 924 bytes.
    under_prefix = walk(tmp_path, max_key_bytes=MAX_KEY_BYTES - 100)
    assert [e.key for e in under_prefix.entries] == ["short"]
    assert sorted(f.key for f in under_prefix.failures if isinstance(f, UnsafeKeyError)) == sorted(
        [four, five]
    )
    assert [e.key for e in walk(tmp_path, max_key_bytes=None).entries] == ["short", four, five]
