"""The object API over MockTransport: answers no local server gives (409 conflicts, a lost
reply followed by 412, AWS's 404 for If-Match on a missing key) and presigned URLs checked
against the published SigV4 example (``../shared/sigv4-testsuite``; skipped when absent)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from pos3lite import (
    AlreadyExistsError,
    Client,
    ConfigError,
    NotFoundError,
    Pos3liteError,
    PreconditionFailedError,
    Profile,
)
from pos3lite.auth import sigv4
from pos3lite.auth.credentials import CredentialChain, StaticProvider
from pos3lite.s3.client import S3Client
from pos3lite.transport.base import MockTransport, Request, Response


def _suite() -> Path:
    """The vectors folder: $POS3LITE_SIGV4_SUITE, else ``shared/sigv4-testsuite`` beside
    any folder above this checkout (worktrees sit deeper than the main checkout)."""
    if os.environ.get("POS3LITE_SIGV4_SUITE"):
        return Path(os.environ["POS3LITE_SIGV4_SUITE"])
    for parent in Path(__file__).resolve().parents:
        if (parent / "shared" / "sigv4-testsuite").is_dir():
            return parent / "shared" / "sigv4-testsuite"
    return Path("/nonexistent/sigv4-testsuite")


SUITE = _suite()
NONCE = "x-amz-meta-pos3lite-nonce"


def error(status: int, code: str) -> Response:
    body = f"<Error><Code>{code}</Code><Message>m</Message></Error>".encode()
    return Response(status, {"content-type": "application/xml"}, chunks=iter([body]))


def ok(headers: dict[str, str] | None = None, body: bytes = b"") -> Response:
    return Response(200, headers or {}, chunks=iter([body]))


@pytest.fixture(autouse=True)
def fresh_probe_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test probes its own mock server (the answer is cached per endpoint)."""
    import pos3lite.objects as objects

    monkeypatch.setattr(objects, "_PROBED", {})


def make(handler: Callable[[Request], Response], **profile: str) -> tuple[Client, MockTransport]:
    transport = MockTransport(handler)
    p = Profile(
        local_name="mock",
        endpoint="http://s3.test",
        region="us-east-1",
        access_key="AKIDMOCK",
        secret_key="mock-secret",
        **profile,  # type: ignore[arg-type]
    )
    return Client(p, transport=transport), transport


def test_409_conditional_request_conflict_is_retried() -> None:
    answers = iter([error(409, "ConditionalRequestConflict"), ok({"etag": '"abc"'})])
    client, transport = make(lambda r: next(answers))
    assert client.put("s3://bkt/k", b"x", if_none_match="*").etag == "abc"
    assert [r.method for r in transport.requests] == ["PUT", "PUT"]
    assert all(r.headers["if-none-match"] == "*" for r in transport.requests)


def _lost_reply_then_412(head_nonce: Callable[[str], str]) -> Callable[[Request], Response]:
    """First PUT: stored, but the reply is lost (500). Second PUT: 412. HEAD: the object,
    with the nonce ``head_nonce(nonce of the first PUT)``."""
    seen: list[str] = []

    def handler(request: Request) -> Response:
        if request.method == "PUT":
            seen.append(request.headers[NONCE])
            return (
                error(500, "InternalError") if len(seen) == 1 else error(412, "PreconditionFailed")
            )
        assert request.method == "HEAD"
        return ok({"etag": '"stored"', NONCE: head_nonce(seen[0]), "content-length": "1"})

    return handler


def test_ambiguous_412_after_a_retry_is_resolved_by_the_nonce() -> None:
    client, transport = make(_lost_reply_then_412(lambda nonce: nonce))
    result = client.put("s3://bkt/k", b"x", if_none_match="*")
    assert result.etag == "stored"
    puts = [r for r in transport.requests if r.method == "PUT"]
    assert len(puts) == 2 and puts[0].headers[NONCE] == puts[1].headers[NONCE]
    assert len(puts[0].headers[NONCE]) == 32


def test_ambiguous_412_with_someone_elses_nonce_is_already_exists() -> None:
    client, _ = make(_lost_reply_then_412(lambda nonce: "f" * 32))
    with pytest.raises(AlreadyExistsError):
        client.put("s3://bkt/k", b"x", if_none_match="*")


def test_first_attempt_412_needs_no_head() -> None:
    client, transport = make(lambda r: error(412, "PreconditionFailed"))
    with pytest.raises(AlreadyExistsError):
        client.put("s3://bkt/k", b"x", if_none_match="*")
    assert [r.method for r in transport.requests] == ["PUT"]
    # each conditional PUT gets its own nonce
    with pytest.raises(AlreadyExistsError):
        client.put("s3://bkt/k", b"x", if_none_match="*")
    assert transport.requests[0].headers[NONCE] != transport.requests[1].headers[NONCE]
    # unconditional PUTs carry none
    client2, t2 = make(lambda r: ok({"etag": '"e"'}))
    client2.put("s3://bkt/k", b"x")
    assert NONCE not in t2.requests[0].headers


@pytest.mark.parametrize("status", [404, 412])
def test_if_match_on_a_missing_key_is_not_found_whatever_the_status(status: int) -> None:
    def handler(request: Request) -> Response:
        if request.method == "HEAD":
            return Response(404, {})
        return error(status, "NoSuchKey" if status == 404 else "PreconditionFailed")

    client, _ = make(handler)
    with pytest.raises(NotFoundError):
        client.put("s3://bkt/k", b"x", if_match="abc")
    with pytest.raises(NotFoundError):
        client.delete("s3://bkt/k", if_match="abc")
    with pytest.raises(NotFoundError):
        client.get("s3://bkt/k", if_match="abc")


def test_if_match_on_a_changed_key_is_precondition_failed() -> None:
    def handler(request: Request) -> Response:
        if request.method == "HEAD":
            return ok({"etag": '"other"', "content-length": "1"})
        return error(412, "PreconditionFailed")

    client, transport = make(handler)
    with pytest.raises(PreconditionFailedError) as caught:
        client.put("s3://bkt/k", b"x", if_match="abc")
    assert not isinstance(caught.value, NotFoundError)
    assert transport.requests[0].headers["if-match"] == '"abc"'


def test_get_resumes_a_cut_body_pinned_to_the_first_etag() -> None:
    data = bytes(range(256)) * 40
    from pos3lite.errors import TransportError

    def cut() -> Iterator[bytes]:
        yield data[:1000]
        raise TransportError("connection reset")

    def handler(request: Request) -> Response:
        etag = f'"{hashlib.md5(data).hexdigest()}"'
        if "range" not in request.headers:
            return Response(200, {"etag": etag, "content-length": str(len(data))}, chunks=cut())
        first = int(request.headers["range"].split("=")[1].split("-")[0])
        rest = data[first:]
        headers = {
            "etag": etag,
            "content-length": str(len(rest)),
            "content-range": f"bytes {first}-{len(data) - 1}/{len(data)}",
        }
        return Response(206, headers, chunks=iter([rest]))

    client, transport = make(handler)
    assert client.get_bytes("s3://bkt/k") == data
    resumed = transport.requests[1]
    assert resumed.headers["range"] == "bytes=1000-"
    assert resumed.headers["if-match"] == f'"{hashlib.md5(data).hexdigest()}"'


# ------------------------------------------------------------------ presign


def test_presign_matches_the_s3_documentation_example() -> None:
    case = SUITE / "s3-docs-examples" / "presign-get-object"
    if not case.is_dir():
        pytest.skip(f"SigV4 vectors not found at {case} (set POS3LITE_SIGV4_SUITE)")
    ctx = json.loads((case / "context.json").read_text())
    creds = ctx["credentials"]
    s3 = S3Client(
        MockTransport(lambda r: ok()),
        region=ctx["region"],
        endpoint="https://s3.amazonaws.com",
        addressing_style="virtual",
        credentials=CredentialChain(
            [StaticProvider(creds["access_key_id"], creds["secret_access_key"])]
        ),
        clock=lambda: datetime.fromisoformat(ctx["timestamp"].replace("Z", "+00:00")),
    )
    url, _ = s3.presign_url(
        "GET", "examplebucket", "test.txt", expires=ctx["expiration_in_seconds"]
    )
    assert url == (case / "query-signed-url.txt").read_text().strip()


def _params(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def test_presign_signs_the_session_token_and_extra_parameters() -> None:
    client, transport = make(lambda r: ok(), session_token="TOKEN/with+chars=")
    url = client.presign(
        "s3://bkt/dir/a b.txt",
        method="put",
        expires=600,
        content_type="text/csv",
        params={"partNumber": "3", "uploadId": "up-1"},
    )
    assert url.startswith("http://s3.test/bkt/dir/a%20b.txt?")
    params = _params(url)
    assert params["X-Amz-Security-Token"] == "TOKEN/with+chars="
    assert params["X-Amz-Expires"] == "600"
    assert params["X-Amz-SignedHeaders"] == "content-type;host"
    assert params["partNumber"] == "3" and params["uploadId"] == "up-1"
    assert list(params)[-1] == "X-Amz-Signature"
    # Recompute the signature from the pure steps: token and extra parameters are covered.
    query = [(k, v) for k, v in parse_qsl(urlsplit(url).query) if k != "X-Amz-Signature"]
    creq = sigv4.canonical_request(
        method="PUT",
        path=urlsplit(url).path,
        query=query,
        headers={"host": "s3.test", "content-type": "text/csv"},
        payload_hash=sigv4.UNSIGNED_PAYLOAD,
    )
    date = params["X-Amz-Date"]
    sts = sigv4.string_to_sign(
        timestamp=datetime.strptime(date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC),
        scope=sigv4.scope(date=date[:8], region="us-east-1", service="s3"),
        canonical_request=creq,
    )
    key = sigv4.signing_key(
        secret_key="mock-secret", date=date[:8], region="us-east-1", service="s3"
    )
    assert params["X-Amz-Signature"] == sigv4.signature(signing_key=key, string_to_sign=sts)
    assert transport.requests == []  # presigning sends nothing


def test_presign_response_overrides_and_limits(caplog: pytest.LogCaptureFixture) -> None:
    client, _ = make(lambda r: ok())
    url = client.presign(
        "s3://bkt/k",
        response_headers={"Content-Disposition": "attachment; filename=x.csv"},
    )
    assert _params(url)["response-content-disposition"] == "attachment; filename=x.csv"
    assert _params(url)["X-Amz-Expires"] == "3600"
    with caplog.at_level(logging.WARNING, logger="pos3lite.objects"):
        capped = client.presign("s3://bkt/k", expires=30 * 24 * 3600)
    assert _params(capped)["X-Amz-Expires"] == "604800"
    assert "7 days" in caplog.text
    for bad in [0, -5, 1.5, True]:
        with pytest.raises(ConfigError, match="expires"):
            client.presign("s3://bkt/k", expires=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="POST"):
        client.presign("s3://bkt/k", method="POST")
    with pytest.raises(ConfigError, match="x-amz-acl"):
        client.presign("s3://bkt/k", response_headers={"x-amz-acl": "public"})
    assert "mock-secret" not in url


def test_presign_warns_when_it_outlives_temporary_credentials(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ends = datetime.now(UTC) + timedelta(minutes=30)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIATEMP")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "temp-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "temp-token")
    monkeypatch.setenv("AWS_CREDENTIAL_EXPIRATION", ends.strftime("%Y-%m-%dT%H:%M:%SZ"))
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://s3.test")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("POS3LITE_PROFILES_FILE", str(tmp_path / "none.toml"))
    client = Client(transport=MockTransport(lambda r: ok()))
    with caplog.at_level(logging.WARNING, logger="pos3lite.objects"):
        short = client.presign("s3://bkt/k", expires=60)
    assert [r for r in caplog.records if r.name == "pos3lite.objects"] == []
    assert _params(short)["X-Amz-Security-Token"] == "temp-token"
    with caplog.at_level(logging.WARNING, logger="pos3lite.objects"):
        client.presign("s3://bkt/k", expires=3600)
    assert "temporary credentials" in caplog.text
    assert "temp-secret" not in caplog.text and "temp-token" not in caplog.text


def ignoring_server(stored: dict[str, bytes]) -> Callable[[Request], Response]:
    """A server that accepts If-None-Match / If-Match and ignores them (rclone serve s3,
    s3rver): every PUT succeeds, DELETE removes."""

    def handler(request: Request) -> Response:
        key = urlsplit(request.url).path
        if request.method == "PUT":
            stored[key] = request.body if isinstance(request.body, bytes) else b""
            return ok({"etag": '"e"'})
        stored.pop(key, None)
        return Response(204, {})

    return handler


def test_check_conditional_writes_detects_a_server_that_ignores_the_headers() -> None:
    stored: dict[str, bytes] = {}
    client, transport = make(ignoring_server(stored))
    assert client.check_conditional_writes("s3://bkt-ignoring/") is False
    assert stored == {}  # the probe cleaned up
    sent = len(transport.requests)
    assert client.check_conditional_writes("s3://other-bucket/prefix/") is False
    assert len(transport.requests) == sent  # cached per endpoint


def test_lock_refuses_an_endpoint_without_conditional_writes() -> None:
    from pos3lite import ConditionalWritesUnsupportedError

    stored: dict[str, bytes] = {}
    client, _ = make(ignoring_server(stored))
    lk = client.lock("s3://bkt/locks/job", lease=5)
    with pytest.raises(ConditionalWritesUnsupportedError, match=r"http://s3\.test"):
        lk.acquire()
    assert stored == {}  # no lock object written


@pytest.mark.parametrize(("dst_etag", "wins"), [("a" * 32, True), ("b" * 32, False)])
def test_ambiguous_412_on_a_create_only_copy_is_resolved_by_the_etag(
    dst_etag: str, wins: bool
) -> None:
    puts: list[Request] = []

    def handler(request: Request) -> Response:
        if request.method == "HEAD" and request.url.endswith("/src"):
            return ok({"etag": f'"{"a" * 32}"', "content-length": "3"})
        if request.method == "HEAD":
            return ok({"etag": f'"{dst_etag}"', "content-length": "3"})
        puts.append(request)
        return error(500, "InternalError") if len(puts) == 1 else error(412, "PreconditionFailed")

    client, _ = make(handler)
    if wins:
        assert client.copy("s3://bkt/src", "s3://bkt/dst", if_none_match="*").etag == "a" * 32
    else:
        with pytest.raises(AlreadyExistsError):
            client.copy("s3://bkt/src", "s3://bkt/dst", if_none_match="*")
    assert len(puts) == 2 and "x-amz-metadata-directive" not in puts[0].headers


@pytest.mark.parametrize("mode", ["on", "off"])
def test_the_profiles_verify_etag_reaches_the_object_api(mode: str) -> None:
    """``verify_etag`` in a profile governs ``Client`` reads as it governs the mirror's:
    "on" refuses bytes whose MD5 is not the (32-hex) ETag, "off" never checks it."""
    body = b"hello"
    wrong = hashlib.md5(b"other bytes").hexdigest()
    client, transport = make(
        lambda r: ok({"etag": f'"{wrong}"', "content-length": str(len(body))}, body),
        verify_etag=mode,
    )
    if mode == "off":
        assert client.get_bytes("s3://bkt/k") == body
        assert [r.method for r in transport.requests] == ["GET"]
    else:
        with pytest.raises(Pos3liteError, match=wrong):
            client.get_bytes("s3://bkt/k")
