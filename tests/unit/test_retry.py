"""Retry policy (pure) and the client's one retrying layer, over MockTransport."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from pos3lite.auth.sigv4 import Credentials
from pos3lite.errors import (
    AccessDeniedError,
    ChecksumMismatchError,
    ConnectError,
    NotFoundError,
    S3Error,
    TransportError,
)
from pos3lite.s3.client import S3Client
from pos3lite.s3.retry import Retry, is_retryable
from pos3lite.transport.base import MockTransport, Request, Response

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


class Static:
    def resolve(self) -> Credentials:
        return Credentials("AKID", "secret")


def err(status: int, code: str, extra: str = "", headers: dict[str, str] | None = None) -> Response:
    body = f"<Error><Code>{code}</Code><Message>m</Message>{extra}</Error>".encode()
    return Response(status, headers or {}, chunks=iter([body]))


def okr(body: bytes = b"", headers: dict[str, str] | None = None) -> Response:
    h = {"content-length": str(len(body))}
    h.update(headers or {})
    return Response(200, h, chunks=iter([body]) if body else None)


def scripted(
    *replies: Response | Exception | Callable[[Request], Response],
) -> tuple[S3Client, MockTransport, list[float]]:
    queue = list(replies)
    sleeps: list[float] = []

    def handler(r: Request) -> Response:
        nxt = queue.pop(0)
        if isinstance(nxt, Exception):
            raise nxt
        if callable(nxt) and not isinstance(nxt, Response):
            return nxt(r)
        return nxt

    t = MockTransport(handler)
    c = S3Client(
        t,
        region="us-east-1",
        endpoint="http://127.0.0.1:1",
        credentials=Static(),
        clock=lambda: NOW,
        sleep=sleeps.append,
        rand=lambda: 0.5,
    )
    return c, t, sleeps


@pytest.mark.parametrize(
    ("exc", "retry"),
    [
        (S3Error("SlowDown", "", status=503), True),
        (S3Error("Throttling", "", status=400), True),
        (S3Error("RequestLimitExceeded", "", status=400), True),
        (S3Error("RequestTimeout", "", status=400), True),
        (S3Error("InternalError", "", status=500), True),
        (S3Error("Weird", "", status=502), True),
        (S3Error("BadDigest", "", status=400), True),
        (TransportError("reset"), True),
        (ConnectError("refused"), True),
        (ChecksumMismatchError("s3://b/k", "a", "b"), True),
        (NotFoundError("NoSuchKey", "", status=404), False),
        (AccessDeniedError("AccessDenied", "", status=403), False),
        (S3Error("InvalidArgument", "", status=400), False),
        (ValueError("x"), False),
    ],
)
def test_what_is_retryable(exc: BaseException, retry: bool) -> None:
    assert is_retryable(exc) is retry


def test_backoff_is_exponential_full_jitter_capped_at_20s() -> None:
    r = Retry(max_attempts=20, base=0.25)
    ceilings = []
    for _ in range(10):
        ceilings.append(r.backoff(1.0))
        assert r.backoff(0.0) == 0.0
        assert r.backoff(0.5) == ceilings[-1] / 2
        r = r.increment()
    assert ceilings[:4] == [0.25, 0.5, 1.0, 2.0]
    assert max(ceilings) == 20.0
    assert Retry(max_attempts=2).increment().can_retry(TransportError("x")) is False
    with pytest.raises(ValueError, match="max_attempts"):
        Retry(max_attempts=0)


def test_throttling_then_success_re_signs_each_attempt() -> None:
    c, t, sleeps = scripted(
        err(503, "SlowDown"), err(500, "InternalError"), okr(headers={"etag": '"e"'})
    )
    info = c.head_object("bkt", "k")
    assert info.etag == "e"
    assert len(t.requests) == 3 and sleeps == [0.125, 0.25]
    assert all("Authorization" in r.headers for r in t.requests)


def test_gives_up_after_max_attempts_with_the_last_error() -> None:
    c, t, sleeps = scripted(*[err(503, "SlowDown") for _ in range(5)])
    with pytest.raises(S3Error) as info:
        c.head_object("bkt", "k")
    assert info.value.code == "SlowDown" and len(t.requests) == 5 and len(sleeps) == 4


def test_non_retryable_errors_are_raised_at_once() -> None:
    c, t, sleeps = scripted(err(403, "AccessDenied"))
    with pytest.raises(AccessDeniedError):
        c.head_object("bkt", "k")
    assert len(t.requests) == 1 and sleeps == []


def test_truncated_get_is_retried_and_the_output_rewound() -> None:
    c, _t, _ = scripted(
        Response(200, {"content-length": "6"}, chunks=iter([b"abc"])),
        TransportError("connection reset"),
        Response(200, {"content-length": "6"}, chunks=iter([b"abcdef"])),
    )
    out = io.BytesIO()
    seen: list[int] = []
    res = c.get_object("bkt", "k", out, on_bytes=seen.append)
    assert out.getvalue() == b"abcdef" and res.size == 6
    assert sum(seen) == 6 and -3 in seen  # the rewind was reported


def test_checksum_mismatch_is_retried_then_raised() -> None:
    bad = '"' + "0" * 32 + '"'
    replies = [
        Response(200, {"content-length": "3", "etag": bad}, chunks=iter([b"abc"])) for _ in range(5)
    ]
    c, t, _ = scripted(*replies)
    c.verify_etag = "on"  # auto would accept two identical downloads (test_s3_compat.py)
    out = io.BytesIO(b"")
    with pytest.raises(ChecksumMismatchError):
        c.get_object("bkt", "k", out)
    assert len(t.requests) == 5


def test_md5_etag_is_not_checked_for_sse_kms() -> None:
    bad = '"' + "0" * 32 + '"'
    c, _, _ = scripted(
        Response(
            200,
            {"content-length": "3", "etag": bad, "x-amz-server-side-encryption": "aws:kms"},
            chunks=iter([b"abc"]),
        )
    )
    assert c.get_object("bkt", "k", io.BytesIO()).encrypted is True


def test_put_body_is_rewound_for_each_attempt(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "f"
    f.write_bytes(b"payload" * 100)
    bodies: list[bytes] = []

    def capture(status: int) -> Callable[[Request], Response]:
        def h(r: Request) -> Response:
            assert isinstance(r.body, bytes)
            bodies.append(r.body)
            return err(503, "SlowDown") if status == 503 else okr(headers={"etag": '"x"'})

        return h

    c, _, _ = scripted(capture(503), capture(200))
    seen: list[int] = []
    assert c.put_object_from_file("bkt", "k", f, on_bytes=seen.append) == "x"
    assert bodies == [b"payload" * 100] * 2
    assert sum(seen) == 700


def test_clock_skew_is_corrected_from_the_date_header_once() -> None:
    date = "Fri, 02 Jan 2026 04:04:05 GMT"  # one hour ahead of NOW
    c, t, sleeps = scripted(
        err(403, "RequestTimeTooSkewed", headers={"date": date}), okr(headers={"etag": '"e"'})
    )
    c.head_object("bkt", "k")
    assert t.requests[0].headers["x-amz-date"] == "20260102T030405Z"
    assert t.requests[1].headers["x-amz-date"] == "20260102T040405Z"
    assert sleeps == []


def test_region_is_learnt_from_the_error_and_cached_per_bucket() -> None:
    c, t, _ = scripted(
        err(400, "AuthorizationHeaderMalformed", "<Region>eu-central-1</Region>"),
        okr(headers={"etag": '"e"'}),
        okr(headers={"etag": '"e"'}),
    )
    c.head_object("bkt", "k")
    c.head_object("bkt", "k2")
    assert "/us-east-1/s3/" in t.requests[0].headers["Authorization"]
    assert "/eu-central-1/s3/" in t.requests[1].headers["Authorization"]
    assert "/eu-central-1/s3/" in t.requests[2].headers["Authorization"]
    assert c.region_for("other") == "us-east-1"


def test_region_from_a_301_head_without_body_uses_the_header() -> None:
    c, t, _ = scripted(
        Response(301, {"x-amz-bucket-region": "ap-south-1"}),
        okr(headers={"etag": '"e"'}),
    )
    c.head_object("bkt", "k")
    assert "/ap-south-1/s3/" in t.requests[1].headers["Authorization"]
