"""Manifest lines, shard index, WebDataset names, braces and the WIDS list (pure)."""

from __future__ import annotations

import json

import pytest

from pos3lite.datasets.format import (
    IndexMember,
    ShardIndex,
    brace_range,
    expand_braces,
    file_entry,
    iter_lines,
    parse_index,
    parse_line,
    parse_lines,
    ref_entry,
    serialise,
    serialise_index,
    shard_entry,
    split_sample,
    wids_shardlist,
)
from pos3lite.errors import InvalidManifestError


def test_known_and_unknown_entries_round_trip_and_raw_bytes_are_kept() -> None:
    body = (
        b'{"kind":"file","key":"a/1.jpg","id":"1","meta":{"w":3},"size_bytes":5}\n'
        b'{"kind": "future_kind", "x": [1, 2],   "spacing": "kept"}\n'
        b"\n"
        b'{"kind":"shard","archive_key":"s/x.tar","format":"tar","compression":null,'
        b'"count":2,"size_bytes":10,"etag":"e","unknown_field":{"deep":true}}\r\n'
        b'{"kind":"manifest_ref","key":"parts/p.jsonl"}'
    )
    chunks = [body[i : i + 7] for i in range(0, len(body), 7)]  # split mid-line
    got = list(parse_lines(chunks, key="m.jsonl"))
    assert [e["kind"] for _, e in got] == ["file", "future_kind", "shard", "manifest_ref"]
    raws = [raw for raw, _ in got]
    assert raws[1] == b'{"kind": "future_kind", "x": [1, 2],   "spacing": "kept"}'
    assert got[2][1]["unknown_field"] == {"deep": True}
    assert b"\n".join(raws) + b"\n" == body.replace(b"\n\n", b"\n").replace(b"\r\n", b"\n") + b"\n"


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"key": "x"}', "'kind'"),
        (b'{"kind": "file"}', "'key'"),
        (b'{"kind": "file", "key": ""}', "'key'"),
        (b'{"kind": "shard", "key": "x"}', "'archive_key'"),
        (b'{"kind": "manifest_ref"}', "'key'"),
        (b'{"kind": "shard", "archive_key": "a", "format": "zip"}', "format 'zip'"),
        (b'{"kind": "shard", "archive_key": "a", "compression": "xz"}', "compression 'xz'"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_bad_line_names_key_and_line_number(line: bytes, problem: str) -> None:
    body = b'{"kind":"file","key":"ok"}\n\n' + line + b"\n"
    with pytest.raises(InvalidManifestError) as info:
        list(parse_lines([body], key="ds/manifest.jsonl"))
    message = str(info.value)
    assert "'ds/manifest.jsonl' line 3" in message
    assert problem in message
    assert isinstance(info.value, ValueError)


def test_iter_lines_handles_chunk_boundaries_and_final_line() -> None:
    assert list(iter_lines([b"ab", b"c\nd", b"", b"e\n", b"f"])) == [b"abc", b"de", b"f"]
    assert list(iter_lines([b"x\n"])) == [b"x"]


def test_serialise_is_compact_utf8_and_validates() -> None:
    line = serialise(file_entry("k/\u00e9.txt", id="1", meta={"a": 1}, size_bytes=3))
    assert (
        line
        == '{"kind":"file","key":"k/\u00e9.txt","id":"1","meta":{"a":1},"size_bytes":3}\n'.encode()
    )
    assert parse_line(line, key="m", line_number=1)["key"] == "k/\u00e9.txt"
    assert serialise(ref_entry("p.jsonl")) == b'{"kind":"manifest_ref","key":"p.jsonl"}\n'
    with pytest.raises(InvalidManifestError):
        serialise({"kind": "file"})
    with pytest.raises(InvalidManifestError):
        serialise({"no": "kind"})


def test_shard_entry_fields_match_the_issue_and_s3exchange() -> None:
    e = shard_entry("s/a.tar", count=2, size_bytes=3, etag="e", index_key="s/a.tar.idx.json")
    assert e == {
        "kind": "shard",
        "archive_key": "s/a.tar",
        "format": "tar",
        "compression": None,
        "count": 2,
        "size_bytes": 3,
        "etag": "e",
        "index_key": "s/a.tar.idx.json",
    }
    with pytest.raises(ValueError, match="bz2"):
        shard_entry("x", count=0, size_bytes=0, etag="", compression="bz2")


def test_index_round_trip_and_bad_index() -> None:
    idx = ShardIndex(
        "s/a.tar", (IndexMember("0.jpg", 512, 3, "0", {"c": 1}), IndexMember("0.txt", 1536, 0))
    )
    assert parse_index(serialise_index(idx), key="i") == idx
    with pytest.raises(InvalidManifestError, match=r"'s/i\.json'"):
        parse_index(b"{", key="s/i.json")
    with pytest.raises(InvalidManifestError, match="bad member 0"):
        parse_index(b'{"version":1,"members":[{"name":"a","offset":-1,"size":1}]}', key="i")
    with pytest.raises(InvalidManifestError, match="version"):
        parse_index(b'{"version":99,"members":[]}', key="i")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("0001.jpg", ("0001", "jpg")),
        ("train/0001.seg.png", ("train/0001", "seg.png")),
        ("a.b/c.d", ("a.b/c", "d")),
    ],
)
def test_split_sample_follows_webdataset(path: str, expected: tuple[str, str]) -> None:
    assert split_sample(path) == expected


@pytest.mark.parametrize(
    "path", ["noext", "", "/abs.jpg", "a/../b.jpg", ".hidden", "a//b.c", "x\0.j"]
)
def test_split_sample_refuses(path: str) -> None:
    with pytest.raises(ValueError, match="member path"):
        split_sample(path)


def test_expand_braces() -> None:
    assert expand_braces("s-{000..002}.tar") == ["s-000.tar", "s-001.tar", "s-002.tar"]
    assert expand_braces("{a,b}/{8..10}") == ["a/8", "a/9", "a/10", "b/8", "b/9", "b/10"]
    assert expand_braces("plain.tar") == ["plain.tar"]
    for bad in ("x-{3..1}", "x-{a..b}", "x-{1..2", "x-}"):
        with pytest.raises(ValueError):
            expand_braces(bad)
    pattern = brace_range("w-", 0, 123, ".tar")
    assert pattern == "w-{000000..000123}.tar"
    assert expand_braces(pattern)[-1] == "w-000123.tar" and len(expand_braces(pattern)) == 124
    assert brace_range("w-", 7, 7, ".tar") == "w-000007.tar"


def test_wids_shardlist_shape() -> None:
    doc = json.loads(wids_shardlist([("shards/a.tar", 3), ("shards/b.tar", 1)], name="ds"))
    assert doc == {
        "wids_version": 1,
        "name": "ds",
        "shardlist": [
            {"url": "shards/a.tar", "nsamples": 3},
            {"url": "shards/b.tar", "nsamples": 1},
        ],
    }


def test_invalid_manifest_error_carries_key_and_line_and_pickles() -> None:
    import pickle

    with pytest.raises(InvalidManifestError) as info:
        list(parse_lines([b'{"kind":"file","key":"a"}\n{"kind":"file"}\n'], key="m.jsonl"))
    err = pickle.loads(pickle.dumps(info.value))
    assert (err.key, err.line_number) == ("m.jsonl", 2)
    assert str(err) == str(info.value)
