"""CPU and requests of one background tick over N unchanged local files (issue 12 item 4).

Usage (from the repository, in the project's venv)::

    python benchmarks/tick_cpu.py [--files 100000] [--ticks 3] [--scratch /tmp]

What it does, in one process:

1. creates N small files (1,000 per folder, 0-6 bytes) in a scratch folder under
   ``--scratch`` (deleted at the end, also on errors);
2. opens a mirror whose shared transport is a ``MockTransport`` answering ListObjectsV2 with
   exactly those files (sizes equal, ``LastModified`` a day ahead, so the first pass adopts
   them all and records them in the sync state without 100,000 PUTs), and counts every
   request sent;
3. runs the registration's first tick (a full listing, the state is filled; on Linux it
   also starts the registration's inotify watcher before its walk), then ``--ticks``
   background ticks with nothing changed locally *with the watcher* (no event: nothing is
   stat-ed), two watched ticks each after one file was rewritten (one stat, one PUT; the
   first of them also reads every recorded key once, the screen of folded names that lets
   a tick plan only its changed keys: ``pos3lite/mirror/ticks.py``), then the watcher is
   turned off and ``--ticks`` ticks run as *stat walks* (the incremental path without
   change notification: the local walk merged with the sync state), one stat-walk tick
   after one file was rewritten, then one tick forced to list in full (what every tick
   cost before issue 12: LIST + plan against the state);
4. measures the same tree's ``os.scandir`` + ``lstat`` in plain Python: the system calls any
   stat-based tick must make, the floor on this machine at this moment.

Reports CPU (``time.process_time``: user + sys of the whole process) and wall time per
tick, the requests each sent, and the ratios of the watched and the stat-walk ticks to the
full tick and to the floor, from the same run. The target (issue 12): no request and
<= 0.5 s of CPU at 100,000 files. The machine is shared: quote the ratios and the median
of ``--ticks``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pos3lite
from pos3lite.mirror import context as ctx
from pos3lite.mirror import policy
from pos3lite.s3.factory import ClientCache
from pos3lite.transport.base import MockTransport, Request, Response

BUCKET, PREFIX = "bench", "data/"
PER_FOLDER = 1000
AHEAD = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + 86400))


def rel(i: int) -> str:
    return f"d{i // PER_FOLDER:05d}/f{i:08d}.bin"


def size(i: int) -> int:
    return i % 7


def make_tree(root: Path, n: int) -> None:
    for i in range(n):
        if i % PER_FOLDER == 0:
            (root / f"d{i // PER_FOLDER:05d}").mkdir(parents=True)
        with open(root / rel(i), "wb") as f:
            f.write(b"x" * size(i))


def page(n: int, start: int, max_keys: int) -> bytes:
    end = min(n, start + max_keys)
    items = "".join(
        f"<Contents><Key>{PREFIX}{rel(i)}</Key><LastModified>{AHEAD}</LastModified>"
        f"<ETag>&quot;{i:032x}&quot;</ETag><Size>{size(i)}</Size></Contents>"
        for i in range(start, end)
    )
    more = end < n
    token = f"<NextContinuationToken>{end}</NextContinuationToken>" if more else ""
    return (
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Name>{BUCKET}</Name><Prefix>{PREFIX}</Prefix><KeyCount>{end - start}</KeyCount>"
        f"<MaxKeys>{max_keys}</MaxKeys><IsTruncated>{'true' if more else 'false'}</IsTruncated>"
        f"{token}{items}</ListBucketResult>"
    ).encode()


def handler(n: int) -> MockTransport:
    def answer(req: Request) -> Response:
        parts = urlsplit(req.url)
        q = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if req.method == "GET" and q.get("list-type") == "2":
            start = int(q.get("continuation-token") or 0)
            body = page(n, start, int(q.get("max-keys", 1000)))
            return Response(200, {"Content-Length": str(len(body))}, chunks=iter([body]))
        if req.method == "PUT" and "uploadId" not in q:
            data = req.body if isinstance(req.body, bytes) else b""
            etag = f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'
            return Response(200, {"Content-Length": "0", "ETag": etag})
        return Response(501, {"Content-Length": "0"})

    return MockTransport(answer)


def rewrite(scratch: Path, i: int) -> None:
    """Rewrite file ``i`` with other bytes of the same size (one change for the next tick)."""
    (scratch / "tree" / rel(i)).write_bytes(b"y" * size(i))


def floor(root: Path) -> float:
    c = time.process_time()
    for d in os.scandir(root):
        with os.scandir(d.path) as it:
            for de in it:
                de.stat(follow_symlinks=False)
    return time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--ticks", type=int, default=3)
    ap.add_argument("--scratch", default=tempfile.gettempdir())
    args = ap.parse_args()
    n = args.files
    scratch = Path(tempfile.mkdtemp(prefix="pos3lite-tick-", dir=args.scratch))
    try:
        t = time.perf_counter()
        make_tree(scratch / "tree", n)
        print(f"created {n:,} files in {time.perf_counter() - t:.1f} s under {scratch}")
        profile = pos3lite.Profile(
            local_name="bench",
            endpoint="http://127.0.0.1:9",
            region="us-east-1",
            access_key="AKIDBENCH",
            secret_key="bench-secret",
        )
        transport = handler(n)
        rows = []
        with pos3lite.mirror(
            cache_root=scratch / "cache", show_progress=False, default_profile=profile
        ):
            m = ctx._require_active()
            m._clients = ClientCache(
                max_connections=m.max_workers,
                timeout=m.timeout,
                max_attempts=m.max_attempts,
                transport=transport,
            )
            url = f"s3://{BUCKET}/{PREFIX.rstrip('/')}"
            pos3lite.upload(url, local=scratch / "tree", interval=None, delete=False)
            (reg,) = m._uploads.values()

            def tick(label: str) -> tuple[float, float, int]:
                before = len(transport.requests)
                c, w = time.process_time(), time.perf_counter()
                m._sync_upload(reg, policy.Phase.TICK)
                cpu, wall = time.process_time() - c, time.perf_counter() - w
                sent = len(transport.requests) - before
                rows.append((label, cpu, wall, sent))
                return cpu, wall, sent

            tick("first tick (full listing, adopts all, fills the state; starts the watcher)")
            watching = reg.watcher is not None
            how = "watched" if watching else "no watcher on this system: stat walk"
            watched = [tick(f"tick {i + 2}: nothing changed ({how})") for i in range(args.ticks)]
            t = args.ticks + 2
            rewrite(scratch, n // 2)
            first = tick(f"tick {t}: one file rewritten ({how}; reads the screen of every key)")
            rewrite(scratch, n // 3)
            one = tick(f"tick {t + 1}: another file rewritten ({how})")
            if reg.watcher is not None:
                reg.watcher.close()
            reg.watcher, reg.watch_off = None, True  # from here on: stat-walk ticks
            walked = [
                tick(f"tick {i + t + 2}: nothing changed (stat walk, no watcher)")
                for i in range(args.ticks)
            ]
            rewrite(scratch, n // 4)
            walk_one = tick(f"tick {t + args.ticks + 2}: one file rewritten (stat walk)")
            reg.passes = None  # what every tick did before issue 12
            full = tick("tick forced to list in full (the old tick)")
            stamps = [floor(scratch / "tree") for _ in range(args.ticks)]
        print(f"\n{n:,} unchanged files; load average {os.getloadavg()[0]:.1f}\n")
        print("| tick | CPU | wall | requests |")
        print("|---|---|---|---|")
        for label, cpu, wall, sent in rows:
            print(f"| {label} | {cpu * 1e3:.3f} ms | {wall * 1e3:.3f} ms | {sent} |")
        fl = statistics.median(stamps)
        print(f"| scandir + lstat of the tree in plain Python (floor) | {fl * 1e3:.3f} ms | | 0 |")
        print()
        for what, runs in ((f"{how} tick", watched), ("stat-walk tick", walked)):
            med = statistics.median(c for c, _, _ in runs)
            print(
                f"{what}, nothing changed: median {med * 1e3:.3f} ms CPU, "
                f"{max(s for *_, s in runs)} requests; {med / full[0]:.4f}x the full-listing "
                f"tick, {med / fl:.4f}x the floor; target <= 0.5 s: "
                f"{'met' if med <= 0.5 else 'NOT met'}"
            )
        for what, (cpu, _, sent) in (
            (f"{how} tick, one file rewritten, first after the full pass", first),
            (f"{how} tick, one file rewritten", one),
            ("stat-walk tick, one file rewritten", walk_one),
        ):
            print(
                f"{what}: {cpu * 1e3:.3f} ms CPU, {sent} request(s); "
                f"{cpu / full[0]:.4f}x the full-listing tick; target <= 0.5 s: "
                f"{'met' if cpu <= 0.5 else 'NOT met'}"
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
