"""Mirror-level behaviour against servers' quirks and hostile keys (issue 9), on the in-memory
fake S3: the HEAD probe under a prefix-scoped policy, unsafe keys and excludes, case-fold and
Unicode-normalisation twins, folder markers stored as files."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import pytest

import pos3lite
from pos3lite import _mirror
from pos3lite.errors import (
    AccessDeniedError,
    ConfigError,
    KeyConflictError,
    TransferError,
    UnsafeKeyError,
)
from pos3lite.keys import NAME_MAX, check_relative_key, collisions
from pos3lite.profiles import Profile
from pos3lite.s3.client import S3Client
from pos3lite.transport.base import MockTransport
from tests.support.fake_s3 import FakeS3

LISTED = 1795302205.0


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeS3:
    s3 = FakeS3()
    transport = MockTransport(s3)
    client = S3Client(transport, region="us-east-1", endpoint="http://s3.test", sleep=lambda s: 0)
    monkeypatch.setattr(_mirror._Mirror, "client", lambda self, profile: client)
    s3.transport = transport  # type: ignore[attr-defined]
    return s3


def mirror(tmp_path: Path):  # type: ignore[no-untyped-def]
    return pos3lite.mirror(cache_root=tmp_path / "cache", show_progress=False)


# ------------------------------------------------------------------ HEAD probe under a policy


def test_head_403_on_a_prefix_lists_it_instead(fake: FakeS3, tmp_path: Path) -> None:
    # The "download only" policy of docs/containers.md allows ListBucket on tree/* and
    # GetObject on tree/*, so HEAD on the bare "tree" is 403.
    fake.head_status = 403
    fake.objects.update({"tree/a.txt": b"a", "tree/sub/b.txt": b"bb"})
    with mirror(tmp_path):
        got = pos3lite.download("s3://bkt/tree", local=tmp_path / "out")
        listed = pos3lite.ls("s3://bkt/tree", recursive=True)
    assert (got / "a.txt").read_bytes() == b"a" and (got / "sub" / "b.txt").read_bytes() == b"bb"
    assert listed == ["s3://bkt/tree/a.txt", "s3://bkt/tree/sub/b.txt"]


def test_head_403_with_a_wrong_secret_raises_the_listings_code(
    fake: FakeS3, tmp_path: Path
) -> None:
    fake.head_status = 403
    fake.list_error = (403, b"<Error><Code>SignatureDoesNotMatch</Code></Error>")
    with mirror(tmp_path), pytest.raises(AccessDeniedError) as info:
        pos3lite.download("s3://bkt/tree", local=tmp_path / "out")
    assert info.value.code == "SignatureDoesNotMatch"


def test_head_403_and_nothing_under_the_prefix_raises_the_original_error(
    fake: FakeS3, tmp_path: Path
) -> None:
    fake.head_status = 403
    with mirror(tmp_path), pytest.raises(AccessDeniedError) as info:
        pos3lite.download("s3://bkt/secret.txt", local=tmp_path / "out")
    assert info.value.status == 403 and info.value.key == "secret.txt"
    with mirror(tmp_path), pytest.raises(AccessDeniedError):
        pos3lite.ls("s3://bkt/secret.txt")


# ------------------------------------------------------------------ unsafe keys


def test_an_unsafe_key_matched_by_an_exclude_is_skipped_silently(
    fake: FakeS3, tmp_path: Path
) -> None:
    fake.objects.update({"d/a//b.txt": b"x", "d/ok.txt": b"ok"})
    with mirror(tmp_path):
        out = pos3lite.download("s3://bkt/d", local=tmp_path / "out", exclude=["a"])
    assert sorted(os.listdir(out)) == ["ok.txt"]


def test_an_unsafe_key_fails_only_itself(fake: FakeS3, tmp_path: Path) -> None:
    fake.objects.update({"d/a//b.txt": b"x", "d/ok.txt": b"ok", "d/z/y.txt": b"y"})
    with mirror(tmp_path), pytest.raises(TransferError) as info:
        pos3lite.download("s3://bkt/d", local=tmp_path / "out")
    assert [(type(e), e.key) for e in info.value.failures] == [(UnsafeKeyError, "d/a//b.txt")]  # type: ignore[attr-defined]
    assert (tmp_path / "out" / "ok.txt").read_bytes() == b"ok"
    assert (tmp_path / "out" / "z" / "y.txt").read_bytes() == b"y"


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("a//b", "empty segment"),
        ("x" * (NAME_MAX + 1), "256 bytes"),
        ("d/" + "é" * 128, "256 bytes"),
        ("../x", "'..' segment"),
    ],
)
def test_keys_that_misbehave_on_posix_are_unsafe(key: str, reason: str) -> None:
    with pytest.raises(UnsafeKeyError, match=reason):
        check_relative_key(key)


def test_a_255_byte_segment_is_fine() -> None:
    check_relative_key("d/" + "x" * NAME_MAX)


# ------------------------------------------------------------------ case-fold / NFC twins


NFC = unicodedata.normalize("NFC", "café.txt")
NFD = unicodedata.normalize("NFD", "café.txt")


@pytest.mark.parametrize(
    ("remote", "local"), [("A.txt", "a.txt"), (NFC, NFD)], ids=["case", "nfc-nfd"]
)
def test_twins_are_a_key_conflict_at_plan_time_and_nothing_is_lost(
    fake: FakeS3, tmp_path: Path, remote: str, local: str
) -> None:
    fake.objects.update({f"d/{remote}": b"remote", "d/other.txt": b"o"})
    out = tmp_path / "out"
    out.mkdir()
    (out / local).write_bytes(b"local")
    with mirror(tmp_path), pytest.raises(TransferError) as info:
        pos3lite.download("s3://bkt/d", local=out, delete=True)
    conflicts = [e for e in info.value.failures if isinstance(e, KeyConflictError)]
    assert len(conflicts) == 1
    assert remote in str(conflicts[0]) and local in str(conflicts[0])
    assert (out / local).read_bytes() == b"local"  # neither copied over nor deleted
    assert (out / "other.txt").read_bytes() == b"o"


def test_twins_on_upload_are_not_uploaded_nor_deleted(fake: FakeS3, tmp_path: Path) -> None:
    fake.objects.update({"d/A.txt": b"remote"})
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"local")
    (src / "b.txt").write_bytes(b"b")
    with pytest.raises(TransferError) as info, mirror(tmp_path):
        pos3lite.upload("s3://bkt/d", local=src, delete=True)
    assert any(isinstance(e, KeyConflictError) for e in info.value.failures)
    assert fake.objects == {"d/A.txt": b"remote", "d/b.txt": b"b"}


def test_collisions_table() -> None:
    assert collisions(["A", "a", "b", "B/", "b/", "x", "x/"]) == [("A", "a"), ("B/", "b")]
    assert collisions(["ß", "ss"]) == [("ss", "ß")]
    assert collisions(["Ǆ", "ǆ", "ǅ"]) == [("Ǆ", "ǅ"), ("Ǆ", "ǆ")]
    assert collisions(["plain", "other"]) == []


# ------------------------------------------------------------------ folder markers


def test_an_empty_folder_equals_a_zero_byte_object_of_its_name(
    fake: FakeS3, tmp_path: Path
) -> None:
    # rclone stores the marker "x/" as a file "x" and lists it as a 0-byte object.
    fake.objects.update({"d/x": b"", "d/f.txt": b"f"})
    src = tmp_path / "src"
    (src / "x").mkdir(parents=True)
    (src / "f.txt").write_bytes(b"f")
    os.utime(src / "f.txt", (LISTED - 10, LISTED - 10))
    with mirror(tmp_path):
        pos3lite.upload("s3://bkt/d", local=src, delete=True)
    assert fake.objects == {"d/x": b"", "d/f.txt": b"f"}
    out = tmp_path / "out"
    (out / "x").mkdir(parents=True)
    with mirror(tmp_path):
        pos3lite.download("s3://bkt/d", local=out, delete=True)
    assert (out / "x").is_dir() and (out / "f.txt").read_bytes() == b"f"


def test_folder_markers_can_be_switched_off(fake: FakeS3, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "empty").mkdir(parents=True)
    (src / "f.txt").write_bytes(b"f")
    plain = Profile("plain", "http://s3.test")
    bare = Profile("bare", "http://s3.test", folder_markers=False)
    with mirror(tmp_path):
        pos3lite.upload("s3://bkt/a", local=src, profile=bare)
    assert fake.objects == {"a/f.txt": b"f"}
    with mirror(tmp_path):
        pos3lite.upload("s3://bkt/b", local=src, profile=plain)
    assert fake.objects["b/empty/"] == b""


@pytest.mark.parametrize("call", ["plan_download", "plan_upload", "plan_sync"])
def test_a_plan_of_a_local_path_is_refused_naming_the_path(call: str, tmp_path: Path) -> None:
    """Plans compare a folder with S3: a local ``remote`` is a ConfigError naming the call
    and the value, raised before any client is made."""
    local = str(tmp_path / "not-a-url")
    with pos3lite.mirror(cache_root=tmp_path / "cache", show_progress=False):
        fn = getattr(_mirror._require_active(), call)
        with pytest.raises(ConfigError) as info:
            fn(local, None, None, None)
    assert f"{call} requires an s3:// URL" in str(info.value)
    assert repr(local) in str(info.value)
