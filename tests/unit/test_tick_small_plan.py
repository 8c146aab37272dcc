"""A tick's changed keys planned from their own records (``Mirror._plan_changed_keys``,
``pos3lite/mirror/ticks.py``): the state reads by key, the screen of folded names, and the
small plan decided exactly as the plan from every record over many generated trees (case
and Unicode-normalisation twins, files turned folders, emptied folders, excludes)."""

from __future__ import annotations

import random
import sqlite3
import unicodedata
from pathlib import Path
from typing import Any

import pytest

import pos3lite
from pos3lite.engine.model import Synced
from pos3lite.errors import Pos3liteError
from pos3lite.localfs import Walk
from pos3lite.mirror import context as ctx
from pos3lite.mirror.state import SyncState
from pos3lite.mirror.ticks import FoldScreen
from pos3lite.urls import parse_s3_url


def rec(size: int = 1, ino: int = 7) -> Synced:
    return Synced((size, 1_000, ino, 2_000), "e" * 32, size, 1.0)


def test_records_of_reads_the_keys_asked_and_the_first_record_under_each_folder(
    tmp_path: Path,
) -> None:
    st = SyncState(tmp_path)
    assert st.records_of("r", ["a"], under=["a/"]) == ({}, {})  # no database: nothing made
    assert not st.path.exists()
    st.update("r", [(k, rec()) for k in ("a", "a/x", "a/y", "a0", "b", "é")])
    st.update("other", [("a", rec(5))])
    got = st.records_of("r", ["a", "é", "missing", "b/"], under=["a/", "b/", "a0/"], batch=2)
    assert got is not None
    found, first = got
    assert set(found) == {"a", "é"} and found["a"] == rec()
    assert first == {"a/": ("a/x", rec())}  # "a0" is not under "a/"; nothing under b/ or a0/


def test_iter_keys_gives_every_key_and_raises_when_the_state_cannot_be_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    st = SyncState(tmp_path)
    assert list(st.iter_keys("r")) == []
    keys = [f"k{i:03d}" for i in range(25)]
    st.update("r", [(k, rec()) for k in keys])
    assert list(st.iter_keys("r", page=4)) == [k.encode() for k in keys]

    def broken(self: SyncState, fn: Any) -> Any:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(SyncState, "_guard", broken)
    with pytest.raises(sqlite3.OperationalError):
        list(st.iter_keys("r"))
    assert st.records_of("r", ["k000"]) is None  # logged; the caller plans from every record


def test_the_fold_screen_counts_keys_folding_alike() -> None:
    nfd = unicodedata.normalize("NFD", "café.txt")
    s = FoldScreen([b"", b"Data.txt", b"sub/x", "café.txt".encode()])
    assert s.size == 3 and not s.suspect  # the empty key (one object) is left out
    assert s.count("data.txt") == 1 and s.count("DATA.TXT/") == 1
    assert s.count(nfd) == 1 and s.count("CAFÉ.txt") == 1
    assert s.count("sub/y") == 0
    s.add("sub/y")
    assert s.count("sub/y") == 1 and not s.suspect
    s.add("SUB/Y")
    assert s.suspect and s.count("sub/y") == 2
    assert FoldScreen([b"x", b"x/"]).suspect  # one name twice: a maybe, never a miss
    assert FoldScreen([b"A", b"a"]).suspect


FOLDERS = ["a", "b", "é"]
FILES = ["c", "d", "x.txt"]
TWINS = ["A", unicodedata.normalize("NFD", "é"), "X.txt"]


def random_key(rng: random.Random, twins: float = 0.3) -> str:
    """A file key; with probability ``twins`` a segment may be a case or normalisation
    variant, and now and then a file name stands as a folder (``x.txt/c``)."""
    folders = FOLDERS + (FILES if rng.random() < 0.1 else [])
    pick = [*folders, *TWINS] if rng.random() < twins else folders
    parts = [rng.choice(pick) for _ in range(rng.randint(0, 2))]
    return "/".join([*parts, rng.choice([*FILES, *TWINS] if rng.random() < twins else FILES)])


def scenario(rng: random.Random) -> tuple[dict[str, Synced], list[Any], list[str], set[str]]:
    """Records (twins among them now and then), changed files (with stamps: recorded ones
    rewritten or not, new ones, which may fold like a record or like each other), new empty
    folders and known folders."""
    odd = 0.1 if rng.random() < 0.8 else 0.5
    records = {
        random_key(rng, odd): rec(rng.choice((0, 1, 3)), rng.randint(1, 9)) for _ in range(12)
    }
    changed: dict[str, Any] = {}
    for k in rng.sample(sorted(records), 3):
        changed[k] = (records[k].size, 1_000, records[k].local[2] + rng.choice((0, 1)), 2_000)
    for _ in range(rng.randint(0, 3)):
        changed[random_key(rng)] = (3, 5_000, 11, 6_000)
    dirs = sorted({random_key(rng).rpartition("/")[0] + "/" for _ in range(rng.randint(0, 2))})
    known = {random_key(rng).rpartition("/")[0] + "/" for _ in range(rng.randint(0, 2))}
    dirs = [d for d in dirs if d != "/"] + (["c/"] if rng.random() < 0.1 else [])
    known.discard("/")
    return records, sorted(changed.items()), dirs, known


def outcome(plan_fn: Any) -> Any:
    twins: list[Pos3liteError] = []
    try:
        got = plan_fn(twins)
    except ValueError as exc:  # a listing that repeats a key: both planners must say so
        return ("ValueError", str(exc))
    if got is None:
        return None
    plan = got[0] if isinstance(got, tuple) else got
    copies = [(a.key, a.reason, a.src, a.dst) for a in plan.copies]
    return copies, plan.conflicts, sorted(str(e) for e in twins)


def test_the_small_plan_decides_as_the_plan_from_every_record(tmp_path: Path) -> None:
    rng = random.Random(12)
    small = twins_small = 0
    runs = 1000
    with pos3lite.mirror(cache_root=tmp_path / "cache", show_progress=False):
        m = ctx._require_active()
        assert m.use_state
        for i in range(runs):
            records, changed, dirs, known = scenario(rng)
            reg = ctx._Upload(
                "s3://bkt/p",
                parse_s3_url("s3://bkt/p"),
                tmp_path / "run",
                None,
                False,
                False,
                rng.choice(((), ("*.txt",), ("a/*",))),
                None,
            )
            reg.dirs = frozenset(known)
            name = f"reg{i}"
            m.state_store.update(name, list(records.items()))
            report = Walk()
            if rng.random() < 0.2:
                report.skipped.append(rng.choice(changed)[0])
            fast = outcome(
                lambda t: m._plan_changed_keys(reg, name, changed, dirs, report, t)  # noqa: B023
            )
            whole = outcome(
                lambda t: m._plan_changed(reg, m._base(name), changed, dirs, report, t)  # noqa: B023
            )
            if fast is not None:
                small += 1
                twins_small += bool(fast[0] != "ValueError" and fast[2])
                assert fast == whole, (records, changed, dirs, known, reg.exclude)
    # The small plan carried most ticks, twins among the changed keys included.
    assert small > runs // 4 and twins_small > 10, (small, twins_small)


def test_a_file_over_recorded_keys_is_planned_from_every_record(tmp_path: Path) -> None:
    """A folder turned into a file ``a`` while ``a/b`` (excluded) and ``a/c`` are recorded:
    the first record under ``a/`` does not tell whether a conflict is named, so the small
    plan stands aside and the whole plan names it."""
    with pos3lite.mirror(cache_root=tmp_path / "cache", show_progress=False):
        m = ctx._require_active()
        reg = ctx._Upload(
            "s3://bkt/p", parse_s3_url("s3://bkt/p"), tmp_path, None, False, False, ("a/b",), None
        )
        m.state_store.update("r", [("a/b", rec()), ("a/c", rec()), ("z", rec())])
        changed = [("a", (3, 5_000, 11, 6_000))]
        args = (reg, "r", changed, [], Walk())
        assert outcome(lambda t: m._plan_changed_keys(*args, t)) is None
        whole = outcome(lambda t: m._plan_changed(reg, m._base("r"), changed, [], Walk(), t))
        assert whole == ([], ("a",), [])  # "a" is both a file and a folder: not uploaded
