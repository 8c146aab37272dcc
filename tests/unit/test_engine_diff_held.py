"""The planner's held file keys (``engine.diff.plan`` with a base): a file key is held as a
tuple and decided when the next key closes its window, or put on the stack when the next
key falls inside it. Plans must equal the plans made with every key on the stack."""

from __future__ import annotations

import random

import pytest

from pos3lite.engine import Direction, Entry, Plan, Reason, SizeMtime, Synced, plan

T = 1_700_000_000.0
STAMP = (5, 1, 2, 3)
ETAG = "d41d8cd98f00b204e9800998ecf8427e"


def remote(key: str, etag: str = ETAG, size: int = 5) -> Entry:
    return Entry(key, size, T, etag)


def local(key: str, stamp: tuple[int, int, int, int] = STAMP) -> Entry:
    return Entry(key, stamp[0], T, stamp=stamp)


def synced(etag: str = ETAG) -> Synced:
    return Synced(STAMP, etag, 5, T)


def _down(src: list[Entry], dst: list[Entry], base: dict[str, Synced], **kw: object) -> Plan:
    records = sorted((k.encode(), r) for k, r in base.items())
    return plan(
        src,
        dst,
        compare=SizeMtime(exact=True),
        delete=bool(kw.get("delete", True)),
        base_records=records,
        direction=Direction.DOWN,
        two_way=bool(kw.get("two_way", False)),
    )


def test_a_file_in_sync_with_keys_under_it_is_a_conflict_not_unchanged() -> None:
    src = [remote("a"), remote("a.txt"), remote("a/b")]
    dst = [local("a"), local("a.txt")]
    p = _down(src, dst, {"a": synced(), "a.txt": synced()})
    assert p.conflicts == ("a",)
    assert [(c.key, c.reason) for c in p.copies] == [("a/b", Reason.MISSING)]
    assert p.unchanged == 1  # a.txt


def test_the_last_key_held_is_decided() -> None:
    p = _down(
        [remote("a"), remote("b", etag="other")],
        [local("a"), local("b")],
        {
            "a": synced(),
            "b": synced(),
        },
    )
    assert [(c.key, c.reason) for c in p.copies] == [("b", Reason.CHANGED)]
    assert p.unchanged == 1


def test_a_held_key_without_a_record_is_compared() -> None:
    p = _down([remote("a"), remote("b")], [local("a"), local("b")], {"a": synced()})
    assert p.unchanged == 2 and [a.key for a in p.adopted] == ["b"]


def _random_side(rng: random.Random, keys: list[str], make: object) -> list[Entry]:
    out = []
    for k in keys:
        if rng.random() < 0.7:
            out.append(make(k))  # type: ignore[operator]
    return out


@pytest.mark.parametrize("seed", range(60))
def test_plans_equal_the_plans_with_every_key_on_the_stack(seed: int) -> None:
    # Under a folder "r/" that only src lists, every key waits on the stack behind it (the
    # held lane is never used); the same listings without the folder use the held lane.
    rng = random.Random(seed)
    names = ["a", "a.txt", "a/b", "a/b.txt", "a/b/c", "a0", "b", "b/x", "c", "é"]
    keys = sorted({rng.choice(names) for _ in range(8)}, key=lambda k: k.encode())
    etags = {k: rng.choice([ETAG, "other"]) for k in keys}
    stamps = {k: rng.choice([STAMP, (6, 1, 2, 3)]) for k in keys}
    src = _random_side(rng, keys, lambda k: remote(k, etags[k]))
    dst = _random_side(rng, keys, lambda k: local(k, stamps[k]))
    base = {k: synced() for k in keys if rng.random() < 0.7}
    for direction in (Direction.DOWN, Direction.UP):
        for two_way in (False, True):
            s, d = (src, dst) if direction is Direction.DOWN else (dst, src)
            kw = {"delete": seed % 2 == 0, "two_way": two_way}

            def run(
                prefix: str,
                s: list[Entry],
                d: list[Entry],
                extra: list[Entry],
                direction: Direction = direction,
                kw: dict[str, bool] = kw,
            ) -> Plan:
                def moved(es: list[Entry]) -> list[Entry]:
                    return [Entry(prefix + e.key, e.size, e.mtime, e.etag, e.stamp) for e in es]

                return plan(
                    extra + moved(s),
                    moved(d),
                    compare=SizeMtime(exact=direction is Direction.DOWN),
                    delete=bool(kw["delete"]),
                    base_records=sorted(((prefix + k).encode(), r) for k, r in base.items()),
                    direction=direction,
                    two_way=bool(kw["two_way"]) and direction is Direction.DOWN,
                )

            held = run("", s, d, [])
            stacked = run("r/", s, d, [Entry("r/", 0, T)])

            def view(p: Plan, cut: int) -> tuple[object, ...]:
                return (
                    [(a.key[cut:], a.reason) for a in p.copies if a.key != "r/"],
                    [(a.key[cut:], a.reason) for a in p.deletes],
                    [k[cut:] for k in p.conflicts],
                    [(a.key[cut:], a.reason) for a in p.adopted],
                    [(a.key[cut:], a.reason) for a in p.kept],
                    [k[cut:] for k in p.fallbacks],
                )

            assert view(held, 0) == view(stacked, 2)
            if s:  # "r/" itself: only in src, with keys under it: unchanged
                assert held.unchanged == stacked.unchanged - 1
