"""Interop: the ``webdataset`` package reads pos3lite shards; s3exchange 0.1.1 (boto3 as its
client, pointed at the test server) and pos3lite read each other's manifests and shards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pos3lite.datasets import Manifest, expand_braces
from tests.integration.conftest import get, keys

pytestmark = pytest.mark.integration


@pytest.fixture
def client(s3_env: Any) -> Iterator[Any]:
    from pos3lite.objects import Client

    c = Client()
    yield c
    c.close()


def written_samples(n: int) -> list[dict[str, bytes | str]]:
    return [
        {
            "__key__": f"s{i:05d}",
            "jpg": bytes([i % 256]) * (100 + i),
            "cls": str(i % 3).encode(),
            "json": json.dumps({"i": i}).encode(),
        }
        for i in range(n)
    ]


def test_webdataset_reads_pos3lite_shards_exactly(
    client: Any, bucket: str, oracle: Any, tmp_path: Path
) -> None:
    wds = pytest.importorskip("webdataset")
    m = Manifest(f"s3://{bucket}/ds/manifest.jsonl", client=client)
    written = written_samples(25)
    with m.writer(shard_max_entries=20) as w:  # 3 members per sample: never split
        for s in written:
            for ext in ("jpg", "cls", "json"):
                w.add_to_shard(f"{s['__key__']}.{ext}", s[ext])  # type: ignore[arg-type]
    assert w.shard_pattern is not None and len(w.shard_urls) == 4
    # fetch the shards with boto3, then let webdataset expand the brace pattern itself
    for url in w.shard_urls:
        key = url.split("/", 3)[3]
        (tmp_path / key.rsplit("/", 1)[1]).write_bytes(get(oracle, bucket, key))
    local = str(tmp_path / w.shard_pattern.rsplit("/", 1)[1])
    assert [Path(p).name for p in expand_braces(local)] == [
        u.rsplit("/", 1)[1] for u in w.shard_urls
    ]
    got = [
        {k: v for k, v in sample.items() if not k.startswith("__") or k == "__key__"}
        for sample in wds.WebDataset(local, shardshuffle=False)
    ]
    assert got == written
    # the WIDS shard list beside the manifest counts samples per shard
    wids = json.loads(get(oracle, bucket, "ds/manifest.wids.json"))
    assert wids["wids_version"] == 1
    assert [s["url"] for s in wids["shardlist"]] == [u.split("/ds/", 1)[1] for u in w.shard_urls]
    assert sum(s["nsamples"] for s in wids["shardlist"]) == 25


@pytest.fixture
def s3x(s3_server: Any, bucket: str) -> Any:
    s3exchange = pytest.importorskip("s3exchange", reason="s3exchange 0.1.1 needs Python >= 3.12")
    import boto3

    boto = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint,
        region_name=s3_server.region,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key=s3_server.secret_key,
    )
    return s3exchange.S3ExchangeStore(boto, bucket)


def test_pos3lite_reads_what_s3exchange_wrote(client: Any, bucket: str, s3x: Any) -> None:
    from s3exchange import ShardSizePolicy

    with s3x.open_manifest_writer(
        "exchange/manifest.jsonl", shard_size=ShardSizePolicy(max_entries=3)
    ) as w:
        w.put_object("exchange/files/a.txt", b"alpha", id="a", meta={"n": 1})
        w.put_object("exchange/files/b.txt", b"bravo", id="b")
        for i in range(5):
            w.add_to_shard(f"m{i}.bin", bytes([i]) * (i + 1), id=f"m{i}", meta={"i": i})
    m = Manifest(f"s3://{bucket}/exchange/manifest.jsonl", client=client)
    kinds = [e["kind"] for e in m.entries()]
    assert sorted(kinds) == ["file", "file", "shard", "shard"]
    got = {(i.id, i.member or i.key): (i.read(), i.meta) for i in m.files()}
    assert got == {
        ("a", "exchange/files/a.txt"): (b"alpha", {"n": 1}),
        ("b", "exchange/files/b.txt"): (b"bravo", None),
        **{(f"m{i}", f"m{i}.bin"): (bytes([i]) * (i + 1), {"i": i}) for i in range(5)},
    }


def test_s3exchange_reads_what_pos3lite_wrote(
    client: Any, bucket: str, s3x: Any, oracle: Any
) -> None:
    from s3exchange import Shard

    m = Manifest(f"s3://{bucket}/ds/manifest.jsonl", client=client)
    with m.writer(shard_max_entries=4) as w:
        w.add_file(b"alpha", "files/a.txt", id="a", meta={"n": 1})
        for i in range(6):
            w.add_to_shard(f"{i:03d}.bin", bytes([i]) * (i + 1))
    entries = list(s3x.get_manifest("ds/manifest.jsonl").iter_entries())
    files = [e for e in entries if e["kind"] == "file"]
    shards = [e for e in entries if e["kind"] == "shard"]
    assert [(e["key"], e["id"], e["meta"]) for e in files] == [("ds/files/a.txt", "a", {"n": 1})]
    assert s3x.get_object(files[0]["key"]).read() == b"alpha"
    members = []
    for entry in shards:  # pos3lite shards carry no in-archive manifest: read every member
        members += [
            (e["member_path"], body.read())
            for body, e in Shard.from_entry(s3x, entry).iter_objects()
        ]
    assert members == [(f"{i:03d}.bin", bytes([i]) * (i + 1)) for i in range(6)]
    assert all(k.startswith("ds/") for k in keys(oracle, bucket))
