"""Tables for the pure exit and background decisions (pos3lite/mirror/policy.py)."""

from __future__ import annotations

import pytest

from pos3lite.mirror.policy import (
    FULL_LISTING_EVERY,
    Ending,
    Phase,
    classify,
    deletes_in,
    exit_plan,
    handles_sigterm,
    lists_in_full,
)


class _Base(BaseException):
    pass


CLASSIFY = [
    ("none", None, Ending.NORMAL),
    ("sys-exit", SystemExit(), Ending.NORMAL),
    ("sys-exit-0", SystemExit(0), Ending.NORMAL),
    ("sys-exit-2", SystemExit(2), Ending.INTERRUPTED),
    ("sys-exit-message", SystemExit("fatal"), Ending.INTERRUPTED),
    ("sigterm", SystemExit(143), Ending.INTERRUPTED),
    ("ctrl-c", KeyboardInterrupt(), Ending.INTERRUPTED),
    ("other-base-exception", _Base(), Ending.INTERRUPTED),
    ("exception", RuntimeError("x"), Ending.ERROR),
    ("value-error", ValueError("x"), Ending.ERROR),
]


@pytest.mark.parametrize(("exc", "want"), [r[1:] for r in CLASSIFY], ids=[r[0] for r in CLASSIFY])
def test_classify(exc: BaseException | None, want: Ending) -> None:
    assert classify(exc) is want


REGS = [("s3://b/plain", False), ("s3://b/onerr", True), ("s3://b/plain2", False)]
EXIT = [
    # ending, run, skip, raise_failures
    (Ending.NORMAL, ("s3://b/plain", "s3://b/onerr", "s3://b/plain2"), (), True),
    (Ending.INTERRUPTED, ("s3://b/plain", "s3://b/onerr", "s3://b/plain2"), (), False),
    (Ending.ERROR, ("s3://b/onerr",), ("s3://b/plain", "s3://b/plain2"), False),
]


@pytest.mark.parametrize(("ending", "run", "skip", "raises"), EXIT, ids=[e[0].value for e in EXIT])
def test_exit_plan(
    ending: Ending, run: tuple[str, ...], skip: tuple[str, ...], raises: bool
) -> None:
    plan = exit_plan(ending, REGS)
    assert (plan.run, plan.skip, plan.raise_failures) == (run, skip, raises)


def test_exit_plan_without_registrations() -> None:
    assert exit_plan(Ending.ERROR, []).run == ()


@pytest.mark.parametrize(
    ("phase", "want"), [(Phase.TICK, False), (Phase.FLUSH, False), (Phase.FINAL, True)]
)
def test_only_the_final_sync_deletes(phase: Phase, want: bool) -> None:
    assert deletes_in(phase) is want


SIGTERM = [
    # wanted, main thread, default handler, installs
    (True, True, True, True),
    (False, True, True, False),
    (True, False, True, False),
    (True, True, False, False),
    (False, False, False, False),
]


@pytest.mark.parametrize(("wanted", "main", "default", "want"), SIGTERM)
def test_handles_sigterm(wanted: bool, main: bool, default: bool, want: bool) -> None:
    assert handles_sigterm(wanted=wanted, main_thread=main, default_handler=default) is want


LISTING = [
    # phase, passes since the last full listing (None: never), previous pass failed, full
    ("final-always", Phase.FINAL, 0, False, True),
    ("final-never-listed", Phase.FINAL, None, False, True),
    ("tick-first", Phase.TICK, None, False, True),
    ("tick-after-listing", Phase.TICK, 0, False, False),
    ("tick-ninth-incremental", Phase.TICK, FULL_LISTING_EVERY - 2, False, False),
    ("tick-tenth", Phase.TICK, FULL_LISTING_EVERY - 1, False, True),
    ("tick-after-error", Phase.TICK, 0, True, True),
    ("flush-listed", Phase.FLUSH, 0, False, False),
    ("flush-many-passes", Phase.FLUSH, 50, False, False),
    ("flush-never-listed", Phase.FLUSH, None, False, True),
    ("flush-after-error", Phase.FLUSH, 3, True, True),
]


@pytest.mark.parametrize(
    ("phase", "since", "failed", "want"), [r[1:] for r in LISTING], ids=[r[0] for r in LISTING]
)
def test_lists_in_full(phase: Phase, since: int | None, failed: bool, want: bool) -> None:
    assert lists_in_full(phase, passes_since_listing=since, failed=failed) is want


def test_every_tenth_tick_lists_in_full() -> None:
    since: int | None = None
    full = []
    for _ in range(25):
        f = lists_in_full(Phase.TICK, passes_since_listing=since, failed=False)
        full.append(f)
        since = 0 if f else (since or 0) + 1
    assert [i for i, f in enumerate(full) if f] == [0, 10, 20]
