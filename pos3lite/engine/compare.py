"""Comparison strategies: does a file present on both sides need to be copied again?

A strategy is a small frozen object with a ``name``, ``differs(src, dst)`` and
``falls_back(src, dst)``. :func:`~pos3lite.engine.diff.plan` calls them only for a key that is
a *file* on both sides; it treats src as the source of truth. Each strategy's truth table is in
its docstring and repeated as a table-driven test (``tests/unit/test_engine_compare.py``).

An object's ``LastModified`` has 1 s resolution, so it is compared as ``math.floor`` of
itself against the local ``st_mtime`` at full precision.

pos3 compared sizes only, so a same-size change was never transferred (reference C.1);
:class:`SizeOnly` keeps that behaviour for those who want it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import ClassVar, Protocol

from pos3lite.engine.model import Entry, Reason
from pos3lite.errors import ConfigError

__all__ = ["COMPARE_NAMES", "Checksum", "Compare", "SizeMtime", "SizeOnly", "make_compare"]

COMPARE_NAMES: tuple[str, ...] = ("size", "size_mtime", "checksum")
"""The names :func:`make_compare` accepts."""

# A single-part upload's ETag is the hex MD5 of the body (AWS page "Checking object
# integrity"); a multipart ETag is "<md5 of the part md5s>-<part count>" and is not.
_MD5_HEX = re.compile(r"[0-9a-fA-F]{32}")


class Compare(Protocol):
    """A comparison strategy for a key that is a file on both sides."""

    @property
    def name(self) -> str:
        """The strategy's name, as given to :func:`make_compare`."""
        ...

    def differs(self, src: Entry, dst: Entry) -> Reason | None:
        """Return why dst must be overwritten by src, or ``None`` if they are equal.

        Both entries are files with the same key. Returns :attr:`Reason.SIZE`,
        :attr:`Reason.MTIME` or :attr:`Reason.CHECKSUM`.
        """
        ...

    def falls_back(self, src: Entry, dst: Entry) -> bool:
        """True if :meth:`differs` cannot use its own rule for this pair and uses a weaker one.

        :func:`~pos3lite.engine.diff.plan` records such keys in ``Plan.fallbacks``.
        """
        ...


@dataclass(frozen=True, slots=True)
class SizeOnly:
    """Copy only when the sizes differ (pos3's behaviour; misses same-size changes).

    ============  ===========
    size          result
    ============  ===========
    src != dst    ``SIZE``
    src == dst    ``None``
    ============  ===========

    Modification times and ETags are ignored. Never falls back.
    """

    name: ClassVar[str] = "size"

    def differs(self, src: Entry, dst: Entry) -> Reason | None:
        """See the class truth table."""
        return Reason.SIZE if src.size != dst.size else None

    def falls_back(self, src: Entry, dst: Entry) -> bool:
        """Always False."""
        return False


@dataclass(frozen=True, slots=True)
class SizeMtime:
    """Copy when the sizes differ or the modification times say the copy is out of date.

    This is the rule *without a sync state* (with one, ``engine/threeway.py`` decides from
    the recorded stat and ETag). S3 ``LastModified`` has whole-second resolution, so the
    object's time is taken as ``floor(LastModified)`` and the local time at full precision.

    ``exact=True`` is for downloads (src = the object, dst = the local file): an equal-size
    local file whose mtime is at or after the object's LastModified second was written from
    it (pos3lite stamps downloads with LastModified; pos3 left the download time) and is
    adopted; an older one is replaced. ``exact=False`` is for uploads (src = the local file,
    dst = the object): copy unless the local mtime is *older* than the object's
    LastModified second, so a same-size rewrite in the same second as the last upload is
    sent again (a spare transfer, never stale data).

    =====  ======================================  =================  ==================
    size   times                                   exact=True (down)  exact=False (up)
    =====  ======================================  =================  ==================
    !=     any                                     ``SIZE``           ``SIZE``
    ==     local >= floor(object)                  ``None`` (adopt)   ``MTIME``
    ==     local <  floor(object)                  ``MTIME``          ``None``
    =====  ======================================  =================  ==================

    ETags are ignored. Never falls back.
    """

    exact: bool
    name: ClassVar[str] = "size_mtime"

    def differs(self, src: Entry, dst: Entry) -> Reason | None:
        """See the class truth table."""
        if src.size != dst.size:
            return Reason.SIZE
        if self.exact:  # src is the object, dst the local file
            stale = dst.mtime < math.floor(src.mtime)
        else:  # src is the local file, dst the object
            stale = src.mtime >= math.floor(dst.mtime)
        return Reason.MTIME if stale else None

    def falls_back(self, src: Entry, dst: Entry) -> bool:
        """Always False."""
        return False


@dataclass(frozen=True, slots=True)
class Checksum:
    """Copy when the sizes or the MD5s differ; use ``fallback`` when there is no usable MD5.

    A pair is *hashable* when both ``etag`` values are present and each is a 32-digit hex MD5
    (surrounding quotes are ignored, case is ignored). A multipart ETag (``"...-3"``) is not an
    MD5 of the content, nor is a missing local hash (``None``); such a pair is compared with
    ``fallback`` and :meth:`falls_back` returns True so the key lands in ``Plan.fallbacks``.

    Note: with SSE-KMS or SSE-C the ETag of a single-part object is not its MD5 either and
    cannot be told apart; use ``size_mtime`` for such buckets.

    =========  ============  ===========  =========================================
    hashable   size          MD5          result
    =========  ============  ===========  =========================================
    yes        src != dst    any          ``SIZE``
    yes        src == dst    src == dst   ``None``
    yes        src == dst    src != dst   ``CHECKSUM``
    no         any           n/a          ``fallback.differs(src, dst)``, recorded
    =========  ============  ===========  =========================================
    """

    fallback: Compare
    name: ClassVar[str] = "checksum"

    def differs(self, src: Entry, dst: Entry) -> Reason | None:
        """See the class truth table."""
        src_md5 = _md5(src.etag)
        dst_md5 = _md5(dst.etag)
        if src_md5 is None or dst_md5 is None:
            return self.fallback.differs(src, dst)
        if src.size != dst.size:
            return Reason.SIZE
        return Reason.CHECKSUM if src_md5 != dst_md5 else None

    def falls_back(self, src: Entry, dst: Entry) -> bool:
        """True unless both ETags are single-part MD5s."""
        return _md5(src.etag) is None or _md5(dst.etag) is None


def _md5(etag: str | None) -> str | None:
    """Return ``etag`` as lowercase hex if it is an MD5 (single-part ETag), else ``None``."""
    if etag is None:
        return None
    value = etag.strip('"')
    return value.lower() if _MD5_HEX.fullmatch(value) else None


def make_compare(name: str, *, exact_mtime: bool) -> Compare:
    """Build the strategy called ``name``.

    Args:
        name: ``"size"``, ``"size_mtime"`` or ``"checksum"`` (see :data:`COMPARE_NAMES`).
        exact_mtime: the ``exact`` flag of :class:`SizeMtime`, also used as the fallback of
            ``"checksum"``: True for downloads, False for uploads.

    Returns:
        :class:`SizeOnly`, :class:`SizeMtime` or ``Checksum(SizeMtime(exact_mtime))``.

    Raises:
        ConfigError: (a :class:`ValueError`) for an unknown name; the message names the value
            and lists the valid names.
    """
    if name == "size":
        return SizeOnly()
    if name == "size_mtime":
        return SizeMtime(exact_mtime)
    if name == "checksum":
        return Checksum(SizeMtime(exact_mtime))
    valid = ", ".join(repr(n) for n in COMPARE_NAMES)
    raise ConfigError(f"unknown comparison {name!r}; valid names: {valid}")
