"""ManifestWriter: add loose files and tar shards to a manifest, publish once at the end.

Rules (Delta Lake's commit protocol on S3 conditional writes, DESIGN example 16):

* Every object a writer creates has a name unique to this writer run (``writer_id`` = UTC
  time + 96 random bits) and is created with ``If-None-Match: *``: a collision fails
  loudly (AlreadyExistsError) instead of overwriting another run's shard.
* Shards stream through ``open(url, "xb")`` (a multipart upload): memory is bounded by the
  part size times the upload concurrency, whatever the shard size. Member offsets are
  recorded while writing and stored in ``<shard>.idx.json`` for plain tar shards.
* Entries go to part manifests (``parts/<writer_id>-NNNNNN.jsonl``, at most
  ``part_max_entries`` lines each). On a clean close the root gets one ``manifest_ref`` per
  part in a single compare-and-swap (:meth:`Manifest.append`), then the WIDS shard list
  beside the root is rewritten from the root as it then is.
* On an exception (in the ``with`` body, or while publishing) nothing is published: the
  open upload is aborted and every object this writer created is deleted.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import IO, Any, Protocol

import pos3lite.datasets.format as fmt

from ..errors import UnsafeKeyError
from ._store import ObjectStore, abort_writer, writer_etag
from .tarshard import Source, TarShardWriter, source_size


class Manifest(Protocol):
    """What a writer needs of :class:`pos3lite.datasets.Manifest` (a structural type, so
    ``manifest`` -> ``writer`` is the only import between the two modules)."""

    url: str
    folder: str
    wids_key: str

    @property
    def client(self) -> ObjectStore: ...

    def url_for(self, key: str) -> str: ...

    def entries(self, *, resolve_refs: bool = True) -> Iterator[dict[str, Any]]: ...

    def append(self, entries: Iterable[Mapping[str, Any]]) -> str: ...


__all__ = ["ManifestWriter", "new_writer_id"]

logger = logging.getLogger(__name__)


def new_writer_id() -> str:
    """A name prefix unique to one writer run: ``YYYYmmddTHHMMSSZ-<24 hex digits>``."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:24]


class ManifestWriter:
    """Add files and shard members to ``manifest``; use as a context manager.

    Build it with :meth:`Manifest.writer`. Args (all sizes in bytes):
        shard_max_entries: members per shard before a new shard starts.
        shard_max_bytes: uncompressed tar bytes per shard before a new one starts.
        part_max_entries: entries per part manifest.
        compression: ``None`` (plain tar, indexed: one ranged GET per member) or ``"gzip"``
            (read sequentially).

    A new shard starts only between samples, so a WebDataset sample never spans shards.
    Attributes: ``writer_id``; ``shard_urls`` and ``part_urls`` created so far;
    ``shard_pattern``, the brace pattern naming this run's shards (after close).
    """

    def __init__(
        self,
        manifest: Manifest,
        *,
        shard_max_entries: int = 10_000,
        shard_max_bytes: int = 1 << 30,
        part_max_entries: int = 50_000,
        compression: str | None = None,
    ) -> None:
        for name, value in (
            ("shard_max_entries", shard_max_entries),
            ("shard_max_bytes", shard_max_bytes),
            ("part_max_entries", part_max_entries),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if compression not in (None, "gzip"):
            raise ValueError(f"compression must be None or 'gzip', got {compression!r}")
        self.manifest = manifest
        self.shard_max_entries = shard_max_entries
        self.shard_max_bytes = shard_max_bytes
        self.part_max_entries = part_max_entries
        self.compression = compression
        self.writer_id = new_writer_id()
        self._client = manifest.client
        self._created: list[str] = []  # URLs this run created (deleted on failure)
        self._lines: list[bytes] = []  # entries not yet in a part manifest
        self.part_urls: list[str] = []
        self._part_keys: list[str] = []
        self.shard_urls: list[str] = []
        self._shard_seq = 0
        self._stream: IO[bytes] | None = None
        self._tar: TarShardWriter | None = None
        self._shard_key = ""
        self._samples = 0
        self._last_sample: str | None = None
        self._state = "open"

    def __repr__(self) -> str:
        return f"ManifestWriter({self.manifest.url!r}, writer_id={self.writer_id!r})"

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _require_open(self) -> None:
        if self._state != "open":
            raise ValueError(f"the manifest writer is {self._state}")

    @property
    def shard_pattern(self) -> str | None:
        """``s3://.../shards/<writer_id>-{000000..00000N}.tar`` for this run, or ``None``."""
        if not self._shard_seq:
            return None
        ext = ".tar.gz" if self.compression == "gzip" else ".tar"
        prefix = self.manifest.url_for(f"{self.manifest.folder}shards/{self.writer_id}-")
        return fmt.brace_range(prefix, 0, self._shard_seq - 1, ext)

    # ---------------------------------------------------------------- adding

    def add_file(
        self,
        src: Source,
        key: str,
        *,
        id: str | None = None,
        meta: Mapping[str, Any] | None = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        """Upload ``src`` (bytes, a path or a binary file) as the loose object ``key``
        (relative to the manifest's folder) with ``If-None-Match: *``; return its entry.

        Raises:
            AlreadyExistsError: ``key`` already exists (nothing is overwritten).
            UnsafeKeyError: an empty key, a leading ``/``, or an empty, ``.`` or ``..``
                segment. S3Error, OSError.
        """
        self._require_open()
        if not key or key.startswith("/") or any(s in ("", ".", "..") for s in key.split("/")):
            raise UnsafeKeyError(key, "not a plain key relative to the manifest's folder")
        full = self.manifest.folder + key
        url = self.manifest.url_for(full)
        size = source_size(src) if not hasattr(src, "read") else None
        data: Any = src
        if isinstance(src, str | os.PathLike):
            data = os.fspath(src)
        result = self._client.put(url, data, if_none_match="*", content_type=content_type)
        self._created.append(url)
        if size is None:
            size = self._client.head(url).size
        entry = fmt.file_entry(full, id=id, meta=meta, size_bytes=size, etag=result.etag)
        self._add_line(fmt.serialise(entry))
        return entry

    def add_to_shard(
        self,
        member_path: str,
        src: Source,
        *,
        id: str | None = None,
        meta: Mapping[str, Any] | None = None,
        size: int | None = None,
    ) -> fmt.IndexMember:
        """Stream ``src`` into the current shard as the member ``member_path``
        (``{sample}.{ext}``); return its index record (offset, size).

        Args:
            size: the byte size, needed only for a non-seekable stream.

        Raises:
            ValueError: a name that is not ``{sample}.{ext}``, a duplicate, or a sample whose
                files are not added one after another.
            AlreadyExistsError: the shard name exists (another run with the same id).
            S3Error, TransportError, OSError.
        """
        self._require_open()
        sample, _ = fmt.split_sample(member_path)
        tar = self._tar
        if (
            tar is not None
            and sample != tar.last_sample
            and (tar.count >= self.shard_max_entries or tar.tar_bytes >= self.shard_max_bytes)
        ):
            self._finish_shard()
            tar = None
        if tar is None:
            tar = self._start_shard()
        else:
            tar.check(member_path)
        record = tar.add(member_path, src, size=size, id=id, meta=meta)
        if sample != self._last_sample:
            self._samples += 1
        self._last_sample = sample
        return record

    def _start_shard(self) -> TarShardWriter:
        ext = ".tar.gz" if self.compression == "gzip" else ".tar"
        self._shard_key = (
            f"{self.manifest.folder}shards/{self.writer_id}-{self._shard_seq:06d}{ext}"
        )
        self._shard_seq += 1
        url = self.manifest.url_for(self._shard_key)
        content_type = "application/gzip" if self.compression else "application/x-tar"
        self._stream = self._client.open(url, "xb", content_type=content_type)
        self._tar = TarShardWriter(
            self._stream, compression=self.compression, mtime=int(time.time())
        )
        self._samples = 0
        self._last_sample = None
        return self._tar

    def _finish_shard(self) -> None:
        tar, stream = self._tar, self._stream
        if tar is None or stream is None:
            return
        self._tar = self._stream = None
        url = self.manifest.url_for(self._shard_key)
        try:
            tar.close()
        except BaseException:
            tar.discard()
            abort_writer(stream)
            raise
        stream.close()  # completes the multipart upload with If-None-Match: *
        self._created.append(url)
        self.shard_urls.append(url)
        info = self._client.head(url)
        etag = writer_etag(stream) or info.etag
        index_key = None
        if self.compression is None:
            index_key = self._shard_key + ".idx.json"
            index = fmt.ShardIndex(self._shard_key, tuple(tar.members))
            index_url = self.manifest.url_for(index_key)
            self._client.put(
                index_url,
                fmt.serialise_index(index),
                if_none_match="*",
                content_type="application/json",
            )
            self._created.append(index_url)
        entry = fmt.shard_entry(
            self._shard_key,
            count=tar.count,
            size_bytes=info.size,
            etag=etag,
            compression=self.compression,
            index_key=index_key,
        )
        entry["nsamples"] = self._samples
        self._add_line(fmt.serialise(entry))

    def _add_line(self, line: bytes) -> None:
        self._lines.append(line)
        if len(self._lines) >= self.part_max_entries:
            self._flush_part()

    def _flush_part(self) -> None:
        if not self._lines:
            return
        key = f"{self.manifest.folder}parts/{self.writer_id}-{len(self._part_keys):06d}.jsonl"
        url = self.manifest.url_for(key)
        self._client.put(
            url, b"".join(self._lines), if_none_match="*", content_type="application/x-ndjson"
        )
        self._created.append(url)
        self._part_keys.append(key)
        self.part_urls.append(url)
        self._lines = []

    # ---------------------------------------------------------------- publishing

    def close(self) -> None:
        """Finish the open shard, write the last part, and publish: one compare-and-swap
        appending a ``manifest_ref`` per part to the root, then the WIDS shard list.

        On any failure before the root is updated, everything this writer created is
        deleted and the error re-raised. A failure writing the WIDS list after that is
        logged (the manifest is already published and consistent).
        """
        if self._state != "open":
            return
        try:
            self._finish_shard()
            self._flush_part()
            if self._part_keys:
                self.manifest.append(fmt.ref_entry(k) for k in self._part_keys)
        except BaseException:
            self.abort()
            raise
        self._state = "published"
        if self.shard_urls:
            try:
                write_wids(self.manifest)
            except Exception as exc:  # the data is published; the list is derived
                logger.warning("could not write the WIDS shard list of %s: %s", self.manifest, exc)

    def abort(self) -> None:
        """Publish nothing: abort the open upload and delete every object this writer
        created (shards, indexes, parts, loose files). Errors are logged, not raised."""
        if self._state != "open":
            return
        self._state = "aborted"
        if self._tar is not None:
            self._tar.discard()
        if self._stream is not None:
            abort_writer(self._stream)
        self._stream = self._tar = None
        if self._created:
            try:
                report = self._client.delete_many(self._created)
                for url, exc in dict(report.errors).items():
                    logger.warning("could not delete orphan %s: %s", url, exc)
            except Exception as exc:
                logger.warning("could not delete the orphans of %s: %s", self, exc)


def write_wids(manifest: Manifest) -> str:
    """Rewrite the WIDS shard list beside the root from the root's plain tar shards
    (URLs relative to the list); return its URL. The list is derived data: the last
    writer to finish rewrites it from the root it then reads."""
    shards: list[tuple[str, int]] = []
    for entry in manifest.entries():
        if entry["kind"] == "shard" and entry.get("compression") is None:
            key = entry["archive_key"]
            # relative to the list's folder when inside it, else a full s3:// URL
            rel = (
                key[len(manifest.folder) :]
                if key.startswith(manifest.folder)
                else manifest.url_for(key)
            )
            n = entry.get("nsamples", entry.get("count"))
            shards.append((rel, int(n) if isinstance(n, int) else 0))
    url = manifest.url_for(manifest.wids_key)
    manifest.client.put(url, fmt.wids_shardlist(shards), content_type="application/json")
    return url
