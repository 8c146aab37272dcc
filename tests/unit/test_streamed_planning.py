"""Streamed planning (issue 12): the engine's base stream and key-only plans, the compact
sequences behind TransferPlan, the collision sieve, the sorted state stream, and the
mirror's stream helpers (look-ahead, marker folding, growing filter)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pos3lite.engine import Entry, Filter, SizeMtime, plan, sort_key
from pos3lite.engine.compact import KeyList, PairList, StrList
from pos3lite.engine.model import Synced
from pos3lite.engine.threeway import Direction
from pos3lite.keys import CollisionSieve, collisions
from pos3lite.mirror.state import SyncState, registration_name
from pos3lite.mirror.streams import GrowingFilter, LocalStream, markers_as_folders

T = 1_700_000_000.0
EXACT = SizeMtime(exact=True)


def _stamp(i: int) -> tuple[int, int, int, int]:
    return (10, i, i, i)


# --- engine: base as a sorted stream, keys_only plans --------------------------------------

SEGMENTS = ["a", "b", "a.txt", "a-b", "a0", "é", "B"]


def _random_case(rng: random.Random) -> tuple[list[Entry], list[Entry], dict[str, Synced]]:
    pool = sorted(
        {"/".join(rng.choice(SEGMENTS) for _ in range(rng.randint(1, 3))) for _ in range(12)},
        key=sort_key,
    )
    src = [
        Entry(k, rng.choice([10, 11]), T, rng.choice(["e1", "e2"]))
        for k in pool
        if rng.random() < 0.6
    ]
    dst = [
        Entry(k, 10, T, None, stamp=_stamp(rng.choice([1, 2]))) for k in pool if rng.random() < 0.6
    ]
    known = [*pool, "zz-gone", "0-gone"]
    base = {k: Synced(_stamp(1), "e1", 10, T) for k in known if rng.random() < 0.5}
    return src, dst, base


@pytest.mark.parametrize("seed", range(60))
@pytest.mark.parametrize("two_way", [False, True])
def test_base_records_stream_plans_what_the_mapping_plans(seed: int, two_way: bool) -> None:
    rng = random.Random(seed)
    src, dst, base = _random_case(rng)
    args = dict(compare=EXACT, delete=True, direction=Direction.DOWN, two_way=two_way)
    want = plan(src, dst, base=base, **args)  # type: ignore[arg-type]
    records = sorted(((sort_key(k), r) for k, r in base.items()), key=lambda kr: kr[0])
    got = plan(src, dst, base_records=records, **args)  # type: ignore[arg-type]
    assert got == want


def test_base_records_must_be_sorted() -> None:
    rec = Synced(_stamp(1), "e", 10, T)
    with pytest.raises(ValueError, match="base records are not sorted"):
        plan(
            [Entry("z", 10, T, "e")],
            [],
            compare=EXACT,
            delete=True,
            direction=Direction.DOWN,
            base_records=[(b"b", rec), (b"a", rec)],
        )


def test_deletes_need_base_keeps_what_was_never_in_sync() -> None:
    dst = [Entry("mine", 1, T, stamp=_stamp(2)), Entry("synced", 1, T, stamp=_stamp(1))]
    rec = Synced(_stamp(1), "e", 1, T)
    p = plan(
        [],
        dst,
        compare=EXACT,
        delete=True,
        direction=Direction.DOWN,
        base_records=[(b"synced", rec)],
        deletes_need_base=True,
    )
    assert [a.key for a in p.deletes] == ["synced"]


def test_observe_sees_every_key_once_in_order() -> None:
    seen: list[str] = []
    src = [Entry("a", 1, T), Entry("b/", 0, T), Entry("c", 1, T)]
    dst = [Entry("a", 1, T), Entry("c", 2, T), Entry("d.log", 1, T)]
    plan(src, dst, compare=EXACT, delete=True, exclude=["*.log"], observe=seen.append)
    assert seen == ["a", "b/", "c", "d.log"]


@pytest.mark.parametrize("seed", range(40))
def test_keys_only_plan_lists_the_file_keys_of_the_full_plan(seed: int) -> None:
    rng = random.Random(seed)
    src, dst, _ = _random_case(rng)
    dst += [Entry("a/", 0, T)] if not any(e.key.startswith("a/") for e in dst) else []
    dst.sort(key=lambda e: sort_key(e.key))
    full = plan(src, dst, compare=EXACT, delete=True)
    keys = plan(src, dst, compare=EXACT, delete=True, keys_only=True)
    assert keys.copies == () and keys.deletes == () and keys.adopted == ()
    assert keys.copy_keys == [a.key for a in full.copies if not a.key.endswith("/")]
    assert list(reversed(keys.delete_keys or [])) == [
        a.key for a in full.deletes if not a.key.endswith("/")
    ]
    assert (keys.conflicts, keys.unchanged) == (full.conflicts, full.unchanged)
    assert keys.empty == (not keys.copy_keys and not keys.delete_keys)


def test_keys_only_plan_sorts_keys_closed_out_of_order() -> None:
    # "a" waits for its window ("a.txt" closes first): the key list is put back in order.
    src = [Entry("a", 1, T), Entry("a.txt", 1, T)]
    p = plan(src, [], compare=EXACT, delete=True, keys_only=True)
    assert p.copy_keys == ["a", "a.txt"]


# --- compact sequences ---------------------------------------------------------------------


def test_key_list_round_trips_and_tracks_order() -> None:
    keys = ["a", "b/c", "caf\u00e9", "bad\udcff", ""]
    kl = KeyList(keys)
    assert list(kl) == keys and len(kl) == 5 and kl[2] == "caf\u00e9" and kl[-2] == "bad\udcff"
    assert kl[1:3] == ["b/c", "caf\u00e9"] and list(reversed(kl)) == keys[::-1]
    assert kl == keys and keys == kl and kl != keys[:-1] and kl != "abc"
    assert not kl.in_order  # "" after "bad...": out of order
    assert KeyList(["a", "b", "c"]).in_order and not KeyList(["a", "a"]).in_order
    with pytest.raises(IndexError):
        kl[5]
    assert kl.nbytes() < 60  # bytes of the keys plus 4 per offset


def test_pair_and_str_views_behave_as_lists() -> None:
    kl = KeyList(["x", "y/z"])
    pairs = PairList(kl, lambda k: ("s3://b/" + k, "/l/" + k))
    want = [("s3://b/x", "/l/x"), ("s3://b/y/z", "/l/y/z")]
    assert pairs == want and want == pairs and len(pairs) == 2 and pairs[-1] == want[-1]
    assert [src for src, _ in pairs] == ["s3://b/x", "s3://b/y/z"] and pairs[:1] == want[:1]
    assert pairs != want[:1] and PairList(KeyList(), lambda k: (k, k)) == []
    assert repr(pairs) == f"PairList({want!r})"
    many = StrList(KeyList([str(i) for i in range(10)]), lambda k: "p" + k, reverse=True)
    assert many[0] == "p9" and list(many)[-1] == "p0"
    assert many == [f"p{i}" for i in range(9, -1, -1)]
    assert repr(many) == "StrList(['p9', 'p8', 'p7', ... (10 items)])"


# --- collision sieve -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "suspect"),
    [
        (["a", "b", "c/d"], False),
        (["A.txt", "a.txt"], True),
        (["Dir/x", "dir/x"], True),
        (["caf\u00e9", "cafe\u0301"], True),  # NFC and NFD
        (["x", "x/"], True),  # a key and its folder form: the exact check says no
        (["data/f1", "data/F2", "DATA2"], False),
    ],
)
def test_sieve_flags_every_collision(keys: list[str], suspect: bool) -> None:
    sieve = CollisionSieve()
    for k in keys:
        sieve.add(k)
    assert sieve.suspect() is suspect
    if collisions(keys):
        assert sieve.suspect()


# --- sync state stream ---------------------------------------------------------------------


def test_state_records_stream_in_byte_order_across_batches(tmp_path: Path) -> None:
    st = SyncState(tmp_path)
    reg = registration_name("_", "s3://b/p", tmp_path / "d")
    keys = ["b", "a/x", "a.txt", "a0", "\u00e9", "z", "A", "a/"] + [f"k{i:03d}" for i in range(20)]
    st.update(reg, [(k, Synced(_stamp(i), f"e{i}", i, T)) for i, k in enumerate(keys)])
    st.update(reg, [("", Synced(_stamp(0), "one", 1, T))])
    got = list(st.records(reg, batch=3))
    assert [kb for kb, _ in got] == sorted(sort_key(k) for k in keys)  # the root is left out
    assert dict((kb.decode(), r) for kb, r in got) == {k: r for k, r in st.load(reg).items() if k}
    assert st.get(reg, "a0") == Synced(_stamp(3), "e3", 3, T) and st.get(reg, "nope") is None
    assert st.has_records(reg) and not st.has_records("other")
    assert list(st.records("other")) == []
    assert list(SyncState(tmp_path / "none").records(reg)) == []


# --- mirror stream helpers -----------------------------------------------------------------


def test_markers_fold_into_empty_local_folders_in_order() -> None:
    local = LocalStream(iter([Entry("m.txt", 1, T), Entry("m/", 0, T), Entry("n", 1, T)]))
    remote = [Entry("m", 0, T, "e"), Entry("m.txt", 1, T), Entry("n", 0, T)]
    out = []
    loc = iter(local)
    first = next(loc)  # the merge holds the first local entry
    out = [e.key for e in markers_as_folders(remote, local)]
    assert first.key == "m.txt"
    assert out == ["m.txt", "m/", "n"]  # "m" became "m/", re-emitted at its place
    assert [e.key for e in loc] == ["m/", "n"]  # the look-ahead loses nothing


def test_growing_filter_follows_the_skipped_list() -> None:
    skipped: list[str] = []
    f = GrowingFilter(["*.log"], skipped)
    assert f.excluded("a.log") and not f.excluded("link/x") and isinstance(f, Filter)
    skipped.append("link/")
    assert f.excluded("link/x") and f.excluded("link/") and not f.excluded("linked")
    assert not GrowingFilter([], []) and GrowingFilter([], ["x"])


# --- value objects keep their dataclass behaviour with the faster __init__ -----------------


def test_entry_synced_action_stay_frozen_dataclasses() -> None:
    import dataclasses
    import pickle

    from pos3lite.engine.model import Action, Reason

    e = Entry("k", 1, T, "e", stamp=(1, 2, 3, 4))
    assert (e.key, e.size, e.mtime, e.etag, e.stamp) == ("k", 1, T, "e", (1, 2, 3, 4))
    assert e == Entry("k", 1, T, "e") and hash(e) == hash(Entry("k", 1, T, "e"))  # stamp aside
    assert e != Entry("k", 2, T, "e") and Entry(key="k", size=1, mtime=T).etag is None
    assert dataclasses.replace(e, size=5).size == 5 and pickle.loads(pickle.dumps(e)) == e
    s = Synced((1, 2, 3, 4), None, 7, T)
    assert dataclasses.astuple(s) == ((1, 2, 3, 4), None, 7, T)
    a = Action("k", Reason.MISSING, e, None)
    assert (a.key, a.reason, a.src, a.dst) == ("k", Reason.MISSING, e, None)
    for obj, name in ((e, "key"), (s, "size"), (a, "key")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, name, 0)
    assert repr(s) == f"Synced(local=(1, 2, 3, 4), etag=None, size=7, mtime={T!r})"
