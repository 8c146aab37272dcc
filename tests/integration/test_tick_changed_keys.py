"""A background tick with a few changed files plans only those keys (issue 12, the tick target
with a change; ``pos3lite/mirror/ticks.py``): it reads the records of the changed keys by key,
never every record of the registration, and decides exactly what planning against every
record decides, case-fold twins included. Against the real SeaweedFS fixture; every request
and every read of the sync state is counted, and each scenario is run once more with the
small plan switched off (the whole plan, as before) to compare the outcomes."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import pos3lite
from pos3lite import TransferError
from pos3lite.errors import KeyConflictError
from pos3lite.mirror import context as ctx
from pos3lite.mirror import policy
from pos3lite.mirror.state import SyncState

from .conftest import get, keys
from .test_incremental_ticks import counted_mirror, lists, puts, registration, rewrite

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify: Linux"),
]

TICK = policy.Phase.TICK


class StateReads:
    """Reads of the sync state: calls of ``load`` (every record), ``iter_keys`` (every key,
    the twin screen), ``iter_stamps`` (every stamp), and the rows ``records_of`` returned."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: dict[str, int] = {"load": 0, "iter_keys": 0, "iter_stamps": 0}
        self.rows: list[str] = []
        for name in self.calls:
            monkeypatch.setattr(SyncState, name, self._counted(name, getattr(SyncState, name)))
        real = SyncState.records_of

        def records_of(store: SyncState, *a: Any, **kw: Any) -> Any:
            got = real(store, *a, **kw)
            if got is not None:
                self.rows += list(got[0]) + [k for k, _ in got[1].values()]
            return got

        monkeypatch.setattr(SyncState, "records_of", records_of)

    def _counted(self, name: str, real: Any) -> Any:
        def fn(*a: Any, **kw: Any) -> Any:
            self.calls[name] += 1
            return real(*a, **kw)

        return fn

    def take(self) -> tuple[dict[str, int], list[str]]:
        out = (dict(self.calls), sorted(self.rows))
        self.calls = dict.fromkeys(self.calls, 0)
        self.rows = []
        return out


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> StateReads:
    return StateReads(monkeypatch)


@pytest.fixture
def whole_plan(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Switches the small plan off (every tick plans from every record, as before)."""

    def switch() -> None:
        monkeypatch.setattr(ctx._Mirror, "_plan_changed_keys", lambda *a, **kw: None)

    yield switch


def many_files(root: Path, n: int = 60) -> Path:
    for i in range(n):
        folder = root / f"d{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:03d}.txt").write_bytes(b"x" * (i % 5))
    return root


def started(m: Any, url: str, seen: Any) -> Any:
    """The registration after its first tick (full listing: the baseline of the watcher)."""
    reg = registration(m, url)
    m._sync_upload(reg, TICK)
    assert lists(seen.take()) == 1
    assert reg.watcher is not None and reg.watcher.baseline
    return reg


def tick(m: Any, reg: Any) -> list[str]:
    """One tick; the KeyConflictErrors it raised (as text, sorted), else []."""
    try:
        m._sync_upload(reg, TICK)
    except TransferError as exc:
        return sorted(str(e) for e in exc.failures if isinstance(e, KeyConflictError))
    return []


def test_a_tick_with_one_changed_file_reads_only_that_files_record(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path, reads: StateReads
) -> None:
    root = many_files(tmp_path / "run")
    url = f"s3://{bucket}/run"
    with counted_mirror(tmp_path, profile) as (m, seen):
        pos3lite.upload(url, local=root, interval=None)
        reg = started(m, url, seen)
        reads.take()
        rewrite(root / "d1" / "f001.txt", b"Y")
        m._sync_upload(reg, TICK)
        assert seen.take() == [("PUT", f"{bucket}/run/d1/f001.txt")]
        calls, rows = reads.take()
        # The first tick with a change after a full pass reads every key once (the screen
        # of folded names), never every record.
        assert calls == {"load": 0, "iter_keys": 1, "iter_stamps": 0}
        assert rows == ["d1/f001.txt", "d1/f001.txt"]  # the watched rows' stamps; the plan
        for i in (4, 5):
            f = root / f"d{i % 3}" / f"f{i:03d}.txt"
            rewrite(f, b"z" * (i % 5))
            m._sync_upload(reg, TICK)
            assert seen.take() == [("PUT", f"{bucket}/run/d{i % 3}/f{i:03d}.txt")]
            calls, rows = reads.take()
            assert calls == {"load": 0, "iter_keys": 0, "iter_stamps": 0}
            assert rows == [f"d{i % 3}/f{i:03d}.txt"] * 2
        # A new file: no record to read, still its own PUT; the next tick knows it.
        (root / "d0" / "new.txt").write_bytes(b"new")
        m._sync_upload(reg, TICK)
        assert seen.take() == [("PUT", f"{bucket}/run/d0/new.txt")]
        assert reads.take() == ({"load": 0, "iter_keys": 0, "iter_stamps": 0}, [])
        rewrite(root / "d0" / "new.txt", b"NEW")
        m._sync_upload(reg, TICK)
        assert seen.take() == [("PUT", f"{bucket}/run/d0/new.txt")]
        assert reads.take() == ({"load": 0, "iter_keys": 0, "iter_stamps": 0}, ["d0/new.txt"] * 2)
    assert get(oracle, bucket, "run/d1/f001.txt") == b"Y"
    assert get(oracle, bucket, "run/d0/new.txt") == b"NEW"


def twin_of_a_recorded_key(
    m: Any, seen: Any, url: str, root: Path, reads: StateReads
) -> tuple[list[str], list[tuple[str, str]], dict[str, int]]:
    """``Data.txt`` recorded; renamed away and ``data.txt`` created: the conflict keys, the
    requests and the state reads of that tick."""
    (root / "Data.txt").write_bytes(b"old")
    pos3lite.upload(url, local=root, interval=None)
    reg = started(m, url, seen)
    rewrite(root / "d0" / "f000.txt", b"")
    m._sync_upload(reg, TICK)  # a change: the screen of folded names is read now
    seen.take()
    reads.take()
    (root / "Data.txt").rename(root / "moved.txt")
    (root / "data.txt").write_bytes(b"new")
    twins = tick(m, reg)
    sent = seen.take()
    calls, _ = reads.take()
    (root / "data.txt").unlink()  # the final sync at exit has no twin left
    return twins, sent, calls


def test_a_new_file_folding_like_a_recorded_key_is_refused_as_the_whole_plan_refuses_it(
    oracle: Any,
    bucket: str,
    profile: Any,
    tmp_path: Path,
    reads: StateReads,
    whole_plan: Any,
) -> None:
    outcomes = []
    for name in ("small", "whole"):
        if name == "whole":
            whole_plan()
        root = many_files(tmp_path / name / "run")
        url = f"s3://{bucket}/{name}"
        with counted_mirror(tmp_path / name, profile) as (m, seen):
            twins, sent, calls = twin_of_a_recorded_key(m, seen, url, root, reads)
            assert get(oracle, bucket, f"{name}/Data.txt") == b"old"  # neither twin touched
            assert f"{name}/data.txt" not in keys(oracle, bucket)
        assert len(twins) == 1 and "'Data.txt'" in twins[0] and "'data.txt'" in twins[0]
        assert lists(sent) == 0 and puts(sent) == [f"{bucket}/{name}/moved.txt"]
        assert calls["load"] == 1  # the screen said "maybe": planned from every record
        outcomes.append((twins, [p.replace(name, "_") for p in puts(sent)]))
    assert outcomes[0] == outcomes[1]


def test_two_new_files_folding_alike_are_both_refused_from_the_small_plan(
    oracle: Any,
    bucket: str,
    profile: Any,
    tmp_path: Path,
    reads: StateReads,
    whole_plan: Any,
) -> None:
    outcomes = []
    for name in ("small", "whole"):
        if name == "whole":
            whole_plan()
        root = many_files(tmp_path / name / "run")
        url = f"s3://{bucket}/{name}"
        with counted_mirror(tmp_path / name, profile) as (m, seen):
            pos3lite.upload(url, local=root, interval=None)
            reg = started(m, url, seen)
            reads.take()
            (root / "d2" / "Report.md").write_bytes(b"one")
            (root / "d2" / "REPORT.md").write_bytes(b"two")
            (root / "d2" / "notes.md").write_bytes(b"fine")
            twins = tick(m, reg)
            sent = seen.take()
            calls, _ = reads.take()
            assert len(twins) == 1 and "'d2/REPORT.md'" in twins[0] and "d2/Report.md" in twins[0]
            assert puts(sent) == [f"{bucket}/{name}/d2/notes.md"]
            assert calls["load"] == (1 if name == "whole" else 0)
            (root / "d2" / "REPORT.md").unlink()
        outcomes.append((twins, [p.replace(name, "_") for p in puts(sent)]))
    assert outcomes[0] == outcomes[1]
    assert "small/d2/REPORT.md" not in keys(oracle, bucket)


@pytest.mark.parametrize("markers", [True, False])
def test_new_and_emptied_folders_get_markers_as_from_the_whole_plan(
    oracle: Any,
    bucket: str,
    profile: Any,
    tmp_path: Path,
    reads: StateReads,
    whole_plan: Any,
    markers: bool,
) -> None:
    p = dataclasses.replace(profile, folder_markers=markers)
    outcomes = []
    for name in ("small", "whole"):
        if name == "whole":
            whole_plan()
        root = many_files(tmp_path / name / "run")
        url = f"s3://{bucket}/{name}{int(markers)}"
        with counted_mirror(tmp_path / name, p) as (m, seen):
            pos3lite.upload(url, local=root, interval=None)
            reg = started(m, url, seen)
            reads.take()
            (root / "fresh").mkdir()  # new and empty: its marker (when markers are on)
            for f in (root / "d1").iterdir():  # emptied: its keys are still on S3
                f.unlink()
            m._sync_upload(reg, TICK)
            sent = seen.take()
            calls, _ = reads.take()
            assert calls["load"] == (1 if name == "whole" else 0)
            want = [f"{bucket}/{name}{int(markers)}/fresh/"] if markers else []
            assert puts(sent) == want and lists(sent) == 0
            assert reg.dirs == {"fresh/", "d1/"}
            m._sync_upload(reg, TICK)  # known now: nothing again
            assert seen.take() == []
        outcomes.append([s.replace(name, "_") for s in puts(sent)])
    assert outcomes[0] == outcomes[1]
