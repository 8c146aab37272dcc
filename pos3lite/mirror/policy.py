"""Pure exit and background decisions of a mirror, table-tested (tests/unit/test_mirror_policy.py).

Exit (pos3's rule, which training entry points rely on):

=========================================  ==================================  ==============
how the ``with`` body ends                 registrations synced at exit        final errors
=========================================  ==================================  ==============
normally, ``sys.exit()``, ``sys.exit(0)``  all                                 raised
``KeyboardInterrupt``, ``SystemExit``      all                                 logged; the
with another code or a message, SIGTERM                                        body's
(``SystemExit(143)``), other                                                   exception
non-``Exception`` ``BaseException``                                            propagates
an ``Exception``                           only ``sync_on_error=True``; each   logged
                                           skipped one is named in a WARNING
=========================================  ==================================  ==============

Phases: a background tick and :func:`pos3lite.flush` upload only; deletes (remote files
whose local copy is gone) wait for the final sync, so a folder being rewritten (``rm -rf``,
then write) never loses its remote copy to a tick.

Listing (:func:`lists_in_full`): an upload pass either lists the remote prefix in full and
plans against it, or is *incremental*: it walks the local folder (stat only) and uploads the
files whose stamp differs from the sync state's record or that have none, sending no LIST
(no request at all when nothing changed). Which one runs:

=========  ===============================================  ==============
phase      registration                                      full listing
=========  ===============================================  ==============
``FINAL``  any                                               yes
any        no successful full listing yet in this mirror,    yes
           or the previous pass failed
``TICK``   ``FULL_LISTING_EVERY - 1`` passes since the last  yes (every
           full listing                                      tenth tick)
``TICK``   fewer passes since the last full listing          no
``FLUSH``  listed, no failure since                          no
=========  ===============================================  ==============

The caller also lists in full when the sync state holds nothing for the registration or the
comparison does not use the state (``compare="size"`` or ``"checksum"``).

SIGTERM: handled (turned into ``SystemExit(143)`` in the main thread) only when asked, the
mirror is entered in the main thread, and SIGTERM still has its default action: an
application's own handler is never replaced.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "FULL_LISTING_EVERY",
    "SIGTERM_EXIT_CODE",
    "Ending",
    "ExitPlan",
    "Phase",
    "classify",
    "deletes_in",
    "exit_plan",
    "handles_sigterm",
    "lists_in_full",
]

#: The exit status a SIGTERM-ed process reports (128 + 15), as ``SystemExit(143)``.
SIGTERM_EXIT_CODE = 143
#: A background tick lists the remote prefix in full at least once every this many ticks.
FULL_LISTING_EVERY = 10


class Ending(enum.Enum):
    """How the body of a mirror ended."""

    NORMAL = "normal"
    """No exception, or ``SystemExit`` with code ``None`` or ``0``."""
    INTERRUPTED = "interrupted"
    """``KeyboardInterrupt``, another ``SystemExit``, or another non-Exception."""
    ERROR = "error"
    """An ``Exception``."""


class Phase(enum.Enum):
    """Why an upload sync runs."""

    TICK = "tick"
    FLUSH = "flush"
    FINAL = "final"


@dataclass(frozen=True, slots=True)
class ExitPlan:
    """What the exit does: ``run`` and ``skip`` are registration names (in the given order);
    ``raise_failures`` says whether a failed final sync raises (else it is logged)."""

    run: tuple[str, ...]
    skip: tuple[str, ...]
    raise_failures: bool


def classify(exc: BaseException | None) -> Ending:
    """The :class:`Ending` for the exception that left the body (``None``: none)."""
    if exc is None:
        return Ending.NORMAL
    if isinstance(exc, SystemExit):
        return Ending.NORMAL if exc.code in (None, 0) else Ending.INTERRUPTED
    if isinstance(exc, Exception):
        return Ending.ERROR
    return Ending.INTERRUPTED


def exit_plan(ending: Ending, registrations: Sequence[tuple[str, bool]]) -> ExitPlan:
    """Which registrations the final sync runs.

    Args:
        ending: from :func:`classify`.
        registrations: ``(name, sync_on_error)`` per upload registration.
    """
    if ending is Ending.ERROR:
        run = tuple(n for n, on_error in registrations if on_error)
        skip = tuple(n for n, on_error in registrations if not on_error)
    else:
        run, skip = tuple(n for n, _ in registrations), ()
    return ExitPlan(run, skip, raise_failures=ending is Ending.NORMAL)


def deletes_in(phase: Phase) -> bool:
    """Whether an upload sync in ``phase`` may delete remote objects (final sync only)."""
    return phase is Phase.FINAL


def handles_sigterm(*, wanted: bool, main_thread: bool, default_handler: bool) -> bool:
    """Whether ``mirror()`` installs its SIGTERM handler."""
    return wanted and main_thread and default_handler


def lists_in_full(phase: Phase, *, passes_since_listing: int | None, failed: bool) -> bool:
    """Whether an upload pass lists the remote prefix in full (see the module table).

    Args:
        phase: why the pass runs.
        passes_since_listing: incremental passes since the registration's last successful
            full listing in this mirror (``None``: never listed yet).
        failed: the registration's previous pass raised.
    """
    if phase is Phase.FINAL or failed or passes_since_listing is None:
        return True
    if phase is Phase.TICK:
        return passes_since_listing >= FULL_LISTING_EVERY - 1
    return False
