"""Argument checks of Manifest and ManifestWriter that refuse before any request is sent."""

from __future__ import annotations

from typing import Any

import pytest

from pos3lite.datasets import Manifest
from pos3lite.datasets.writer import new_writer_id
from pos3lite.errors import InvalidURLError, UnsafeKeyError


class NoRequests:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected request: {name}")


def manifest(url: str = "s3://bkt/ds/manifest.jsonl") -> Manifest:
    return Manifest(url, client=NoRequests())  # type: ignore[arg-type]


@pytest.mark.parametrize("url", ["s3://bkt", "s3://bkt/", "s3://bkt/ds/", "http://b/k"])
def test_a_manifest_url_names_an_object(url: str) -> None:
    with pytest.raises(InvalidURLError):
        manifest(url)


def test_layout_beside_the_root() -> None:
    m = manifest("s3://prof@bkt/a/b/train.jsonl")
    assert (m.bucket, m.key, m.folder, m.wids_key) == (
        "bkt",
        "a/b/train.jsonl",
        "a/b/",
        "a/b/train.wids.json",
    )
    assert m.url_for("a/b/x.tar") == "s3://prof@bkt/a/b/x.tar"
    assert manifest("s3://bkt/top").folder == ""


@pytest.mark.parametrize(
    ("kw", "name"),
    [
        ({"shard_max_entries": 0}, "shard_max_entries"),
        ({"shard_max_bytes": -1}, "shard_max_bytes"),
        ({"part_max_entries": 0}, "part_max_entries"),
        ({"compression": "zstd"}, "compression"),
    ],
)
def test_writer_limits_are_checked(kw: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        manifest().writer(**kw)


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./x"])
def test_unsafe_loose_keys_are_refused_before_any_upload(key: str) -> None:
    w = manifest().writer()
    with pytest.raises(UnsafeKeyError):
        w.add_file(b"x", key)


def test_bad_member_names_are_refused_before_any_upload() -> None:
    w = manifest().writer()
    with pytest.raises(ValueError, match="WebDataset form"):
        w.add_to_shard("no-extension", b"x")


def test_writer_ids_are_unique_and_sortable_by_time() -> None:
    ids = {new_writer_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 16 + 1 + 24 and i[8] == "T" and i[15] == "Z" for i in ids)


def test_a_closed_writer_refuses_more() -> None:
    w = manifest().writer()
    w.close()  # nothing added: nothing sent, the root untouched
    with pytest.raises(ValueError, match="published"):
        w.add_to_shard("a.txt", b"x")
