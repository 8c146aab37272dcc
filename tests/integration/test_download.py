"""Integration: pos3lite.download against a real S3 server (SeaweedFS), boto3 as the oracle.

Covers content fidelity (odd key characters, nesting, empty and multi-MiB files), cache
layout, exact objects vs prefixes, change detection across mirrors (size_mtime, size,
checksum), the safety rules (missing remote, unsafe keys, failed copies, atomic writes),
excludes, directory markers, file/prefix conflicts and listing pagination.
"""

from __future__ import annotations

import contextlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import pos3lite
from pos3lite import (
    KeyConflictError,
    RemoteNotFoundError,
    TransferError,
    UnsafeKeyError,
)
from pos3lite.urls import check_relative_key

from .conftest import ODD_NAMES, open_mirror, put, tree

pytestmark = pytest.mark.integration

TMP_SUFFIX = ".pos3lite-tmp"


def _last_modified(oracle: Any, bucket: str, key: str) -> float:
    return float(oracle.head_object(Bucket=bucket, Key=key)["LastModified"].timestamp())


def _put_newer(oracle: Any, bucket: str, key: str, data: bytes) -> None:
    """Replace an object so its LastModified is in a later whole second than before.

    S3 LastModified has 1 s resolution; a same-second rewrite is indistinguishable by
    time, so wait (not a timing assertion) until the server stamps a newer second.
    """
    before = int(_last_modified(oracle, bucket, key))
    for _ in range(30):
        put(oracle, bucket, key, data)
        if int(_last_modified(oracle, bucket, key)) > before:
            return
        time.sleep(0.25)
    raise AssertionError("server never advanced LastModified")


def _tmp_files(root: Path) -> list[str]:
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files if TMP_SUFFIX in f]


def _populate(oracle: Any, bucket: str, prefix: str = "data") -> dict[str, bytes]:
    """Put a representative tree under ``prefix/``; return {relative key: bytes}."""
    content: dict[str, bytes] = {}
    for i, name in enumerate(ODD_NAMES):
        content[name] = f"content {i} of {name}".encode()
    content["nested/deeper/deepest/leaf.txt"] = b"leaf"
    content["nested/sibling.txt"] = b"sibling"
    content["empty.bin"] = b""
    content["big.bin"] = os.urandom(3 * 1024 * 1024 + 123)
    for rel, data in content.items():
        put(oracle, bucket, f"{prefix}/{rel}", data)
    return content


# ---------------------------------------------------------------------------- content, layout


def test_prefix_tree_is_byte_for_byte_equal(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    content = _populate(oracle, bucket)
    with open_mirror(tmp_path, profile, max_workers=4):
        path = pos3lite.download(f"s3://{bucket}/data")
    assert path == (tmp_path / "cache" / "test" / bucket / "data").resolve()
    assert tree(path) == content
    assert (path / "empty.bin").stat().st_size == 0
    assert _tmp_files(path) == []


def test_cache_layout_without_profile_uses_underscore(
    oracle: Any, bucket: str, s3_env: Any, tmp_path: Path
) -> None:
    put(oracle, bucket, "a/b/c.txt", b"abc")
    with open_mirror(tmp_path):
        path = pos3lite.download(f"s3://{bucket}/a")
    assert path == (tmp_path / "cache" / "_" / bucket / "a").resolve()
    assert (path / "b" / "c.txt").read_bytes() == b"abc"


def test_explicit_local_is_used_and_cache_untouched(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    put(oracle, bucket, "data/x.txt", b"x")
    dest = tmp_path / "elsewhere"
    with open_mirror(tmp_path, profile):
        path = pos3lite.download(f"s3://{bucket}/data", local=dest)
    assert path == dest.resolve()
    assert tree(dest) == {"x.txt": b"x"}
    # The cache root holds only its own metadata (the sync state and locks): no data.
    assert sorted(os.listdir(tmp_path / "cache")) == [".pos3lite"]


def test_exact_object_returns_a_file(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    put(oracle, bucket, "data/one.txt", b"only me")
    put(oracle, bucket, "data/two.txt", b"not me")
    with open_mirror(tmp_path, profile):
        path = pos3lite.download(f"s3://{bucket}/data/one.txt")
    assert path.is_file()
    assert path == (tmp_path / "cache" / "test" / bucket / "data" / "one.txt").resolve()
    assert path.read_bytes() == b"only me"
    assert not (path.parent / "two.txt").exists()
    assert int(path.stat().st_mtime) == int(_last_modified(oracle, bucket, "data/one.txt"))


def test_trailing_slash_forces_prefix_listing(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    put(oracle, bucket, "thing", b"the object")
    put(oracle, bucket, "thing/inner.txt", b"inner")
    with open_mirror(tmp_path, profile):
        as_object = pos3lite.download(f"s3://{bucket}/thing", local=tmp_path / "obj")
    assert as_object.is_file() and as_object.read_bytes() == b"the object"
    with open_mirror(tmp_path, profile):
        as_prefix = pos3lite.download(f"s3://{bucket}/thing/", local=tmp_path / "pre")
    assert as_prefix.is_dir()
    assert tree(as_prefix) == {"inner.txt": b"inner"}


def test_prefix_does_not_match_longer_sibling(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    put(oracle, bucket, "data/a.txt", b"a")
    put(oracle, bucket, "data_backup/b.txt", b"b")
    put(oracle, bucket, "database.txt", b"c")
    with open_mirror(tmp_path, profile):
        path = pos3lite.download(f"s3://{bucket}/data")
        assert tree(path) == {"a.txt": b"a"}
        # A URL that only prefixes other keys ("dat" of "data/...") is not found.
        with pytest.raises(RemoteNotFoundError):
            pos3lite.download(f"s3://{bucket}/dat")


def test_mtime_equals_last_modified(oracle: Any, bucket: str, profile: Any, tmp_path: Path) -> None:
    put(oracle, bucket, "data/a.txt", b"aaa")
    put(oracle, bucket, "data/sub/b.txt", b"bb")
    with open_mirror(tmp_path, profile):
        path = pos3lite.download(f"s3://{bucket}/data")
    for rel in ("a.txt", "sub/b.txt"):
        lm = _last_modified(oracle, bucket, f"data/{rel}")
        assert int(path.joinpath(rel).stat().st_mtime) == int(lm)


# ---------------------------------------------------------------------------- re-download


def test_redownload_in_newopen_mirror(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    put(oracle, bucket, "data/same.txt", b"unchanged")
    put(oracle, bucket, "data/change.txt", b"hello")
    put(oracle, bucket, "data/edited.txt", b"remote truth")
    dest = tmp_path / "dest"
    with open_mirror(tmp_path, profile):
        pos3lite.download(f"s3://{bucket}/data", local=dest)
    before = (dest / "same.txt").stat()

    _put_newer(oracle, bucket, "data/change.txt", b"world")  # same size (pos3 bug C.1)
    (dest / "edited.txt").write_bytes(b"local edit, longer than before")
    (dest / "extra.txt").write_bytes(b"not in S3")
    (dest / "extra_dir").mkdir()
    (dest / "extra_dir" / "deep.txt").write_bytes(b"not in S3 either")

    with open_mirror(tmp_path, profile):
        pos3lite.download(f"s3://{bucket}/data", local=dest)
    after = (dest / "same.txt").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert tree(dest) == {
        "same.txt": b"unchanged",
        "change.txt": b"world",
        "edited.txt": b"remote truth",
    }
    assert not (dest / "extra_dir").exists()
    lm = _last_modified(oracle, bucket, "data/change.txt")
    assert int((dest / "change.txt").stat().st_mtime) == int(lm)


def test_same_size_local_edit_is_restored(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    put(oracle, bucket, "data/f.txt", b"original")
    dest = tmp_path / "dest"
    with open_mirror(tmp_path, profile):
        pos3lite.download(f"s3://{bucket}/data", local=dest)
    (dest / "f.txt").write_bytes(b"ORIGINAL")
    old = time.time() - 3600
    os.utime(dest / "f.txt", (old, old))
    with open_mirror(tmp_path, profile):
        pos3lite.download(f"s3://{bucket}/data", local=dest)
    assert (dest / "f.txt").read_bytes() == b"original"


def test_delete_false_keeps_local_extras(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    put(oracle, bucket, "data/a.txt", b"a")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "mine.txt").write_bytes(b"keep me")
    with open_mirror(tmp_path, profile):
        pos3lite.download(f"s3://{bucket}/data", local=dest, delete=False)
    assert tree(dest) == {"a.txt": b"a", "mine.txt": b"keep me"}
    with open_mirror(tmp_path, profile):
        pos3lite.download(f"s3://{bucket}/data", local=dest, delete=True)
    assert tree(dest) == {"a.txt": b"a"}


def test_compare_size_misses_same_size_change(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    """compare="size" keeps pos3's behaviour: a same-size remote change is not fetched."""
    put(oracle, bucket, "data/f.txt", b"hello")
    dest = tmp_path / "dest"
    with open_mirror(tmp_path, profile, compare="size"):
        pos3lite.download(f"s3://{bucket}/data", local=dest)
    _put_newer(oracle, bucket, "data/f.txt", b"world")
    with open_mirror(tmp_path, profile, compare="size"):
        pos3lite.download(f"s3://{bucket}/data", local=dest)
    assert (dest / "f.txt").read_bytes() == b"hello"
    _put_newer(oracle, bucket, "data/f.txt", b"world!")  # a size change is fetched
    with open_mirror(tmp_path, profile, compare="size"):
        pos3lite.download(f"s3://{bucket}/data", local=dest)
    assert (dest / "f.txt").read_bytes() == b"world!"


def test_compare_checksum(oracle: Any, bucket: str, profile: Any, tmp_path: Path) -> None:
    put(oracle, bucket, "data/f.txt", b"hello")
    put(oracle, bucket, "data/g.txt", b"stable")
    dest = tmp_path / "dest"
    with open_mirror(tmp_path, profile, compare="checksum"):
        pos3lite.download(f"s3://{bucket}/data", local=dest)
    # Same-size content change: fetched.
    put(oracle, bucket, "data/f.txt", b"world")
    # Identical content, different local mtime: not fetched (the file is not rewritten).
    odd = time.time() - 7200
    os.utime(dest / "g.txt", (odd, odd))
    g_before = (dest / "g.txt").stat()
    with open_mirror(tmp_path, profile, compare="checksum"):
        pos3lite.download(f"s3://{bucket}/data", local=dest)
    assert (dest / "f.txt").read_bytes() == b"world"
    g_after = (dest / "g.txt").stat()
    assert (g_after.st_ino, g_after.st_mtime_ns) == (g_before.st_ino, g_before.st_mtime_ns)
    # Control: size_mtime does re-fetch that same file (its mtime no longer matches).
    with open_mirror(tmp_path, profile):
        pos3lite.download(f"s3://{bucket}/data", local=dest)
    assert int((dest / "g.txt").stat().st_mtime) == int(
        _last_modified(oracle, bucket, "data/g.txt")
    )


# ---------------------------------------------------------------------------- safety


def test_missing_remote_raises_and_keeps_local(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    put(oracle, bucket, "other/x.txt", b"x")
    dest = tmp_path / "important"
    (dest / "sub").mkdir(parents=True)
    (dest / "a.txt").write_bytes(b"precious")
    (dest / "sub" / "b.txt").write_bytes(b"also precious")
    with open_mirror(tmp_path, profile):
        with pytest.raises(RemoteNotFoundError) as info:
            pos3lite.download(f"s3://{bucket}/typo-prefix", local=dest)
        assert isinstance(info.value, FileNotFoundError)
        assert "typo-prefix" in str(info.value)
        # The failed registration is dropped: a retry raises again instead of "succeeding".
        with pytest.raises(RemoteNotFoundError):
            pos3lite.download(f"s3://{bucket}/typo-prefix", local=dest)
    assert tree(dest) == {"a.txt": b"precious", "sub/b.txt": b"also precious"}


def test_missing_bucket_keeps_local(s3_server: Any, profile: Any, tmp_path: Path) -> None:
    dest = tmp_path / "important"
    dest.mkdir()
    (dest / "a.txt").write_bytes(b"precious")
    with open_mirror(tmp_path, profile), pytest.raises(pos3lite.Pos3liteError):
        pos3lite.download("s3://no-such-bucket-pos3lite/data", local=dest)
    assert tree(dest) == {"a.txt": b"precious"}


def test_dotdot_url_is_refused(profile: Any, tmp_path: Path) -> None:
    """pos3 bug C.3: s3://bkt/.. mapped to the cache root of every bucket and wiped it."""
    other = tmp_path / "cache" / "test" / "other-bucket"
    other.mkdir(parents=True)
    (other / "keep.txt").write_bytes(b"k")
    with open_mirror(tmp_path, profile), pytest.raises(pos3lite.InvalidURLError):
        pos3lite.download("s3://some-bucket/..")
    assert (other / "keep.txt").read_bytes() == b"k"


HOSTILE_KEYS = [
    "data/../../escape.txt",
    "data/../sibling.txt",
    "data/./dot.txt",
    "data/a\\b.txt",
    "data/..\\..\\win.txt",
    "data/sub/../../up.txt",
    "data//abs.txt",
    "data/..",
]


def test_hostile_keys_never_escape(oracle: Any, bucket: str, profile: Any, tmp_path: Path) -> None:
    """Whatever the server keeps of hostile keys, nothing lands outside the destination.

    SeaweedFS rejects keys with ``.``/``..`` segments (InvalidRequest), and stores ``\\`` as
    ``/`` and ``a//b`` as ``a/b``; real S3 keeps every one of them verbatim. The test adapts
    to what the server listed: a kept unsafe key must be refused (UnsafeKeyError naming it,
    inside a TransferError, and no deletes); safe survivors must land inside.
    """
    put(oracle, bucket, "data/ok.txt", b"ok")
    for key in HOSTILE_KEYS:
        # A refused key (InvalidRequest) leaves nothing to test for it.
        with contextlib.suppress(Exception):
            put(oracle, bucket, key, b"evil")
    listed = [o["Key"] for o in oracle.list_objects_v2(Bucket=bucket)["Contents"]]
    unsafe = []
    for key in listed:
        rel = key[len("data/") :]
        try:
            check_relative_key(rel)
        except UnsafeKeyError:
            unsafe.append(key)
    base = tmp_path / "jail"
    dest = base / "a" / "b" / "dest"
    dest.mkdir(parents=True)
    (dest / "local-extra.txt").write_bytes(b"must survive if anything is refused")
    with open_mirror(tmp_path, profile):
        if unsafe:
            with pytest.raises(TransferError) as info:
                pos3lite.download(f"s3://{bucket}/data", local=dest)
            refused = {f.key for f in info.value.failures if isinstance(f, UnsafeKeyError)}
            assert refused == {k[len("data/") :] for k in unsafe} or refused == set(unsafe)
            assert (dest / "local-extra.txt").exists()  # deletes suppressed
        else:
            pos3lite.download(f"s3://{bucket}/data", local=dest)
    # Nothing outside the destination, anywhere in the jail or the cache.
    outside = [
        os.path.relpath(os.path.join(d, f), base)
        for d, _, files in os.walk(base)
        for f in files
        if not Path(d, f).resolve().is_relative_to(dest.resolve())
    ]
    assert outside == [] or all(".pos3lite" in Path(o).parts for o in outside)
    cache = tmp_path / "cache"
    assert not cache.exists() or sorted(os.listdir(cache)) == [".pos3lite"]
    assert (dest / "ok.txt").read_bytes() == b"ok"
    for path in dest.rglob("*"):
        assert path.resolve().is_relative_to(dest.resolve())
        assert "\\" not in path.name


def test_failed_copy_suppresses_deletes_and_leaves_no_partial(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    """A copy that fails (its parent folder is a local file) blocks every local delete."""
    put(oracle, bucket, "data/good.txt", b"good")
    put(oracle, bucket, "data/blocked/inner.txt", b"cannot land")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "blocked").write_bytes(b"a local file where S3 has a folder")
    (dest / "extra.txt").write_bytes(b"would be deleted after a clean run")
    with open_mirror(tmp_path, profile), pytest.raises(TransferError) as info:
        pos3lite.download(f"s3://{bucket}/data", local=dest)
    assert info.value.operation == "Download"
    assert info.value.failures
    assert (dest / "extra.txt").read_bytes() == b"would be deleted after a clean run"
    assert (dest / "blocked").read_bytes() == b"a local file where S3 has a folder"
    assert (dest / "good.txt").read_bytes() == b"good"
    assert _tmp_files(dest) == []


def test_long_file_name_downloads(oracle: Any, bucket: str, profile: Any, tmp_path: Path) -> None:
    """A 250-byte name is legal on ext4 (255); the temp name must not overflow it."""
    name = "n" * 250
    put(oracle, bucket, f"data/{name}", b"long")
    with open_mirror(tmp_path, profile):
        path = pos3lite.download(f"s3://{bucket}/data", local=tmp_path / "dest")
    assert tree(path) == {name: b"long"}
    assert _tmp_files(path) == []


def test_object_over_local_folder_is_a_conflict(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    put(oracle, bucket, "obj.txt", b"object")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "child").write_bytes(b"keep")
    with open_mirror(tmp_path, profile), pytest.raises(TransferError) as info:
        pos3lite.download(f"s3://{bucket}/obj.txt", local=dest)
    assert any(isinstance(f, KeyConflictError) for f in info.value.failures)
    assert (dest / "child").read_bytes() == b"keep"


# ---------------------------------------------------------------------------- excludes


def test_exclude_on_both_sides(oracle: Any, bucket: str, profile: Any, tmp_path: Path) -> None:
    """pos3 bug C.4: ``logs`` leaked logs/a.log (no marker) and deleted local excluded files."""
    put(oracle, bucket, "data/logs/a.log", b"remote log")
    put(oracle, bucket, "data/deep/logs/b.log", b"remote deep log")
    put(oracle, bucket, "data/keep.txt", b"keep")
    dest = tmp_path / "dest"
    (dest / "logs").mkdir(parents=True)
    (dest / "logs" / "x").write_bytes(b"local only, excluded")
    with open_mirror(tmp_path, profile):
        pos3lite.download(f"s3://{bucket}/data", local=dest, exclude=["logs"])
    assert tree(dest) == {"keep.txt": b"keep", "logs/x": b"local only, excluded"}


def test_double_star_matches_top_level(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    for key in ("data/x.log", "data/a/y.log", "data/a/b/z.log", "data/keep.txt"):
        put(oracle, bucket, key, b"1")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "local.log").write_bytes(b"excluded, so never deleted")
    with open_mirror(tmp_path, profile):
        pos3lite.download(f"s3://{bucket}/data", local=dest, exclude=["**/*.log"])
    assert tree(dest) == {"keep.txt": b"1", "local.log": b"excluded, so never deleted"}


# ---------------------------------------------------------------------------- structure


def test_directory_marker_becomes_empty_dir(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    put(oracle, bucket, "p/empty/", b"")
    put(oracle, bucket, "p/nested/also-empty/", b"")
    put(oracle, bucket, "p/file.txt", b"f")
    with open_mirror(tmp_path, profile):
        path = pos3lite.download(f"s3://{bucket}/p")
    assert (path / "empty").is_dir() and list((path / "empty").iterdir()) == []
    assert (path / "nested" / "also-empty").is_dir()
    assert tree(path) == {"file.txt": b"f"}


def test_file_prefix_conflict_is_reported(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    put(oracle, bucket, "data/c", b"c as a file")
    put(oracle, bucket, "data/c/d", b"d under c")
    put(oracle, bucket, "data/other.txt", b"other")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "extra.txt").write_bytes(b"x")
    with open_mirror(tmp_path, profile), pytest.raises(TransferError) as info:
        pos3lite.download(f"s3://{bucket}/data", local=dest)
    conflicts = [f for f in info.value.failures if isinstance(f, KeyConflictError)]
    assert [c.key for c in conflicts] == ["c"]
    assert "'c'" in str(info.value)
    files = tree(dest)
    assert files["other.txt"] == b"other"
    assert files.get("c/d") == b"d under c"  # the prefix side still arrives
    assert (dest / "extra.txt").exists()  # no deletes after a reported failure


def test_pagination_over_1000_objects(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    n = 1100
    names = [f"many/f{i:05d}.txt" for i in range(n)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: put(oracle, bucket, k, k.encode()), names))
    with open_mirror(tmp_path, profile, max_workers=16):
        path = pos3lite.download(f"s3://{bucket}/many")
    got = tree(path)
    assert len(got) == n
    assert got == {k[len("many/") :]: k.encode() for k in names}


def test_download_from_thread_inside_context(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    put(oracle, bucket, "data/t.txt", b"threaded")
    results: list[Path] = []
    with open_mirror(tmp_path, profile), ThreadPoolExecutor(1) as pool:
        results.append(pool.submit(pos3lite.download, f"s3://{bucket}/data").result())
    assert tree(results[0]) == {"t.txt": b"threaded"}
