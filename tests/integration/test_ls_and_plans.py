"""``ls``, ``plan_download`` and ``plan_upload`` against a real server.

Plans must match what a transfer would do and must have no side effects: no transfers, no
deletes, no folders created (not even the cache root).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

import pos3lite
from tests.integration.conftest import keys, put, tree

pytestmark = pytest.mark.integration


@pytest.fixture
def named(s3_env: Any) -> str:
    """A registered profile name pointing at the server (credentials from the environment)."""
    pos3lite.register_profile(
        "named", endpoint=s3_env.endpoint, region=s3_env.region, local_name="named"
    )
    return "named"


LAYOUT = {
    "data/a.txt": b"a",
    "data/b.txt": b"bb",
    "data/sub/c.txt": b"ccc",
    "data/sub/deep/d.txt": b"dddd",
    "data/z/e.txt": b"eeeee",
    "data-sibling/x.txt": b"x",  # shares the string prefix "data" but not "data/"
    "other/y.txt": b"y",
}


@pytest.fixture
def filled(bucket: str, oracle: Any) -> str:
    for k, v in LAYOUT.items():
        put(oracle, bucket, k, v)
    return bucket


def snapshot(root: Path) -> list[tuple[str, bool, int]]:
    """Every path under root (files and folders) with its kind and size."""
    out = []
    for dirpath, dirs, files in os.walk(root):
        for d in dirs:
            out.append((Path(dirpath, d).relative_to(root).as_posix(), True, 0))
        for f in files:
            p = Path(dirpath, f)
            out.append((p.relative_to(root).as_posix(), False, p.stat().st_size))
    return sorted(out)


# ----------------------------------------------------------------------------- ls (S3)


def test_ls_non_recursive_uses_sub_prefixes(filled: str, s3_env: Any, tmp_path: Path) -> None:
    b = filled
    with pos3lite.mirror(tmp_path / "cache", show_progress=False):
        got = pos3lite.ls(f"s3://{b}/data")
        got_slash = pos3lite.ls(f"s3://{b}/data/")
    assert got == [
        f"s3://{b}/data/a.txt",
        f"s3://{b}/data/b.txt",
        f"s3://{b}/data/sub/",
        f"s3://{b}/data/z/",
    ]
    assert got_slash == got
    assert not (tmp_path / "cache").exists()


def test_ls_recursive_lists_every_object_sorted(filled: str, s3_env: Any, tmp_path: Path) -> None:
    b = filled
    with pos3lite.mirror(tmp_path / "cache", show_progress=False):
        got = pos3lite.ls(f"s3://{b}/data", recursive=True)
    expected = sorted(f"s3://{b}/{k}" for k in LAYOUT if k.startswith("data/"))
    assert got == expected
    assert f"s3://{b}/data-sibling/x.txt" not in got


def test_ls_bucket_root(filled: str, s3_env: Any, tmp_path: Path) -> None:
    b = filled
    with pos3lite.mirror(tmp_path / "cache", show_progress=False):
        top = pos3lite.ls(f"s3://{b}")
        everything = pos3lite.ls(f"s3://{b}/", recursive=True)
    assert top == [f"s3://{b}/data-sibling/", f"s3://{b}/data/", f"s3://{b}/other/"]
    assert everything == sorted(f"s3://{b}/{k}" for k in LAYOUT)


def test_ls_urls_never_include_the_profile(filled: str, named: str, tmp_path: Path) -> None:
    b = filled
    with pos3lite.mirror(tmp_path / "cache", show_progress=False):
        flat = pos3lite.ls(f"s3://{named}@{b}/data")
        deep = pos3lite.ls(f"s3://{named}@{b}/data/", recursive=True)
        exact = pos3lite.ls(f"s3://{named}@{b}/data/a.txt")
        by_arg = pos3lite.ls(f"s3://{b}/data", profile=named)
    assert flat[0] == f"s3://{b}/data/a.txt"
    assert len(flat) == 4 and len(deep) == 5
    assert exact == [f"s3://{b}/data/a.txt"]
    assert by_arg == flat
    for url in flat + deep + exact:
        assert "@" not in url and named not in url
        assert url.startswith(f"s3://{b}/")


def test_ls_exact_object(filled: str, s3_env: Any, tmp_path: Path) -> None:
    b = filled
    with pos3lite.mirror(tmp_path / "cache", show_progress=False):
        assert pos3lite.ls(f"s3://{b}/data/sub/c.txt") == [f"s3://{b}/data/sub/c.txt"]
        assert pos3lite.ls(f"s3://{b}/data/sub/c.txt", recursive=True) == [
            f"s3://{b}/data/sub/c.txt"
        ]


def test_ls_missing_prefix_is_empty(filled: str, s3_env: Any, tmp_path: Path) -> None:
    b = filled
    with pos3lite.mirror(tmp_path / "cache", show_progress=False):
        assert pos3lite.ls(f"s3://{b}/nope") == []
        assert pos3lite.ls(f"s3://{b}/nope/", recursive=True) == []
        assert pos3lite.ls(f"s3://{b}/dat") == []  # a string prefix is not a folder


def test_ls_awkward_names(bucket: str, oracle: Any, s3_env: Any, tmp_path: Path) -> None:
    names = ["p/with space.txt", "p/caf\u00e9.txt", "p/q?x#y.txt", "p/sub dir/z+1.txt"]
    for k in names:
        put(oracle, bucket, k, b"1")
    with pos3lite.mirror(tmp_path / "cache", show_progress=False):
        got = pos3lite.ls(f"s3://{bucket}/p")
        exact = pos3lite.ls(f"s3://{bucket}/p/q?x#y.txt")
    assert got == sorted(
        [
            f"s3://{bucket}/p/with space.txt",
            f"s3://{bucket}/p/caf\u00e9.txt",
            f"s3://{bucket}/p/q?x#y.txt",
            f"s3://{bucket}/p/sub dir/",
        ],
        key=lambda s: s.encode("utf-8"),
    )
    assert exact == [f"s3://{bucket}/p/q?x#y.txt"]


# ----------------------------------------------------------------------------- ls (local)


def test_ls_local_folder_and_file(tmp_path: Path) -> None:
    root = tmp_path / "loc"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "b.txt").write_bytes(b"b")
    (root / "a.txt").write_bytes(b"a")
    (root / "sub" / "c.txt").write_bytes(b"c")
    (root / "sub" / "deep" / "d.txt").write_bytes(b"d")
    with pos3lite.mirror(tmp_path / "cache", show_progress=False):
        flat = pos3lite.ls(str(root))
        deep = pos3lite.ls(str(root), recursive=True)
        one = pos3lite.ls(str(root / "a.txt"))
        missing = pos3lite.ls(str(root / "missing"))
    assert flat == [
        f"{root}/a.txt",
        f"{root}/b.txt",
        f"{root}/empty/",
        f"{root}/sub/",
    ]
    assert f"{root}/a.txt" in deep and f"{root}/sub/deep/d.txt" in deep
    assert f"{root}/sub/c.txt" in deep
    assert deep == sorted(deep, key=lambda s: s.encode("utf-8"))
    assert one == [f"{root}/a.txt"]
    assert missing == []
    assert not (tmp_path / "cache").exists()


# ----------------------------------------------------------------------------- plan_download


def test_plan_download_lifecycle(filled: str, s3_env: Any, tmp_path: Path, oracle: Any) -> None:
    b = filled
    dst = tmp_path / "dst"
    cache = tmp_path / "cache"
    data_keys = sorted(k for k in LAYOUT if k.startswith("data/"))

    with pos3lite.mirror(cache, show_progress=False):
        plan = pos3lite.plan_download(f"s3://{b}/data", local=dst)
    assert isinstance(plan, pos3lite.TransferPlan)
    assert sorted(plan.to_copy) == sorted(
        (f"s3://{b}/{k}", str(dst.joinpath(*k[len("data/") :].split("/")))) for k in data_keys
    )
    assert plan.to_delete == []
    assert not dst.exists(), "a plan must not create the destination"
    assert not cache.exists(), "a plan must not create the cache root"

    with pos3lite.mirror(cache, show_progress=False):
        pos3lite.download(f"s3://{b}/data", local=dst)
    with pos3lite.mirror(cache, show_progress=False):
        again = pos3lite.plan_download(f"s3://{b}/data", local=dst)
    assert again.to_copy == [] and again.to_delete == []

    # A same-size change on the remote: wait for S3's 1-second LastModified to move on.
    old = oracle.head_object(Bucket=b, Key="data/sub/c.txt")["LastModified"].timestamp()
    time.sleep(max(0.0, int(old) + 1.05 - time.time()))
    put(oracle, b, "data/sub/c.txt", b"CCC")
    # Extra local files: listed for deletion, never touched by the plan.
    (dst / "extra.txt").write_bytes(b"extra")
    (dst / "sub" / "more").mkdir()
    (dst / "sub" / "more" / "x.bin").write_bytes(b"xx")
    before = snapshot(dst)
    before_bytes = tree(dst)
    with pos3lite.mirror(cache, show_progress=False):
        changed = pos3lite.plan_download(f"s3://{b}/data", local=dst)
    assert changed.to_copy == [(f"s3://{b}/data/sub/c.txt", str(dst / "sub" / "c.txt"))]
    assert sorted(changed.to_delete) == sorted(
        [str(dst / "extra.txt"), str(dst / "sub" / "more" / "x.bin")]
    )
    assert snapshot(dst) == before
    assert tree(dst) == before_bytes
    assert (dst / "sub" / "c.txt").read_bytes() == b"ccc"
    # The download above recorded its sync state; the plans wrote nothing else.
    assert sorted(os.listdir(cache)) == [".pos3lite"]
    assert keys(oracle, b) == sorted(LAYOUT)


def test_plan_download_into_cache_creates_nothing(filled: str, s3_env: Any, tmp_path: Path) -> None:
    b = filled
    cache = tmp_path / "cache"
    with pos3lite.mirror(cache, show_progress=False):
        plan = pos3lite.plan_download(f"s3://{b}/data/sub")
    base = cache / "_" / b / "data" / "sub"
    assert sorted(plan.to_copy) == [
        (f"s3://{b}/data/sub/c.txt", str(base / "c.txt")),
        (f"s3://{b}/data/sub/deep/d.txt", str(base / "deep" / "d.txt")),
    ]
    assert not cache.exists()


def test_plan_download_with_profile_uses_its_cache_folder(
    filled: str, named: str, tmp_path: Path
) -> None:
    b = filled
    cache = tmp_path / "cache"
    with pos3lite.mirror(cache, show_progress=False):
        plan = pos3lite.plan_download(f"s3://{named}@{b}/data/a.txt")
    assert plan.to_copy == [(f"s3://{b}/data/a.txt", str(cache / "named" / b / "data" / "a.txt"))]
    assert not cache.exists()


def test_plan_download_exact_object(filled: str, s3_env: Any, tmp_path: Path) -> None:
    b = filled
    target = tmp_path / "one.txt"
    with pos3lite.mirror(tmp_path / "cache", show_progress=False):
        plan = pos3lite.plan_download(f"s3://{b}/data/b.txt", local=target)
        assert plan.to_copy == [(f"s3://{b}/data/b.txt", str(target))]
        assert not target.exists()
        pos3lite.download(f"s3://{b}/data/b.txt", local=target)
    assert target.read_bytes() == b"bb"
    with pos3lite.mirror(tmp_path / "cache", show_progress=False):
        assert pos3lite.plan_download(f"s3://{b}/data/b.txt", local=target).to_copy == []


def test_plan_download_exclude(filled: str, s3_env: Any, tmp_path: Path) -> None:
    b = filled
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "sub").mkdir()
    (dst / "sub" / "local-only.txt").write_bytes(b"keep")
    with pos3lite.mirror(tmp_path / "cache", show_progress=False):
        plan = pos3lite.plan_download(f"s3://{b}/data", local=dst, exclude=["sub"])
    assert sorted(plan.to_copy) == [
        (f"s3://{b}/data/a.txt", str(dst / "a.txt")),
        (f"s3://{b}/data/b.txt", str(dst / "b.txt")),
        (f"s3://{b}/data/z/e.txt", str(dst / "z" / "e.txt")),
    ]
    assert plan.to_delete == []  # excluded files are never deleted


def test_plan_download_errors(filled: str, s3_env: Any, tmp_path: Path) -> None:
    b = filled
    cache = tmp_path / "cache"
    with pos3lite.mirror(cache, show_progress=False):
        with pytest.raises(ValueError, match="s3://"):
            pos3lite.plan_download(str(tmp_path / "local"))
        with pytest.raises(pos3lite.RemoteNotFoundError) as info:
            pos3lite.plan_download(f"s3://{b}/no/such/prefix", local=tmp_path / "d")
        assert f"s3://{b}/no/such/prefix" in str(info.value)
        assert isinstance(info.value, FileNotFoundError)
    assert not (tmp_path / "d").exists()
    assert not cache.exists()


def test_plan_download_missing_bucket_is_s3_error(s3_env: Any, tmp_path: Path) -> None:
    with (
        pos3lite.mirror(tmp_path / "cache", show_progress=False),
        pytest.raises(pos3lite.S3Error) as info,
    ):
        pos3lite.plan_download("s3://no-such-bucket-pos3lite/x/", local=tmp_path / "d")
    assert info.value.code == "NoSuchBucket"


# ----------------------------------------------------------------------------- plan_upload


def test_plan_upload(bucket: str, oracle: Any, s3_env: Any, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"a")
    (src / "sub" / "b.txt").write_bytes(b"bb")
    (src / "same.txt").write_bytes(b"same")
    # Written well before the upload: up to date (a local mtime in the same second as
    # LastModified is sent again, since a same-second rewrite cannot be told apart).
    past = time.time() - 10
    os.utime(src / "same.txt", (past, past))
    put(oracle, bucket, "up/same.txt", b"same")
    put(oracle, bucket, "up/gone.txt", b"remote only")
    put(oracle, bucket, "up/dir/gone2.txt", b"remote only")
    put(oracle, bucket, "elsewhere.txt", b"not under the prefix")
    before = snapshot(src)
    cache = tmp_path / "cache"
    with pos3lite.mirror(cache, show_progress=False):
        plan = pos3lite.plan_upload(f"s3://{bucket}/up", local=src)
    assert sorted(plan.to_copy) == [
        (str(src / "a.txt"), f"s3://{bucket}/up/a.txt"),
        (str(src / "sub" / "b.txt"), f"s3://{bucket}/up/sub/b.txt"),
    ]
    assert sorted(plan.to_delete) == [
        f"s3://{bucket}/up/dir/gone2.txt",
        f"s3://{bucket}/up/gone.txt",
    ]
    # Nothing happened on either side.
    assert keys(oracle, bucket) == sorted(
        ["up/same.txt", "up/gone.txt", "up/dir/gone2.txt", "elsewhere.txt"]
    )
    assert snapshot(src) == before
    assert not cache.exists()


def test_plan_upload_to_empty_remote(bucket: str, oracle: Any, s3_env: Any, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "only.txt").write_bytes(b"1")
    with pos3lite.mirror(tmp_path / "cache", show_progress=False):
        plan = pos3lite.plan_upload(f"s3://{bucket}/new/prefix", local=src)
    assert plan.to_copy == [(str(src / "only.txt"), f"s3://{bucket}/new/prefix/only.txt")]
    assert plan.to_delete == []
    assert keys(oracle, bucket) == []


def test_plan_upload_of_empty_folder_deletes_nothing(
    bucket: str, oracle: Any, s3_env: Any, tmp_path: Path
) -> None:
    """Safety rule: a source that lists nothing never empties the destination."""
    put(oracle, bucket, "keep/a.txt", b"a")
    src = tmp_path / "empty"
    src.mkdir()
    with pos3lite.mirror(tmp_path / "cache", show_progress=False):
        plan = pos3lite.plan_upload(f"s3://{bucket}/keep", local=src)
    assert plan.to_copy == [] and plan.to_delete == []
    assert keys(oracle, bucket) == ["keep/a.txt"]


def test_plan_upload_errors(bucket: str, s3_env: Any, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pos3lite.mirror(cache, show_progress=False):
        with pytest.raises(FileNotFoundError):
            pos3lite.plan_upload(f"s3://{bucket}/x", local=tmp_path / "missing")
        # Default source (the cache folder) does not exist either, and is not created.
        with pytest.raises(FileNotFoundError):
            pos3lite.plan_upload(f"s3://{bucket}/x")
        with pytest.raises(ValueError):
            pos3lite.plan_upload(str(tmp_path))
    assert not (tmp_path / "missing").exists()
    assert not cache.exists()
