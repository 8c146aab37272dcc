"""Exclude globs, applied identically to both sides of a sync.

Matching rules (a key is the relative, ``/``-separated key of an :class:`Entry`):

* A directory key's trailing ``/`` is not part of the name matched: ``a/b/`` is matched as
  ``a/b``.
* ``*`` matches any run of characters, ``?`` one character and ``[abc]`` / ``[a-z]`` /
  ``[!abc]`` one character of (not of) the set; none of them ever matches ``/``. A set cannot
  contain ``/``.
* ``**`` as a whole segment matches zero or more whole segments: ``**/*.log`` matches
  ``x.log`` and ``a/b/z.log``; ``a/**/b`` matches ``a/b`` and ``a/x/y/b``. A trailing
  ``**`` (``a/**``) matches one or more segments: everything under ``a``, not ``a`` itself.
  ``**`` inside a segment (``a**b``) is the same as ``*``.
* A pattern without a leading ``/`` is *right-anchored*, like pos3 (Python's
  ``PurePath.match``): it matches the last segments of a key. ``*.log`` matches ``.log``
  files at any depth; ``a/*.log`` matches ``a/y.log`` and ``x/a/y.log`` but not
  ``a/b/z.log``; ``logs`` matches any file or directory whose last component is ``logs``.
* A pattern with a leading ``/`` is anchored at the root: ``/x.log`` matches only the
  top-level ``x.log`` (pos3 matched nothing for it).
* A pattern with a trailing ``/`` matches directories only: ``logs/`` excludes the directory
  ``logs`` and everything under it, but not a file named ``logs``.
* A key is excluded if the key itself **or any of its ancestor directories** matches, so
  ``logs`` excludes ``logs/a.log`` and ``logs/deep/b.log`` whatever the listing order (pos3
  leaked the first file under an excluded directory and then deleted its remote copy,
  reference C.4).
* Empty patterns are ignored. Pattern order and repeats do not matter (``Filter`` values
  compare equal). An unclosed ``[``, a reversed range such as ``[z-a]``, or an empty segment
  (``a//b``, or ``/`` alone) is invalid.

Patterns are compiled once into two regular expressions; :meth:`Filter.excluded` is one
``re.search`` per expression.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from pos3lite.errors import ConfigError

__all__ = ["Filter"]

# One path segment never contains "/".
_STAR = "[^/]*"
_ONE = "[^/]"
# "**" followed by more segments: zero or more whole segments, each with its "/".
_STARSTAR_INNER = "(?:[^/]+/)*"
# "**" as the last segment: one or more whole segments.
_STARSTAR_LAST = "[^/]+(?:/[^/]+)*"


@dataclass(frozen=True, slots=True)
class Filter:
    """A set of exclude globs; see the module docstring for the matching rules.

    Args:
        patterns: the globs, e.g. ``["*.log", "/build", "cache/"]``. A bare ``str`` is refused
            (it would be read as one pattern per character).

    Attributes:
        patterns: the non-empty patterns, deduplicated and sorted.

    Raises:
        TypeError: if ``patterns`` is a ``str``.
        ConfigError: (a :class:`ValueError`) for an invalid pattern; the message names it.
    """

    patterns: tuple[str, ...]
    _any: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _dirs: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __init__(self, patterns: Sequence[str] = ()) -> None:
        if isinstance(patterns, str):
            raise TypeError(f"exclude patterns must be a sequence of str, not str {patterns!r}")
        unique = tuple(sorted({p for p in patterns if p}))
        any_parts: list[str] = []
        dir_parts: list[str] = []
        for pattern in unique:
            regex, dir_only = _translate(pattern)
            (dir_parts if dir_only else any_parts).append(regex)
        object.__setattr__(self, "patterns", unique)
        object.__setattr__(self, "_any", _combine(any_parts))
        object.__setattr__(self, "_dirs", _combine(dir_parts))

    def excluded(self, key: str) -> bool:
        """True if ``key`` or one of its ancestor directories matches a pattern.

        Args:
            key: a relative key; a directory key ends with ``/``.
        """
        if self._any is not None:
            name = key[:-1] if key.endswith("/") else key
            if self._any.search(name):
                return True
        # Directory-only patterns must be followed by "/": an ancestor, or the key itself
        # when it is a directory key (whose trailing "/" is kept for this search).
        return self._dirs is not None and self._dirs.search(key) is not None

    def __bool__(self) -> bool:
        """False when there are no patterns (nothing is ever excluded)."""
        return bool(self.patterns)


def _combine(parts: list[str]) -> re.Pattern[str] | None:
    return re.compile("|".join(f"(?:{p})" for p in parts)) if parts else None


def _translate(pattern: str) -> tuple[str, bool]:
    """Translate one glob into a regex for ``re.search`` and a directory-only flag.

    The regex matches when the glob matches the key or one of its ancestors: it starts at the
    beginning of the key or just after a ``/`` (only at the beginning for an anchored glob)
    and ends at the end of the key or just before a ``/`` (just before a ``/`` for a
    directory-only glob).
    """
    anchored = pattern.startswith("/")
    body = pattern[1:] if anchored else pattern
    dir_only = body.endswith("/")
    if dir_only:
        body = body[:-1]
    segments = body.split("/")
    if any(not s for s in segments):
        raise ConfigError(f"invalid exclude pattern {pattern!r}: empty path segment")
    out: list[str] = []
    last = len(segments) - 1
    for i, segment in enumerate(segments):
        if segment == "**":
            out.append(_STARSTAR_LAST if i == last else _STARSTAR_INNER)
        else:
            out.append(_translate_segment(segment, pattern) + ("" if i == last else "/"))
    start = "^" if anchored else "(?:^|(?<=/))"
    end = "/" if dir_only else "(?=/|$)"
    regex = start + "".join(out) + end
    try:
        re.compile(regex)
    except re.error as exc:
        raise ConfigError(f"invalid exclude pattern {pattern!r}: {exc}") from None
    return regex, dir_only


def _translate_segment(segment: str, pattern: str) -> str:
    """Translate one ``/``-free glob segment (``*``, ``?``, ``[...]``) into a regex."""
    out: list[str] = []
    i = 0
    n = len(segment)
    while i < n:
        c = segment[i]
        i += 1
        if c == "*":
            while i < n and segment[i] == "*":  # "**" inside a segment is "*"
                i += 1
            out.append(_STAR)
        elif c == "?":
            out.append(_ONE)
        elif c == "[":
            j = i
            if j < n and segment[j] == "!":
                j += 1
            if j < n and segment[j] == "]":  # a leading "]" is a member of the set
                j += 1
            j = segment.find("]", j)
            if j < 0:
                raise ConfigError(f"invalid exclude pattern {pattern!r}: unclosed '['")
            stuff = segment[i:j]
            i = j + 1
            negate = stuff.startswith("!")
            if negate:
                stuff = stuff[1:]
            members = "".join(ch if ch == "-" else re.escape(ch) for ch in stuff)
            out.append(f"[^/{members}]" if negate else f"[{members}]")
        else:
            out.append(re.escape(c))
    return "".join(out)
