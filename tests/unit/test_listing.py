"""Streamed and split listings over MockTransport: same entries, key order, bounded work.

The handler implements ListObjectsV2 (prefix, delimiter, max-keys, continuation token,
encoding-type=url) over a fixed key set in UTF-8 byte order, as S3 lists; the real-server
tests are in tests/integration/test_listing_split.py.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from urllib.parse import parse_qs, quote_plus, urlsplit

import pytest

from pos3lite.auth.sigv4 import Credentials
from pos3lite.errors import AccessDeniedError
from pos3lite.s3.client import S3Client
from pos3lite.s3.listing import list_entries, list_entries_split
from pos3lite.s3.retry import Retry
from pos3lite.transport.base import MockTransport, Request, Response

KEYS = sorted(
    [
        "a-b/x",
        "a.txt",
        "a/1",
        "a/2",
        "a/sub/3",
        "a/sub/4",
        "a//double",
        "a0",
        "b/only",
        "c/é/ü",
        "c/z",
        "d",
        "e/" + "x" * 3,
        "e/y",
        "e/z/",
        "f+g/h i",
        "top-1",
        "top-2",
        "top-3",
        "z/1",
        "z/2",
        "z/3",
    ],
    key=lambda k: k.encode(),
)


class Server:
    def __init__(self, keys: list[str], *, delay: float = 0.0, deny: str | None = None) -> None:
        self.keys = keys
        self.delay = delay
        self.deny = deny
        self.lock = threading.Lock()
        self.requests: list[dict[str, str]] = []
        self.active = 0
        self.max_active = 0

    def __call__(self, r: Request) -> Response:
        q = {k: v[0] for k, v in parse_qs(urlsplit(r.url).query, keep_blank_values=True).items()}
        with self.lock:
            self.requests.append(q)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            time.sleep(self.delay)
            if self.deny is not None and q.get("prefix", "") == self.deny:
                return Response(403, {}, chunks=iter([b"<Error><Code>AccessDenied</Code></Error>"]))
            return Response(200, {}, chunks=iter([self.page(q)]))
        finally:
            with self.lock:
                self.active -= 1

    def page(self, q: dict[str, str]) -> bytes:
        prefix, delim = q.get("prefix", ""), q.get("delimiter")
        after, limit = q.get("continuation-token", ""), int(q["max-keys"])
        items: list[tuple[str, bool]] = []  # (key or common prefix, is_prefix)
        for key in self.keys:
            if not key.startswith(prefix):
                continue
            rest = key[len(prefix) :]
            if delim and delim in rest:
                key, is_prefix = prefix + rest[: rest.index(delim) + 1], True
            else:
                is_prefix = False
            if after and key.encode() <= after.encode():
                continue
            if items and items[-1][0] == key:
                continue
            items.append((key, is_prefix))
        page, more = items[:limit], len(items) > limit
        body = "".join(
            f"<CommonPrefixes><Prefix>{quote_plus(k)}</Prefix></CommonPrefixes>"
            if p
            else f"<Contents><Key>{quote_plus(k)}</Key><LastModified>2026-01-01T00:00:00Z"
            f"</LastModified><ETag>&quot;{len(k)}&quot;</ETag><Size>{len(k)}</Size></Contents>"
            for k, p in page
        )
        token = f"<NextContinuationToken>{page[-1][0]}</NextContinuationToken>" if more else ""
        return (
            '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<EncodingType>url</EncodingType><IsTruncated>{'true' if more else 'false'}"
            f"</IsTruncated>{token}{body}</ListBucketResult>"
        ).encode()


class Static:
    def resolve(self) -> Credentials:
        return Credentials("AKIDEXAMPLE", "very-secret-key")


def client_for(server: Server) -> S3Client:
    now = datetime(2026, 1, 2, tzinfo=UTC)
    return S3Client(
        MockTransport(server),
        region="us-east-1",
        credentials=Static(),
        clock=lambda: now,
        retry=Retry(max_attempts=1),
    )


def expected(prefix: str = "") -> list[tuple[str, int, float, str]]:
    when = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    return [(k, len(k), when, str(len(k))) for k in KEYS if k.startswith(prefix)]


@pytest.mark.parametrize("page_size", [1, 2, 1000])
@pytest.mark.parametrize("window", [1, 2, 8])
@pytest.mark.parametrize("prefix", ["", "a", "a/", "e/", "nothing/"])
def test_split_listing_equals_the_sequential_listing_in_key_order(
    prefix: str, window: int, page_size: int
) -> None:
    client = client_for(Server(KEYS))
    with ThreadPoolExecutor(4) as pool:
        seq = list(list_entries(client, "b", prefix, page_size=page_size))
        split = list(
            list_entries_split(
                client, "b", prefix, executor=pool, window=window, page_size=page_size
            )
        )
    assert seq == expected(prefix)
    assert split == seq


def test_split_listing_runs_sub_prefixes_concurrently_within_the_window() -> None:
    keys = sorted(f"d{i:02d}/k{j}" for i in range(12) for j in range(3))
    server = Server(keys, delay=0.02)
    with ThreadPoolExecutor(16) as pool:
        got = list(list_entries_split(client_for(server), "b", executor=pool, window=3))
    assert [e[0] for e in got] == keys
    # the top listing plus at most ``window`` sub-listings, each one page at a time
    assert 2 <= server.max_active <= 4
    assert len(server.requests) == 1 + 12


def test_sequential_listing_reads_ahead_at_most_depth_pages() -> None:
    keys = [f"k{i:04d}" for i in range(100)]
    server = Server(keys)
    with ThreadPoolExecutor(4) as pool:
        it = list_entries(client_for(server), "b", executor=pool, page_size=2, depth=2)
        assert next(it)[0] == "k0000"
        time.sleep(0.1)
        assert len(server.requests) <= 3  # the page being read, and two ahead
        it.close()
        time.sleep(0.05)
        assert len(server.requests) <= 3


def test_split_listing_of_a_flat_prefix_streams_instead_of_reading_the_top_level_first() -> None:
    keys = [f"k{i:04d}" for i in range(200)]
    server = Server(keys)
    with ThreadPoolExecutor(4) as pool:
        it = list_entries_split(client_for(server), "b", executor=pool, page_size=10, depth=1)
        assert next(it)[0] == "k0000"
        time.sleep(0.1)
        assert len(server.requests) <= 3
        assert [e[0] for e in it] == keys[1:]


def test_a_failed_sub_listing_raises_instead_of_a_short_listing() -> None:
    server = Server(KEYS, deny="c/")
    with ThreadPoolExecutor(4) as pool, pytest.raises(AccessDeniedError):
        list(list_entries_split(client_for(server), "b", executor=pool, window=2))


def test_bad_window_is_refused() -> None:
    with ThreadPoolExecutor(1) as pool, pytest.raises(ValueError, match="window=0"):
        next(list_entries_split(client_for(Server(KEYS)), "b", executor=pool, window=0))


def test_listing_can_drop_etags() -> None:
    got = list(list_entries(client_for(Server(KEYS)), "b", "a/", etag=False))
    assert [e[3] for e in got] == [""] * len(got)
    assert [e[:3] for e in got] == [e[:3] for e in expected("a/")]
