"""Issue 8's table, one test per row (``test_rowNN_*``), against the real SeaweedFS fixture.

Each test asserts the exact files on both sides afterwards: the remote keys and bytes (read
back with the boto3 oracle) and the local tree.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import pos3lite
from pos3lite import ConfigError, TransferError
from pos3lite.mirror.state import SyncState, registration_name
from pos3lite.s3.client import S3Client
from pos3lite.transfer import TransferConfig

from .conftest import get, keys, open_mirror, put, tree

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


def remote_tree(oracle: Any, bucket: str, prefix: str) -> dict[str, bytes]:
    return {k[len(prefix) :]: get(oracle, bucket, k) for k in keys(oracle, bucket, prefix)}


def inodes(root: Path) -> dict[str, tuple[int, int]]:
    return {
        p.relative_to(root).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


# ------------------------------------------------------------------------------ sync rows


def test_row01_same_size_edit_within_a_second_reaches_s3(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    dest = tmp_path / "work"
    url = f"s3://{bucket}/w"
    with open_mirror(tmp_path, profile):
        pos3lite.sync(url, local=dest, interval=None)
        (dest / "a.txt").write_bytes(b"v1-aaaa")
    assert remote_tree(oracle, bucket, "w/") == {"a.txt": b"v1-aaaa"}
    # An old mtime, so the no-state rule (local mtime not older than LastModified) cannot
    # see the edit below; one more sync records the file as in sync with that mtime.
    past = time.time() - 100
    os.utime(dest / "a.txt", (past, past))
    with open_mirror(tmp_path, profile):
        pos3lite.sync(url, local=dest, interval=None)
    state = SyncState(tmp_path / "cache").load(registration_name("test", url, dest.resolve()))
    assert list(state) == ["a.txt"]
    # Rewrite at the same size and put the old mtime back: only the sync state (ctime)
    # can tell; size and mtime cannot.
    before = (dest / "a.txt").stat()
    (dest / "a.txt").write_bytes(b"v2-bbbb")
    os.utime(dest / "a.txt", ns=(before.st_atime_ns, before.st_mtime_ns))
    with open_mirror(tmp_path, profile):
        pos3lite.sync(url, local=dest, interval=None)
    assert remote_tree(oracle, bucket, "w/") == {"a.txt": b"v2-bbbb"}
    assert tree(dest) == {"a.txt": b"v2-bbbb"}


def test_row02_new_local_file_kept_and_uploaded_with_delete_local(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    put(oracle, bucket, "w/a.txt", b"a")
    dest = tmp_path / "work"
    url = f"s3://{bucket}/w"
    with open_mirror(tmp_path, profile):
        pos3lite.sync(url, local=dest, interval=None)
    (dest / "new.txt").write_bytes(b"new locally")
    with open_mirror(tmp_path, profile):
        pos3lite.sync(url, local=dest, interval=None, delete_local=True)
        assert tree(dest) == {"a.txt": b"a", "new.txt": b"new locally"}
    assert tree(dest) == {"a.txt": b"a", "new.txt": b"new locally"}
    assert remote_tree(oracle, bucket, "w/") == {"a.txt": b"a", "new.txt": b"new locally"}


def test_row03_remote_delete_by_another_client_deletes_locally_not_reuploaded(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    put(oracle, bucket, "w/a.txt", b"a")
    put(oracle, bucket, "w/gone.txt", b"deleted elsewhere")
    dest = tmp_path / "work"
    url = f"s3://{bucket}/w"
    with open_mirror(tmp_path, profile):
        pos3lite.sync(url, local=dest, interval=None)
    oracle.delete_object(Bucket=bucket, Key="w/gone.txt")
    with open_mirror(tmp_path, profile):
        pos3lite.sync(url, local=dest, interval=None)
        assert tree(dest) == {"a.txt": b"a"}
    assert tree(dest) == {"a.txt": b"a"}
    assert remote_tree(oracle, bucket, "w/") == {"a.txt": b"a"}


def test_row04_remote_prefix_emptied_then_sync_on_same_machine(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    put(oracle, bucket, "exp/ckpt/1.pt", b"one")
    put(oracle, bucket, "exp/ckpt/2.pt", b"two")
    url = f"s3://{bucket}/exp"
    with open_mirror(tmp_path, profile):
        path = pos3lite.sync(url, interval=None)  # the cache folder
    assert tree(path) == {"ckpt/1.pt": b"one", "ckpt/2.pt": b"two"}
    oracle.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "exp/ckpt/1.pt"}, {"Key": "exp/ckpt/2.pt"}]}
    )
    with open_mirror(tmp_path, profile):
        again = pos3lite.sync(url, interval=None)
        assert again == path
        assert not path.exists()  # matches the (empty) remote; a stale resume is impossible
    assert keys(oracle, bucket) == []  # nothing uploaded back
    assert not path.exists()


def test_row05_upload_then_download_of_same_prefix_transfers_nothing(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    files = {"a.txt": b"alpha", "sub/b.bin": os.urandom(3000)}
    for rel, data in files.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_bytes(data)
    url = f"s3://{bucket}/out"
    with open_mirror(tmp_path, profile):
        pos3lite.upload(url, local=dest, interval=None)
    before = inodes(dest)
    gets: list[str] = []
    real_get = S3Client.get_object

    def counting_get(self: S3Client, bucket_: str, key: str, *a: Any, **kw: Any) -> Any:
        gets.append(key)
        return real_get(self, bucket_, key, *a, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(S3Client, "get_object", counting_get)
        with open_mirror(tmp_path, profile):
            pos3lite.download(url, local=dest)
    assert gets == []
    assert inodes(dest) == before
    assert tree(dest) == files
    assert remote_tree(oracle, bucket, "out/") == files


def test_row06_folder_filled_by_pos3_is_adopted_not_downloaded(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    files = {"a.txt": b"alpha", "sub/b.txt": b"bravo"}
    for rel, data in files.items():
        put(oracle, bucket, f"data/{rel}", data)
    # pos3 0.4.0 (s3transfer) writes the bytes and leaves the download time as the mtime.
    cache_dir = tmp_path / "cache" / "test" / bucket / "data"
    for rel, data in files.items():
        (cache_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (cache_dir / rel).write_bytes(data)
    before = inodes(cache_dir)
    with open_mirror(tmp_path, profile):
        path = pos3lite.download(f"s3://{bucket}/data")
    assert path == cache_dir
    assert inodes(cache_dir) == before  # adopted, not rewritten
    assert tree(cache_dir) == files
    # A later change on S3 is seen through the state (same size, same second).
    put(oracle, bucket, "data/a.txt", b"ALPHA")
    with open_mirror(tmp_path, profile):
        pos3lite.download(f"s3://{bucket}/data")
    assert tree(cache_dir) == {"a.txt": b"ALPHA", "sub/b.txt": b"bravo"}
    assert remote_tree(oracle, bucket, "data/") == {"a.txt": b"ALPHA", "sub/b.txt": b"bravo"}


@pytest.mark.parametrize(
    "exc",
    [KeyboardInterrupt(), SystemExit(2), SystemExit("fatal message")],
    ids=["ctrl-c", "sys-exit-2", "sys-exit-message"],
)
def test_row07_interrupt_or_sys_exit_uploads_sync_registrations(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path, exc: BaseException
) -> None:
    dest = tmp_path / "eval"
    with pytest.raises(type(exc)) as info, open_mirror(tmp_path, profile):
        pos3lite.sync(f"s3://{bucket}/eval", local=dest, interval=None)
        (dest / "episode.bin").write_bytes(b"recorded")
        raise exc
    assert info.value is exc
    assert remote_tree(oracle, bucket, "eval/") == {"episode.bin": b"recorded"}
    assert tree(dest) == {"episode.bin": b"recorded"}


SIGTERM_SCRIPT = r"""
import sys, time, pos3lite
from pathlib import Path
dest = Path(sys.argv[3])
with pos3lite.mirror(cache_root=sys.argv[1], show_progress=False):
    pos3lite.sync(sys.argv[2], local=dest, interval=None)
    (dest / "ckpt.pt").write_bytes(b"weights")
    print("ready", flush=True)
    time.sleep(60)
print("unreachable", flush=True)
"""


def test_row08_sigterm_runs_the_final_sync(
    s3_env: Any, oracle: Any, bucket: str, tmp_path: Path
) -> None:
    dest = tmp_path / "exp"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            SIGTERM_SCRIPT,
            str(tmp_path / "cache"),
            f"s3://{bucket}/exp",
            str(dest),
        ],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "unreachable" not in out
    assert remote_tree(oracle, bucket, "exp/") == {"ckpt.pt": b"weights"}
    assert tree(dest) == {"ckpt.pt": b"weights"}


def test_row08_sigterm_handler_is_restored_and_opt_out(profile: Any, tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)
    assert before is signal.SIG_DFL
    with open_mirror(tmp_path, profile):
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    with open_mirror(tmp_path, profile, handle_sigterm=False):
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

    def mine(signum: int, frame: Any) -> None:
        pass

    signal.signal(signal.SIGTERM, mine)
    try:
        with open_mirror(tmp_path, profile):  # an application's own handler is kept
            assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_row09_exception_uploads_only_sync_on_error_and_names_the_others(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING),
        pytest.raises(RuntimeError),
        open_mirror(tmp_path, profile),
    ):
        a = pos3lite.sync(f"s3://{bucket}/a", local=tmp_path / "a", interval=None)
        b = pos3lite.sync(
            f"s3://{bucket}/b", local=tmp_path / "b", interval=None, sync_on_error=True
        )
        (a / "x.txt").write_bytes(b"a")
        (b / "y.txt").write_bytes(b"b")
        raise RuntimeError("boom")
    assert keys(oracle, bucket) == ["b/y.txt"]
    assert tree(tmp_path / "a") == {"x.txt": b"a"}
    assert tree(tmp_path / "b") == {"y.txt": b"b"}
    warned = [r.getMessage() for r in caplog.records if "not uploading" in r.getMessage()]
    assert len(warned) == 1 and f"s3://{bucket}/a" in warned[0]


def test_row10_sync_of_empty_remote_into_cache_creates_no_folder(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    with open_mirror(tmp_path, profile):
        out = pos3lite.sync(f"s3://{bucket}/datasets/new", interval=None)
        assert not out.exists()
        out.mkdir(parents=True, exist_ok=False)  # LeRobotDataset.create
        (out / "meta.json").write_bytes(b"{}")
        (out / "data").mkdir()
        (out / "data" / "chunk-000.parquet").write_bytes(b"rows")
    assert remote_tree(oracle, bucket, "datasets/new/") == {
        "meta.json": b"{}",
        "data/chunk-000.parquet": b"rows",
    }
    assert tree(out) == {"meta.json": b"{}", "data/chunk-000.parquet": b"rows"}


def test_row11_lerobot_last_symlink_not_uploaded_and_resume_works(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    url = f"s3://{bucket}/train"
    with open_mirror(tmp_path, profile):
        run = pos3lite.sync(url, local=tmp_path / "run", interval=None)
        ckpts = run / "checkpoints"
        (ckpts / "000010").mkdir(parents=True)
        (ckpts / "000010" / "model.safetensors").write_bytes(b"w10")
        (ckpts / "last").symlink_to("000010", target_is_directory=True)
    assert remote_tree(oracle, bucket, "train/") == {"checkpoints/000010/model.safetensors": b"w10"}
    # Resume on a fresh cache (another machine): `last` is absent, symlink_to works.
    fresh = tmp_path / "fresh"
    with pos3lite.mirror(cache_root=fresh / "cache", show_progress=False, default_profile=profile):
        run2 = pos3lite.sync(url, local=fresh / "run", interval=None)
        ckpts2 = run2 / "checkpoints"
        assert not os.path.lexists(ckpts2 / "last")
        (ckpts2 / "last").symlink_to("000010", target_is_directory=True)
        assert (ckpts2 / "last" / "model.safetensors").read_bytes() == b"w10"
    assert tree(fresh / "run") == {"checkpoints/000010/model.safetensors": b"w10"}
    assert os.readlink(fresh / "run" / "checkpoints" / "last") == "000010"
    assert remote_tree(oracle, bucket, "train/") == {"checkpoints/000010/model.safetensors": b"w10"}


def test_row12_file_rewritten_during_multipart_upload_is_sent_again(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pos3lite.mirror import context

    real_init = context._Mirror.__init__

    def init(self: Any, *a: Any, **kw: Any) -> None:
        real_init(self, *a, **kw)
        self.transfer_config = TransferConfig(multipart_threshold=5 * MiB, part_size=5 * MiB)

    monkeypatch.setattr(context._Mirror, "__init__", init)
    dest = tmp_path / "run"
    dest.mkdir()
    first, final = os.urandom(12 * MiB), os.urandom(12 * MiB)
    (dest / "big.bin").write_bytes(first)
    calls: list[int] = []

    def rewriting(real: Any) -> Any:
        def part(self: S3Client, *a: Any, **kw: Any) -> Any:
            calls.append(1)
            if len(calls) == 2:  # the writer rewrites the file at the same size mid-upload
                (dest / "big.bin").write_bytes(final)
            return real(self, *a, **kw)

        return part

    with monkeypatch.context() as mp:
        # parts go out from memory (upload_part_bytes) or, over the budget, streamed
        for name in ("upload_part", "upload_part_bytes"):
            mp.setattr(S3Client, name, rewriting(getattr(S3Client, name)))
        with open_mirror(tmp_path, profile, max_workers=1):
            pos3lite.sync(f"s3://{bucket}/run", local=dest, interval=None)
    assert len(calls) == 3
    with open_mirror(tmp_path, profile):
        pos3lite.sync(f"s3://{bucket}/run", local=dest, interval=None)
    got = get(oracle, bucket, "run/big.bin")
    assert hashlib.sha256(got).digest() == hashlib.sha256(final).digest()
    assert keys(oracle, bucket) == ["run/big.bin"]
    assert tree(dest) == {"big.bin": final}


# ------------------------------------------------------------------------ process safety


def test_row13_nested_local_folders_in_two_registrations_are_refused(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    outer, inner = tmp_path / "out", tmp_path / "out" / "sub"
    with open_mirror(tmp_path, profile):
        pos3lite.upload(f"s3://{bucket}/a", local=outer, interval=None)
        for register in (
            lambda: pos3lite.sync(f"s3://{bucket}/b", local=inner, interval=None),
            lambda: pos3lite.download(f"s3://{bucket}/b", local=inner),
            lambda: pos3lite.upload(f"s3://{bucket}/c", local=outer, interval=None),
        ):
            with pytest.raises(ConfigError) as info:
                register()
            msg = str(info.value)
            assert str(outer) in msg and f"s3://{bucket}/a" in msg
        (outer / "sub").mkdir(parents=True)
        (outer / "sub" / "f.txt").write_bytes(b"f")
    assert remote_tree(oracle, bucket, "") == {"a/sub/f.txt": b"f"}
    assert tree(outer) == {"sub/f.txt": b"f"}
    # Downloads may overlap each other.
    put(oracle, bucket, "d/x.txt", b"x")
    with open_mirror(tmp_path, profile):
        pos3lite.download(f"s3://{bucket}/d", local=tmp_path / "dl")
        pos3lite.download(f"s3://{bucket}/d/x.txt", local=tmp_path / "dl" / "x.txt")
    assert tree(tmp_path / "dl") == {"x.txt": b"x"}


HOLDER_SCRIPT = r"""
import sys, pos3lite
from pathlib import Path
dest = Path(sys.argv[3])
with pos3lite.mirror(cache_root=sys.argv[1], show_progress=False):
    pos3lite.upload(sys.argv[2], local=dest, interval=None)
    print("ready", flush=True)
    sys.stdin.readline()
    (dest / "fresh.txt").write_bytes(b"written by A")
"""


def test_row14_process_b_download_delete_refused_while_a_uploads(
    s3_env: Any, oracle: Any, bucket: str, tmp_path: Path
) -> None:
    put(oracle, bucket, "shared/old.txt", b"old")
    dest = tmp_path / "shared"
    dest.mkdir()
    (dest / "old.txt").write_bytes(b"old")
    cache = tmp_path / "cache"
    url = f"s3://{bucket}/shared"
    a = subprocess.Popen(
        [sys.executable, "-c", HOLDER_SCRIPT, str(cache), url, str(dest)],
        env=dict(os.environ),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert a.stdout is not None and a.stdin is not None
    assert a.stdout.readline().strip() == "ready"
    try:
        with (
            pytest.raises(ConfigError) as info,
            pos3lite.mirror(cache_root=cache, show_progress=False),
        ):
            pos3lite.download(url, local=dest, delete=True)
        msg = str(info.value)
        assert f"process {a.pid}" in msg and str(dest) in msg and url in msg
        # The download-side registration of a nested folder is refused too.
        with pytest.raises(ConfigError), pos3lite.mirror(cache_root=cache, show_progress=False):
            pos3lite.download(url, local=dest / "inner", delete=True)
    finally:
        a.stdin.write("go\n")
        a.stdin.flush()
        _, err = a.communicate(timeout=60)
    assert a.returncode == 0, err
    assert remote_tree(oracle, bucket, "shared/") == {
        "old.txt": b"old",
        "fresh.txt": b"written by A",
    }
    assert tree(dest) == {"old.txt": b"old", "fresh.txt": b"written by A"}
    # Once A is gone, B may download.
    with pos3lite.mirror(cache_root=cache, show_progress=False):
        pos3lite.download(url, local=dest, delete=True)
    assert tree(dest) == {"old.txt": b"old", "fresh.txt": b"written by A"}


def test_row14_concurrent_downloads_of_one_folder_run_one_after_the_other(
    s3_env: Any, oracle: Any, bucket: str, tmp_path: Path
) -> None:
    files = {f"f{i}.bin": os.urandom(2000 + i) for i in range(40)}
    for rel, data in files.items():
        put(oracle, bucket, f"ds/{rel}", data)
    script = (
        "import sys, pos3lite\n"
        "from pos3lite.s3.client import S3Client\n"
        "n = []\n"
        "real = S3Client.get_object\n"
        "def g(self, *a, **k):\n"
        "    n.append(1)\n"
        "    return real(self, *a, **k)\n"
        "S3Client.get_object = g\n"
        "with pos3lite.mirror(cache_root=sys.argv[1], show_progress=False):\n"
        "    pos3lite.download(sys.argv[2])\n"
        "print(len(n))\n"
    )
    cmd = [sys.executable, "-c", script, str(tmp_path / "cache"), f"s3://{bucket}/ds"]
    procs = [
        subprocess.Popen(
            cmd, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert sorted(int(o.strip()) for o, _ in outs) == [0, len(files)]
    assert tree(tmp_path / "cache" / "_" / bucket / "ds") == files


FORK_SCRIPT = r"""
import os, sys, pos3lite
from pathlib import Path
cache, bucket, work = sys.argv[1], sys.argv[2], Path(sys.argv[3])
with pos3lite.mirror(cache_root=cache, show_progress=False, max_workers=4):
    pos3lite.download(f"s3://{bucket}/a", local=work / "a")   # pools and threads in use
    up = pos3lite.upload(f"s3://{bucket}/up", local=work / "up", interval=None, delete=False)
    up.mkdir(parents=True, exist_ok=True)
    (up / "parent.txt").write_bytes(b"parent")
    pid = os.fork()
    if pid == 0:
        (up / "child.txt").write_bytes(b"must not be uploaded by the child")
        pos3lite.download(f"s3://{bucket}/b", local=work / "b")
        sys.exit(0)  # leaves the with block in the child: its exit must upload nothing
    _, status = os.waitpid(pid, 0)
    (up / "child.txt").unlink()
    print("child", os.waitstatus_to_exitcode(status), flush=True)
"""


def test_row15_fork_after_using_the_mirror_child_downloads(
    s3_env: Any, oracle: Any, bucket: str, tmp_path: Path
) -> None:
    put(oracle, bucket, "a/x.txt", b"x")
    files = {f"f{i}.txt": f"{i}".encode() * 100 for i in range(20)}
    for rel, data in files.items():
        put(oracle, bucket, f"b/{rel}", data)
    work = tmp_path / "work"
    proc = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT, str(tmp_path / "cache"), bucket, str(work)],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "child 0"
    assert tree(work / "b") == files
    assert tree(work / "a") == {"x.txt": b"x"}
    assert remote_tree(oracle, bucket, "up/") == {"parent.txt": b"parent"}
    assert tree(work / "up") == {"parent.txt": b"parent"}


# ----------------------------------------------------------------- flush and background


def test_row17_flush_puts_the_object_on_s3_before_returning(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    with open_mirror(tmp_path, profile):
        out = pos3lite.sync(f"s3://{bucket}/ep", local=tmp_path / "ep", interval=None)
        other = pos3lite.upload(f"s3://{bucket}/other", local=tmp_path / "o", interval=None)
        other.mkdir()
        (out / "episode-1.bin").write_bytes(b"one")
        (other / "o.txt").write_bytes(b"o")
        pos3lite.flush(f"s3://{bucket}/ep")
        assert remote_tree(oracle, bucket, "") == {"ep/episode-1.bin": b"one"}
        pos3lite.flush()
        assert remote_tree(oracle, bucket, "") == {
            "ep/episode-1.bin": b"one",
            "other/o.txt": b"o",
        }
        with pytest.raises(ConfigError, match="no upload or sync is registered"):
            pos3lite.flush(f"s3://{bucket}/nope")
    assert tree(out) == {"episode-1.bin": b"one"}


def test_row17_flush_raises_transfer_error(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(self: S3Client, *a: Any, **kw: Any) -> Any:
        raise OSError("disk on fire")

    with open_mirror(tmp_path, profile):
        out = pos3lite.upload(f"s3://{bucket}/ep", local=tmp_path / "ep", interval=None)
        out.mkdir()
        (out / "a.bin").write_bytes(b"a")
        with monkeypatch.context() as mp:
            mp.setattr(S3Client, "put_object_from_file", failing)
            with pytest.raises(TransferError):
                pos3lite.flush()
    assert remote_tree(oracle, bucket, "") == {"ep/a.bin": b"a"}  # the exit uploaded it


def _wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_row18_background_tick_during_rm_rf_and_rewrite_deletes_nothing(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    import shutil

    put(oracle, bucket, "run/sub/model.pt", b"v1")
    put(oracle, bucket, "run/sub/stale.pt", b"old")
    url = f"s3://{bucket}/run"
    with open_mirror(tmp_path, profile):
        start = time.monotonic()
        run = pos3lite.sync(url, local=tmp_path / "run", interval=30)
        shutil.rmtree(run / "sub")  # the user rewrites the folder...
        (run / "marker.txt").write_bytes(b"tick")
        _wait_for(lambda: "run/marker.txt" in keys(oracle, bucket))
        assert time.monotonic() - start < 5  # the first tick comes ~1 s after registration
        # ...the tick uploaded but deleted nothing remotely.
        assert remote_tree(oracle, bucket, "run/") == {
            "sub/model.pt": b"v1",
            "sub/stale.pt": b"old",
            "marker.txt": b"tick",
        }
        (run / "sub").mkdir()
        (run / "sub" / "model.pt").write_bytes(b"v2")
    # The final sync applies the deletes.
    assert remote_tree(oracle, bucket, "run/") == {"sub/model.pt": b"v2", "marker.txt": b"tick"}
    assert tree(tmp_path / "run") == {"sub/model.pt": b"v2", "marker.txt": b"tick"}


# ------------------------------------------------------------------------------- CLI row


def test_row19_cli_sync_dry_run_lists_what_the_real_run_does(
    s3_server: Any, oracle: Any, bucket: str, tmp_path: Path
) -> None:
    from .test_cli import cli_env, run

    env = cli_env(s3_server, tmp_path)
    for rel in ("same.txt", "remote-changes.txt", "remote-deletes.txt", "local-edits.txt"):
        put(oracle, bucket, f"w/{rel}", b"v1")
    dest = tmp_path / "w"
    url = f"s3://{bucket}/w"
    first = run(["sync", url, "--local", str(dest), "--delete"], env)
    assert first.returncode == 0, first.stderr
    put(oracle, bucket, "w/remote-changes.txt", b"v2")
    put(oracle, bucket, "w/remote-new.txt", b"n")
    oracle.delete_object(Bucket=bucket, Key="w/remote-deletes.txt")
    (dest / "local-edits.txt").write_bytes(b"v2")
    (dest / "local-new.txt").write_bytes(b"new")
    dry = run(["sync", url, "--local", str(dest), "--delete", "--dry-run"], env)
    assert dry.returncode == 0, dry.stderr
    assert sorted(dry.stdout.splitlines()) == sorted(
        [
            f"(dryrun) download: {url}/remote-changes.txt to {dest / 'remote-changes.txt'}",
            f"(dryrun) download: {url}/remote-new.txt to {dest / 'remote-new.txt'}",
            f"(dryrun) delete: {dest / 'remote-deletes.txt'}",
            f"(dryrun) upload: {dest / 'local-edits.txt'} to {url}/local-edits.txt",
            f"(dryrun) upload: {dest / 'local-new.txt'} to {url}/local-new.txt",
        ]
    )
    real = run(["sync", url, "--local", str(dest), "--delete"], env)
    assert real.returncode == 0, real.stderr
    want = {
        "same.txt": b"v1",
        "remote-changes.txt": b"v2",
        "remote-new.txt": b"n",
        "local-edits.txt": b"v2",
        "local-new.txt": b"new",
    }
    assert tree(dest) == want
    assert remote_tree(oracle, bucket, "w/") == want


# ------------------------------------------------------------------------------ mutations


def test_upload_with_a_failing_copy_and_remote_extras_runs_no_deletes(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(oracle, bucket, "out/extra.txt", b"only remote")
    src = tmp_path / "src"
    src.mkdir()
    (src / "good.txt").write_bytes(b"g")
    (src / "bad.txt").write_bytes(b"b")
    real = S3Client.put_object_from_file

    def failing(self: S3Client, bucket_: str, key: str, *a: Any, **kw: Any) -> Any:
        if key.endswith("bad.txt"):
            raise OSError("refused")
        return real(self, bucket_, key, *a, **kw)

    monkeypatch.setattr(S3Client, "put_object_from_file", failing)
    with pytest.raises(TransferError), open_mirror(tmp_path, profile):
        pos3lite.upload(f"s3://{bucket}/out", local=src, interval=None, delete=True)
    assert remote_tree(oracle, bucket, "out/") == {"extra.txt": b"only remote", "good.txt": b"g"}
    assert tree(src) == {"good.txt": b"g", "bad.txt": b"b"}


def test_ctrl_c_during_a_multipart_upload_leaves_no_open_upload(
    oracle: Any,
    bucket: str,
    profile: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    from pos3lite.mirror import context

    real_init = context._Mirror.__init__

    def init(self: Any, *a: Any, **kw: Any) -> None:
        real_init(self, *a, **kw)
        self.transfer_config = TransferConfig(multipart_threshold=5 * MiB, part_size=5 * MiB)

    monkeypatch.setattr(context._Mirror, "__init__", init)
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(16 * MiB))
    calls: list[int] = []

    def interrupting(real: Any) -> Any:
        def part(self: S3Client, *a: Any, **kw: Any) -> Any:
            calls.append(1)
            if len(calls) == 2:
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C reaches the main thread
                time.sleep(0.5)
            return real(self, *a, **kw)

        return part

    # A shell starts background jobs with SIGINT ignored, and Python then installs no
    # KeyboardInterrupt handler: put the usual one in place so the test means the same there.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))
    with pytest.raises(KeyboardInterrupt), open_mirror(tmp_path, profile, max_workers=2):
        pos3lite.upload(f"s3://{bucket}/out", local=src, interval=None)
        with monkeypatch.context() as mp:
            for name in ("upload_part", "upload_part_bytes"):
                mp.setattr(S3Client, name, interrupting(getattr(S3Client, name)))
            pos3lite.flush()
    open_uploads = oracle.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert open_uploads == []
    # Ctrl-C is a clean exit: the final sync uploaded the file completely.
    assert get(oracle, bucket, "out/big.bin") == (src / "big.bin").read_bytes()
    assert keys(oracle, bucket) == ["out/big.bin"]


# ------------------------------------------------------------------- three-way conflicts


@pytest.mark.parametrize("newer", ["local", "remote"])
def test_sync_both_changed_newer_wins_other_kept_under_cache_root(
    oracle: Any,
    bucket: str,
    profile: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    newer: str,
) -> None:
    put(oracle, bucket, "w/f.txt", b"base")
    dest = tmp_path / "w"
    url = f"s3://{bucket}/w"
    with open_mirror(tmp_path, profile):
        pos3lite.sync(url, local=dest, interval=None)
    put(oracle, bucket, "w/f.txt", b"remote edit")
    (dest / "f.txt").write_bytes(b"local edit")
    shift = 1000 if newer == "local" else -1000
    os.utime(dest / "f.txt", (time.time() + shift, time.time() + shift))
    with caplog.at_level(logging.WARNING), open_mirror(tmp_path, profile):
        pos3lite.sync(url, local=dest, interval=None)
    winner, loser = (
        (b"local edit", b"remote edit") if newer == "local" else (b"remote edit", b"local edit")
    )
    assert tree(dest) == {"f.txt": winner}
    assert remote_tree(oracle, bucket, "w/") == {"f.txt": winner}
    kept = [p for p in (tmp_path / "cache" / ".pos3lite" / "conflicts").rglob("f.txt")]
    assert [p.read_bytes() for p in kept] == [loser]
    assert any(str(kept[0]) in r.getMessage() for r in caplog.records if r.levelno == 30)


def test_first_sync_without_state_keeps_the_replaced_local_version(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    """A stale machine (no state in this cache) never overwrites newer remote data; its
    local version is kept under the cache root."""
    put(oracle, bucket, "w/f.txt", b"newer remote data")
    dest = tmp_path / "w"
    dest.mkdir()
    (dest / "f.txt").write_bytes(b"stale")
    os.utime(dest / "f.txt", (time.time() - 3600, time.time() - 3600))
    (dest / "mine.txt").write_bytes(b"only here")
    with open_mirror(tmp_path, profile):
        pos3lite.sync(f"s3://{bucket}/w", local=dest, interval=None)
    assert tree(dest) == {"f.txt": b"newer remote data", "mine.txt": b"only here"}
    assert remote_tree(oracle, bucket, "w/") == {
        "f.txt": b"newer remote data",
        "mine.txt": b"only here",
    }
    kept = list((tmp_path / "cache" / ".pos3lite" / "conflicts").rglob("f.txt"))
    assert [p.read_bytes() for p in kept] == [b"stale"]
