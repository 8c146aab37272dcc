"""Tables for the three-way decisions (engine/threeway.py) and plan(base=...)."""

from __future__ import annotations

import pytest

from pos3lite.engine.compare import SizeMtime
from pos3lite.engine.diff import plan
from pos3lite.engine.model import Entry, Reason, Stamp, Synced
from pos3lite.engine.threeway import Decision, Direction, decide

T = 1_700_000_000.0
OLD: Stamp = (10, int(T * 1e9), 7, int(T * 1e9))
NEW: Stamp = (10, int((T + 0.3) * 1e9), 7, int((T + 0.3) * 1e9))
BASE = Synced(local=OLD, etag="e1", size=10, mtime=T)


def local(stamp: Stamp | None = OLD, mtime: float = T, size: int = 10) -> Entry:
    return Entry("k", size, mtime, None, stamp=stamp)


def remote(etag: str = "e1", mtime: float = T, size: int = 10) -> Entry:
    return Entry("k", size, mtime, etag)


L0, L1 = local(), local(NEW, T + 0.3)  # unchanged, changed (same size, within the second)
R0, R1 = remote(), remote("e2", T + 0.1)  # unchanged, changed (same size, same second)
R1_NEWER = remote("e2", T + 5)

# id, direction, two_way, src, dst, base, delete, want
TABLE = [
    # upload: local is src
    ("up/both/unchanged", "UP", False, L0, R0, BASE, True, Decision.SKIP),
    ("up/both/local-changed-same-second", "UP", False, L1, R0, BASE, True, Decision.COPY),
    ("up/both/only-remote-changed", "UP", False, L0, R1, BASE, True, Decision.SKIP),
    (
        "up/both/no-base/local-older",
        "UP",
        False,
        local(mtime=T - 2),
        R0,
        None,
        True,
        Decision.ADOPT,
    ),
    (
        "up/both/no-base/same-second",
        "UP",
        False,
        local(mtime=T + 0.5),
        R0,
        None,
        True,
        Decision.COPY,
    ),
    ("up/src-only", "UP", False, L0, None, None, True, Decision.COPY),
    ("up/dst-only/delete", "UP", False, None, R0, BASE, True, Decision.DELETE),
    ("up/dst-only/no-delete", "UP", False, None, R0, None, False, Decision.SKIP),
    # download mirror: remote is src
    ("down/both/unchanged", "DOWN", False, R0, L0, BASE, True, Decision.SKIP),
    ("down/both/remote-changed-same-second", "DOWN", False, R1, L0, BASE, True, Decision.COPY),
    ("down/both/local-changed", "DOWN", False, R0, L1, BASE, True, Decision.COPY),
    (
        "down/both/no-base/adopt-pos3-file",
        "DOWN",
        False,
        R0,
        local(None, T + 40),
        None,
        True,
        Decision.ADOPT,
    ),
    (
        "down/both/no-base/local-older",
        "DOWN",
        False,
        R0,
        local(None, T - 1),
        None,
        True,
        Decision.COPY,
    ),
    (
        "down/both/no-base/size-differs",
        "DOWN",
        False,
        R0,
        local(None, T, 11),
        None,
        True,
        Decision.COPY,
    ),
    ("down/src-only", "DOWN", False, R0, None, BASE, True, Decision.COPY),
    ("down/dst-only/never-synced", "DOWN", False, None, L0, None, True, Decision.DELETE),
    # sync's download phase
    ("sync/both/unchanged", "DOWN", True, R0, L0, BASE, True, Decision.SKIP),
    ("sync/both/remote-changed", "DOWN", True, R1, L0, BASE, True, Decision.COPY),
    ("sync/both/local-changed", "DOWN", True, R0, L1, BASE, True, Decision.KEEP),
    (
        "sync/both/both-changed/remote-newer",
        "DOWN",
        True,
        R1_NEWER,
        L1,
        BASE,
        True,
        Decision.COPY_KEEP_DST,
    ),
    (
        "sync/both/both-changed/local-newer",
        "DOWN",
        True,
        R1,
        local(NEW, T + 3),
        BASE,
        True,
        Decision.KEEP_SAVE_SRC,
    ),
    ("sync/both/no-base/equal", "DOWN", True, R0, local(None, T + 1), None, True, Decision.ADOPT),
    (
        "sync/both/no-base/differ",
        "DOWN",
        True,
        R0,
        local(None, T, 3),
        None,
        True,
        Decision.COPY_KEEP_DST,
    ),
    ("sync/src-only/deleted-locally", "DOWN", True, R0, None, BASE, True, Decision.COPY),
    ("sync/src-only/new-remotely", "DOWN", True, R0, None, None, True, Decision.COPY),
    ("sync/dst-only/deleted-remotely", "DOWN", True, None, L0, BASE, True, Decision.DELETE),
    (
        "sync/dst-only/deleted-remotely/no-delete",
        "DOWN",
        True,
        None,
        L0,
        BASE,
        False,
        Decision.SKIP,
    ),
    (
        "sync/dst-only/deleted-remotely-but-changed",
        "DOWN",
        True,
        None,
        L1,
        BASE,
        True,
        Decision.KEEP,
    ),
    ("sync/dst-only/new-locally", "DOWN", True, None, L0, None, True, Decision.KEEP),
    ("sync/dst-only/unknown-stamp", "DOWN", True, None, local(None), BASE, True, Decision.KEEP),
]


@pytest.mark.parametrize(
    ("direction", "two_way", "src", "dst", "base", "delete", "want"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_decide_table(
    direction: str,
    two_way: bool,
    src: Entry | None,
    dst: Entry | None,
    base: Synced | None,
    delete: bool,
    want: Decision,
) -> None:
    d = Direction[direction]
    got = decide(
        src,
        dst,
        base,
        direction=d,
        two_way=two_way,
        compare=SizeMtime(exact=d is Direction.DOWN),
        delete=delete,
    )
    assert got is want


def test_decide_needs_an_entry() -> None:
    with pytest.raises(ValueError):
        decide(
            None,
            None,
            None,
            direction=Direction.UP,
            two_way=False,
            compare=SizeMtime(False),
            delete=True,
        )


def test_remote_change_without_etags_uses_size_and_second() -> None:
    base = Synced(local=OLD, etag=None, size=10, mtime=T)
    same = Entry("k", 10, T + 0.9)
    later = Entry("k", 10, T + 1)
    args = dict(direction=Direction.DOWN, two_way=False, compare=SizeMtime(True), delete=True)
    assert decide(same, L0, base, **args) is Decision.SKIP  # type: ignore[arg-type]
    assert decide(later, L0, base, **args) is Decision.COPY  # type: ignore[arg-type]


def _e(key: str, stamp: Stamp | None = OLD, etag: str | None = None, mtime: float = T) -> Entry:
    return Entry(key, 10, mtime, etag, stamp=stamp)


def test_plan_two_way_sorts_decisions_into_the_plan() -> None:
    base = {
        "changed-remotely": BASE,
        "deleted-remotely": BASE,
        "edited-locally": BASE,
        "both-local-newer": BASE,
    }
    src = [  # remote
        _e("both-local-newer", None, "e2", T + 1),
        _e("changed-remotely", None, "e2", T + 1),
        _e("edited-locally", None, "e1"),
        _e("new-remote", None, "e9"),
        _e("pos3-file", None, "e5"),
    ]
    dst = [  # local
        _e("both-local-newer", NEW, mtime=T + 9),
        _e("changed-remotely"),
        _e("deleted-remotely"),
        _e("edited-locally", NEW, mtime=T + 0.3),
        _e("new-local", NEW),
        _e("pos3-file", None, mtime=T + 60),
    ]
    p = plan(
        src,
        dst,
        compare=SizeMtime(exact=True),
        delete=True,
        base=base,
        direction=Direction.DOWN,
        two_way=True,
    )
    assert [(a.key, a.reason) for a in p.copies] == [
        ("changed-remotely", Reason.CHANGED),
        ("new-remote", Reason.MISSING),
    ]
    assert [a.key for a in p.deletes] == ["deleted-remotely"]
    assert [a.key for a in p.adopted] == ["pos3-file"]
    assert [a.key for a in p.kept] == ["both-local-newer"]
    # edited-locally and new-local are kept (for the upload), both-local-newer and
    # pos3-file are counted too.
    assert p.unchanged == 4


def test_plan_two_way_never_deletes_local_folders() -> None:
    p = plan(
        [],
        [Entry("empty/", 0, T)],
        compare=SizeMtime(exact=True),
        delete=True,
        base={},
        direction=Direction.DOWN,
        two_way=True,
    )
    assert p.deletes == () and p.unchanged == 1


def test_plan_base_needs_direction() -> None:
    with pytest.raises(ValueError, match="direction"):
        plan([], [], compare=SizeMtime(exact=True), delete=True, base={})


WANT_IN_PLAN = {
    Decision.SKIP: "unchanged",
    Decision.KEEP: "unchanged",
    Decision.ADOPT: "adopted",
    Decision.KEEP_SAVE_SRC: "kept",
    Decision.COPY: "copies",
    Decision.COPY_KEEP_DST: "copies",
    Decision.DELETE: "deletes",
}


@pytest.mark.parametrize(
    ("direction", "two_way", "src", "dst", "base", "delete", "want"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_plan_agrees_with_decide_including_its_fast_path(
    direction: str,
    two_way: bool,
    src: Entry | None,
    dst: Entry | None,
    base: Synced | None,
    delete: bool,
    want: Decision,
) -> None:
    d = Direction[direction]
    p = plan(
        [src] if src else [],
        [dst] if dst else [],
        compare=SizeMtime(exact=d is Direction.DOWN),
        delete=delete,
        base={"k": base} if base else {},
        direction=d,
        two_way=two_way,
    )
    got = {
        "copies": [a.key for a in p.copies],
        "deletes": [a.key for a in p.deletes],
        "adopted": [a.key for a in p.adopted],
        "kept": [a.key for a in p.kept],
    }
    where = WANT_IN_PLAN[want]
    if where == "unchanged":
        assert all(v == [] for v in got.values()) and p.unchanged == 1
    else:
        assert got[where] == ["k"]
        assert sum(len(v) for v in got.values()) == 1
