"""The S3 client against a real server (SeaweedFS with SigV4 enforced).

:class:`pos3lite.s3.client.S3Client` is built directly here (no mirror), so these tests pin
the wire level: signing, key encoding, listing, batching, conditional requests and error
translation. boto3 (the ``oracle`` fixture) is the independent check of what was stored.
"""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from pos3lite.auth.credentials import CredentialChain, StaticProvider
from pos3lite.errors import AccessDeniedError, NotFoundError, S3Error
from pos3lite.s3.client import S3Client
from pos3lite.s3.xml import ObjectInfo
from pos3lite.transport.urllib3 import Urllib3Transport
from tests.integration.conftest import READ_ACCESS_KEY, READ_SECRET_KEY, get, keys, put

pytestmark = pytest.mark.integration


def make_client(server: Any, access_key: str, secret_key: str) -> S3Client:
    return S3Client(
        Urllib3Transport(max_connections=4),
        region=server.region,
        endpoint=server.endpoint,
        credentials=CredentialChain([StaticProvider(access_key, secret_key)]),
    )


@pytest.fixture
def client(s3_server: Any) -> Iterator[S3Client]:
    c = make_client(s3_server, s3_server.access_key, s3_server.secret_key)
    yield c
    c.close()


@pytest.fixture
def reader(s3_server: Any) -> Iterator[S3Client]:
    """A client for the read+list-only identity."""
    c = make_client(s3_server, READ_ACCESS_KEY, READ_SECRET_KEY)
    yield c
    c.close()


def _put_many(oracle: Any, bucket: str, names: list[str]) -> None:
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda k: put(oracle, bucket, k, b"x"), names))


def _objects(items: list[ObjectInfo | str]) -> list[str]:
    out = []
    for item in items:
        assert isinstance(item, ObjectInfo), item
        out.append(item.key)
    return out


# ----------------------------------------------------------------------------- auth and errors


def test_wrong_secret_is_rejected_with_403(s3_server: Any, bucket: str, oracle: Any) -> None:
    """SigV4 is enforced: the same access key with a wrong secret gets 403."""
    put(oracle, bucket, "k.txt", b"hello")
    wrong_secret = "not-the-secret-" + uuid.uuid4().hex
    bad = make_client(s3_server, s3_server.access_key, wrong_secret)
    try:
        with pytest.raises(AccessDeniedError) as info:
            list(bad.list_objects(bucket))
        err = info.value
        assert err.status == 403
        assert err.code in ("SignatureDoesNotMatch", "AccessDenied")
        assert err.bucket == bucket
        assert wrong_secret not in str(err)
        assert s3_server.secret_key not in str(err)

        # GET of an existing object: same answer, and the key is recorded.
        with pytest.raises(AccessDeniedError) as info2:
            bad.get_object(bucket, "k.txt", io.BytesIO())
        assert info2.value.status == 403
        assert info2.value.key == "k.txt"
        assert info2.value.code in ("SignatureDoesNotMatch", "AccessDenied")
        assert wrong_secret not in str(info2.value) and wrong_secret not in repr(info2.value)
    finally:
        bad.close()


def test_error_carries_request_id(s3_server: Any, bucket: str, oracle: Any) -> None:
    """The server's request id is surfaced on the exception and in its message."""
    # What the server sends, seen by the oracle (a HEAD of a missing key: header only).
    with pytest.raises(oracle.exceptions.ClientError) as raw:
        oracle.head_object(Bucket=bucket, Key="missing")
    server_sends_id = bool(raw.value.response["ResponseMetadata"].get("RequestId"))

    bad = make_client(s3_server, s3_server.access_key, "wrong-secret-value")
    good = make_client(s3_server, s3_server.access_key, s3_server.secret_key)
    try:
        with pytest.raises(AccessDeniedError) as info:
            list(bad.list_objects(bucket))  # id from the XML body
        with pytest.raises(NotFoundError) as info_head:
            good.head_object(bucket, "missing")  # id from the x-amz-request-id header
    finally:
        bad.close()
        good.close()
    assert "403" in str(info.value)
    for err in (info.value, info_head.value):
        if server_sends_id:  # SeaweedFS and S3 do
            assert err.request_id
            assert f"[request id {err.request_id}]" in str(err)


def test_read_only_identity_cannot_put(
    reader: S3Client, bucket: str, tmp_path: Path, oracle: Any
) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(b"data")
    with pytest.raises(AccessDeniedError) as info:
        reader.put_object_from_file(bucket, "f.bin", src)
    assert info.value.status == 403
    assert info.value.code  # AccessDenied on SeaweedFS and S3
    assert keys(oracle, bucket) == []
    assert READ_SECRET_KEY not in str(info.value)


def test_read_only_identity_can_read_and_list(reader: S3Client, bucket: str, oracle: Any) -> None:
    """Control for the test above: the identity is valid, only writes are denied."""
    put(oracle, bucket, "a.txt", b"abc")
    assert _objects(list(reader.list_objects(bucket))) == ["a.txt"]
    out = io.BytesIO()
    reader.get_object(bucket, "a.txt", out)
    assert out.getvalue() == b"abc"


def test_missing_bucket_is_no_such_bucket(client: S3Client) -> None:
    name = f"missing-{uuid.uuid4().hex[:16]}"
    with pytest.raises(NotFoundError) as info:
        list(client.list_objects(name))
    assert info.value.code == "NoSuchBucket"
    assert info.value.status == 404
    assert info.value.bucket == name
    with pytest.raises(NotFoundError) as info2:
        client.head_bucket(name)
    assert info2.value.status == 404


def test_head_of_missing_key_is_not_found(client: S3Client, bucket: str) -> None:
    with pytest.raises(NotFoundError) as info:
        client.head_object(bucket, "no/such/key.txt")
    err = info.value
    assert err.status == 404
    assert err.key == "no/such/key.txt"
    assert err.bucket == bucket
    assert err.code  # derived from the status: a HEAD answer has no body
    assert f"s3://{bucket}/no/such/key.txt" in str(err)


def test_get_of_missing_key_is_no_such_key(client: S3Client, bucket: str) -> None:
    out = io.BytesIO()
    with pytest.raises(NotFoundError) as info:
        client.get_object(bucket, "nope", out)
    assert info.value.code == "NoSuchKey"
    assert info.value.key == "nope"
    assert out.getvalue() == b""


def test_error_strings_never_contain_the_secret(s3_server: Any, client: S3Client) -> None:
    errors: list[BaseException] = []
    name = f"missing-{uuid.uuid4().hex[:16]}"
    for call in (
        lambda: list(client.list_objects(name)),
        lambda: client.head_object(name, "k"),
        lambda: client.get_object(name, "k", io.BytesIO()),
    ):
        try:
            call()
        except S3Error as exc:
            errors.append(exc)
    assert len(errors) == 3
    for err in errors:
        for text in (str(err), repr(err), repr(err.args)):
            assert s3_server.secret_key not in text


# ----------------------------------------------------------------------------- awkward keys

AWKWARD_KEYS = [
    "with space.txt",
    "dir with space/inner file.txt",
    "unicode/caf\u00e9-\u65e5\u672c-\U0001f600.txt",
    "plus+sign.txt",
    "percent%20literal.txt",
    "percent%zz.txt",
    "tilde~file.txt",
    "eq=and&amp.txt",
    "bang!quote'paren(x).txt",
    "star*comma,semi;colon:at@dollar$.txt",
    "question?mark.txt",
    "hash#mark.txt",
    "brackets[1].txt",
    "all +%~=&!'()*,;:@$?#[].txt",
]


def test_awkward_keys_put_by_client_read_by_oracle(
    client: S3Client, bucket: str, oracle: Any, tmp_path: Path
) -> None:
    for i, key in enumerate(AWKWARD_KEYS):
        data = f"{i}:{key}".encode() + os.urandom(32)
        src = tmp_path / f"src{i}"
        src.write_bytes(data)
        etag = client.put_object_from_file(bucket, key, src)
        assert etag == hashlib.md5(data).hexdigest(), key
        assert get(oracle, bucket, key) == data, key
    assert keys(oracle, bucket) == sorted(AWKWARD_KEYS)


def test_awkward_keys_put_by_oracle_read_by_client(
    client: S3Client, bucket: str, oracle: Any
) -> None:
    expected = {}
    for i, key in enumerate(AWKWARD_KEYS):
        data = f"{i}:{key}".encode() + os.urandom(16)
        put(oracle, bucket, key, data)
        expected[key] = data
    for key, data in expected.items():
        out = io.BytesIO()
        result = client.get_object(bucket, key, out)
        assert out.getvalue() == data, key
        assert result.size == len(data)
        assert result.etag == hashlib.md5(data).hexdigest()
        info = client.head_object(bucket, key)
        assert info.size == len(data)
        assert info.key == key


def test_list_decodes_awkward_keys_in_utf8_byte_order(
    client: S3Client, bucket: str, oracle: Any
) -> None:
    for key in AWKWARD_KEYS:
        put(oracle, bucket, key, b"z")
    listed = _objects(list(client.list_objects(bucket)))
    assert listed == sorted(AWKWARD_KEYS, key=lambda k: k.encode("utf-8"))
    # Prefix filtering with awkward characters in the prefix itself.
    sub = _objects(list(client.list_objects(bucket, "dir with space/")))
    assert sub == ["dir with space/inner file.txt"]
    uni = _objects(list(client.list_objects(bucket, "unicode/")))
    assert uni == ["unicode/caf\u00e9-\u65e5\u672c-\U0001f600.txt"]


@pytest.mark.parametrize("key", ["a//b.txt", "//lead.txt", "deep///x//y.txt"])
def test_double_slash_keys_are_sent_as_signed(
    s3_server: Any, client: S3Client, bucket: str, oracle: Any, tmp_path: Path, key: str
) -> None:
    """The path is sent byte-for-byte as it was signed.

    If anything between signing and the socket collapsed ``//`` (urllib3's ``parse_url``
    does), the server would compute a different canonical request and answer 403
    SignatureDoesNotMatch. What the server then *stores* may differ: SeaweedFS quirk, it
    stores ``a//b.txt`` as ``a/b.txt`` (real S3 keeps every key literally), so the stored
    name is not asserted, only that exactly one object with our bytes exists.
    """
    src = tmp_path / "body"
    src.write_bytes(b"dot-body")
    etag = client.put_object_from_file(bucket, key, src)  # no SignatureDoesNotMatch
    assert etag == hashlib.md5(b"dot-body").hexdigest()
    stored = keys(oracle, bucket)
    assert len(stored) == 1, stored
    assert get(oracle, bucket, stored[0]) == b"dot-body"
    # Control: the server does verify signatures on such paths.
    bad = make_client(s3_server, s3_server.access_key, "wrong-secret")
    try:
        with pytest.raises(AccessDeniedError) as info:
            bad.put_object_from_file(bucket, key, src)
        assert info.value.code == "SignatureDoesNotMatch"
    finally:
        bad.close()


@pytest.mark.parametrize(
    "key", ["dots/./x.txt", "dots/../y.txt", "trail/.", "lead/..", "./start.txt"]
)
def test_dot_segment_keys_never_fail_the_signature(
    client: S3Client, bucket: str, tmp_path: Path, key: str
) -> None:
    """``.``/``..`` segments are sent unnormalised, so the signature always matches.

    Real S3 stores such keys literally. SeaweedFS quirk: it refuses them with 400
    InvalidRequest before checking the signature (a wrong secret gets the same 400), so here
    this can only assert that the answer is never a 403 signature failure.
    """
    src = tmp_path / "body"
    src.write_bytes(b"dot-body")
    try:
        etag = client.put_object_from_file(bucket, key, src)
    except S3Error as exc:
        assert exc.code != "SignatureDoesNotMatch", f"{key!r} was sent differently than signed"
        assert exc.status != 403, f"{key!r}: {exc}"
        assert exc.status == 400  # SeaweedFS: InvalidRequest
    else:
        assert etag == hashlib.md5(b"dot-body").hexdigest()  # real S3


def test_double_slash_key_roundtrip_by_client(
    client: S3Client, bucket: str, tmp_path: Path
) -> None:
    """A ``//`` key written and read back through the same signed path gives the same bytes.

    SeaweedFS quirk: it lists the object as ``a/b.txt``; real S3 lists ``a//b.txt``.
    """
    src = tmp_path / "body"
    src.write_bytes(b"slashes")
    client.put_object_from_file(bucket, "a//b.txt", src)
    out = io.BytesIO()
    client.get_object(bucket, "a//b.txt", out)
    assert out.getvalue() == b"slashes"
    listed = _objects(list(client.list_objects(bucket)))
    assert listed in (["a//b.txt"], ["a/b.txt"])  # real S3 / SeaweedFS


# ----------------------------------------------------------------------------- listing


def test_pagination_lists_everything(client: S3Client, bucket: str, oracle: Any) -> None:
    names = [f"p/{i:05d}" for i in range(1107)] + ["p/zz/last", "q/outside"]
    _put_many(oracle, bucket, names)
    expected = sorted(n for n in names if n.startswith("p/"))
    full = _objects(list(client.list_objects(bucket, "p/", page_size=1000)))
    assert full == expected
    small = _objects(list(client.list_objects(bucket, "p/", page_size=250)))
    assert small == expected
    everything = _objects(list(client.list_objects(bucket, page_size=333)))
    assert everything == sorted(names)
    sizes = {o.size for o in client.list_objects(bucket, "p/") if isinstance(o, ObjectInfo)}
    assert sizes == {1}


def test_delimiter_listing_mixes_prefixes_in_key_order(
    client: S3Client, bucket: str, oracle: Any
) -> None:
    for k in ["d/a.txt", "d/b/x.txt", "d/b/y.txt", "d/c.txt", "d/d/z.txt", "d/e.txt", "d/b.txt"]:
        put(oracle, bucket, k, b"1")
    items = list(client.list_objects(bucket, "d/", delimiter="/"))
    names = [i if isinstance(i, str) else i.key for i in items]
    assert names == ["d/a.txt", "d/b.txt", "d/b/", "d/c.txt", "d/d/", "d/e.txt"]
    prefixes = [i for i in items if isinstance(i, str)]
    assert prefixes == ["d/b/", "d/d/"]
    assert all(p.endswith("/") for p in prefixes)
    # With small pages as well: nothing lost or duplicated. Order is only asserted as a set:
    # SeaweedFS quirk, across pages it orders "d/b/" before "d/b.txt" (it walks folder names,
    # "b" < "b.txt"), while real S3 keeps UTF-8 byte order across pages. The client sorts
    # within a page; pos3lite.ls and the mirror sort whole listings.
    paged = list(client.list_objects(bucket, "d/", delimiter="/", page_size=2))
    paged_names = [i if isinstance(i, str) else i.key for i in paged]
    assert sorted(paged_names) == sorted(names)
    assert len(paged_names) == len(names)


def test_list_of_empty_prefix_is_empty(client: S3Client, bucket: str) -> None:
    assert list(client.list_objects(bucket, "nothing/here/")) == []


# ----------------------------------------------------------------------------- delete


def test_delete_objects_in_batches(client: S3Client, bucket: str, oracle: Any) -> None:
    names = [f"del/{i:05d}" for i in range(1205)]
    _put_many(oracle, bucket, [*names, "keep/me"])
    assert len(keys(oracle, bucket, "del/")) == 1205
    failures = client.delete_objects(bucket, names)
    assert failures == []
    assert keys(oracle, bucket) == ["keep/me"]


def test_delete_objects_of_missing_keys_is_not_an_error(client: S3Client, bucket: str) -> None:
    # S3 reports deleting a key that does not exist as success.
    assert client.delete_objects(bucket, ["never/existed", "nor/this"]) == []


def test_delete_objects_with_awkward_keys(client: S3Client, bucket: str, oracle: Any) -> None:
    for k in AWKWARD_KEYS:
        put(oracle, bucket, k, b"x")
    assert client.delete_objects(bucket, AWKWARD_KEYS) == []
    assert keys(oracle, bucket) == []


def test_delete_objects_denied_for_read_only_identity(
    reader: S3Client, bucket: str, oracle: Any
) -> None:
    put(oracle, bucket, "a", b"1")
    put(oracle, bucket, "b", b"2")
    try:
        failures = reader.delete_objects(bucket, ["a", "b"])
    except AccessDeniedError as exc:
        # The whole request is refused (SeaweedFS, and S3 without s3:DeleteObject).
        assert exc.status == 403
        assert exc.bucket == bucket
    else:
        # Or S3 reports it per key: then every key must be surfaced.
        assert sorted(f.key for f in failures if f.key) == ["a", "b"]
        assert all(f.code == "AccessDenied" for f in failures)
    assert keys(oracle, bucket) == ["a", "b"]


# ----------------------------------------------------------------------------- buckets


def test_create_and_head_bucket(client: S3Client, oracle: Any) -> None:
    name = f"c-{uuid.uuid4().hex[:20]}"
    with pytest.raises(NotFoundError):
        client.head_bucket(name)
    client.create_bucket(name)
    client.head_bucket(name)  # no exception
    names = [b["Name"] for b in oracle.list_buckets()["Buckets"]]
    assert name in names
    with pytest.raises(S3Error) as info:
        client.create_bucket(name)
    assert info.value.code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists")
    assert info.value.status == 409
    assert info.value.bucket == name


# ----------------------------------------------------------------------------- conditional, md5


def test_get_with_wrong_if_match_is_precondition_failed(
    client: S3Client, bucket: str, oracle: Any
) -> None:
    put(oracle, bucket, "c.txt", b"content")
    out = io.BytesIO()
    with pytest.raises(S3Error) as info:
        client.get_object(bucket, "c.txt", out, if_match="0" * 32)
    assert info.value.status == 412
    assert info.value.code == "PreconditionFailed"
    assert out.getvalue() == b""
    # The right ETag passes.
    right = hashlib.md5(b"content").hexdigest()
    result = client.get_object(bucket, "c.txt", out, if_match=right)
    assert out.getvalue() == b"content"
    assert result.etag == right


def test_streamed_put_with_content_md5(
    client: S3Client, bucket: str, oracle: Any, tmp_path: Path
) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # several transport blocks
    src = tmp_path / "stream.bin"
    src.write_bytes(data)
    seen: list[int] = []
    etag = client.put_object_from_file(bucket, "s/stream.bin", src, on_bytes=seen.append)
    md5 = hashlib.md5(data).hexdigest()
    assert etag == md5
    head = oracle.head_object(Bucket=bucket, Key="s/stream.bin")
    assert head["ETag"].strip('"') == md5
    assert head["ContentLength"] == len(data)
    assert sum(seen) >= len(data)  # progress saw every byte (rewinds may add more)
    assert get(oracle, bucket, "s/stream.bin") == data


def test_put_object_bytes(client: S3Client, bucket: str, oracle: Any) -> None:
    etag = client.put_object(bucket, "marker/", b"")
    assert etag == hashlib.md5(b"").hexdigest()
    assert keys(oracle, bucket) == ["marker/"]


# ----------------------------------------------------------------------------- sizes


def test_zero_byte_object_roundtrip(
    client: S3Client, bucket: str, oracle: Any, tmp_path: Path
) -> None:
    src = tmp_path / "empty"
    src.write_bytes(b"")
    etag = client.put_object_from_file(bucket, "empty", src)
    assert etag == hashlib.md5(b"").hexdigest()
    assert get(oracle, bucket, "empty") == b""
    out = io.BytesIO()
    result = client.get_object(bucket, "empty", out)
    assert result.size == 0 and out.getvalue() == b""
    assert client.head_object(bucket, "empty").size == 0


def test_large_object_roundtrip(client: S3Client, bucket: str, oracle: Any, tmp_path: Path) -> None:
    data = os.urandom(20 * 1024 * 1024 + 3)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    etag = client.put_object_from_file(bucket, "big/big.bin", src)
    md5 = hashlib.md5(data).hexdigest()
    assert etag == md5
    assert oracle.head_object(Bucket=bucket, Key="big/big.bin")["ContentLength"] == len(data)
    dst = tmp_path / "back.bin"
    with open(dst, "wb") as f:
        result = client.get_object(bucket, "big/big.bin", f)
    assert result.size == len(data)
    assert result.etag == md5
    assert hashlib.md5(dst.read_bytes()).hexdigest() == md5
    info = client.head_object(bucket, "big/big.bin")
    assert info.size == len(data)
    assert info.last_modified > 0
