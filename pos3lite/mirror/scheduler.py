"""When background uploads run: a small timetable over an injected clock.

Rules (pos3 uploaded about 1 s after registration, then every ``interval``):

* a registration's first tick is due ``first_delay`` seconds (default 1 s) after it is
  added;
* the next one is due ``interval`` seconds after the *end* of the previous tick
  (:meth:`Scheduler.done`), so a slow upload never makes ticks pile up or overlap;
* the scheduler holds no thread and no lock: the mirror's one background thread asks
  :meth:`Scheduler.due` and :meth:`Scheduler.next_due`, runs ticks one at a time, and reports
  each end with :meth:`Scheduler.done`.

The clock is a ``() -> seconds`` function (``time.monotonic`` in the mirror, a fake in
tests).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass

__all__ = ["FIRST_TICK_SECONDS", "Scheduler"]

#: Seconds from registration to the first background upload.
FIRST_TICK_SECONDS = 1.0


@dataclass(slots=True)
class _Slot:
    interval: float
    due: float
    running: bool = False


class Scheduler:
    """Timetable of background ticks, one slot per registration key."""

    def __init__(self, clock: Callable[[], float], *, first_delay: float = FIRST_TICK_SECONDS):
        self.clock = clock
        self.first_delay = first_delay
        self._slots: dict[Hashable, _Slot] = {}

    def add(self, key: Hashable, interval: float) -> None:
        """Schedule ``key`` every ``interval`` seconds (> 0), first after ``first_delay``."""
        if not interval > 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval!r}")
        self._slots[key] = _Slot(interval, self.clock() + self.first_delay)

    def remove(self, key: Hashable) -> None:
        """Forget ``key`` (no-op if unknown)."""
        self._slots.pop(key, None)

    def due(self) -> list[Hashable]:
        """Keys whose tick is due now (and not running), earliest first; each is marked
        running until :meth:`done`."""
        now = self.clock()
        ready = sorted(
            (s.due, i, k)
            for i, (k, s) in enumerate(self._slots.items())
            if not s.running and s.due <= now
        )
        for _, _, k in ready:
            self._slots[k].running = True
        return [k for _, _, k in ready]

    def done(self, key: Hashable) -> None:
        """The tick of ``key`` ended now: the next is due ``interval`` from now."""
        slot = self._slots.get(key)
        if slot is not None:
            slot.running = False
            slot.due = self.clock() + slot.interval

    def next_due(self) -> float | None:
        """Clock time of the earliest pending tick, or ``None`` when nothing is scheduled."""
        pending = [s.due for s in self._slots.values() if not s.running]
        return min(pending) if pending else None
