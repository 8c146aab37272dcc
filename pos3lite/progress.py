"""Progress reporting as a protocol; the tqdm adapter is the only importer of tqdm.

A :class:`Progress` receives byte counts from worker threads (``update(n)``; ``n`` may be
negative when a retried transfer rewinds) and is closed once. tqdm writes to stderr and is
imported on first use, never by ``import pos3lite``.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

__all__ = ["NullProgress", "Progress", "TqdmProgress", "make_progress"]


class Progress(Protocol):
    """Receives transferred byte counts; must be thread-safe."""

    def update(self, n: int) -> None:
        """Add ``n`` bytes (may be negative on a rewind)."""
        ...

    def close(self) -> None:
        """Finish the display."""
        ...


class NullProgress:
    """A Progress that shows nothing."""

    def update(self, n: int) -> None:
        """Ignore ``n``."""

    def close(self) -> None:
        """Nothing to close."""


class TqdmProgress:
    """A byte progress bar on stderr (tqdm, 1024-based units)."""

    def __init__(self, total: int, description: str) -> None:
        from tqdm import tqdm  # type: ignore[import-untyped]

        self._lock = threading.Lock()
        self._bar: Any = tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=description,
            leave=False,
        )

    def update(self, n: int) -> None:
        """Advance the bar by ``n`` bytes."""
        with self._lock:
            self._bar.update(n)

    def close(self) -> None:
        """Close the bar."""
        with self._lock:
            self._bar.close()


def make_progress(enabled: bool, total: int, description: str) -> Progress:
    """A tqdm bar when ``enabled`` and there is something to show, else a NullProgress."""
    if enabled and total > 0:
        return TqdmProgress(total, description)
    return NullProgress()
