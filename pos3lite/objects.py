"""The object API: one object in, one object out, streamed, with conditions and presigned URLs.

Module functions (``pos3lite.head``, ``get``, ``put``, ...) work without ``mirror()``: they take
``s3://[profile@]bucket/key`` URLs and a ``profile=`` keyword and use one shared
:class:`Client` per profile. Rules:

* Reads of a whole object are verified when they end: against a full-object checksum the
  server stored (``x-amz-checksum-crc32``/``-sha1``/``-sha256``, asked for with
  ``x-amz-checksum-mode: ENABLED``), else against a single-part MD5 ETag (not SSE-KMS/SSE-C).
  A stream cut short resumes with a ranged GET pinned by ``If-Match`` to the first ETag.
* Ranges are end-exclusive, like Python slices: ``range=(0, 10)`` is the first 10 bytes.
* Uploads of unknown length stream as a multipart upload holding at most
  ``part_size x (concurrency + 1)`` bytes; a failed upload is aborted, never completed.
* Conditional writes (S3 User Guide, "Conditional requests"): every conditional PUT or
  CompleteMultipartUpload carries a unique nonce in ``x-amz-meta-pos3lite-nonce``; a 412 that
  follows a retried attempt is ambiguous (the first attempt may have won) and is resolved by
  a HEAD comparing the nonce. ``if_match`` on a missing key raises NotFoundError whether the
  server answers 404 (AWS) or 412 (Ceph, SeaweedFS). 409 ConditionalRequestConflict is
  retried by the S3 client.

Spec: Amazon S3 API Reference ("HeadObject", "GetObject", "PutObject", "CopyObject",
"UploadPartCopy", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload",
"DeleteObject", "DeleteObjects", "ListObjectsV2"); "Authenticating Requests: Using Query
Parameters (AWS Signature Version 4)"; RFC 9110 sections 13 (conditional requests) and 14
(ranges).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import logging
import os
import threading
import uuid
import zlib
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, BinaryIO, cast

from .errors import (
    AlreadyExistsError,
    ChecksumMismatchError,
    ConfigError,
    InvalidURLError,
    NotFoundError,
    PreconditionFailedError,
    S3Error,
    TransportError,
)
from .s3.factory import ClientCache
from .urls import S3URL, parse_s3_url

if TYPE_CHECKING:
    from ._lock import Lock
    from .profiles import Profile
    from .s3.client import S3Client
    from .transport.base import Response, Transport

__all__ = [
    "Client",
    "DeleteReport",
    "ObjectInfo",
    "ObjectReader",
    "PutResult",
    "check_conditional_writes",
    "copy",
    "delete",
    "delete_many",
    "exists",
    "get",
    "get_bytes",
    "head",
    "list_objects",
    "lock",
    "open",
    "presign",
    "put",
]

logger = logging.getLogger(__name__)

NONCE_HEADER = "x-amz-meta-pos3lite-nonce"
_META_PREFIX = "x-amz-meta-"
_MAX_EXPIRES = 7 * 24 * 3600  # SigV4 query signing allows at most 7 days
_MAX_SINGLE_PUT = 5 * 1024**3  # PutObject and CopyObject limit, 5 GiB
_COPY_PART = 512 * 1024**2  # UploadPartCopy part size for copies above _MAX_SINGLE_PUT
DEFAULT_PART_SIZE = 8 * 1024 * 1024
DEFAULT_BLOCK_SIZE = 8 * 1024 * 1024
_CHUNK = 1024 * 1024
_CHECKSUM_HEADERS = {
    "crc32": "x-amz-checksum-crc32",
    "crc32c": "x-amz-checksum-crc32c",
    "crc64nvme": "x-amz-checksum-crc64nvme",
    "sha1": "x-amz-checksum-sha1",
    "sha256": "x-amz-checksum-sha256",
}
_RESPONSE_OVERRIDES = frozenset(
    {
        "cache-control",
        "content-disposition",
        "content-encoding",
        "content-language",
        "content-type",
        "expires",
    }
)

#: What ``put`` accepts: bytes, a binary file object, a path, or an iterable of bytes.
PutData = bytes | bytearray | memoryview | IO[bytes] | str | os.PathLike[str] | Iterable[bytes]


# ---------------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What S3 says about one object (HeadObject, GetObject or a listing).

    Attributes:
        url: ``s3://[profile@]bucket/key``.
        bucket, key: where it is.
        size: the object's size in bytes (the whole object, also for a ranged read).
        etag: the ETag without quotes (an MD5 hex for single-part uploads without SSE-KMS).
        last_modified: an aware UTC datetime.
        version_id: the version id, or ``None`` (unversioned bucket, or from a listing).
        content_type: the Content-Type, or ``None`` (listings do not carry it).
        metadata: user metadata only, names without the ``x-amz-meta-`` prefix.
        checksums: algorithm (``"crc32"``, ``"sha256"``, ...) to value (base64) as sent by
            the server; empty unless the object was stored with one.
    """

    url: str
    bucket: str
    key: str
    size: int
    etag: str
    last_modified: datetime
    version_id: str | None = None
    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict, hash=False)
    checksums: dict[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class PutResult:
    """The result of a write: the new ETag (no quotes) and version id (``None`` when the
    bucket is not versioned)."""

    etag: str
    version_id: str | None = None


@dataclass(frozen=True, slots=True)
class DeleteReport:
    """The result of :func:`delete_many`: URLs deleted, and the error for each URL that was
    not (``errors`` maps URL to an S3Error)."""

    deleted: list[str]
    errors: dict[str, S3Error]


def _info_from_headers(
    url: str, bucket: str, key: str, headers: Mapping[str, str], *, size: int | None = None
) -> ObjectInfo:
    from email.utils import parsedate_to_datetime

    if size is None:
        size = int(headers.get("content-length", "0"))
        content_range = headers.get("content-range", "")
        if "/" in content_range and content_range.rsplit("/", 1)[1].isdigit():
            size = int(content_range.rsplit("/", 1)[1])
    raw_date = headers.get("last-modified")
    try:
        modified = parsedate_to_datetime(raw_date) if raw_date else datetime.fromtimestamp(0, UTC)
    except (TypeError, ValueError):
        modified = datetime.fromtimestamp(0, UTC)
    if modified.tzinfo is None:
        modified = modified.replace(tzinfo=UTC)
    metadata = {
        name[len(_META_PREFIX) :]: value
        for name, value in headers.items()
        if name.lower().startswith(_META_PREFIX) and name.lower() != NONCE_HEADER
    }
    checksums = {
        name: headers[header] for name, header in _CHECKSUM_HEADERS.items() if header in headers
    }
    return ObjectInfo(
        url=url,
        bucket=bucket,
        key=key,
        size=size,
        etag=headers.get("etag", "").strip('"'),
        last_modified=modified,
        version_id=headers.get("x-amz-version-id"),
        content_type=headers.get("content-type"),
        metadata=metadata,
        checksums=checksums,
    )


def _quote(etag: str) -> str:
    """An ETag as an HTTP entity tag (quoted), ``*`` unchanged."""
    return etag if etag == "*" or etag.startswith(('"', "W/")) else f'"{etag}"'


def _is_md5(etag: str) -> bool:
    """A single-part ETag: 32 hex digits (the MD5 of the bytes, unless SSE-KMS/SSE-C)."""
    return len(etag) == 32 and all(c in "0123456789abcdefABCDEF" for c in etag)


def _md5_b64(data: bytes | memoryview) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode("ascii")


def _crc32_b64(value: int) -> str:
    return base64.b64encode(value.to_bytes(4, "big")).decode("ascii")


def _check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in (metadata or {}).items():
        if (
            not isinstance(name, str)
            or not name
            or not all(c.isascii() and (c.isalnum() or c in "-_.") for c in name)
        ):
            raise ConfigError(f"invalid metadata name {name!r}: use ASCII letters, digits, -_.")
        if not isinstance(value, str) or not all(" " <= c <= "~" for c in value):
            raise ConfigError(f"metadata {name!r} must be printable ASCII text, got {value!r}")
        out[_META_PREFIX + name.lower()] = value
    return out


# ---------------------------------------------------------------------------------- client


class Client:
    """The object API bound to one profile, with its own connection pool and retry policy.

    Args:
        profile: a profile name, a :class:`~pos3lite.Profile`, or ``None`` for the ambient
            AWS environment. A URL's ``s3://name@bucket/...`` selector overrides it.
        max_workers: connections kept per endpoint, and the most threads one multipart
            upload uses (capped at 4 per upload).
        max_attempts: attempts per request (retries on throttling, 5xx, resets).
        connect_timeout, read_timeout: seconds; the read timeout bounds the idle time
            between bytes, not a whole transfer.
        transport: a Transport to use instead of urllib3 (tests: ``MockTransport``).

    Thread-safe; close it (or use it as a context manager) to release connections.
    """

    def __init__(
        self,
        profile: str | Profile | None = None,
        *,
        max_workers: int = 10,
        max_attempts: int = 5,
        connect_timeout: float = 10,
        read_timeout: float = 60,
        transport: Transport | None = None,
    ) -> None:
        if max_workers < 1:
            raise ConfigError(f"max_workers must be >= 1, got {max_workers!r}")
        if max_attempts < 1:
            raise ConfigError(f"max_attempts must be >= 1, got {max_attempts!r}")
        self._profile_arg = profile
        self.max_workers = max_workers
        self.max_attempts = max_attempts
        self._clients = ClientCache(
            max_connections=max_workers,
            timeout=(float(connect_timeout), float(read_timeout)),
            max_attempts=max_attempts,
            transport=transport,
        )
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Client(profile={self._profile_arg!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool and worker threads; idempotent."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
        self._clients.close()

    # ---------------------------------------------------------------- resolution

    def _resolve(self, url: str, *, need_key: bool = True) -> tuple[S3Client, S3URL]:
        if not isinstance(url, str):
            raise InvalidURLError(f"expected an s3:// URL string, got {url!r}")
        parsed = parse_s3_url(url)
        if need_key and (not parsed.key or parsed.key.endswith("/")):
            raise InvalidURLError(f"{url!r} names no object key (s3://bucket/key expected)")
        return self._s3(parsed), parsed

    def _s3(self, parsed: S3URL) -> S3Client:
        from .profiles import effective_profile, resolve_profile

        default = resolve_profile(self._profile_arg)
        profile = effective_profile(parsed.profile, None, default)
        return self._clients.get(profile)

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.max_workers, thread_name_prefix="pos3lite-objects"
                )
            return self._executor

    @staticmethod
    def _url(parsed: S3URL, key: str) -> str:
        who = f"{parsed.profile}@" if parsed.profile else ""
        return f"s3://{who}{parsed.bucket}/{key}"

    # ---------------------------------------------------------------- reads

    def head(self, url: str, *, version_id: str | None = None) -> ObjectInfo:
        """HeadObject: the object's :class:`ObjectInfo`.

        Raises:
            NotFoundError: no such key (or bucket).
            S3Error, TransportError, InvalidURLError.
        """
        s3, parsed = self._resolve(url)
        query = [("versionId", version_id)] if version_id else []
        headers, _ = s3.call(
            "HEAD",
            parsed.bucket,
            parsed.key,
            query=query,
            headers={"x-amz-checksum-mode": "ENABLED"},
        )
        return _info_from_headers(url, parsed.bucket, parsed.key, headers)

    def exists(self, url: str) -> bool:
        """True if the object exists (HeadObject); False on 404. Other errors raise."""
        try:
            self.head(url)
        except NotFoundError:
            return False
        return True

    def get(
        self,
        url: str,
        *,
        range: tuple[int, int | None] | None = None,
        if_match: str | None = None,
        if_none_match: str | None = None,
        version_id: str | None = None,
    ) -> ObjectReader:
        """GetObject as a streamed, file-like :class:`ObjectReader`.

        Args:
            url: ``s3://[profile@]bucket/key``.
            range: ``(start, end)`` byte offsets, end-exclusive (``end=None``: to the end).
            if_match: read only if the ETag is this one (else PreconditionFailedError).
            if_none_match: read only if the ETag is not this one; a match raises
                PreconditionFailedError with code ``NotModified`` (HTTP 304).
            version_id: a specific version.

        Returns:
            An open reader; its ``info`` is known at once. A whole-object read is verified at
            its end (ChecksumMismatchError from the last ``read``).

        Raises:
            NotFoundError, PreconditionFailedError, S3Error, TransportError, ValueError (a
            bad range).
        """
        s3, parsed = self._resolve(url)
        headers: dict[str, str] = {}
        start, end = 0, None
        if range is not None:
            start, end = range
            if (
                not isinstance(start, int)
                or start < 0
                or (end is not None and (not isinstance(end, int) or end <= start))
            ):
                raise ConfigError(
                    f"range must be (start, end) with 0 <= start < end (end-exclusive), "
                    f"got {range!r}"
                )
        else:
            headers["x-amz-checksum-mode"] = "ENABLED"
        if if_match is not None:
            headers["if-match"] = _quote(if_match)
        if if_none_match is not None:
            headers["if-none-match"] = _quote(if_none_match)
        query = [("versionId", version_id)] if version_id else []
        return ObjectReader(
            s3,
            url,
            parsed.bucket,
            parsed.key,
            headers=headers,
            query=query,
            start=start,
            end=end,
            max_attempts=self.max_attempts,
        )

    def get_bytes(self, url: str, **kw: Any) -> bytes:
        """The object's bytes (see :meth:`get` for the keywords), verified when whole."""
        with self.get(url, **kw) as reader:
            return reader.read()

    def list_objects(
        self, url: str, *, recursive: bool = True, start_after: str | None = None
    ) -> Iterator[ObjectInfo]:
        """Yield the objects under the URL's key as a prefix (ListObjectsV2), in key order,
        one page at a time (memory independent of the number of objects).

        Args:
            url: ``s3://bucket/prefix`` (the prefix is used as given; end it with ``/`` to
                list a folder only).
            recursive: False lists one level (delimiter ``/``) and yields only objects.
            start_after: a key; listing starts after it.

        The ``ObjectInfo`` values carry key, size, ETag and LastModified (no metadata).
        A failure on any page raises (S3Error, TransportError): a partial listing is never
        mistaken for a complete one.
        """
        s3, parsed = self._resolve(url, need_key=False)
        return self._list(s3, parsed, recursive, start_after)

    def _list(
        self, s3: S3Client, parsed: S3URL, recursive: bool, start_after: str | None
    ) -> Iterator[ObjectInfo]:
        from .s3 import xml as s3xml

        token: str | None = None
        while True:
            query = [("list-type", "2"), ("encoding-type", "url"), ("max-keys", "1000")]
            if parsed.key:
                query.append(("prefix", parsed.key))
            if not recursive:
                query.append(("delimiter", "/"))
            if token:
                query.append(("continuation-token", token))
            elif start_after:
                query.append(("start-after", start_after))
            _, body = s3.call("GET", parsed.bucket, None, query=query)
            page = s3xml.parse_list_objects_v2(body)
            for obj in page.objects:
                yield ObjectInfo(
                    url=self._url(parsed, obj.key),
                    bucket=parsed.bucket,
                    key=obj.key,
                    size=obj.size,
                    etag=obj.etag,
                    last_modified=datetime.fromtimestamp(obj.last_modified, UTC),
                )
            if page.next_token is None:
                return
            token = page.next_token

    # ---------------------------------------------------------------- writes

    def put(
        self,
        url: str,
        data: PutData,
        *,
        if_none_match: str | None = None,
        if_match: str | None = None,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        checksum: str | None = "md5",
        part_size: int = DEFAULT_PART_SIZE,
    ) -> PutResult:
        """PutObject, or a streamed multipart upload for data larger than ``part_size``.

        Args:
            url: ``s3://[profile@]bucket/key``.
            data: bytes; a binary file object (read from its position); a path; or an
                iterable of bytes of unknown length. Anything but bytes streams with at
                most ``part_size x (concurrency + 1)`` bytes in memory.
            if_none_match: ``"*"``: create only (AlreadyExistsError if the key exists).
            if_match: an ETag: replace only that version (PreconditionFailedError if the
                ETag differs, NotFoundError if the key is missing).
            content_type: the Content-Type (default ``application/octet-stream``).
            metadata: user metadata (ASCII), stored as ``x-amz-meta-<name>``.
            checksum: ``"md5"`` (Content-MD5 on every request), ``"crc32"``
                (``x-amz-checksum-crc32``, a full-object CRC for multipart) or ``None``.
            part_size: bytes per part of a multipart upload (>= 5 MiB on AWS).

        Returns:
            PutResult with the new ETag and version id.

        Raises:
            AlreadyExistsError, PreconditionFailedError, NotFoundError, S3Error,
            TransportError, ConfigError (bad arguments), OSError (reading ``data``).
        """
        upload = self._upload(
            url,
            if_none_match=if_none_match,
            if_match=if_match,
            content_type=content_type,
            metadata=metadata,
            checksum=checksum,
            part_size=part_size,
        )
        try:
            if isinstance(data, (bytes, bytearray, memoryview)):
                upload.put_whole(bytes(data))
            elif isinstance(data, (str, os.PathLike)):
                with io.open(data, "rb") as f:  # noqa: UP020 - the module defines open()
                    upload.feed_file(f)
            elif hasattr(data, "read"):
                upload.feed_file(cast(IO[bytes], data))
            elif isinstance(data, Iterable):
                for chunk in data:
                    if not isinstance(chunk, (bytes, bytearray, memoryview)):
                        raise ConfigError(
                            f"put() iterables must yield bytes, got {type(chunk).__name__}"
                        )
                    upload.write(chunk)
            else:
                raise ConfigError(
                    "put() data must be bytes, a binary file, a path or an iterable of bytes, "
                    f"not {type(data).__name__}"
                )
            return upload.finish()
        except BaseException:
            upload.abort()
            raise

    def _upload(
        self,
        url: str,
        *,
        if_none_match: str | None,
        if_match: str | None,
        content_type: str | None,
        metadata: Mapping[str, str] | None,
        checksum: str | None,
        part_size: int,
    ) -> _Upload:
        s3, parsed = self._resolve(url)
        if if_none_match not in (None, "*"):
            raise ConfigError(
                f'if_none_match must be "*" or None for writes, got {if_none_match!r}'
            )
        if if_none_match is not None and if_match is not None:
            raise ConfigError("give if_none_match or if_match, not both")
        if checksum not in ("md5", "crc32", None):
            raise ConfigError(f'checksum must be "md5", "crc32" or None, got {checksum!r}')
        if not isinstance(part_size, int) or part_size < 1:
            raise ConfigError(f"part_size must be a positive number of bytes, got {part_size!r}")
        headers = _check_metadata(metadata)
        headers["content-type"] = content_type or "application/octet-stream"
        return _Upload(
            self,
            s3,
            url,
            parsed,
            headers=headers,
            if_none_match=if_none_match,
            if_match=if_match,
            checksum=checksum,
            part_size=part_size,
            concurrency=min(4, self.max_workers),
        )

    def open(self, url: str, mode: str = "rb", **kw: Any) -> BinaryIO:
        """Open an object as a binary file.

        Modes:
            ``"rb"``: a seekable reader; each block (``block_size`` bytes, default 8 MiB) is
                a ranged GET pinned with ``If-Match`` to the ETag seen when opening, so an
                object overwritten mid-read raises PreconditionFailedError instead of
                splicing two versions. Keyword: ``version_id``, ``block_size``.
            ``"wb"``: a multipart writer holding at most ``part_size x (concurrency + 1)``
                bytes; completed on ``close()``, aborted when the ``with`` block raises or
                the writer is dropped unclosed. Keywords as :meth:`put` (``if_match``,
                ``content_type``, ``metadata``, ``checksum``, ``part_size``).
            ``"xb"``: as ``"wb"`` with ``If-None-Match: *`` on completion (AlreadyExistsError
                if the key exists by then).

        Raises:
            ConfigError (bad mode), NotFoundError (``"rb"`` on a missing key), S3Error.
        """
        if mode == "rb":
            s3, parsed = self._resolve(url)
            raw = _PinnedReader(s3, url, parsed, **kw)
            buffered = io.BufferedReader(raw, buffer_size=_CHUNK)
            buffered.info = raw.info  # type: ignore[attr-defined]
            return cast(BinaryIO, buffered)
        if mode in ("wb", "xb"):
            if mode == "xb":
                kw["if_none_match"] = "*"
            upload = self._upload(
                url,
                if_none_match=kw.pop("if_none_match", None),
                if_match=kw.pop("if_match", None),
                content_type=kw.pop("content_type", None),
                metadata=kw.pop("metadata", None),
                checksum=kw.pop("checksum", "md5"),
                part_size=kw.pop("part_size", DEFAULT_PART_SIZE),
            )
            if kw:
                raise ConfigError(f"unexpected keywords for open(mode={mode!r}): {sorted(kw)}")
            return cast(BinaryIO, _Writer(upload))
        raise ConfigError(f'mode must be "rb", "wb" or "xb", got {mode!r}')

    def delete(
        self, url: str, *, if_match: str | None = None, version_id: str | None = None
    ) -> None:
        """DeleteObject. A missing object is fine, unless ``if_match`` is given (then
        NotFoundError); a different ETag raises PreconditionFailedError."""
        s3, parsed = self._resolve(url)
        headers = {"if-match": _quote(if_match)} if if_match is not None else {}
        query = [("versionId", version_id)] if version_id else []
        try:
            s3.call("DELETE", parsed.bucket, parsed.key, query=query, headers=headers)
        except NotFoundError:
            if if_match is not None:
                raise
        except PreconditionFailedError as exc:
            self._raise_if_missing(s3, parsed, exc)
            raise

    def delete_many(self, urls: Iterable[str]) -> DeleteReport:
        """Delete many objects with DeleteObjects (1000 keys a request, grouped by bucket and
        profile). Missing keys count as deleted. Returns a :class:`DeleteReport`; raises
        (S3Error, TransportError) only when a whole batch request fails."""
        groups: dict[tuple[int, str], tuple[S3Client, list[tuple[str, str]]]] = {}
        for url in urls:
            s3, parsed = self._resolve(url)
            entry = groups.setdefault((id(s3), parsed.bucket), (s3, []))
            entry[1].append((url, parsed.key))
        deleted: list[str] = []
        errors: dict[str, S3Error] = {}
        for (_, bucket), (s3, items) in groups.items():
            by_key: dict[str, list[str]] = {}
            for url, key in items:
                by_key.setdefault(key, []).append(url)
            failures = s3.delete_objects(bucket, list(by_key))
            failed: set[str] = set()
            for exc in failures:
                for url in by_key.get(exc.key or "", []):
                    errors[url] = exc
                failed.add(exc.key or "")
            deleted += [url for url, key in items if key not in failed]
        return DeleteReport(deleted, errors)

    def copy(
        self,
        src: str,
        dst: str,
        *,
        if_none_match: str | None = None,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> PutResult:
        """Server-side copy (CopyObject; a multipart copy with UploadPartCopy above 5 GiB).

        Args:
            src, dst: object URLs on the same endpoint and profile.
            if_none_match: ``"*"`` to copy only if ``dst`` does not exist.
            metadata, content_type: replace the destination's metadata / Content-Type;
                by default both are copied from the source.

        Raises:
            NotFoundError (no source), AlreadyExistsError, S3Error, TransportError,
            ConfigError (different endpoints or profiles).
        """
        s3, source = self._resolve(src)
        s3_dst, target = self._resolve(dst)
        if s3_dst is not s3:
            raise ConfigError(f"copy needs src and dst under one profile: {src!r} -> {dst!r}")
        if if_none_match not in (None, "*"):
            raise ConfigError(f'if_none_match must be "*" or None, got {if_none_match!r}')
        info = self.head(src)
        from .auth.sigv4 import uri_encode

        copy_source = f"/{source.bucket}/{uri_encode(source.key, safe='/')}"
        headers: dict[str, str] = {"x-amz-copy-source": copy_source}
        replace = metadata is not None or content_type is not None
        new_meta = _check_metadata(metadata if metadata is not None else info.metadata)
        new_type = content_type or info.content_type or "application/octet-stream"
        if info.size > _MAX_SINGLE_PUT:
            nonce = uuid.uuid4().hex if if_none_match else None
            return self._multipart_copy(s3, target, copy_source, info, new_meta, new_type, nonce)
        # The nonce rides only on copies that replace metadata anyway: replacing it just to
        # add a nonce would drop headers HEAD does not show (Cache-Control, ...). Without it,
        # an ambiguous 412 is resolved by the destination showing the source's MD5 ETag.
        nonce = uuid.uuid4().hex if if_none_match and replace else None
        if replace:
            headers["x-amz-metadata-directive"] = "REPLACE"
            headers.update(new_meta)
            headers["content-type"] = new_type
            if nonce:
                headers[NONCE_HEADER] = nonce
        if if_none_match:
            headers["if-none-match"] = "*"
        from .s3 import xml as s3xml

        attempts: list[int] = []
        try:
            resp_headers, body = s3.call(
                "PUT", target.bucket, target.key, headers=headers, attempts=attempts
            )
        except PreconditionFailedError as exc:
            same = info.etag if nonce is None and _is_md5(info.etag) else None
            return self._resolve_412(
                s3, dst, target, exc, attempts, nonce, if_none_match, None, same_etag=same
            )
        return PutResult(s3xml.parse_copy_result(body), resp_headers.get("x-amz-version-id"))

    def _multipart_copy(
        self,
        s3: S3Client,
        target: S3URL,
        copy_source: str,
        info: ObjectInfo,
        metadata: dict[str, str],
        content_type: str,
        nonce: str | None,
    ) -> PutResult:
        from .s3 import xml as s3xml

        create = {**metadata, "content-type": content_type}
        if nonce:
            create[NONCE_HEADER] = nonce
        _, body = s3.call(
            "POST", target.bucket, target.key, query=[("uploads", "")], headers=create
        )
        upload_id = s3xml.parse_initiate_multipart(body)
        try:
            parts: list[tuple[int, str]] = []
            for number, start in enumerate(range(0, info.size, _COPY_PART), 1):
                last = min(start + _COPY_PART, info.size) - 1
                _, part = s3.call(
                    "PUT",
                    target.bucket,
                    target.key,
                    query=[("partNumber", str(number)), ("uploadId", upload_id)],
                    headers={
                        "x-amz-copy-source": copy_source,
                        "x-amz-copy-source-range": f"bytes={start}-{last}",
                        "x-amz-copy-source-if-match": _quote(info.etag),
                    },
                )
                parts.append((number, s3xml.parse_copy_result(part)))
            complete = {"content-type": "application/xml"}
            if nonce:
                complete["if-none-match"] = "*"
            attempts: list[int] = []
            try:
                headers, done = s3.call(
                    "POST",
                    target.bucket,
                    target.key,
                    query=[("uploadId", upload_id)],
                    headers=complete,
                    body=s3xml.build_complete_multipart(parts),
                    attempts=attempts,
                )
            except PreconditionFailedError as exc:
                url = self._url(target, target.key)
                return self._resolve_412(s3, url, target, exc, attempts, nonce, "*", None)
            return PutResult(s3xml.parse_complete_multipart(done), headers.get("x-amz-version-id"))
        except BaseException:
            s3.abort_multipart_upload(target.bucket, target.key, upload_id)
            raise

    # ---------------------------------------------------------------- conditions

    def _raise_if_missing(self, s3: S3Client, parsed: S3URL, exc: S3Error) -> None:
        """``if_match`` on a missing key: Ceph and SeaweedFS answer 412 where AWS answers
        404; a HEAD tells them apart so callers see NotFoundError either way."""
        try:
            s3.call("HEAD", parsed.bucket, parsed.key)
        except NotFoundError:
            raise NotFoundError(
                "NoSuchKey",
                "if_match given for a key that does not exist",
                status=exc.status,
                request_id=exc.request_id,
                bucket=parsed.bucket,
                key=parsed.key,
            ) from None

    def _resolve_412(
        self,
        s3: S3Client,
        url: str,
        parsed: S3URL,
        exc: PreconditionFailedError,
        attempts: list[int],
        nonce: str | None,
        if_none_match: str | None,
        if_match: str | None,
        *,
        same_etag: str | None = None,
    ) -> PutResult:
        """Turn a 412 on a conditional write into a result or the right exception.

        After a retried attempt the 412 may be our own earlier attempt's success (its reply
        was lost): a HEAD showing our nonce (or, for a copy without one, the MD5 ETag of the
        very bytes we copied: ``same_etag``) proves it, and the write stands.
        """
        if len(attempts) > 1 and (nonce is not None or same_etag is not None):
            try:
                headers, _ = s3.call("HEAD", parsed.bucket, parsed.key)
            except NotFoundError:
                headers = {}
            ours = (
                headers.get(NONCE_HEADER) == nonce
                if nonce is not None
                else headers.get("etag", "").strip('"') == same_etag
            )
            if headers and ours:
                logger.info("412 after a retried write of %s: our earlier attempt won", url)
                return PutResult(
                    headers.get("etag", "").strip('"'), headers.get("x-amz-version-id")
                )
        if if_none_match == "*":
            raise AlreadyExistsError(
                exc.code,
                exc.message or "the key already exists (if_none_match='*')",
                status=exc.status,
                request_id=exc.request_id,
                bucket=parsed.bucket,
                key=parsed.key,
            ) from None
        if if_match is not None:
            self._raise_if_missing(s3, parsed, exc)
        raise exc

    def check_conditional_writes(self, url: str) -> bool:
        """Whether the endpoint enforces conditional writes, probed once per endpoint and
        cached for the process.

        The probe, on a temporary key beside ``url``'s key (``url`` may name a bucket or a
        prefix): create with ``If-None-Match: *`` (must succeed), again (must fail with 412),
        write with a stale ``If-Match`` (must fail with 412), write with the right one (must
        succeed); then the key is deleted. Servers that accept the headers and ignore them
        (rclone serve s3, s3rver, old SeaweedFS and MinIO releases) answer False.

        Raises S3Error / TransportError when the probe cannot run (e.g. AccessDenied); those
        are not cached.
        """
        s3, parsed = self._resolve(url, need_key=False)
        cache_key = s3.endpoint_id
        with _PROBE_LOCK:
            known = _PROBED.get(cache_key)
        if known is not None:
            return known
        folder = parsed.key if not parsed.key or parsed.key.endswith("/") else parsed.key + "-"
        probe = self._url(parsed, f"{folder}.pos3lite-conditional-write-probe-{uuid.uuid4().hex}")
        result, detail = self._probe(probe)
        with _PROBE_LOCK:
            _PROBED[cache_key] = result
        if not result:
            logger.warning("%s does not enforce conditional writes: %s", s3.endpoint_id, detail)
        return result

    def _probe(self, probe: str) -> tuple[bool, str]:
        try:
            try:
                first = self.put(probe, b"1", if_none_match="*")
            except PreconditionFailedError:
                return False, "If-None-Match: * failed on a new key"
            try:
                self.put(probe, b"2", if_none_match="*")
                return False, "If-None-Match: * overwrote an existing key"
            except AlreadyExistsError:
                pass
            try:
                self.put(probe, b"3", if_match="0" * 32)
                return False, "a stale If-Match was accepted"
            except PreconditionFailedError:
                pass
            try:
                self.put(probe, b"4", if_match=first.etag)
            except PreconditionFailedError:
                return False, "the current ETag in If-Match was refused"
            return True, ""
        except S3Error as exc:
            if exc.status in (400, 501):
                return False, f"the server refused the conditional headers: {exc}"
            raise
        finally:
            try:
                self.delete(probe)
            except (S3Error, TransportError) as exc:
                logger.warning("could not delete the probe object %s: %s", probe, exc)

    def _endpoint(self, url: str) -> str:
        """``scheme://host[:port]`` of the endpoint serving ``url``."""
        s3, _ = self._resolve(url, need_key=False)
        return s3.endpoint_id

    def lock(self, url: str, *, lease: float = 30.0) -> Lock:
        """A lease :class:`~pos3lite.Lock` on the object at ``url`` (not yet acquired);
        ``lease`` in seconds. See :mod:`pos3lite._lock`."""
        from ._lock import Lock

        return Lock(self, url, lease=lease)

    # ---------------------------------------------------------------- presign

    def presign(
        self,
        url: str,
        *,
        method: str = "GET",
        expires: int = 3600,
        content_type: str | None = None,
        response_headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> str:
        """A presigned URL (SigV4 query signing) anyone can use without credentials.

        Args:
            url: ``s3://[profile@]bucket/key``.
            method: ``"GET"``, ``"PUT"``, ``"HEAD"`` or ``"DELETE"``.
            expires: validity in seconds (int); capped at 7 days (604800) with a WARNING.
            content_type: for PUT: the Content-Type the uploader must send (it is signed).
            response_headers: for GET: overrides of the response's headers, e.g.
                ``{"content-disposition": "attachment; filename=a.csv"}``, sent as the signed
                ``response-content-disposition`` parameter (also ``content-type``,
                ``cache-control``, ``content-encoding``, ``content-language``, ``expires``).
            params: extra signed query parameters, e.g. ``{"partNumber": "1",
                "uploadId": ...}`` for a multipart part upload URL.

        Returns:
            An ``https://`` (or the endpoint's scheme) URL carrying ``X-Amz-Signature`` and,
            for temporary credentials, ``X-Amz-Security-Token``. A WARNING is logged when it
            outlives the temporary credentials that signed it (it stops working with them).

        Raises:
            ConfigError (bad method, expires, header name), CredentialsError.
        """
        s3, parsed = self._resolve(url)
        method = method.upper() if isinstance(method, str) else method
        if method not in ("GET", "PUT", "HEAD", "DELETE"):
            raise ConfigError(f"method must be GET, PUT, HEAD or DELETE, got {method!r}")
        if isinstance(expires, bool) or not isinstance(expires, int) or expires < 1:
            raise ConfigError(f"expires must be a positive int number of seconds, got {expires!r}")
        if expires > _MAX_EXPIRES:
            logger.warning(
                "presigned URLs last at most 7 days; expires=%d capped to %d", expires, _MAX_EXPIRES
            )
            expires = _MAX_EXPIRES
        query: list[tuple[str, str]] = []
        for name, value in (response_headers or {}).items():
            plain = name.lower().removeprefix("response-")
            if plain not in _RESPONSE_OVERRIDES:
                raise ConfigError(
                    f"response_headers may override {sorted(_RESPONSE_OVERRIDES)}, not {name!r}"
                )
            query.append((f"response-{plain}", value))
        for name, value in (params or {}).items():
            query.append((str(name), str(value)))
        headers = {"content-type": content_type} if content_type else {}
        signed, creds = s3.presign_url(
            method, parsed.bucket, parsed.key, expires=expires, headers=headers, query=query
        )
        if creds is not None and creds.expiration is not None:
            ends = datetime.now(UTC) + timedelta(seconds=expires)
            if ends > creds.expiration:
                logger.warning(
                    "the presigned URL for %s is valid for %d s but the temporary credentials "
                    "that signed it expire at %s; it stops working then",
                    url,
                    expires,
                    creds.expiration.isoformat(),
                )
        return signed


_PROBED: dict[str, bool] = {}  # endpoint -> enforces conditional writes
_PROBE_LOCK = threading.Lock()


# ---------------------------------------------------------------------------------- reading


class ObjectReader(io.RawIOBase):
    """A streamed GetObject body, file-like (``read``, ``readinto``, ``iter_chunks``).

    ``info`` (an :class:`ObjectInfo`) is known when the reader is returned. A connection
    lost mid-body resumes with a ranged GET pinned by ``If-Match`` to the ETag first seen.
    A whole-object read is verified at its end; a mismatch raises ChecksumMismatchError from
    the read that reaches the end (the bytes before it were already handed out: treat them as
    bad). Close it (or use ``with``) to release the connection.
    """

    def __init__(
        self,
        s3: S3Client,
        url: str,
        bucket: str,
        key: str,
        *,
        headers: dict[str, str],
        query: list[tuple[str, str]],
        start: int,
        end: int | None,
        max_attempts: int,
    ) -> None:
        super().__init__()
        self._s3, self._url, self._bucket, self._key = s3, url, bucket, key
        self._headers, self._query = headers, query
        self._start, self._end = start, end
        self._whole = start == 0 and end is None
        self._max_attempts = max_attempts
        self._received = 0
        self._pending = memoryview(b"")
        self._response = self._open(headers)
        self.info = _info_from_headers(url, bucket, key, self._response.headers)
        self._expected = int(self._response.headers.get("content-length", "-1"))
        self._chunks = self._response.iter_bytes()
        self._digest: Any = None
        self._want = ""
        self._b64 = False  # x-amz-checksum-* values are base64; an MD5 ETag is hex
        self._etag_md5 = False  # verifying against the ETag (per the profile's verify_etag)
        if self._whole:
            self._choose_verification(self._response.headers)

    def _open(self, base: Mapping[str, str], resume_at: int = 0) -> Response:
        headers = dict(base)
        first = self._start + resume_at
        if first or self._end is not None:
            last = "" if self._end is None else str(self._end - 1)
            headers["range"] = f"bytes={first}-{last}"
        try:
            return self._s3.open_object(self._bucket, self._key, headers=headers, query=self._query)
        except S3Error as exc:
            if exc.status == 304:
                raise PreconditionFailedError(
                    "NotModified",
                    "if_none_match matched the object's ETag",
                    status=304,
                    bucket=self._bucket,
                    key=self._key,
                ) from None
            if exc.status == 412 and "if-match" in base:
                _raise_missing(self._s3, self._bucket, self._key, exc)
            raise

    def _choose_verification(self, headers: Mapping[str, str]) -> None:
        kind = headers.get("x-amz-checksum-type", "FULL_OBJECT").upper()
        for name in ("sha256", "sha1", "crc32"):
            value = headers.get(_CHECKSUM_HEADERS[name], "")
            if value and "-" not in value and kind == "FULL_OBJECT":
                self._digest = _Crc32() if name == "crc32" else hashlib.new(name)
                self._want, self._b64 = value, True
                return
        etag = headers.get("etag", "").strip('"').lower()
        sse = headers.get("x-amz-server-side-encryption", "")
        encrypted = sse.startswith("aws:kms") or (
            "x-amz-server-side-encryption-customer-algorithm" in headers
        )
        if len(etag) == 32 and all(c in "0123456789abcdef" for c in etag) and not encrypted:
            self._digest = hashlib.md5(usedforsecurity=False)
            self._want = etag
            self._etag_md5 = True

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.closed:
            raise ValueError(f"read from a closed reader of {self._url}")
        out = memoryview(buffer).cast("B")
        if not out:
            return 0
        while not self._pending:
            chunk = self._next_chunk()
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        n = min(len(out), len(self._pending))
        out[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def readall(self) -> bytes:
        parts = [bytes(self._pending)]
        self._pending = memoryview(b"")
        while (chunk := self._next_chunk()) is not None:
            parts.append(chunk)
        return b"".join(parts)

    def iter_chunks(self, size: int = _CHUNK) -> Iterator[bytes]:
        """Yield the body in chunks of up to ``size`` bytes until the end."""
        while data := self.read(size):
            yield data

    def _next_chunk(self) -> bytes | None:
        """The next chunk from the wire, resuming after a lost connection; None at the end
        (after the length and checksum checks)."""
        failures = 0
        while True:
            try:
                chunk = next(self._chunks, None)
            except TransportError:
                failures += 1
                if failures >= self._max_attempts:
                    raise
                self._resume()
                continue
            if chunk is None:
                if self._expected >= 0 and self._received != self._expected:
                    failures += 1
                    if failures >= self._max_attempts:
                        raise TransportError(
                            f"body of {self._url} cut short: "
                            f"{self._received} of {self._expected} bytes"
                        )
                    self._resume()
                    continue
                self._verify()
                return None
            if chunk:
                self._received += len(chunk)
                if self._digest is not None:
                    self._digest.update(chunk)
                return chunk

    def _resume(self) -> None:
        self._response.close()
        base = dict(self._headers)
        base["if-match"] = _quote(self.info.etag)
        base.pop("if-none-match", None)
        resp = self._open(base, resume_at=self._received)
        self._response = resp
        self._chunks = resp.iter_bytes()
        logger.info("resumed %s at byte %d", self._url, self._start + self._received)
        # The expected total stays the first answer's; ``_received`` counts on from there.

    def _verify(self) -> None:
        if self._digest is None or self._want == "done":
            return
        digest = self._digest.digest()
        got = base64.b64encode(digest).decode("ascii") if self._b64 else digest.hex()
        want, self._want = self._want, "done"
        if self._etag_md5:
            # The profile's verify_etag decides whether a 32-hex ETag is the MD5 of the
            # bytes ("off", or an endpoint known to answer otherwise: not checked); raises
            # ChecksumMismatchError on a mismatch.
            self._s3.check_etag(self._url, want, self._received, got, [])
        elif got != want:
            raise ChecksumMismatchError(self._url, want, got)

    def close(self) -> None:
        # The finalizer closes a reader whose __init__ raised (a missing key) too; Python
        # 3.13's IOBase reports an error raised here, so a reader with no response is fine.
        response = getattr(self, "_response", None)
        if response is not None and not self.closed:
            response.close()
        super().close()

    def __enter__(self) -> ObjectReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _Crc32:
    """A hashlib-like CRC-32 (zlib), ``digest()`` big-endian as S3 sends it in base64."""

    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes | memoryview) -> None:
        self.value = zlib.crc32(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "big")


def _raise_missing(s3: S3Client, bucket: str, key: str, exc: S3Error) -> None:
    try:
        s3.call("HEAD", bucket, key)
    except NotFoundError:
        raise NotFoundError(
            "NoSuchKey",
            "if_match given for a key that does not exist",
            status=exc.status,
            request_id=exc.request_id,
            bucket=bucket,
            key=key,
        ) from None


class _PinnedReader(io.RawIOBase):
    """Seekable reads of one object version: ranged GETs of ``block_size`` bytes, each with
    ``If-Match`` on the ETag seen at open, so a concurrent overwrite raises
    PreconditionFailedError instead of mixing versions."""

    def __init__(
        self,
        s3: S3Client,
        url: str,
        parsed: S3URL,
        *,
        version_id: str | None = None,
        block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> None:
        super().__init__()
        if not isinstance(block_size, int) or block_size < 1:
            raise ConfigError(f"block_size must be a positive number of bytes, got {block_size!r}")
        self._s3, self._url, self._parsed = s3, url, parsed
        self._query = [("versionId", version_id)] if version_id else []
        self._block = block_size
        self._stream: ObjectReader | None = None  # set before anything can raise: close()
        headers, _ = s3.call("HEAD", parsed.bucket, parsed.key, query=self._query)
        self.info = _info_from_headers(url, parsed.bucket, parsed.key, headers)
        self._pos = 0
        self._stream_pos = -1  # absolute offset the open stream will deliver next
        self._stream_end = -1

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self.info.size + offset
        else:
            raise ValueError(f"invalid whence {whence!r}")
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = pos
        return pos

    def readinto(self, buffer: Any) -> int:
        out = memoryview(buffer).cast("B")
        if not out or self._pos >= self.info.size:
            return 0
        if self._stream is None or self._stream_pos != self._pos or self._pos >= self._stream_end:
            self._close_stream()
            end = min(self._pos + self._block, self.info.size)
            self._stream = ObjectReader(
                self._s3,
                self._url,
                self._parsed.bucket,
                self._parsed.key,
                headers={"if-match": _quote(self.info.etag)},
                query=self._query,
                start=self._pos,
                end=end,
                max_attempts=self._s3.retry.max_attempts,
            )
            self._stream_pos, self._stream_end = self._pos, end
        n = self._stream.readinto(out[: self._stream_end - self._pos])
        if n == 0:
            raise TransportError(f"{self._url}: no bytes at offset {self._pos} of {self.info.size}")
        self._pos += n
        self._stream_pos = self._pos
        return n

    def _close_stream(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def close(self) -> None:
        self._close_stream()
        super().close()


# ---------------------------------------------------------------------------------- writing


class _Upload:
    """One upload: a single PutObject when everything fits in one part, else a multipart
    upload whose parts go out on the client's pool while the next part fills (at most
    ``concurrency`` parts in flight). Conditions and the nonce apply to the final request
    (PutObject or CompleteMultipartUpload)."""

    def __init__(
        self,
        client: Client,
        s3: S3Client,
        url: str,
        parsed: S3URL,
        *,
        headers: dict[str, str],
        if_none_match: str | None,
        if_match: str | None,
        checksum: str | None,
        part_size: int,
        concurrency: int,
    ) -> None:
        self._client, self._s3, self._url, self._parsed = client, s3, url, parsed
        self._headers = headers
        self._if_none_match, self._if_match = if_none_match, if_match
        self._nonce = uuid.uuid4().hex if (if_none_match or if_match) else None
        self._checksum = checksum
        self._part_size = part_size
        self._concurrency = max(1, concurrency)
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[Future[tuple[int, str, str]]] = []
        self._crc = 0
        self._finished = False

    # -- input

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._finished:
            raise ValueError(f"write to a finished upload of {self._url}")
        self._buffer += data
        while len(self._buffer) >= self._current_part_size():
            size = self._current_part_size()
            with memoryview(self._buffer) as view:
                part = bytes(view[:size])  # one copy, not a bytearray slice and then bytes
            del self._buffer[:size]
            self._send_part(part)

    def feed_file(self, f: IO[bytes]) -> None:
        while block := f.read(min(self._part_size, 8 * _CHUNK)):
            if not isinstance(block, (bytes, bytearray, memoryview)):
                raise ConfigError(
                    f"put() needs a binary file (mode 'rb'); read() gave {type(block).__name__}"
                )
            self.write(block)

    def _current_part_size(self) -> int:
        # Parts grow (x2 every 1000 parts) so an unknown-length stream fits in 10,000 parts.
        return int(self._part_size * (2 ** (len(self._parts) // 1000)))

    # -- single PUT

    def put_whole(self, data: bytes) -> None:
        if len(data) > _MAX_SINGLE_PUT:
            self.write(data)
            return
        self._buffer = bytearray()
        self._whole = data

    _whole: bytes | None = None

    def _single_put(self, data: bytes) -> PutResult:
        headers = dict(self._headers)
        self._add_checksum(headers, data)
        self._add_conditions(headers)
        attempts: list[int] = []
        try:
            resp, _ = self._s3.call(
                "PUT",
                self._parsed.bucket,
                self._parsed.key,
                headers=headers,
                body=data,
                attempts=attempts,
            )
        except PreconditionFailedError as exc:
            return self._resolve_412(exc, attempts)
        return PutResult(resp.get("etag", "").strip('"'), resp.get("x-amz-version-id"))

    def _resolve_412(self, exc: PreconditionFailedError, attempts: list[int]) -> PutResult:
        """A 412 on this upload's conditional write: see :meth:`Client._resolve_412`."""
        return self._client._resolve_412(
            self._s3,
            self._url,
            self._parsed,
            exc,
            attempts,
            self._nonce,
            self._if_none_match,
            self._if_match,
        )

    def _add_checksum(self, headers: dict[str, str], data: bytes) -> None:
        if self._checksum == "md5":
            headers["content-md5"] = _md5_b64(data)
        elif self._checksum == "crc32":
            headers["x-amz-checksum-crc32"] = _crc32_b64(zlib.crc32(data))

    def _add_conditions(self, headers: dict[str, str]) -> None:
        if self._if_none_match:
            headers["if-none-match"] = "*"
        if self._if_match is not None:
            headers["if-match"] = _quote(self._if_match)
        if self._nonce:
            headers[NONCE_HEADER] = self._nonce

    # -- multipart

    def _send_part(self, data: bytes) -> None:
        from .s3 import xml as s3xml

        if self._upload_id is None:
            headers = dict(self._headers)
            if self._nonce:
                headers[NONCE_HEADER] = self._nonce
            if self._checksum == "crc32":
                headers["x-amz-checksum-algorithm"] = "CRC32"
                headers["x-amz-checksum-type"] = "FULL_OBJECT"
            _, body = self._s3.call(
                "POST",
                self._parsed.bucket,
                self._parsed.key,
                query=[("uploads", "")],
                headers=headers,
            )
            self._upload_id = s3xml.parse_initiate_multipart(body)
        if self._checksum == "crc32":
            self._crc = zlib.crc32(data, self._crc)
        # Bounded memory: wait for the oldest part while `concurrency` are in flight.
        in_flight = [f for f in self._parts if not f.done()]
        if len(in_flight) >= self._concurrency:
            in_flight[0].result()
        for done in self._parts:
            if done.done():
                done.result()  # raise a failed part's error now
        number = len(self._parts) + 1
        self._parts.append(self._client._pool().submit(self._upload_part, number, data))

    def _upload_part(self, number: int, data: bytes) -> tuple[int, str, str]:
        assert self._upload_id is not None
        headers: dict[str, str] = {}
        crc = ""
        if self._checksum == "md5":
            headers["content-md5"] = _md5_b64(data)
        elif self._checksum == "crc32":
            crc = _crc32_b64(zlib.crc32(data))
            headers["x-amz-checksum-crc32"] = crc
        resp, _ = self._s3.call(
            "PUT",
            self._parsed.bucket,
            self._parsed.key,
            query=[("partNumber", str(number)), ("uploadId", self._upload_id)],
            headers=headers,
            body=data,
        )
        return number, resp.get("etag", "").strip('"'), crc

    def finish(self) -> PutResult:
        """Send what is left and complete; returns the PutResult."""
        from .s3 import xml as s3xml

        self._finished = True
        if self._whole is not None:
            return self._single_put(self._whole)
        if self._upload_id is None:
            data = bytes(self._buffer)
            self._buffer = bytearray()
            return self._single_put(data)
        if self._buffer:
            self._send_part(bytes(self._buffer))
            self._buffer = bytearray()
        parts = [f.result() for f in self._parts]
        headers = {"content-type": "application/xml"}
        self._add_conditions(headers)
        headers.pop(NONCE_HEADER, None)  # the nonce went with CreateMultipartUpload
        if self._checksum == "crc32":
            headers["x-amz-checksum-crc32"] = _crc32_b64(self._crc)
            headers["x-amz-checksum-type"] = "FULL_OBJECT"
            body = s3xml.build_complete_multipart_checksums(parts, "ChecksumCRC32")
        else:
            body = s3xml.build_complete_multipart([(n, e) for n, e, _ in parts])
        attempts: list[int] = []
        try:
            resp, done = self._s3.call(
                "POST",
                self._parsed.bucket,
                self._parsed.key,
                query=[("uploadId", self._upload_id)],
                headers=headers,
                body=body,
                attempts=attempts,
            )
        except PreconditionFailedError as exc:
            self.abort()
            return self._resolve_412(exc, attempts)
        self._upload_id = None
        return PutResult(s3xml.parse_complete_multipart(done), resp.get("x-amz-version-id"))

    def abort(self) -> None:
        """Abort the multipart upload, if one was started; never raises."""
        self._finished = True
        self._buffer = bytearray()
        for f in self._parts:
            f.cancel()
        for f in self._parts:
            if not f.cancelled():
                with contextlib.suppress(BaseException):
                    f.exception()  # only waiting for it to end
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is not None:
            try:
                self._s3.abort_multipart_upload(self._parsed.bucket, self._parsed.key, upload_id)
            except (S3Error, TransportError) as exc:
                logger.warning("could not abort the multipart upload of %s: %s", self._url, exc)


class _Writer(io.RawIOBase):
    """The ``open(url, "wb"|"xb")`` file: writes feed an :class:`_Upload`; ``close()``
    completes it; leaving a ``with`` block by an exception (or dropping the writer
    unclosed) aborts it. ``result`` holds the PutResult after ``close()``."""

    def __init__(self, upload: _Upload) -> None:
        super().__init__()
        self._upload = upload
        self.result: PutResult | None = None
        self._aborted = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self.closed:
            raise ValueError("write to a closed object writer")
        view = memoryview(data).cast("B")
        try:
            self._upload.write(view)
        except BaseException:
            self.abort()
            raise
        return len(view)

    def abort(self) -> None:
        """Abort the upload: nothing is written to the key."""
        if not self.closed:
            self._aborted = True
            self._upload.abort()
            super().close()

    def close(self) -> None:
        if self.closed:
            return
        try:
            self.result = self._upload.finish()
        except BaseException:
            self._upload.abort()
            raise
        finally:
            super().close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()

    def __del__(self) -> None:
        # Never complete a half-written object from the garbage collector.
        if not self.closed:
            self.abort()


# ---------------------------------------------------------------------------------- module API

_DEFAULT: dict[object, Client] = {}
_DEFAULT_LOCK = threading.Lock()


def _client(profile: str | Profile | None) -> Client:
    with _DEFAULT_LOCK:
        found = _DEFAULT.get(profile)
        if found is None:
            found = _DEFAULT[profile] = Client(profile)
        return found


def head(
    url: str, *, version_id: str | None = None, profile: str | Profile | None = None
) -> ObjectInfo:
    """HeadObject; see :meth:`Client.head`."""
    return _client(profile).head(url, version_id=version_id)


def exists(url: str, *, profile: str | Profile | None = None) -> bool:
    """Whether the object exists; see :meth:`Client.exists`."""
    return _client(profile).exists(url)


def get(url: str, *, profile: str | Profile | None = None, **kw: Any) -> ObjectReader:
    """A streamed reader; see :meth:`Client.get` for ``range``, ``if_match``,
    ``if_none_match`` and ``version_id``."""
    return _client(profile).get(url, **kw)


def get_bytes(url: str, *, profile: str | Profile | None = None, **kw: Any) -> bytes:
    """The object's bytes; see :meth:`Client.get`."""
    return _client(profile).get_bytes(url, **kw)


def put(url: str, data: PutData, *, profile: str | Profile | None = None, **kw: Any) -> PutResult:
    """Write an object; see :meth:`Client.put` for the keywords."""
    return _client(profile).put(url, data, **kw)


def open(
    url: str, mode: str = "rb", *, profile: str | Profile | None = None, **kw: Any
) -> BinaryIO:
    """Open an object as a binary file; see :meth:`Client.open`."""
    return _client(profile).open(url, mode, **kw)


def delete(
    url: str,
    *,
    if_match: str | None = None,
    version_id: str | None = None,
    profile: str | Profile | None = None,
) -> None:
    """Delete an object; see :meth:`Client.delete`."""
    _client(profile).delete(url, if_match=if_match, version_id=version_id)


def delete_many(urls: Iterable[str], *, profile: str | Profile | None = None) -> DeleteReport:
    """Delete many objects; see :meth:`Client.delete_many`."""
    return _client(profile).delete_many(urls)


def copy(src: str, dst: str, *, profile: str | Profile | None = None, **kw: Any) -> PutResult:
    """Server-side copy; see :meth:`Client.copy`."""
    return _client(profile).copy(src, dst, **kw)


def list_objects(
    url: str,
    *,
    recursive: bool = True,
    start_after: str | None = None,
    profile: str | Profile | None = None,
) -> Iterator[ObjectInfo]:
    """Stream the objects under a prefix; see :meth:`Client.list_objects`."""
    return _client(profile).list_objects(url, recursive=recursive, start_after=start_after)


def presign(url: str, *, profile: str | Profile | None = None, **kw: Any) -> str:
    """A presigned URL; see :meth:`Client.presign`."""
    return _client(profile).presign(url, **kw)


def lock(url: str, *, lease: float = 30.0, profile: str | Profile | None = None) -> Lock:
    """A lease :class:`~pos3lite.Lock` on the object at ``url`` (not yet acquired):
    ``with pos3lite.lock(url, lease=30):``. ``lease`` in seconds; needs ``s3:GetObject`` and
    ``s3:PutObject``. See :meth:`Client.lock`."""
    return _client(profile).lock(url, lease=lease)


def check_conditional_writes(url: str, *, profile: str | Profile | None = None) -> bool:
    """Whether the endpoint enforces conditional writes; see
    :meth:`Client.check_conditional_writes`."""
    return _client(profile).check_conditional_writes(url)
