"""The background timetable with a fake clock (pos3lite/mirror/scheduler.py)."""

from __future__ import annotations

import pytest

from pos3lite.mirror.scheduler import Scheduler


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_first_tick_one_second_after_registration_then_interval_after_each_end() -> None:
    clock = Clock()
    s = Scheduler(clock)
    s.add("a", 300)
    assert s.next_due() == 101.0
    clock.now = 100.9
    assert s.due() == []
    clock.now = 101.0
    assert s.due() == ["a"]
    # While it runs it is neither due again nor pending.
    clock.now = 1000.0
    assert s.due() == [] and s.next_due() is None
    # The tick took a long time; the next is counted from its end.
    s.done("a")
    assert s.next_due() == 1300.0
    clock.now = 1299.0
    assert s.due() == []
    clock.now = 1300.0
    assert s.due() == ["a"]


def test_earliest_first_and_remove() -> None:
    clock = Clock()
    s = Scheduler(clock)
    s.add("late", 10)
    clock.now += 0.5
    s.add("early", 10)
    clock.now = 200.0
    assert s.due() == ["late", "early"]
    s.done("late")
    s.done("early")
    s.remove("late")
    s.remove("missing")
    assert s.next_due() == 210.0
    assert Scheduler(clock, first_delay=0).next_due() is None


@pytest.mark.parametrize("bad", [0, -1.0, float("nan")])
def test_interval_must_be_positive(bad: float) -> None:
    with pytest.raises(ValueError, match="interval"):
        Scheduler(Clock()).add("a", bad)
