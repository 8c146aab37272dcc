"""The adaptive split listing (``list_entries_adaptive``, what the mirror lists with) over
MockTransport: answers no local server gives on demand (a server that ignores
``start-after``, one that lists as a directory walk, a failed page of one sub-listing, a slow
server), plus request counts. The real-server equality tests are in
tests/integration/test_listing_split.py.

``Lister`` implements ListObjectsV2 (prefix, delimiter, max-keys, continuation token,
start-after, encoding-type=url) over a key set, in UTF-8 byte order as S3 lists, or in
directory-walk order (``walk=True``, "a/" sorted as "a", as SeaweedFS lists). With
``start-after`` it filters keys before rolling them up, so the common prefix holding the
start key is listed again (the client must skip it); continuation tokens are the last item
of the page before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from urllib.parse import parse_qs, quote_plus, urlsplit

import pytest

import pos3lite
from pos3lite import _mirror
from pos3lite.auth.sigv4 import Credentials
from pos3lite.errors import AccessDeniedError, TransferError
from pos3lite.mirror import scan as scan_mod
from pos3lite.mirror.scan import UnsortedListing, scan_remote
from pos3lite.s3.client import S3Client
from pos3lite.s3.listing import ListingOrderError, list_entries, list_entries_adaptive
from pos3lite.s3.retry import Retry
from pos3lite.transport.base import MockTransport, Request, Response
from pos3lite.urls import S3URL
from tests.support.fake_s3 import LISTED_ISO, FakeS3

KEYS = [
    "/lead",  # rolls up into the common prefix "/"
    "a-b/x",
    "a.txt",
    "a/",  # a folder marker equal to a common prefix
    "a/1",
    "a/2",
    "a//double",
    "a/sub/",
    "a/sub/3",
    "a/sub/4",
    "a0",  # top level, between folders
    "b/only",
    "c/",
    "c//",
    "c//x",
    "c/é/ü",
    "c/z",
    "d",
    "e/",
    "e/y",
    "e/z/",
    "f+g/h i",
    "top-1",
    "top-2",
    "top-2/",
    "z/1",
    "z/2",
    "z/3/",
    "zz",
    "é/1",
    "é/2",
    "\U0001f600/x",
]
WHEN = datetime(2026, 11, 21, 23, 3, 25, tzinfo=UTC).timestamp()


def byte_order(key: str) -> object:
    return key.encode()


def walk_order(key: str) -> object:
    return tuple(s.encode() for s in key.split("/"))


class Lister:
    def __init__(
        self,
        keys: list[str],
        *,
        walk: bool = False,
        ignore_start_after: bool = False,
        deep_rollup: bool = False,
        delay: float = 0.0,
        fail: Callable[[dict[str, str]], bool] | None = None,
        meta: Callable[[str], tuple[int, str]] = lambda k: (len(k), str(len(k))),
    ) -> None:
        self.order = walk_order if walk else byte_order
        self.keys = sorted(set(keys), key=self.order)  # type: ignore[arg-type]
        self.ignore_start_after = ignore_start_after
        self.deep_rollup = deep_rollup  # with start-after, roll up at the last "/"
        self.delay = delay
        self.fail = fail
        self.meta = meta
        self.lock = threading.Lock()
        self.requests: list[dict[str, str]] = []
        self.active = self.max_active = 0

    def __call__(self, r: Request) -> Response:
        q = {k: v[0] for k, v in parse_qs(urlsplit(r.url).query, keep_blank_values=True).items()}
        with self.lock:
            self.requests.append(q)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            time.sleep(self.delay)
            if self.fail is not None and self.fail(q):
                return Response(403, {}, chunks=iter([b"<Error><Code>AccessDenied</Code></Error>"]))
            return Response(200, {}, chunks=iter([self.page(q)]))
        finally:
            with self.lock:
                self.active -= 1

    def page(self, q: dict[str, str]) -> bytes:
        o = self.order
        prefix, delim = q.get("prefix", ""), q.get("delimiter")
        token, limit = q.get("continuation-token"), int(q["max-keys"])
        start = None if self.ignore_start_after else q.get("start-after")
        items: list[tuple[str, bool]] = []  # (key or common prefix, is_prefix)
        for key in self.keys:
            if not key.startswith(prefix):
                continue
            if start is not None and o(key) <= o(start):  # type: ignore[operator]
                continue
            rest = key[len(prefix) :]
            item, is_prefix = key, False
            if delim and delim in rest:
                cut = rest.rindex(delim) if self.deep_rollup and start else rest.index(delim)
                item, is_prefix = prefix + rest[: cut + 1], True
            if token is not None and o(item) <= o(token):  # type: ignore[operator]
                continue
            if items and items[-1][0] == item:
                continue
            items.append((item, is_prefix))
        page, more = items[:limit], len(items) > limit
        body = "".join(
            f"<CommonPrefixes><Prefix>{quote_plus(k)}</Prefix></CommonPrefixes>"
            if p
            else f"<Contents><Key>{quote_plus(k)}</Key><LastModified>{LISTED_ISO}"
            f"</LastModified><ETag>&quot;{self.meta(k)[1]}&quot;</ETag>"
            f"<Size>{self.meta(k)[0]}</Size></Contents>"
            for k, p in page
        )
        nxt = (
            f"<NextContinuationToken>{escape(page[-1][0])}</NextContinuationToken>" if more else ""
        )
        return (
            '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<EncodingType>url</EncodingType><IsTruncated>{'true' if more else 'false'}"
            f"</IsTruncated>{nxt}{body}</ListBucketResult>"
        ).encode()

    def listed(self) -> list[dict[str, str]]:
        return [q for q in self.requests if "list-type" in q]


class Static:
    def resolve(self) -> Credentials:
        return Credentials("AKIDEXAMPLE", "very-secret-key")


def client_for(server: Callable[[Request], Response]) -> S3Client:
    now = datetime(2026, 1, 2, tzinfo=UTC)
    return S3Client(
        MockTransport(server),
        region="us-east-1",
        endpoint="http://s3.test",
        credentials=Static(),
        clock=lambda: now,
        retry=Retry(max_attempts=1),
    )


def expected(prefix: str = "") -> list[tuple[str, int, float, str]]:
    keys = sorted((k for k in KEYS if k.startswith(prefix)), key=str.encode)
    return [(k, len(k), WHEN, str(len(k))) for k in keys]


PREFIXES = ["", "a/", "c/", "e/", "nothing/"]


@pytest.mark.parametrize("page_size", [1, 2, 3, 4, 5, 7, 11, 1000])
@pytest.mark.parametrize("window", [1, 2, 8])
def test_adaptive_listing_is_exactly_the_sequential_listing(page_size: int, window: int) -> None:
    # Page sizes 1..7 put the first page's last key on every kind of key: a folder marker,
    # a key with "//", a top-level key between folders, a key in a nested folder.
    server = Lister(KEYS)
    client = client_for(server)
    with ThreadPoolExecutor(8) as pool:
        for prefix in PREFIXES:
            seq = list(list_entries(client, "b", prefix, page_size=page_size))
            got = list(
                list_entries_adaptive(
                    client, "b", prefix, executor=pool, window=window, page_size=page_size
                )
            )
            assert seq == expected(prefix)
            assert got == seq, prefix
    if window > 1 and page_size < 5:
        assert any("start-after" in q for q in server.listed())  # the split did run


def test_a_prefix_that_fits_one_page_costs_one_request() -> None:
    server = Lister(KEYS)
    client = client_for(server)
    with ThreadPoolExecutor(8) as pool:
        for prefix in PREFIXES:
            n = len(expected(prefix))
            server.requests.clear()
            got = list(
                list_entries_adaptive(client, "b", prefix, executor=pool, page_size=max(n, 1))
            )
            assert got == expected(prefix)
            assert len(server.requests) == 1
            assert "start-after" not in server.requests[0]
            assert "delimiter" not in server.requests[0]
        # one key more than a page: the split begins (first page + top level + sub-listings)
        server.requests.clear()
        n = len(KEYS)
        assert list(list_entries_adaptive(client, "b", executor=pool, page_size=n - 1)) == (
            expected()
        )
        assert len(server.requests) > 1


def test_the_mirror_lists_a_prefix_that_fits_one_page_with_one_request(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = PagedS3()
    for k in ("tree/a.txt", "tree/sub/b.txt", "tree/sub/c/d.txt"):
        fake.objects[k] = k.encode()
    client = client_for(fake)
    monkeypatch.setattr(_mirror._Mirror, "client", lambda self, profile: client)
    with pos3lite.mirror(cache_root=tmp_path / "cache", show_progress=False):
        pos3lite.download("s3://bkt/tree/", local=tmp_path / "out")
        listed = [q for q in fake.log if "list-type" in q]
        assert listed == [
            {"list-type": "2", "encoding-type": "url", "max-keys": "1000", "prefix": "tree/"}
        ]
        fake.log.clear()
        pos3lite.ls("s3://bkt/tree/", recursive=True)
        assert len([q for q in fake.log if "list-type" in q]) == 1
    assert (tmp_path / "out" / "sub" / "c" / "d.txt").read_bytes() == b"tree/sub/c/d.txt"


@pytest.mark.parametrize("page_size", [1, 2, 3, 5, 8])
def test_a_server_that_start_after_unreliable_is_listed_sequentially(page_size: int) -> None:
    server = Lister(KEYS, ignore_start_after=True)
    client = client_for(server)
    with ThreadPoolExecutor(8) as pool:
        for prefix in PREFIXES:
            got = list(
                list_entries_adaptive(client, "b", prefix, executor=pool, page_size=page_size)
            )
            assert got == expected(prefix), prefix
    assert client.start_after_unreliable
    # Learnt once: later listings never try start-after again.
    server.requests.clear()
    with ThreadPoolExecutor(8) as pool:
        assert list(list_entries_adaptive(client, "b", executor=pool, page_size=2)) == expected()
    assert not any("start-after" in q or "delimiter" in q for q in server.requests)


def test_common_prefixes_rolled_up_at_the_wrong_slash_fall_back_to_sequential() -> None:
    # SeaweedFS 4.48 answers a root listing with delimiter="/" and start-after with common
    # prefixes such as "a/sub/": seen in the first split pages, listed sequentially.
    server = Lister(KEYS, deep_rollup=True)
    client = client_for(server)
    with ThreadPoolExecutor(8) as pool:
        got = list(list_entries_adaptive(client, "b", executor=pool, page_size=5))
    assert got == expected()
    assert client.start_after_unreliable


WALK = ["a/1", "a/2", "a/3", "b/1", "b/2", "b-c", "c"]


def test_a_directory_walk_listing_raises_listing_order_error_after_an_ordered_prefix() -> None:
    # Walk order: a/1 a/2 | a/3 b/1 b/2 b-c c. The first page is in byte order and the first
    # split pages start after a/2, so the rest is split; "b-c" (after b/ in the walk, before
    # it in bytes) then comes after b/2.
    server = Lister(WALK, walk=True)
    client = client_for(server)
    got: list[str] = []
    with ThreadPoolExecutor(8) as pool, pytest.raises(ListingOrderError, match="'b-c'"):
        for e in list_entries_adaptive(client, "b", executor=pool, page_size=2):
            got.append(e[0])
    assert got == ["a/1", "a/2", "a/3", "b/1", "b/2"]  # in order, nothing twice
    assert not client.start_after_unreliable


def test_a_walk_order_seen_in_the_first_split_pages_falls_back_to_the_sequential_listing() -> None:
    # Walk order a/1 a/2 | a/3 a-b b/1: the top level after a/2 starts with "a-b", not after
    # a/2 in byte order, exactly what a server ignoring start-after shows: the rest is
    # listed sequentially, as the server sends it, for the consumer's own order check.
    server = Lister(["a/1", "a/2", "a/3", "a-b", "b/1"], walk=True)
    client = client_for(server)
    with ThreadPoolExecutor(8) as pool:
        got = [e[0] for e in list_entries_adaptive(client, "b", executor=pool, page_size=2)]
    assert got == ["a/1", "a/2", "a/3", "a-b", "b/1"]
    # A first page out of byte order never splits.
    server = Lister(["a/1", "a-b", "a0"], walk=True)
    with ThreadPoolExecutor(8) as pool:
        listed = list_entries_adaptive(client_for(server), "b", executor=pool, page_size=2)
        got = [e[0] for e in listed]
    assert got == ["a/1", "a-b", "a0"]
    assert not any("start-after" in q for q in server.requests)


def test_scan_remote_turns_listing_order_error_into_unsorted_or_lists_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(scan_mod, "LIST_PAGE_SIZE", 2)
    client = client_for(Lister(["p/" + k for k in WALK], walk=True))
    url = S3URL("bkt", "p/")
    scan = scan_remote(client, url, stream=True, list_concurrency=8)
    assert scan.stream is not None
    with pytest.raises(UnsortedListing):
        list(scan.stream)
    scan.close()
    # A whole listing is read again sequentially: complete, sorted.
    whole = scan_remote(client, url, list_concurrency=8)
    assert [e.key for e in whole.entries] == sorted(WALK, key=str.encode)


def test_a_failed_page_of_one_sub_listing_raises() -> None:
    server = Lister(KEYS, fail=lambda q: q.get("prefix") == "c/" and "continuation-token" in q)
    with ThreadPoolExecutor(8) as pool, pytest.raises(AccessDeniedError):
        list(list_entries_adaptive(client_for(server), "b", executor=pool, page_size=2))
    assert any(q.get("prefix") == "c/" and "continuation-token" in q for q in server.requests)


def test_a_consumer_that_stops_early_stops_the_requests() -> None:
    keys = [f"d{i:03d}/k{j}" for i in range(100) for j in range(5)]
    server = Lister(keys, delay=0.01)
    with ThreadPoolExecutor(16) as pool:
        it = list_entries_adaptive(client_for(server), "b", executor=pool, window=4, page_size=2)
        assert [next(it)[0] for _ in range(7)] == keys[:7]
        it.close()
        time.sleep(0.1)
        settled = len(server.requests)
        time.sleep(0.3)
        assert len(server.requests) == settled
    # the first page; the top level (2 pages buffered + 1 in flight); the rest of d000/
    # (read: 2 pages); d001/ (being read) to d004/, the window of 4 listings, each with
    # 2 pages buffered + 1 in flight. Nothing is started after the close.
    assert settled <= 1 + 3 + 2 + 4 * 3
    assert settled < len(keys) // 2


def test_sub_listings_run_concurrently_within_the_window() -> None:
    keys = [f"d{i:02d}/k{j}" for i in range(20) for j in range(4)]
    server = Lister(keys, delay=0.02)
    with ThreadPoolExecutor(16) as pool:
        got = list(
            list_entries_adaptive(client_for(server), "b", executor=pool, window=3, page_size=3)
        )
    assert [e[0] for e in got] == keys
    # first page alone; then the top level, the rest of d00/ and <= 3 other sub-listings
    assert 3 <= server.max_active <= 1 + 1 + 3


# ------------------------------------------------------------------ through the mirror


class PagedS3(FakeS3):
    """FakeS3 with real paging (``Lister``) over its objects, and a log of queries."""

    def __init__(self, **kw: object) -> None:
        super().__init__()
        self.kw = kw
        self.log: list[dict[str, str]] = []

    def lister(self) -> Lister:
        objs = self.objects
        return Lister(list(objs), meta=lambda k: (len(objs[k]), self.etag(k)), **self.kw)  # type: ignore[arg-type]

    def __call__(self, r: Request) -> Response:
        q = {k: v[0] for k, v in parse_qs(urlsplit(r.url).query, keep_blank_values=True).items()}
        if r.method == "GET" and "list-type" in q:
            self.log.append(q)
            return self.lister()(r)
        return super().__call__(r)


def test_a_failed_sub_listing_page_fails_a_download_and_deletes_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(scan_mod, "LIST_PAGE_SIZE", 2)
    fake = PagedS3(fail=lambda q: q.get("prefix") == "t/m/" and "continuation-token" in q)
    for k in [f"t/{d}/{i}" for d in "abcmxyz" for i in range(4)]:
        fake.objects[k] = k.encode()
    client = client_for(fake)
    monkeypatch.setattr(_mirror._Mirror, "client", lambda self, profile: client)
    out = tmp_path / "out"
    (out / "m").mkdir(parents=True)
    (out / "m" / "9").write_bytes(b"local only: kept")
    (out / "extra").write_bytes(b"local only: kept")
    with (
        pos3lite.mirror(cache_root=tmp_path / "cache", show_progress=False),
        pytest.raises((AccessDeniedError, TransferError)),
    ):
        pos3lite.download("s3://bkt/t/", local=out, delete=True)
    assert (out / "m" / "9").read_bytes() == b"local only: kept"
    assert (out / "extra").read_bytes() == b"local only: kept"
    assert any(q.get("start-after") for q in fake.log)  # the split path was taken


@pytest.mark.parametrize("walk", [False, True])
def test_a_download_through_the_split_listing_is_complete(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, walk: bool
) -> None:
    # Byte order: split, complete. Directory-walk order: the split meets a key out of
    # order, the mirror plans again from the sorted (spilled) listing: complete as well.
    monkeypatch.setattr(scan_mod, "LIST_PAGE_SIZE", 3)
    fake = PagedS3(walk=walk)
    names = [f"t/{d}/{i}" for d in ("a", "a-b", "b", "c/d", "é") for i in range(4)]
    names += ["t/a.txt", "t/a0", "t/zz"]
    for k in names:
        fake.objects[k] = k.encode()
    client = client_for(fake)
    monkeypatch.setattr(_mirror._Mirror, "client", lambda self, profile: client)
    out = tmp_path / "out"
    (out).mkdir()
    (out / "gone").write_bytes(b"deleted: not on the remote")
    with pos3lite.mirror(cache_root=tmp_path / "cache", show_progress=False):
        pos3lite.download("s3://bkt/t/", local=out, delete=True)
        listed = pos3lite.ls("s3://bkt/t/", recursive=True)
    got = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert got == sorted(k[2:] for k in names)
    assert all((out / k[2:]).read_bytes() == k.encode() for k in names)
    assert listed == [f"s3://bkt/{k}" for k in sorted(names, key=str.encode)]
    assert any(q.get("start-after") for q in fake.log)


def test_list_concurrency_1_never_splits_and_bad_values_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(scan_mod, "LIST_PAGE_SIZE", 2)
    fake = PagedS3()
    for k in [f"t/{d}/{i}" for d in "abc" for i in range(3)]:
        fake.objects[k] = k.encode()
    client = client_for(fake)
    monkeypatch.setattr(_mirror._Mirror, "client", lambda self, profile: client)
    with pos3lite.mirror(cache_root=tmp_path / "cache", show_progress=False, list_concurrency=1):
        pos3lite.download("s3://bkt/t/", local=tmp_path / "out")
        pos3lite.ls("s3://bkt/t/", recursive=True)
    assert fake.log and not any("start-after" in q or "delimiter" in q for q in fake.log)
    for bad in (0, -1, 2.0, "8"):
        with (
            pytest.raises(ValueError, match="list_concurrency"),
            pos3lite.mirror(cache_root=tmp_path / "c2", list_concurrency=bad),  # type: ignore[arg-type]
        ):
            pass


def test_closing_the_client_mid_listing_raises_instead_of_hanging() -> None:
    from concurrent.futures import CancelledError

    server = Lister([f"k{i:04d}" for i in range(200)], delay=0.02)
    client = client_for(server)
    it = client.list_objects("bkt", page_size=2)
    next(it)
    client.close()  # the listing threads stop: queued pages are cancelled
    with pytest.raises((CancelledError, RuntimeError)):
        for _ in it:
            pass


def test_ls_lists_again_sequentially_after_a_listing_order_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(scan_mod, "LIST_PAGE_SIZE", 2)
    fake = PagedS3(walk=True)
    for k in WALK:  # the split meets "b-c" after "b/2" (see the test above)
        fake.objects["p/" + k] = k.encode()
    client = client_for(fake)
    monkeypatch.setattr(_mirror._Mirror, "client", lambda self, profile: client)
    with pos3lite.mirror(cache_root=tmp_path / "cache", show_progress=False):
        listed = pos3lite.ls("s3://bkt/p/", recursive=True)
    assert listed == [f"s3://bkt/p/{k}" for k in sorted(WALK, key=str.encode)]
    firsts = [q for q in fake.log if "continuation-token" not in q and "delimiter" not in q]
    assert [q.get("start-after") for q in firsts if q["prefix"] == "p/"] == [None, None]
