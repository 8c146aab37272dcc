"""Truth tables of the comparison strategies (pos3lite.engine.compare)."""

from __future__ import annotations

import re

import pytest

from pos3lite.engine import (
    COMPARE_NAMES,
    Checksum,
    Entry,
    Reason,
    SizeMtime,
    SizeOnly,
    make_compare,
)
from pos3lite.errors import ConfigError

T = 1_700_000_000.0
MD5_A = "d41d8cd98f00b204e9800998ecf8427e"
MD5_B = "900150983cd24fb0d6963f7d28e17f72"


def f(size: int = 10, mtime: float = T, etag: str | None = None) -> Entry:
    return Entry("k", size, mtime, etag)


# (size of dst, mtime of dst) relative to src = f(10, T + 0.5).
# exact=True: src is the object (its second is T), dst the local file: adopt a local file at
# or after T. exact=False: src is the local file (T + 0.5), dst the object: copy unless the
# local file is older than the object's second.
SIZE_MTIME_TABLE = [
    # id, dst size, dst mtime, exact=True, exact=False
    ("size-diff/mtime-equal", 11, T + 0.5, Reason.SIZE, Reason.SIZE),
    ("size-diff/src-older", 11, T + 5, Reason.SIZE, Reason.SIZE),
    ("size-diff/src-newer", 11, T - 5, Reason.SIZE, Reason.SIZE),
    ("size-equal/mtime-equal", 10, T + 0.5, None, Reason.MTIME),
    ("size-equal/same-second", 10, T + 0.9, None, Reason.MTIME),
    ("size-equal/same-second-start", 10, T, None, Reason.MTIME),
    ("size-equal/src-older", 10, T + 5, None, None),
    ("size-equal/src-older-1s", 10, T + 1.0, None, None),
    ("size-equal/src-newer", 10, T - 5, Reason.MTIME, Reason.MTIME),
    ("size-equal/src-newer-1s", 10, T - 0.1, Reason.MTIME, Reason.MTIME),
]


@pytest.mark.parametrize(
    ("dst_size", "dst_mtime", "want_exact", "want_loose"),
    [row[1:] for row in SIZE_MTIME_TABLE],
    ids=[row[0] for row in SIZE_MTIME_TABLE],
)
def test_size_mtime_truth_table(
    dst_size: int, dst_mtime: float, want_exact: Reason | None, want_loose: Reason | None
) -> None:
    src, dst = f(10, T + 0.5), f(dst_size, dst_mtime)
    assert SizeMtime(exact=True).differs(src, dst) is want_exact
    assert SizeMtime(exact=False).differs(src, dst) is want_loose
    assert not SizeMtime(exact=True).falls_back(src, dst)
    assert not SizeMtime(exact=False).falls_back(src, dst)


SIZE_ONLY_TABLE = [
    ("size-diff", 11, T, Reason.SIZE),
    ("size-equal/mtime-equal", 10, T, None),
    ("size-equal/src-older", 10, T + 100, None),
    ("size-equal/src-newer", 10, T - 100, None),
    ("size-equal/etag-differs", 10, T, None),
]


@pytest.mark.parametrize(
    ("dst_size", "dst_mtime", "want"),
    [row[1:] for row in SIZE_ONLY_TABLE],
    ids=[row[0] for row in SIZE_ONLY_TABLE],
)
def test_size_only_truth_table(dst_size: int, dst_mtime: float, want: Reason | None) -> None:
    src, dst = f(10, T, MD5_A), f(dst_size, dst_mtime, MD5_B)
    assert SizeOnly().differs(src, dst) is want
    assert not SizeOnly().falls_back(src, dst)


CHECKSUM_TABLE = [
    # id, src (size, mtime, etag), dst (size, mtime, etag), want, falls back
    ("md5-equal", (10, T, MD5_A), (10, T + 99, MD5_A), None, False),
    ("md5-equal/case-and-quotes", (10, T, MD5_A), (10, T, f'"{MD5_A.upper()}"'), None, False),
    ("md5-differs", (10, T, MD5_A), (10, T, MD5_B), Reason.CHECKSUM, False),
    ("md5-differs/size-differs", (10, T, MD5_A), (11, T, MD5_B), Reason.SIZE, False),
    ("multipart-dst/fallback-equal", (10, T, MD5_A), (10, T, "abc123-3"), None, True),
    ("multipart-dst/fallback-mtime", (10, T, MD5_A), (10, T - 9, "abc123-3"), Reason.MTIME, True),
    ("multipart-src/fallback-size", (10, T, f"{MD5_A}-2"), (11, T, MD5_A), Reason.SIZE, True),
    ("missing-src-hash/fallback-equal", (10, T, None), (10, T, MD5_A), None, True),
    ("missing-dst-hash/fallback-mtime", (10, T, MD5_A), (10, T - 9, None), Reason.MTIME, True),
    ("non-md5-etag/fallback", (10, T, MD5_A), (10, T, "not-hex"), None, True),
]


@pytest.mark.parametrize(
    ("src", "dst", "want", "fell_back"),
    [row[1:] for row in CHECKSUM_TABLE],
    ids=[row[0] for row in CHECKSUM_TABLE],
)
def test_checksum_truth_table(
    src: tuple[int, float, str | None],
    dst: tuple[int, float, str | None],
    want: Reason | None,
    fell_back: bool,
) -> None:
    strategy = Checksum(SizeMtime(exact=True))
    a, b = f(*src), f(*dst)
    assert strategy.differs(a, b) is want
    assert strategy.falls_back(a, b) is fell_back


@pytest.mark.parametrize(
    ("name", "exact", "want"),
    [
        ("size", True, SizeOnly()),
        ("size_mtime", True, SizeMtime(exact=True)),
        ("size_mtime", False, SizeMtime(exact=False)),
        ("checksum", True, Checksum(SizeMtime(exact=True))),
        ("checksum", False, Checksum(SizeMtime(exact=False))),
    ],
    ids=["size", "size_mtime-exact", "size_mtime-loose", "checksum-exact", "checksum-loose"],
)
def test_make_compare(name: str, exact: bool, want: object) -> None:
    made = make_compare(name, exact_mtime=exact)
    assert made == want
    assert made.name == name
    assert name in COMPARE_NAMES


@pytest.mark.parametrize("bad", ["sizes", "", "MD5", "Size"])
def test_make_compare_unknown_name(bad: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(bad))) as info:
        make_compare(bad, exact_mtime=True)
    assert isinstance(info.value, ConfigError)
    for name in COMPARE_NAMES:
        assert repr(name) in str(info.value)
