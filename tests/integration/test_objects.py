"""The object API (pos3lite.head/get/put/open/delete/copy/list_objects) against SeaweedFS.

Every write is read back with boto3 (the ``oracle``), every read is of bytes boto3 wrote.
SeaweedFS 4.x enforces conditional writes and answers 412 to ``If-Match`` on a missing key.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import pos3lite
from pos3lite import (
    AlreadyExistsError,
    ChecksumMismatchError,
    Client,
    ConfigError,
    InvalidURLError,
    NotFoundError,
    PreconditionFailedError,
)
from tests.integration.conftest import ODD_NAMES, get, keys, put

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


@pytest.fixture
def client(profile: Any) -> Iterator[Client]:
    with Client(profile) as c:
        yield c


def blob(n: int, seed: int = 0) -> bytes:
    """``n`` bytes that differ from part to part (so a spliced or reordered read shows)."""
    out = bytearray()
    i = seed
    while len(out) < n:
        out += hashlib.sha256(i.to_bytes(8, "big")).digest() * 64
        i += 1
    return bytes(out[:n])


# ------------------------------------------------------------------ put / get round trips


@pytest.mark.parametrize("size", [0, 1, 5 * MiB + 3])
def test_put_bytes_round_trip_read_back_with_boto3(
    client: Client, oracle: Any, bucket: str, size: int
) -> None:
    data = blob(size)
    result = client.put(f"s3://{bucket}/k.bin", data)
    assert get(oracle, bucket, "k.bin") == data
    head = oracle.head_object(Bucket=bucket, Key="k.bin")
    assert result.etag == head["ETag"].strip('"') == hashlib.md5(data).hexdigest()
    assert client.get_bytes(f"s3://{bucket}/k.bin") == data


def test_put_from_path_file_and_iterable_with_multipart(
    client: Client, oracle: Any, bucket: str, tmp_path: Path
) -> None:
    data = blob(13 * MiB + 17)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    client.put(f"s3://{bucket}/from-path", path, part_size=5 * MiB)
    client.put(f"s3://{bucket}/from-str-path", str(path))
    with open(path, "rb") as f:
        f.seek(100)
        client.put(f"s3://{bucket}/from-file", f, part_size=5 * MiB)
    chunks = (data[i : i + 777_777] for i in range(0, len(data), 777_777))
    result = client.put(f"s3://{bucket}/from-iter", chunks, part_size=5 * MiB)
    assert get(oracle, bucket, "from-path") == data
    assert get(oracle, bucket, "from-str-path") == data
    assert get(oracle, bucket, "from-file") == data[100:]
    assert get(oracle, bucket, "from-iter") == data
    assert result.etag.endswith("-3")  # three parts: 5 + 5 + 3 MiB


def test_put_content_type_metadata_and_head(client: Client, oracle: Any, bucket: str) -> None:
    url = f"s3://{bucket}/dir/meta.txt"
    client.put(url, b"hello", content_type="text/plain", metadata={"Owner": "ana", "n": "1"})
    got = oracle.head_object(Bucket=bucket, Key="dir/meta.txt")
    assert got["ContentType"] == "text/plain"
    assert got["Metadata"] == {"owner": "ana", "n": "1"}
    info = client.head(url)
    assert info.url == url and info.bucket == bucket and info.key == "dir/meta.txt"
    assert info.size == 5
    assert info.etag == hashlib.md5(b"hello").hexdigest()
    assert info.content_type == "text/plain"
    assert info.metadata == {"owner": "ana", "n": "1"}
    assert info.last_modified.tzinfo is not None
    assert abs((datetime.now(UTC) - info.last_modified).total_seconds()) < 300
    with pytest.raises(AttributeError):
        info.size = 3  # type: ignore[misc]


def test_put_crc32_checksum_is_stored_and_verified(client: Client, bucket: str) -> None:
    url = f"s3://{bucket}/crc.bin"
    data = blob(1000)
    client.put(url, data, checksum="crc32")
    info = client.head(url)
    import base64
    import zlib

    assert (
        info.checksums.get("crc32")
        == base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    )
    assert client.get_bytes(url) == data


def test_put_crc32_multipart_and_no_checksum(client: Client, oracle: Any, bucket: str) -> None:
    data = blob(11 * MiB)
    client.put(f"s3://{bucket}/crc-mp", iter([data]), checksum="crc32", part_size=5 * MiB)
    client.put(f"s3://{bucket}/none", data, checksum=None)
    assert get(oracle, bucket, "crc-mp") == data
    assert get(oracle, bucket, "none") == data


def test_odd_keys_round_trip(client: Client, oracle: Any, bucket: str) -> None:
    for name in ODD_NAMES:
        client.put(f"s3://{bucket}/{name}", name.encode())
        assert get(oracle, bucket, name) == name.encode()
        assert client.get_bytes(f"s3://{bucket}/{name}") == name.encode()
    assert keys(oracle, bucket) == sorted(ODD_NAMES)


def test_get_reads_what_boto3_wrote_in_chunks_and_ranges(
    client: Client, oracle: Any, bucket: str
) -> None:
    data = blob(3 * MiB + 5)
    put(oracle, bucket, "big", data)
    url = f"s3://{bucket}/big"
    with client.get(url) as reader:
        assert reader.info.size == len(data)
        assert reader.info.etag == hashlib.md5(data).hexdigest()
        assert b"".join(reader.iter_chunks(65536)) == data
    with client.get(url) as reader:
        buf = bytearray(1000)
        assert reader.readinto(buf) == 1000
        assert bytes(buf) == data[:1000]
        assert reader.read() == data[1000:]
    # end-exclusive, like slices
    assert client.get_bytes(url, range=(10, 20)) == data[10:20]
    assert client.get_bytes(url, range=(len(data) - 3, None)) == data[-3:]
    with client.get(url, range=(5, 9)) as reader:
        assert reader.info.size == len(data)  # the whole object's size
        assert reader.read() == data[5:9]
    for bad in [(5, 5), (-1, 3), (9, 2)]:
        with pytest.raises(ConfigError, match="range"):
            client.get(url, range=bad)


def test_get_conditions_and_versions(client: Client, oracle: Any, bucket: str) -> None:
    put(oracle, bucket, "c", b"one")
    url = f"s3://{bucket}/c"
    etag = hashlib.md5(b"one").hexdigest()
    assert client.get_bytes(url, if_match=etag) == b"one"
    with pytest.raises(PreconditionFailedError):
        client.get_bytes(url, if_match="0" * 32)
    with pytest.raises(PreconditionFailedError) as caught:
        client.get_bytes(url, if_none_match=etag)
    assert caught.value.code == "NotModified"
    assert client.get_bytes(url, if_none_match="0" * 32) == b"one"
    # If-Match on a missing key is NotFoundError although SeaweedFS answers 412.
    with pytest.raises(NotFoundError):
        client.get_bytes(f"s3://{bucket}/missing", if_match=etag)


def test_get_verifies_single_part_md5_etag(
    client: Client, bucket: str, monkeypatch: pytest.MonkeyPatch, oracle: Any
) -> None:
    """A whole read is hashed; corrupt the bytes on their way in and the read fails."""
    put(oracle, bucket, "v", b"payload")
    from pos3lite.transport.base import Response

    original = Response.iter_bytes

    def flipped(self: Response) -> Iterator[bytes]:
        for chunk in original(self):
            yield chunk.replace(b"pay", b"PAY")

    monkeypatch.setattr(Response, "iter_bytes", flipped)
    with pytest.raises(ChecksumMismatchError) as caught:
        client.get_bytes(f"s3://{bucket}/v")
    assert caught.value.expected == hashlib.md5(b"payload").hexdigest()
    # a range is not a whole object: nothing to verify against
    assert client.get_bytes(f"s3://{bucket}/v", range=(0, 3)) == b"PAY"


def test_missing_object_errors_are_file_not_found(client: Client, bucket: str) -> None:
    url = f"s3://{bucket}/nope"
    with pytest.raises(NotFoundError) as caught:
        client.get(url)
    assert isinstance(caught.value, FileNotFoundError)
    with pytest.raises(FileNotFoundError):
        client.head(url)
    assert client.exists(url) is False
    client.put(url, b"x")
    assert client.exists(url) is True


def test_bad_urls_are_refused_before_any_request(client: Client) -> None:
    for bad in ["s3://bucket-a/../bucket-b/secret.txt", "s3://bkt/a/./b", "http://x/y", "s3://b"]:
        with pytest.raises(InvalidURLError):
            client.get_bytes(bad)
    with pytest.raises(InvalidURLError, match="names no object key"):
        client.put("s3://bkt/dir/", b"x")


# ------------------------------------------------------------------ conditional writes


def test_if_none_match_creates_only(client: Client, oracle: Any, bucket: str) -> None:
    url = f"s3://{bucket}/once"
    first = client.put(url, b"first", if_none_match="*")
    with pytest.raises(AlreadyExistsError) as caught:
        client.put(url, b"second", if_none_match="*")
    assert isinstance(caught.value, FileExistsError)
    assert isinstance(caught.value, PreconditionFailedError)
    assert get(oracle, bucket, "once") == b"first"
    assert first.etag == hashlib.md5(b"first").hexdigest()
    # the nonce metadata is ours, not the user's
    assert client.head(url).metadata == {}


def test_if_match_replaces_only_that_version(client: Client, oracle: Any, bucket: str) -> None:
    url = f"s3://{bucket}/cas"
    first = client.put(url, b"v1")
    second = client.put(url, b"v2", if_match=first.etag)
    with pytest.raises(PreconditionFailedError) as caught:
        client.put(url, b"v3", if_match=first.etag)
    assert not isinstance(caught.value, (NotFoundError, AlreadyExistsError))
    assert get(oracle, bucket, "cas") == b"v2"
    assert second.etag == hashlib.md5(b"v2").hexdigest()
    with pytest.raises(NotFoundError):
        client.put(f"s3://{bucket}/absent", b"x", if_match=first.etag)
    assert keys(oracle, bucket) == ["cas"]


def test_conditional_multipart_completion(client: Client, oracle: Any, bucket: str) -> None:
    url = f"s3://{bucket}/mp-once"
    data = blob(11 * MiB)
    client.put(url, iter([data]), if_none_match="*", part_size=5 * MiB)
    with pytest.raises(AlreadyExistsError):
        client.put(url, iter([b"y" * (11 * MiB)]), if_none_match="*", part_size=5 * MiB)
    assert get(oracle, bucket, "mp-once") == data
    assert oracle.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_bad_write_arguments_name_the_value(client: Client, bucket: str) -> None:
    url = f"s3://{bucket}/x"
    with pytest.raises(ConfigError, match="'etag'"):
        client.put(url, b"x", if_none_match="etag")
    with pytest.raises(ConfigError, match="not both"):
        client.put(url, b"x", if_none_match="*", if_match="e")
    with pytest.raises(ConfigError, match="'sha512'"):
        client.put(url, b"x", checksum="sha512")
    with pytest.raises(ConfigError, match="metadata"):
        client.put(url, b"x", metadata={"caf\u00e9": "1"})
    with pytest.raises(ConfigError, match="int"):
        client.put(url, 42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="yield bytes"):
        client.put(url, ["text"])  # type: ignore[list-item]
    assert not client.exists(url)


# ------------------------------------------------------------------ open()


def test_open_rb_is_seekable(client: Client, oracle: Any, bucket: str) -> None:
    data = blob(2 * MiB + 11)
    put(oracle, bucket, "seek", data)
    with client.open(f"s3://{bucket}/seek", "rb", block_size=256 * 1024) as f:
        assert f.read(10) == data[:10]
        f.seek(MiB)
        assert f.read(5) == data[MiB : MiB + 5]
        f.seek(-7, io.SEEK_END)
        assert f.read() == data[-7:]
        f.seek(0)
        assert f.read() == data
        assert f.tell() == len(data)


def test_open_rb_raises_when_overwritten_mid_read(client: Client, oracle: Any, bucket: str) -> None:
    data = blob(3 * MiB)
    put(oracle, bucket, "moving", data)
    with client.open(f"s3://{bucket}/moving", "rb", block_size=MiB) as f:
        assert f.read(MiB) == data[:MiB]
        put(oracle, bucket, "moving", blob(3 * MiB, seed=99))
        with pytest.raises(PreconditionFailedError):
            f.read(MiB)


def test_open_wb_streams_multipart_and_xb_creates_only(
    client: Client, oracle: Any, bucket: str
) -> None:
    data = blob(12 * MiB + 1)
    url = f"s3://{bucket}/w"
    with client.open(url, "wb", part_size=5 * MiB) as f:
        for i in range(0, len(data), 100_000):
            f.write(data[i : i + 100_000])
    assert get(oracle, bucket, "w") == data
    with client.open(f"s3://{bucket}/small", "xb") as f:
        f.write(b"tiny")
    assert get(oracle, bucket, "small") == b"tiny"
    with pytest.raises(AlreadyExistsError), client.open(url, "xb") as f:
        f.write(b"other")
    assert get(oracle, bucket, "w") == data


def test_open_wb_aborts_on_exception(client: Client, oracle: Any, bucket: str) -> None:
    url = f"s3://{bucket}/half"
    with pytest.raises(RuntimeError, match="boom"), client.open(url, "wb", part_size=5 * MiB) as f:
        f.write(blob(11 * MiB))  # two parts already uploaded
        raise RuntimeError("boom")
    assert keys(oracle, bucket) == []
    assert oracle.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    with pytest.raises(ConfigError, match="mode"):
        client.open(url, "r")


# ------------------------------------------------------------------ delete, copy, list


def test_delete_and_conditional_delete(client: Client, oracle: Any, bucket: str) -> None:
    put(oracle, bucket, "d", b"1")
    client.delete(f"s3://{bucket}/d")
    assert keys(oracle, bucket) == []
    client.delete(f"s3://{bucket}/d")  # missing is fine
    with pytest.raises(NotFoundError):
        client.delete(f"s3://{bucket}/d", if_match="0" * 32)


def test_delete_many_reports_per_key(client: Client, oracle: Any, bucket: str) -> None:
    names = [f"m/{i}" for i in range(5)]
    for n in names:
        put(oracle, bucket, n, b"x")
    urls = [f"s3://{bucket}/{n}" for n in names] + [f"s3://{bucket}/never-there"]
    report = client.delete_many(urls)
    assert sorted(report.deleted) == sorted(urls)
    assert report.errors == {}
    assert keys(oracle, bucket) == []


def test_copy_server_side_with_metadata(client: Client, oracle: Any, bucket: str) -> None:
    src = f"s3://{bucket}/src"
    client.put(src, b"copy me", content_type="text/plain", metadata={"a": "1"})
    result = client.copy(src, f"s3://{bucket}/dst")
    assert get(oracle, bucket, "dst") == b"copy me"
    assert result.etag == hashlib.md5(b"copy me").hexdigest()
    assert client.head(f"s3://{bucket}/dst").metadata == {"a": "1"}
    client.copy(src, f"s3://{bucket}/dst2", metadata={"b": "2"}, content_type="text/csv")
    info = client.head(f"s3://{bucket}/dst2")
    assert info.metadata == {"b": "2"} and info.content_type == "text/csv"
    with pytest.raises(AlreadyExistsError):
        client.copy(src, f"s3://{bucket}/dst", if_none_match="*")
    with pytest.raises(NotFoundError):
        client.copy(f"s3://{bucket}/no-src", f"s3://{bucket}/dst3")


def test_multipart_copy_above_the_single_copy_limit(
    client: Client, oracle: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pos3lite.objects as objects

    monkeypatch.setattr(objects, "_MAX_SINGLE_PUT", 6 * MiB)
    monkeypatch.setattr(objects, "_COPY_PART", 5 * MiB)
    data = blob(12 * MiB + 3)
    put(oracle, bucket, "big-src", data)
    result = client.copy(f"s3://{bucket}/big-src", f"s3://{bucket}/big-dst")
    assert result.etag.endswith("-3")
    assert get(oracle, bucket, "big-dst") == data


def test_list_objects_streams_pages(client: Client, oracle: Any, bucket: str) -> None:
    names = ["a", "b/1", "b/2", "b/c/3", "d"]
    for n in names:
        put(oracle, bucket, n, n.encode())
    listed = list(client.list_objects(f"s3://{bucket}/"))
    assert [o.key for o in listed] == names
    assert listed[1].url == f"s3://{bucket}/b/1" and listed[1].size == 3
    assert listed[1].etag == hashlib.md5(b"b/1").hexdigest()
    assert [o.key for o in client.list_objects(f"s3://{bucket}/b/")] == ["b/1", "b/2", "b/c/3"]
    flat = client.list_objects(f"s3://{bucket}/b/", recursive=False)
    assert [o.key for o in flat] == ["b/1", "b/2"]
    after = client.list_objects(f"s3://{bucket}", start_after="b/2")
    assert [o.key for o in after] == ["b/c/3", "d"]


def test_list_objects_more_than_one_page(client: Client, oracle: Any, bucket: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    names = [f"p/{i:05d}" for i in range(1003)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda n: put(oracle, bucket, n, b""), names))
    assert [o.key for o in client.list_objects(f"s3://{bucket}/p/")] == names


# ------------------------------------------------------------------ module functions


def test_module_functions_use_the_ambient_environment(
    s3_env: Any, oracle: Any, bucket: str
) -> None:
    url = f"s3://{bucket}/mod"
    pos3lite.put(url, b"module")
    assert pos3lite.get_bytes(url) == b"module"
    assert pos3lite.exists(url)
    assert pos3lite.head(url).size == 6
    with pos3lite.open(url) as f:
        assert f.read() == b"module"
    with pos3lite.get(url) as r:
        assert r.read() == b"module"
    pos3lite.copy(url, url + "2")
    assert [o.key for o in pos3lite.list_objects(f"s3://{bucket}/")] == ["mod", "mod2"]
    assert pos3lite.delete_many([url + "2"]).deleted == [url + "2"]
    pos3lite.delete(url)
    assert keys(oracle, bucket) == []


def test_module_functions_take_a_profile(
    profile: Any, s3_env: Any, oracle: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pos3lite.put(f"s3://{bucket}/p", b"by profile", profile=profile)
    assert get(oracle, bucket, "p") == b"by profile"
    # a named profile (credentials from the environment), by keyword and by URL selector
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")  # ambient: wrong port
    pos3lite.register_profile("objtest", endpoint=profile.endpoint, region=profile.region)
    assert pos3lite.get_bytes(f"s3://{bucket}/p", profile="objtest") == b"by profile"
    assert pos3lite.get_bytes(f"s3://objtest@{bucket}/p") == b"by profile"


def test_stream_of_unknown_length_has_bounded_memory(s3_server: Any, bucket: str) -> None:
    """50 MiB from a generator, 5 MiB parts, 2 in flight: the peak RSS of the child process
    grows by far less than the stream (it would grow by >= 50 MiB if buffered whole).

    The peak is the kernel's high-water mark of the child's own address space (``VmHWM``);
    ``ru_maxrss`` would also count the pre-exec image of this pytest process (Linux keeps the
    maximum across exec), hiding the growth. ``ru_maxrss`` is the fallback without /proc."""
    import subprocess
    import sys

    code = f"""
import resource, pos3lite
def hwm():
    try:
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
from pos3lite import Profile
p = Profile(local_name="t", endpoint={s3_server.endpoint!r}, region={s3_server.region!r},
            access_key={s3_server.access_key!r}, secret_key={s3_server.secret_key!r})
c = pos3lite.Client(p, max_workers=2)
c.put("s3://{bucket}/warm", b"x" * 1024)
base = hwm()
def gen():
    block = bytes(range(256)) * 256  # 64 KiB
    for _ in range(50 * 16):
        yield block
r = c.put("s3://{bucket}/stream", gen(), part_size=5 * 1024 * 1024)
peak = hwm()
print(base, peak, r.etag)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    base, peak = int(out[0]), int(out[1])
    assert out[2].endswith("-10")
    grown_mib = (peak - base) / 1024
    assert grown_mib < 35, f"RSS grew by {grown_mib:.1f} MiB for a 50 MiB stream"
    print(f"\n50 MiB unknown-length stream: peak RSS grew by {grown_mib:.1f} MiB")


@pytest.mark.parametrize("algorithm", ["SHA256", "SHA1", "CRC32"])
def test_get_verifies_a_stored_checksum(
    client: Client, oracle: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, algorithm: str
) -> None:
    """boto3 stores the object with a checksum; a clean read passes, a corrupted one fails."""
    oracle.put_object(
        Bucket=bucket, Key="sum", Body=b"checked payload", ChecksumAlgorithm=algorithm
    )
    info = client.head(f"s3://{bucket}/sum")
    assert algorithm.lower() in info.checksums
    assert client.get_bytes(f"s3://{bucket}/sum") == b"checked payload"
    from pos3lite.transport.base import Response

    original = Response.iter_bytes

    def flipped(self: Response) -> Iterator[bytes]:
        for chunk in original(self):
            yield chunk.replace(b"checked", b"CHECKED")

    monkeypatch.setattr(Response, "iter_bytes", flipped)
    with pytest.raises(ChecksumMismatchError) as caught:
        client.get_bytes(f"s3://{bucket}/sum")
    assert caught.value.expected == info.checksums[algorithm.lower()]


def test_conditional_delete_of_a_changed_object(client: Client, oracle: Any, bucket: str) -> None:
    first = client.put(f"s3://{bucket}/cd", b"1")
    client.put(f"s3://{bucket}/cd", b"2")
    with pytest.raises(PreconditionFailedError):
        client.delete(f"s3://{bucket}/cd", if_match=first.etag)
    assert get(oracle, bucket, "cd") == b"2"
    client.delete(f"s3://{bucket}/cd", if_match=hashlib.md5(b"2").hexdigest())
    assert keys(oracle, bucket) == []


def test_create_only_copy_keeps_headers_head_does_not_show(
    client: Client, oracle: Any, bucket: str
) -> None:
    oracle.put_object(
        Bucket=bucket, Key="styled", Body=b"css", CacheControl="max-age=60", ContentType="text/css"
    )
    client.copy(f"s3://{bucket}/styled", f"s3://{bucket}/styled-copy", if_none_match="*")
    got = oracle.head_object(Bucket=bucket, Key="styled-copy")
    assert got["CacheControl"] == "max-age=60" and got["ContentType"] == "text/css"


def test_text_mode_file_is_refused(client: Client, bucket: str, tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("text")
    with open(path) as f, pytest.raises(ConfigError, match="binary file"):
        client.put(f"s3://{bucket}/t", f)
    assert not client.exists(f"s3://{bucket}/t")


def test_open_rb_exposes_info_and_refuses_missing_keys(
    client: Client, oracle: Any, bucket: str
) -> None:
    put(oracle, bucket, "i", b"12345")
    with client.open(f"s3://{bucket}/i") as f:
        assert f.info.size == 5  # type: ignore[attr-defined]
    with pytest.raises(NotFoundError):
        client.open(f"s3://{bucket}/absent")
