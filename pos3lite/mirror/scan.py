"""Scans: the remote listing and the local walk, as sorted Entry streams for the engine.

Rules: S3 lists in UTF-8 byte order and compatible stores may not, so remote entries are
sorted by :func:`~pos3lite.engine.diff.sort_key`; a key that would escape the destination is
refused here (logged, collected in ``RemoteScan.unsafe``) and never reaches the engine; the
local side is :func:`pos3lite.localfs.walk`, whose skipped keys become :func:`anchored`
exclude patterns so they are never deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..engine import diff as engine_diff
from ..engine.filters import Filter
from ..engine.model import Entry
from ..errors import AccessDeniedError, NotFoundError, Pos3liteError, UnsafeKeyError
from ..s3.listing import ListingOrderError, list_entries_adaptive
from ..urls import S3URL, check_relative_key
from .spill import sorted_entries

if TYPE_CHECKING:
    from ..s3.client import S3Client

__all__ = ["LIST_PAGE_SIZE", "RemoteScan", "UnsortedListing", "anchored", "scan_remote"]

logger = logging.getLogger("pos3lite")

#: ListObjectsV2 ``max-keys`` of the mirror's listings (S3's maximum; tests lower it).
LIST_PAGE_SIZE = 1000


@dataclass
class RemoteScan:
    """A complete remote listing: either one exact object or the entries under a prefix."""

    key_prefix: str
    obj: Entry | None = None
    entries: list[Entry] = field(default_factory=list)
    # Refused keys (UnsafeKeyError) and keys colliding under case folding or Unicode
    # normalisation (KeyConflictError): each fails only itself.
    unsafe: list[Pos3liteError] = field(default_factory=list)
    found: bool = False
    # scan_remote(stream=True): the entries as a one-pass iterator in the server's order
    # (``entries`` stays empty); it raises UnsortedListing where that order is not UTF-8
    # byte order, before the offending entry is yielded.
    stream: Iterator[Entry] | None = None

    def close(self) -> None:
        """Close the stream early (an external sort's spilled runs are removed)."""
        close = getattr(self.stream, "close", None)
        if close is not None:
            close()


class UnsortedListing(Exception):
    """A streamed listing was not in UTF-8 byte order (some S3-compatible stores); the
    caller plans again from a sorted, complete listing."""


def anchored(key: str) -> str:
    """An exclude pattern matching exactly ``key`` (glob metacharacters escaped)."""
    out = []
    for ch in key.rstrip("/"):
        out.append(f"[{ch}]" if ch in "*?[" else ch)
    return "/" + "".join(out)


def scan_remote(
    client: S3Client,
    url: S3URL,
    exclude: Sequence[str] = (),
    *,
    stream: bool = False,
    spill_root: Path | None = None,
    list_concurrency: int = 1,
) -> RemoteScan:
    """List what is at ``url``: one exact object (HEAD, for a key not ending in ``/``) or the
    entries under the prefix, sorted by the engine's sort key, unsafe keys refused and
    collected (they make the listing incomplete for deletes) unless ``exclude`` matches them.

    With ``stream=True`` only the first page is read here (``found`` is known); the entries
    come from ``RemoteScan.stream`` as the pages arrive, nothing is kept, ``unsafe`` fills
    as the stream is read, and :class:`UnsortedListing` is raised from the stream at the
    first key out of UTF-8 byte order. With ``stream=True`` and ``spill_root`` (a store known
    to list out of order) the stream is the listing sorted by
    :func:`~pos3lite.mirror.spill.sorted_entries` instead (runs beyond its bound spilled
    under ``spill_root``'s metadata folder): the first page read here is then the whole
    listing, and closing the stream removes the runs.

    ``list_concurrency > 1``: a prefix longer than one listing page is listed by
    :func:`~pos3lite.s3.listing.list_entries_adaptive` (split on ``/``, that many listings at
    once); a prefix that fits one page costs its one request either way. Its
    ListingOrderError (a server out of byte order) becomes :class:`UnsortedListing` on the
    checked stream; a whole listing is read again sequentially. Sorted streams
    (``spill_root``) always list sequentially.

    A HEAD denied by a prefix-scoped policy (403 on the bare prefix) lists ``key/`` instead;
    the HEAD's error is raised only if that listing finds nothing."""
    key = url.key
    denied: AccessDeniedError | None = None
    if key and not key.endswith("/"):
        try:
            info = client.head_object(url.bucket, key)
        except NotFoundError:
            pass
        except AccessDeniedError as exc:
            # A listing error (SignatureDoesNotMatch for a wrong secret) is raised with its
            # own code; an empty listing re-raises this one.
            denied = exc
        else:
            name = key.rsplit("/", 1)[-1]
            obj = Entry(name, info.size, info.last_modified, info.etag)
            return RemoteScan(key_prefix=key, obj=obj, found=True)
        key += "/"
    scan = RemoteScan(key_prefix=key)
    checked = stream and spill_root is None
    window = list_concurrency if checked or not stream else 1
    items = _entries(client, url, key, exclude, scan, checked=checked, window=window)
    if stream:
        if spill_root is not None:
            items = sorted_entries(items, spill_root)
        try:
            first = next(items, None)
            if denied is not None and not scan.found:
                raise denied
        except BaseException:
            items.close()
            raise
        scan.stream = _chain(first, items) if first is not None else iter(())
        return scan
    try:
        scan.entries = list(items)
    except ListingOrderError as exc:
        # A server out of byte order under a split listing: list it again, sequentially.
        logger.debug("s3://%s/%s: %s; listing again sequentially", url.bucket, key, exc)
        scan = RemoteScan(key_prefix=key)
        scan.entries = list(_entries(client, url, key, exclude, scan, window=1))
    if denied is not None and not scan.found:
        raise denied
    # S3 lists in UTF-8 byte order; compatible stores may not. The engine needs it.
    scan.entries.sort(key=lambda e: engine_diff.sort_key(e.key))
    return scan


def _chain(first: Entry, rest: Generator[Entry, None, None]) -> Iterator[Entry]:
    """``first`` then ``rest``; closing it closes ``rest`` (an external sort's runs go)."""
    try:
        yield first
        yield from rest
    finally:
        rest.close()


def _entries(
    client: S3Client,
    url: S3URL,
    key: str,
    exclude: Sequence[str],
    scan: RemoteScan,
    *,
    checked: bool = False,
    window: int = 1,
) -> Generator[Entry, None, None]:
    """The safe entries under ``key`` in the server's order (``scan.found`` set at the first
    listed item, refused keys logged and put in ``scan.unsafe``); ``checked``: raise
    UnsortedListing at the first key not after the one before (UTF-8 byte order), also for
    a split listing's ListingOrderError; ``window``: see ``scan_remote``'s
    ``list_concurrency``."""
    listed = list_entries_adaptive(
        client,
        url.bucket,
        key,
        executor=client.list_executor(),
        window=window,
        page_size=LIST_PAGE_SIZE,
    )
    try:
        yield from _checked(listed, key, url, exclude, scan, checked)
    except ListingOrderError as exc:
        if not checked:
            raise
        raise UnsortedListing(str(exc)) from exc


def _checked(
    listed: Iterator[tuple[str, int, float, str]],
    key: str,
    url: S3URL,
    exclude: Sequence[str],
    scan: RemoteScan,
    checked: bool,
) -> Generator[Entry, None, None]:
    skip = Filter(list(exclude))
    prev = b""
    for item_key, item_size, item_mtime, item_etag in listed:
        scan.found = True
        rel = item_key[len(key) :]
        if not rel:
            continue  # the prefix's own directory marker
        try:
            check_relative_key(rel[:-1] if rel.endswith("/") else rel)
        except UnsafeKeyError as exc:
            if skip and skip.excluded(rel):
                continue  # excluded: never read, never written, never deleted
            logger.error("refusing key %r under %s: %s", item_key, url.normalized(), exc)
            scan.unsafe.append(UnsafeKeyError(item_key, exc.reason))
            continue
        if checked:
            kb = item_key.encode("utf-8", "surrogatepass")
            if kb <= prev:
                raise UnsortedListing(f"{prev!r} then {kb!r}")
            prev = kb
        size = 0 if rel.endswith("/") else item_size
        yield Entry(rel, size, item_mtime, item_etag)
