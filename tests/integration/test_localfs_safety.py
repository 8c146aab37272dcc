"""Integration: the local file-system rules through the public API, against SeaweedFS.

Symlinked folders in download destinations, a folder swapped for a symlink mid-download,
``kill -9`` mid-download then a rerun (issue 8's table row), undecodable and over-long local
names in an upload (issues 9 and 12), and the cache root's mode.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import pos3lite
from pos3lite import TransferError, UnsafeKeyError

from .conftest import get, keys, open_mirror, put, tree

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TEMP_SUFFIX = ".pos3lite-tmp"
MiB = 1024 * 1024


def _temp_files(root: Path) -> list[Path]:
    return [Path(d, n) for d, _, ns in os.walk(root) for n in ns if n.endswith(TEMP_SUFFIX)]


def _remote(oracle: Any, bucket: str, prefix: str) -> dict[str, bytes]:
    return {k[len(prefix) :]: get(oracle, bucket, k) for k in keys(oracle, bucket, prefix)}


# ---------------------------------------------------------------------------- destinations


def test_a_symlinked_folder_in_a_download_destination_is_an_error_naming_it(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    put(oracle, bucket, "d/own.txt", b"own")
    put(oracle, bucket, "d/linked/a.txt", b"planted?")
    put(oracle, bucket, "d/linked/sub/b.txt", b"deeper")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_bytes(b"keep")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "linked").symlink_to(outside)
    with open_mirror(tmp_path, profile), pytest.raises(TransferError) as info:
        pos3lite.download(f"s3://{bucket}/d", local=dest, delete=True)
    failures = info.value.failures
    assert len(failures) == 2 and all(isinstance(f, UnsafeKeyError) for f in failures)
    assert all(repr(str(dest / "linked")) in str(f) for f in failures)
    # Nothing written (not even a folder) outside the destination; nothing deleted there.
    assert tree(outside) == {"precious.txt": b"keep"} and os.listdir(outside) == ["precious.txt"]
    assert (dest / "linked").is_symlink()
    assert (dest / "own.txt").read_bytes() == b"own"
    assert _temp_files(dest) == [] and _temp_files(outside) == []


def test_a_symlinked_folder_the_remote_does_not_touch_is_left_alone(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    # LeRobot's checkpoints/last -> 000010 in a synced folder: a resume must not fail on it,
    # delete it, or delete through it.
    put(oracle, bucket, "run/checkpoints/000010/model.bin", b"w")
    dest = tmp_path / "dest"
    (dest / "checkpoints" / "000010").mkdir(parents=True)
    (dest / "checkpoints" / "000010" / "extra.bin").write_bytes(b"local extra")
    (dest / "checkpoints" / "last").symlink_to("000010")
    with open_mirror(tmp_path, profile):
        pos3lite.download(f"s3://{bucket}/run", local=dest, delete=True)
    assert os.readlink(dest / "checkpoints" / "last") == "000010"
    assert tree(dest / "checkpoints" / "000010") == {"model.bin": b"w"}


def test_a_folder_swapped_for_a_symlink_mid_download_cannot_redirect_the_write(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(oracle, bucket, "d/sub/f.txt", b"payload")
    dest = tmp_path / "dest"
    (dest / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    from pos3lite.s3.client import S3Client

    real_get = S3Client.get_object
    swapped: list[bool] = []

    def get_and_swap(self: S3Client, *a: Any, **kw: Any) -> Any:
        if not swapped:  # after the walk and after the folder was opened: the race window
            swapped.append(True)
            os.rename(dest / "sub", tmp_path / "sub-moved")
            (dest / "sub").symlink_to(outside)
        return real_get(self, *a, **kw)

    monkeypatch.setattr(S3Client, "get_object", get_and_swap)
    with open_mirror(tmp_path, profile):
        pos3lite.download(f"s3://{bucket}/d", local=dest)
    assert swapped
    assert os.listdir(outside) == []
    assert tree(tmp_path / "sub-moved") == {"f.txt": b"payload"}


def test_the_cache_root_is_created_private(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    put(oracle, bucket, "c/x", b"x")
    with open_mirror(tmp_path, profile):
        got = pos3lite.download(f"s3://{bucket}/c")
    assert (got / "x").read_bytes() == b"x"
    assert stat.S_IMODE((tmp_path / "cache").stat().st_mode) == 0o700


# ---------------------------------------------------------------------------- kill -9

_CHILD = textwrap.dedent(
    """
    import json, sys, time
    import pos3lite
    from pos3lite.s3.client import S3Client

    cfg = json.loads(sys.argv[1])
    real_get = S3Client.get_object

    def slow_get(self, *a, **kw):
        time.sleep(0.5)  # keep temp files open long enough to be killed among them
        return real_get(self, *a, **kw)

    S3Client.get_object = slow_get
    profile = pos3lite.Profile(
        local_name="kill", endpoint=cfg["endpoint"], region=cfg["region"],
        access_key=cfg["access_key"], secret_key=cfg["secret_key"],
    )
    with pos3lite.mirror(cache_root=cfg["cache"], default_profile=profile,
                         show_progress=False, max_workers=4):
        pos3lite.download(cfg["url"], local=cfg["dest"])
    print("DONE", flush=True)
    """
)


def test_kill_9_mid_download_then_rerun_leaves_no_temp_files_and_every_file_correct(
    s3_server: Any, oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    expected = {f"small/{i:02d}.bin": os.urandom(1000 + i) for i in range(12)}
    expected.update({f"large/{i}.bin": os.urandom(9 * MiB + i) for i in range(3)})
    for key, data in expected.items():
        put(oracle, bucket, f"k/{key}", data)
    dest = tmp_path / "dest"
    cfg = {
        "endpoint": s3_server.endpoint,
        "region": s3_server.region,
        "access_key": s3_server.access_key,
        "secret_key": s3_server.secret_key,
        "cache": str(tmp_path / "cache"),
        "url": f"s3://{bucket}/k",
        "dest": str(dest),
    }
    env = dict(os.environ, POS3LITE_PROFILES_FILE=str(tmp_path / "none.toml"))
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, json.dumps(cfg)],
        stdout=subprocess.PIPE,
        env=env,
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 60
        while not _temp_files(dest) and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert child.poll() is None, "the download finished before it could be killed"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        assert child.stdout is not None
        child.stdout.close()
    left = _temp_files(dest)
    assert left, "the kill left no temp file: the test did not hit the window"
    partial = {p.relative_to(dest).as_posix() for p in left}
    with open_mirror(tmp_path, profile):
        pos3lite.download(f"s3://{bucket}/k", local=dest)
    assert _temp_files(dest) == [], f"temp files kept after the rerun (killed: {partial})"
    assert tree(dest) == expected


# ---------------------------------------------------------------------------- upload names


def test_an_undecodable_local_name_fails_alone_and_names_the_file(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    put(oracle, bucket, "out/stale.txt", b"only remote")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "good.txt").write_bytes(b"g")
    (src / "sub" / "ok.bin").write_bytes(b"o")
    bad = os.fsencode(src) + b"/caf\xe9.txt"  # Latin-1, not UTF-8
    with open(bad, "wb") as f:
        f.write(b"latin-1 name")
    with pytest.raises(TransferError) as info, open_mirror(tmp_path, profile):
        pos3lite.upload(f"s3://{bucket}/out", local=src, interval=None, delete=True)
    (failure,) = info.value.failures
    assert isinstance(failure, UnsafeKeyError)
    assert repr(os.fsdecode(bad)) in str(failure) and "not valid UTF-8" in str(failure)
    # The others are uploaded; the failure suppresses deletes (stale.txt stays).
    assert _remote(oracle, bucket, "out/") == {
        "good.txt": b"g",
        "sub/ok.bin": b"o",
        "stale.txt": b"only remote",
    }


def test_an_over_long_key_fails_alone_and_is_named(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    deep = src.joinpath(*["x" * 200] * 4)
    deep.mkdir(parents=True)
    # The relative key is 1,022 bytes: it fits alone, not under the "out/" prefix (1,026).
    (deep / ("y" * 218)).write_bytes(b"f")
    (src / "short.txt").write_bytes(b"s")
    with pytest.raises(TransferError) as info, open_mirror(tmp_path, profile):
        pos3lite.upload(f"s3://{bucket}/out", local=src, interval=None)
    (failure,) = info.value.failures
    long_key = "/".join(["x" * 200] * 4) + "/" + "y" * 218
    assert isinstance(failure, UnsafeKeyError) and failure.key == long_key
    assert "1024 bytes" in str(failure)
    assert _remote(oracle, bucket, "out/") == {"short.txt": b"s"}


def test_a_folder_swapped_for_a_symlink_before_the_deletes_cannot_redirect_them(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(oracle, bucket, "d/keep.txt", b"k")
    dest = tmp_path / "dest"
    (dest / "sub").mkdir(parents=True)
    (dest / "sub" / "old.txt").write_bytes(b"local extra: deleted by delete=True")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "old.txt").write_bytes(b"precious, outside the destination")
    from pos3lite.s3.client import S3Client

    real_get = S3Client.get_object

    def get_and_swap(self: S3Client, *a: Any, **kw: Any) -> Any:
        if not (dest / "sub").is_symlink():  # after the walk listed sub/old.txt
            os.rename(dest / "sub", tmp_path / "sub-moved")
            (dest / "sub").symlink_to(outside)
        return real_get(self, *a, **kw)

    monkeypatch.setattr(S3Client, "get_object", get_and_swap)
    with open_mirror(tmp_path, profile), pytest.raises(TransferError) as info:
        pos3lite.download(f"s3://{bucket}/d", local=dest, delete=True)
    assert info.value.operation == "Delete"
    assert repr(str(dest / "sub")) in str(info.value.failures[0])
    assert tree(outside) == {"old.txt": b"precious, outside the destination"}
    assert (dest / "keep.txt").read_bytes() == b"k"


def test_lerobot_last_symlink_in_a_sync_folder_is_not_uploaded_and_resume_can_relink(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    """Issue 8 row: ``checkpoints/last -> 000010`` in a sync folder; resume on a fresh cache:
    not uploaded; ``last`` absent after resume; ``symlink_to`` works."""
    with open_mirror(tmp_path / "machine1", profile):
        run = Path(pos3lite.sync(f"s3://{bucket}/exp", interval=None))
        ck = run / "checkpoints" / "000010"
        ck.mkdir(parents=True)
        (ck / "model.bin").write_bytes(b"weights")
        (run / "checkpoints" / "last").symlink_to("000010")
    assert _remote(oracle, bucket, "exp/") == {"checkpoints/000010/model.bin": b"weights"}
    with open_mirror(tmp_path / "machine2", profile):  # a fresh cache: the resume
        run2 = Path(pos3lite.sync(f"s3://{bucket}/exp", interval=None))
        last = run2 / "checkpoints" / "last"
        assert not os.path.lexists(last)
        last.symlink_to("000010")  # LeRobot's resume: no FileExistsError
        assert (last / "model.bin").read_bytes() == b"weights"
    assert _remote(oracle, bucket, "exp/") == {"checkpoints/000010/model.bin": b"weights"}
    assert os.readlink(last) == "000010"  # the final sync left the link alone
