"""S3Client.list_buckets over MockTransport: the service URL, pages, and non-S3 answers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pos3lite.auth.sigv4 import Credentials
from pos3lite.errors import S3Error
from pos3lite.s3.client import S3Client
from pos3lite.transport.base import MockTransport, Request, Response

NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


class _Creds:
    def resolve(self) -> Credentials:
        return Credentials("AKIDEXAMPLE", "very-secret-key")


def _page(names: list[str], token: str | None) -> bytes:
    buckets = "".join(
        f"<Bucket><Name>{n}</Name><CreationDate>2026-01-02T03:04:05.000Z</CreationDate></Bucket>"
        for n in names
    )
    more = f"<ContinuationToken>{token}</ContinuationToken>" if token else ""
    return (
        f"<ListAllMyBucketsResult {NS}><Owner><ID>x</ID></Owner><Buckets>{buckets}</Buckets>"
        f"{more}</ListAllMyBucketsResult>"
    ).encode()


def _client(handler: object, **kw: object) -> tuple[S3Client, list[Request]]:
    seen: list[Request] = []

    def record(request: Request) -> Response:
        seen.append(request)
        return handler(request)  # type: ignore[operator,no-any-return]

    client = S3Client(
        MockTransport(record),
        region="eu-west-1",
        credentials=_Creds(),
        **kw,  # type: ignore[arg-type]
    )
    return client, seen


def _ok(body: bytes, status: int = 200) -> Response:
    return Response(status, {}, chunks=iter([body]))


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        (None, "https://s3.eu-west-1.amazonaws.com/"),
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000/"),
    ],
)
def test_list_buckets_pages_and_url(endpoint: str | None, url: str) -> None:
    pages = {None: _page(["a", "b"], "t1"), "t1": _page(["c"], None)}

    def handler(request: Request) -> Response:
        token = request.url.partition("continuation-token=")[2] or None
        return _ok(pages[token])

    client, seen = _client(handler, endpoint=endpoint)
    got = client.list_buckets()
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    assert got == [("a", created), ("b", created), ("c", created)]
    assert [r.method for r in seen] == ["GET", "GET"]
    assert seen[0].url == url
    assert seen[1].url == url + "?continuation-token=t1"


@pytest.mark.parametrize(
    "body", [b"<html><body>hello</body></html>", b"not xml at all", b"<Other/>"]
)
def test_list_buckets_from_a_non_s3_server(body: bytes) -> None:
    client, _ = _client(lambda _r: _ok(body), endpoint="http://127.0.0.1:9000")
    with pytest.raises(S3Error) as info:
        client.list_buckets()
    assert "did not answer like S3" in str(info.value)
    assert info.value.request_id is None
