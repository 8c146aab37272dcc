"""Compact sequences for plans of millions of keys: no Python object per key is kept.

Rules:

* :class:`KeyList` holds keys as one ``bytearray`` of their UTF-8 bytes (``surrogateescape``
  for undecodable local names) and an ``array`` of end offsets: about ``len(key) + 4`` bytes
  per key (8 once the keys pass 4 GiB) instead of ~80 for a ``str`` in a list.
* :class:`PairList` and :class:`StrList` are read-only views over a :class:`KeyList` that
  build each ``(source, destination)`` pair or string when it is read: ``len``, iteration,
  indexing (slices give lists), ``==`` with any sequence (a list of the same items compares
  equal), and a short ``repr``. They are what ``TransferPlan.to_copy``/``to_delete`` hold.
* Nothing here does I/O.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar, overload

__all__ = ["KeyList", "PairList", "StrList"]

T = TypeVar("T")

_REPR_ITEMS = 3


class KeyList(Sequence[str]):
    """An append-only list of keys stored compactly (see the module rules).

    ``in_order`` stays True while every key appended sorts (by UTF-8 bytes) after the one
    before it.
    """

    __slots__ = ("_blob", "_ends", "_last", "in_order")

    def __init__(self, keys: Sequence[str] = ()) -> None:
        self._blob = bytearray()
        self._ends: array[int] = array("I")
        self._last = b""
        self.in_order = True
        for k in keys:
            self.append(k)

    def append(self, key: str) -> None:
        raw = key.encode("utf-8", "surrogateescape")
        if raw <= self._last and self._ends:
            self.in_order = False
        self._last = raw
        self._blob += raw
        end = len(self._blob)
        if end > 0xFFFFFFFF and self._ends.typecode == "I":
            self._ends = array("Q", self._ends)
        self._ends.append(end)

    def __len__(self) -> int:
        return len(self._ends)

    def _at(self, i: int) -> str:
        start = self._ends[i - 1] if i else 0
        return self._blob[start : self._ends[i]].decode("utf-8", "surrogateescape")

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self._at(j) for j in range(*i.indices(len(self)))]
        n = len(self._ends)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("KeyList index out of range")
        return self._at(i)

    def __iter__(self) -> Iterator[str]:
        blob, start = self._blob, 0
        for end in self._ends:
            yield blob[start:end].decode("utf-8", "surrogateescape")
            start = end

    def __reversed__(self) -> Iterator[str]:
        for i in range(len(self._ends) - 1, -1, -1):
            yield self._at(i)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (str, bytes)) or not isinstance(other, Sequence):
            return NotImplemented
        return _seq_eq(self, other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return _short_repr("KeyList", self)

    def nbytes(self) -> int:
        """Bytes held by the keys and offsets (not counting the object headers)."""
        return len(self._blob) + self._ends.itemsize * len(self._ends)


class _View(Sequence[T]):
    __slots__ = ("_keys", "_make", "_reverse")

    def __init__(self, keys: KeyList, make: Callable[[str], T], *, reverse: bool = False) -> None:
        self._keys, self._make, self._reverse = keys, make, reverse

    def __len__(self) -> int:
        return len(self._keys)

    @overload
    def __getitem__(self, i: int) -> T: ...
    @overload
    def __getitem__(self, i: slice) -> list[T]: ...
    def __getitem__(self, i: int | slice) -> T | list[T]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self._keys)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"{type(self).__name__} index out of range")
        return self._make(self._keys[n - 1 - i if self._reverse else i])

    def __iter__(self) -> Iterator[T]:
        make = self._make
        for key in reversed(self._keys) if self._reverse else self._keys:
            yield make(key)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (str, bytes)) or not isinstance(other, Sequence):
            return NotImplemented
        return _seq_eq(self, other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return _short_repr(type(self).__name__, self)


class PairList(_View[tuple[str, str]]):
    """``(source, destination)`` pairs made from the keys of a :class:`KeyList` on read
    (``make(key)`` gives the pair; ``reverse=True`` reads the keys last to first)."""

    __slots__ = ()


class StrList(_View[str]):
    """Strings (paths or URLs) made from the keys of a :class:`KeyList` on read."""

    __slots__ = ()


def _seq_eq(a: Sequence[Any], other: Sequence[Any]) -> bool:
    return len(a) == len(other) and all(x == y for x, y in zip(a, other, strict=True))


def _short_repr(name: str, seq: Sequence[Any]) -> str:
    n = len(seq)
    head = ", ".join(repr(x) for x in seq[:_REPR_ITEMS])
    more = f", ... ({n} items)" if n > _REPR_ITEMS else ""
    return f"{name}([{head}{more}])"
