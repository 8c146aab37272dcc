"""Helpers of the fault suite: the seeded tree, tree checks, and the fault ledger."""

from __future__ import annotations

import os
import random
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KiB = 1024
MiB = 1024 * KiB
TEMP_SUFFIX = ".pos3lite-tmp"

_FOLDERS = [
    "",
    "alpha/",
    "alpha/beta/",
    "alpha/beta/gamma/",
    "dir with space/",
    "\u65e5\u672c/",
    "data/shard 1/",
    "data/shard-2/",
]
_ODD = [
    "with space.bin",
    "caf\u00e9.txt",
    "\u30d5\u30a1\u30a4\u30eb.dat",
    "emoji \U0001f600.bin",
    "plus+sign.txt",
    "percent%20literal.txt",
    "eq=amp&bang!.txt",
    "quote'paren(1).txt",
]


def build_tree(seed: int) -> dict[str, bytes]:
    """300 files, seeded: 280 of 0-64 KiB (a few empty), 15 of 64 KiB-4 MiB, 5 of 9-20 MiB
    (the 8 MiB multipart / ranged-GET threshold is crossed); about 100 MiB in all."""
    rng = random.Random(seed)
    sizes = [0, 0, 0, 1, 64 * KiB - 1]
    sizes += [rng.randint(1, 64 * KiB) for _ in range(280 - len(sizes))]
    sizes += [64 * KiB] + [rng.randint(64 * KiB, 4 * MiB) for _ in range(14)]
    sizes += [9 * MiB, 12 * MiB + 7, 16 * MiB + 123, 17 * MiB + 1, 20 * MiB]
    assert len(sizes) == 300
    out: dict[str, bytes] = {}
    for i, size in enumerate(sizes):
        folder = _FOLDERS[rng.randrange(len(_FOLDERS))]
        name = _ODD[i] if i < len(_ODD) else f"file-{i:03d}.bin"
        if i >= 295:
            name = f"large {i - 294} \u00fc.bin"
        key = folder + name
        while key in out:
            key = folder + f"x{i}-" + name
        out[key] = rng.randbytes(size)
    return out


def write_tree(root: Path, tree: dict[str, bytes]) -> None:
    for key, data in tree.items():
        p = root.joinpath(*key.split("/"))
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def final_files(root: Path) -> dict[str, Path]:
    """Every regular file under ``root`` that is not a pos3lite temp file, by key."""
    out: dict[str, Path] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name.endswith(TEMP_SUFFIX):
                continue
            p = Path(dirpath, name)
            out[p.relative_to(root).as_posix()] = p
    return out


def temp_files(root: Path) -> list[Path]:
    return [
        Path(d, n) for d, _dirs, files in os.walk(root) for n in files if n.endswith(TEMP_SUFFIX)
    ]


def assert_no_partial(root: Path, expected: dict[str, bytes], *, when: str) -> int:
    """Every non-temp file at a final path is byte-identical to its expected content;
    returns how many there are."""
    found = final_files(root)
    extra = sorted(set(found) - set(expected))
    assert not extra, f"{when}: unexpected files at final paths: {extra[:5]}"
    bad = [k for k, p in found.items() if p.read_bytes() != expected[k]]
    assert not bad, f"{when}: partial or wrong files at final paths: {bad[:5]}"
    return len(found)


def assert_tree_equal(root: Path, expected: dict[str, bytes], *, when: str) -> None:
    n = assert_no_partial(root, expected, when=when)
    missing = sorted(set(expected) - set(final_files(root)))
    assert not missing, f"{when}: missing files: {missing[:5]} ({len(missing)} in all)"
    assert n == len(expected)


def bucket_tree(oracle: Any, bucket: str, prefix: str) -> dict[str, bytes]:
    """Every object under ``prefix`` read back by the oracle, keyed relative to ``prefix``."""
    out: dict[str, bytes] = {}
    for page in oracle.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            body: bytes = oracle.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
            out[o["Key"][len(prefix) :]] = body
    return out


def open_multipart_uploads(oracle: Any, bucket: str) -> list[tuple[str, str]]:
    got = oracle.list_multipart_uploads(Bucket=bucket)
    return [(u["Key"], u["UploadId"]) for u in got.get("Uploads", [])]


def profile_for(endpoint: str, server: Any) -> Any:
    """A pos3lite Profile with the server's static keys, at ``endpoint``."""
    from pos3lite import Profile

    return Profile(
        local_name="faults",
        endpoint=endpoint,
        region=server.region,
        access_key=server.access_key,
        secret_key=server.secret_key,
    )


@dataclass
class LedgerEntry:
    test: str
    stats: dict[str, Any]
    converged: bool = False
    runs: int = 0
    notes: dict[str, Any] = field(default_factory=dict)
    run_failures: list[str] = field(default_factory=list)


@dataclass
class FaultLedger:
    """Per-test fault counts; a test that converged survived every fault it was dealt."""

    entries: list[LedgerEntry] = field(default_factory=list)
    json_path: Path | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, entry: LedgerEntry) -> None:
        with self.lock:
            self.entries.append(entry)

    def totals(self) -> dict[str, dict[str, int]]:
        from .proxy import MODES

        out = {m: {"injected": 0, "survived": 0} for m in MODES}
        for e in self.entries:
            for m, n in e.stats.get("injected", {}).items():
                out[m]["injected"] += n
                if e.converged:
                    out[m]["survived"] += n
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "totals": self.totals(),
            "tests": [
                {
                    "test": e.test,
                    "converged": e.converged,
                    "runs": e.runs,
                    "notes": e.notes,
                    "run_failures": e.run_failures,
                    **e.stats,
                }
                for e in self.entries
            ],
        }


LEDGER = FaultLedger()
