"""Progress reporting as a protocol; the tqdm adapter is the only importer of tqdm.

A :class:`Progress` receives byte counts from worker threads (``update(n)``; ``n`` may be
negative when a retried transfer rewinds) and is closed once. A Progress may also define
``file_done(verb, src, dst)``: the transfer layer reports each finished file through
:func:`file_done` (``verb`` is ``"download"``, ``"upload"`` or ``"delete"``; ``dst`` is
``None`` for a delete), which calls it when present, so plain Progress objects need not.

:func:`make_progress` is what the mirror calls; an entry point (the CLI) may route every
call of one run to a factory of its own with :func:`use_factory`, which is how the CLI
draws one bar for the whole run, prints ``-v`` lines and a closing summary without the
mirror knowing about it (s3transfer's subscribers are the model). tqdm writes to stderr and
is imported on first use, never by ``import pos3lite``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TextIO

__all__ = [
    "NullProgress",
    "Progress",
    "ProgressFactory",
    "RunReport",
    "TqdmProgress",
    "add_total",
    "file_done",
    "format_bytes",
    "make_progress",
    "use_factory",
]


class Progress(Protocol):
    """Receives transferred byte counts; must be thread-safe."""

    def update(self, n: int) -> None:
        """Add ``n`` bytes (may be negative on a rewind)."""
        ...

    def close(self) -> None:
        """Finish the display."""
        ...


#: ``factory(enabled, total_bytes, description) -> Progress``, see :func:`use_factory`.
ProgressFactory = Callable[[bool, int, str], Progress]

_FACTORY: ProgressFactory | None = None


def file_done(
    progress: object,
    verb: str,
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str] | None = None,
) -> None:
    """Report one finished file to ``progress`` if it has a ``file_done`` method.

    Args:
        progress: any Progress.
        verb: ``"download"``, ``"upload"`` or ``"delete"``.
        src: the source (an ``s3://`` URL or a local path); for a delete, what was deleted.
        dst: the destination, ``None`` for a delete.
    """
    hook = getattr(progress, "file_done", None)
    if hook is not None:
        hook(verb, os.fspath(src), None if dst is None else os.fspath(dst))


def add_total(progress: object, n: int) -> None:
    """Grow ``progress``'s total by ``n`` bytes if it has an ``add_total`` method (a
    transfer whose copies are planned while it already runs learns its total as it goes)."""
    hook = getattr(progress, "add_total", None)
    if hook is not None:
        hook(n)


class NullProgress:
    """A Progress that shows nothing."""

    def update(self, n: int) -> None:
        """Ignore ``n``."""

    def close(self) -> None:
        """Nothing to close."""


class TqdmProgress:
    """A byte progress bar on stderr (tqdm, 1024-based units), erased when closed."""

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

    def add_total(self, n: int) -> None:
        """Grow the bar's total by ``n`` bytes."""
        with self._lock:
            self._bar.total += n
            self._bar.refresh()

    def close(self) -> None:
        """Close the bar."""
        with self._lock:
            self._bar.close()


def make_progress(enabled: bool, total: int, description: str, *, grows: bool = False) -> Progress:
    """The Progress for one transfer of ``total`` bytes.

    The factory installed by :func:`use_factory` if any (it decides what to show); else a
    tqdm bar when ``enabled`` and there is something to show (or, with ``grows``, may be:
    the total then grows through :func:`add_total`); else a NullProgress.
    """
    if _FACTORY is not None:
        return _FACTORY(enabled, total, description)
    if enabled and (total > 0 or grows):
        return TqdmProgress(total, description)
    return NullProgress()


@contextmanager
def use_factory(factory: ProgressFactory) -> Iterator[None]:
    """Route :func:`make_progress` to ``factory`` inside the block (process-wide)."""
    global _FACTORY
    previous, _FACTORY = _FACTORY, factory
    try:
        yield
    finally:
        _FACTORY = previous


def format_bytes(n: float) -> str:
    """``n`` bytes in 1024-based units: ``"512 B"``, ``"1.5 KiB"``, ``"3.0 GiB"``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


class _Part:
    """One :func:`make_progress` call's view of a :class:`RunReport`."""

    def __init__(self, report: RunReport, description: str = "") -> None:
        self._report = report
        self._description = description

    def update(self, n: int) -> None:
        self._report.add_bytes(n)

    def add_total(self, n: int) -> None:
        self._report.add_total(n, self._description)

    def file_done(self, verb: str, src: str, dst: str | None) -> None:
        self._report.file_done(verb, src, dst)

    def close(self) -> None:
        """The run's bar outlives each transfer; :meth:`RunReport.close` ends it."""


class RunReport:
    """What one CLI run did: files, bytes and seconds over every transfer in the run.

    Args:
        bar: draw one tqdm bar (bytes, with the file count) on ``stream`` that stays on
            screen at the end; callers turn it off when ``stream`` is not a terminal.
        verbose: write one line per finished file in ``aws s3 sync`` style
            (``download: s3://b/k to path``, ``upload: path to s3://b/k``, ``delete: x``).
        stream: where the bar and the lines go (stderr by default).
        clock: seconds, monotonic (injected for tests).

    Use :meth:`factory` with :func:`use_factory`; :meth:`summary` after the run.
    """

    def __init__(
        self,
        *,
        bar: bool,
        verbose: bool,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.files = 0
        self.deletes = 0
        self.bytes = 0
        self._want_bar = bar
        self._verbose = verbose
        self._stream = stream
        self._clock = clock
        self._start = clock()
        self._lock = threading.Lock()
        self._bar: Any = None

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    def factory(self, enabled: bool, total: int, description: str) -> Progress:
        """A :data:`ProgressFactory`: every transfer adds to this run's one bar."""
        self.add_total(total, description)
        return _Part(self, description)

    def add_total(self, total: int, description: str) -> None:
        """Grow the run's bar total by ``total`` bytes (the bar is drawn on the first)."""
        if self._want_bar and total > 0:
            with self._lock:
                if self._bar is None:
                    from tqdm import tqdm

                    self._bar = tqdm(
                        total=0,
                        unit="B",
                        unit_scale=True,
                        unit_divisor=1024,
                        desc=description.split(" ", 1)[0],
                        leave=True,
                        file=self.stream,
                        dynamic_ncols=True,
                    )
                    self._bar.set_postfix_str("0 files", refresh=False)
                self._bar.total += total
                self._bar.refresh()

    def add_bytes(self, n: int) -> None:
        with self._lock:
            self.bytes += n
            if self._bar is not None:
                self._bar.update(n)

    def file_done(self, verb: str, src: str, dst: str | None) -> None:
        with self._lock:
            if verb == "delete":
                self.deletes += 1
            else:
                self.files += 1
            if self._bar is not None:
                self._bar.set_postfix_str(f"{self.files} files", refresh=False)
            if self._verbose:
                line = f"{verb}: {src}" if dst is None else f"{verb}: {src} to {dst}"
                self._write(line)

    def _write(self, line: str) -> None:
        if self._bar is not None:
            from tqdm import tqdm

            tqdm.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def seconds(self) -> float:
        return max(self._clock() - self._start, 0.0)

    def summary(self) -> str:
        """``"3 files, 1.5 MiB in 0.42 s (3.6 MiB/s)[, 1 deleted]"``."""
        secs = self.seconds()
        rate = self.bytes / secs if secs > 0 else 0.0
        noun = "file" if self.files == 1 else "files"
        text = (
            f"{self.files} {noun}, {format_bytes(self.bytes)} in {secs:.2f} s "
            f"({format_bytes(rate)}/s)"
        )
        if self.deletes:
            text += f", {self.deletes} deleted"
        return text

    def close(self) -> None:
        """End the bar (left on screen, with its final counts)."""
        with self._lock:
            if self._bar is not None:
                self._bar.set_postfix_str(f"{self.files} files", refresh=False)
                self._bar.close()
                self._bar = None
