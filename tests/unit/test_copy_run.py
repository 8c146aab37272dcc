"""The feeding loop shared by DownloadRun and UploadRun (pos3lite/transfer.py, _CopyRun)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import pytest

from pos3lite.engine.model import Action, Entry, Reason
from pos3lite.progress import make_progress
from pos3lite.transfer import _CopyRun


class SlowRun(_CopyRun):
    """Each copy sleeps, then records its key: a copy still running shows up late."""

    def __init__(self, executor: ThreadPoolExecutor) -> None:
        super().__init__(
            client=cast(Any, None),  # never called
            bucket="b",
            key_prefix="",
            local_root=Path("/nonexistent"),
            executor=executor,
            progress=make_progress(False, 0, ""),
            window=4,
            config=None,
            count_total=False,
        )
        self.done: list[str] = []
        self.lock = threading.Lock()

    def _copy(self, action: Action) -> None:
        time.sleep(0.2)
        with self.lock:
            self.done.append(action.key)


def actions_then_error(n: int) -> Iterator[Action]:
    """``n`` copies, then the error a cut listing or walk raises mid-plan."""
    for i in range(n):
        yield Action(f"k{i}", Reason.MISSING, Entry(f"k{i}", 10, 0.0), None)
    raise OSError("connection lost")


def test_an_error_while_feeding_cancels_and_waits_for_the_running_copies() -> None:
    with ThreadPoolExecutor(2) as pool:
        run = SlowRun(pool)
        with pytest.raises(OSError, match="connection lost"):
            run.feed_all(actions_then_error(3))
        # abort() ran before the error came out: the batch is cancelled and no copy is
        # still running (none lands after feed_all returned).
        assert run.batch.cancelled
        landed = len(run.done)
        time.sleep(0.5)
        assert len(run.done) == landed
        assert run.fed == 3 and run.total == 30


def test_feed_all_then_join_runs_every_copy_once() -> None:
    with ThreadPoolExecutor(2) as pool:
        run = SlowRun(pool)
        run.feed_all(
            Action(f"k{i}", Reason.MISSING, Entry(f"k{i}", 1, 0.0), None) for i in range(6)
        )
        run.join()
        assert sorted(run.done) == [f"k{i}" for i in range(6)]
        assert not run.batch.cancelled
