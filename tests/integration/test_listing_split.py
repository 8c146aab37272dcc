"""Streamed and split listings (pos3lite.s3.listing) against the real SeaweedFS fixture.

boto3 (the ``oracle`` fixture) is the independent check of what the bucket holds. SeaweedFS
lists folders in directory-walk order ("a/" sorts as "a"), not UTF-8 byte order, so these
tests compare the same multiset of entries, check that the split listing never interleaves
two sub-prefixes (its order guarantee) and equals the sequential one whenever that one is in
byte order (as on S3).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from pos3lite.auth.credentials import CredentialChain, StaticProvider
from pos3lite.errors import NotFoundError
from pos3lite.mirror import scan as scan_mod
from pos3lite.s3.client import S3Client
from pos3lite.s3.listing import (
    ListingOrderError,
    list_entries,
    list_entries_adaptive,
    list_entries_split,
)
from pos3lite.transport.urllib3 import Urllib3Transport
from tests.integration.conftest import keys, open_mirror, put, tree

pytestmark = pytest.mark.integration

TOP = ["a-b/x", "a.txt", "a0", "f+g/h i", "top %2B plus", "é.txt"]
SUBS = {"a/": 7, "a/sub/": 5, "b/": 3, "c/é/": 4, "z/": 6}


@pytest.fixture
def client(s3_server: Any) -> Iterator[S3Client]:
    c = S3Client(
        Urllib3Transport(max_connections=8),
        region=s3_server.region,
        endpoint=s3_server.endpoint,
        credentials=CredentialChain([StaticProvider(s3_server.access_key, s3_server.secret_key)]),
    )
    yield c
    c.close()


def _seed(oracle: Any, bucket: str, base: str) -> list[str]:
    names = [base + k for k in TOP]
    names += [f"{base}{sub}k{i:03d}+{i}" for sub, n in SUBS.items() for i in range(n)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda k: put(oracle, bucket, k, k.encode()), names))
    return names


def _top_unit(rel: str) -> str:
    return rel[: rel.index("/") + 1] if "/" in rel else rel


@pytest.mark.parametrize("page_size", [2, 1000])
def test_split_listing_lists_what_boto3_lists(
    client: S3Client, bucket: str, oracle: Any, page_size: int
) -> None:
    base = "tree/"
    names = _seed(oracle, bucket, base)
    with ThreadPoolExecutor(8) as pool:
        seq = list(list_entries(client, bucket, base, executor=pool, page_size=page_size))
        split = list(
            list_entries_split(client, bucket, base, executor=pool, window=3, page_size=page_size)
        )
    assert sorted(e[0] for e in split) == sorted(keys(oracle, bucket, base)) == sorted(names)
    assert sorted(split) == sorted(seq)
    assert all(e[1] == len(e[0].encode()) for e in split)  # each object holds its own key
    # Never interleaved: each top-level unit is one contiguous run. (SeaweedFS 4.48 orders
    # the top level as a directory walk, "a/" as "a", before "a-b/" and "a.txt", so the
    # units are in the server's order, not byte order, exactly as a sequential listing.)
    units = [_top_unit(e[0][len(base) :]) for e in split]
    runs = [u for i, u in enumerate(units) if i == 0 or units[i - 1] != u]
    assert len(runs) == len(set(runs)) == len(TOP) + len({s.split("/")[0] for s in SUBS})
    if [e[0] for e in seq] == sorted((e[0] for e in seq), key=str.encode):
        assert [e[0] for e in split] == [e[0] for e in seq]


def test_split_listing_of_an_empty_prefix_and_a_missing_bucket(
    client: S3Client, bucket: str
) -> None:
    with ThreadPoolExecutor(2) as pool:
        assert list(list_entries_split(client, bucket, "nothing/", executor=pool)) == []
        with pytest.raises(NotFoundError):
            list(list_entries_split(client, bucket + "-missing", "", executor=pool))


# ------------------------------------------------------------------ adaptive split listing


# Several hundred keys over many folders, in an order that is both UTF-8 byte order and the
# directory-walk order SeaweedFS lists in (no sibling name continues a folder's name with a
# byte below "/"): top-level keys between folders ("d05x"), nested folders, folder markers,
# empty markers of otherwise empty folders, unicode, "+" and spaces.
def _adaptive_names(base: str) -> list[str]:
    names = [f"{base}d{i:02d}/k{j:02d}" for i in range(30) for j in range(7)]
    names += [f"{base}d03/sub/s{j}" for j in range(9)]  # nested
    names += [f"{base}d03/sub/deeper/x{j}" for j in range(4)]
    names += [f"{base}d{i:02d}x" for i in (0, 5, 17, 29)]  # top level, between folders
    names += [f"{base}d07/", f"{base}d09/sub/", f"{base}m/"]  # folder markers
    names += [f"{base}é/ü{j}" for j in range(6)] + [f"{base}ü.txt", f"{base}\U0001f600/x"]
    names += [f"{base}p q/r+s", f"{base}top"]
    return names


@pytest.mark.parametrize("page_size", [3, 7, 50])
def test_adaptive_listing_equals_the_sequential_listing_exactly(
    client: S3Client, bucket: str, oracle: Any, page_size: int
) -> None:
    base = "big/"
    names = _adaptive_names(base)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda k: put(oracle, bucket, k, k.encode()), names))
    requests: list[tuple[str, str | None, str | None]] = []
    real = client.list_page

    def counting(*args: Any, **kw: Any) -> Any:
        requests.append(
            (
                args[1] if len(args) > 1 else kw.get("prefix", ""),
                kw.get("delimiter"),
                kw.get("start_after"),
            )
        )
        return real(*args, **kw)

    client.list_page = counting  # type: ignore[method-assign]
    with ThreadPoolExecutor(16) as pool:
        seq = list(list_entries(client, bucket, base, executor=pool, page_size=page_size))
        for prefix in ("", base, base + "d03/"):
            # SeaweedFS 4.48 at the bucket root rolls up "big/d01/" with start-after: that
            # is seen in the first split pages and the rest is listed sequentially.
            client.start_after_unreliable = False
            requests.clear()
            got = list(
                list_entries_adaptive(
                    client, bucket, prefix, executor=pool, window=4, page_size=page_size
                )
            )
            sent = list(requests)
            want = list(list_entries(client, bucket, prefix, executor=pool, page_size=page_size))
            assert got == want, prefix
            if len(want) <= page_size:
                assert len(sent) == 1  # fits one page: one request
                continue
            assert any(sa for _, _, sa in sent)  # the split was tried
            if prefix:
                assert not client.start_after_unreliable  # and ran to the end
                assert sum(1 for _, d, _ in sent if d == "/") >= 1
    assert [e[0] for e in seq] == sorted(names, key=str.encode) == keys(oracle, bucket, base)
    # A prefix that fits one page: one request, as before.
    requests.clear()
    with ThreadPoolExecutor(2) as pool:
        small = list(list_entries_adaptive(client, bucket, base + "d03/sub/", executor=pool))
    assert [e[0] for e in small] == sorted(k for k in names if k.startswith(base + "d03/sub/"))
    assert requests == [(base + "d03/sub/", None, None)]


def test_adaptive_listing_of_a_walk_ordered_folder_is_complete_or_refused(
    client: S3Client, bucket: str, oracle: Any
) -> None:
    # "a-b", "a.txt" and "a0" sort before "a/..." in bytes, after it in SeaweedFS's walk: the
    # split either meets the disorder (ListingOrderError, nothing duplicated before it) or
    # falls back to the sequential listing; the mirror lists it completely either way.
    base = "walk/"
    names = [f"{base}a/{j:02d}" for j in range(12)] + [f"{base}b/{j}" for j in range(5)]
    names += [f"{base}a-b", f"{base}a.txt", f"{base}a0", f"{base}c"]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda k: put(oracle, bucket, k, k.encode()), names))
    with ThreadPoolExecutor(8) as pool:
        seq = [e[0] for e in list_entries(client, bucket, base, executor=pool, page_size=5)]
        got: list[str] = []
        try:
            for e in list_entries_adaptive(client, bucket, base, executor=pool, page_size=5):
                got.append(e[0])
        except ListingOrderError:
            assert got == seq[: len(got)] and len(set(got)) == len(got)
        else:
            assert got == seq
    assert sorted(seq) == sorted(names)


@pytest.mark.parametrize("walk_ordered", [False, True])
def test_the_mirror_downloads_and_lists_through_the_split_listing(
    bucket: str,
    oracle: Any,
    profile: Any,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    walk_ordered: bool,
) -> None:
    # In byte order the split runs to the end; with "a-b" before "a/" in bytes (after it
    # in SeaweedFS's walk) the mirror plans again from the sorted listing: complete either way.
    import pos3lite

    monkeypatch.setattr(scan_mod, "LIST_PAGE_SIZE", 7)
    started_after: list[str] = []
    real = S3Client.list_page

    def noting(self: S3Client, *args: Any, **kw: Any) -> Any:
        if kw.get("start_after"):
            started_after.append(kw["start_after"])
        return real(self, *args, **kw)

    monkeypatch.setattr(S3Client, "list_page", noting)
    base = "mirror/"
    names = _adaptive_names(base)
    if walk_ordered:
        names += [f"{base}a-b", f"{base}a/1", f"{base}a/2"]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda k: put(oracle, bucket, k, k.encode()), names))
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_bytes(b"not on the remote: deleted")
    with open_mirror(tmp_path, profile):
        pos3lite.download(f"s3://{bucket}/{base}", local=out, delete=True)
        listed = pos3lite.ls(f"s3://{bucket}/{base}", recursive=True)
    files = {k[len(base) :]: k.encode() for k in names if not k.endswith("/")}
    assert tree(out) == files
    assert all((out / k[len(base) :]).is_dir() for k in names if k.endswith("/"))
    assert listed == [f"s3://{bucket}/{k}" for k in keys(oracle, bucket, base)]
    if not walk_ordered:
        assert started_after  # the split listing was used
