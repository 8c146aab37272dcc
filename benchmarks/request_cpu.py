"""CPU per request in pos3lite's own code: GetObject and PutObject of small objects through
``S3Client`` over a ``MockTransport`` (signing, header handling, response wrapping, MD5
checks; no sockets, no urllib3, no files written), A/B across commits.

Usage::

    python benchmarks/request_cpu.py [--commits main,HEAD] [--n 2000] [--repeats 7]

Each revision is exported with ``git archive`` and measured in its own process, rounds
interleaved; each round times ``n`` GETs of 16 KiB and ``n`` PUTs of 16 KiB from a file with
``time.process_time``. Reports the minimum and the median over the rounds in µs per request:
on a shared, loaded machine the minimum is the steadiest estimate of the code's own cost.
This isolates what pos3lite controls; whole-process CPU (``cpu_per_object.py``) adds
urllib3, http.client, file creation and thread hand-offs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CODE = r"""
import hashlib, io, json, os, sys, tempfile, time
from datetime import UTC, datetime
from pos3lite.auth.sigv4 import Credentials
from pos3lite.s3.client import S3Client
from pos3lite.transport.base import MockTransport, Response

n = int(sys.argv[1])
body = os.urandom(16384)
etag = hashlib.md5(body).hexdigest()
headers = {
    "Accept-Ranges": "bytes", "Content-Length": str(len(body)),
    "Content-Type": "application/octet-stream", "ETag": f'"{etag}"',
    "Last-Modified": "Sat, 21 Nov 2026 23:03:25 GMT", "Server": "SeaweedFS",
    "X-Amz-Request-Id": "1789A2B3C4D5E6F7", "Date": "Sat, 21 Nov 2026 23:03:26 GMT",
}

class Static:
    def resolve(self):
        return Credentials("AKIDEXAMPLE", "very-secret-key")

def handler(r):
    if r.method == "GET":
        return Response(200, headers, chunks=iter((body,)))
    return Response(200, {"ETag": f'"{etag}"', "Content-Length": "0"})

client = S3Client(MockTransport(handler), region="us-east-1",
                  endpoint="http://127.0.0.1:9", credentials=Static())
src = tempfile.NamedTemporaryFile(delete=False)
src.write(body); src.close()
keys = [f"small/d{i % 20:02d}/f{i:05d}.bin" for i in range(n)]
t0 = time.process_time()
for k in keys:
    client.get_object("bench", k, io.BytesIO(), size_hint=len(body))
t1 = time.process_time()
for k in keys:
    client.put_object_from_file("bench", k, src.name)
t2 = time.process_time()
os.unlink(src.name)
import pos3lite
print(json.dumps({"get_us": (t1 - t0) * 1e6 / n, "put_us": (t2 - t1) * 1e6 / n,
                  "module": pos3lite.__file__}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commits", default="main,HEAD")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="pos3lite-reqcpu-"))
    trees: dict[str, Path] = {}
    try:
        for rev in args.commits.split(","):
            out = scratch / f"tree-{len(trees)}"
            out.mkdir()
            archive = subprocess.run(
                ["git", "-C", str(REPO), "archive", rev, "pos3lite"],
                check=True,
                capture_output=True,
            ).stdout
            subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
            trees[rev] = out
        results: dict[str, list[dict[str, float]]] = {rev: [] for rev in trees}
        load0 = os.getloadavg()[0]
        for r in range(args.repeats):
            order = list(trees.items())
            order = order[r % len(order) :] + order[: r % len(order)]
            for rev, path in order:
                env = {**os.environ, "PYTHONPATH": str(path)}
                # -P and a neutral cwd: the tree on PYTHONPATH, not the checkout, is imported
                out = subprocess.run(
                    [sys.executable, "-P", "-c", CODE, str(args.n)],
                    env=env,
                    cwd=str(scratch),
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                results[rev].append(json.loads(out))
                assert results[rev][-1]["module"].startswith(str(path)), results[rev][-1]
        load1 = os.getloadavg()[0]
        print(
            f"n={args.n} requests of 16 KiB per round, {args.repeats} interleaved rounds, "
            f"load average {load0:.2f} at start, {load1:.2f} at end"
        )
        print()
        print("| revision | GET µs/request (min / median) | PUT µs/request (min / median) |")
        print("|---|---|---|")
        for rev, runs in results.items():
            g = [x["get_us"] for x in runs]
            p = [x["put_us"] for x in runs]
            print(
                f"| {rev} | {min(g):.0f} / {statistics.median(g):.0f} | "
                f"{min(p):.0f} / {statistics.median(p):.0f} |"
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
