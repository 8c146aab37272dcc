"""Key policy: which object keys can become local files, and which keys collide; pure.

Supported platforms are POSIX file systems: Linux (ext4, xfs, btrfs, tmpfs...) and macOS
(APFS, case-insensitive and normalisation-insensitive by default). Rules:

* A key relative to a destination must map to a file inside it (:func:`check_relative_key`):
  no leading ``/``, no backslash, no NUL, no ``.``, ``..`` or empty segment (``a//b``: the
  file system collapses it, so the local name would never match the key again). Each
  segment is at most 255 bytes of UTF-8 (``NAME_MAX`` on Linux and macOS); a longer one
  fails with ``ENAMETOOLONG`` at write time, so it is refused up front. Anything else is
  refused as :class:`~pos3lite.errors.UnsafeKeyError` and nothing is written for it.
* Two different keys that name one file on a case-insensitive or normalisation-insensitive
  file system (``A.txt`` and ``a.txt``; ``é`` as NFC ``U+00E9`` and NFD ``e U+0301``)
  collide (:func:`collisions`): a sync would copy one and delete the other, losing the file.
  They are reported at plan time as :class:`~pos3lite.errors.KeyConflictError` naming both
  keys, and neither is copied nor deleted.

Spec: POSIX "Pathname Resolution" and ``{NAME_MAX}``; Unicode Standard Annex #15 (NFC, NFD)
and the Unicode case folding of ``str.casefold``.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable

from .errors import KeyConflictError, UnsafeKeyError

__all__ = [
    "NAME_MAX",
    "CollisionSieve",
    "check_relative_key",
    "collisions",
    "conflict_errors",
    "fold",
]

#: The longest file name (one path segment), in bytes, on the supported platforms.
NAME_MAX = 255


def check_relative_key(key: str) -> None:
    """Refuse a key, relative to a destination, that would not map to a file inside it.

    Args:
        key: a key from a listing with the destination prefix removed, e.g. ``"sub/x.txt"``.

    Raises:
        UnsafeKeyError: ``key`` is empty, starts with ``/``, contains a backslash or a NUL,
            has a ``.``, ``..`` or empty segment, or a segment longer than 255 bytes of
            UTF-8. Empty segments (``a//b``, or a trailing ``/``) are refused because the
            file system collapses them, so the local name would never match the key again
            and a sync would oscillate (pos3 bug). Directory markers (keys ending in ``/``)
            must therefore be handled before calling this.
    """
    if not key:
        raise UnsafeKeyError(key, "empty key")
    if key.startswith("/"):
        raise UnsafeKeyError(key, "starts with '/'")
    if "\\" in key:
        raise UnsafeKeyError(key, "contains a backslash")
    if "\x00" in key:
        raise UnsafeKeyError(key, "contains a NUL byte")
    segments = key.split("/")
    if (
        len(key) <= NAME_MAX
        and key.isascii()
        and "" not in segments
        and "." not in segments
        and ".." not in segments
    ):
        return  # the common case, decided without encoding each segment
    for segment in segments:
        if segment in (".", ".."):
            raise UnsafeKeyError(key, f"has a {segment!r} segment")
        if not segment:
            raise UnsafeKeyError(key, "has an empty segment ('//' or a trailing '/')")
        size = len(segment.encode("utf-8", "surrogateescape"))
        if size > NAME_MAX:
            raise UnsafeKeyError(
                key, f"has a segment of {size} bytes; file names hold at most {NAME_MAX}"
            )


def fold(key: str) -> str:
    """The name ``key`` has on a case- and normalisation-insensitive file system: case
    folded and in NFC (a directory key's trailing ``/`` is dropped)."""
    import unicodedata  # cached after the first call

    name = key[:-1] if key.endswith("/") else key
    if name.isascii():
        return name.lower()  # ASCII: casefold is lower(), and NFD/NFC change nothing
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", name).casefold())


def collisions(keys: Iterable[str]) -> list[tuple[str, str]]:
    """Pairs of different keys that :func:`fold` to one name, each pair sorted, in key
    order; a key and its own directory form (``x`` and ``x/``) are not a collision."""
    unique = list(dict.fromkeys(keys))  # a key listed on both sides is looked at once
    # The common case decided at C speed: ASCII keys (where folding is lower()) whose
    # names, trailing "/" dropped, stay distinct when lower-cased cannot collide.
    names = set(map(operator.methodcaller("rstrip", "/"), unique))
    if all(map(str.isascii, names)) and len(set(map(str.lower, names))) == len(names):
        return []
    first: dict[str, str] = {}
    pairs: set[tuple[str, str]] = set()
    for key in unique:
        name = fold(key)
        other = first.setdefault(name, key)
        if other.rstrip("/") != key.rstrip("/"):
            a, b = sorted((other, key))
            pairs.add((a, b))
    return sorted(pairs)


class CollisionSieve:
    """A one-pass, compact screen for :func:`collisions` over a stream of keys too large to
    hold: each key's folded name is kept only as a 64-bit hash, in 256 ``array`` buckets
    (8 bytes per key). :meth:`suspect` is False when no two keys seen fold to one name, so
    :func:`collisions` would return ``[]``; True means *maybe* (two keys share a folded
    name, a key and its own directory form ``x``/``x/`` were both seen, or two hashes
    met by chance): the caller then runs the exact :func:`collisions` over the keys.

    Each key must be added once (a merge of two listings gives each key once).
    """

    __slots__ = ("_buckets",)

    def __init__(self) -> None:
        from array import array

        self._buckets = [array("q") for _ in range(256)]

    def add(self, key: str) -> None:
        """Screen one key (a directory key's trailing ``/`` is dropped, as in :func:`fold`)."""
        if key.isascii():
            h = hash(key.lower()[:-1] if key[-1:] == "/" else key.lower())
        else:
            h = hash(fold(key))
        self._buckets[h & 255].append(h)

    def suspect(self) -> bool:
        """True when two keys added may fold to one name (see the class docstring)."""
        return any(len(set(b)) != len(b) for b in self._buckets)


def conflict_errors(pairs: Iterable[tuple[str, str]]) -> list[KeyConflictError]:
    """One :class:`KeyConflictError` per colliding pair, naming both keys."""
    return [
        KeyConflictError(
            a, f"and {b!r} are one file on case- or Unicode-normalisation-insensitive systems"
        )
        for a, b in pairs
    ]
