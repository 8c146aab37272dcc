"""S3 operations over any Transport: URL building, SigV4 signing, error translation.

Rules:

* The client sees only the :class:`~pos3lite.transport.base.Transport` protocol; it never
  imports urllib3.
* Addressing: path-style (``endpoint/bucket/key``) for custom endpoints, virtual-hosted-style
  (``bucket.s3.region.amazonaws.com/key``) for AWS except buckets with dots (TLS wildcard
  certificates do not cover them); a profile may force either.
* Keys are encoded once (S3 does not normalise paths), and the query is sent exactly as the
  canonical query string that was signed.
* Payload hash: ``UNSIGNED-PAYLOAD`` over HTTPS (TLS already protects the body);
  the SHA-256 of the body over plain HTTP, so a body altered in flight fails the signature.
  Uploads also carry ``Content-MD5`` so the server verifies the bytes it stored.
* Every non-2xx answer becomes an :class:`~pos3lite.errors.S3Error` (``NotFoundError`` for
  404, ``AccessDeniedError`` for 403) carrying code, message, request id, bucket, key, status.
* This is the one layer that retries (see :mod:`pos3lite.s3.retry`): every attempt is signed
  again and its body rewound (streams seek back, progress callbacks get a negative count).
* Clock skew: on ``RequestTimeTooSkewed`` or an expired signature the offset to the
  response's ``Date`` header is applied to the signing clock and the request retried once.
* Region: a bucket's region learnt from ``x-amz-bucket-region``, a 301, or the ``<Region>`` of
  ``AuthorizationHeaderMalformed`` is cached per bucket and the request is signed again.
* Downloads of objects whose ETag is a plain MD5 (single-part, not SSE-KMS/SSE-C) are
  verified against it while they stream; a mismatch is retried, then raised.

Spec: Amazon S3 API Reference ("ListObjectsV2", "HeadObject", "GetObject", "PutObject",
"DeleteObjects", "HeadBucket", "CreateBucket", "Error responses"), and "Virtual hosting of
buckets" in the S3 User Guide.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import BinaryIO, Protocol, TypeVar, cast
from urllib.parse import urlsplit

from ..auth import sigv4
from ..auth.sigv4 import Credentials
from ..errors import (
    AccessDeniedError,
    ChecksumMismatchError,
    ConfigError,
    NotFoundError,
    Pos3liteError,
    PreconditionFailedError,
    S3Error,
    TransportError,
)
from ..transport.base import Body, Request, Response, Transport
from . import listing, listscan
from . import xml as s3xml
from .retry import Retry
from .xml import ObjectInfo

__all__ = ["CredentialSource", "ObjectInfo", "S3Client"]

#: Called with a byte count as data moves (for progress bars); may be negative on a rewind.
ByteCallback = Callable[[int], None]

_HASH_BLOCK = 1024 * 1024
_PRELOAD_MAX = 1024 * 1024  # bodies up to this size are read in one call
T = TypeVar("T")
logger = logging.getLogger(__name__)

#: Region names as AWS spells them; anything else (a hostile 301 ``<Region>``, a typo in
#: ``AWS_REGION``) would be pasted into the host name, so it is refused.
_REGION_RE = re.compile(r"^[a-z0-9-]{1,63}$")
#: Bucket names usable as one DNS label (virtual-hosted-style); others go path-style
#: ("Bucket naming rules" and "Virtual hosting of buckets", S3 User Guide).
_DNS_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: The code given to answers that could not be parsed (an HTML page from a proxy, a garbled
#: body, a malformed header): retried like a transient error (see ``retry.TRANSIENT_CODES``).
MALFORMED = "MalformedResponse"
#: Full-object checksum headers checked in preference to the ETag ("Checking object
#: integrity", S3 User Guide); CRC32C and CRC64NVME need code outside the standard library.
_CHECKSUM_HEADERS = ("x-amz-checksum-sha256", "x-amz-checksum-sha1", "x-amz-checksum-crc32")
VERIFY_ETAG_MODES = ("auto", "on", "off")


def check_region(region: str, *, where: str = "region") -> str:
    """Return ``region`` if it matches ``^[a-z0-9-]{1,63}$``; raise ConfigError naming it."""
    if not isinstance(region, str) or not _REGION_RE.match(region):
        raise ConfigError(f"invalid {where} {region!r}: expected lower-case letters, digits, -")
    return region


def _malformed(what: str, exc: Exception, bucket: str, key: str | None) -> S3Error:
    return S3Error(MALFORMED, f"{what}: {exc}", status=200, bucket=bucket, key=key)


#: Codes meaning "your clock is off": retried once with the server's Date as the clock.
SKEW_CODES = frozenset(
    {"RequestTimeTooSkewed", "RequestExpired", "InvalidSignatureException", "SignatureExpired"}
)


class CredentialSource(Protocol):
    """Anything that resolves to Credentials (a CredentialChain)."""

    def resolve(self) -> Credentials:
        """Return current credentials or raise CredentialsError."""
        ...


@dataclass(frozen=True, slots=True)
class GetResult:
    """What a GetObject delivered: bytes written, ETag (no quotes), LastModified (epoch s),
    and the hex MD5 of the bytes received."""

    size: int
    etag: str
    last_modified: float
    md5: str = ""
    encrypted: bool = False  # SSE-KMS or SSE-C: the ETag is not an MD5 of the bytes


class S3Client:
    """S3 operations for one endpoint, region and credential source.

    Args:
        transport: the Transport used for every request.
        region: signing region (e.g. ``"us-east-1"``).
        endpoint: ``http(s)://host[:port]`` of an S3-compatible server, or ``None`` for AWS.
        credentials: a credential source, or ``None`` for anonymous (unsigned) requests.
        addressing_style: ``"auto"``, ``"path"`` or ``"virtual"``.
        clock: returns the current time as an aware UTC datetime (injected for tests).
        retry: the retry policy (attempts, backoff); default 5 attempts.
        payload_signing: ``"auto"`` (sign the body's SHA-256 over plain HTTP, send
            ``UNSIGNED-PAYLOAD`` over HTTPS), ``"signed"`` or ``"unsigned"`` everywhere.
        sleep, rand: injected ``time.sleep`` and ``random.random`` (tests).
        verify_etag: ``"auto"`` (check a plain ETag as the MD5 of the bytes until two
            identical downloads disagree with it, then stop checking ETags on this endpoint
            with one WARNING), ``"on"`` (always check) or ``"off"`` (never; checksum headers
            are still checked).

    Raises:
        ConfigError: a bad region, endpoint, addressing style or option value.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        region: str,
        endpoint: str | None = None,
        credentials: CredentialSource | None = None,
        addressing_style: str = "auto",
        clock: Callable[[], datetime] | None = None,
        retry: Retry | None = None,
        payload_signing: str = "auto",
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] | None = None,
        verify_etag: str = "auto",
    ) -> None:
        check_region(region)
        if verify_etag not in VERIFY_ETAG_MODES:
            raise ConfigError(f"verify_etag must be auto, on or off, got {verify_etag!r}")
        self.verify_etag = verify_etag
        #: auto mode: None until proven; True once a plain ETag matched the MD5 of the
        #: bytes; False once two identical downloads disagreed with it.
        self._etag_is_md5: bool | None = None
        self._no_delete_objects = False  # learnt: the endpoint has no DeleteObjects
        self._warned_token = False
        if addressing_style not in ("auto", "path", "virtual"):
            raise ValueError(
                f"addressing_style must be auto, path or virtual: {addressing_style!r}"
            )
        self._transport = transport
        self.region = region
        self._credentials = credentials
        self._clock = clock or (lambda: datetime.now(UTC))
        if endpoint:
            parts = urlsplit(endpoint.rstrip("/"))
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"endpoint must be http(s)://host[:port], got {endpoint!r}")
            self._scheme, self._netloc = parts.scheme, parts.netloc
            try:
                port = parts.port
            except ValueError as exc:
                raise ConfigError(f"endpoint {endpoint!r} has a bad port: {exc}") from None
            if port is not None and port == _DEFAULT_PORTS[parts.scheme]:
                # botocore sends Host without the default port; servers sign what they get.
                self._netloc = parts.netloc.rsplit(":", 1)[0]
            self._base_path = parts.path
            self._custom = True
        else:
            self._scheme, self._netloc, self._base_path = "https", "", ""
            self._custom = False
        self._style = addressing_style
        self.retry = retry or Retry()
        if payload_signing not in ("auto", "signed", "unsigned"):
            raise ValueError(
                f"payload_signing must be auto, signed or unsigned, got {payload_signing!r}"
            )
        self._sign_payload = payload_signing == "signed" or (
            payload_signing == "auto" and self._scheme == "http"
        )
        self._sleep = sleep
        if rand is None:
            import random

            rand = random.random
        self._rand = rand
        self._clock_offset = 0.0  # seconds added to the clock (learnt from a skew error)
        self._bucket_regions: dict[str, str] = {}
        self._lock = threading.Lock()
        self._list_pool: ThreadPoolExecutor | None = None
        #: Learnt: the endpoint ignores ListObjectsV2 ``start-after``, or rolls common
        #: prefixes up wrongly with it (SeaweedFS 4.48 at the bucket root): listings longer
        #: than a page go on sequentially (see pos3lite.s3.listing).
        self.start_after_unreliable = False

    def region_for(self, bucket: str) -> str:
        """The signing region for ``bucket``: learnt from the server, else the client's."""
        return self._bucket_regions.get(bucket, self.region)

    def _now(self) -> datetime:
        now = self._clock()
        return now + timedelta(seconds=self._clock_offset) if self._clock_offset else now

    def _attempts(self, fn: Callable[[], T], rewind: Callable[[], None] | None = None) -> T:
        """Run ``fn`` under the retry policy; ``rewind`` runs before every new attempt."""
        retry = self.retry
        fixed_skew = fixed_region = False
        while True:
            try:
                return fn()
            except S3Error as exc:
                if not fixed_skew and exc.code in SKEW_CODES and exc.server_time is not None:
                    fixed_skew = True
                    with self._lock:
                        self._clock_offset = exc.server_time - self._clock().timestamp()
                    logger.warning(
                        "clock skew of %.0f s against the server; signing with its clock",
                        self._clock_offset,
                    )
                    if rewind is not None:
                        rewind()
                    continue
                if (
                    not fixed_region
                    and exc.bucket
                    and exc.region
                    and exc.status in (301, 307, 400)
                    and exc.region != self.region_for(exc.bucket)
                    and _REGION_RE.match(exc.region)  # never paste a bad name into a host
                ):
                    fixed_region = True
                    with self._lock:
                        self._bucket_regions[exc.bucket] = exc.region
                    logger.info("bucket %s is in region %s", exc.bucket, exc.region)
                    if rewind is not None:
                        rewind()
                    continue
                if not retry.can_retry(exc):
                    raise
                error: BaseException = exc
            except (TransportError, ChecksumMismatchError) as exc:
                if not retry.can_retry(exc):
                    raise
                error = exc
            delay = retry.backoff(self._rand())
            logger.info(
                "attempt %d of %d failed (%s); retrying in %.2f s",
                retry.attempt,
                retry.max_attempts,
                error,
                delay,
            )
            self._sleep(delay)
            retry = retry.increment()
            if rewind is not None:
                rewind()

    # ------------------------------------------------------------------ requests

    def _host_and_path(self, bucket: str, key: str | None) -> tuple[str, str]:
        # A name that is not one DNS label (dots, upper case, "_": legacy us-east-1 names)
        # cannot be a host name: path-style whatever the style asks.
        dns = _DNS_BUCKET_RE.match(bucket) is not None
        virtual = dns and (self._style == "virtual" or (self._style == "auto" and not self._custom))
        if self._custom:
            host = self._netloc
        else:
            region = self.region_for(bucket)
            suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
            host = f"s3.{region}.{suffix}"
        if virtual:
            host = f"{bucket}.{host}"
            path = "/" + (key or "")
        else:
            path = f"/{bucket}" + ("/" + key if key is not None else "")
        return host, self._base_path + path

    def request(
        self,
        method: str,
        bucket: str,
        key: str | None = None,
        *,
        query: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> Response:
        """Send a request with an in-memory body under the retry policy (see :meth:`send`).

        The whole response body is read inside each attempt, so a reply cut short or stalled
        is retried like any other transport failure. Returns a closed-over Response whose
        :meth:`Response.read` gives the buffered body.
        """

        def once() -> Response:
            return self.send(
                method, bucket, key, query=query, headers=headers, body=body, preload=True
            )

        return self._attempts(once)

    def send(
        self,
        method: str,
        bucket: str,
        key: str | None = None,
        *,
        query: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        payload_hash: str | None = None,
        preload: bool = False,
    ) -> Response:
        """Sign and send one request, one attempt; return the response on 2xx (body unread,
        or already buffered with ``preload``).

        ``key`` is the decoded object key (``None`` for bucket operations). For a streamed
        ``body`` pass ``content-length`` in ``headers`` and, over HTTP, its ``payload_hash``.

        Raises:
            S3Error: (or a subclass) for any non-2xx answer.
            TransportError: when no answer arrived.
            CredentialsError: when credentials cannot be resolved.
        """
        host, raw_path = self._host_and_path(bucket, key)
        path = sigv4.encode_path(raw_path)
        hdrs = {k.lower(): v for k, v in (headers or {}).items()}
        hdrs["host"] = host
        if isinstance(body, bytes):
            hdrs["content-length"] = str(len(body))
        if payload_hash is None:
            if not self._sign_payload:
                payload_hash = sigv4.UNSIGNED_PAYLOAD
            elif isinstance(body, bytes):
                payload_hash = hashlib.sha256(body).hexdigest()
            elif body is None:
                payload_hash = sigv4.EMPTY_SHA256
            else:
                raise ValueError("a streamed body over plain HTTP needs its payload_hash")
        if self._credentials is not None:
            creds = self._credentials.resolve()
            if creds.token and self._scheme == "http" and not self._warned_token:
                self._warned_token = True
                logger.warning(
                    "sending a session token over plain http to %s: anyone on the path can "
                    "read and reuse it; use https",
                    self._netloc,
                )
            hdrs = sigv4.sign_headers(
                method=method,
                path=path,
                query=query,
                headers=hdrs,
                payload_hash=payload_hash,
                credentials=creds,
                region=self.region_for(bucket),
                service="s3",
                now=self._now(),
            )
        url = f"{self._scheme}://{host}{path}"
        if query:
            url += "?" + sigv4.canonical_query(query)
        response = self._transport.send(Request(method, url, hdrs, body, preload=preload))
        if response.status >= 300:
            try:
                raise self._error(response, bucket, key)
            finally:
                response.close()
        return response

    def _error(self, response: Response, bucket: str, key: str | None) -> S3Error:
        try:
            body = b"" if response.status == 304 else read_capped(response)
        except S3Error:
            body = b""  # an oversized error page: keep the status, drop the body
        info = s3xml.parse_error(body)
        status = response.status
        request_id = response.headers.get("x-amz-request-id")
        region = response.headers.get("x-amz-bucket-region")
        date = response.headers.get("date")
        server_time: float | None = None
        if date:
            try:
                server_time = s3xml.parse_http_date(date)
            except ValueError:
                server_time = None
        if info is not None:
            code, message = info.code, info.message
            request_id = info.request_id or request_id
            region = info.region or region
        else:
            # HEAD answers carry no body: derive the code from the status, as SDKs do.
            code = {
                301: "PermanentRedirect",
                304: "NotModified",
                400: "BadRequest",
                403: "AccessDenied",
                404: "NotFound" if key is not None else "NoSuchBucket",
                412: "PreconditionFailed",
            }.get(status, f"HTTP{status}")
            message = (
                "no error body (HEAD): wrong credentials, or no permission for this key"
                if status == 403
                else ""
            )
        cls: type[S3Error] = S3Error
        if status == 404:
            cls = NotFoundError
        elif status == 403:
            cls = AccessDeniedError
        return cls(
            code,
            message,
            status=status,
            request_id=request_id,
            bucket=bucket,
            key=key,
            region=region,
            server_time=server_time,
        )

    # ------------------------------------------------------------------ operations

    def list_objects(
        self,
        bucket: str,
        prefix: str = "",
        *,
        delimiter: str | None = None,
        page_size: int = 1000,
        concurrency: int = 1,
    ) -> Iterator[ObjectInfo | str]:
        """Yield every object under ``prefix`` (ListObjectsV2, all pages, in key order).

        With a ``delimiter``, common prefixes are yielded as ``str`` (e.g. ``"data/sub/"``)
        mixed with objects in key order. Keys are requested with ``encoding-type=url`` so
        any key survives XML. The listing is complete when the iterator ends; a failure on
        any page raises (S3Error / TransportError), so a partial listing is never mistaken
        for a complete one. Pages after the first are fetched ahead (up to
        :data:`PREFETCH_PAGES`) on the client's listing threads while one is consumed.

        ``concurrency > 1`` (no delimiter): a listing longer than one page goes on as
        :func:`pos3lite.s3.listing.list_entries_adaptive` with that window, which may raise
        ListingOrderError (then list again with ``concurrency=1``).
        """
        if concurrency > 1 and not delimiter:
            for entry in listing.list_entries_adaptive(
                self,
                bucket,
                prefix,
                executor=self.list_executor(),
                window=concurrency,
                page_size=page_size,
            ):
                yield ObjectInfo(*entry)
            return
        fetch = functools.partial(
            self.list_page, bucket, prefix, delimiter=delimiter, page_size=page_size
        )
        # A page is parsed inside its attempt, so a garbled 200 answer is retried.
        page = fetch(token=None)
        ahead = (
            listing._Listing(
                lambda token: fetch(token=token),
                self.list_executor(),
                PREFETCH_PAGES,
                page.next_token,
            )
            if page.next_token
            else None
        )
        if ahead is not None:
            ahead.start()  # the next pages are fetched while this one is consumed
        try:
            while True:
                if delimiter:
                    merged: list[tuple[str, ObjectInfo | str]] = [
                        (e[0], ObjectInfo(*e)) for e in page.entries
                    ]
                    merged += [(p, p) for p in page.common_prefixes]
                    merged.sort(key=lambda item: item[0].encode("utf-8", "surrogatepass"))
                    for _, item in merged:
                        yield item
                else:
                    for entry in page.entries:
                        yield ObjectInfo(*entry)
                if ahead is None:
                    return
                nxt = ahead.take()
                if nxt is None:
                    return
                page = nxt
        finally:
            # A consumer that stops early (or fails) stops the chain; its pages go unused.
            if ahead is not None:
                ahead.stop()

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
    ) -> listscan.ScannedPage:
        """One ListObjectsV2 page (``encoding-type=url``, ``max-keys=page_size``), parsed by
        the tree-less scanner inside each attempt, under the retry policy: ``token`` is the
        continuation token of the page before, ``start_after`` a key to start after (the
        first page of a listing only). ``etag=False`` keeps ``""`` for ETags.

        Raises S3Error (``MalformedResponse`` for an unreadable page, after the retries) or
        TransportError. Spec: Amazon S3 API Reference, "ListObjectsV2".
        """
        query = [("list-type", "2"), ("encoding-type", "url"), ("max-keys", str(page_size))]
        if prefix:
            query.append(("prefix", prefix))
        if delimiter:
            query.append(("delimiter", delimiter))
        if token:
            query.append(("continuation-token", token))
        if start_after:
            query.append(("start-after", start_after))
        return self._attempts(functools.partial(self._list_page, bucket, query, etag))

    def _list_page(
        self, bucket: str, query: list[tuple[str, str]], etag: bool = True
    ) -> listscan.ScannedPage:
        with self.send("GET", bucket, None, query=query) as resp:
            body = read_capped(resp, bucket=bucket)
        try:
            # The tree-less scanner (same results as s3xml.parse_list_objects_v2); its
            # MalformedListingError is a ValueError.
            return listscan.scan_list_objects_v2(body, etag=etag)
        except ValueError as exc:
            raise _malformed("unreadable ListObjectsV2 page", exc, bucket, None) from None

    def list_executor(self) -> Executor:
        """The client's listing threads (:data:`LIST_THREADS`, created on first use, shut
        down by :meth:`close`): listing pages are fetched there, never on a transfer pool,
        so a listing never queues behind transfers."""
        with self._lock:
            if self._list_pool is None:
                self._list_pool = ThreadPoolExecutor(
                    LIST_THREADS, thread_name_prefix="pos3lite-list"
                )
            return self._list_pool

    def head_object(self, bucket: str, key: str, *, part_number: int | None = None) -> ObjectInfo:
        """HeadObject: size, ETag and LastModified of one object (bytes, epoch seconds).

        With ``part_number`` the size is that part's (``?partNumber=N``), which tells the part
        size of a multipart object. Raises NotFoundError when the key does not exist.
        """
        query = [("partNumber", str(part_number))] if part_number is not None else []
        with self.request("HEAD", bucket, key, query=query) as resp:
            return _object_info(key, resp, bucket=bucket)

    def head_part(self, bucket: str, key: str, part_number: int) -> tuple[int, int | None]:
        """HeadObject with ``?partNumber=N``: ``(size of that part in bytes, parts count)``.

        The parts count comes from ``x-amz-mp-parts-count``; ``None`` means the server did
        not honour ``partNumber`` (it answered for the whole object), so the size is not a
        part size. Raises S3Error when the server refuses the parameter.
        """
        query = [("partNumber", str(part_number))]
        with self.request("HEAD", bucket, key, query=query) as resp:
            info = _object_info(key, resp, bucket=bucket)
            count = resp.headers.get("x-amz-mp-parts-count", "").strip()
        return info.size, int(count) if count.isdigit() else None

    def get_object(
        self,
        bucket: str,
        key: str,
        out: BinaryIO,
        *,
        if_match: str | None = None,
        on_bytes: ByteCallback | None = None,
        byte_range: tuple[int, int] | None = None,
        part_number: int | None = None,
        size_hint: int | None = None,
        want_md5: bool = True,
    ) -> GetResult:
        """GetObject streamed into the binary file ``out`` from its current position.

        Args:
            if_match: an ETag; S3 answers 412 PreconditionFailed if the object changed, so a
                download is never stitched from two versions.
            on_bytes: progress callback; gets a negative count when an attempt rewinds.
            byte_range: ``(first, last)`` byte offsets, inclusive (HTTP Range, RFC 9110).
            part_number: fetch one part of a multipart object (``?partNumber=N``).
            size_hint: the expected size in bytes (from the listing); bodies up to 1 MiB
                are read in one go instead of streamed.
            want_md5: compute the MD5 of a range or part (``GetResult.md5``); a whole object
                is always hashed, since it is verified against its ETag.

        Returns:
            GetResult with the bytes written, the ETag, LastModified and the MD5 (hex) of the
            bytes received. A whole single-part object is verified against its ETag while it
            streams (skipped for SSE-KMS/SSE-C, whose ETags are not MD5s).

        Raises:
            S3Error: e.g. NotFoundError, or PreconditionFailed (412) for ``if_match``.
            TransportError: no answer, or the body was cut short (checked against
                Content-Length), after the retries.
            ChecksumMismatchError: the bytes do not match the ETag, after the retries.
        """
        headers: dict[str, str] = {}
        if if_match:
            headers["if-match"] = f'"{if_match}"'
        if byte_range is not None:
            headers["range"] = f"bytes={byte_range[0]}-{byte_range[1]}"
        query = [("partNumber", str(part_number))] if part_number is not None else []
        whole = byte_range is None and part_number is None
        if whole:
            headers["x-amz-checksum-mode"] = "ENABLED"  # ask for x-amz-checksum-* headers
        preload = size_hint is not None and size_hint <= _PRELOAD_MAX
        start = out.tell()
        reported = [0]
        mismatched: list[tuple[int, str]] = []  # (size, md5) of attempts that failed the ETag

        def rewind() -> None:
            out.seek(start)
            if whole:
                out.truncate()
            if on_bytes is not None and reported[0]:
                on_bytes(-reported[0])
            reported[0] = 0

        def once() -> GetResult:
            with self.send(
                "GET", bucket, key, query=query, headers=headers, preload=preload
            ) as resp:
                expected = _content_length(resp, bucket, key, "-1")
                info = _object_info(key, resp, size=0, bucket=bucket)
                md5 = hashlib.md5(usedforsecurity=False) if whole or want_md5 else None
                checksum = _checksum_for(resp) if whole else None
                written = 0
                for chunk in resp.iter_bytes():
                    out.write(chunk)
                    if md5 is not None:
                        md5.update(chunk)
                    if checksum is not None:
                        checksum.update(chunk)
                    written += len(chunk)
                    if on_bytes is not None:
                        on_bytes(len(chunk))
                        reported[0] += len(chunk)
                if expected >= 0 and written != expected:
                    raise TransportError(
                        f"body of s3://{bucket}/{key} cut short: {written} of {expected} bytes"
                    )
                digest = md5.hexdigest() if md5 is not None else ""
                encrypted = _encrypted(resp)
                url = f"s3://{bucket}/{key}"
                if checksum is not None:
                    checksum.verify(url)
                elif whole and _md5_etag(info.etag, resp):
                    if not self.check_etag(url, info.etag.lower(), written, digest, mismatched):
                        _unverified(url, "the endpoint's ETags are not MD5s")
                elif whole:
                    _unverified(url, f"ETag {info.etag!r} is not an MD5 of the bytes")
            return GetResult(written, info.etag, info.last_modified, digest, encrypted)

        return self._attempts(once, rewind)

    def check_etag(
        self, url: str, etag: str, size: int, digest: str, mismatched: list[tuple[int, str]]
    ) -> bool:
        """Check a plain ETag as the MD5 (hex) of ``size`` bytes, per ``verify_etag``.

        ``mismatched`` holds ``(size, md5)`` of earlier attempts of this download that failed
        the check (the caller keeps it across retries). Returns True if the ETag was checked
        and matched, False if it was not checked; raises ChecksumMismatchError.

        In auto mode an ETag counts as an MD5 only once the endpoint proved it (one match);
        until then, two attempts of the same length and the same bytes that both disagree
        with it show the endpoint's ETags are not MD5s (hadro's ``md5(size:mtime)``): the
        data is accepted, one WARNING is logged, and ETag checks stop for this endpoint.
        """
        mode = self.verify_etag
        if mode == "off" or (mode == "auto" and self._etag_is_md5 is False):
            return False
        if digest == etag:
            if mode == "auto" and self._etag_is_md5 is None:
                self._etag_is_md5 = True
            return True
        if mode == "auto" and self._etag_is_md5 is None and (size, digest) in mismatched:
            with self._lock:
                first = self._etag_is_md5 is None
                self._etag_is_md5 = False
            if first:
                logger.warning(
                    "%s: ETags from %s are not MD5s of the bytes (two identical downloads "
                    "disagree with %s); ETag checks are off for this endpoint",
                    url,
                    self._netloc or "AWS",
                    etag,
                )
            return False
        mismatched.append((size, digest))
        raise ChecksumMismatchError(url, etag, digest)

    def put_object_from_file(
        self,
        bucket: str,
        key: str,
        path: str | os.PathLike[str],
        *,
        content_type: str | None = None,
        on_bytes: ByteCallback | None = None,
    ) -> str:
        """PutObject streamed from the file at ``path``; returns the new ETag (no quotes).

        The file is read once to compute Content-MD5 (and the SHA-256 payload hash over
        plain HTTP), then streamed; the server rejects the upload if the bytes it received
        do not match (BadDigest), and that is retried. Raises S3Error, TransportError or
        OSError.
        """
        size = os.stat(path).st_size
        if size <= _PRELOAD_MAX:
            # Small: read once, hash the bytes and send them in one write (no second read,
            # no 8 KiB streaming through http.client).
            with open(path, "rb", buffering=0) as f:
                data = f.read(size)
                while len(data) < size:
                    more = f.read(size - len(data))
                    if not more:
                        raise OSError(f"file shrank while reading it: {os.fsdecode(path)!r}")
                    data += more
            ctype = content_type or "application/octet-stream"
            return self._put_bytes(bucket, key, [], data, ctype, on_bytes)
        with _FileSlice(path, 0, size, on_bytes) as body:
            return self._put_slice("PUT", bucket, key, [], body, content_type)

    def _put_slice(
        self,
        method: str,
        bucket: str,
        key: str,
        query: list[tuple[str, str]],
        body: _FileSlice,
        content_type: str | None,
    ) -> str:
        md5, sha = body.digests(sha256=self._sign_payload)
        headers = {
            "content-length": str(body.length),
            "content-md5": base64.b64encode(md5).decode("ascii"),
        }
        if content_type is not None or not query:
            headers["content-type"] = content_type or "application/octet-stream"

        def once() -> str:
            stream: Body = b"" if body.length == 0 else cast(BinaryIO, body)
            with self.send(
                method, bucket, key, query=query, headers=headers, body=stream, payload_hash=sha
            ) as resp:
                resp.read()
                return resp.headers.get("etag", "").strip('"')

        return self._attempts(once, body.rewind)

    def put_object(
        self, bucket: str, key: str, data: bytes, *, content_type: str | None = None
    ) -> str:
        """PutObject from bytes in memory (used for directory markers); returns the ETag."""
        headers = {
            "content-md5": base64.b64encode(
                hashlib.md5(data, usedforsecurity=False).digest()
            ).decode("ascii"),
            "content-type": content_type or "application/octet-stream",
        }
        with self.request("PUT", bucket, key, headers=headers, body=data) as resp:
            resp.read()
            return resp.headers.get("etag", "").strip('"')

    # ------------------------------------------------------------------ multipart upload

    def create_multipart_upload(
        self, bucket: str, key: str, *, content_type: str | None = None
    ) -> str:
        """CreateMultipartUpload; returns the UploadId. Raises S3Error/TransportError.

        Any root element carrying an UploadId is accepted. When an attempt was retried (its
        answer lost), the server may have started an upload we never heard of: after the
        success, this key's other uploads initiated since the first attempt are aborted
        (ListMultipartUploads, then AbortMultipartUpload), so none is left orphaned.
        """
        headers = {"content-type": content_type or "application/octet-stream"}
        tries = [0]
        started = self._now().timestamp()

        def once() -> str:
            tries[0] += 1
            with self.send("POST", bucket, key, query=[("uploads", "")], headers=headers) as resp:
                body = read_capped(resp, bucket=bucket)
            try:
                return s3xml.parse_initiate_multipart(body)
            except ValueError as exc:
                raise _malformed("bad CreateMultipartUpload answer", exc, bucket, key) from None

        upload_id = self._attempts(once)
        if tries[0] > 1:
            self._abort_strays(bucket, key, upload_id, since=started - 5.0)
        return upload_id

    def _abort_strays(self, bucket: str, key: str, keep: str, *, since: float) -> None:
        """Abort ``key``'s multipart uploads initiated at or after ``since`` (epoch s), but
        ``keep``; failures are logged, never raised (the upload itself succeeded)."""
        try:
            with self.request(
                "GET", bucket, None, query=[("prefix", key), ("uploads", "")]
            ) as resp:
                uploads = s3xml.parse_list_multipart_uploads(read_capped(resp, bucket=bucket))
            for other_key, upload_id, initiated in uploads:
                if other_key == key and upload_id != keep and initiated >= since:
                    logger.info(
                        "aborting stray multipart upload %s of s3://%s/%s", upload_id, bucket, key
                    )
                    self.abort_multipart_upload(bucket, key, upload_id)
        except (Pos3liteError, ValueError) as exc:
            logger.warning(
                "could not look for stray multipart uploads of s3://%s/%s: %s", bucket, key, exc
            )

    def upload_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        path: str | os.PathLike[str],
        offset: int,
        length: int,
        *,
        on_bytes: ByteCallback | None = None,
    ) -> str:
        """UploadPart: send ``length`` bytes of ``path`` from ``offset`` as part
        ``part_number`` (1..10000), streamed (never the whole part in memory) with
        Content-MD5. Returns the part's ETag (no quotes)."""
        query = [("partNumber", str(part_number)), ("uploadId", upload_id)]
        with _FileSlice(path, offset, length, on_bytes) as body:
            return self._put_slice("PUT", bucket, key, query, body, None)

    def upload_part_bytes(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        data: bytes,
        *,
        on_bytes: ByteCallback | None = None,
    ) -> str:
        """UploadPart from bytes already in memory (read once from the file by the caller):
        Content-MD5 and, over plain HTTP, the SHA-256 payload hash are computed once over
        ``data``, which is then sent as is. Returns the part's ETag (no quotes). Raises
        S3Error or TransportError after the retries."""
        query = [("partNumber", str(part_number)), ("uploadId", upload_id)]
        return self._put_bytes(bucket, key, query, data, None, on_bytes)

    def _put_bytes(
        self,
        bucket: str,
        key: str,
        query: list[tuple[str, str]],
        data: bytes,
        content_type: str | None,
        on_bytes: ByteCallback | None,
    ) -> str:
        headers = {
            "content-length": str(len(data)),
            "content-md5": base64.b64encode(
                hashlib.md5(data, usedforsecurity=False).digest()
            ).decode("ascii"),
        }
        if content_type is not None:
            headers["content-type"] = content_type
        sha = hashlib.sha256(data).hexdigest() if self._sign_payload else None
        reported = [0]

        def once() -> str:
            with self.send(
                "PUT", bucket, key, query=query, headers=headers, body=data, payload_hash=sha
            ) as resp:
                resp.read()
                if on_bytes is not None:
                    on_bytes(len(data))
                    reported[0] = len(data)
                return resp.headers.get("etag", "").strip('"')

        def rewind() -> None:
            if on_bytes is not None and reported[0]:
                on_bytes(-reported[0])
            reported[0] = 0

        return self._attempts(once, rewind)

    def complete_multipart_upload(
        self, bucket: str, key: str, upload_id: str, parts: Sequence[tuple[int, str]]
    ) -> str:
        """CompleteMultipartUpload with ``(part_number, etag)`` pairs; returns the ETag.

        S3 may answer 200 with an ``<Error>`` body; that is raised as S3Error (and retried
        when transient).
        """
        body = s3xml.build_complete_multipart(parts)
        query = [("uploadId", upload_id)]

        def once() -> str:
            with self.send(
                "POST",
                bucket,
                key,
                query=query,
                body=body,
                headers={"content-type": "application/xml"},
            ) as resp:
                data = read_capped(resp, bucket=bucket)
            err = s3xml.parse_error(data)
            if err is not None:
                raise S3Error(
                    err.code,
                    err.message,
                    status=200,
                    request_id=err.request_id,
                    bucket=bucket,
                    key=key,
                )
            try:
                return s3xml.parse_complete_multipart(data)
            except ValueError as exc:
                raise _malformed("bad CompleteMultipartUpload answer", exc, bucket, key) from None

        return self._attempts(once)

    def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
        """AbortMultipartUpload; a missing upload (NoSuchUpload) counts as aborted."""
        try:
            with self.request("DELETE", bucket, key, query=[("uploadId", upload_id)]) as resp:
                resp.read()
        except NotFoundError:
            pass

    def delete_object(self, bucket: str, key: str) -> None:
        """DeleteObject (one key); a missing key counts as deleted. Raises S3Error."""
        try:
            with self.request("DELETE", bucket, key) as resp:
                resp.read()
        except NotFoundError as exc:
            if exc.code == "NoSuchBucket":
                raise

    def _delete_singly(self, bucket: str, keys: Sequence[str]) -> list[S3Error]:
        failures: list[S3Error] = []
        for key in keys:
            try:
                self.delete_object(bucket, key)
            except S3Error as exc:
                failures.append(exc)
        return failures

    def delete_objects(self, bucket: str, keys: Sequence[str]) -> list[S3Error]:
        """Delete ``keys`` with DeleteObjects in batches of 1000 (the S3 limit).

        Keys that XML 1.0 cannot carry (control characters) are deleted one by one with
        DeleteObject, as is everything on an endpoint that answered DeleteObjects with 501,
        ``NotImplemented`` or 405 (GCS's XML API, localbucket): that is remembered for the
        client's life, so later calls go straight to single deletes.

        Returns one S3Error per key that could not be deleted (per-key errors do not stop
        the other keys). Raises S3Error/TransportError if a whole batch request fails.
        """
        failures = self._delete_singly(bucket, [k for k in keys if not s3xml.xml_can_carry(k)])
        keys = [k for k in keys if s3xml.xml_can_carry(k)]
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            if self._no_delete_objects:
                failures += self._delete_singly(bucket, batch)
                continue
            body = s3xml.build_delete_objects(batch)
            headers = {
                "content-md5": base64.b64encode(
                    hashlib.md5(body, usedforsecurity=False).digest()
                ).decode("ascii"),
                "content-type": "application/xml",
            }
            try:
                result = self._attempts(
                    functools.partial(self._delete_batch, bucket, body, headers)
                )
            except S3Error as exc:
                if not (exc.status in (405, 501) or exc.code == "NotImplemented"):
                    raise
                logger.info(
                    "%s has no DeleteObjects (%s); deleting one key at a time",
                    self._netloc or "AWS",
                    exc.code,
                )
                self._no_delete_objects = True
                failures += self._delete_singly(bucket, batch)
                continue
            for key, code, message in result.errors:
                cls = AccessDeniedError if code == "AccessDenied" else S3Error
                failures.append(cls(code, message, status=200, bucket=bucket, key=key))
        return failures

    def _delete_batch(
        self, bucket: str, body: bytes, headers: dict[str, str]
    ) -> s3xml.DeleteResult:
        with self.send(
            "POST", bucket, None, query=[("delete", "")], headers=headers, body=body
        ) as resp:
            data = read_capped(resp, bucket=bucket)
        try:
            return s3xml.parse_delete_result(data)
        except ValueError as exc:
            raise _malformed("unreadable DeleteObjects answer", exc, bucket, None) from None

    def head_bucket(self, bucket: str) -> None:
        """HeadBucket: returns if the bucket exists and is reachable; raises S3Error if not."""
        with self.request("HEAD", bucket, None) as resp:
            resp.read()

    def create_bucket(self, bucket: str) -> None:
        """CreateBucket in this client's region (a LocationConstraint outside us-east-1)."""
        body = b""
        if self.region != "us-east-1" and not self._custom:
            body = (
                '<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                f"<LocationConstraint>{self.region}</LocationConstraint>"
                "</CreateBucketConfiguration>"
            ).encode()
        with self.request("PUT", bucket, None, body=body) as resp:
            resp.read()

    def close(self) -> None:
        """Close the transport and stop the listing threads (queued pages are dropped)."""
        with self._lock:
            pool, self._list_pool = self._list_pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        self._transport.close()

    def list_buckets(self) -> list[tuple[str, float]]:
        """ListBuckets (AWS page "ListBuckets", Amazon S3 API Reference): every bucket the
        credentials own, as ``(name, creation time in seconds since the Unix epoch)``, in the
        server's order. Follows ``ContinuationToken`` pages. Raises S3Error."""
        out: list[tuple[str, float]] = []
        token: str | None = None
        while True:
            query = [("continuation-token", token)] if token else []
            with self.request("GET", "", None, query=query) as resp:
                try:
                    root, ns, tag = s3xml._parse(read_capped(resp))
                except ValueError:  # not well-formed XML at all: not an S3 answer
                    tag = ""
                if tag != "ListAllMyBucketsResult":
                    raise S3Error(
                        "InvalidResponse",
                        "the endpoint did not answer like S3 (no ListAllMyBucketsResult)",
                        status=resp.status,
                    )
            for el in root.iter(f"{ns}Bucket"):
                created = s3xml._text(el, f"{ns}CreationDate")
                out.append(
                    (s3xml._text(el, f"{ns}Name"), s3xml.parse_iso8601(created) if created else 0.0)
                )
            token = s3xml._text(root, f"{ns}ContinuationToken") or None
            if token is None:
                return out

    # ================================================================== object API (issue 10)
    # Conditional reads and writes, copy, multipart copy and presigned URLs for
    # pos3lite.objects and pos3lite.lock. Spec: S3 API Reference "GetObject", "PutObject",
    # "CopyObject", "UploadPartCopy", "CompleteMultipartUpload", "DeleteObject"; S3 User Guide
    # "Conditional requests" and "Checking object integrity"; RFC 9110 section 13.

    def call(
        self,
        method: str,
        bucket: str,
        key: str | None,
        *,
        query: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        attempts: list[int] | None = None,
    ) -> tuple[Mapping[str, str], bytes]:
        """One request under the retry policy; returns the response headers and body.

        ``attempts``, if given, gets one item appended per attempt sent, so a caller can tell
        a 412 that followed a retried conditional write (the first attempt may have won)
        from a plain one. A 200 answer carrying an ``<Error>`` body (CopyObject,
        CompleteMultipartUpload) is raised as S3Error. 412 answers are raised as
        PreconditionFailedError. Raises S3Error, TransportError, CredentialsError.
        """

        def once() -> tuple[Mapping[str, str], bytes]:
            if attempts is not None:
                attempts.append(1)
            with self.send(
                method, bucket, key, query=query, headers=headers, body=body, preload=True
            ) as resp:
                data = b"" if method == "HEAD" else resp.read()
                copying = "x-amz-copy-source" in (headers or {})
                if method == "POST" or (method == "PUT" and copying):
                    err = s3xml.parse_error(data) if data.lstrip()[:1] == b"<" else None
                    if err is not None:
                        raise S3Error(
                            err.code,
                            err.message,
                            status=200,
                            request_id=err.request_id,
                            bucket=bucket,
                            key=key,
                        )
                return resp.headers, data

        try:
            return self._attempts(once)
        except S3Error as exc:
            raise precondition_error(exc) from None

    def open_object(
        self,
        bucket: str,
        key: str,
        *,
        headers: Mapping[str, str] | None = None,
        query: Sequence[tuple[str, str]] = (),
    ) -> Response:
        """Open a GetObject stream under the retry policy (retried until the status line and
        headers arrive); the caller reads and closes the body. 412 is raised as
        PreconditionFailedError, 404 as NotFoundError."""

        def once() -> Response:
            return self.send("GET", bucket, key, query=query, headers=headers)

        try:
            return self._attempts(once)
        except S3Error as exc:
            raise precondition_error(exc) from None

    def presign_url(
        self,
        method: str,
        bucket: str,
        key: str,
        *,
        expires: int,
        headers: Mapping[str, str] | None = None,
        query: Sequence[tuple[str, str]] = (),
    ) -> tuple[str, Credentials | None]:
        """A presigned URL (SigV4 query form, "Authenticating Requests: Using Query
        Parameters") for ``method`` on ``bucket``/``key``, valid for ``expires`` seconds
        (1..604800). ``headers`` beyond ``host`` are signed and must be sent by whoever uses
        the URL. Returns the URL and the credentials that signed it (``None`` when
        anonymous, in which case the URL is unsigned)."""
        host, raw_path = self._host_and_path(bucket, key)
        path = sigv4.encode_path(raw_path)
        hdrs = {k.lower(): v for k, v in (headers or {}).items()}
        hdrs["host"] = host
        params = list(query)
        creds: Credentials | None = None
        if self._credentials is not None:
            creds = self._credentials.resolve()
            params = sigv4.presign(
                method=method,
                path=path,
                query=params,
                headers=hdrs,
                credentials=creds,
                region=self.region_for(bucket),
                service="s3",
                now=self._now(),
                expires=expires,
            )
        url = f"{self._scheme}://{host}{path}"
        if params:
            # In signing order, X-Amz-Signature last (as the AWS SDKs write it).
            url += "?" + "&".join(f"{sigv4.uri_encode(k)}={sigv4.uri_encode(v)}" for k, v in params)
        return url, creds

    @property
    def endpoint_id(self) -> str:
        """``scheme://host[:port]`` of the endpoint (AWS: its regional host), for caches."""
        if self._custom:
            return f"{self._scheme}://{self._netloc}{self._base_path}"
        return f"https://s3.{self.region}.amazonaws.com"


def precondition_error(exc: S3Error) -> S3Error:
    """``exc`` as a PreconditionFailedError when it is an HTTP 412, else unchanged."""
    if exc.status != 412 or isinstance(exc, PreconditionFailedError):
        return exc
    return PreconditionFailedError(
        exc.code,
        exc.message,
        status=exc.status,
        request_id=exc.request_id,
        bucket=exc.bucket,
        key=exc.key,
        region=exc.region,
        server_time=exc.server_time,
    )


def read_capped(resp: Response, *, bucket: str = "", limit: int = s3xml.MAX_BODY) -> bytes:
    """Read a whole XML answer body of at most ``limit`` bytes (16 MiB).

    Raises S3Error (``MalformedResponse``, retried) when the body, or its announced
    Content-Length, is larger: such an answer is not S3's, and is never read into memory.
    """
    announced = resp.headers.get("content-length", "")
    if announced.isdigit() and int(announced) > limit:
        raise S3Error(
            MALFORMED,
            f"answer body of {announced} bytes is over {limit}",
            status=resp.status,
            bucket=bucket or None,
        )
    chunks: list[bytes] = []
    total = 0
    for chunk in resp.iter_bytes():
        total += len(chunk)
        if total > limit:
            raise S3Error(
                MALFORMED,
                f"answer body is over {limit} bytes",
                status=resp.status,
                bucket=bucket or None,
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _content_length(resp: Response, bucket: str, key: str | None, default: str) -> int:
    value = resp.headers.get("content-length", default).strip()
    if not value.lstrip("-").isdigit() or (value.startswith("-") and value != default):
        raise _malformed("bad Content-Length", ValueError(repr(value)), bucket, key)
    return int(value)


def _object_info(
    key: str, resp: Response, *, size: int | None = None, bucket: str = ""
) -> ObjectInfo:
    last_modified = resp.headers.get("last-modified")
    try:
        mtime = s3xml.parse_http_date(last_modified) if last_modified else 0.0
    except ValueError as exc:
        raise _malformed("bad Last-Modified", exc, bucket, key) from None
    return ObjectInfo(
        key=key,
        size=size if size is not None else _content_length(resp, bucket, key, "0"),
        last_modified=mtime,
        etag=resp.headers.get("etag", "").strip('"'),
    )


#: Listing pages fetched ahead of the consumer (1,000 keys each: a few MiB at most).
PREFETCH_PAGES = 4
#: Threads per client for listing pages (sequential read-ahead and split listings).
LIST_THREADS = 16


def _unverified(url: str, why: str) -> None:
    logger.warning("%s: downloaded unverified (%s)", url, why)


class _Checksum:
    """A full-object ``x-amz-checksum-*`` value from a GET, checked as the bytes stream."""

    def __init__(self, name: str, expected: str) -> None:
        import zlib

        self.name, self.expected = name, expected
        self._crc = 0
        self._hash = None if name == "crc32" else hashlib.new(name)
        self._zlib_crc32 = zlib.crc32

    def update(self, chunk: bytes) -> None:
        if self._hash is not None:
            self._hash.update(chunk)
        else:
            self._crc = self._zlib_crc32(chunk, self._crc)

    def verify(self, url: str) -> None:
        raw = self._hash.digest() if self._hash is not None else self._crc.to_bytes(4, "big")
        got = base64.b64encode(raw).decode("ascii")
        if got != self.expected:
            raise ChecksumMismatchError(url, f"{self.name} {self.expected}", got)


def _checksum_for(resp: Response) -> _Checksum | None:
    """The first full-object checksum header the answer carries, or ``None``. Composite
    checksums (``x-amz-checksum-type: COMPOSITE``, values ending ``-N``) are per-part."""
    if resp.headers.get("x-amz-checksum-type", "FULL_OBJECT").upper() == "COMPOSITE":
        return None
    for header in _CHECKSUM_HEADERS:
        value = resp.headers.get(header, "").strip()
        if value and "-" not in value:
            return _Checksum(header.rsplit("-", 1)[-1], value)
    return None


def _md5_etag(etag: str, resp: Response) -> bool:
    """True if ``etag`` is the MD5 of the object's bytes: 32 hex digits (single-part) and
    no SSE-KMS or SSE-C, whose ETags are not MD5s ("Checking object integrity", S3 guide)."""
    if len(etag) != 32 or etag.strip("0123456789abcdefABCDEF"):
        return False
    return not _encrypted(resp)


def _encrypted(resp: Response) -> bool:
    """SSE-KMS or SSE-C: encryptions under which the ETag is not the MD5 of the bytes."""
    sse = resp.headers.get("x-amz-server-side-encryption", "")
    return sse.startswith("aws:kms") or (
        "x-amz-server-side-encryption-customer-algorithm" in resp.headers
    )


class _FileSlice:
    """A read-only window ``[offset, offset + length)`` of a file, used as a request body.

    Reports bytes read to ``on_bytes``; :meth:`rewind` seeks back to the start and reports
    the negative count, so a retried attempt never double-counts progress.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        offset: int,
        length: int,
        on_bytes: ByteCallback | None,
    ) -> None:
        # Unbuffered: reads go straight to the kernel in the caller's block size.
        self._f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()/__exit__
        self._offset = offset
        self.length = length
        self._on_bytes = on_bytes
        self._pos = 0
        self._reported = 0
        self._f.seek(offset)

    def digests(self, *, sha256: bool) -> tuple[bytes, str | None]:
        """MD5 digest and (optionally) SHA-256 hex of the slice; leaves it rewound."""
        md5 = hashlib.md5(usedforsecurity=False)
        sha = hashlib.sha256() if sha256 else None
        self._f.seek(self._offset)
        left = self.length
        while left > 0:
            block = self._f.read(min(_HASH_BLOCK, left))
            if not block:
                raise OSError(f"file shrank while reading it: {self._f.name!r}")
            md5.update(block)
            if sha is not None:
                sha.update(block)
            left -= len(block)
        self._f.seek(self._offset)
        return md5.digest(), sha.hexdigest() if sha is not None else None

    def read(self, n: int = -1) -> bytes:
        left = self.length - self._pos
        if left <= 0:
            return b""
        data = self._f.read(left if n is None or n < 0 else min(n, left))
        self._pos += len(data)
        if data and self._on_bytes is not None:
            self._on_bytes(len(data))
            self._reported += len(data)
        return data

    def rewind(self) -> None:
        self._f.seek(self._offset)
        self._pos = 0
        if self._on_bytes is not None and self._reported:
            self._on_bytes(-self._reported)
        self._reported = 0

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> _FileSlice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
