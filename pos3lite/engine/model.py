"""Values of the sync engine: what a listing holds (:class:`Entry`) and what to do (:class:`Plan`).

Rules:

* The engine speaks of ``src`` and ``dst``, never local and remote: the same values describe a
  download (src = S3, dst = folder) and an upload (src = folder, dst = S3).
* A key is relative to the synced root, ``/``-separated, with no leading ``/``. A directory
  entry's key ends with ``/`` (``"a/b/"``), exactly like an S3 directory-marker key relative to
  the prefix. The root itself (``""``) is never an entry.
* Everything here is immutable; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from pos3lite.engine.compact import KeyList

__all__ = ["Action", "Entry", "Plan", "Reason", "Stamp", "Synced"]

#: A local file's ``(size, st_mtime_ns, st_ino, st_ctime_ns)``: any rewrite, touch, rename
#: over it or metadata change gives a different stamp.
Stamp = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True, init=False)
class Entry:
    """One file or directory of a listing.

    Attributes:
        key: relative key, ``/``-separated, no leading ``/``; ends with ``/`` for a directory.
        size: size in bytes (0 for directories).
        mtime: modification time in seconds since the Unix epoch (UTC). Remote: the object's
            ``LastModified`` (1 s resolution); local: ``st_mtime``.
        etag: remote: the ETag without quotes (``"d41d8cd9..."``, or ``"abc...-3"`` for a
            multipart upload); local: the hex MD5 of the content if it was computed, else
            ``None``.
        stamp: local files only: the :data:`Stamp` from the walk (``None`` if unknown);
            not part of equality.
    """

    key: str
    size: int
    mtime: float
    etag: str | None = None
    stamp: Stamp | None = field(default=None, compare=False)

    def __init__(
        self,
        key: str,
        size: int,
        mtime: float,
        etag: str | None = None,
        stamp: Stamp | None = None,
    ) -> None:
        # The dataclass __init__ of a frozen class sets each field through
        # object.__setattr__; the slots' own setters cost less than half as much, and a
        # plan of millions of keys builds two Entries per key.
        _ENTRY_SET[0](self, key)
        _ENTRY_SET[1](self, size)
        _ENTRY_SET[2](self, mtime)
        _ENTRY_SET[3](self, etag)
        _ENTRY_SET[4](self, stamp)

    @property
    def is_dir(self) -> bool:
        """True for a directory entry (its key ends with ``/``)."""
        return self.key.endswith("/")


class Reason(Enum):
    """Why an :class:`Action` is planned."""

    MISSING = "missing"
    """The key is only in src: copy it."""
    SIZE = "size"
    """Both sides hold the file and the sizes differ: copy it."""
    MTIME = "mtime"
    """Same size, but the modification times say src changed: copy it."""
    CHECKSUM = "checksum"
    """Same size, but the MD5 of src and the ETag of dst (or the reverse) differ: copy it."""
    EXTRA = "extra"
    """The key is only in dst: delete it (planned only with ``delete=True``)."""
    CHANGED = "changed"
    """The sync state says a side changed since the last sync: copy it."""
    CONFLICT = "conflict"
    """Both sides changed (or no state and they differ) and src wins: copy it, and keep the
    replaced dst version aside first (two-way sync only)."""
    ADOPTED = "adopted"
    """Both sides hold the same file and no state says so yet: record it, copy nothing."""
    KEPT = "kept"
    """Both sides changed and dst is newer: keep dst, keep the src version aside (two-way)."""


@dataclass(frozen=True, slots=True, init=False)
class Synced:
    """What was last in sync for one key: the sync state's record (the base of a 3-way sync).

    Attributes:
        local: the local file's :data:`Stamp` right after the transfer or verification.
        etag: the object's ETag without quotes (``None`` if unknown).
        size: the object's size in bytes.
        mtime: the object's LastModified, seconds since the epoch (0.0 if unknown).
    """

    local: Stamp
    etag: str | None
    size: int
    mtime: float

    def __init__(self, local: Stamp, etag: str | None, size: int, mtime: float) -> None:
        _SYNCED_SET[0](self, local)  # the slots' setters, as in Entry
        _SYNCED_SET[1](self, etag)
        _SYNCED_SET[2](self, size)
        _SYNCED_SET[3](self, mtime)


@dataclass(frozen=True, slots=True, init=False)
class Action:
    """One copy (src -> dst) or one delete (from dst) for one key.

    ``src`` is ``None`` for an :attr:`Reason.EXTRA` delete; ``dst`` is ``None`` for a
    :attr:`Reason.MISSING` copy; both are set for the other reasons.
    """

    key: str
    reason: Reason
    src: Entry | None
    dst: Entry | None

    def __init__(self, key: str, reason: Reason, src: Entry | None, dst: Entry | None) -> None:
        _ACTION_SET[0](self, key)  # the slots' setters, as in Entry
        _ACTION_SET[1](self, reason)
        _ACTION_SET[2](self, src)
        _ACTION_SET[3](self, dst)


def _slot_setters(cls: type, *names: str) -> tuple[Callable[[object, object], None], ...]:
    return tuple(cls.__dict__[name].__set__ for name in names)


_ENTRY_SET = _slot_setters(Entry, "key", "size", "mtime", "etag", "stamp")
_SYNCED_SET = _slot_setters(Synced, "local", "etag", "size", "mtime")
_ACTION_SET = _slot_setters(Action, "key", "reason", "src", "dst")


@dataclass(frozen=True, slots=True)
class Plan:
    """The result of comparing two listings: what to copy, what to delete, what to report.

    Attributes:
        copies: copies from src to dst, in :func:`~pos3lite.engine.diff.sort_key` order, so a
            directory entry comes before the keys under it.
        deletes: deletes from dst, in *reverse* ``sort_key`` order, so every key is deleted
            before any directory entry that is its ancestor (safe to apply in order). Empty
            when planned with ``delete=False``.
        conflicts: keys that cannot be materialised, in ``sort_key`` order: a file key ``K``
            while the other side (or src itself) holds keys under ``K + "/"``. S3 allows the
            objects ``a`` and ``a/b`` together; a file system cannot. A conflicting key gets
            neither a copy nor a delete, and the dst keys under ``K + "/"`` are not deleted
            either; the caller reports them and the user resolves them.
        fallbacks: keys whose file pair the checksum strategy could not compare by hash
            (multipart ETag, missing or non-MD5 ETag) and compared with its fallback strategy
            instead, in ``sort_key`` order. The caller logs them.
        unchanged: number of keys that need no action: equal file pairs, directory keys on
            both sides, and directory keys on one side only that the plan leaves in place or
            that the keys under them create (see ``diff.py``).
        adopted: (planned with a base only) equal file pairs the base does not record yet
            (:attr:`Reason.ADOPTED`): the caller records them, copies nothing. Also counted
            in ``unchanged``.
        kept: (two-way only) keys where both sides changed and dst is newer
            (:attr:`Reason.KEPT`): dst stays, the caller keeps the src version aside and
            names it in a warning. Also counted in ``unchanged``.
        copy_keys: (planned with ``keys_only=True``, see ``diff.plan``) the *file* keys
            of the copies, in ``sort_key`` order, as a compact :class:`KeyList`; ``copies``,
            ``adopted`` and ``kept`` are then empty.
        delete_keys: (``keys_only=True``) the file keys of the deletes, in ``sort_key``
            order (apply them last to first); ``deletes`` is then empty.
    """

    copies: tuple[Action, ...] = ()
    deletes: tuple[Action, ...] = ()
    conflicts: tuple[str, ...] = ()
    fallbacks: tuple[str, ...] = ()
    unchanged: int = 0
    adopted: tuple[Action, ...] = ()
    kept: tuple[Action, ...] = ()
    copy_keys: KeyList | None = None
    delete_keys: KeyList | None = None

    @property
    def empty(self) -> bool:
        """True when there is nothing to copy or delete (conflicts may still exist)."""
        return not (self.copies or self.deletes or self.copy_keys or self.delete_keys)
