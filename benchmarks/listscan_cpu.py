"""CPU per listed key of the ListObjectsV2 page parsers, in-process: ElementTree
(``pos3lite.s3.xml.parse_list_objects_v2``), and from ``pos3lite.s3.listscan`` the scanner
as the client calls it (its fast path for pages of one ``<Contents>`` layout), the strict
scanner with the fast path off, and the expat pass, on 1,000-key pages shaped as AWS S3 and
as SeaweedFS/MinIO (Go) write them. (A revision without the fast path has no ``fast``
argument: its two scanner rows are the same code.)

Usage::

    python benchmarks/listscan_cpu.py [--repeats 7]

Prints the best (minimum) of ``--repeats`` timings of 20 parses, in µs per key: on a shared
machine the minimum is the steadiest estimate.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pos3lite.s3 import listscan
from pos3lite.s3 import xml as s3xml


def page(go: bool) -> bytes:
    quote = "&#34;" if go else "&quot;"
    items = "".join(
        f"<Contents><Key>data/dir{i % 50}/file-{i:07d}.bin</Key>"
        + (
            f"<ETag>{quote}d41d8cd98f00b204e9800998ecf8427e{quote}</ETag><Size>{i}</Size>"
            "<StorageClass>STANDARD</StorageClass>"
            "<LastModified>2026-11-21T23:03:25Z</LastModified>"
            if go
            else "<LastModified>2026-11-21T23:03:25.000Z</LastModified>"
            f"<ETag>{quote}d41d8cd98f00b204e9800998ecf8427e{quote}</ETag><Size>{i}</Size>"
            "<Owner><ID>x</ID><DisplayName>y</DisplayName></Owner>"
            "<StorageClass>STANDARD</StorageClass>"
        )
        + "</Contents>"
        for i in range(1000)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult '
        'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix></Prefix>'
        "<MaxKeys>1000</MaxKeys><EncodingType>url</EncodingType><IsTruncated>true"
        f"</IsTruncated>{items}<NextContinuationToken>abc</NextContinuationToken>"
        "</ListBucketResult>"
    ).encode()


def _strict(body: bytes) -> object:
    try:
        return listscan._scan_strict(body, True, fast=False)  # type: ignore[call-arg]
    except TypeError:  # a revision before the fast path
        return listscan._scan_strict(body, True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    parsers = {
        "ElementTree (xml.py)": lambda b: s3xml.parse_list_objects_v2(b),
        "scanner (fast path)": lambda b: listscan.scan_list_objects_v2(b),
        "strict scanner": lambda b: _strict(b),
        "expat pass": lambda b: listscan._scan_expat(b, True),
    }
    print("| page shape | parser | µs per key (best) |")
    print("|---|---|---|")
    for shape, go in (("AWS S3", False), ("SeaweedFS / MinIO (Go)", True)):
        body = page(go)
        for name, parse in parsers.items():
            parse(body)
            best = float("inf")
            for _ in range(args.repeats):
                t = time.process_time()
                for _ in range(20):
                    parse(body)
                best = min(best, (time.process_time() - t) / 20 / 1000 * 1e6)
            print(f"| {shape} | {name} | {best:.1f} |")


if __name__ == "__main__":
    main()
