"""Peak RSS while uploading and downloading one large file (default 2 GiB) with pos3lite.

The issue's budget: RSS while uploading a 2 GiB file stays <= 100 MiB (parts are streamed
from the file, never read whole). Each transfer runs in a fresh process under GNU time
(``%M``, peak resident set in KiB); the bytes are verified (size and sha256 of what came back).
Also measures the CPU cost of payload signing: the same upload with ``payload_signing``
``"signed"`` (SHA-256 of every byte, the default over plain HTTP) and ``"unsigned"``
(``UNSIGNED-PAYLOAD``, the default over HTTPS), medians of ``--runs`` interleaved runs.

Run: ``python benchmarks/large_file_rss.py [--size-mib 2048] [--runs 3]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.seaweedfs import SeaweedFS  # noqa: E402

DRIVER = r"""
import sys, pos3lite
op, url, path, signing = sys.argv[1:5]
with pos3lite.mirror(show_progress=False, max_workers=10, payload_signing=signing):
    if op == "up":
        pos3lite.upload(url, local=path, interval=None)
    else:
        pos3lite.download(url, local=path)
"""


def run(args: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(wall s, cpu s, peak RSS KiB) of one driver process under GNU time."""
    with tempfile.NamedTemporaryFile(suffix=".time") as tf:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            ["/usr/bin/time", "-f", "%M %U %S", "-o", tf.name, sys.executable, "-c", DRIVER,
             *args],
            env=env,
        )
        proc.wait()
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"driver failed: {args}")
        rss, user, sys_ = Path(tf.name).read_text().split()[-3:]
    return wall, float(user) + float(sys_), int(rss)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 * 1024 * 1024):
            h.update(block)
    return h.hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=2048)
    ap.add_argument("--runs", type=int, default=3)
    opts = ap.parse_args()
    with SeaweedFS() as server, tempfile.TemporaryDirectory(prefix="pos3lite-big-") as tmp:
        env = dict(os.environ, AWS_ACCESS_KEY_ID=server.access_key,
                   AWS_SECRET_ACCESS_KEY=server.secret_key, AWS_REGION=server.region,
                   AWS_ENDPOINT_URL_S3=server.endpoint, AWS_EC2_METADATA_DISABLED="true")
        import boto3
        from botocore.config import Config

        boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id=server.access_key,
                     aws_secret_access_key=server.secret_key, region_name=server.region,
                     config=Config(s3={"addressing_style": "path"})).create_bucket(Bucket="big")
        src = Path(tmp, "src")
        src.mkdir()
        big = src / "big.bin"
        block = os.urandom(4 * 1024 * 1024)
        with open(big, "wb") as f:
            for _ in range(opts.size_mib // 4):
                f.write(block)
        want = sha256(big)
        rows: dict[str, list[tuple[float, float, int]]] = {"signed": [], "unsigned": []}
        for r in range(opts.runs):
            for signing in (("signed", "unsigned") if r % 2 == 0 else ("unsigned", "signed")):
                url = f"s3://big/{signing}-{r}"
                rows[signing].append(run(["up", url, str(src), signing], env))
        down = Path(tmp, "down")
        d_wall, d_cpu, d_rss = run(["down", "s3://big/signed-0", str(down), "auto"], env)
        ok = sha256(down / "big.bin") == want
    print(f"file: {opts.size_mib} MiB; medians of {opts.runs} interleaved runs; server on "
          "127.0.0.1 shares the machine's 2 cores\n")
    print("| transfer | wall | CPU (user+sys) | peak RSS |")
    print("|---|---|---|---|")
    result = {}
    for signing, vals in rows.items():
        wall = statistics.median(v[0] for v in vals)
        cpu = statistics.median(v[1] for v in vals)
        rss = max(v[2] for v in vals) / 1024
        result[signing] = {"wall_s": wall, "cpu_s": cpu, "peak_rss_mib": rss}
        print(f"| upload, payload_signing={signing} | {wall:.2f} s | {cpu:.2f} s | "
              f"{rss:.0f} MiB (max of runs) |")
    print(f"| download (ranged, ETag verified) | {d_wall:.2f} s | {d_cpu:.2f} s | "
          f"{d_rss / 1024:.0f} MiB |")
    extra = result["signed"]["cpu_s"] - result["unsigned"]["cpu_s"]
    print(f"\nsigned payload costs {extra:.2f} s of CPU more per {opts.size_mib} MiB "
          f"({extra / opts.size_mib * 1024:.2f} s per GiB)")
    print("download bytes verified:", "OK" if ok else "MISMATCH")
    out = REPO / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "large_file_rss-latest.json").write_text(json.dumps(
        {"size_mib": opts.size_mib, "runs": opts.runs, "upload": result,
         "download": {"wall_s": d_wall, "cpu_s": d_cpu, "peak_rss_mib": d_rss / 1024},
         "verified": ok}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
