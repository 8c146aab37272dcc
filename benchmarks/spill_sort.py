"""Peak RSS and CPU per entry of sorting an out-of-order listing for the planner: the
in-memory sort the fallback used before (``sorted(..., key=sort_key)``) against
``pos3lite.mirror.spill.sorted_entries`` (sorted runs spilled beyond ``SPILL_BOUND``),
each in its own child process, in one run.

Usage::

    python benchmarks/spill_sort.py [--entries 1000000]

The entries are generated in a scrambled order (no server): the figures are the sort's
own, not the listing's. Prints one line per variant and the ratios (spill / memory).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pos3lite.engine.diff import sort_key
from pos3lite.engine.model import Entry
from pos3lite.mirror.spill import sorted_entries


def listing(n: int) -> Iterator[Entry]:
    for i in range(n):
        j = (i * 7919) % n  # a permutation when n is not a multiple of 7919
        yield Entry(f"data/dir{j % 1000:04d}/file-{j:08d}.bin", j, 1.7e9, "d41d8cd98f00b204e98")


def child(mode: str, n: int) -> None:
    t = time.process_time()
    count, prev = 0, b""
    with tempfile.TemporaryDirectory() as d:
        if mode == "spill":
            it: Iterator[Entry] = sorted_entries(listing(n), Path(d))
        else:
            it = iter(sorted(listing(n), key=lambda e: sort_key(e.key)))
        for e in it:
            k = sort_key(e.key)
            assert k >= prev
            prev, count = k, count + 1
    assert count == n
    cpu = (time.process_time() - t) / n * 1e6
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{cpu:.2f} {rss:.0f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--child", choices=["memory", "spill"])
    args = ap.parse_args()
    if args.child:
        child(args.child, args.entries)
        return
    got = {}
    for mode in ("memory", "spill"):
        out = subprocess.run(
            [sys.executable, __file__, "--child", mode, "--entries", str(args.entries)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        got[mode] = (float(out[0]), float(out[1]))
        print(f"{mode:6s} {args.entries} entries: {out[0]} us CPU/entry, peak RSS {out[1]} MiB")
    (mc, mr), (sc, sr) = got["memory"], got["spill"]
    print(f"spill/memory: CPU x{sc / mc:.2f}, peak RSS x{sr / mr:.2f}")


if __name__ == "__main__":
    main()
