"""Incremental upload passes: which local files changed since the sync state's records.

An incremental pass (see ``policy.lists_in_full`` for when one runs) sends no LIST: it
walks the local folder (stat only, :func:`~pos3lite.localfs.iter_stamps`) and merges the
walk with the sync state's records of the registration (:meth:`SyncState.iter_stamps`), both
in UTF-8 key byte order, in one pass with bounded memory. A file is *changed* when the state
has no record for its key or the record's stamp ``(size, st_mtime_ns, st_ino, st_ctime_ns)``
differs from the file's: exactly the upload rule of the sync state with a remote listing
(``engine/threeway.py``, ``Direction.UP``: "both, local unchanged: skip; local changed or
src only: copy"), so skipping the listing changes no upload decision about a local file.

What the listing would add, and an incremental pass therefore leaves to the next full
listing (at most ``policy.FULL_LISTING_EVERY`` ticks later, and the final sync):

* an object deleted or overwritten on S3 by another client while the local file stayed
  unchanged is not uploaded again (a full listing re-uploads a deleted one);
* a new local file equal to an object already on S3 is uploaded rather than adopted;
* deletes never run in a background tick or a flush anyway.

Pure: no I/O here (the caller passes the two streams).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ..engine.model import Stamp

__all__ = ["LocalChanges", "local_changes"]


@dataclass(slots=True)
class LocalChanges:
    """Result of :func:`local_changes`.

    Attributes:
        changed: ``(key, stamp)`` of every file without a record or whose stamp differs, in
            walk order.
        dirs: keys (ending ``/``) of the empty local folders, in walk order.
        records: how many records were read (0: the state knows nothing, list in full;
            records past the last local key are not read).
        files: how many local files were compared.
    """

    changed: list[tuple[str, Stamp]] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)
    records: int = 0
    files: int = 0


def local_changes(
    local: Iterable[tuple[str, Stamp | None]], records: Iterable[tuple[str, Stamp]]
) -> LocalChanges:
    """Merge a walk (``(key, stamp)``, ``None`` for an empty folder) with the state's
    records (``(key, stamp)``), both sorted by UTF-8 key bytes (for valid keys that is also
    Python's ``str`` order), into the changed files and the empty folders.

    Raises:
        ValueError: a side is out of order (a bug: both sides are sorted by construction).
    """
    out = LocalChanges()
    changed, dirs = out.changed, out.dirs
    rec = iter(records)
    row = next(rec, None)
    nrec = 0 if row is None else 1
    files = 0
    last = ""
    for key, stamp in local:
        if key < last:
            raise ValueError(f"local walk out of order: {last!r} before {key!r}")
        last = key
        if stamp is None:
            dirs.append(key)
            continue
        files += 1
        while row is not None and row[0] < key:
            prev = row[0]
            row = next(rec, None)
            if row is not None:
                nrec += 1
                if row[0] <= prev:
                    raise ValueError(f"sync state out of order: {prev!r} before {row[0]!r}")
        if row is not None and row[0] == key and row[1] == stamp:
            continue
        changed.append((key, stamp))
    out.records, out.files = nrec, files
    return out
