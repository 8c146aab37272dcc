"""The merge planner (pos3lite.engine.diff): tables, ordering rules, and a random property test."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from pos3lite.engine import (
    Checksum,
    Compare,
    Entry,
    Filter,
    Plan,
    Reason,
    SizeMtime,
    SizeOnly,
    plan,
    sort_key,
)

T = 1_700_000_000.0
MD5_A = "d41d8cd98f00b204e9800998ecf8427e"
MD5_B = "900150983cd24fb0d6963f7d28e17f72"
EXACT = SizeMtime(exact=True)


def F(key: str, size: int = 1, mtime: float = T, etag: str | None = None) -> Entry:
    return Entry(key, size, mtime, etag)


def D(key: str) -> Entry:
    assert key.endswith("/")
    return Entry(key, 0, T)


@dataclass
class Want:
    copies: list[tuple[str, Reason]] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    unchanged: int = 0
    fallbacks: list[str] = field(default_factory=list)


def summary(p: Plan) -> Want:
    return Want(
        copies=[(a.key, a.reason) for a in p.copies],
        deletes=[a.key for a in p.deletes],
        conflicts=list(p.conflicts),
        unchanged=p.unchanged,
        fallbacks=list(p.fallbacks),
    )


@dataclass
class Case:
    id: str
    src: list[Entry]
    dst: list[Entry]
    want: Want
    delete: bool = True
    exclude: Sequence[str] = ()
    compare: Compare = EXACT


M, S, MT, C, X = Reason.MISSING, Reason.SIZE, Reason.MTIME, Reason.CHECKSUM, Reason.EXTRA

CASES = [
    # --- every reason --------------------------------------------------------------------
    Case("missing", [F("a")], [], Want(copies=[("a", M)])),
    Case("size", [F("a", 2)], [F("a", 1)], Want(copies=[("a", S)])),
    Case("mtime", [F("a", 1, T + 5)], [F("a", 1, T)], Want(copies=[("a", MT)])),
    Case(
        "checksum",
        [F("a", 1, T, MD5_A)],
        [F("a", 1, T, MD5_B)],
        Want(copies=[("a", C)]),
        compare=Checksum(EXACT),
    ),
    Case("extra", [], [F("a")], Want(deletes=["a"])),
    Case("equal", [F("a")], [F("a")], Want(unchanged=1)),
    Case(
        "checksum-fallback-recorded",
        [F("a", 1, T, MD5_A), F("b", 1, T + 9, MD5_A), F("c", 1, T, MD5_A)],
        [F("a", 1, T, "abc-2"), F("b", 1, T, None), F("c", 1, T, MD5_A)],
        Want(copies=[("b", MT)], unchanged=2, fallbacks=["a", "b"]),
        compare=Checksum(EXACT),
    ),
    Case(
        "size-only-ignores-same-size-change",
        [F("a", 1, T + 9)],
        [F("a", 1, T)],
        Want(unchanged=1),
        compare=SizeOnly(),
    ),
    # --- empty sides ---------------------------------------------------------------------
    Case("both-empty", [], [], Want()),
    Case(
        "empty-src-deletes-everything",
        [],
        [D("d/"), F("d/x"), F("y")],
        Want(deletes=["y", "d/x", "d/"]),
    ),
    Case("empty-src-delete-false", [], [D("d/"), F("d/x"), F("y")], Want(), delete=False),
    Case(
        "empty-dst-copies-everything",
        [F("b"), D("d/"), F("d/x")],
        [],
        Want(copies=[("b", M), ("d/x", M)], unchanged=1),
    ),
    # --- delete flag ---------------------------------------------------------------------
    Case(
        "delete-false",
        [F("a", 2), F("c")],
        [F("a"), F("b"), D("e/"), F("e/f")],
        Want(copies=[("a", S), ("c", M)]),
        delete=False,
    ),
    Case(
        "deletes-deepest-first",
        [],
        [F("a.txt"), D("a/"), D("a/b/"), F("a/b/c"), F("a/d"), F("a0")],
        Want(deletes=["a0", "a/d", "a/b/c", "a/b/", "a/", "a.txt"]),
    ),
    # --- exclude -------------------------------------------------------------------------
    Case(
        "excluded-on-both-sides-never-copied-or-deleted",
        [F("keep"), F("src-only.log"), F("x.log", 2)],
        [F("dst-only.log"), F("keep"), F("x.log", 1)],
        Want(unchanged=1),
        exclude=["*.log"],
    ),
    Case(
        "excluded-directory-whole-subtree",  # pos3 leaked logs/a.log and deleted it remotely
        [F("logs/a.log"), F("logs/deep/b.log"), F("z")],
        [F("logs/c.log"), F("z")],
        Want(unchanged=1),
        exclude=["logs"],
    ),
    Case(
        "dst-dir-holding-excluded-key-not-deleted",
        [],
        [D("a/"), F("a/x.log"), F("a/y")],
        Want(deletes=["a/y"], unchanged=1),
        exclude=["*.log"],
    ),
    Case(
        "excluded-dir-key",
        [D("tmp/")],
        [D("cache/")],
        Want(),
        exclude=["tmp", "cache/"],
    ),
    # --- directories ---------------------------------------------------------------------
    Case("dir-marker-copy", [D("d/")], [], Want(copies=[("d/", M)])),
    Case("dir-marker-delete", [], [D("d/")], Want(deletes=["d/"])),
    Case("dir-marker-kept-delete-false", [], [D("d/")], Want(), delete=False),
    Case("dir-on-both-sides", [D("d/")], [D("d/")], Want(unchanged=1)),
    Case("src-dir-satisfied-by-dst-child", [D("d/"), F("d/x")], [F("d/x")], Want(unchanged=2)),
    Case(
        "dirs-satisfied-both-ways-by-grandchild",
        [D("d/"), F("d/e/x")],
        [D("d/e/"), F("d/e/x")],
        Want(unchanged=3),
    ),
    Case(
        "src-dir-satisfied-by-dst-grandchild-delete-false",
        [D("d/")],
        [D("d/e/"), F("d/e/x")],
        Want(unchanged=1),
        delete=False,
    ),
    Case(
        "src-dir-satisfied-by-src-child-no-marker",  # no marker object per folder (C.13)
        [D("d/"), F("d/x")],
        [],
        Want(copies=[("d/x", M)], unchanged=1),
    ),
    Case(
        "src-dir-not-satisfied-by-child-being-deleted",
        [D("d/")],
        [F("d/x")],
        Want(copies=[("d/", M)], deletes=["d/x"]),
    ),
    Case(
        "src-dir-satisfied-by-dst-child-delete-false",
        [D("d/")],
        [F("d/x")],
        Want(unchanged=1),
        delete=False,
    ),
    Case(
        "dst-dir-kept-for-src-children",
        [F("d/x"), F("d/y/z")],
        [D("d/"), D("d/y/")],
        Want(copies=[("d/x", M), ("d/y/z", M)], unchanged=2),
    ),
    Case(
        "empty-dir-among-siblings",
        [D("a/"), D("a/b/"), F("a/c")],
        [D("a/"), F("a/c")],
        Want(copies=[("a/b/", M)], unchanged=2),
    ),
    Case(
        "root-ignored",
        [Entry("", 0, T), F("a")],
        [Entry("", 0, T)],
        Want(copies=[("a", M)]),
    ),
    # --- file / directory conflicts ------------------------------------------------------
    Case(
        "src-file-vs-dst-subtree",
        [F("a")],
        [D("a/"), F("a/b")],
        Want(conflicts=["a"]),
    ),
    Case(
        "src-file-vs-dst-subtree-with-key-in-between",
        [F("a"), F("a.txt")],
        [F("a.txt"), F("a/b")],
        Want(conflicts=["a"], unchanged=1),
    ),
    Case(
        "dst-file-vs-src-subtree",
        [D("a/"), F("a/b")],
        [F("a")],
        Want(copies=[("a/b", M)], conflicts=["a"], unchanged=1),
    ),
    Case(
        "src-file-and-src-subtree",  # S3 allows object "a" and "a/b" together
        [F("a"), F("a/b")],
        [],
        Want(copies=[("a/b", M)], conflicts=["a"]),
    ),
    Case(
        "file-on-both-sides-and-dst-subtree",
        [F("a")],
        [F("a"), F("a/b"), F("a/c/d")],
        Want(conflicts=["a"]),
    ),
    Case(
        "dst-file-and-dst-subtree-no-conflict",  # src has neither: plain deletes
        [F("b")],
        [F("a"), F("a/b"), F("b")],
        Want(deletes=["a/b", "a"], unchanged=1),
    ),
    Case(
        "conflict-does-not-spread",
        [F("a"), F("a-b"), F("b")],
        [F("a-b", 2), F("a/x"), F("c")],
        Want(copies=[("a-b", S), ("b", M)], deletes=["c"], conflicts=["a"]),
    ),
    Case(
        "nested-conflicts",
        [F("a"), F("a/b"), F("a/b/c")],
        [],
        Want(copies=[("a/b/c", M)], conflicts=["a", "a/b"]),
    ),
    Case(
        "conflict-hidden-by-exclude",
        [F("a")],
        [F("a/x.log")],
        Want(copies=[("a", M)]),
        exclude=["*.log"],
    ),
    # --- ordering ------------------------------------------------------------------------
    Case(
        "utf8-order",
        [F("a.txt"), D("a/"), F("a/b"), F("a0"), F("z"), F("é")],
        [],
        Want(copies=[("a.txt", M), ("a/b", M), ("a0", M), ("z", M), ("é", M)], unchanged=1),
    ),
    Case(
        "utf8-order-merge",
        [F("z"), F("é", 2), F("😀")],
        [F("a"), F("é"), F("\uffff")],
        Want(copies=[("z", M), ("é", S), ("😀", M)], deletes=["\uffff", "a"]),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_plan_table(case: Case) -> None:
    got = plan(
        iter(case.src),
        iter(case.dst),
        compare=case.compare,
        delete=case.delete,
        exclude=case.exclude,
    )
    assert summary(got) == case.want


def test_actions_carry_entries() -> None:
    s, d = F("a", 2), F("a", 1)
    p = plan([s, F("b")], [d, F("c")], compare=EXACT, delete=True)
    assert [(a.src, a.dst) for a in p.copies] == [(s, d), (F("b"), None)]
    assert [(a.src, a.dst, a.reason) for a in p.deletes] == [(None, F("c"), Reason.EXTRA)]
    assert not p.empty
    assert plan([], [], compare=EXACT, delete=True).empty


def test_sort_key_is_utf8_bytes() -> None:
    keys = ["a0", "é", "a/b", "a/", "z", "a.txt", "a"]
    assert sorted(keys, key=sort_key) == ["a", "a.txt", "a/", "a/b", "a0", "z", "é"]
    assert sort_key("é") == b"\xc3\xa9"


def test_filter_object_accepted() -> None:
    p = plan([F("a.log"), F("b")], [], compare=EXACT, delete=True, exclude=Filter(["*.log"]))
    assert [a.key for a in p.copies] == ["b"]


@pytest.mark.parametrize(
    ("side", "src", "dst", "first", "second"),
    [
        ("src", ["b", "a"], [], "b", "a"),
        ("dst", [], ["a", "c", "b"], "c", "b"),
        ("src", ["a/", "a.txt"], [], "a/", "a.txt"),  # "/" sorts after "."
        ("dst", ["x"], ["é", "z"], "é", "z"),  # UTF-8 bytes, not a locale
        ("src", ["a/b", "a/"], ["a"], "a/b", "a/"),
    ],
    ids=["src-swap", "dst-late", "slash-vs-dot", "utf8", "dir-after-child"],
)
def test_unsorted_rejected(
    side: str, src: list[str], dst: list[str], first: str, second: str
) -> None:
    with pytest.raises(ValueError, match="not sorted") as info:
        plan([F(k) for k in src], [F(k) for k in dst], compare=EXACT, delete=True)
    message = str(info.value)
    assert message.startswith(f"{side} listing")
    assert f"{first!r} then {second!r}" in message


@pytest.mark.parametrize(
    ("side", "src", "dst"),
    [("src", ["a", "b", "b"], ["a"]), ("dst", ["x"], ["x", "x"])],
    ids=["src", "dst"],
)
def test_duplicate_rejected(side: str, src: list[str], dst: list[str]) -> None:
    dup = src[-1] if side == "src" else dst[-1]
    with pytest.raises(ValueError, match="repeats the key") as info:
        plan([F(k) for k in src], [F(k) for k in dst], compare=EXACT, delete=True)
    assert str(info.value).startswith(f"{side} listing")
    assert f"{dup!r} then {dup!r}" in str(info.value)


def test_unsorted_detected_even_when_excluded() -> None:
    with pytest.raises(ValueError, match=re.escape("'b.log' then 'a.log'")):
        plan([F("b.log"), F("a.log")], [], compare=EXACT, delete=True, exclude=["*.log"])


def test_listings_consumed_lazily_once() -> None:
    pulled: list[str] = []

    def listing(keys: list[str]) -> Iterator[Entry]:
        for k in keys:
            pulled.append(k)
            yield F(k)

    src = listing(["a", "b"])
    p = plan(src, iter([]), compare=EXACT, delete=True)
    assert [a.key for a in p.copies] == ["a", "b"]
    assert pulled == ["a", "b"]


# --- property-style test over random listings ----------------------------------------------

SEGMENTS = ["a", "b", "a.txt", "a-b", "a0", "é", "x.log"]
EXCLUDES: list[list[str]] = [[], ["*.log"], ["b"], ["/a.txt"], ["**/a0"]]


def random_listing(rng: random.Random, pool: list[str]) -> list[Entry]:
    keys = rng.sample(pool, rng.randint(0, len(pool)))
    out = []
    for k in sorted(keys, key=sort_key):
        if k.endswith("/"):
            out.append(D(k))
        else:
            out.append(F(k, rng.choice([1, 2]), T + rng.choice([0, 0, 3])))
    return out


def random_pool(rng: random.Random) -> list[str]:
    pool = set()
    for _ in range(rng.randint(1, 14)):
        parts = [rng.choice(SEGMENTS) for _ in range(rng.randint(1, 3))]
        key = "/".join(parts)
        pool.add(key + "/" if rng.random() < 0.25 else key)
    return sorted(pool)


def apply(dst: list[Entry], p: Plan) -> list[Entry]:
    state = {e.key: e for e in dst}
    for a in p.copies:
        assert a.src is not None
        state[a.key] = a.src
    for a in p.deletes:
        del state[a.key]
    return sorted(state.values(), key=lambda e: sort_key(e.key))


def blocked(key: str, conflicts: Sequence[str]) -> bool:
    return any(key == c or key.startswith(c + "/") for c in conflicts)


class _Strict:
    """Copy unless size and mtime are equal (the property below wants dst == src after)."""

    name = "strict"

    def differs(self, src: Entry, dst: Entry) -> Reason | None:
        return None if (src.size, src.mtime) == (dst.size, dst.mtime) else Reason.MTIME

    def falls_back(self, src: Entry, dst: Entry) -> bool:
        return False


STRICT = _Strict()


@pytest.mark.parametrize("seed", range(300))
def test_random_listings(seed: int) -> None:
    rng = random.Random(seed)
    pool = random_pool(rng)
    src, dst = random_listing(rng, pool), random_listing(rng, pool)
    exclude = rng.choice(EXCLUDES)
    filt = Filter(exclude)
    p = plan(src, dst, compare=STRICT, delete=True, exclude=exclude)

    src_keys = {e.key for e in src if not filt.excluded(e.key)}
    dst_keys = {e.key for e in dst if not filt.excluded(e.key)}
    copies = [a.key for a in p.copies]
    deletes = [a.key for a in p.deletes]

    # Orders: copies ascending, deletes so that a child comes before its ancestor directory.
    assert copies == sorted(copies, key=sort_key)
    for i, k in enumerate(deletes):
        if k.endswith("/"):
            assert not any(later.startswith(k) for later in deletes[i + 1 :]), (k, deletes)

    # Coverage: every non-excluded key exactly once, except dst-only keys under a conflicting
    # file key, which are deliberately left alone.
    dst_excluded = [e.key for e in dst if filt.excluded(e.key)]
    withheld = {
        k
        for k in dst_keys - src_keys
        if k not in p.conflicts
        and any(k.startswith(c + "/") for c in p.conflicts)
        and not (
            k.endswith("/")  # a dst directory that stays for other reasons is "unchanged"
            and any(x.startswith(k) for x in [*src_keys, *dst_excluded])
        )
    }
    buckets = [set(copies), set(deletes), set(p.conflicts), withheld]
    assert sum(len(b) for b in buckets) == len(set().union(*buckets))  # disjoint
    assert len(copies) == len(set(copies)) and len(deletes) == len(set(deletes))
    assert len(copies) + len(deletes) + len(p.conflicts) + len(withheld) + p.unchanged == len(
        src_keys | dst_keys
    )
    assert set(copies) <= src_keys
    assert set(deletes) <= dst_keys - src_keys

    # Applying the plan makes dst's files equal to src's (outside conflicts); excluded dst
    # entries are untouched.
    after = apply(dst, p)
    after_files = {
        e.key: e
        for e in after
        if not e.is_dir and not filt.excluded(e.key) and not blocked(e.key, p.conflicts)
    }
    src_files = {
        e.key: e
        for e in src
        if not e.is_dir and not filt.excluded(e.key) and not blocked(e.key, p.conflicts)
    }
    assert after_files == src_files
    assert [e for e in after if filt.excluded(e.key)] == [e for e in dst if filt.excluded(e.key)]

    # Every src directory exists after the plan (as a key, or implied by a key under it).
    after_keys = {e.key for e in after}
    for k in src_keys:
        if k.endswith("/") and not blocked(k, p.conflicts):
            assert k in after_keys or any(a.startswith(k) for a in after_keys), k

    # Idempotent: planning again finds nothing to do, and the same conflicts.
    again = plan(src, after, compare=STRICT, delete=True, exclude=exclude)
    assert (again.copies, again.deletes, again.conflicts) == ((), (), p.conflicts)

    # delete=False plans the same file copies and no deletes.
    keep = plan(src, dst, compare=STRICT, delete=False, exclude=exclude)
    assert keep.deletes == ()
    assert [a for a in keep.copies if not a.key.endswith("/")] == [
        a for a in p.copies if not a.key.endswith("/")
    ]


def test_on_copy_streams_every_copy_and_keeps_the_rest() -> None:
    src = [F("a.txt", 2), D("b/"), F("b/c", 3), F("d", 1), D("e/"), F("k", 1), F("k/x", 1)]
    dst = [F("a.txt", 1), F("d", 1), F("gone", 1), D("old/"), F("old/x", 1)]
    whole = plan(src, dst, compare=EXACT, delete=True)
    seen: list[Any] = []
    streamed = plan(src, dst, compare=EXACT, delete=True, on_copy=seen.append)
    assert streamed.copies == ()
    assert sorted(seen, key=lambda a: sort_key(a.key)) == list(whole.copies)
    assert {a.key for a in seen} == {"a.txt", "b/c", "e/", "k/x"}
    assert streamed.deletes == whole.deletes and streamed.deletes
    assert streamed.conflicts == whole.conflicts == ("k",)
    with pytest.raises(ValueError, match="on_copy or keys_only"):
        plan(src, dst, compare=SizeOnly(), delete=True, on_copy=seen.append, keys_only=True)
