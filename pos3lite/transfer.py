"""Execute a sync Plan: copies first, deletes only after every copy succeeded.

Rules:

* Copies run on the mirror's thread pool; per-file failures are collected, never raised
  mid-batch, and reported together as one :class:`~pos3lite.errors.TransferError` after
  every copy finished.
* If any copy failed (or the plan has conflicts or unsafe keys), no delete runs.
* Downloads write through :func:`~pos3lite.localfs.write_atomic` (temp file + ``os.replace``)
  and set each file's mtime to the object's LastModified, which is what lets the default
  ``size_mtime`` comparison detect a same-size change on the next run.
* Remote deletes use DeleteObjects in batches of 1000; per-key errors are reported.
* Local deletes remove files and empty folders, deepest first, then prune folders that the
  deletes left empty (never the destination root itself).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, Future, wait
from pathlib import Path
from typing import TYPE_CHECKING

from .engine.model import Action, Plan
from .errors import KeyConflictError, TransferError
from .localfs import safe_join, write_atomic
from .progress import Progress

if TYPE_CHECKING:
    from .s3.client import S3Client

__all__ = ["ByteRateLimiter", "execute_download", "execute_upload", "run_parallel"]

logger = logging.getLogger(__name__)


class ByteRateLimiter:
    """A shared byte-rate cap (bytes per second) for every upload worker of a mirror.

    One timeline for all callers: each ``consume(n)`` books ``n / rate`` seconds after the
    later of now and the previous booking, then sleeps until its slot, so ``max_workers``
    does not multiply the rate and an idle limiter earns no burst credit (pos3 0.4.0
    semantics). ``consume(n <= 0)`` returns at once (rewinds report negative counts).

    Raises ValueError unless ``rate > 0`` (``inf`` is allowed and never waits).
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"max_upload_bytes_per_second must be > 0, got {rate!r}")
        self.rate = float(rate)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_free = float("-inf")

    def consume(self, n: int) -> None:
        """Block until ``n`` more bytes fit under the rate."""
        if n <= 0 or self.rate == float("inf"):
            return
        with self._lock:
            now = self._clock()
            self._next_free = max(now, self._next_free) + n / self.rate
            wait_s = self._next_free - now
        if wait_s > 0:
            self._sleep(wait_s)


def run_parallel(
    executor: Executor, fn: Callable[[Action], None], actions: Iterable[Action], *, window: int
) -> list[BaseException]:
    """Run ``fn(action)`` for every action on ``executor`` with at most ``window`` in flight.

    Returns the exceptions raised (each logged), after every call finished.
    """
    failures: list[BaseException] = []
    in_flight: set[Future[None]] = set()

    def collect(done: set[Future[None]]) -> None:
        for fut in done:
            exc = fut.exception()
            if exc is not None:
                failures.append(exc)

    for action in actions:
        if len(in_flight) >= window:
            done, in_flight = _wait_one(in_flight)
            collect(done)
        in_flight.add(executor.submit(_logged, fn, action))
    done, _ = wait(in_flight)
    collect(set(done))
    return failures


def _wait_one(futs: set[Future[None]]) -> tuple[set[Future[None]], set[Future[None]]]:
    from concurrent.futures import FIRST_COMPLETED

    done, pending = wait(futs, return_when=FIRST_COMPLETED)
    return set(done), set(pending)


def _logged(fn: Callable[[Action], None], action: Action) -> None:
    try:
        fn(action)
    except Exception as exc:
        logger.error("failed to transfer %r: %s", action.key, exc)
        raise


def execute_download(
    plan: Plan,
    *,
    client: S3Client,
    bucket: str,
    key_prefix: str,
    local_root: Path,
    executor: Executor,
    progress: Progress,
    delete: bool,
    window: int,
    extra_failures: Sequence[BaseException] = (),
) -> None:
    """Apply a download plan: fetch ``key_prefix + key`` into ``local_root / key``.

    ``extra_failures`` (e.g. refused unsafe keys) count as failures: they suppress deletes
    and are raised with the copy failures. Raises TransferError("Download", ...) for copy
    failures, TransferError("Delete", ...) for local delete failures.
    """

    def copy(action: Action) -> None:
        target = safe_join(local_root, action.key)
        if action.key.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
            return
        got: list[float] = []

        def fill(f: object) -> None:
            result = client.get_object(bucket, key_prefix + action.key, f, on_bytes=progress.update)  # type: ignore[arg-type]
            got.append(result.last_modified)

        src = action.src
        write_atomic(target, fill, mtime=src.mtime if src is not None else None)
        if got and src is not None and int(got[0]) != int(src.mtime):
            # The object changed between LIST and GET: stamp what we actually fetched.
            os.utime(target, (got[0], got[0]))

    failures = list(extra_failures)
    failures += [
        KeyConflictError(key, "is both an object and a prefix with objects under it")
        for key in plan.conflicts
    ]
    failures += run_parallel(executor, copy, plan.copies, window=window)
    if failures:
        raise TransferError("Download", failures)
    if not delete or not plan.deletes:
        return
    delete_failures: list[BaseException] = []
    touched: set[Path] = set()
    for action in plan.deletes:  # deepest first
        try:
            target = safe_join(local_root, action.key)
            if action.key.endswith("/"):
                target.rmdir()
            else:
                target.unlink()
            touched.add(target.parent)
        except FileNotFoundError:
            pass
        except OSError as exc:
            logger.error("failed to delete %r: %s", str(local_root / action.key), exc)
            delete_failures.append(exc)
    _prune_empty_dirs(touched, local_root)
    if delete_failures:
        raise TransferError("Delete", delete_failures)


def _prune_empty_dirs(dirs: Iterable[Path], root: Path) -> None:
    for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        while d != root and root in d.parents:
            try:
                d.rmdir()
            except OSError:
                break
            d = d.parent


def execute_upload(
    plan: Plan,
    *,
    client: S3Client,
    bucket: str,
    key_prefix: str,
    local_root: Path,
    executor: Executor,
    progress: Progress,
    delete: bool,
    window: int,
    limiter: ByteRateLimiter | None = None,
) -> None:
    """Apply an upload plan: put ``local_root / key`` at ``key_prefix + key``.

    Empty local folders become zero-byte directory markers (``key/``). Raises
    TransferError("Upload", ...) for copy failures and TransferError("Delete", ...) for
    per-key DeleteObjects failures; deletes run only when every copy succeeded.
    """

    def on_bytes(n: int) -> None:
        if limiter is not None:
            limiter.consume(n)
        progress.update(n)

    def copy(action: Action) -> None:
        key = key_prefix + action.key
        if action.key.endswith("/"):
            client.put_object(bucket, key, b"")
            return
        path = local_root.joinpath(*action.key.split("/"))
        client.put_object_from_file(bucket, key, path, on_bytes=on_bytes)

    failures: list[BaseException] = [
        KeyConflictError(key, "is both a file and a folder") for key in plan.conflicts
    ]
    failures += run_parallel(executor, copy, plan.copies, window=window)
    if failures:
        raise TransferError("Upload", failures)
    if not delete or not plan.deletes:
        return
    keys = [key_prefix + a.key for a in plan.deletes]
    errors: list[BaseException] = list(client.delete_objects(bucket, keys))
    if errors:
        for err in errors:
            logger.error("failed to delete: %s", err)
        raise TransferError("Delete", errors)
