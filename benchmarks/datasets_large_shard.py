"""Write one large tar shard through a ManifestWriter and read every member back, reporting
peak RSS. Memory must not grow with the shard: parts of the multipart upload are the bound.

    python benchmarks/datasets_large_shard.py s3://bucket/ds/manifest.jsonl --mib 1024
    python benchmarks/datasets_large_shard.py --mib 200 --peers     # pos3lite vs s3exchange

``--peer s3exchange`` does the same with s3exchange 0.1.1 (boto3): its writer, then every
member read through ``Manifest.iter_objects()``; ``--peers`` runs both, one after the other
on the same server, and prints the ratio.

Credentials and endpoint come from the AWS environment (``AWS_ENDPOINT_URL_S3`` etc.).
Without a URL, a SeaweedFS server is started on 127.0.0.1 and the run happens in a child
process (so boto3, used to create the bucket, is not counted in its RSS).
Prints one JSON line: shard MiB, members, seconds to write and to read, peak RSS in MiB.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import resource
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path

MEMBER = 4 * 1024 * 1024
BLOCK = 1024 * 1024
_NOISE = os.urandom(BLOCK)


class Generated(io.RawIOBase):
    """A non-seekable stream of ``size`` bytes that never exists in memory as a whole."""

    def __init__(self, seed: int, size: int) -> None:
        self._seed, self._left, self._n = seed, size, 0
        self.md5 = hashlib.md5(usedforsecurity=False)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        n = min(len(buffer), self._left, BLOCK)
        if n <= 0:
            return 0
        block = struct.pack(">QQ", self._seed, self._n) + _NOISE[16:n]
        block = block[:n]
        buffer[:n] = block
        self.md5.update(block)
        self._left -= n
        self._n += 1
        return n


def peak_rss_mib() -> float:
    """This process's peak RSS in MiB: ``VmHWM`` from /proc (Linux), which starts afresh at
    exec; ``ru_maxrss`` elsewhere (on Linux it keeps the parent's peak from before exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale / 1024


def run(url: str, mib: int) -> dict[str, float]:
    from pos3lite.datasets import Manifest

    members = max(1, mib * 1024 * 1024 // MEMBER)
    m = Manifest(url)
    digests = []
    t0 = time.monotonic()
    with m.writer() as w:
        for j in range(members):
            src = Generated(j, MEMBER)
            w.add_to_shard(f"{j:06d}.bin", src, size=MEMBER)  # type: ignore[arg-type]
            digests.append(src.md5.hexdigest())
    t1 = time.monotonic()
    got = []
    for item in m.files():
        md5 = hashlib.md5(usedforsecurity=False)
        with item.open() as f:
            while chunk := f.read(BLOCK):
                md5.update(chunk)
        got.append(md5.hexdigest())
    t2 = time.monotonic()
    if got != digests:
        raise SystemExit("read back different bytes than were written")
    peak = peak_rss_mib()
    m.delete()
    return {
        "shard_mib": members * MEMBER / 2**20,
        "members": members,
        "write_s": round(t1 - t0, 2),
        "read_s": round(t2 - t1, 2),
        "peak_rss_mib": round(peak, 1),
    }


def run_s3exchange(url: str, mib: int) -> dict[str, float]:
    import boto3
    from s3exchange import S3ExchangeStore, ShardSizePolicy

    bucket, _, key = url[len("s3://") :].partition("/")
    members = max(1, mib * 1024 * 1024 // MEMBER)
    boto = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3"))
    store = S3ExchangeStore(boto, bucket)
    digests = []
    t0 = time.monotonic()
    with store.open_manifest_writer(key, shard_size=ShardSizePolicy(max_entries=members)) as w:
        for j in range(members):
            src = Generated(j, MEMBER)
            w.add_to_shard(f"{j:06d}.bin", src, size_bytes=MEMBER)
            digests.append(src.md5.hexdigest())
    t1 = time.monotonic()
    got = []
    for body, _entry in store.get_manifest(key).iter_objects():
        md5 = hashlib.md5(usedforsecurity=False)
        while chunk := body.read(BLOCK):
            md5.update(chunk)
        got.append(md5.hexdigest())
    t2 = time.monotonic()
    if got != digests:
        raise SystemExit("s3exchange read back different bytes than were written")
    peak = peak_rss_mib()
    return {
        "shard_mib": members * MEMBER / 2**20,
        "members": members,
        "write_s": round(t1 - t0, 2),
        "read_s": round(t2 - t1, 2),
        "peak_rss_mib": round(peak, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", nargs="?", help="root manifest URL (default: a local server)")
    parser.add_argument("--mib", type=int, default=1024, help="shard size in MiB")
    parser.add_argument("--peer", choices=["pos3lite", "s3exchange"], default="pos3lite")
    parser.add_argument("--peers", action="store_true", help="run pos3lite and s3exchange")
    args = parser.parse_args()
    if args.url:
        fn = run_s3exchange if args.peer == "s3exchange" else run
        print(json.dumps({"peer": args.peer, **fn(args.url, args.mib)}), flush=True)
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.support.seaweedfs import SeaweedFS, oracle_client

    with SeaweedFS() as server:
        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        oracle_client(server).create_bucket(Bucket=bucket)
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": server.access_key,
            "AWS_SECRET_ACCESS_KEY": server.secret_key,
            "AWS_REGION": server.region,
            "AWS_ENDPOINT_URL_S3": server.endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        peers = ["pos3lite", "s3exchange"] if args.peers else [args.peer]
        peaks = {}
        for peer in peers:
            url = f"s3://{bucket}/{peer}/manifest.jsonl"
            cmd = [sys.executable, __file__, url, "--mib", str(args.mib), "--peer", peer]
            out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
            line = out.stdout.strip().splitlines()[-1]
            print(line, flush=True)
            peaks[peer] = json.loads(line)["peak_rss_mib"]
        if len(peaks) == 2:
            ratio = peaks["s3exchange"] / peaks["pos3lite"]
            print(json.dumps({"peak_rss_ratio_s3exchange_over_pos3lite": round(ratio, 2)}))


if __name__ == "__main__":
    main()
