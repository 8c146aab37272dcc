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
from pos3lite.s3.client import S3Client
from pos3lite.s3.listing import list_entries, list_entries_split
from pos3lite.transport.urllib3 import Urllib3Transport
from tests.integration.conftest import keys, put

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
