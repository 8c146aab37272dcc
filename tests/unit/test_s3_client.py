"""S3Client over MockTransport: URL building, signing inputs, error translation, XML."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime

import pytest

from pos3lite.auth.sigv4 import Credentials
from pos3lite.errors import AccessDeniedError, NotFoundError, S3Error, TransportError
from pos3lite.s3 import xml as s3xml
from pos3lite.s3.client import S3Client
from pos3lite.transport.base import MockTransport, Request, Response

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


class Static:
    def __init__(self) -> None:
        self.calls = 0

    def resolve(self) -> Credentials:
        self.calls += 1
        return Credentials("AKIDEXAMPLE", "very-secret-key", "session-token-value")


def make(handler, **kw) -> tuple[S3Client, MockTransport]:  # type: ignore[no-untyped-def]
    t = MockTransport(handler)
    kw.setdefault("region", "eu-west-1")
    kw.setdefault("credentials", Static())
    return S3Client(t, clock=lambda: NOW, **kw), t


def ok(body: bytes = b"", headers: dict[str, str] | None = None, status: int = 200) -> Response:
    return Response(status, headers or {}, chunks=iter([body]) if body else None)


@pytest.mark.parametrize(
    ("endpoint", "style", "bucket", "key", "url"),
    [
        (None, "auto", "bkt", "a b/c+d", "https://bkt.s3.eu-west-1.amazonaws.com/a%20b/c%2Bd"),
        (None, "auto", "my.bkt", "k", "https://s3.eu-west-1.amazonaws.com/my.bkt/k"),
        (None, "path", "bkt", "k", "https://s3.eu-west-1.amazonaws.com/bkt/k"),
        ("http://127.0.0.1:9000", "auto", "bkt", "k", "http://127.0.0.1:9000/bkt/k"),
        ("http://minio.local:9000", "virtual", "bkt", "k", "http://bkt.minio.local:9000/k"),
        ("http://h:1/base", "auto", "bkt", "x/../y", "http://h:1/base/bkt/x/../y"),
        ("http://h:1", "auto", "bkt", "a//b/./c~é", "http://h:1/bkt/a//b/./c~%C3%A9"),
    ],
)
def test_addressing_and_exact_paths(endpoint, style, bucket, key, url) -> None:  # type: ignore[no-untyped-def]
    client, t = make(
        lambda r: ok(headers={"content-length": "3"}), endpoint=endpoint, addressing_style=style
    )
    client.head_object(bucket, key)
    sent = t.requests[0]
    assert sent.url == url
    host = url.split("/")[2]
    assert sent.headers["host"] == host


def test_signed_headers_and_unsigned_payload_over_https() -> None:
    client, t = make(lambda r: ok(headers={"content-length": "0"}))
    client.head_object("bkt", "k")
    h = t.requests[0].headers
    assert h["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert h["x-amz-date"] == "20260102T030405Z"
    assert h["x-amz-security-token"] == "session-token-value"
    assert h["Authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260102/eu-west-1/s3/aws4_request, "
    )
    assert "very-secret-key" not in repr(t.requests[0])


def test_plain_http_signs_the_body_hash_and_sends_content_md5(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = b"hello world" * 1000
    f = tmp_path / "f"
    f.write_bytes(data)
    client, t = make(lambda r: ok(headers={"etag": '"abc"'}), endpoint="http://127.0.0.1:1")
    assert client.put_object_from_file("bkt", "k", f) == "abc"
    req = t.requests[0]
    assert req.body == data
    assert req.headers["x-amz-content-sha256"] == hashlib.sha256(data).hexdigest()
    import base64

    assert req.headers["content-md5"] == base64.b64encode(hashlib.md5(data).digest()).decode()
    assert req.headers["content-length"] == str(len(data))


def test_anonymous_requests_are_not_signed() -> None:
    client, t = make(lambda r: ok(headers={"content-length": "0"}), credentials=None)
    client.head_object("bkt", "k")
    assert "Authorization" not in t.requests[0].headers
    assert "authorization" not in t.requests[0].headers


ERROR = (
    b'<?xml version="1.0"?><Error><Code>NoSuchKey</Code><Message>The key does not exist'
    b"</Message><RequestId>REQ123</RequestId></Error>"
)


@pytest.mark.parametrize(
    ("status", "body", "cls", "code"),
    [
        (404, ERROR, NotFoundError, "NoSuchKey"),
        (404, b"", NotFoundError, "NotFound"),
        (
            403,
            b"<Error><Code>SignatureDoesNotMatch</Code></Error>",
            AccessDeniedError,
            "SignatureDoesNotMatch",
        ),
        (500, b"<Error><Code>InternalError</Code></Error>", S3Error, "InternalError"),
        (503, b"not xml", S3Error, "HTTP503"),
    ],
)
def test_errors_become_one_tree_with_fields(status, body, cls, code) -> None:  # type: ignore[no-untyped-def]
    client, _ = make(lambda r: ok(body, {"x-amz-request-id": "HDR1"}, status=status))
    with pytest.raises(cls) as info:
        client.get_object("bkt", "some/key", io.BytesIO())
    err = info.value
    assert type(err) is cls
    assert (err.code, err.status, err.bucket, err.key) == (code, status, "bkt", "some/key")
    assert err.request_id in ("REQ123", "HDR1")
    assert "s3://bkt/some/key" in str(err) and code in str(err)


def test_get_object_detects_a_short_body() -> None:
    client, _ = make(lambda r: ok(b"abc", {"content-length": "10"}))
    with pytest.raises(TransportError, match="cut short: 3 of 10"):
        client.get_object("bkt", "k", io.BytesIO())


def test_get_object_streams_and_reports_bytes() -> None:
    chunks = [b"a" * 10, b"b" * 5]

    def handler(r: Request) -> Response:
        assert r.headers["if-match"] == '"etag1"'
        return Response(
            200,
            {
                "content-length": "15",
                "etag": '"etag1"',
                "last-modified": "Wed, 21 Oct 2015 07:28:00 GMT",
            },
            chunks=iter(chunks),
        )

    client, _ = make(handler)
    out = io.BytesIO()
    seen: list[int] = []
    res = client.get_object("bkt", "k", out, if_match="etag1", on_bytes=seen.append)
    assert out.getvalue() == b"a" * 10 + b"b" * 5
    assert seen == [10, 5]
    assert (res.size, res.etag, res.last_modified) == (15, "etag1", 1445412480.0)


def page(keys: list[str], token: str | None = None, prefixes: tuple[str, ...] = ()) -> bytes:
    from urllib.parse import quote_plus

    items = "".join(
        f"<Contents><Key>{quote_plus(k)}</Key><Size>1</Size>"
        f"<LastModified>2026-11-21T23:03:25.000Z</LastModified><ETag>&quot;e&quot;</ETag>"
        "</Contents>"
        for k in keys
    )
    cps = "".join(
        f"<CommonPrefixes><Prefix>{quote_plus(p)}</Prefix></CommonPrefixes>" for p in prefixes
    )
    trunc = "true" if token else "false"
    nxt = f"<NextContinuationToken>{token}</NextContinuationToken>" if token else ""
    return (
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        "<EncodingType>url</EncodingType>"
        f"<IsTruncated>{trunc}</IsTruncated>{nxt}{items}{cps}</ListBucketResult>"
    ).encode()


def test_list_objects_paginates_with_continuation_tokens_and_decodes_keys() -> None:
    pages = {None: page(["a b", "c+d"], "tok/1=="), "tok/1==": page(["é~!"])}

    def handler(r: Request) -> Response:
        from urllib.parse import parse_qs, urlsplit

        q = parse_qs(urlsplit(r.url).query)
        assert q["encoding-type"] == ["url"] and q["list-type"] == ["2"]
        return ok(pages[q.get("continuation-token", [None])[0]])

    client, t = make(handler)
    got = list(client.list_objects("bkt", "p/"))
    assert [o.key for o in got if not isinstance(o, str)] == ["a b", "c+d", "é~!"]
    assert len(t.requests) == 2


def test_list_objects_with_delimiter_merges_prefixes_in_key_order() -> None:
    client, _ = make(lambda r: ok(page(["p/a", "p/c"], prefixes=("p/b/",))))
    got = [
        o if isinstance(o, str) else o.key for o in client.list_objects("b", "p/", delimiter="/")
    ]
    assert got == ["p/a", "p/b/", "p/c"]


def test_truncated_page_without_token_is_an_error_not_a_short_listing() -> None:
    body = b"<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>"
    client, t = make(lambda r: ok(body), sleep=lambda s: None)
    with pytest.raises(S3Error, match="NextContinuationToken") as info:
        list(client.list_objects("b"))
    assert info.value.code == "MalformedResponse"
    assert len(t.requests) == 5  # retried like any garbled answer, then raised


def test_delete_objects_batches_of_1000_and_surfaces_per_key_errors() -> None:
    seen: list[int] = []

    def handler(r: Request) -> Response:
        assert r.url.endswith("?delete=")
        assert isinstance(r.body, bytes)
        n = r.body.count(b"<Object>")
        seen.append(n)
        err = b"<Error><Key>k7</Key><Code>AccessDenied</Code><Message>no</Message></Error>"
        return ok(b"<DeleteResult>" + (err if n == 5 else b"") + b"</DeleteResult>")

    client, _ = make(handler)
    failures = client.delete_objects("bkt", [f"k{i}" for i in range(2005)])
    assert seen == [1000, 1000, 5]
    assert len(failures) == 1 and isinstance(failures[0], AccessDeniedError)
    assert failures[0].key == "k7"


def test_delete_xml_escapes_keys() -> None:
    body = s3xml.build_delete_objects(["a&b<c>'\""])
    assert b"a&amp;b&lt;c&gt;" in body
    with pytest.raises(ValueError):
        s3xml.build_delete_objects([])
    with pytest.raises(ValueError):
        s3xml.build_delete_objects(["k"] * 1001)


@pytest.mark.parametrize(
    ("text", "epoch"),
    [
        ("1970-01-01T00:00:00Z", 0.0),
        ("2026-11-21T23:03:25.000Z", 1795302205.0),
        ("2026-11-21T23:03:25.5Z", 1795302205.5),
        ("2026-11-22T00:03:25+01:00", 1795302205.0),
    ],
)
def test_parse_iso8601(text: str, epoch: float) -> None:
    assert s3xml.parse_iso8601(text) == epoch


def test_parse_iso8601_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not an ISO 8601"):
        s3xml.parse_iso8601("yesterday")


def test_parse_error_tolerates_non_error_bodies() -> None:
    assert s3xml.parse_error(b"") is None
    assert s3xml.parse_error(b"<html>") is None
    assert s3xml.parse_error(b"<Other/>") is None
    info = s3xml.parse_error(b"<Error><Code>X</Code><Region>eu-west-1</Region></Error>")
    assert info is not None and (info.code, info.region) == ("X", "eu-west-1")


@pytest.mark.parametrize(
    ("body", "token"),
    [
        (
            b"<R><IsTruncated>true</IsTruncated><NextContinuationToken>a+b/c=</NextContinuationToken>",
            "a+b/c=",
        ),
        (
            b"<R><IsTruncated>true</IsTruncated><NextContinuationToken>x&amp;lt;y</NextContinuationToken>",
            "x&lt;y",
        ),
        (
            b"<R><IsTruncated>false</IsTruncated><NextContinuationToken>t</NextContinuationToken>",
            None,
        ),
        (b"<R><IsTruncated>true</IsTruncated></R>", None),
    ],
)
def test_peek_continuation_token(body: bytes, token: str | None) -> None:
    assert s3xml.peek_continuation_token(body) == token


def _numbered_pages(seen: list[int], pages: int):  # type: ignore[no-untyped-def]
    from urllib.parse import parse_qs, urlsplit

    def handler(r: Request) -> Response:
        token = parse_qs(urlsplit(r.url).query).get("continuation-token", ["p0"])[0]
        n = int(token[1:])
        seen.append(n)
        nxt = f"p{n + 1}" if n + 1 < pages else None
        return ok(page([f"k{n:03d}"], nxt))

    return handler


def test_the_listing_chain_runs_ahead_of_a_slow_consumer_and_stays_bounded() -> None:
    # The next request must not wait for the consumer to finish a page (a slow consumer
    # used to stall the chain one page at a time), and no more than PREFETCH_PAGES parsed
    # pages are held (plus the one waiting to be queued).
    import time

    from pos3lite.s3 import client as client_mod

    seen: list[int] = []
    client, _ = make(_numbered_pages(seen, 20))
    it = client.list_objects("b")
    first = next(it)
    assert not isinstance(first, str) and first.key == "k000"
    deadline = time.monotonic() + 10
    while len(seen) < 1 + client_mod.PREFETCH_PAGES and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    assert client_mod.PREFETCH_PAGES >= 3
    assert 1 + client_mod.PREFETCH_PAGES <= len(seen) <= 2 + client_mod.PREFETCH_PAGES
    rest = [o.key for o in it if not isinstance(o, str)]
    assert rest == [f"k{n:03d}" for n in range(1, 20)]
    assert seen == list(range(20))


def test_a_consumer_that_stops_early_stops_the_listing_chain() -> None:
    import time

    from pos3lite.s3 import client as client_mod

    seen: list[int] = []
    client, _ = make(_numbered_pages(seen, 1000))
    it = client.list_objects("b")
    next(it)
    it.close()
    time.sleep(0.2)
    settled = len(seen)
    time.sleep(0.3)
    assert len(seen) == settled  # no request after the close
    assert settled <= 2 + client_mod.PREFETCH_PAGES
    client.close()  # the listing threads stop with the client


def test_an_error_on_a_later_page_is_raised_after_the_earlier_pages() -> None:
    from pos3lite.errors import S3Error

    seen: list[int] = []
    good = _numbered_pages(seen, 10)

    def handler(r: Request) -> Response:
        if "continuation-token=p3" in r.url:
            return ok(b"<Error><Code>AccessDenied</Code></Error>", status=403)
        return good(r)

    client, _ = make(handler)
    got: list[str] = []
    with pytest.raises(S3Error):
        for o in client.list_objects("b"):
            assert not isinstance(o, str)
            got.append(o.key)
    assert got == ["k000", "k001", "k002"]


def test_the_next_page_is_prefetched_with_the_pages_token() -> None:
    # The token sits after the contents: the quick peek must still find it, and the
    # prefetched request carries exactly the token the parser reads.
    tricky = (
        b"<ListBucketResult><IsTruncated>true</IsTruncated>"
        b"<Contents><Key>k</Key><Size>1</Size><LastModified>2026-11-21T23:03:25.000Z"
        b"</LastModified><ETag>e</ETag></Contents>"
        b"<NextContinuationToken>real</NextContinuationToken></ListBucketResult>"
    )
    seen: list[str] = []

    def handler(r: Request) -> Response:
        from urllib.parse import parse_qs, urlsplit

        q = parse_qs(urlsplit(r.url).query)
        seen.append(q.get("continuation-token", [""])[0])
        return ok(tricky if len(seen) == 1 else page(["z"]))

    client, _ = make(handler)
    assert [o.key for o in client.list_objects("b") if not isinstance(o, str)] == ["k", "z"]
    assert seen[0] == "" and seen[-1] == "real"
