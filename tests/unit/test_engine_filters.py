"""Exclude-glob semantics (pos3lite.engine.filters), including pos3's bugs fixed (C.4)."""

from __future__ import annotations

import re

import pytest

from pos3lite.engine import Filter
from pos3lite.errors import ConfigError

TREE = ["x.log", "a/", "a/y.log", "a/b/", "a/b/z.log", "keep.txt", "x/a/y.log", "logs/"]

# id, patterns, keys expected excluded, keys expected kept
TABLE: list[tuple[str, list[str], list[str], list[str]]] = [
    (
        "star-any-depth",
        ["*.log"],
        ["x.log", "a/y.log", "a/b/z.log", "x/a/y.log"],
        ["keep.txt", "a/", "a/b/", "log", "x.logs"],
    ),
    (
        "starstar-includes-top-level",  # pos3 missed the top-level x.log
        ["**/*.log"],
        ["x.log", "a/y.log", "a/b/z.log"],
        ["keep.txt", "a/", "a/b/"],
    ),
    (
        "right-anchored-two-segments",
        ["a/*.log"],
        ["a/y.log", "x/a/y.log"],
        ["x.log", "a/b/z.log", "a/", "ba/y.log"],
    ),
    (
        "rooted",  # pos3 matched nothing for it
        ["/x.log"],
        ["x.log"],
        ["a/x.log", "x.logs", "a/y.log"],
    ),
    (
        "rooted-directory",
        ["/a"],
        ["a", "a/", "a/y.log", "a/b/z.log"],
        ["x/a/y.log", "x/a", "ab"],
    ),
    (
        "bare-name-and-descendants",  # pos3 leaked logs/a.log
        ["logs"],
        ["logs", "logs/", "logs/a.log", "logs/deep/b.log", "x/logs", "x/logs/c"],
        ["logsx", "xlogs", "a/logsy/z"],
    ),
    (
        "bare-name-a",  # pos3 excluded a/y.log but leaked a/b/z.log
        ["a"],
        ["a/", "a/y.log", "a/b/", "a/b/z.log", "x/a/y.log", "x/a"],
        ["x.log", "keep.txt", "ab", "ba/c"],
    ),
    (
        "dir-key-trailing-slash-stripped",
        ["b"],
        ["a/b/", "a/b", "a/b/z.log"],
        ["a/", "a/bb/"],
    ),
    (
        "directory-only",
        ["cache/"],
        ["cache/", "cache/z", "x/cache/", "x/cache/y/z"],
        ["cache", "x/cache", "cachex/"],
    ),
    ("question-mark", ["?.txt"], ["a.txt", "d/b.txt"], ["ab.txt", ".txt", "a/txt"]),
    ("question-mark-not-slash", ["a?b"], ["axb"], ["a/b", "ab"]),
    ("set", ["[ab].txt"], ["a.txt", "b.txt", "d/a.txt"], ["c.txt", "ab.txt"]),
    ("negated-set", ["[!ab].txt"], ["c.txt", "d/z.txt"], ["a.txt", "b.txt"]),
    ("range", ["file[0-9]"], ["file0", "d/file7"], ["filex", "file10"]),
    ("star-not-slash", ["a*z"], ["az", "abcz", "q/az"], ["a/z", "a/b/z"]),
    ("starstar-middle", ["a/**/z"], ["a/z", "a/b/z", "a/b/c/z", "q/a/b/z"], ["a/zz", "az"]),
    ("starstar-trailing", ["a/**"], ["a/x", "a/b/", "a/b/c"], ["a", "a/", "ab/c"]),
    ("starstar-in-segment-is-star", ["a**b"], ["ab", "axxb"], ["a/b", "a/x/b"]),
    ("literal-specials", ["a+(b).txt"], ["a+(b).txt"], ["aab.txt", "a+b.txt"]),
    ("unicode", ["é*"], ["é", "d/éa", "é/x"], ["e", "xé"]),
    ("empty-pattern-ignored", ["", ""], [], ["a", "a/", "x.log"]),
    ("no-patterns", [], [], ["a", "a/", "x.log"]),
    ("several", ["*.log", "/keep.txt"], ["x.log", "keep.txt", "a/b/z.log"], ["a/", "d/keep.txt"]),
]


@pytest.mark.parametrize(
    ("patterns", "excluded", "kept"), [row[1:] for row in TABLE], ids=[row[0] for row in TABLE]
)
def test_exclude_table(patterns: list[str], excluded: list[str], kept: list[str]) -> None:
    filt = Filter(patterns)
    for key in excluded:
        assert filt.excluded(key), key
    for key in kept:
        assert not filt.excluded(key), key


@pytest.mark.parametrize(
    ("patterns", "want"),
    [
        (["*.log"], ["a/", "a/b/", "keep.txt", "logs/"]),
        (["**/*.log"], ["a/", "a/b/", "keep.txt", "logs/"]),
        (["a/*.log"], ["x.log", "a/", "a/b/", "a/b/z.log", "keep.txt", "logs/"]),
        (["/x.log"], [k for k in TREE if k != "x.log"]),
        (["a"], ["x.log", "keep.txt", "logs/"]),
    ],
    ids=["star", "starstar", "a-star", "rooted", "bare-a"],
)
def test_reference_tree(patterns: list[str], want: list[str]) -> None:
    """The pos3 reference table (A.12), with its bugs fixed."""
    filt = Filter(patterns)
    assert [k for k in TREE if not filt.excluded(k)] == want


@pytest.mark.parametrize(
    "pattern",
    ["[ab", "a/[!x", "a//b", "/", "//x", "[z-a]", "x/[a/b]"],
    ids=[
        "unclosed",
        "unclosed-negated",
        "empty-segment",
        "slash-only",
        "double-root",
        "bad-range",
        "slash-in-set",
    ],
)
def test_invalid_pattern(pattern: str) -> None:
    with pytest.raises(ValueError, match="invalid exclude pattern") as info:
        Filter(["*.ok", pattern])
    assert isinstance(info.value, ConfigError)
    assert repr(pattern) in str(info.value)


def test_str_is_refused() -> None:
    with pytest.raises(TypeError, match=re.escape("'*.log'")):
        Filter("*.log")


def test_order_and_repeats_do_not_matter() -> None:
    assert Filter(["b", "a", "", "b"]) == Filter(["a", "b"])
    assert Filter(["b", "a"]).patterns == ("a", "b")
    assert not Filter([""])
    assert Filter(["a"])
