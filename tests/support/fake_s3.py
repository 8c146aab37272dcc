"""An in-memory S3 for MockTransport tests, with switches for servers' quirks (issue 9).

Only for answers no local server gives on demand; the integration and compatibility tiers
run against real servers.
"""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qs, quote_plus, unquote, urlsplit

from pos3lite.transport.base import Request, Response

LAST_MODIFIED = "Sat, 21 Nov 2026 23:03:25 GMT"
LISTED_ISO = "2026-11-21T23:03:25.000Z"


class FakeS3:
    def __init__(
        self,
        *,
        initiate_root: str = "InitiateMultipartUploadResult",
        part_number: str = "honour",  # honour | ignore | refuse
        fail_part: int | None = None,
        get_last_modified: str = LAST_MODIFIED,
        delete_objects_status: int = 200,
        head_status: int | None = None,
        list_error: tuple[int, bytes] | None = None,
    ) -> None:
        self.head_status = head_status  # e.g. 403: a prefix-scoped policy denies HEAD
        self.list_error = list_error
        self.objects: dict[str, bytes] = {}
        self.parts: dict[str, list[int]] = {}  # key -> part sizes of a multipart object
        self.uploads: dict[str, dict[int, bytes]] = {}
        self.aborted: list[str] = []
        self.initiate_root = initiate_root
        self.part_number = part_number
        self.fail_part = fail_part
        self.get_last_modified = get_last_modified
        self.delete_objects_status = delete_objects_status

    def etag(self, key: str) -> str:
        data = self.objects[key]
        sizes = self.parts.get(key)
        if not sizes:
            return hashlib.md5(data).hexdigest()
        digests, off = b"", 0
        for n in sizes:
            digests += hashlib.md5(data[off : off + n]).digest()
            off += n
        return f"{hashlib.md5(digests).hexdigest()}-{len(sizes)}"

    def put_multipart(self, key: str, data: bytes, part: int) -> None:
        self.objects[key] = data
        self.parts[key] = [min(part, len(data) - o) for o in range(0, len(data), part)]

    def listing(self, prefix: str) -> bytes:
        items = "".join(
            f"<Contents><Key>{quote_plus(k)}</Key><Size>{len(v)}</Size>"
            f"<LastModified>{LISTED_ISO}</LastModified><ETag>&quot;{self.etag(k)}&quot;</ETag>"
            "</Contents>"
            for k, v in sorted(self.objects.items(), key=lambda kv: kv[0].encode())
            if k.startswith(prefix)
        )
        return (
            "<ListBucketResult><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>"
            f"{items}</ListBucketResult>"
        ).encode()

    def __call__(self, r: Request) -> Response:
        u = urlsplit(r.url)
        q = parse_qs(u.query, keep_blank_values=True)
        key = unquote(u.path.split("/", 2)[2]) if u.path.count("/") >= 2 else ""
        if r.method == "GET" and "list-type" in q:
            if self.list_error is not None:
                return Response(self.list_error[0], {}, chunks=iter([self.list_error[1]]))
            return Response(200, {}, chunks=iter([self.listing(q.get("prefix", [""])[0])]))
        if r.method == "POST" and "uploads" in q:
            self.uploads[key] = {}
            root = self.initiate_root
            return Response(
                200, {}, chunks=iter([f"<{root}><UploadId>up-1</UploadId></{root}>".encode()])
            )
        if r.method == "PUT" and "uploadId" in q:
            n = int(q["partNumber"][0])
            if n == self.fail_part:
                return Response(403, {}, chunks=iter([b"<Error><Code>AccessDenied</Code></Error>"]))
            assert isinstance(r.body, bytes)
            self.uploads[key][n] = r.body
            return Response(200, {"etag": f'"{hashlib.md5(r.body).hexdigest()}"'})
        if r.method == "POST" and "uploadId" in q:
            parts = self.uploads.pop(key)
            self.put_multipart(key, b"".join(parts[n] for n in sorted(parts)), len(parts[1]))
            body = (
                f'<CompleteMultipartUploadResult><ETag>"{self.etag(key)}"</ETag>'
                "</CompleteMultipartUploadResult>"
            )
            return Response(200, {}, chunks=iter([body.encode()]))
        if r.method == "DELETE" and "uploadId" in q:
            self.aborted.append(q["uploadId"][0])
            self.uploads.pop(key, None)
            return Response(204, {})
        if r.method == "POST" and "delete" in q:
            if self.delete_objects_status != 200:
                return Response(
                    self.delete_objects_status,
                    {},
                    chunks=iter([b"<Error><Code>AccessDenied</Code></Error>"]),
                )
            import re
            from html import unescape

            assert isinstance(r.body, bytes)
            for k in re.findall(r"<Key>(.*?)</Key>", r.body.decode()):
                self.objects.pop(unescape(k), None)
            return Response(200, {}, chunks=iter([b"<DeleteResult/>"]))
        if r.method == "PUT":
            assert isinstance(r.body, bytes)
            self.objects[key] = r.body
            self.parts.pop(key, None)
            return Response(200, {"etag": f'"{self.etag(key)}"'})
        if r.method == "DELETE":
            self.objects.pop(key, None)
            return Response(204, {})
        if r.method in ("HEAD", "GET") and key not in self.objects:
            if r.method == "HEAD":
                return Response(self.head_status or 404, {})
            return Response(404, {}, chunks=iter([b"<Error><Code>NoSuchKey</Code></Error>"]))
        if r.method == "HEAD" and self.head_status:
            return Response(self.head_status, {})
        data = self.objects[key]
        headers = {"etag": f'"{self.etag(key)}"', "last-modified": self.get_last_modified}
        if r.method == "HEAD":
            if "partNumber" in q and self.part_number == "refuse":
                return Response(400, {})
            if "partNumber" in q and self.part_number == "honour" and key in self.parts:
                n = int(q["partNumber"][0])
                headers["x-amz-mp-parts-count"] = str(len(self.parts[key]))
                return Response(206, {**headers, "content-length": str(self.parts[key][n - 1])})
            return Response(200, {**headers, "content-length": str(len(data))})
        rng = r.headers.get("range")
        if rng:
            first, last = (int(x) for x in rng.split("=")[1].split("-"))
            chunk = data[first : last + 1]
            return Response(
                206, {**headers, "content-length": str(len(chunk))}, chunks=iter([chunk])
            )
        return Response(200, {**headers, "content-length": str(len(data))}, chunks=iter([data]))
