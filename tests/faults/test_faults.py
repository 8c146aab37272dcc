"""Fault injection: download, upload and sync converge through a faulty proxy; SIGKILL mid
download leaves only complete files at final paths.

Every run goes through :class:`~tests.faults.proxy.FaultProxy` (resets, 500, 503 SlowDown,
truncated bodies, stalled bodies, delayed heads; about 15 % of requests, seeded) in front of
SeaweedFS. A run that still fails after pos3lite's own retries (``TransferError`` and the
like) is simply run again, at most ``MAX_RUNS`` times; after *every* run, including failed
ones, each file at a final path must be byte-identical to what it should be.
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import pos3lite
from pos3lite.errors import ChecksumMismatchError, S3Error, TransferError, TransportError
from pos3lite.s3.retry import is_retryable

from .proxy import MODES, FaultProxy
from .support import (
    LedgerEntry,
    MiB,
    assert_no_partial,
    assert_tree_equal,
    bucket_tree,
    open_multipart_uploads,
    profile_for,
    temp_files,
)

pytestmark = pytest.mark.faults

MAX_RUNS = 5
#: Short timeouts keep stalls cheap: a stall (3 s) always outlives the read timeout.
MIRROR_KW: dict[str, Any] = {
    "show_progress": False,
    "max_workers": 8,
    "max_attempts": 6,
    "connect_timeout": 2,
    "read_timeout": 1.5,
}
KILLS = 10


def _mirror(cache: Path, profile: Any) -> Any:
    return pos3lite.mirror(cache_root=cache, default_profile=profile, **MIRROR_KW)


def _is_run_failure(exc: BaseException) -> bool:
    """A failure a rerun may cure: per-file failures, or a listing that ran out of retries."""
    if isinstance(exc, TransferError):
        return all(_is_run_failure(f) for f in exc.failures)
    return isinstance(exc, (TransportError, S3Error, ChecksumMismatchError)) and is_retryable(exc)


def converge(record: LedgerEntry, run: Callable[[], None], check: Callable[[int], object]) -> int:
    """Call ``run`` until it succeeds (at most MAX_RUNS); ``check(n)`` after every run."""
    failures: list[str] = []
    for n in range(1, MAX_RUNS + 1):
        try:
            run()
        except Exception as exc:
            if not _is_run_failure(exc):
                raise
            failures.append(f"run {n}: {type(exc).__name__}: {str(exc)[:300]}")
            check(n)
            continue
        check(n)
        record.runs = n
        record.notes["failed_runs"] = record.notes.get("failed_runs", 0) + len(failures)
        record.run_failures += failures
        return n
    record.runs = MAX_RUNS
    record.run_failures += failures
    pytest.fail(f"no convergence after {MAX_RUNS} runs:\n" + "\n".join(failures))


def _seed_bucket(profile: Any, cache: Path, url: str, source: Path) -> None:
    """Upload ``source`` to ``url`` straight to the server (no proxy, no faults)."""
    with pos3lite.mirror(
        cache_root=cache, show_progress=False, max_workers=8, default_profile=profile
    ):
        pos3lite.upload(url, local=source, interval=None)


@pytest.fixture(scope="module")
def seeded(
    s3_server: Any, oracle: Any, source_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """A bucket holding the tree under ``tree/`` (written directly, no faults), read-only."""
    name = f"seeded-{os.getpid()}"
    oracle.create_bucket(Bucket=name)
    url = f"s3://{name}/tree"
    _seed_bucket(
        profile_for(s3_server.endpoint, s3_server),
        tmp_path_factory.mktemp("seedcache"),
        url,
        source_dir,
    )
    return url


# --------------------------------------------------------------------------- the proxy


class _Fixed(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    body = bytes(range(256)) * 64  # 16 KiB

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fixed_upstream() -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Fixed)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("mode", [*MODES, None])
def test_proxy_mode_symptoms(fixed_upstream: str, mode: str | None) -> None:
    """Each mode produces the symptom the client must survive; stop() wakes stalls."""
    rates = {mode: 1.0} if mode else {}
    with FaultProxy(fixed_upstream, seed=1, rates=rates, stall_seconds=30.0) as proxy:
        host, port = proxy.endpoint[len("http://") :].split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=1.0)
        if mode == "reset":
            with pytest.raises(ConnectionResetError):
                conn.request("GET", "/a%2Fb/./x?y=1&z")
                conn.getresponse().read()
        elif mode in ("error500", "slowdown503"):
            conn.request("GET", "/x")
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == (500 if mode == "error500" else 503)
            code = b"InternalError" if mode == "error500" else b"SlowDown"
            assert b"<Code>" + code + b"</Code>" in body
        elif mode == "truncate":
            conn.request("GET", "/x")
            resp = conn.getresponse()
            with pytest.raises(http.client.IncompleteRead):
                resp.read()
        elif mode == "stall":
            conn.request("GET", "/x")
            t0 = time.monotonic()
            with pytest.raises((TimeoutError, socket.timeout)):
                conn.getresponse().read()
            assert time.monotonic() - t0 < 10
        else:  # delay and no fault: the answer is intact, twice on one connection
            for _ in range(2):
                conn.request("GET", "/x")
                resp = conn.getresponse()
                assert resp.status == 200
                assert resp.read() == _Fixed.body
        conn.close()
        if mode:
            assert proxy.injected[mode] >= 1
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 5  # a stalled handler woke on stop()


# --------------------------------------------------------------------------- transfers


def test_upload_converges(
    s3_server: Any,
    oracle: Any,
    bucket: str,
    make_proxy: Callable[..., FaultProxy],
    fault_record: LedgerEntry,
    source_dir: Path,
    expected_tree: dict[str, bytes],
    tmp_path: Path,
) -> None:
    proxy = make_proxy(seed=1001)
    profile = profile_for(proxy.endpoint, s3_server)
    url = f"s3://{bucket}/up"

    def run() -> None:
        with _mirror(tmp_path / "cache", profile):
            pos3lite.upload(url, local=source_dir, interval=None)

    def check(n: int) -> None:
        # Objects appear whole or not at all: whatever is listed is byte-identical.
        got = bucket_tree(oracle, bucket, "up/")
        wrong = [k for k, v in got.items() if expected_tree.get(k) != v]
        assert not wrong, f"after run {n}: wrong objects {wrong[:5]}"

    converge(fault_record, run, check)
    assert bucket_tree(oracle, bucket, "up/") == expected_tree
    _check_no_multipart_left(oracle, bucket, proxy, fault_record)
    with pos3lite.mirror(
        cache_root=tmp_path / "cache",
        show_progress=False,
        default_profile=profile_for(s3_server.endpoint, s3_server),
    ):
        plan = pos3lite.plan_upload(url, source_dir)
    assert plan.to_copy == [] and plan.to_delete == []
    fault_record.converged = True


def _check_no_multipart_left(
    oracle: Any, bucket: str, proxy: FaultProxy, record: LedgerEntry
) -> None:
    """No multipart upload is left open, except those whose CreateMultipartUpload answer
    the proxy kept from the client (the client never learnt their UploadId)."""
    left = open_multipart_uploads(oracle, bucket)
    unknown = {u for _k, u in left} - set(proxy.damaged_create_upload_ids)
    assert not unknown, f"multipart uploads left behind: {left}"
    record.notes["orphaned_uploads_lost_create"] = len(left)
    for key, upload_id in left:
        oracle.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)


def test_download_converges(
    s3_server: Any,
    seeded: str,
    make_proxy: Callable[..., FaultProxy],
    fault_record: LedgerEntry,
    expected_tree: dict[str, bytes],
    tmp_path: Path,
) -> None:
    proxy = make_proxy(seed=2002)
    profile = profile_for(proxy.endpoint, s3_server)
    dest = tmp_path / "dest"

    def run() -> None:
        with _mirror(tmp_path / "cache", profile):
            pos3lite.download(seeded, local=dest)

    converge(
        fault_record,
        run,
        lambda n: assert_no_partial(dest, expected_tree, when=f"after run {n}"),
    )
    assert_tree_equal(dest, expected_tree, when="after convergence")
    assert temp_files(dest) == []  # in-process failures clean up after themselves
    with pos3lite.mirror(
        cache_root=tmp_path / "cache",
        show_progress=False,
        default_profile=profile_for(s3_server.endpoint, s3_server),
    ):
        plan = pos3lite.plan_download(seeded, dest)
    assert plan.to_copy == [] and plan.to_delete == []
    fault_record.converged = True


def _edit(root: Path, tree: dict[str, bytes], seed: int) -> dict[str, bytes]:
    """Seeded local edits: same-size and resized rewrites (one large), new files (one
    large), deletions. Returns the tree as it must end up."""
    rng = random.Random(seed)
    out = dict(tree)
    small = sorted(k for k, v in tree.items() if len(v) < MiB)
    large = sorted(k for k, v in tree.items() if len(v) >= 8 * MiB)
    picks = rng.sample(small, 17)
    for k in picks[:8]:  # same size, new bytes
        out[k] = rng.randbytes(len(tree[k]))
    for k in picks[8:12]:  # new size
        out[k] = rng.randbytes(rng.randint(0, 100_000))
    out[large[0]] = rng.randbytes(len(tree[large[0]]))  # same-size change of a large file
    for k in picks[12:]:
        del out[k]
    del out[large[1]]
    for i in range(4):
        out[f"new/added {i} \u00e9.bin"] = rng.randbytes(rng.randint(0, 50_000))
    out["new/big added.bin"] = rng.randbytes(10 * MiB + 3)
    for k in set(tree) - set(out):
        root.joinpath(*k.split("/")).unlink()
    for k, v in out.items():
        if tree.get(k) != v:
            p = root.joinpath(*k.split("/"))
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(v)
    return out


def test_sync_converges(
    s3_server: Any,
    oracle: Any,
    bucket: str,
    direct_profile: Any,
    make_proxy: Callable[..., FaultProxy],
    fault_record: LedgerEntry,
    source_dir: Path,
    expected_tree: dict[str, bytes],
    tmp_path: Path,
) -> None:
    url = f"s3://{bucket}/sync"
    _seed_bucket(direct_profile, tmp_path / "seedcache", url, source_dir)
    proxy = make_proxy(seed=3003)
    profile = profile_for(proxy.endpoint, s3_server)
    local = tmp_path / "work"
    state: dict[str, Any] = {"edited": None}

    def run() -> None:
        with _mirror(tmp_path / "cache", profile):
            if state["edited"] is None:
                # Download now, edit, and let the mirror's exit upload the edits back.
                pos3lite.sync(url, local=local, interval=None)
                assert_tree_equal(local, expected_tree, when="after the sync download")
                newest = max(p.stat().st_mtime for p in local.rglob("*") if p.is_file())
                while time.time() < int(newest) + 1.05:  # edits must be newer in whole seconds
                    time.sleep(0.1)
                state["edited"] = _edit(local, expected_tree, seed=3)
            else:
                # The edits are made; a failed exit upload is finished by upload alone
                # (sync would download again and undo them).
                pos3lite.upload(url, local=local, interval=None)

    def check(n: int) -> None:
        want = state["edited"] or expected_tree
        if state["edited"] is None:
            assert_no_partial(local, want, when=f"after run {n}")
        got = bucket_tree(oracle, bucket, "sync/")
        # The remote holds only original or edited objects, each whole.
        wrong = [k for k, v in got.items() if v not in (expected_tree.get(k), want.get(k))]
        assert not wrong, f"after run {n}: wrong objects {wrong[:5]}"

    converge(fault_record, run, check)
    final = state["edited"]
    assert final is not None
    assert_tree_equal(local, final, when="local after convergence")
    assert bucket_tree(oracle, bucket, "sync/") == final
    _check_no_multipart_left(oracle, bucket, proxy, fault_record)
    fault_record.converged = True


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_alone_at_15_percent(
    mode: str,
    s3_server: Any,
    oracle: Any,
    bucket: str,
    make_proxy: Callable[..., FaultProxy],
    fault_record: LedgerEntry,
    source_dir: Path,
    expected_tree: dict[str, bytes],
    tmp_path: Path,
) -> None:
    """One mode at 15 % of requests: the tree goes up and comes back byte-identical."""
    proxy = make_proxy(seed=6000 + MODES.index(mode), rates={mode: 0.15})
    profile = profile_for(proxy.endpoint, s3_server)
    url = f"s3://{bucket}/{mode}"
    dest = tmp_path / "dest"

    def up() -> None:
        with _mirror(tmp_path / "cache", profile):
            pos3lite.upload(url, local=source_dir, interval=None)

    def check_up(n: int) -> None:
        got = bucket_tree(oracle, bucket, f"{mode}/")
        wrong = [k for k, v in got.items() if expected_tree.get(k) != v]
        assert not wrong, f"after upload run {n}: wrong objects {wrong[:5]}"

    def down() -> None:
        with _mirror(tmp_path / "cache", profile):
            pos3lite.download(url, local=dest)

    up_runs = converge(fault_record, up, check_up)
    assert bucket_tree(oracle, bucket, f"{mode}/") == expected_tree
    _check_no_multipart_left(oracle, bucket, proxy, fault_record)
    down_runs = converge(
        fault_record,
        down,
        lambda n: assert_no_partial(dest, expected_tree, when=f"after download run {n}"),
    )
    assert_tree_equal(dest, expected_tree, when="after the download converged")
    assert temp_files(dest) == []
    fault_record.runs = up_runs + down_runs
    fault_record.notes.update(upload_runs=up_runs, download_runs=down_runs)
    fault_record.converged = True


@pytest.mark.parametrize("mode", ["truncate", "stall"])
def test_lost_create_multipart_reply_is_retried(
    mode: str,
    s3_server: Any,
    oracle: Any,
    bucket: str,
    make_proxy: Callable[..., FaultProxy],
    fault_record: LedgerEntry,
    tmp_path: Path,
) -> None:
    """Regression: the CreateMultipartUpload reply body was read outside the retry loop,
    so one truncated or stalled reply failed the whole file."""
    proxy = make_proxy(
        seed=7007,
        rates={mode: 1.0},
        match=lambda method, target: method == "POST" and "?uploads" in target,
        max_faults=1,
    )
    src = tmp_path / "src"
    src.mkdir()
    data = random.Random(7).randbytes(9 * MiB)
    (src / "big.bin").write_bytes(data)
    with _mirror(tmp_path / "cache", profile_for(proxy.endpoint, s3_server)):
        pos3lite.upload(f"s3://{bucket}/one", local=src, interval=None)  # no rerun allowed
    assert proxy.injected[mode] == 1
    assert bucket_tree(oracle, bucket, "one/") == {"big.bin": data}
    _check_no_multipart_left(oracle, bucket, proxy, fault_record)
    fault_record.runs = 1
    fault_record.converged = True


# --------------------------------------------------------------------------- SIGKILL

_CHILD = r"""
import json, sys
import pos3lite
cfg = json.loads(sys.argv[1])
profile = pos3lite.Profile(
    local_name="faults", endpoint=cfg["endpoint"], region=cfg["region"],
    access_key=cfg["access_key"], secret_key=cfg["secret_key"],
)
with pos3lite.mirror(cache_root=cfg["cache"], default_profile=profile, **cfg["mirror"]):
    print("READY", flush=True)
    try:
        pos3lite.download(cfg["url"], local=cfg["dest"])
    except pos3lite.TransferError as exc:
        print("FAILED", len(exc.failures), flush=True)
        sys.exit(3)
print("DONE", flush=True)
"""


def test_sigkill_mid_download_leaves_only_complete_files(
    s3_server: Any,
    seeded: str,
    make_proxy: Callable[..., FaultProxy],
    fault_record: LedgerEntry,
    expected_tree: dict[str, bytes],
    tmp_path: Path,
) -> None:
    proxy = make_proxy(seed=4004)
    dest = tmp_path / "dest"
    cfg = {
        "endpoint": proxy.endpoint,
        "region": s3_server.region,
        "access_key": s3_server.access_key,
        "secret_key": s3_server.secret_key,
        "cache": str(tmp_path / "cache"),
        "url": seeded,
        "dest": str(dest),
        "mirror": MIRROR_KW,
    }
    env = dict(os.environ, POS3LITE_PROFILES_FILE=str(tmp_path / "none.toml"))
    rng = random.Random(5005)
    moments = [round(rng.uniform(0.05, 1.5), 3) for _ in range(KILLS)]
    finished_before_kill = 0
    complete_after: list[int] = []
    for i, delay in enumerate(moments):
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, json.dumps(cfg)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=Path(__file__).resolve().parents[2],
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == b"READY"
            time.sleep(delay)
            if child.poll() is None:
                os.kill(child.pid, signal.SIGKILL)
            else:
                finished_before_kill += 1
            child.wait(30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            if child.stdout is not None:
                child.stdout.close()
        n = assert_no_partial(dest, expected_tree, when=f"after kill {i + 1} at {delay} s")
        complete_after.append(n)
    left_temps = len(temp_files(dest))
    fault_record.notes.update(
        kills=KILLS - finished_before_kill,
        finished_before_kill=finished_before_kill,
        complete_files_after_each_kill=complete_after,
        temp_files_left_by_kills=left_temps,
    )
    print(
        f"\nSIGKILL moments {moments}; complete files after each: {complete_after}; "
        f"temp files left behind: {left_temps}"
    )

    profile = profile_for(proxy.endpoint, s3_server)

    def run() -> None:
        with _mirror(tmp_path / "cache", profile):
            pos3lite.download(seeded, local=dest)

    converge(
        fault_record,
        run,
        lambda n: assert_no_partial(dest, expected_tree, when=f"after rerun {n}"),
    )
    assert_tree_equal(dest, expected_tree, when="after the rerun converged")
    fault_record.converged = True
