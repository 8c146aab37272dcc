"""S3Client against answers real S3-compatible servers give (issue 9), over MockTransport.

Each test names the server whose behaviour it reproduces; these are the answers no local
server in the integration tier gives on demand (or gives only by accident).
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import zlib
from urllib.parse import parse_qs, quote_plus, urlsplit

import pytest

from pos3lite.auth.sigv4 import Credentials
from pos3lite.errors import (
    CertificateError,
    ChecksumMismatchError,
    ConfigError,
    ConnectError,
    Pos3liteError,
    S3Error,
    TransportError,
)
from pos3lite.s3 import xml as s3xml
from pos3lite.s3.client import S3Client
from pos3lite.s3.retry import is_retryable
from pos3lite.transport.base import MockTransport, Request, Response

TOKEN = "SECRET-TOKEN-42"


class Static:
    def __init__(self, token: str | None = None) -> None:
        self.token = token

    def resolve(self) -> Credentials:
        return Credentials("AKIDEXAMPLE", "very-secret-key", self.token)


def make(handler, **kw) -> tuple[S3Client, MockTransport]:  # type: ignore[no-untyped-def]
    t = MockTransport(handler)
    kw.setdefault("region", "us-east-1")
    kw.setdefault("credentials", Static())
    kw.setdefault("endpoint", "http://127.0.0.1:9000")
    return S3Client(t, sleep=lambda s: None, **kw), t


def ok(body: bytes = b"", headers: dict[str, str] | None = None, status: int = 200) -> Response:
    return Response(status, headers or {}, chunks=iter([body]) if body else None)


def listing(keys: list[str], *, encode: bool, echo: bool) -> bytes:
    items = "".join(
        f"<Contents><Key>{quote_plus(k) if encode else k}</Key><Size>1</Size>"
        "<LastModified>2026-11-21T23:03:25.000Z</LastModified><ETag>e</ETag></Contents>"
        for k in keys
    )
    enc = "<EncodingType>url</EncodingType>" if echo else ""
    head = f"<ListBucketResult>{enc}<IsTruncated>false</IsTruncated>"
    return f"{head}{items}</ListBucketResult>".encode()


# ------------------------------------------------------------------ listing key decoding


@pytest.mark.parametrize(
    ("encode", "echo"),
    [(False, False), (True, True)],
    ids=["s3rver-raw-keys-no-echo", "aws-encoded-and-echoed"],
)
def test_listing_keys_are_decoded_only_when_the_encoding_type_is_echoed(
    encode: bool, echo: bool
) -> None:
    keys = ["100%20off.txt", "a b.txt", "a+b.txt", "x%2By"]
    client, _ = make(lambda r: ok(listing(keys, encode=encode, echo=echo)))
    got = [o.key for o in client.list_objects("b") if not isinstance(o, str)]
    assert got == keys


# ------------------------------------------------------------------ multipart


def test_create_multipart_accepts_any_root_element_with_an_upload_id() -> None:
    # rclone answers <InitiateMultipartUpload>, not <InitiateMultipartUploadResult>.
    body = (
        b"<InitiateMultipartUpload><Bucket>b</Bucket><Key>k</Key>"
        b"<UploadId>u-1</UploadId></InitiateMultipartUpload>"
    )
    client, _ = make(lambda r: ok(body))
    assert client.create_multipart_upload("b", "k") == "u-1"


def test_create_multipart_without_upload_id_is_an_s3_error() -> None:
    client, t = make(lambda r: ok(b"<html>proxy</html>"))
    with pytest.raises(S3Error) as info:
        client.create_multipart_upload("b", "k")
    assert info.value.code == "MalformedResponse"
    assert len(t.requests) == 5  # a garbled 200 is retried


def test_a_retried_create_multipart_aborts_this_keys_uploads_started_in_that_window() -> None:
    uploads = [
        ("k", "lost", "2099-01-01T00:00:00Z"),
        ("k", "mine", "2099-01-01T00:00:01Z"),
        ("k", "old", "2001-01-01T00:00:00Z"),
        ("k2", "other", "2099-01-01T00:00:00Z"),
    ]
    listed = (
        "<ListMultipartUploadsResult>"
        + "".join(
            f"<Upload><Key>{k}</Key><UploadId>{u}</UploadId><Initiated>{i}</Initiated></Upload>"
            for k, u, i in uploads
        )
        + "</ListMultipartUploadsResult>"
    ).encode()
    calls: list[str] = []

    def handler(r: Request) -> Response:
        q = parse_qs(urlsplit(r.url).query, keep_blank_values=True)
        calls.append(f"{r.method} {sorted(q)}")
        if r.method == "POST":
            if len(calls) == 1:
                raise TransportError("connection reset after the server created 'lost'")
            return ok(
                b"<InitiateMultipartUploadResult><UploadId>mine</UploadId></InitiateMultipartUploadResult>"
            )
        if r.method == "GET":
            assert q["prefix"] == ["k"]
            return ok(listed)
        assert r.method == "DELETE"
        return ok(status=204)

    client, t = make(handler)
    assert client.create_multipart_upload("b", "k") == "mine"
    aborted = [
        parse_qs(urlsplit(r.url).query)["uploadId"][0] for r in t.requests if r.method == "DELETE"
    ]
    assert aborted == ["lost"]


def test_a_first_time_create_multipart_lists_nothing() -> None:
    client, t = make(
        lambda r: ok(
            b"<InitiateMultipartUploadResult><UploadId>u</UploadId></InitiateMultipartUploadResult>"
        )
    )
    client.create_multipart_upload("b", "k")
    assert [r.method for r in t.requests] == ["POST"]


# ------------------------------------------------------------------ DeleteObjects


def test_delete_objects_writes_line_ends_as_character_references() -> None:
    bodies: list[bytes] = []

    def handler(r: Request) -> Response:
        assert isinstance(r.body, bytes)
        bodies.append(r.body)
        return ok(b"<DeleteResult/>")

    client, _ = make(handler)
    assert client.delete_objects("b", ["a\rb.txt", "t\tab"]) == []
    import xml.etree.ElementTree as ET

    sent = [k.text for k in ET.fromstring(bodies[0]).iter("Key")]
    assert sent == ["a\rb.txt", "t\tab"]  # not "a\nb.txt": another object


def test_keys_xml_cannot_carry_are_deleted_singly_and_the_batch_still_runs() -> None:
    def handler(r: Request) -> Response:
        if r.method == "POST":
            assert isinstance(r.body, bytes) and b"\x01" not in r.body
            return ok(b"<DeleteResult/>")
        return ok(status=204)

    client, t = make(handler)
    assert client.delete_objects("b", ["ctl\x01.txt", "plain.txt"]) == []
    methods = sorted((r.method, r.url.rsplit("/", 1)[-1]) for r in t.requests)
    assert methods == [("DELETE", "ctl%01.txt"), ("POST", "b?delete=")]


@pytest.mark.parametrize(
    ("text", "carried"),
    [
        ("plain/key.txt", True),
        ("tab\tlf\ncr\r del\x7f", True),  # ASCII Chars a printable-only test would refuse
        ("ctl\x01.txt", False),
        ("nul\x00", False),
        ("caf\u00e9/\U0001f600", True),
        ("lone\ud800surrogate", False),
        ("non\ufffechar", False),
        ("\u00e9\x1f", False),  # a control after a non-ASCII character
    ],
)
def test_xml_can_carry_follows_the_xml_char_production(text: str, carried: bool) -> None:
    from pos3lite.s3.xml import xml_can_carry

    assert xml_can_carry(text) is carried


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (501, b"<Error><Code>NotImplemented</Code></Error>"),  # localbucket, GCS XML API
        (405, b""),
        (400, b"<Error><Code>NotImplemented</Code></Error>"),
    ],
)
def test_no_delete_objects_falls_back_to_single_deletes_and_remembers(
    status: int, body: bytes
) -> None:
    def handler(r: Request) -> Response:
        if r.method == "POST":
            return ok(body, status=status)
        if r.url.endswith("/gone"):
            return ok(b"<Error><Code>NoSuchKey</Code></Error>", status=404)
        return ok(status=204)

    client, t = make(handler)
    assert client.delete_objects("b", ["x", "gone"]) == []
    assert client.delete_objects("b", ["y"]) == []
    assert [r.method for r in t.requests] == ["POST", "DELETE", "DELETE", "DELETE"]


def test_single_delete_failures_are_per_key() -> None:
    def handler(r: Request) -> Response:
        if r.method == "POST":
            return ok(b"<Error><Code>NotImplemented</Code></Error>", status=501)
        if r.url.endswith("/locked"):
            return ok(b"<Error><Code>AccessDenied</Code></Error>", status=403)
        return ok(status=204)

    client, _ = make(handler)
    failures = client.delete_objects("b", ["a", "locked", "c"])
    assert [(f.key, f.code) for f in failures] == [("locked", "AccessDenied")]


# ------------------------------------------------------------------ addressing and region


@pytest.mark.parametrize("region", ["attacker.example#", "EU-WEST-1", "", "a" * 64, "us east"])
def test_bad_region_names_are_refused(region: str) -> None:
    with pytest.raises(ConfigError, match="region"):
        make(lambda r: ok(), region=region, endpoint=None)


def test_a_301_naming_a_bad_region_is_not_followed() -> None:
    redirect = b"<Error><Code>PermanentRedirect</Code><Region>attacker.example#</Region></Error>"
    client, t = make(lambda r: ok(redirect, status=301), endpoint=None, credentials=Static(TOKEN))
    with pytest.raises(S3Error):
        client.head_bucket("bkt")
    assert len(t.requests) == 1
    assert all("attacker" not in r.url for r in t.requests)


@pytest.mark.parametrize(
    ("bucket", "region", "url"),
    [
        ("My_Bucket", "us-east-1", "https://s3.us-east-1.amazonaws.com/My_Bucket/k"),
        ("bkt", "cn-north-1", "https://bkt.s3.cn-north-1.amazonaws.com.cn/k"),
        ("my.bkt", "cn-northwest-1", "https://s3.cn-northwest-1.amazonaws.com.cn/my.bkt/k"),
    ],
)
def test_path_style_for_non_dns_bucket_names_and_the_cn_domain(
    bucket: str, region: str, url: str
) -> None:
    client, t = make(lambda r: ok(headers={"content-length": "0"}), endpoint=None, region=region)
    client.head_object(bucket, "k")
    assert t.requests[0].url == url


def test_forced_virtual_style_still_uses_path_style_for_non_dns_names() -> None:
    client, t = make(lambda r: ok(headers={"content-length": "0"}), addressing_style="virtual")
    client.head_object("Under_Score", "k")
    assert t.requests[0].url == "http://127.0.0.1:9000/Under_Score/k"


@pytest.mark.parametrize(
    ("endpoint", "host"),
    [
        ("https://s3.example.com:443", "s3.example.com"),
        ("http://minio.local:80/", "minio.local"),
        ("http://minio.local:443", "minio.local:443"),
        ("https://[::1]:443", "[::1]"),
    ],
)
def test_default_ports_are_stripped_from_host(endpoint: str, host: str) -> None:
    client, t = make(lambda r: ok(headers={"content-length": "0"}), endpoint=endpoint)
    client.head_object("bkt", "k")
    assert t.requests[0].headers["host"] == host
    assert t.requests[0].url.split("/")[2] == host


def test_a_session_token_over_plain_http_warns_once_naming_the_endpoint(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, _ = make(lambda r: ok(headers={"content-length": "0"}), credentials=Static(TOKEN))
    with caplog.at_level(logging.WARNING, logger="pos3lite.s3.client"):
        client.head_object("bkt", "a")
        client.head_object("bkt", "b")
    warnings = [r for r in caplog.records if "session token" in r.getMessage()]
    assert len(warnings) == 1 and "127.0.0.1:9000" in warnings[0].getMessage()
    assert TOKEN not in warnings[0].getMessage()


def test_no_token_warning_over_https_or_without_a_token(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pos3lite.s3.client"):
        a, _ = make(lambda r: ok(headers={"content-length": "0"}), endpoint="https://h")
        a.head_object("bkt", "a")
        b, _ = make(lambda r: ok(headers={"content-length": "0"}))
        b.head_object("bkt", "a")
    assert not [r for r in caplog.records if "session token" in r.getMessage()]


# ------------------------------------------------------------------ malformed answers


def test_an_html_200_listing_is_retried_then_an_s3_error() -> None:
    answers = [
        ok(b"<html><body>captive portal</body></html>"),
        ok(listing(["k"], encode=False, echo=False)),
    ]
    client, t = make(lambda r: answers.pop(0))
    assert [o.key for o in client.list_objects("b") if not isinstance(o, str)] == ["k"]
    assert len(t.requests) == 2

    client, _ = make(lambda r: ok(b"<html>portal</html>"))
    with pytest.raises(S3Error) as info:
        list(client.list_objects("b"))
    assert isinstance(info.value, Pos3liteError) and info.value.code == "MalformedResponse"


@pytest.mark.parametrize(
    "headers",
    [{"content-length": "abc"}, {"content-length": "3", "last-modified": "yesterday"}],
)
def test_malformed_headers_become_s3_errors(headers: dict[str, str]) -> None:
    client, _ = make(lambda r: ok(b"abc", headers=headers))
    with pytest.raises(S3Error) as info:
        client.head_object("b", "k")
    assert info.value.code == "MalformedResponse"
    with pytest.raises(S3Error):
        client.get_object("b", "k", io.BytesIO())


def test_answer_bodies_are_capped_at_16_mib() -> None:
    big = ok(b"x", headers={"content-length": str(s3xml.MAX_BODY + 1)})
    client, _ = make(lambda r: big)
    with pytest.raises(S3Error, match="over"):
        list(client.list_objects("b"))

    def endless(r: Request) -> Response:
        chunk = b"<" * (1024 * 1024)
        return Response(200, {}, chunks=iter([chunk] * 17))

    client, _ = make(endless)
    with pytest.raises(S3Error, match="over"):
        list(client.list_objects("b"))


def test_a_failed_tls_certificate_is_final() -> None:
    import ssl

    from urllib3.exceptions import SSLError

    from pos3lite.transport.urllib3 import _translate

    req = Request("GET", "https://h/b/k")
    with pytest.raises(CertificateError) as info, _translate(req):
        raise SSLError(ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] x"))
    assert not is_retryable(info.value)
    with pytest.raises(ConnectError) as other, _translate(req):
        raise SSLError("EOF occurred in violation of protocol")
    assert not isinstance(other.value, CertificateError) and is_retryable(other.value)


# ------------------------------------------------------------------ ETags and checksums


def _get(body: bytes, etag: str, **extra: str) -> Response:
    return ok(body, headers={"content-length": str(len(body)), "etag": f'"{etag}"', **extra})


def test_etag_not_md5_is_accepted_after_two_identical_downloads(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # hadro: ETag = md5(size:mtime). Two identical downloads disagreeing with it prove the
    # endpoint's ETags are not MD5s; the data is accepted and checks stop, with one WARNING.
    fake = hashlib.md5(b"3:1700000000").hexdigest()
    client, t = make(lambda r: _get(b"abc", fake))
    with caplog.at_level(logging.WARNING, logger="pos3lite.s3.client"):
        out = io.BytesIO()
        assert client.get_object("b", "k", out).size == 3 and out.getvalue() == b"abc"
        assert len(t.requests) == 2
        client.get_object("b", "k2", io.BytesIO())
    assert len(t.requests) == 3  # no more checks on this endpoint
    assert len([r for r in caplog.records if "checks are off" in r.getMessage()]) == 1
    assert any("unverified" in r.getMessage() for r in caplog.records)


def test_different_bytes_on_retry_are_not_taken_for_a_non_md5_endpoint() -> None:
    fake = "0" * 32
    bodies = [b"abc", b"abd", b"abd"]
    client, t = make(lambda r: _get(bodies.pop(0), fake))
    out = io.BytesIO()
    client.get_object("b", "k", out)
    assert len(t.requests) == 3 and out.getvalue() == b"abd"  # two identical, then accepted


def test_an_endpoint_that_proved_its_etags_keeps_being_checked() -> None:
    good = hashlib.md5(b"abc").hexdigest()
    answers = [_get(b"abc", good)] + [_get(b"abX", good) for _ in range(5)]
    client, t = make(lambda r: answers.pop(0))
    client.get_object("b", "k", io.BytesIO())
    with pytest.raises(ChecksumMismatchError):
        client.get_object("b", "k", io.BytesIO())
    assert len(t.requests) == 6


def test_verify_etag_on_and_off() -> None:
    client, t = make(lambda r: _get(b"abc", "0" * 32), verify_etag="on")
    with pytest.raises(ChecksumMismatchError):
        client.get_object("b", "k", io.BytesIO())
    assert len(t.requests) == 5
    client, t = make(lambda r: _get(b"abc", "0" * 32), verify_etag="off")
    client.get_object("b", "k", io.BytesIO())
    assert len(t.requests) == 1
    with pytest.raises(ConfigError, match="verify_etag"):
        make(lambda r: ok(), verify_etag="maybe")


def test_checksum_headers_are_preferred_to_the_etag() -> None:
    data = b"hello"
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    sha = base64.b64encode(hashlib.sha256(data).digest()).decode()
    seen: list[Request] = []

    def handler(r: Request) -> Response:
        seen.append(r)
        return _get(data, "0" * 32, **{"x-amz-checksum-crc32": crc})

    client, _ = make(handler, verify_etag="on")
    client.get_object("b", "k", io.BytesIO())  # the bad ETag is not consulted
    assert seen[0].headers["x-amz-checksum-mode"] == "ENABLED"
    client, t = make(lambda r: _get(b"hellX", "0" * 32, **{"x-amz-checksum-sha256": sha}))
    with pytest.raises(ChecksumMismatchError, match="sha256"):
        client.get_object("b", "k", io.BytesIO())
    assert len(t.requests) == 5
