"""Stream ListObjectsV2 listings as compact entries, split by ``/`` and listed concurrently
where a prefix is large.

Rules:

* Entries are the scanner's plain tuples ``(key, size, last_modified, etag)`` (see
  :mod:`pos3lite.s3.listscan`); nothing builds an ``ObjectInfo`` per key.
* Pages of one listing are chained by continuation tokens, so they come one after another;
  while the consumer reads a page, the next ones are already being fetched (at most
  ``depth`` pages buffered per listing). :class:`_Listing` is the one read-ahead mechanism:
  :meth:`S3Client.list_objects` uses it too, on the client's listing executor.
* :func:`list_entries_split` lists the prefix once with ``delimiter="/"`` and each common
  prefix ``P/`` as its own listing, up to ``window`` of them at once. Every key under ``P/``
  sorts after ``P/`` and before the next top-level item that is not under ``P/`` (UTF-8 byte
  order compares byte by byte, and no other top-level item starts with ``P/``), so the
  sub-listings do not interleave: concatenating them in the top level's order *is* the
  merge of the sorted streams, with no heap and one sub-listing read at a time. Memory is
  bounded by ``window * depth`` pages plus one top-level page, whatever the prefix holds.
* Adaptive split (:func:`list_entries_adaptive`, what the mirror uses): the first page is a
  plain request, so a prefix that fits one page costs one request, as a sequential listing.
  Only a truncated first page, ending at key ``L``, splits the rest: the ``delimiter="/"``
  listing and ``L``'s own top-level folder ``F/`` both start after ``L``
  (``start-after``); ``F/`` is listed first (its keys after ``L`` sort before any other
  top-level item after ``L``), the common prefix ``F/`` from the top level is skipped, and
  the other items follow as above. Keys ending in ``/`` (folder markers) and keys holding
  ``//`` belong to the common prefix of their first segment, as in a plain listing, and
  ``P/`` itself comes first in its own listing.
* Order and completeness: with a server that lists in UTF-8 byte order (S3) the output is
  exactly the sequential listing. The split relies on ``start-after``; where a server
  ignores it, or rolls common prefixes up at the wrong ``/`` with it (SeaweedFS 4.48 at the
  bucket root returns ``big/d01/`` for ``delimiter="/"``), the first split pages show it
  (an item not after ``L``, a common prefix of two segments) and the listing goes on
  sequentially from the first page's continuation token before any split entry is
  yielded; the client remembers it (``S3Client.start_after_unreliable``).
  Each page's first key is checked against the key emitted before it (and each sub-listing
  page against its prefix): a violation raises :class:`ListingOrderError` instead of
  yielding a duplicate or reordered key; disorder *within* one page of a sequential chain
  is the server's, passed through for the consumer's order check as before. A first page
  out of byte order (SeaweedFS lists folders as a directory walk) never splits.
* Work runs on the caller's executor (FIFO, e.g. ``ThreadPoolExecutor``); each task fetches
  and scans one page and never waits on another task, so a shared executor cannot deadlock.
  Closing the iterator early stops scheduling and drops buffered pages; fetches already in
  flight finish unused.
* A failure on any page raises from the iterator (S3Error, ``MalformedResponse`` for an
  unreadable page, TransportError), after the client's retries: a partial listing is
  never mistaken for a complete one.

Spec: Amazon S3 API Reference, "ListObjectsV2" (``prefix``, ``delimiter``,
``continuation-token``, ``encoding-type``); "Organizing objects using prefixes" in the S3
User Guide.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from itertools import pairwise
from typing import ParamSpec, Protocol, TypeVar

from ..errors import Pos3liteError
from .listscan import Entry, ScannedPage

__all__ = ["ListingOrderError", "list_entries", "list_entries_adaptive", "list_entries_split"]

logger = logging.getLogger("pos3lite")

_P = ParamSpec("_P")
_T = TypeVar("_T")

Fetch = Callable[[str | None], ScannedPage]

#: Pages read ahead by a sequential continuation of :func:`list_entries_adaptive` (one
#: chain, so deeper than each split listing's ``depth``; 1,000 keys a page).
SEQUENTIAL_DEPTH = 4


class S3Client(Protocol):
    """What a listing needs of :class:`pos3lite.s3.client.S3Client` (a protocol, so this
    module does not import the client, which imports it)."""

    start_after_unreliable: bool

    def list_page(
        self,
        bucket: str,
        prefix: str = "",
        *,
        delimiter: str | None = None,
        token: str | None = None,
        start_after: str | None = None,
        page_size: int = 1000,
        etag: bool = True,
    ) -> ScannedPage: ...


class ListingOrderError(Pos3liteError):
    """A split listing met a key not after the one emitted before it (UTF-8 byte order):
    the server lists out of byte order, or stopped honouring ``start-after`` part-way. The
    entries yielded so far were in order, without duplicates; the caller lists again
    sequentially (continuation tokens only), which such a server still answers completely."""


def _fetcher(
    client: S3Client,
    bucket: str,
    prefix: str,
    delimiter: str | None,
    page_size: int,
    etag: bool,
    start_after: str | None = None,
) -> Fetch:
    def fetch(token: str | None) -> ScannedPage:
        return client.list_page(
            bucket,
            prefix,
            delimiter=delimiter,
            token=token,
            start_after=start_after,
            page_size=page_size,
            etag=etag,
        )

    return fetch


class _Inline(Executor):
    """Runs each task at once in the calling thread (no executor given)."""

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kw: _P.kwargs) -> Future[_T]:
        fut: Future[_T] = Future()
        try:
            fut.set_result(fn(*args, **kw))
        except BaseException as exc:
            fut.set_exception(exc)
        return fut


class _Listing:
    """One chained listing: pages fetched one after another on ``executor``, at most
    ``depth`` parsed pages buffered ahead of the consumer; ``token``: start after a page
    already read (its continuation token)."""

    def __init__(
        self, fetch: Fetch, executor: Executor, depth: int, token: str | None = None
    ) -> None:
        self._fetch = fetch
        self._executor = executor
        self._depth = depth
        self._cond = threading.Condition()
        self._pages: deque[ScannedPage] = deque()
        self._token: str | None = token
        self._inflight = False
        self._started = False
        self._finished = False  # the last page arrived
        self._stopped = False
        self._error: BaseException | None = None

    def start(self) -> None:
        with self._cond:
            if self._started or self._stopped:
                return
            self._started = True
            self._submit(self._token)

    def stop(self) -> None:
        """No further request; the pages buffered are dropped (one in flight finishes)."""
        with self._cond:
            self._stopped = True
            self._pages.clear()

    def unshift(self, page: ScannedPage) -> None:
        """Put back a page taken with :meth:`take` (it comes out next)."""
        with self._cond:
            self._pages.appendleft(page)

    def _submit(self, token: str | None) -> None:
        # called with the lock held
        try:
            fut = self._executor.submit(self._fetch, token)
        except BaseException as exc:  # an executor shut down (the client was closed)
            self._error = exc
            self._cond.notify_all()
            return
        self._inflight = True
        fut.add_done_callback(self._done)

    def _done(self, fut: Future[ScannedPage]) -> None:
        with self._cond:
            self._inflight = False
            if self._stopped:
                self._cond.notify_all()
                return
            try:
                page = fut.result()
            except BaseException as exc:
                self._error = exc
            else:
                self._pages.append(page)
                self._token = page.next_token
                if page.next_token is None:
                    self._finished = True
                elif len(self._pages) < self._depth:
                    self._submit(page.next_token)
            self._cond.notify_all()

    def take(self) -> ScannedPage | None:
        """The next page, waiting for it; ``None`` after the last one. Raises the error that
        ended the chain (after the pages fetched before it)."""
        self.start()
        with self._cond:
            while not self._pages and self._error is None and not self._finished:
                self._cond.wait()
            if self._pages:
                page = self._pages.popleft()
                if (
                    not self._finished
                    and not self._inflight
                    and self._error is None
                    and not self._stopped
                ):
                    self._submit(self._token)
                return page
            if self._error is not None:
                raise self._error
            return None


def _items(page: ScannedPage) -> list[Entry | str]:
    """A delimiter page's objects and common prefixes, merged in UTF-8 byte order."""
    merged: list[tuple[bytes, Entry | str]] = [
        (e[0].encode("utf-8", "surrogatepass"), e) for e in page.entries
    ]
    merged += [(p.encode("utf-8", "surrogatepass"), p) for p in page.common_prefixes]
    merged.sort(key=lambda item: item[0])
    return [item for _, item in merged]


def _utf8(key: str) -> bytes:
    return key.encode("utf-8", "surrogatepass")


def _one_level(prefix: str, common: str) -> bool:
    """Whether ``common`` is a common prefix a ``delimiter="/"`` listing of ``prefix`` can
    give: ``prefix``, then one segment without ``/``, then ``/``."""
    return (
        common.startswith(prefix) and common.endswith("/") and "/" not in common[len(prefix) : -1]
    )


def _chained(listing: _Listing) -> Iterator[Entry]:
    try:
        while (page := listing.take()) is not None:
            yield from page.entries
    finally:
        listing.stop()


def list_entries(
    client: S3Client,
    bucket: str,
    prefix: str = "",
    *,
    executor: Executor | None = None,
    page_size: int = 1000,
    etag: bool = True,
    depth: int = 2,
) -> Iterator[Entry]:
    """Yield every object under ``prefix`` as ``(key, size, last_modified, etag)`` tuples
    (size in bytes, LastModified in epoch seconds UTC, ETag without quotes or ``""`` with
    ``etag=False``), in the server's order, one ListObjectsV2 listing.

    With an ``executor`` the next ``depth`` pages are fetched while a page is consumed.
    Raises S3Error (``MalformedResponse`` for an unreadable page) or TransportError from
    the iterator when a page fails (after the retries of the client's policy).
    """
    fetch = _fetcher(client, bucket, prefix, None, page_size, etag)
    return _chained(_Listing(fetch, executor or _Inline(), depth))


def _split(
    top: _Listing,
    fetcher: Callable[[str], Fetch],
    executor: Executor,
    window: int,
    depth: int,
    page_size: int,
    *,
    head: _Listing | None = None,
    head_prefix: str | None = None,
    after: bytes | None = None,
    prefix: str = "",
) -> Iterator[Entry]:
    """The split listing's merge (module rules): ``head`` (the rest of ``head_prefix``'s
    folder, already started) first, then the top level's objects and each common prefix's
    listing (``head_prefix`` skipped), ``window`` listings running at once. ``after``: the
    last key already emitted; with it, every page's first key (and each top-level object)
    is checked to come after the key before it, else ListingOrderError."""
    pending: deque[Entry | tuple[str, _Listing]] = deque()
    if head is not None:
        assert head_prefix is not None
        pending.append((head_prefix, head))
    units = len(pending)  # listings in ``pending``
    last = after

    def order(key: str) -> None:
        nonlocal last
        kb = _utf8(key)
        if last is not None and kb <= last:
            raise ListingOrderError(
                f"split listing: key {key!r} does not come after "
                f"{last.decode('utf-8', 'surrogatepass')!r} (UTF-8 byte order)"
            )

    try:
        top_done = False
        while True:
            # Look ahead in the top level until ``window`` sub-listings are queued (or a
            # page's worth of top-level objects waits: a flat prefix streams, too).
            while not top_done and units < window and len(pending) - units < page_size:
                page = top.take()
                if page is None:
                    top_done = True
                    break
                for item in _items(page):
                    if isinstance(item, str):
                        if item == head_prefix:
                            continue  # listed by ``head`` from the key after ``after``
                        if after is not None and not _one_level(prefix, item):
                            raise ListingOrderError(
                                f"split listing of {prefix!r}: common prefix {item!r}"
                            )
                        sub = _Listing(fetcher(item), executor, depth)
                        pending.append((item, sub))
                        units += 1
                        if units <= window:
                            sub.start()
                    else:
                        pending.append(item)
            if not pending:
                return
            unit = pending.popleft()
            if isinstance(unit[1], _Listing):
                sub_prefix, listing = unit
            else:
                entry = unit
                if after is not None:
                    order(entry[0])
                    last = _utf8(entry[0])
                yield entry
                continue
            units -= 1
            # Keep ``window`` sub-listings running: start the next queued ones.
            started = 0
            for other in pending:
                if isinstance(other[1], _Listing):
                    other[1].start()
                    started += 1
                    if started >= window:
                        break
            try:
                while (page := listing.take()) is not None:
                    entries = page.entries
                    if not entries:
                        continue
                    if after is not None:
                        first, end = entries[0][0], entries[-1][0]
                        order(first)
                        if not (first.startswith(sub_prefix) and end.startswith(sub_prefix)):
                            raise ListingOrderError(
                                f"split listing: {sub_prefix!r} listed key "
                                f"{(first if not first.startswith(sub_prefix) else end)!r}"
                            )
                        last = _utf8(end)
                    yield from entries
            finally:
                listing.stop()
    finally:
        top.stop()
        for other in pending:
            if isinstance(other[1], _Listing):
                other[1].stop()


def list_entries_split(
    client: S3Client,
    bucket: str,
    prefix: str = "",
    *,
    executor: Executor,
    window: int = 8,
    page_size: int = 1000,
    etag: bool = True,
    depth: int = 2,
) -> Iterator[Entry]:
    """Yield every object under ``prefix`` like :func:`list_entries`, listing each
    top-level sub-prefix (split on ``delimiter="/"``) as its own listing, ``window`` of them
    concurrently on ``executor``, in key order (see the module rules for why the
    concatenation is the merge).

    Costs one extra request per sub-prefix, even for a prefix that fits one page (see
    :func:`list_entries_adaptive`, which splits only what does not). Raises ValueError for
    ``window < 1`` or ``depth < 1``; S3Error (``MalformedResponse`` for an unreadable
    page) or TransportError from the iterator when a page fails.
    """
    if window < 1 or depth < 1:
        raise ValueError(f"window and depth must be >= 1, got window={window}, depth={depth}")
    top = _Listing(_fetcher(client, bucket, prefix, "/", page_size, etag), executor, depth)
    return _split(
        top,
        lambda sub: _fetcher(client, bucket, sub, None, page_size, etag),
        executor,
        window,
        depth,
        page_size,
    )


def list_entries_adaptive(
    client: S3Client,
    bucket: str,
    prefix: str = "",
    *,
    executor: Executor,
    window: int = 8,
    page_size: int = 1000,
    etag: bool = True,
    depth: int = 2,
) -> Iterator[Entry]:
    """Yield every object under ``prefix`` exactly as a sequential listing does, listing
    concurrently only what does not fit one page (the module rules, "Adaptive split").

    The first page is one plain ListObjectsV2 request: a prefix that fits it costs that one
    request. A truncated first page (``IsTruncated``) ending at key ``L`` is followed by a
    ``delimiter="/"`` listing of ``prefix`` with ``start-after=L``, the rest of ``L``'s own
    top-level folder (``start-after=L``), and each other common prefix as its own listing,
    ``window`` of them at once on ``executor``, ``depth`` pages buffered each.
    ``window=1`` lists sequentially (continuation tokens, :data:`SEQUENTIAL_DEPTH` pages
    read ahead, or ``depth`` if larger).

    A server that ignores ``start-after`` (the first split pages hold a key not after
    ``L``, or a common prefix of more than one segment) is detected before anything of the
    split is yielded: the listing then goes on sequentially from the first page's
    continuation token, and the client remembers it. A key out of UTF-8 byte order (or a
    bad common prefix) met later raises :class:`ListingOrderError` (nothing before it was
    dropped or duplicated; list again with ``window=1``).

    Raises ValueError for ``window < 1`` or ``depth < 1``; S3Error (``MalformedResponse``
    for an unreadable page) or TransportError from the iterator when any page fails (after
    the client's retries); ListingOrderError as above. Spec: Amazon S3 API Reference,
    "ListObjectsV2" (``start-after``, ``delimiter``, ``continuation-token``).
    """
    if window < 1 or depth < 1:
        raise ValueError(f"window and depth must be >= 1, got window={window}, depth={depth}")
    return _adaptive(client, bucket, prefix, executor, window, page_size, etag, depth)


def _adaptive(
    client: S3Client,
    bucket: str,
    prefix: str,
    executor: Executor,
    window: int,
    page_size: int,
    etag: bool,
    depth: int,
) -> Iterator[Entry]:
    first = _fetcher(client, bucket, prefix, None, page_size, etag)(None)
    token = first.next_token
    entries = first.entries

    def sequential() -> _Listing:
        # The rest after the first page, by continuation token; its first page is fetched
        # at once, while the consumer reads the entries before it.
        assert token is not None
        fetch = _fetcher(client, bucket, prefix, None, page_size, etag)
        listing = _Listing(fetch, executor, max(depth, SEQUENTIAL_DEPTH), token)
        listing.start()
        return listing

    if token is None:
        yield from entries
        return
    last = entries[-1][0] if entries else ""
    keys = [_utf8(e[0]) for e in entries]
    if (
        window == 1
        or client.start_after_unreliable
        or not entries
        or not last.startswith(prefix)
        or any(a >= b for a, b in pairwise(keys))
    ):
        # Nothing to start after, or a page out of byte order: start-after would skip keys.
        rest = sequential()
        try:
            yield from entries
            yield from _chained(rest)
        finally:
            rest.stop()
        return
    rel = last[len(prefix) :]
    head_prefix = prefix + rel[: rel.index("/") + 1] if "/" in rel else None
    after = keys[-1]
    head: _Listing | None = None
    if head_prefix is not None:
        head = _Listing(
            _fetcher(client, bucket, head_prefix, None, page_size, etag, last), executor, depth
        )
        head.start()
    top = _Listing(_fetcher(client, bucket, prefix, "/", page_size, etag, last), executor, depth)
    top.start()
    split: Iterator[Entry] | None = None
    try:
        yield from entries
        # Before anything of the split is yielded: did the server honour start-after?
        honoured = True
        head_page = head.take() if head is not None else None
        if head_page is not None:
            head.unshift(head_page)  # type: ignore[union-attr]
            if head_page.entries and _utf8(head_page.entries[0][0]) <= after:
                honoured = False
        top_page = top.take()
        if top_page is not None:
            top.unshift(top_page)
            # Some servers roll keys up at the wrong "/" when start-after is given.
            if not all(_one_level(prefix, cp) for cp in top_page.common_prefixes):
                honoured = False
            for item in _items(top_page):
                name = item if isinstance(item, str) else item[0]
                if name != head_prefix:
                    honoured = _utf8(name) > after and honoured
                    break
        if not honoured:
            logger.info(
                "s3://%s/%s: the server ignores start-after (or rolls up common prefixes "
                "wrongly with it); listing sequentially",
                bucket,
                prefix,
            )
            client.start_after_unreliable = True
            top.stop()
            if head is not None:
                head.stop()
            yield from _chained(sequential())
            return
        split = _split(
            top,
            lambda sub: _fetcher(client, bucket, sub, None, page_size, etag),
            executor,
            window,
            depth,
            page_size,
            head=head,
            head_prefix=head_prefix,
            after=after,
            prefix=prefix,
        )
        yield from split
    finally:
        if split is not None:
            split.close()  # type: ignore[attr-defined]
        top.stop()
        if head is not None:
            head.stop()
