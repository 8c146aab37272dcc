"""Tests for pos3lite.urls: the s3:// grammar, normalisation and key safety."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pos3lite.urls as urls_module
from pos3lite import profiles
from pos3lite.errors import ConfigError, InvalidURLError, UnsafeKeyError
from pos3lite.urls import S3URL, check_relative_key, is_s3_url, parse_s3_url


@pytest.fixture(autouse=True)
def _clean_profiles() -> object:
    profiles._reset_for_tests()
    yield
    profiles._reset_for_tests()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("s3://bkt/x", True),
        ("S3://bkt/x", True),  # RFC 3986: schemes are case-insensitive (pos3: local path)
        ("s3://", True),
        ("s3:/bkt/x", False),
        ("s3:bkt", False),
        ("/local/path", False),
        ("s3", False),
        ("", False),
        ("gs://bkt/x", False),
        ("https://bkt/x", False),
    ],
)
def test_is_s3_url(value: str, expected: bool) -> None:
    assert is_s3_url(value) is expected


def test_is_s3_url_path_object() -> None:
    assert is_s3_url(Path("s3:/bkt")) is False  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "bucket", "key", "profile"),
    [
        ("s3://bkt", "bkt", "", None),
        ("s3://bkt/", "bkt", "", None),
        ("s3://bkt/data", "bkt", "data", None),
        ("s3://bkt/data/", "bkt", "data/", None),  # trailing slash kept: "list as prefix"
        ("s3://bkt/a/b/c.txt", "bkt", "a/b/c.txt", None),
        ("s3://bkt//x", "bkt", "x", None),  # leading slashes dropped, as pos3
        ("s3://bkt/a//b", "bkt", "a//b", None),  # empty segments allowed in URLs
        ("s3://bkt/file#1.txt", "bkt", "file#1.txt", None),  # pos3 truncated at '#'
        ("s3://bkt/q?x=1&y=2", "bkt", "q?x=1&y=2", None),  # pos3 truncated at '?'
        ("s3://bkt/a%20b", "bkt", "a%20b", None),  # not percent-decoded
        ("s3://bkt/sp ace/ü", "bkt", "sp ace/ü", None),
        ("s3://bkt/...", "bkt", "...", None),  # "..." is a normal name
        ("s3://bkt/a..b/.hidden", "bkt", "a..b/.hidden", None),
        ("S3://bkt/x", "bkt", "x", None),
        ("s3://acme@bkt/data", "bkt", "data", "acme"),
        ("s3://a@b@bkt/k", "bkt", "k", "a@b"),  # split at the LAST '@'
        ("s3://my-prof_1@bkt", "bkt", "", "my-prof_1"),
        ("s3://My.Bucket_1/k", "My.Bucket_1", "k", None),  # legacy upper case and '_'
        ("s3://" + "b" * 63 + "/k", "b" * 63, "k", None),
        ("s3://1.2.3.4/k", "1.2.3.4", "k", None),
    ],
)
def test_parse_valid(value: str, bucket: str, key: str, profile: str | None) -> None:
    url = parse_s3_url(value)
    assert (url.bucket, url.key, url.profile) == (bucket, key, profile)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "not an s3:// URL"),
        ("/tmp/x", "not an s3:// URL"),
        ("gs://bkt/x", "not an s3:// URL"),
        ("s3:/bkt/x", "not an s3:// URL"),
        ("s3://", "empty bucket"),
        ("s3:///key", "empty bucket"),
        ("s3://acme@/key", "empty bucket"),
        ("s3://ab/k", "'ab'"),
        ("s3://" + "b" * 64 + "/k", "3 to 63"),
        ("s3://bk t/k", "'bk t'"),
        ("s3://bkt\t/k", "not allowed"),
        ("s3://bkt:9000/k", "':'"),
        ("s3://bkt?x/k", "not allowed"),
        ("s3://.bkt/k", "start or end"),
        ("s3://bkt./k", "start or end"),
        ("s3://-bkt/k", "start or end"),
        ("s3://bkt-/k", "start or end"),
        ("s3://bk..t/k", "'..'"),
        ("s3://@bkt/k", "empty profile selector"),
    ],
)
def test_parse_invalid(value: str, fragment: str) -> None:
    with pytest.raises(InvalidURLError) as info:
        parse_s3_url(value)
    assert fragment in str(info.value)
    # InvalidURLError is a ConfigError and a ValueError, so pos3 callers keep catching it.
    assert isinstance(info.value, ConfigError)
    assert isinstance(info.value, ValueError)


def test_invalid_bucket_message_names_url_and_bucket() -> None:
    with pytest.raises(InvalidURLError) as info:
        parse_s3_url("s3://x_/k")
    assert "'x_'" in str(info.value)
    assert "s3://x_/k" in str(info.value)


@pytest.mark.parametrize(
    "value",
    [
        "s3://bkt/..",
        "s3://bkt/../other",
        "s3://bkt/a/../../b",
        "s3://bkt/a/..",
        "s3://bkt/./a",
        "s3://bkt/a/./b",
        "s3://bkt/a/.",
        "s3://bkt/../",
        "s3://bkt/a\\b",
        "s3://bkt/a\x00b",
        "s3://acme@bkt/..",
    ],
)
def test_parse_refuses_keys_escaping_the_cache(value: str) -> None:
    # pos3 bug C.3: s3://bkt/.. mapped to <cache>/_ and deleted other buckets' caches.
    with pytest.raises(InvalidURLError) as info:
        parse_s3_url(value)
    assert "unsafe key" in str(info.value)
    assert "bkt" in str(info.value)


@pytest.mark.parametrize(
    "value",
    [
        "s3://acme:hunter2-secret@bkt/k",
        "s3://acme:hunter2-secret@bkt",
        "s3://:hunter2-secret@bkt/k",
        "s3://acme:hunter2-secret@x@bkt/k",
    ],
)
def test_password_refused_and_not_echoed(value: str) -> None:
    with pytest.raises(InvalidURLError) as info:
        parse_s3_url(value)
    assert "passwords are not accepted" in str(info.value)
    assert "hunter2-secret" not in str(info.value)
    assert "hunter2-secret" not in repr(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__ or info.value.__context__ is None


def test_direct_construction_validates() -> None:
    with pytest.raises(InvalidURLError):
        S3URL("bkt", "a/../b")
    with pytest.raises(InvalidURLError):
        S3URL("b", "k")
    with pytest.raises(InvalidURLError) as info:
        S3URL("bkt", "k", profile="p:topsecret")
    assert "topsecret" not in str(info.value)
    with pytest.raises(InvalidURLError):
        S3URL("bkt", "k", profile="")


@pytest.mark.parametrize(
    ("value", "prefix", "normalized", "child"),
    [
        ("s3://bkt", "", "s3://bkt", "s3://bkt/f.txt"),
        ("s3://bkt/", "", "s3://bkt", "s3://bkt/f.txt"),
        ("s3://bkt/data", "data", "s3://bkt/data", "s3://bkt/data/f.txt"),
        ("s3://bkt/data/", "data", "s3://bkt/data", "s3://bkt/data/f.txt"),
        ("s3://bkt/a/b//", "a/b", "s3://bkt/a/b", "s3://bkt/a/b/f.txt"),
        ("s3://acme@bkt/data/", "data", "s3://bkt/data", "s3://bkt/data/f.txt"),  # no profile
        ("S3://bkt/x#1", "x#1", "s3://bkt/x#1", "s3://bkt/x#1/f.txt"),
    ],
)
def test_prefix_normalized_child(value: str, prefix: str, normalized: str, child: str) -> None:
    url = parse_s3_url(value)
    assert url.prefix == prefix
    assert url.normalized() == normalized
    assert url.child("f.txt") == child


def test_normalized_round_trips() -> None:
    url = parse_s3_url("s3://acme@bkt/a/b/")
    again = parse_s3_url(url.normalized())
    assert (again.bucket, again.prefix, again.profile) == ("bkt", "a/b", None)


def test_value_is_frozen_hashable_and_slotted() -> None:
    url = parse_s3_url("s3://p@bkt/k/")
    assert url == S3URL("bkt", "k/", "p")
    assert hash(url) == hash(S3URL("bkt", "k/", "p"))
    assert url != S3URL("bkt", "k", "p")  # the trailing slash is part of the value
    with pytest.raises(AttributeError):
        url.key = "other"  # type: ignore[misc]
    assert not hasattr(url, "__dict__")


@pytest.mark.parametrize(
    "key",
    ["a", "a/b/c.txt", "...", ".hidden", "a..b", "a/.b/c", "sp ace", "ü/é", "x?y#z"],
)
def test_check_relative_key_accepts(key: str) -> None:
    check_relative_key(key)


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", "empty key"),
        ("/abs", "starts with '/'"),
        ("/", "starts with '/'"),
        ("a\\b", "backslash"),
        ("..\\x", "backslash"),
        ("a\x00b", "NUL"),
        ("..", "'..' segment"),
        ("../x", "'..' segment"),
        ("a/../../x", "'..' segment"),
        ("a/..", "'..' segment"),
        (".", "'.' segment"),
        ("./a", "'.' segment"),
        ("a/./b", "'.' segment"),
        ("a//b", "empty segment"),  # pos3 bug C.5: the round trip oscillates
        ("a/", "empty segment"),
    ],
)
def test_check_relative_key_refuses(key: str, reason: str) -> None:
    with pytest.raises(UnsafeKeyError) as info:
        check_relative_key(key)
    assert info.value.key == key
    assert reason in info.value.reason
    assert isinstance(info.value, ValueError)


def test_urls_module_is_pure() -> None:
    # DESIGN.md layering: pure modules use only the standard library and none of these.
    forbidden = {"os", "socket", "threading", "time", "urllib3", "tqdm"}
    tree = ast.parse(Path(urls_module.__file__).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & forbidden
