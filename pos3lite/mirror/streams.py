"""Streamed planning: the pieces that let the mirror feed both listings and the sync state
into the engine's one merge pass without holding any of them whole.

Rules:

* :class:`LocalStream` wraps the local walk (already in UTF-8 byte order) with a one-entry
  peek (is the side empty?) and a bounded look-ahead: :func:`markers_as_folders` asks it
  whether the walk lists the empty folder ``x/`` when the remote side holds a 0-byte object
  ``x`` (servers that store folder markers without the ``/``, as rclone does); the look-ahead
  reads the walk only up to ``x/``.
* :func:`markers_as_folders` turns such an ``x`` into ``x/`` and re-emits it at ``x/``'s place
  in the order (a small heap of the entries held back; everything else passes through).
* :class:`GrowingFilter` is the exclude filter plus an anchored pattern for every key the walk
  skipped so far: the walk records a skipped key before it yields any key at or under it, so
  the engine sees each protection before the keys it protects.
* :class:`BaseView` is a registration's sync state read lazily: single lookups, "any
  record?", the sorted record stream for the merge, or (fallback) the whole mapping.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Iterator, Sequence

from ..engine.diff import sort_key
from ..engine.filters import Filter
from ..engine.model import Entry, Synced
from .scan import anchored
from .state import SyncState

__all__ = ["BaseView", "GrowingFilter", "LocalStream", "Peek", "markers_as_folders"]


class Peek:
    """An iterator with :meth:`empty`: whether it yields anything (reads one entry ahead)."""

    __slots__ = ("_head", "_it")

    def __init__(self, entries: Iterable[Entry]) -> None:
        self._it = iter(entries)
        self._head: list[Entry] = []

    def empty(self) -> bool:
        if self._head:
            return False
        nxt = next(self._it, None)
        if nxt is None:
            return True
        self._head.append(nxt)
        return False

    def __iter__(self) -> Iterator[Entry]:
        if self._head:
            yield self._head.pop()
        yield from self._it


class LocalStream(Peek):
    """The local walk with a look-ahead to one key (see the module rules)."""

    __slots__ = ("_buf", "_last")

    def __init__(self, entries: Iterable[Entry]) -> None:
        super().__init__(entries)
        self._buf: deque[Entry] = deque()
        self._last: Entry | None = None  # the last entry handed to the consumer

    def __iter__(self) -> Iterator[Entry]:
        it = super().__iter__()
        buf = self._buf
        while True:
            if buf:
                e = buf.popleft()
            else:
                nxt = next(it, None)
                if nxt is None:
                    return
                e = nxt
            self._last = e
            yield e

    def lists(self, key: str) -> bool:
        """Whether the walk yields ``key`` at or after the entry the consumer holds now.

        Valid when every entry handed out before the current one sorts before ``key`` (the
        merge has not passed ``key``); reads the walk ahead only up to ``key``."""
        target = sort_key(key)
        last = self._last
        if last is not None:
            lk = sort_key(last.key)
            if lk >= target:
                return lk == target
        for e in self._buf:
            ek = sort_key(e.key)
            if ek >= target:
                return ek == target
        if self._head:
            self._buf.append(self._head.pop())
            ek = sort_key(self._buf[-1].key)
            if ek >= target:
                return ek == target
        for e in self._it:
            self._buf.append(e)
            ek = sort_key(e.key)
            if ek >= target:
                return ek == target
        return False


def markers_as_folders(remote: Iterable[Entry], local: LocalStream) -> Iterator[Entry]:
    """The sorted remote stream with each 0-byte object ``x`` turned into the folder entry
    ``x/`` where the local walk lists the empty folder ``x/`` (re-emitted in order)."""
    held: list[tuple[bytes, int, Entry]] = []
    n = 0
    for e in remote:
        if held:
            kb = sort_key(e.key)
            while held and held[0][0] < kb:
                yield heapq.heappop(held)[2]
        key = e.key
        if e.size == 0 and not key.endswith("/") and local.lists(key + "/"):
            n += 1
            heapq.heappush(held, (sort_key(key + "/"), n, Entry(key + "/", 0, e.mtime, e.etag)))
            continue
        yield e
    while held:
        yield heapq.heappop(held)[2]


class GrowingFilter(Filter):
    """``Filter(patterns)`` plus :func:`anchored` patterns for the keys in ``skipped``, a
    list that grows while the engine runs (see the module rules)."""

    __slots__ = ("_inner", "_seen", "_skipped", "_user")
    _inner: Filter
    _seen: int
    _skipped: list[str]
    _user: list[str]

    def __init__(self, patterns: Sequence[str], skipped: list[str]) -> None:
        Filter.__init__(self, patterns)
        object.__setattr__(self, "_user", list(patterns))
        object.__setattr__(self, "_skipped", skipped)
        object.__setattr__(self, "_seen", -1)
        object.__setattr__(self, "_inner", Filter(()))

    def _current(self) -> Filter:
        if len(self._skipped) != self._seen:
            extra = [anchored(k) for k in self._skipped]
            object.__setattr__(self, "_inner", Filter(self._user + extra))
            object.__setattr__(self, "_seen", len(self._skipped))
        return self._inner

    def excluded(self, key: str) -> bool:
        return self._current().excluded(key)

    def __bool__(self) -> bool:
        # Asked once per merged key: no rebuild here (anchored patterns are never empty).
        return bool(self._skipped) or bool(self.patterns)


class BaseView:
    """The sync state of one registration, read when needed (see the module rules).

    Args:
        store: the mirror's :class:`SyncState`.
        name: the registration name.
        enabled: ``False`` when states are off (checksum comparison): nothing is recorded.
    """

    __slots__ = ("_any", "enabled", "name", "store")

    def __init__(self, store: SyncState, name: str, *, enabled: bool = True) -> None:
        self.store, self.name, self.enabled = store, name, enabled
        self._any: bool | None = None

    def __bool__(self) -> bool:
        if self._any is None:
            self._any = self.enabled and self.store.has_records(self.name)
        return self._any

    def get(self, key: str) -> Synced | None:
        """One key's record, or ``None``."""
        return self.store.get(self.name, key) if self.enabled else None

    def records(self) -> Iterator[tuple[bytes, Synced]]:
        """Every record (the empty key's aside) in sort-key order, read in batches."""
        return self.store.records(self.name) if self.enabled else iter(())

    def load(self) -> dict[str, Synced]:
        """Every record, by key (the fallback planner's mapping)."""
        return self.store.load(self.name) if self.enabled else {}
