"""Plan a sync as one merge pass over two sorted listings.

Rules:

* Both listings are sorted by :func:`sort_key` (the UTF-8 bytes of the key, the order of S3
  ``ListObjectsV2``) with no duplicates; otherwise :func:`plan` raises ``ValueError`` naming
  the side and the two offending keys. Listings are consumed lazily, once, in step (like
  rclone ``fs/march`` and s5cmd ``sync``): a key only in src, only in dst, or in both.
* The exclude filter is applied to both sides before comparison: an excluded key is never
  copied, never deleted, and never counted.
* A key that is a file on both sides is compared with the ``compare`` strategy.
* Directories (keys ending ``/``) are compared by presence, and a directory exists as soon as
  a key under it exists. A src directory is copied (:attr:`Reason.MISSING`: the caller creates
  the directory or writes the marker) only when, after the plan, dst would hold neither it nor
  any key under it: when dst lacks the directory key, src holds no key under it (those keys
  are either in dst already or copied, and create the directory), and dst holds no key under
  it that the plan keeps (an excluded key, or any key with ``delete=False``). So uploading a
  non-empty folder writes no marker object (pos3 wrote one per folder, reference C.13), and a
  directory is never "satisfied" by keys the same plan deletes. A dst directory is deleted
  (:attr:`Reason.EXTRA`) only when src holds neither it nor any key under it, and dst holds no
  excluded key under it (deleting it would touch excluded data).
* A file key ``K`` conflicts when it is a file in src and either side holds keys under
  ``K + "/"``, or it is a file in dst and src holds keys under ``K + "/"``. ``K`` goes to
  ``Plan.conflicts`` and gets no copy and no delete; the dst keys under ``K + "/"`` are not
  deleted either (the caller reports the conflict; the user resolves it). Src keys under
  ``K + "/"`` are planned as usual: they can be written to S3, and writing them into a folder
  where ``K`` is a file fails loudly in the caller rather than deleting anything.
* The empty key (the root) is ignored.

Memory: the pass keeps a stack of keys whose decision waits for the keys that follow. A file
key ``K`` waits until the merge passes ``K + "/"`` and its subtree (keys between them, such as
``K.txt``, sort in the window because ``.`` and ``-`` sort before ``/``); a directory key
waits until the merge leaves its subtree. Those windows nest, so the stack is bounded by
the length of one key (in practice, the path depth), not by the length of the listing; the
returned :class:`Plan` holds only the actions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from pos3lite.engine.compact import KeyList
from pos3lite.engine.compare import Compare
from pos3lite.engine.filters import Filter
from pos3lite.engine.model import Action, Entry, Plan, Reason, Synced
from pos3lite.engine.threeway import Decision, Direction, decide

__all__ = ["plan", "sort_key"]

# "0" is the byte right after "/" (0x2F), so K + "0" is the first sort key past every key
# that starts with K followed by a byte <= "/" -- that is, past K's conflict window.
_AFTER_SLASH = b"0"


def sort_key(key: str) -> bytes:
    """Return the sort key both listings must follow: ``key.encode("utf-8")``.

    S3 ``ListObjectsV2`` returns keys in UTF-8 binary order, so ``"a.txt" < "a/" < "a/b" <
    "a0"`` and ``"z" < "é"``. (For valid strings this is also code-point order.)

    Raises:
        UnicodeEncodeError: (a ``ValueError``) for a key with a lone surrogate, such as a local
            file name that is not valid UTF-8; S3 cannot store such a key.
    """
    return key.encode("utf-8")


def plan(
    src: Iterable[Entry],
    dst: Iterable[Entry],
    *,
    compare: Compare,
    delete: bool,
    exclude: Filter | Sequence[str] = (),
    base: Mapping[str, Synced] | None = None,
    direction: Direction | None = None,
    two_way: bool = False,
    base_records: Iterable[tuple[bytes, Synced]] | None = None,
    deletes_need_base: bool = False,
    observe: Callable[[str], object] | None = None,
    keys_only: bool = False,
    on_copy: Callable[[Action], object] | None = None,
) -> Plan:
    """Plan the copies and deletes that make dst equal to src.

    Args:
        src: the source listing, sorted by :func:`sort_key`, no duplicate keys.
        dst: the destination listing, same order.
        compare: the strategy for keys that are files on both sides (see ``compare.py``).
        delete: plan :attr:`Reason.EXTRA` deletes of keys only in dst. With ``False``,
            ``Plan.deletes`` is empty.
        exclude: a :class:`Filter` or its glob patterns.
        base: the sync state's records by key (see ``threeway.py``); with ``direction``
            set, file keys are decided by :func:`~pos3lite.engine.threeway.decide` (an empty
            mapping means "no state yet": the no-base rules). ``None`` with no direction
            keeps the two-way-less rules above.
        direction: which side is local; required with ``base``.
        two_way: the download phase of a sync (three-way rules; local-only files and
            folders are kept, never deleted, unless the base says they were in sync).
        base_records: the sync state as a stream instead of ``base``: ``(sort_key(key),
            record)`` pairs in :func:`sort_key` order (the state database's key order),
            merged with both listings in the same pass, so no mapping of every record is
            held (needs ``direction``; ``base`` must then be ``None``). Records for keys in
            neither listing are passed over.
        deletes_need_base: plan a delete only for a key the base records (an empty source
            may only remove what was last in sync with it).
        observe: called once with every key of either listing (before the exclude filter),
            in order; the caller's collision sieve (see :mod:`pos3lite.keys`).
        keys_only: keep only the file keys of the copies and deletes, compactly, in
            ``Plan.copy_keys`` and ``Plan.delete_keys`` (no Action is kept; directory
            actions, ``adopted`` and ``kept`` are dropped): what a dry-run listing needs,
            at about ``len(key) + 4`` bytes per planned file.
        on_copy: called with each copy :class:`Action` as the merge decides it (in the
            order decisions close, not ``sort_key`` order: a directory's own action comes
            after the keys under it), instead of keeping it: ``Plan.copies`` is then empty,
            so a caller can start each copy while the listings are still read and memory
            does not grow with the number of copies. Deletes, conflicts, ``adopted`` and
            ``kept`` are kept and returned as usual (a delete is applied only after the whole
            plan is known). Not with ``keys_only``. An exception it raises stops the pass.

    Returns:
        The :class:`Plan`. An empty src with ``delete=True`` deletes everything in dst that is
        not excluded: refusing to act on a suspiciously empty listing is the caller's job.

    Raises:
        ValueError: a listing is not sorted by :func:`sort_key` or repeats a key (the message
            names the side and both keys); or, as ``ConfigError``, an invalid exclude pattern.
    """
    filt = exclude if isinstance(exclude, Filter) else Filter(exclude)
    if (base is not None or base_records is not None) and direction is None:
        raise ValueError("plan(base=...) needs a direction")
    if base is not None and base_records is not None:
        raise ValueError("plan() takes base or base_records, not both")
    if on_copy is not None and keys_only:
        raise ValueError("plan() takes on_copy or keys_only, not both")
    state = _Planner(
        compare=compare,
        delete=delete,
        direction=direction,
        two_way=two_way,
        deletes_need_base=deletes_need_base,
        keys_only=keys_only,
        on_copy=on_copy,
    )
    stack: list[_Pending] = []
    # With a base, a file key (most keys of a large listing) is held as a plain tuple
    # rather than pushed as a _Pending: the next key either closes its window (decided at
    # once, in the order the stack would close it; an unchanged pair costs one comparison)
    # or falls inside it (the key goes on top of the stack, as it would have been).
    held: tuple[str, bytes, Entry | None, Entry | None, Synced | None] | None = None
    up = direction is Direction.UP
    for key, kb, s, d, b in _merge(src, dst, base, base_records):
        if held is not None:
            hkey, hkb, hs, hd, hb = held
            held = None
            if kb >= hkb + _AFTER_SLASH:
                if hb is None or not _in_sync(hs, hd, hb, up):
                    state.close(_Pending(hkey, hs, hd, hb, end=b"", under=b""))
                else:
                    state.unchanged += 1
            else:
                stack.append(_Pending(hkey, hs, hd, hb, end=hkb + _AFTER_SLASH, under=hkb + b"/"))
        while stack and stack[-1].end <= kb:
            state.close(stack.pop())
        if observe is not None:
            observe(key)
        excluded = bool(filt) and filt.excluded(key)
        for pending in stack:
            if kb.startswith(pending.under):
                if excluded:
                    pending.dst_excluded_under |= d is not None
                else:
                    pending.src_under |= s is not None
                    pending.dst_under |= d is not None
        if excluded:
            continue
        if key.endswith("/"):
            if s is not None and d is not None:
                state.unchanged += 1
            else:
                # Everything under "a/" sorts right after it, before "a0": the decision
                # is made when the merge leaves the subtree.
                stack.append(_Pending(key, s, d, b, end=kb[:-1] + _AFTER_SLASH, under=kb))
        elif direction is None:
            stack.append(_Pending(key, s, d, b, end=kb + _AFTER_SLASH, under=kb + b"/"))
        else:
            held = (key, kb, s, d, b)
    if held is not None:
        hkey, _, hs, hd, hb = held
        if hb is None or not _in_sync(hs, hd, hb, up):
            state.close(_Pending(hkey, hs, hd, hb, end=b"", under=b""))
        else:
            state.unchanged += 1
    while stack:
        state.close(stack.pop())
    return state.build()


def _in_sync(s: Entry | None, d: Entry | None, b: Synced, up: bool) -> bool:
    """Whether a file key present on both sides is what the base ``b`` recorded: the local
    stamp, and for a download the object's size and ETag, unchanged. ``decide()`` returns
    SKIP for such a key in every mode (the common case of a no-op resync)."""
    if s is None or d is None:
        return False
    local, remote = (s, d) if up else (d, s)
    return (
        local.stamp is not None
        and local.stamp == b.local
        and (up or (remote.size == b.size and bool(remote.etag) and remote.etag == b.etag))
    )


@dataclass(slots=True)
class _Pending:
    """A key whose decision waits until the merge has passed ``end``."""

    key: str
    src: Entry | None
    dst: Entry | None
    base: Synced | None  # the sync state's record of the key, if any
    end: bytes  # first sort key past the window in which later keys affect this one
    under: bytes  # sort-key prefix of the keys "under" this one (K + "/" or the dir key)
    src_under: bool = False
    dst_under: bool = False
    dst_excluded_under: bool = False


class _Planner:
    """Accumulates decisions; :meth:`build` sorts them into a :class:`Plan`."""

    def __init__(
        self,
        *,
        compare: Compare,
        delete: bool,
        direction: Direction | None = None,
        two_way: bool = False,
        deletes_need_base: bool = False,
        keys_only: bool = False,
        on_copy: Callable[[Action], object] | None = None,
    ) -> None:
        self.compare = compare
        self.delete = delete
        self.deletes_need_base = deletes_need_base
        self.direction = direction
        self.two_way = two_way and direction is Direction.DOWN
        self.keys_only = keys_only
        self.adopted: _Sink = _Drop() if keys_only else []
        self.kept: _Sink = _Drop() if keys_only else []
        self.copies: _Sink = (
            _FileKeys() if keys_only else _Emit(on_copy) if on_copy is not None else []
        )
        self.deletes: _Sink = _FileKeys() if keys_only else []
        self.conflicts: list[str] = []
        self.fallbacks: list[str] = []
        self.unchanged = 0

    def close(self, p: _Pending) -> None:
        if p.key.endswith("/"):
            self._close_dir(p)
        else:
            self._close_file(p)

    def _close_dir(self, p: _Pending) -> None:
        if p.src is not None:  # only in src
            if p.src_under or p.dst_excluded_under or (p.dst_under and not self.delete):
                self.unchanged += 1
            else:
                self.copies.append(Action(p.key, Reason.MISSING, p.src, None))
        elif p.src_under or p.dst_excluded_under or self.two_way:
            # only in dst, but still needed (a two-way sync never deletes local folders)
            self.unchanged += 1
        elif self.delete and (p.base is not None or not self.deletes_need_base):
            self.deletes.append(Action(p.key, Reason.EXTRA, None, p.dst))

    def _close_file(self, p: _Pending) -> None:
        s, d = p.src, p.dst
        if (s is not None and (p.src_under or p.dst_under)) or (d is not None and p.src_under):
            self.conflicts.append(p.key)
        elif self.direction is not None:
            self._decide(p.key, s, d, p.base)
        elif s is not None and d is not None:
            if self.compare.falls_back(s, d):
                self.fallbacks.append(p.key)
            reason = self.compare.differs(s, d)
            if reason is None:
                self.unchanged += 1
            else:
                self.copies.append(Action(p.key, reason, s, d))
        elif s is not None:
            self.copies.append(Action(p.key, Reason.MISSING, s, None))
        elif self.delete and (p.base is not None or not self.deletes_need_base):
            self.deletes.append(Action(p.key, Reason.EXTRA, None, d))

    def _decide(self, key: str, s: Entry | None, d: Entry | None, b: Synced | None) -> None:
        assert self.direction is not None
        if b is not None and _in_sync(s, d, b, self.direction is Direction.UP):
            # Fast path for the common case (a no-op resync of a large tree): the local stamp
            # and the object's ETag and size are what the base recorded, so decide() would
            # return SKIP in every mode. Anything else goes through decide().
            self.unchanged += 1
            return
        if s is not None and d is not None and self.compare.falls_back(s, d):
            self.fallbacks.append(key)
        what = decide(
            s,
            d,
            b,
            direction=self.direction,
            two_way=self.two_way,
            compare=self.compare,
            delete=self.delete,
        )
        if what is Decision.SKIP or what is Decision.KEEP:
            self.unchanged += 1
        elif what is Decision.ADOPT:
            self.unchanged += 1
            self.adopted.append(Action(key, Reason.ADOPTED, s, d))
        elif what is Decision.KEEP_SAVE_SRC:
            self.unchanged += 1
            self.kept.append(Action(key, Reason.KEPT, s, d))
        elif what is Decision.DELETE:
            if b is not None or not self.deletes_need_base:
                self.deletes.append(Action(key, Reason.EXTRA, None, d))
        else:
            assert s is not None
            if what is Decision.COPY_KEEP_DST and d is not None:
                reason = Reason.CONFLICT
            elif d is None:
                reason = Reason.MISSING
            elif b is None:
                reason = self.compare.differs(s, d) or Reason.CHANGED
            else:
                reason = Reason.CHANGED
            self.copies.append(Action(key, reason, s, d))

    def build(self) -> Plan:
        if isinstance(self.copies, _FileKeys) and isinstance(self.deletes, _FileKeys):
            return Plan(
                conflicts=tuple(sorted(self.conflicts, key=sort_key)),
                fallbacks=tuple(sorted(self.fallbacks, key=sort_key)),
                unchanged=self.unchanged,
                copy_keys=_in_order(self.copies.keys, set()),
                delete_keys=_in_order(self.deletes.keys, set(self.conflicts)),
            )
        assert isinstance(self.deletes, list)
        assert isinstance(self.adopted, list) and isinstance(self.kept, list)
        blocked = set(self.conflicts)
        deletes = [a for a in self.deletes if not _has_ancestor_in(a.key, blocked)]
        by_key = _action_sort_key
        copies = self.copies if isinstance(self.copies, list) else ()  # () when emitted
        return Plan(
            copies=tuple(sorted(copies, key=by_key)),
            deletes=tuple(sorted(deletes, key=by_key, reverse=True)),
            conflicts=tuple(sorted(self.conflicts, key=sort_key)),
            fallbacks=tuple(sorted(self.fallbacks, key=sort_key)),
            unchanged=self.unchanged,
            adopted=tuple(sorted(self.adopted, key=by_key)),
            kept=tuple(sorted(self.kept, key=by_key)),
        )


class _Sink(Protocol):
    def append(self, action: Action, /) -> None: ...


class _Drop:
    __slots__ = ()

    def append(self, action: Action, /) -> None:
        pass


class _Emit:
    """Hands each action to a callback instead of keeping it (streamed copies)."""

    __slots__ = ("_fn",)

    def __init__(self, fn: Callable[[Action], object]) -> None:
        self._fn = fn

    def append(self, action: Action, /) -> None:
        self._fn(action)


class _FileKeys:
    """Keeps the file keys of the actions appended (keys_only plans)."""

    __slots__ = ("keys",)

    def __init__(self) -> None:
        self.keys = KeyList()

    def append(self, action: Action, /) -> None:
        if not action.key.endswith("/"):
            self.keys.append(action.key)


def _in_order(keys: KeyList, blocked: set[str]) -> KeyList:
    """``keys`` in sort_key order without those under a ``blocked`` key (a copy only when
    the merge closed keys out of order or something is blocked: both rare)."""
    if keys.in_order and not blocked:
        return keys
    kept = [k for k in keys if not _has_ancestor_in(k, blocked)]
    return KeyList(sorted(kept, key=sort_key))


def _action_sort_key(action: Action) -> bytes:
    return sort_key(action.key)


def _has_ancestor_in(key: str, keys: set[str]) -> bool:
    """True if some ``key[:i]`` with ``key[i] == "/"`` is in ``keys``."""
    if not keys:
        return False
    i = key.find("/")
    while i >= 0:
        if key[:i] in keys:
            return True
        i = key.find("/", i + 1)
    return False


class _Cursor:
    """One listing, advanced lazily, checked for order and duplicates on the way."""

    __slots__ = ("_entries", "_prev", "_side", "entry", "kb")

    def __init__(self, entries: Iterable[Entry], side: str) -> None:
        self._entries = iter(entries)
        self._side = side
        self._prev: Entry | None = None
        self.entry: Entry | None = None
        self.kb = b""
        self.advance()

    def advance(self) -> None:
        for entry in self._entries:
            key = entry.key
            if not key:  # the root: never an action
                continue
            kb = key.encode("utf-8")  # sort_key(key), inlined: once per key of each side
            # self.kb is still the previous key's (b"" before the first, and every key
            # sorts after b"")
            if kb <= self.kb:
                prev = self._prev
                assert prev is not None
                what = "repeats the key" if kb == self.kb else "is not sorted by UTF-8 bytes:"
                raise ValueError(
                    f"{self._side} listing {what} {prev.key!r} then {entry.key!r} "
                    "(listings must be sorted by sort_key with no duplicates)"
                )
            self._prev = self.entry = entry
            self.kb = kb
            return
        self.entry = None


def _merge(
    src: Iterable[Entry],
    dst: Iterable[Entry],
    base: Mapping[str, Synced] | None = None,
    base_records: Iterable[tuple[bytes, Synced]] | None = None,
) -> Iterator[tuple[str, bytes, Entry | None, Entry | None, Synced | None]]:
    """Yield ``(key, sort_key(key), src_entry, dst_entry, base_record)`` in order; a side is
    None if absent. The base is looked up in ``base`` or merged from ``base_records``."""
    s = _Cursor(src, "src")
    d = _Cursor(dst, "dst")
    lookup = base.get if base else None
    records = iter(base_records) if base_records is not None else None
    bkb: bytes | None = None  # sort key of the next unmatched base record
    brec: Synced | None = None
    if records is not None:
        bkb, brec = next(records, (None, None))
    while True:
        se, de = s.entry, d.entry
        if se is None:
            if de is None:
                return
            key, kb, se_, de_ = de.key, d.kb, None, de
        elif de is None or s.kb < d.kb:
            key, kb, se_, de_ = se.key, s.kb, se, None
        elif d.kb < s.kb:
            key, kb, se_, de_ = de.key, d.kb, None, de
        else:
            key, kb, se_, de_ = se.key, s.kb, se, de
        b: Synced | None = None
        if lookup is not None:
            b = lookup(key)
        elif bkb is not None:
            while bkb is not None and bkb < kb:  # records of keys in neither listing
                prev = bkb
                bkb, brec = next(records, (None, None))  # type: ignore[arg-type]
                if bkb is not None and bkb <= prev:
                    raise ValueError(
                        f"base records are not sorted by UTF-8 bytes: {prev!r} then {bkb!r}"
                    )
            if bkb == kb:
                b = brec
        yield key, kb, se_, de_, b
        if se_ is not None:
            s.advance()
        if de_ is not None:
            d.advance()
