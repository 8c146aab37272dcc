"""Uncontended lock acquire+release: pos3lite's lease lock next to s3func's S3Lock, on one
local SeaweedFS server (tests/support/seaweedfs.py), one run of N cycles each.

Run: ``.venv/bin/python benchmarks/lock_acquire.py [cycles]`` from the repository root, with
s3func 0.9.6 installed in ``benchmarks/out/venvs/s3func`` (``python3.11 -m venv ...; pip
install s3func==0.9.6``). Each tool runs in its own process; the first cycle (connection
set-up, pos3lite's one-off conditional-write probe) is not counted. Prints medians and the
ratio; a tool that fails prints its error instead of a number.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import uuid
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from tests.support.seaweedfs import SeaweedFS, oracle_client  # noqa: E402


def run(python: str, driver: str, server: SeaweedFS, bucket: str, cycles: int) -> list[float]:
    args = [server.endpoint, server.region, server.access_key, server.secret_key, bucket]
    done = subprocess.run(
        [python, str(BENCH / "drivers" / driver), *args, str(cycles)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{driver} failed:\n{done.stderr[-2000:]}")
    times: list[float] = json.loads(done.stdout.strip().splitlines()[-1])
    return times


def main() -> None:
    cycles = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    s3func_python = BENCH / "out" / "venvs" / "s3func" / "bin" / "python"
    with SeaweedFS() as server:
        oracle = oracle_client(server)
        bucket = f"lock-bench-{uuid.uuid4().hex[:8]}"
        oracle.create_bucket(Bucket=bucket)
        results: dict[str, list[float] | str] = {}
        results["pos3lite"] = run(sys.executable, "lk_pos3lite.py", server, bucket, cycles)
        try:
            results["s3func"] = run(str(s3func_python), "lk_s3func.py", server, bucket, cycles)
        except (RuntimeError, OSError) as exc:
            results["s3func"] = str(exc)
    base = results["pos3lite"]
    assert isinstance(base, list)
    print(f"uncontended acquire+release, {cycles} cycles each, SeaweedFS on 127.0.0.1")
    for name, value in results.items():
        if isinstance(value, str):
            print(f"  {name:9s} failed: {value}")
            continue
        med = statistics.median(value)
        print(
            f"  {name:9s} median {med * 1000:8.1f} ms  (min {min(value) * 1000:.1f}, "
            f"max {max(value) * 1000:.1f})  {med / statistics.median(base):6.2f}x pos3lite"
        )


if __name__ == "__main__":
    main()
