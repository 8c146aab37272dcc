"""Tables for the pure exit and background decisions (pos3lite/mirror/policy.py)."""

from __future__ import annotations

import pytest

from pos3lite.mirror.policy import (
    Ending,
    Phase,
    classify,
    deletes_in,
    exit_plan,
    handles_sigterm,
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
