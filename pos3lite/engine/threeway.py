"""Per-key decisions with a base: the sync state's record of what was last in sync.

A two-way sync cannot tell "deleted here" from "created there" without a record of the last
agreed state (rclone bisync's listings, Unison's archive). :func:`decide` takes the src and dst
entries of one *file* key and the base record (:class:`~pos3lite.engine.model.Synced`, or
``None`` when the state holds nothing for the key) and returns a :class:`Decision`. It is a
pure function; :func:`~pos3lite.engine.diff.plan` calls it per key when given a base.

The engine speaks of src and dst; the base speaks of the local file and the object. So the
direction says which side is local: :attr:`Direction.UP` (src = local folder, dst = S3) or
:attr:`Direction.DOWN` (src = S3, dst = local folder).

* *local changed* = the local :data:`Stamp` differs from the recorded one (an unknown stamp
  counts as changed);
* *remote changed* = the ETag or size differs from the recorded one (LastModified's second
  and size when either ETag is unknown).

Upload (``UP``; a mirror of the local folder; two-way makes no difference):

==========================  ==========================  =========================
src (local) / dst (remote)  base                        decision
==========================  ==========================  =========================
both                        yes, local unchanged        ``SKIP``
both                        yes, local changed          ``COPY`` (CHANGED)
both                        no                          ``compare``: COPY or ADOPT
src only                    any                         ``COPY``
dst only                    any                         ``DELETE`` if delete
==========================  ==========================  =========================

Download, mirror (``DOWN``, ``two_way=False``):

==========================  ==========================  =========================
src (remote) / dst (local)  base                        decision
==========================  ==========================  =========================
both                        yes, neither changed        ``SKIP``
both                        yes, either changed         ``COPY`` (CHANGED)
both                        no                          ``compare``: COPY or ADOPT
src only                    any                         ``COPY``
dst only                    any                         ``DELETE`` if delete
==========================  ==========================  =========================

Download phase of a sync (``DOWN``, ``two_way=True``):

==========================  ==========================  ==================================
src (remote) / dst (local)  base                        decision
==========================  ==========================  ==================================
both                        yes, neither changed        ``SKIP``
both                        yes, remote changed only    ``COPY`` (CHANGED)
both                        yes, local changed only     ``KEEP`` (the upload sends it)
both                        yes, both changed           newer wins: ``COPY_KEEP_DST`` if
                                                        the object is newer, else
                                                        ``KEEP_SAVE_SRC``
both                        no                          ``compare``: ADOPT, or
                                                        ``COPY_KEEP_DST`` (remote wins, the
                                                        local version is kept aside)
src only                    any                         ``COPY`` (deleted locally: fetched
                                                        again, as pos3)
dst only                    yes, local unchanged        ``DELETE`` if delete (deleted
                                                        remotely)
dst only                    yes, local changed          ``KEEP``
dst only                    no                          ``KEEP`` (new locally: uploaded)
==========================  ==========================  ==================================

"Newer" compares the object's LastModified with the local mtime; a tie keeps the local file.
"""

from __future__ import annotations

import math
from enum import Enum

from pos3lite.engine.compare import Compare
from pos3lite.engine.model import Entry, Synced

__all__ = ["Decision", "Direction", "decide", "local_changed", "remote_changed"]


class Direction(Enum):
    """Which side of a plan is the local folder."""

    UP = "up"
    """src is the local folder, dst is S3."""
    DOWN = "down"
    """src is S3, dst is the local folder."""


class Decision(Enum):
    """What to do with one file key."""

    SKIP = "skip"
    """In sync (per the base): nothing to do, nothing to record."""
    ADOPT = "adopt"
    """Equal without a base: record it, copy nothing."""
    COPY = "copy"
    """Copy src over dst (or to dst when absent)."""
    COPY_KEEP_DST = "copy_keep_dst"
    """Copy src over dst, keeping the replaced dst version aside first (two-way)."""
    KEEP = "keep"
    """Leave dst as it is and record nothing (a local change the upload will send)."""
    KEEP_SAVE_SRC = "keep_save_src"
    """Leave dst (the newer side) and keep the src version aside (two-way)."""
    DELETE = "delete"
    """Delete dst."""


def local_changed(local: Entry, base: Synced) -> bool:
    """True if the local file's stamp differs from the base's (or is unknown)."""
    return local.stamp is None or local.stamp != base.local


def remote_changed(remote: Entry, base: Synced) -> bool:
    """True if the object differs from the base: ETag and size, or, when either ETag is
    unknown, size and LastModified's second."""
    if remote.size != base.size:
        return True
    if remote.etag and base.etag:
        return remote.etag.strip('"') != base.etag.strip('"')
    return math.floor(remote.mtime) != math.floor(base.mtime)


def decide(
    src: Entry | None,
    dst: Entry | None,
    base: Synced | None,
    *,
    direction: Direction,
    two_way: bool,
    compare: Compare,
    delete: bool,
) -> Decision:
    """Decide one file key (see the module tables).

    Args:
        src, dst: the key's entries (``None`` if absent; not both).
        base: the sync state's record for the key, or ``None``.
        direction: which side is local.
        two_way: the download phase of a sync (three-way rules); only meaningful with
            :attr:`Direction.DOWN`.
        compare: the rule used without a base when both sides hold the file.
        delete: whether deletes are wanted at all.

    Returns:
        A :class:`Decision`.
    """
    if src is None and dst is None:
        raise ValueError("decide() needs at least one entry")
    if src is not None and dst is not None:
        local, remote = (src, dst) if direction is Direction.UP else (dst, src)
        if base is None:
            same = compare.differs(src, dst) is None
            if same:
                return Decision.ADOPT
            return (
                Decision.COPY_KEEP_DST
                if two_way and direction is Direction.DOWN
                else (Decision.COPY)
            )
        lc = local_changed(local, base)
        if direction is Direction.UP:
            return Decision.COPY if lc else Decision.SKIP
        rc = remote_changed(remote, base)
        if not two_way:
            return Decision.COPY if (lc or rc) else Decision.SKIP
        if not lc and not rc:
            return Decision.SKIP
        if rc and not lc:
            return Decision.COPY
        if lc and not rc:
            return Decision.KEEP
        return Decision.COPY_KEEP_DST if remote.mtime > local.mtime else Decision.KEEP_SAVE_SRC
    if src is not None:
        return Decision.COPY
    assert dst is not None
    if two_way and direction is Direction.DOWN:
        if base is not None and not local_changed(dst, base):
            return Decision.DELETE if delete else Decision.SKIP
        return Decision.KEEP
    return Decision.DELETE if delete else Decision.SKIP
