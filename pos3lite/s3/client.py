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

Spec: Amazon S3 API Reference ("ListObjectsV2", "HeadObject", "GetObject", "PutObject",
"DeleteObjects", "HeadBucket", "CreateBucket", "Error responses"), and "Virtual hosting of
buckets" in the S3 User Guide.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO, Protocol, cast
from urllib.parse import urlsplit

from ..auth import sigv4
from ..auth.sigv4 import Credentials
from ..errors import AccessDeniedError, NotFoundError, S3Error
from ..transport.base import Body, Request, Response, Transport
from . import xml as s3xml
from .xml import ObjectInfo

__all__ = ["CredentialSource", "ObjectInfo", "S3Client"]

#: Called with a byte count as data moves (for progress bars); may be negative on a rewind.
ByteCallback = Callable[[int], None]

_HASH_BLOCK = 1024 * 1024


class CredentialSource(Protocol):
    """Anything that resolves to Credentials (a CredentialChain)."""

    def resolve(self) -> Credentials:
        """Return current credentials or raise CredentialsError."""
        ...


@dataclass(frozen=True, slots=True)
class GetResult:
    """What a GetObject delivered: bytes written, ETag (no quotes), LastModified (epoch s)."""

    size: int
    etag: str
    last_modified: float


class S3Client:
    """S3 operations for one endpoint, region and credential source.

    Args:
        transport: the Transport used for every request.
        region: signing region (e.g. ``"us-east-1"``).
        endpoint: ``http(s)://host[:port]`` of an S3-compatible server, or ``None`` for AWS.
        credentials: a credential source, or ``None`` for anonymous (unsigned) requests.
        addressing_style: ``"auto"``, ``"path"`` or ``"virtual"``.
        clock: returns the current time as an aware UTC datetime (injected for tests).
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
    ) -> None:
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
            self._base_path = parts.path
            self._custom = True
        else:
            self._scheme, self._netloc, self._base_path = "https", "", ""
            self._custom = False
        self._style = addressing_style

    # ------------------------------------------------------------------ requests

    def _host_and_path(self, bucket: str, key: str | None) -> tuple[str, str]:
        virtual = self._style == "virtual" or (
            self._style == "auto" and not self._custom and "." not in bucket
        )
        host = self._netloc if self._custom else f"s3.{self.region}.amazonaws.com"
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
        body: Body = None,
        payload_hash: str | None = None,
    ) -> Response:
        """Sign and send one request; return the response on 2xx (body unread).

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
            if self._scheme == "https":
                payload_hash = sigv4.UNSIGNED_PAYLOAD
            elif isinstance(body, bytes):
                payload_hash = hashlib.sha256(body).hexdigest()
            elif body is None:
                payload_hash = sigv4.EMPTY_SHA256
            else:
                raise ValueError("a streamed body over plain HTTP needs its payload_hash")
        if self._credentials is not None:
            hdrs = sigv4.sign_headers(
                method=method,
                path=path,
                query=query,
                headers=hdrs,
                payload_hash=payload_hash,
                credentials=self._credentials.resolve(),
                region=self.region,
                service="s3",
                now=self._clock(),
            )
        url = f"{self._scheme}://{host}{path}"
        if query:
            url += "?" + sigv4.canonical_query(query)
        response = self._transport.send(Request(method, url, hdrs, body))
        if response.status >= 300:
            try:
                raise self._error(response, bucket, key)
            finally:
                response.close()
        return response

    def _error(self, response: Response, bucket: str, key: str | None) -> S3Error:
        body = b"" if response.status == 304 else response.read()
        info = s3xml.parse_error(body)
        status = response.status
        request_id = response.headers.get("x-amz-request-id")
        region = response.headers.get("x-amz-bucket-region")
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
                403: "AccessDenied" if key is None else "Forbidden",
                404: "NotFound" if key is not None else "NoSuchBucket",
                412: "PreconditionFailed",
            }.get(status, f"HTTP{status}")
            message = ""
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
        )

    # ------------------------------------------------------------------ operations

    def list_objects(
        self, bucket: str, prefix: str = "", *, delimiter: str | None = None, page_size: int = 1000
    ) -> Iterator[ObjectInfo | str]:
        """Yield every object under ``prefix`` (ListObjectsV2, all pages, in key order).

        With a ``delimiter``, common prefixes are yielded as ``str`` (e.g. ``"data/sub/"``)
        mixed with objects in key order. Keys are requested with ``encoding-type=url`` so
        any key survives XML. The listing is complete when the iterator ends; a failure on
        any page raises (S3Error / TransportError), so a partial listing is never mistaken
        for a complete one.
        """
        token: str | None = None
        while True:
            query = [("list-type", "2"), ("encoding-type", "url"), ("max-keys", str(page_size))]
            if prefix:
                query.append(("prefix", prefix))
            if delimiter:
                query.append(("delimiter", delimiter))
            if token:
                query.append(("continuation-token", token))
            with self.request("GET", bucket, None, query=query) as resp:
                page = s3xml.parse_list_objects_v2(resp.read())
            if delimiter:
                merged: list[tuple[str, ObjectInfo | str]] = [(o.key, o) for o in page.objects]
                merged += [(p, p) for p in page.common_prefixes]
                merged.sort(key=lambda item: item[0].encode("utf-8"))
                for _, item in merged:
                    yield item
            else:
                yield from page.objects
            token = page.next_token
            if token is None:
                return

    def head_object(self, bucket: str, key: str) -> ObjectInfo:
        """HeadObject: size, ETag and LastModified of one object.

        Raises NotFoundError when the key does not exist.
        """
        with self.request("HEAD", bucket, key) as resp:
            return _object_info(key, resp)

    def get_object(
        self,
        bucket: str,
        key: str,
        out: BinaryIO,
        *,
        if_match: str | None = None,
        on_bytes: ByteCallback | None = None,
    ) -> GetResult:
        """GetObject streamed into the binary file ``out``; returns what was written.

        ``if_match`` (an ETag) makes S3 answer 412 PreconditionFailed if the object changed.
        Raises S3Error, or TransportError if the body is cut short (the byte count is
        checked against Content-Length).
        """
        headers = {"if-match": f'"{if_match}"'} if if_match else None
        with self.request("GET", bucket, key, headers=headers) as resp:
            expected = int(resp.headers.get("content-length", "-1"))
            written = 0
            for chunk in resp.iter_bytes():
                out.write(chunk)
                written += len(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
            if expected >= 0 and written != expected:
                from ..errors import TransportError

                raise TransportError(
                    f"body of s3://{bucket}/{key} cut short: {written} of {expected} bytes"
                )
            info = _object_info(key, resp, size=written)
        return GetResult(written, info.etag, info.last_modified)

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
        do not match (BadDigest). Raises S3Error, TransportError or OSError.
        """
        with open(path, "rb") as f:
            md5 = hashlib.md5(usedforsecurity=False)
            sha = hashlib.sha256() if self._scheme == "http" else None
            size = 0
            while block := f.read(_HASH_BLOCK):
                md5.update(block)
                if sha is not None:
                    sha.update(block)
                size += len(block)
            f.seek(0)
            headers = {
                "content-length": str(size),
                "content-md5": base64.b64encode(md5.digest()).decode("ascii"),
                "content-type": content_type or "application/octet-stream",
            }
            body: Body = cast(BinaryIO, _CountingReader(f, on_bytes)) if on_bytes else f
            if size == 0:
                body = b""
            resp = self.request(
                "PUT",
                bucket,
                key,
                headers=headers,
                body=body,
                payload_hash=sha.hexdigest() if sha is not None else None,
            )
        with resp:
            resp.read()
            return resp.headers.get("etag", "").strip('"')

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

    def delete_objects(self, bucket: str, keys: Sequence[str]) -> list[S3Error]:
        """Delete ``keys`` with DeleteObjects in batches of 1000 (the S3 limit).

        Returns one S3Error per key S3 reported it could not delete (per-key errors do not
        stop the other keys). Raises S3Error/TransportError if a whole batch request fails.
        """
        failures: list[S3Error] = []
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            body = s3xml.build_delete_objects(batch)
            headers = {
                "content-md5": base64.b64encode(
                    hashlib.md5(body, usedforsecurity=False).digest()
                ).decode("ascii"),
                "content-type": "application/xml",
            }
            with self.request(
                "POST", bucket, None, query=[("delete", "")], headers=headers, body=body
            ) as resp:
                result = s3xml.parse_delete_result(resp.read())
            for key, code, message in result.errors:
                cls = AccessDeniedError if code == "AccessDenied" else S3Error
                failures.append(cls(code, message, status=200, bucket=bucket, key=key))
        return failures

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
        """Close the transport."""
        self._transport.close()


def _object_info(key: str, resp: Response, *, size: int | None = None) -> ObjectInfo:
    last_modified = resp.headers.get("last-modified")
    return ObjectInfo(
        key=key,
        size=size if size is not None else int(resp.headers.get("content-length", "0")),
        last_modified=s3xml.parse_http_date(last_modified) if last_modified else 0.0,
        etag=resp.headers.get("etag", "").strip('"'),
    )


class _CountingReader:
    """Wraps a binary file so each read reports its byte count to a callback."""

    def __init__(self, f: BinaryIO, on_bytes: ByteCallback) -> None:
        self._f = f
        self._on_bytes = on_bytes

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        if data:
            self._on_bytes(len(data))
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()
