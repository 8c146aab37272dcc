"""Datasets against the real server (SeaweedFS 4.48, which enforces conditional writes).

boto3 (the ``oracle`` fixture) is the independent check of what is stored; a counting
Transport shows how many requests a read costs.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pos3lite.datasets import InvalidManifestError, Manifest
from pos3lite.datasets import writer as writer_module
from pos3lite.errors import AccessDeniedError, AlreadyExistsError, NotFoundError
from pos3lite.transport.base import Request, Response
from tests.integration.conftest import READ_ACCESS_KEY, READ_SECRET_KEY, get, keys, put

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


class CountingTransport:
    """Wraps the real urllib3 transport and records every request."""

    def __init__(self) -> None:
        from pos3lite.transport.urllib3 import Urllib3Transport

        self.inner = Urllib3Transport(max_connections=8)
        self.requests: list[Request] = []

    def send(self, request: Request) -> Response:
        self.requests.append(request)
        return self.inner.send(request)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def counting(s3_env: Any) -> Iterator[tuple[Any, CountingTransport]]:
    from pos3lite.objects import Client

    transport = CountingTransport()
    client = Client(transport=transport)
    yield client, transport
    client.close()


@pytest.fixture
def client(counting: tuple[Any, CountingTransport]) -> Any:
    return counting[0]


def root_url(bucket: str) -> str:
    return f"s3://{bucket}/ds/manifest.jsonl"


def samples(n: int, start: int = 0) -> list[tuple[str, bytes, str, dict[str, Any]]]:
    """(member, bytes, id, meta) for n two-file samples."""
    out = []
    for i in range(start, start + n):
        body = hashlib.sha256(str(i).encode()).digest() * (i % 5 + 1)
        out.append((f"{i:06d}.bin", body, str(i), {"i": i}))
        out.append((f"{i:06d}.cls", str(i % 7).encode(), f"{i}-cls", {"i": i}))
    return out


def root_lines(oracle: Any, bucket: str) -> list[bytes]:
    return get(oracle, bucket, "ds/manifest.jsonl").splitlines()


# ----------------------------------------------------------------------------- round trips


def test_writer_round_trip_shards_and_files(client: Any, bucket: str, oracle: Any) -> None:
    m = Manifest(root_url(bucket), client=client)
    written = samples(7)
    with m.writer(shard_max_entries=4, part_max_entries=3) as w:
        for member, body, id_, meta in written:
            w.add_to_shard(member, body, id=id_, meta=meta)
        w.add_file(b"loose bytes", "extra/readme.txt", id="readme", meta={"k": "v"})
    # 14 members, 4 per shard, rolled over only between samples: 4 shards
    assert len(w.shard_urls) == 4
    assert all(w.writer_id in u for u in w.shard_urls + w.part_urls)
    got = [(i.member, i.read(), i.id, i.meta) for i in m.files() if i.member]
    assert got == written
    loose = [i for i in m.files() if not i.member]
    assert [(i.key, i.read(), i.id, i.meta, i.size) for i in loose] == [
        ("ds/extra/readme.txt", b"loose bytes", "readme", {"k": "v"}, 11)
    ]
    # the root holds one reference per part, nothing else
    lines = [json.loads(x) for x in root_lines(oracle, bucket)]
    assert [x["kind"] for x in lines] == ["manifest_ref"] * len(w.part_urls)
    # each shard is a plain tar with exactly the members written (boto3 + tarfile as oracle)
    members = []
    for url in w.shard_urls:
        data = get(oracle, bucket, url.split("/", 3)[3])
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            members += [(t.name, tar.extractfile(t).read()) for t in tar]  # type: ignore[union-attr]
    assert members == [(n, b) for n, b, _, _ in written]
    assert w.shard_pattern is not None and w.shard_pattern.endswith("-{000000..000003}.tar")
    # without expanding, each shard is one item: the archive object itself
    archives = [i for i in m.files(expand_shards=False) if i.key.endswith(".tar")]
    assert [i.key for i in archives] == [u.split("/", 3)[3] for u in w.shard_urls]
    assert archives[0].read() == get(oracle, bucket, archives[0].key)
    assert archives[0].size == len(archives[0].read())


def test_one_member_of_a_10000_member_shard_is_one_ranged_get(
    counting: tuple[Any, CountingTransport], bucket: str
) -> None:
    client, transport = counting
    m = Manifest(root_url(bucket), client=client)
    with m.writer() as w:
        for i in range(10_000):
            w.add_to_shard(f"{i:05d}.txt", f"member {i}".encode())
    assert len(w.shard_urls) == 1
    items = list(m.files())
    assert len(items) == 10_000
    offset = _offset(m, 7654)
    transport.requests.clear()
    assert items[7654].read() == b"member 7654"
    assert [(r.method, r.headers.get("range")) for r in transport.requests] == [
        ("GET", f"bytes={offset}-{offset + 10}")
    ]
    shard_etag = next(e for e in m.entries() if e["kind"] == "shard")["etag"]
    assert transport.requests[0].headers.get("if-match") == f'"{shard_etag}"'  # pinned
    print("\none member of a 10,000-member shard: 1 request (a ranged GET)")


def _offset(m: Manifest, n: int) -> int:
    entry = next(e for e in m.entries() if e["kind"] == "shard")
    return m.shard_index(entry).members[n].offset


def test_gzip_shards_are_read_sequentially(
    counting: tuple[Any, CountingTransport], bucket: str, oracle: Any
) -> None:
    client, transport = counting
    m = Manifest(root_url(bucket), client=client)
    written = samples(30)
    with m.writer(compression="gzip", shard_max_entries=20) as w:
        for member, body, *_ in written:
            w.add_to_shard(member, body)
    assert len(w.shard_urls) == 3 and all(u.endswith(".tar.gz") for u in w.shard_urls)
    shard_keys = [u.split("/", 3)[3] for u in w.shard_urls]
    assert not any(k.endswith(".idx.json") for k in keys(oracle, bucket))
    assert get(oracle, bucket, shard_keys[0])[:2] == b"\x1f\x8b"
    transport.requests.clear()
    got = [(i.member, i.read()) for i in m.files()]
    assert got == [(n, b) for n, b, _, _ in written]
    archive_gets = [r for r in transport.requests if ".tar.gz" in r.url]
    assert len(archive_gets) == 3 and all("range" not in r.headers for r in archive_gets)


# ----------------------------------------------------------------------------- safety


def test_a_second_run_never_overwrites_the_first_runs_shards(
    client: Any, bucket: str, oracle: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = Manifest(root_url(bucket), client=client)
    with m.writer() as first:
        for member, body, *_ in samples(3):
            first.add_to_shard(member, body)
    first_key = first.shard_urls[0].split("/", 3)[3]
    first_bytes = get(oracle, bucket, first_key)
    with m.writer() as second:
        for member, body, *_ in samples(3, start=100):
            second.add_to_shard(member, body)
    assert second.shard_urls[0] != first.shard_urls[0]
    assert get(oracle, bucket, first_key) == first_bytes
    assert len([i for i in m.files()]) == 12
    # Even a forced name collision fails loudly instead of overwriting.
    monkeypatch.setattr(writer_module, "new_writer_id", lambda: first.writer_id)
    before = root_lines(oracle, bucket)
    with pytest.raises(AlreadyExistsError), m.writer() as third:
        for member, body, *_ in samples(3, start=200):
            third.add_to_shard(member, body)
    assert get(oracle, bucket, first_key) == first_bytes
    assert root_lines(oracle, bucket) == before


def test_a_corrupt_root_line_raises_and_changes_nothing(
    client: Any, bucket: str, oracle: Any
) -> None:
    body = b'{"kind":"file","key":"a.txt"}\n{"kind": "file", "key": \n{"kind":"file","key":"b"}\n'
    put(oracle, bucket, "ds/manifest.jsonl", body)
    m = Manifest(root_url(bucket), client=client)
    with pytest.raises(InvalidManifestError, match=r"'ds/manifest.jsonl' line 2"):
        m.append([{"kind": "file", "key": "c"}])
    with pytest.raises(InvalidManifestError, match="line 2"), m.writer() as w:
        w.add_to_shard("0.txt", b"x")
        w.add_file(b"y", "loose.txt")
    with pytest.raises(InvalidManifestError, match="line 2"):
        list(m.entries())
    with pytest.raises(InvalidManifestError, match="line 2"):
        m.delete()
    assert get(oracle, bucket, "ds/manifest.jsonl") == body
    assert keys(oracle, bucket) == ["ds/manifest.jsonl"]  # the writer's orphans are gone


def test_unknown_kinds_and_fields_survive_an_append(client: Any, bucket: str, oracle: Any) -> None:
    original = (
        b'{"kind": "future", "weird":  [1,2], "x": "\\u00e9"}\n'
        b'{"kind":"file","key":"a.txt","extra":{"keep":true}}'
    )
    put(oracle, bucket, "ds/manifest.jsonl", original)
    m = Manifest(root_url(bucket), client=client)
    m.append([{"kind": "file", "key": "b.txt", "new_field": 1}])
    stored = get(oracle, bucket, "ds/manifest.jsonl")
    assert stored == original + b'\n{"kind":"file","key":"b.txt","new_field":1}\n'
    assert [e["kind"] for e in m.entries()] == ["future", "file", "file"]


def test_an_exception_in_the_writer_publishes_nothing_and_leaves_no_orphans(
    client: Any, bucket: str, oracle: Any
) -> None:
    m = Manifest(root_url(bucket), client=client)
    m.append([{"kind": "file", "key": "ds/pre.txt"}])
    before = get(oracle, bucket, "ds/manifest.jsonl")
    with pytest.raises(RuntimeError, match="boom"), m.writer(shard_max_entries=2) as w:
        for member, body, *_ in samples(5):
            w.add_to_shard(member, body)
        w.add_file(b"z", "loose.bin")
        raise RuntimeError("boom")
    assert get(oracle, bucket, "ds/manifest.jsonl") == before
    assert keys(oracle, bucket) == ["ds/manifest.jsonl"]
    uploads = oracle.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert uploads == []


def test_reference_cycles_are_detected(client: Any, bucket: str, oracle: Any) -> None:
    put(oracle, bucket, "ds/manifest.jsonl", b'{"kind":"manifest_ref","key":"ds/p1.jsonl"}\n')
    put(oracle, bucket, "ds/p1.jsonl", b'{"kind":"manifest_ref","key":"ds/manifest.jsonl"}\n')
    m = Manifest(root_url(bucket), client=client)
    with pytest.raises(InvalidManifestError, match="cycle"):
        list(m.entries())
    assert [e["kind"] for e in m.entries(resolve_refs=False)] == ["manifest_ref"]


CONCURRENT = textwrap.dedent(
    """
    import sys
    from pos3lite.datasets import Manifest
    url, who = sys.argv[1], sys.argv[2]
    m = Manifest(url)
    for i in range(10):
        m.append([{"kind": "file", "key": f"w{who}/{i}"}])
    with m.writer(part_max_entries=2) as w:
        for i in range(5):
            w.add_to_shard(f"w{who}-{i:03d}.txt", f"{who}:{i}".encode())
            w.add_file(f"{who}:{i}".encode(), f"loose/w{who}-{i}.txt")
    """
)


def test_eight_concurrent_writer_processes_lose_no_entry(
    s3_env: Any, client: Any, bucket: str
) -> None:
    url = root_url(bucket)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen([sys.executable, "-c", CONCURRENT, url, str(n)], env=env) for n in range(8)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0] * 8
    m = Manifest(url, client=client)
    appended = sorted(
        e["key"] for e in m.entries() if e["kind"] == "file" and e["key"].startswith("w")
    )
    assert appended == sorted(f"w{who}/{i}" for who in range(8) for i in range(10))
    items = list(m.files())
    members = sorted(i.member for i in items if i.member)
    assert members == sorted(f"w{who}-{i:03d}.txt" for who in range(8) for i in range(5))
    loose = sorted(i.read() for i in items if i.key.startswith("ds/loose/"))
    assert loose == sorted(f"{who}:{i}".encode() for who in range(8) for i in range(5))
    print(
        f"\n8 processes x (10 appends + 1 writer): {len(appended)} appended entries, "
        f"{len(members)} shard members, {len(loose)} loose files, none lost"
    )


def test_delete_leaves_nothing_behind(client: Any, bucket: str, oracle: Any) -> None:
    put(oracle, bucket, "elsewhere/keep.txt", b"not part of the dataset")
    m = Manifest(root_url(bucket), client=client)
    for _run in range(2):
        with m.writer(shard_max_entries=3, part_max_entries=2) as w:
            for member, body, *_ in samples(4, start=_run * 10):
                w.add_to_shard(member, body)
            w.add_file(b"f", f"loose-{_run}.txt")
    with m.writer(compression="gzip") as w:
        w.add_to_shard("g.txt", b"gz")
    assert len(keys(oracle, bucket, "ds/")) > 15
    report = m.delete()
    assert report.errors == {}
    assert report.deleted[-1] == m.url
    assert keys(oracle, bucket, "ds/") == []
    assert keys(oracle, bucket) == ["elsewhere/keep.txt"]


def test_compact_inlines_parts_and_keeps_reads_working(
    counting: tuple[Any, CountingTransport], bucket: str, oracle: Any
) -> None:
    client, transport = counting
    m = Manifest(root_url(bucket), client=client)
    with m.writer(shard_max_entries=4, part_max_entries=2) as w:
        for member, body, *_ in samples(4):
            w.add_to_shard(member, body)
    m.append([{"kind": "mystery", "x": 1}])
    dst = f"s3://{bucket}/ds/compact.jsonl"
    report = m.compact(dst, expand_shards=True)
    assert report.shards_expanded == 2 and report.entries == 9 and report.refs_resolved > 0
    c = Manifest(dst, client=client)
    assert [e["kind"] for e in c.entries(resolve_refs=False)] == ["file"] * 8 + ["mystery"]
    items = list(c.files())
    transport.requests.clear()
    assert items[3].read() == samples(4)[3][1]
    assert len(transport.requests) == 1 and "range" in transport.requests[0].headers
    with pytest.raises(AlreadyExistsError):
        m.compact(dst)
    same = m.compact(m.url)
    assert [e["kind"] for e in m.entries(resolve_refs=False)] == ["shard", "shard", "mystery"]
    assert same.entries == 3


def test_a_missing_root_is_not_found_not_empty(client: Any, bucket: str) -> None:
    m = Manifest(root_url(bucket), client=client)
    with pytest.raises(NotFoundError):
        list(m.entries())
    with pytest.raises(NotFoundError):
        m.delete()
    assert m.append([{"kind": "file", "key": "first"}])  # creates it (If-None-Match: *)
    assert [e["key"] for e in m.entries()] == ["first"]


def test_delete_keeps_a_root_that_changed_meanwhile(
    client: Any, bucket: str, oracle: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = Manifest(root_url(bucket), client=client)
    with m.writer() as w:
        w.add_to_shard("a.txt", b"a")
    real = client.delete_many

    def racing(urls: Any) -> Any:
        Manifest(root_url(bucket), client=client).append([{"kind": "file", "key": "late"}])
        return real(urls)

    monkeypatch.setattr(client, "delete_many", racing)
    report = m.delete()
    assert m.url in report.errors and m.url not in report.deleted
    assert b'"late"' in get(oracle, bucket, "ds/manifest.jsonl")  # the late entry survives


def test_delete_reports_per_key_errors_and_keeps_the_root(
    s3_server: Any, client: Any, bucket: str, oracle: Any
) -> None:
    from pos3lite import Profile
    from pos3lite.objects import Client

    m = Manifest(root_url(bucket), client=client)
    with m.writer() as w:
        w.add_to_shard("a.txt", b"a")
        w.add_file(b"f", "f.txt")
    before = keys(oracle, bucket)
    reader = Client(
        Profile(
            local_name="ro",
            endpoint=s3_server.endpoint,
            region=s3_server.region,
            access_key=READ_ACCESS_KEY,
            secret_key=READ_SECRET_KEY,
        )
    )
    try:
        report = Manifest(root_url(bucket), client=reader).delete()
    finally:
        reader.close()
    assert report.deleted == []
    assert sorted(report.errors) == sorted(
        f"s3://{bucket}/{k}" for k in before if k != "ds/manifest.jsonl"
    )
    assert all(isinstance(e, AccessDeniedError) for e in report.errors.values())
    assert keys(oracle, bucket) == before  # the root stays: what remains is still findable
