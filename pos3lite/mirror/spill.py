"""External sort of a remote listing, for stores that list out of UTF-8 byte order.

Rules:

* Only a listing known to be out of order is sorted here (S3 itself lists in order and is
  streamed into the engine unsorted-checked, see :mod:`pos3lite.mirror.scan`).
* Up to :data:`SPILL_BOUND` entries are sorted in memory. Beyond it, each full buffer is
  sorted and written as a *run* (a file of ``marshal`` records, each a list of at most
  :data:`RECORD_ENTRIES` ``(key, size, mtime, etag)`` tuples) in a private folder
  (``mkdtemp``, mode ``0700``) under the cache root's metadata folder ``.pos3lite/``, never
  in the user's folder; the runs and the last buffer are merged with :func:`heapq.merge`.
  Memory then holds one buffer plus one record per run.
* The order is the engine's, :func:`pos3lite.engine.diff.sort_key` (UTF-8 bytes of the key;
  folders are listed as ``name/``), and stable: equal keys keep the listing's order, so the
  result is exactly ``sorted(entries, key=lambda e: sort_key(e.key))`` (duplicates reach
  the engine, which refuses them as it does for an in-memory sort).
* Every file and folder made here is removed when the stream ends: exhausted, closed, or
  left by an exception (a listing error while the runs are written, a planner error while
  they are read). The cache root and ``.pos3lite/`` are removed again too when this sort
  created them and they are empty (a plan creates nothing).
* A sort folder holds a ``lock`` file its sort keeps ``flock``-ed; a process killed
  mid-sort leaves its folder behind, and the next sort that spills removes every
  ``sort-*`` folder whose lock it can take (its owner is gone), as temp files are.
"""

from __future__ import annotations

import contextlib
import fcntl
import heapq
import marshal
import os
import shutil
import tempfile
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from ..engine.diff import sort_key
from ..engine.model import Entry
from ..localfs import ensure_cache_root
from .state import META_DIR

__all__ = ["RECORD_ENTRIES", "SPILL_BOUND", "sorted_entries"]

#: Entries sorted in memory before the sort spills sorted runs to disk.
SPILL_BOUND = 100_000
#: Entries per marshal record in a run (the merge holds one record per run).
RECORD_ENTRIES = 1_000

_Row = tuple[str, int, float, "str | None"]


def _key(e: Entry) -> bytes:
    return sort_key(e.key)


def sorted_entries(
    entries: Iterable[Entry], cache_root: Path, *, bound: int | None = None
) -> Generator[Entry, None, None]:
    """``entries`` sorted by the engine's sort key, spilled to disk beyond a bound.

    Args:
        entries: remote entries in any order (``stamp`` is not kept: remote entries have
            none).
        cache_root: the mirror's cache root; runs go to a private folder under
            ``<cache_root>/.pos3lite/``.
        bound: entries held in memory before a run is written (default
            :data:`SPILL_BOUND`; at least 1).

    Returns:
        A one-pass iterator (a generator: close it to remove the runs early) yielding the
        entries in ``sort_key`` order, ties in input order. Nothing is read from
        ``entries`` before the first ``next()``, which reads all of it.

    Raises:
        UnicodeEncodeError: a key with a lone surrogate (as the in-memory sort does).
        OSError: the metadata folder or a run cannot be written.
    """
    limit = SPILL_BOUND if bound is None else max(1, bound)
    buf: list[Entry] = []
    it = iter(entries)
    for e in it:
        buf.append(e)
        if len(buf) >= limit:
            break
    else:
        buf.sort(key=_key)
        yield from buf
        return
    meta = cache_root / META_DIR
    made = [p for p in (cache_root, meta) if not p.exists()]
    folder: Path | None = None
    files: list[BinaryIO] = []
    try:
        ensure_cache_root(cache_root)
        meta.mkdir(mode=0o700, parents=True, exist_ok=True)
        _remove_abandoned(meta)
        folder = Path(tempfile.mkdtemp(prefix="sort-", dir=meta))
        lock = (folder / "lock").open("wb")
        files.append(lock)
        fcntl.flock(lock, fcntl.LOCK_EX)
        runs: list[Path] = []
        while True:
            buf.sort(key=_key)
            runs.append(_write_run(buf, folder, len(runs)))
            buf = []
            for e in it:
                buf.append(e)
                if len(buf) >= limit:
                    break
            if len(buf) < limit:
                break  # the listing ended: the last, partial buffer stays in memory
        buf.sort(key=_key)
        streams: list[Iterator[Entry]] = []
        for path in runs:
            run = path.open("rb")
            files.append(run)
            streams.append(_read_run(run))
        streams.append(iter(buf))  # last: ties keep the input order
        yield from heapq.merge(*streams, key=_key)
    finally:
        for opened in files:
            opened.close()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        for p in reversed(made):
            try:
                p.rmdir()
            except OSError:
                break


def _remove_abandoned(meta: Path) -> None:
    """Remove the ``sort-*`` folders under ``meta`` whose sort is gone (its lock is free)."""
    for old in meta.glob("sort-*"):
        try:
            fd = os.open(old / "lock", os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue  # no lock yet (being made) or not ours to judge
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # a live sort
        try:
            shutil.rmtree(old, ignore_errors=True)
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)


def _write_run(buf: list[Entry], folder: Path, n: int) -> Path:
    path = folder / f"run-{n:06d}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        for i in range(0, len(buf), RECORD_ENTRIES):
            chunk = buf[i : i + RECORD_ENTRIES]
            rows: list[_Row] = [(e.key, e.size, e.mtime, e.etag) for e in chunk]
            marshal.dump(rows, f)
    return path


def _read_run(f: BinaryIO) -> Iterator[Entry]:
    while True:
        try:
            rows: list[_Row] = marshal.load(f)
        except EOFError:
            return
        for key, size, mtime, etag in rows:
            yield Entry(key, size, mtime, etag)
