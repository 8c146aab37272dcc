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
watcher's events and stats only the names they give (walking only new folders), reads the
records of those names only (:meth:`SyncState.records_of`) and merges the two through
:func:`local_changes`; a tick without an event makes no request, stats nothing and reads
nothing. Walks in full instead (and the watcher is rebuilt where
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

Planning the changed files (``Mirror._upload_changed``) costs what changed, not the tree:
the planner sees the changed files and new empty folders as the source, and as the
destination only the records read by key (:meth:`SyncState.records_of`: each changed key in
both its file and folder form, each of its ancestors, the first record under each changed
key) and the empty folders the registration knows (``reg.dirs``). For those keys the
decisions are the whole plan's (the merge decides a key from the keys at and under it, and
an upload plan without deletes decides nothing for a key only the records hold). What the
whole plan adds is the case-fold / Unicode-normalisation twin check (``keys.collisions``)
against *every* recorded key: a changed key is a twin when its folded name equals that of
another changed key, a known folder or any recorded key. The rule, kept exact:

* a :class:`FoldScreen` per registration holds a 64-bit hash of the folded name of every
  recorded key (8 bytes a key), read once (:meth:`SyncState.iter_keys`) by the first tick
  with a change after each full pass, and grown with every key a tick uploads that had no
  record (over-counting is safe: it only sends a tick to the whole plan);
* the small plan is used only when, for every name ``n`` (a key with its trailing ``/``
  dropped) of a changed key, a new empty folder or a known folder, the screen counts
  exactly as many recorded keys folding like ``n`` as the records read hold of ``n`` and
  ``n/`` themselves: then no other recorded key folds like it. Twins among the changed keys
  and known folders are all in the small plan and refused there, as the whole plan does;
* anything else is a "maybe" and the tick plans exactly as before, from every record: the
  screen has two recorded keys with one hash (twins already recorded, or ``x`` and ``x/``,
  or a hash coincidence), a count differs, a changed *file* has records under it (a folder
  turned into a file: conflicts the whole plan names), the state cannot be read, the
  screen could not be built, or so many keys changed (more than a quarter of the records,
  and over 256) that reading them by key would cost more.

Pure: no I/O here (the caller passes the two streams).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ..engine.model import Stamp
from ..keys import fold

__all__ = ["FoldScreen", "LocalChanges", "fold_name", "local_changes", "next_dirs"]

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


def fold_name(key: str) -> str:
    """The name of ``key`` (its trailing ``/`` dropped: ``x`` and ``x/`` are one name, as
    in :func:`~pos3lite.keys.collisions`)."""
    return key[:-1] if key.endswith("/") else key


class FoldScreen:
    """The folded names of every recorded key of a registration, as 64-bit hashes in 256
    ``array`` buckets (8 bytes a key): how many recorded keys fold like a name, exactly or
    more (a hash coincidence counts too), never fewer, as long as every recorded key was
    added. See the module text for how a tick uses it.

    Args:
        keys: every recorded key (UTF-8 bytes; the empty key of a one-object registration
            is left out, as the planner leaves it out).
    """

    __slots__ = ("_buckets", "size", "suspect")

    def __init__(self, keys: Iterable[bytes]) -> None:
        from array import array

        self._buckets = buckets = [array("q") for _ in range(256)]
        size = 0
        for kb in keys:  # _hash_bytes inlined: this loop runs once per recorded key
            if not kb:
                continue
            if kb.isascii():
                h = hash((kb[:-1] if kb[-1] == 0x2F else kb).lower())
            else:
                h = hash(fold(kb.decode("utf-8", "surrogateescape")))
            buckets[h & 255].append(h)
            size += 1
        #: keys added
        self.size = size
        #: two keys added share a hash (twins recorded, ``x`` with ``x/``, or chance)
        self.suspect = any(len(set(b)) != len(b) for b in buckets)

    @staticmethod
    def _hash(key: str) -> int:
        """The hash of the folded name of ``key``: of its lower-cased UTF-8 bytes when ASCII
        (where folding is lower-casing), else of :func:`~pos3lite.keys.fold`."""
        name = fold_name(key)
        return hash(name.encode().lower()) if name.isascii() else hash(fold(name))

    def _add(self, h: int) -> None:
        self._buckets[h & 255].append(h)
        self.size += 1

    def add(self, key: str) -> None:
        """Count a key recorded since the screen was read (each new record once)."""
        h = self._hash(key)
        if self._buckets[h & 255].count(h):
            self.suspect = True
        self._add(h)

    def count(self, key: str) -> int:
        """How many recorded keys may fold like ``key`` (see the class text)."""
        h = self._hash(key)
        return self._buckets[h & 255].count(h)
