"""Manifests on S3: read, append by compare-and-swap, compact, delete.

A manifest is a JSON Lines object (the *root*) whose entries are files, tar shards and
references to other manifests (*parts*); see :mod:`pos3lite.datasets.format`. Rules:

* The root is only ever replaced with ``If-Match`` on the ETag that was read (created with
  ``If-None-Match: *``); a 412 means another writer won, so the root is read again and the
  new entries appended to what is there now. No append is lost, none is applied twice.
* A root line that does not parse raises :class:`~pos3lite.errors.InvalidManifestError` and
  nothing is written: an append never "repairs" a manifest by dropping what it cannot read.
* Rewrites copy existing lines byte for byte, so unknown kinds and fields survive.
* Reads stream: the root and parts are parsed while they download; references are followed
  depth first and a reference cycle raises InvalidManifestError.
* One member of an indexed tar shard is one ranged GET; gzip shards and shards without an
  index are read sequentially (one member's bytes in memory at a time).

Spec: "Conditional requests" and "How to prevent object overwrites with conditional writes"
in the Amazon S3 User Guide; RFC 9110 section 13.1 (If-Match, If-None-Match).
"""

from __future__ import annotations

import io
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, BinaryIO

import pos3lite.datasets.format as fmt

from ..errors import (
    InvalidManifestError,
    InvalidURLError,
    NotFoundError,
    PreconditionFailedError,
    S3Error,
)
from ..urls import parse_s3_url
from ._store import ObjectStore, default_store
from .tarshard import iter_members

if TYPE_CHECKING:
    from ..profiles import Profile
    from .writer import ManifestWriter

__all__ = ["CompactReport", "DatasetItem", "DeleteReport", "Manifest"]

logger = logging.getLogger(__name__)

_CHUNK = 256 * 1024
JSONL = "application/x-ndjson"


@dataclass(frozen=True, slots=True)
class DatasetItem:
    """One file of a dataset: a loose object, or a member of a tar shard.

    Attributes:
        key: the object key, or ``"<archive_key>#<member>"`` for a shard member.
        id: the entry's id, or ``None``.
        meta: the entry's metadata dict, or ``None``.
        size: the size in bytes, or ``None`` when the manifest does not say.
        archive_key, member: for shard members, the archive's key and the member path.

    :meth:`open` returns a readable binary file with the item's bytes.
    """

    key: str
    id: str | None
    meta: Mapping[str, Any] | None
    size: int | None
    archive_key: str | None = None
    member: str | None = None
    _opener: Callable[[], BinaryIO] = field(default=lambda: io.BytesIO(), repr=False)

    def open(self) -> BinaryIO:
        """The item's bytes as a readable binary file (close it when done).

        A loose object streams (GetObject); an indexed shard member is one ranged GET
        pinned to the shard's ETag (streamed); a member of a sequentially read shard is
        already in memory. Raises NotFoundError, PreconditionFailedError (the shard
        changed), S3Error.
        """
        return self._opener()

    def read(self) -> bytes:
        """All the item's bytes (see :meth:`open`)."""
        with self.open() as f:
            return f.read()


@dataclass(frozen=True, slots=True)
class CompactReport:
    """What :meth:`Manifest.compact` wrote: ``entries`` lines, ``refs_resolved`` manifests
    inlined, ``shards_expanded`` shards replaced by their members, the new ``etag``."""

    entries: int
    refs_resolved: int
    shards_expanded: int
    etag: str


@dataclass(frozen=True, slots=True)
class DeleteReport:
    """What :meth:`Manifest.delete` removed: ``deleted`` URLs (the root last, if it was
    deleted), and ``errors`` mapping each URL that was not to its exception."""

    deleted: list[str]
    errors: dict[str, BaseException]


class Manifest:
    """A manifest whose root is the object at ``url`` (``s3://[profile@]bucket/key``).

    Args:
        url: the root manifest object (it need not exist yet).
        profile: profile name or :class:`~pos3lite.Profile` for the default client.
        client: an object store to use instead (a :class:`pos3lite.objects.Client`).
        max_attempts: compare-and-swap attempts per append before giving up.

    Raises:
        InvalidURLError: the URL names no object key.
    """

    def __init__(
        self,
        url: str,
        *,
        profile: str | Profile | None = None,
        client: ObjectStore | None = None,
        max_attempts: int = 100,
    ) -> None:
        parsed = parse_s3_url(url)
        if not parsed.key or parsed.key.endswith("/"):
            raise InvalidURLError(f"a manifest URL names an object key, got {url!r}")
        self.url = url
        self.bucket = parsed.bucket
        self.key = parsed.key
        self._who = f"{parsed.profile}@" if parsed.profile else ""
        self._client = client if client is not None else default_store(profile)
        self.max_attempts = max_attempts
        slash = self.key.rfind("/")
        #: The folder of the root (``"ds/"`` for ``ds/manifest.jsonl``), ending in ``/``.
        self.folder = self.key[: slash + 1]
        stem = self.key[slash + 1 :]
        stem = stem[: -len(".jsonl")] if stem.endswith(".jsonl") else stem
        #: The WIDS shard list written beside the root.
        self.wids_key = f"{self.folder}{stem}.wids.json"

    def __repr__(self) -> str:
        return f"Manifest({self.url!r})"

    @property
    def client(self) -> ObjectStore:
        """The object store used for every request."""
        return self._client

    def url_for(self, key: str) -> str:
        """The URL of ``key`` in the manifest's bucket (with its profile selector)."""
        return f"s3://{self._who}{self.bucket}/{key}"

    # ---------------------------------------------------------------- reading

    def entries(self, *, resolve_refs: bool = True) -> Iterator[dict[str, Any]]:
        """Yield the manifest's entries in order, parsed while they stream.

        With ``resolve_refs`` a ``manifest_ref`` is replaced by the entries of the manifest
        it names (depth first); without, it is yielded as is. Unknown kinds are yielded.

        Raises:
            NotFoundError: the root (or a referenced part) does not exist.
            InvalidManifestError: a bad line (key and line number named) or a cycle.
        """
        yield from self._walk(self.key, (), resolve_refs)

    def _walk(self, key: str, stack: tuple[str, ...], resolve: bool) -> Iterator[dict[str, Any]]:
        if key in stack:
            chain = " -> ".join((*stack, key))
            raise InvalidManifestError(f"manifest reference cycle: {chain}")
        for _raw, entry in self._stream(key):
            if resolve and entry["kind"] == "manifest_ref":
                yield from self._walk(entry["key"], (*stack, key), True)
            else:
                yield entry

    def _stream(self, key: str, etag: str | None = None) -> Iterator[tuple[bytes, dict[str, Any]]]:
        with self._client.get(self.url_for(key), if_match=etag) as reader:
            yield from fmt.parse_lines(reader.iter_chunks(_CHUNK), key=key)

    def files(self, *, expand_shards: bool = True) -> Iterator[DatasetItem]:
        """Yield every file of the dataset as a :class:`DatasetItem`.

        Loose ``file`` entries become items read by GetObject. With ``expand_shards``,
        each tar shard yields its members: from the sidecar index when the shard has one
        (one ranged GET per member, on demand), else by reading the archive sequentially
        (members of s3exchange shards get their id and meta from its internal manifest,
        which is not yielded). Without, each shard is one item (the archive object).
        Unknown kinds are skipped.

        Raises:
            NotFoundError, InvalidManifestError, tarfile.TarError (a corrupt archive).
        """
        for entry in self.entries():
            kind = entry["kind"]
            if kind == "file":
                yield self._file_item(entry)
            elif kind == "shard":
                if expand_shards:
                    yield from self.shard_items(entry)
                else:
                    archive = entry["archive_key"]
                    yield DatasetItem(
                        archive,
                        None,
                        entry.get("meta"),
                        entry.get("size_bytes"),
                        _opener=self._get_opener(archive, None),
                    )
            else:
                logger.debug("skipping manifest entry of kind %r", kind)

    def _get_opener(
        self, key: str, span: tuple[int, int] | None, etag: str | None = None
    ) -> Callable[[], BinaryIO]:
        url = self.url_for(key)
        client = self._client

        def opener() -> BinaryIO:
            if span is None:
                reader = client.get(url, if_match=etag)
                buffered: BinaryIO = io.BufferedReader(reader, _CHUNK)
                return buffered
            start, size = span
            if size == 0:
                return io.BytesIO()
            # One ranged GET, streamed: memory is the read buffer, not the member size.
            ranged = client.get(url, range=(start, start + size), if_match=etag)
            return io.BufferedReader(ranged, _CHUNK)

        return opener

    def _file_item(self, entry: Mapping[str, Any]) -> DatasetItem:
        key = entry["key"]
        archive, member, offset = (
            entry.get("archive_key"),
            entry.get("member_path"),
            entry.get("offset"),
        )
        size = entry.get("size_bytes")
        if isinstance(archive, str) and isinstance(offset, int) and isinstance(size, int):
            # A shard member listed on its own (compact(expand_shards=True)).
            return DatasetItem(
                key,
                entry.get("id"),
                entry.get("meta"),
                size,
                archive,
                member if isinstance(member, str) else None,
                self._get_opener(archive, (offset, size), entry.get("archive_etag")),
            )
        return DatasetItem(
            key, entry.get("id"), entry.get("meta"), size, _opener=self._get_opener(key, None)
        )

    def shard_index(self, entry: Mapping[str, Any]) -> fmt.ShardIndex:
        """The sidecar index of a shard entry (one GET).

        Raises:
            InvalidManifestError: the entry has no ``index_key``, or the index is bad or
                names another archive.
        """
        index_key = entry.get("index_key")
        if not isinstance(index_key, str):
            raise InvalidManifestError(f"shard {entry.get('archive_key')!r} has no index_key")
        index = fmt.parse_index(self._client.get_bytes(self.url_for(index_key)), key=index_key)
        if index.archive_key and index.archive_key != entry["archive_key"]:
            raise InvalidManifestError(
                f"shard index {index_key!r} describes {index.archive_key!r}, "
                f"not {entry['archive_key']!r}"
            )
        return index

    def shard_items(self, entry: Mapping[str, Any]) -> Iterator[DatasetItem]:
        """The members of one ``shard`` entry as items: from its index when it has one
        (each member one ranged GET on demand), else read sequentially."""
        archive = entry["archive_key"]
        etag = entry.get("etag") or None
        if entry.get("compression") is None and isinstance(entry.get("index_key"), str):
            for m in self.shard_index(entry).members:
                yield DatasetItem(
                    f"{archive}#{m.name}",
                    m.id,
                    m.meta,
                    m.size,
                    archive,
                    m.name,
                    self._get_opener(archive, (m.offset, m.size), etag),
                )
            return
        yield from self._sequential_items(entry, etag)

    def _sequential_items(
        self, entry: Mapping[str, Any], etag: str | None
    ) -> Iterator[DatasetItem]:
        archive = entry["archive_key"]
        internal = entry.get("internal_manifest_path")
        described: dict[str, Mapping[str, Any]] = {}
        with self._client.get(self.url_for(archive), if_match=etag) as reader:
            stream: IO[bytes] = io.BufferedReader(reader, _CHUNK)
            for name, data in iter_members(stream, compression=entry.get("compression")):
                if isinstance(internal, str) and name == internal:
                    # s3exchange's in-archive manifest: ids and meta of the members.
                    for _raw, e in fmt.parse_lines([data], key=f"{archive}#{name}"):
                        path = e.get("member_path")
                        if isinstance(path, str):
                            described[path] = e
                    continue
                info = described.get(name, {})
                yield DatasetItem(
                    f"{archive}#{name}",
                    info.get("id"),
                    info.get("meta"),
                    len(data),
                    archive,
                    name,
                    _opener=lambda data=data: io.BytesIO(data),  # type: ignore[misc]
                )

    # ---------------------------------------------------------------- writing

    def _read_root(self) -> tuple[bytes, str] | None:
        """The root's bytes and ETag, validated line by line; ``None`` if it is missing."""
        try:
            with self._client.get(self.url) as reader:
                etag = reader.info.etag
                body = reader.read()
        except NotFoundError:
            return None
        for _ in fmt.parse_lines([body], key=self.key):
            pass
        return body, etag

    def append(self, entries: Iterable[Mapping[str, Any]]) -> str:
        """Append ``entries`` to the root as one compare-and-swap; return the new ETag.

        The root is read and validated, the new lines are added after its existing bytes,
        and the result is written with ``If-Match`` on the ETag read (``If-None-Match: *``
        when there is no root yet). On 412 another writer got there first: read again and
        retry, after a random back-off (up to ``max_attempts`` times).

        Raises:
            InvalidManifestError: an entry is invalid, or a root line does not parse
                (nothing is written).
            PreconditionFailedError: still losing the race after ``max_attempts``.
            S3Error, TransportError.
        """
        lines = b"".join(fmt.serialise(e) for e in entries)
        if not lines:
            found = self._read_root()
            return found[1] if found else ""
        delay = 0.02
        for _attempt in range(self.max_attempts):
            found = self._read_root()
            try:
                if found is None:
                    result = self._client.put(
                        self.url, lines, if_none_match="*", content_type=JSONL
                    )
                else:
                    body, etag = found
                    glue = b"" if not body or body.endswith(b"\n") else b"\n"
                    result = self._client.put(
                        self.url, body + glue + lines, if_match=etag, content_type=JSONL
                    )
                return result.etag
            except (PreconditionFailedError, NotFoundError) as exc:
                # 412: the root changed since we read it (AlreadyExistsError: it appeared);
                # 404 under If-Match: it was deleted. Either way read it again.
                logger.debug("manifest %s changed under us (%s); retrying", self.url, exc)
                time.sleep(random.uniform(0, delay))
                delay = min(delay * 2, 1.0)
        raise PreconditionFailedError(
            "PreconditionFailed",
            f"gave up appending to the manifest after {self.max_attempts} conflicting attempts",
            status=412,
            bucket=self.bucket,
            key=self.key,
        )

    def writer(
        self,
        *,
        shard_max_entries: int = 10_000,
        shard_max_bytes: int = 1 << 30,
        part_max_entries: int = 50_000,
        compression: str | None = None,
    ) -> ManifestWriter:
        """A :class:`~pos3lite.datasets.ManifestWriter` adding files and shards to this
        manifest; the root is updated once, when the writer closes without an error."""
        from .writer import ManifestWriter

        return ManifestWriter(
            self,
            shard_max_entries=shard_max_entries,
            shard_max_bytes=shard_max_bytes,
            part_max_entries=part_max_entries,
            compression=compression,
        )

    def compact(self, dst_url: str, *, expand_shards: bool = False) -> CompactReport:
        """Write every entry of this manifest, references resolved, as one manifest at
        ``dst_url``; return a :class:`CompactReport`.

        The root is pinned: it is read with ``If-Match`` on the ETag seen first, so a
        concurrent append makes the compaction fail instead of dropping the new entries.
        ``dst_url`` equal to the root replaces it with ``If-Match`` (the parts it referred
        to stay, unreferenced, for readers still using them); any other destination is
        created with ``If-None-Match: *``. With ``expand_shards`` each indexed, plain tar
        shard becomes one ``file`` entry per member, carrying ``archive_key``,
        ``member_path`` and ``offset`` so a member stays one ranged GET.

        Raises:
            AlreadyExistsError: ``dst_url`` exists (and is not the root).
            PreconditionFailedError: the root changed meanwhile.
            NotFoundError, InvalidManifestError, S3Error.
        """
        root_etag = self._client.head(self.url).etag
        counts = {"entries": 0, "refs": 0, "shards": 0}

        def walk(key: str, stack: tuple[str, ...]) -> Iterator[bytes]:
            if key in stack:
                raise InvalidManifestError(
                    f"manifest reference cycle: {' -> '.join((*stack, key))}"
                )
            pin = root_etag if key == self.key else None
            for raw, entry in self._stream(key, pin):
                kind = entry["kind"]
                if kind == "manifest_ref":
                    counts["refs"] += 1
                    yield from walk(entry["key"], (*stack, key))
                elif (
                    kind == "shard"
                    and expand_shards
                    and entry.get("compression") is None
                    and isinstance(entry.get("index_key"), str)
                ):
                    counts["shards"] += 1
                    archive = entry["archive_key"]
                    for m in self.shard_index(entry).members:
                        counts["entries"] += 1
                        item = fmt.file_entry(
                            f"{archive}#{m.name}", id=m.id, meta=m.meta, size_bytes=m.size
                        )
                        item.update(archive_key=archive, member_path=m.name, offset=m.offset)
                        if entry.get("etag"):
                            item["archive_etag"] = entry["etag"]
                        yield fmt.serialise(item)
                else:
                    counts["entries"] += 1
                    yield raw + b"\n"

        same = parse_s3_url(dst_url) == parse_s3_url(self.url)
        body = walk(self.key, ())
        if same:
            result = self._client.put(
                dst_url, _chunked(body), if_match=root_etag, content_type=JSONL
            )
        else:
            result = self._client.put(
                dst_url, _chunked(body), if_none_match="*", content_type=JSONL
            )
        return CompactReport(counts["entries"], counts["refs"], counts["shards"], result.etag)

    def delete(self, *, include_manifests: bool = True) -> DeleteReport:
        """Delete the dataset: every object, shard and shard index it lists, then (with
        ``include_manifests``) its part manifests, its WIDS shard list and, last, the root
        with ``If-Match`` on the ETag read at the start. Returns a :class:`DeleteReport`.

        Deletes go in DeleteObjects batches of 1000; per-key failures are reported, not
        raised. If anything failed, or the root changed meanwhile (a concurrent append),
        the root is kept, so what is left stays findable; run delete again.

        Raises:
            NotFoundError: there is no root.
            InvalidManifestError: a line does not parse (nothing is deleted).
        """
        root_etag = self._client.head(self.url).etag
        data: list[str] = []
        parts: list[str] = []
        seen: set[str] = set()

        def add(out: list[str], key: str) -> None:
            if key not in seen:
                seen.add(key)
                out.append(self.url_for(key))

        # Parse everything first: a bad line anywhere must delete nothing.
        def walk(key: str, stack: tuple[str, ...]) -> None:
            if key in stack:
                raise InvalidManifestError(
                    f"manifest reference cycle: {' -> '.join((*stack, key))}"
                )
            for _raw, entry in self._stream(key, root_etag if key == self.key else None):
                kind = entry["kind"]
                if kind == "manifest_ref":
                    walk(entry["key"], (*stack, key))
                    add(parts, entry["key"])
                elif kind == "file" and "#" not in entry["key"]:
                    add(data, entry["key"])
                elif kind == "file" and isinstance(entry.get("archive_key"), str):
                    add(data, entry["archive_key"])
                elif kind == "shard":
                    add(data, entry["archive_key"])
                    if isinstance(entry.get("index_key"), str):
                        add(data, entry["index_key"])

        walk(self.key, ())
        deleted: list[str] = []
        errors: dict[str, BaseException] = {}
        targets = data + ([*parts, self.url_for(self.wids_key)] if include_manifests else [])
        for start in range(0, len(targets), 1000):
            report = self._client.delete_many(targets[start : start + 1000])
            deleted += report.deleted
            errors.update(report.errors)
        if include_manifests and not errors:
            try:
                self._client.delete(self.url, if_match=root_etag)
                deleted.append(self.url)
            except S3Error as exc:
                errors[self.url] = exc
        return DeleteReport(deleted, errors)


def _chunked(lines: Iterator[bytes], size: int = 1 << 20) -> Iterator[bytes]:
    """Group small lines into chunks of about ``size`` bytes for a streamed upload."""
    buf = bytearray()
    for line in lines:
        buf += line
        if len(buf) >= size:
            yield bytes(buf)
            buf.clear()
    if buf:
        yield bytes(buf)
