"""Incremental upload passes: which local files changed since the sync state's records.

An incremental pass (see ``policy.lists_in_full`` for when one runs) sends no LIST: it
walks the local folder (stat only, :func:`~pos3lite.localfs.iter_stamps`) and merges the
walk with the sync state's records of the registration (:meth:`SyncState.iter_stamps`), both
rows ``(key bytes, size, st_mtime_ns, st_ino, st_ctime_ns)`` in key byte order, in one pass
with bounded memory. A file is *changed* when the state has no record for its key or the
record's stamp differs from the file's: exactly the upload rule of the sync state with a
remote listing (``engine/threeway.py``, ``Direction.UP``: "both, local unchanged: skip; local
changed or src only: copy"), so skipping the listing changes no upload decision about a
local file.

What the listing would add, and an incremental pass therefore leaves to the next full
listing (at most ``policy.FULL_LISTING_EVERY`` ticks later, and the final sync):

* an object deleted or overwritten on S3 by another client while the local file stayed
  unchanged is not uploaded again (a full listing re-uploads a deleted one);
* a new local file equal to an object already on S3 is uploaded rather than adopted;
* deletes never run in a background tick or a flush anyway.

Change notification (Linux inotify, :mod:`pos3lite.localfs.watch`): a registration's first
background tick starts a watcher over every folder of its local tree *before* the walk that
establishes the baseline. From then on an incremental tick does not walk: it drains the
watcher's events and stats only the names they give (walking only new folders), and merges
those rows with the same records through :func:`local_changes`; a tick without an event
makes no request and stats nothing. Walks in full instead (and the watcher is rebuilt where
it is in doubt):

* the ticks that list the remote in full (the first pass, every ``FULL_LISTING_EVERY``-th
  tick, after a failed pass, the final sync at exit) and :func:`~pos3lite.flush`, which
  promises every local change;
* any doubt of the watcher: ``IN_Q_OVERFLOW``, a watch dropped for a folder still needed,
  the root moved or deleted, a fork (the child never reads the parent's descriptor);
* where inotify cannot be had (not Linux, no ctypes, ``max_user_watches`` or
  ``max_user_instances`` reached: logged once at INFO), with ``follow_symlinks=True`` (a
  link's target may lie outside every watched folder), or with a stateless comparison.

The periodic full walk is what catches what inotify never reports: writes through ``mmap``,
changes made by another machine on a network filesystem, and writes through a hard link
whose path lies in a folder that is not watched.

Pure: no I/O here (the caller passes the two streams).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ..engine.model import Stamp

__all__ = ["LocalChanges", "local_changes", "next_dirs"]

# (key as UTF-8 bytes, size, st_mtime_ns, st_ino, st_ctime_ns); None after the key: a folder.
_Row = tuple[bytes, int | None, int | None, int | None, int | None]


@dataclass(slots=True)
class LocalChanges:
    """Result of :func:`local_changes`.

    Attributes:
        changed: ``(key, stamp)`` of every file without a record or whose stamp differs, in
            walk order.
        dirs: keys (ending ``/``) of the empty local folders, in walk order.
        known: the state held at least one record (else: nothing known, list in full).
        files: how many local files were compared.
    """

    changed: list[tuple[str, Stamp]] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)
    known: bool = False
    files: int = 0


def local_changes(
    local: Iterable[_Row], records: Iterable[tuple[bytes, int, int, int, int]]
) -> LocalChanges:
    """Merge a walk's rows with the state's rows, both sorted by key bytes (both sides are
    sorted by construction: the walk sorts each folder, the state reads in its primary key's
    order), into the changed files and the empty folders."""
    out = LocalChanges()
    changed, dirs = out.changed, out.dirs
    rec = iter(records)
    row = next(rec, None)
    out.known = row is not None
    files = 0
    for item in local:
        if item[1] is None:
            dirs.append(item[0].decode())
            continue
        files += 1
        kb = item[0]
        while row is not None and row[0] < kb:
            row = next(rec, None)
        if row == item:
            continue
        size, mtime_ns, ino, ctime_ns = item[1:]
        assert size is not None and mtime_ns is not None and ino is not None
        assert ctime_ns is not None
        changed.append((kb.decode(), (size, mtime_ns, ino, ctime_ns)))
    out.files = files
    return out


def next_dirs(
    known: Iterable[str], redone: Iterable[str], below: Iterable[str], empty_now: Iterable[str]
) -> frozenset[str]:
    """The empty local folders after a pass that looked again only at some folders (a
    watched tick): ``known`` (those of the last pass) minus the folders looked at again
    (``redone``: whose emptiness was checked) and every folder under ``below`` (folder keys
    walked again or gone), plus those found empty now (``empty_now``)."""
    redo = set(redone)
    prefixes = tuple(below)
    kept = {d for d in known if d not in redo and not d.startswith(prefixes)}
    return frozenset(kept.union(empty_now))
