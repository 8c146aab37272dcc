"""Execute a sync Plan: copies first, deletes only after every copy succeeded.

Rules:

* Every copy, and every part of a large copy, is a task on the mirror's one thread pool, so
  small files and the parts of large files share the workers and a mixed plan keeps every
  worker busy. Workers never wait on other tasks (no deadlock on a bounded pool): the task
  that finishes the last part of a file completes that file.
* Files above ``TransferConfig.multipart_threshold`` are uploaded as multipart uploads whose
  parts are streamed from the file (never read whole into memory); the part size grows so an
  object never needs more than 10,000 parts. On any failure or interruption the multipart
  upload is aborted, so no parts are left orphaned.
* Objects above the threshold are downloaded with parallel ranged GETs written at their
  offsets into one temporary file beside the target, then renamed into place. Every range
  carries ``If-Match`` with the ETag from the listing: an object overwritten mid-download
  fails with 412 and is fetched again from the start, never stitched from two versions.
* Integrity: uploads carry Content-MD5 (the server verifies each request body); downloads
  are checked against the ETag: the MD5 of a single-part object, or the composite
  ``md5(md5(part 1) + ... + md5(part N))-N`` of a multipart object when the ranges line up
  with its parts. A mismatch is retried, then raised; the file never reaches its final path.
* A download's copies are fed one at a time through :class:`DownloadRun` (at most the
  window pending), from a finished plan or while the planner is still reading the listing,
  so memory does not grow with the number of objects; the deletes wait for :meth:`finish`.
  An upload's copies are fed the same way through :class:`UploadRun`.
* Per-file failures are collected, never raised mid-batch, and reported together as one
  :class:`~pos3lite.errors.TransferError` after every task finished. If any copy failed (or
  the plan has conflicts or refused keys), no delete runs.
* Downloads set each file's mtime to the object's LastModified, which is what lets the
  default ``size_mtime`` comparison detect a same-size change on the next run.
* Remote deletes use DeleteObjects in batches of 1000; local deletes remove files and empty
  folders, deepest first, then prune folders the deletes left empty (never the root).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from .engine.model import Action, Entry, Plan, Stamp
from .errors import (
    ChecksumMismatchError,
    KeyConflictError,
    S3Error,
    TransferError,
    TransportError,
)
from .localfs import FolderCache, TempFile, make_dirs, remove, safe_join, write_atomic
from .progress import Progress, add_total, file_done

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from .s3.client import GetResult, S3Client

#: Called by a download worker after a file reached its final path, with the object as
#: actually fetched (key relative to the plan, size, LastModified, ETag) and, for small
#: files, ``stamp``: the written file's :data:`~pos3lite.engine.model.Stamp` taken on its
#: descriptor (``None``: unknown, stat the path).
Downloaded = Callable[[Entry], None]
#: Called by an upload worker after an object was written, with the plan key, the object
#: (size, ETag as returned by PutObject or CompleteMultipartUpload; LastModified 0.0 =
#: unknown) and the local file's ``os.stat_result`` taken *before* it was read.
Uploaded = Callable[[str, Entry, os.stat_result], None]

__all__ = [
    "Batch",
    "ByteRateLimiter",
    "DownloadRun",
    "Downloaded",
    "TransferConfig",
    "UploadRun",
    "Uploaded",
    "execute_download",
    "execute_upload",
]

logger = logging.getLogger(__name__)

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class TransferConfig:
    """Sizes for large transfers, in bytes (defaults as aws-cli: 8 MiB threshold and parts).

    Attributes:
        multipart_threshold: files and objects of at least this many bytes use multipart
            upload / parallel ranged GETs.
        part_size: the preferred part (and range) size; grown for very large files.
    """

    multipart_threshold: int = 8 * MiB
    part_size: int = 8 * MiB

    #: S3 limits ("Amazon S3 multipart upload limits"): 10,000 parts, 5 MiB minimum part
    #: size (except the last), 5 TiB maximum object size.
    MAX_PARTS = 10_000
    MIN_PART = 5 * MiB
    MAX_OBJECT = 5 * 1024 * 1024 * MiB

    def part_size_for(self, size: int) -> int:
        """Part size (bytes) for an upload of ``size`` bytes: ``part_size``, grown in whole
        MiB so the upload needs at most 10,000 parts. Raises ValueError above 5 TiB."""
        if size > self.MAX_OBJECT:
            raise ValueError(f"{size} bytes is more than the 5 TiB S3 object limit")
        part = max(self.part_size, self.MIN_PART)
        if -(-size // part) > self.MAX_PARTS:
            part = -(-size // self.MAX_PARTS)
            part = -(-part // MiB) * MiB
        return part


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


class Batch:
    """A group of tasks on a shared executor; tasks may submit more tasks.

    ``submit`` never blocks; ``wait_below(n)`` blocks the caller until fewer than ``n``
    tasks are pending; ``join`` waits for all. Exceptions are collected in ``failures``
    (each logged). ``cancel()`` makes tasks that check ``cancelled`` stop early.
    """

    def __init__(self, executor: Executor) -> None:
        self._executor = executor
        self._cv = threading.Condition()
        self._pending = 0
        # n -> how many threads wait in wait_below(n): completions wake them only when
        # one can go on (not at every completion: each wake-up is a thread hand-off)
        self._waiting: dict[int, int] = {}
        self.failures: list[BaseException] = []
        self._cancelled = threading.Event()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        self._cancelled.set()

    def fail(self, exc: BaseException) -> None:
        with self._cv:
            self.failures.append(exc)

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        with self._cv:
            self._pending += 1
        try:
            self._executor.submit(self._run, fn, args)
        except BaseException:
            with self._cv:
                self._one_done()
            raise

    def _one_done(self) -> None:
        # Called with the lock held.
        self._pending -= 1
        if self._waiting and self._pending < max(self._waiting):
            self._cv.notify_all()

    def _run(self, fn: Callable[..., None], args: tuple[Any, ...]) -> None:
        try:
            fn(*args)
        except Exception as exc:
            self.fail(exc)
        finally:
            with self._cv:
                self._one_done()

    def feed(self, fn: Callable[[Any], None], item: Any, *, window: int) -> None:
        """Submit ``fn(item)`` unless cancelled, first waiting (as :meth:`run` does) while
        ``window`` tasks are pending; for callers that produce items one at a time."""
        # Only the feeding thread adds to _pending: an unlocked read never understates it.
        if self._pending >= window:
            self.wait_below(window - max(1, window // 4) + 1)
        if not self.cancelled:
            self.submit(fn, item)

    def wait_below(self, n: int) -> None:
        with self._cv:
            if self._pending < n:
                return
            self._waiting[n] = self._waiting.get(n, 0) + 1
            try:
                while self._pending >= n:
                    self._cv.wait()
            finally:
                left = self._waiting.pop(n) - 1
                if left:
                    self._waiting[n] = left

    def join(self) -> None:
        self.wait_below(1)

    def run(self, items: Iterable[Any], fn: Callable[[Any], None], *, window: int) -> None:
        """Submit ``fn(item)`` for each item, at most ``window`` pending, then join.

        When the window is full the caller sleeps until a quarter of it is free, then
        refills it, rather than waking at every completion.
        On KeyboardInterrupt (or any BaseException) while waiting, cancel, let the running
        tasks wind down (so large uploads are aborted), and re-raise.
        """
        step = max(1, window // 4)
        try:
            for item in items:
                # Only this thread adds to _pending: an unlocked read never understates it.
                if self._pending >= window:
                    self.wait_below(window - step + 1)
                if self.cancelled:
                    break
                self.submit(fn, item)
            self.join()
        except BaseException:
            self.cancel()
            self.join()
            raise


class _PartGroup:
    """The parts of one large file, each run as its own pool task.

    Subclasses set ``batch``, ``lock``, ``remaining`` and ``error`` and define
    :meth:`part` (one part's work) and :meth:`finish` (run once, by the task that completes
    the last part, whatever happened). The first part error is kept; later parts are
    skipped once one failed or the batch was cancelled.
    """

    batch: Batch
    lock: threading.Lock
    remaining: int
    error: BaseException | None

    def run_part(self, i: int) -> None:
        try:
            if self.error is None and not self.batch.cancelled:
                self.part(i)
        except Exception as exc:
            with self.lock:
                if self.error is None:
                    self.error = exc
        finally:
            with self.lock:
                self.remaining -= 1
                last_one = self.remaining == 0
            if last_one:
                self.finish()

    def part(self, i: int) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        raise NotImplementedError


# --------------------------------------------------------------------------- download


class _RangedDownload(_PartGroup):
    """One large object fetched with parallel ranged GETs into a temp file (see rules)."""

    RESTARTS = 2  # times an object changed mid-download (412) or mismatched is fetched again
    tmp: TempFile  # made by start(): locked, opened through the target folder's descriptor

    def __init__(
        self,
        batch: Batch,
        client: S3Client,
        bucket: str,
        key: str,
        target: Path,
        src: Entry,
        config: TransferConfig,
        progress: Progress,
        restarts: int = RESTARTS,
        mismatched: list[tuple[int, str]] | None = None,
        on_done: Downloaded | None = None,
    ) -> None:
        self.batch, self.client, self.bucket, self.key = batch, client, bucket, key
        self.target, self.src, self.config, self.progress = target, src, config, progress
        self.restarts = restarts
        self.on_done = on_done
        self.lock = threading.Lock()
        self.error: BaseException | None = None
        self.ranges: list[tuple[int, int]] = []
        self.digests: list[str] = []
        self.encrypted = False
        self.composite = False
        self.remaining = 0
        self.moved = 0
        # (size, md5) of earlier whole-object mismatches, kept across restarts (ETag policy).
        self.mismatched: list[tuple[int, str]] = mismatched if mismatched is not None else []

    def start(self) -> None:
        size, etag = self.src.size, self.src.etag or ""
        part = self.config.part_size_for(size)
        parts_count = _multipart_count(etag)
        lined_up = False
        if parts_count:
            # Line the ranges up with the parts so the composite ETag can be checked. A
            # server that refuses ?partNumber= (an error) or ignores it (no parts count in
            # the answer: ministack, nanio) gets plain ranges, and the download is logged
            # as unverified: a guessed part size could fail every download falsely.
            try:
                part_size, count = self.client.head_part(self.bucket, self.key, 1)
            except S3Error as exc:
                if exc.status in (404, 403):
                    raise
                logger.info("s3://%s/%s: partNumber refused (%s)", self.bucket, self.key, exc)
            else:
                if count == parts_count and part_size > 0 and -(-size // part_size) == count:
                    part, lined_up = part_size, True
        self.ranges = [(off, min(off + part, size) - 1) for off in range(0, size, part)]
        # Per-range MD5s only help when they line up with the parts (composite ETag).
        self.composite = lined_up and len(self.ranges) == parts_count
        self.digests = [""] * len(self.ranges)
        self.remaining = len(self.ranges)
        self.tmp = TempFile(self.target)
        os.ftruncate(self.tmp.fd, size)
        for i in range(len(self.ranges)):
            self.batch.submit(self.run_part, i)

    def on_bytes(self, n: int) -> None:
        with self.lock:
            self.moved += n
        self.progress.update(n)

    def part(self, i: int) -> None:
        first, last = self.ranges[i]
        with self.tmp.reopen() as f:
            f.seek(first)
            got = self.client.get_object(
                self.bucket,
                self.key,
                f,
                if_match=self.src.etag or None,
                byte_range=(first, last),
                on_bytes=self.on_bytes,
                want_md5=self.composite,
            )
        if got.size != last - first + 1:
            raise ChecksumMismatchError(
                f"s3://{self.bucket}/{self.key}",
                f"{last - first + 1} bytes",
                f"{got.size} bytes in range {first}-{last}",
            )
        self.digests[i] = got.md5
        if got.encrypted:
            self.encrypted = True

    def _verify(self) -> None:
        etag = (self.src.etag or "").lower()
        url = f"s3://{self.bucket}/{self.key}"
        if self.encrypted:
            return
        count = _multipart_count(etag)
        if count:
            if not self.composite:
                logger.warning(
                    "%s: downloaded unverified (the server does not tell part sizes, so the "
                    "multipart ETag cannot be checked); size %d bytes as listed",
                    url,
                    self.src.size,
                )
                return
            joined = b"".join(bytes.fromhex(d) for d in self.digests)
            got = f"{hashlib.md5(joined, usedforsecurity=False).hexdigest()}-{count}"
            if got != etag:
                raise ChecksumMismatchError(url, etag, got)
        elif len(etag) == 32:
            md5 = hashlib.md5(usedforsecurity=False)
            with self.tmp.reopen() as f:
                while block := f.read(MiB):
                    md5.update(block)
            if not self.client.check_etag(
                url, etag, self.src.size, md5.hexdigest(), self.mismatched
            ):
                logger.warning("%s: downloaded unverified (ETags here are not MD5s)", url)
        else:
            logger.warning("%s: downloaded unverified (ETag %r is not an MD5)", url, etag)

    def finish(self) -> None:
        try:
            if self.error is None and not self.batch.cancelled:
                self._verify()
                self.tmp.commit(self.src.mtime)  # renamed, then the mtime set
                file_done(self.progress, "download", f"s3://{self.bucket}/{self.key}", self.target)
                if self.on_done is not None:
                    self.on_done(self.src)
                return
        except Exception as exc:
            self.error = exc
        self.tmp.discard()
        if self.moved:
            self.progress.update(-self.moved)
        err = self.error
        if err is None:  # cancelled
            return
        changed = isinstance(err, S3Error) and err.status == 412
        if (changed or isinstance(err, ChecksumMismatchError)) and self.restarts > 0:
            logger.warning(
                "s3://%s/%s changed or mismatched mid-download (%s); fetching again",
                self.bucket,
                self.key,
                err,
            )
            self.batch.submit(self._restart)
            return
        logger.error("failed to download s3://%s/%s: %s", self.bucket, self.key, err)
        self.batch.fail(err)

    def _restart(self) -> None:
        info = self.client.head_object(self.bucket, self.key)
        src = Entry(self.src.key, info.size, info.last_modified, info.etag)
        job = _RangedDownload(
            self.batch,
            self.client,
            self.bucket,
            self.key,
            self.target,
            src,
            self.config,
            self.progress,
            self.restarts - 1,
            self.mismatched,
            self.on_done,
        )
        if src.size >= self.config.multipart_threshold:
            job.start()
        else:
            _download_small(
                self.client,
                self.bucket,
                self.key,
                self.target,
                src,
                self.progress,
                on_done=self.on_done,
            )


def _multipart_count(etag: str) -> int:
    """N for a multipart ETag ``<32 hex>-N``, else 0."""
    head, sep, tail = etag.strip('"').partition("-")
    return int(tail) if sep and len(head) == 32 and tail.isdigit() else 0


def _download_small(
    client: S3Client,
    bucket: str,
    key: str,
    target: Path,
    src: Entry | None,
    progress: Progress,
    *,
    make_parents: bool = True,
    on_done: Downloaded | None = None,
    folders: FolderCache | None = None,
) -> None:
    got: list[tuple[float, str]] = []
    results: list[GetResult] = []

    def fill(f: BinaryIO) -> None:
        res = client.get_object(
            bucket,
            key,
            f,
            on_bytes=progress.update,
            size_hint=src.size if src is not None else None,
        )
        results.append(res)
        got.append((res.last_modified, res.etag))

    st = write_atomic(
        target,
        fill,
        mtime=src.mtime if src is not None else None,
        make_parents=make_parents,
        folders=folders,
    )
    # The stamp of the file we wrote (model.Stamp), from its descriptor: no stat by path.
    stamp: Stamp | None = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
    if got and src is not None and src.etag and got[0][1] and got[0][1] != src.etag:
        # The object changed between LIST and GET (another ETag): stamp what we fetched.
        # Only then: a GET's Last-Modified may differ from the listing's for the same
        # object (rclone), and stamping it would download the file again on every run.
        os.utime(target, (got[0][0], got[0][0]))
        stamp = None  # changed by the utime: on_done stats the path
    file_done(progress, "download", f"s3://{bucket}/{key}", target)
    if on_done is not None and results:
        r = results[0]
        on_done(
            Entry(src.key if src is not None else key, r.size, r.last_modified, r.etag, stamp=stamp)
        )


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
    config: TransferConfig | None = None,
    on_done: Downloaded | None = None,
) -> None:
    """Apply a download plan: fetch ``key_prefix + key`` into ``local_root / key``.

    ``extra_failures`` (e.g. refused unsafe keys) count as failures: they suppress deletes
    and are raised with the copy failures. ``on_done`` is called from the worker for each
    file that reached its final path (see :data:`Downloaded`). Raises
    TransferError("Download", ...) for copy failures, TransferError("Delete", ...) for
    local delete failures.
    """
    run = DownloadRun(
        client=client,
        bucket=bucket,
        key_prefix=key_prefix,
        local_root=local_root,
        executor=executor,
        progress=progress,
        window=window,
        config=config,
        on_done=on_done,
    )
    # Make every parent folder once, here, rather than once per file in the workers.
    run.make_parents(plan.copies)
    run.feed_all(plan.copies)
    run.finish(plan, delete=delete, extra_failures=extra_failures)


class _CopyRun:
    """What :class:`DownloadRun` and :class:`UploadRun` share: the copies of one plan fed
    one at a time into the shared pool through a bounded window (memory holds at most the
    window's actions), counted as they are fed, never raised mid-run (each failure is
    collected by the :class:`Batch`), then waited for.

    :meth:`copy` blocks while ``window`` tasks are pending; with ``count_total`` it adds the
    action's source size (bytes) to the progress total (:func:`~pos3lite.progress.add_total`),
    so the bar's total grows with the listing or the walk. :meth:`feed_all` feeds a whole
    sequence and, if feeding stops on an error (KeyboardInterrupt included), aborts the run
    before re-raising. :meth:`abort` cancels and waits for the running tasks.
    """

    def __init__(
        self,
        *,
        client: S3Client,
        bucket: str,
        key_prefix: str,
        local_root: Path,
        executor: Executor,
        progress: Progress,
        window: int,
        config: TransferConfig | None,
        count_total: bool,
    ) -> None:
        self.client, self.bucket, self.key_prefix = client, bucket, key_prefix
        self.local_root, self.progress, self.window = local_root, progress, window
        self.config = config or TransferConfig()
        self.count_total = count_total
        self.batch = Batch(executor)
        #: copies fed so far, and the sum of their sources' sizes (bytes)
        self.fed = 0
        self.total = 0

    def copy(self, action: Action) -> None:
        """Feed one copy (blocks while the window is full)."""
        if action.src is not None and action.src.size:
            self.total += action.src.size
            if self.count_total:
                add_total(self.progress, action.src.size)
        self.fed += 1
        self.batch.feed(self._copy, action, window=self.window)

    def _copy(self, action: Action) -> None:
        raise NotImplementedError

    def feed_all(self, actions: Iterable[Action]) -> None:
        """Feed every action; on any error while feeding, :meth:`abort` and re-raise."""
        try:
            for action in actions:
                self.copy(action)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Feeding stopped on an error: cancel and let the running tasks wind down."""
        self.batch.cancel()
        self.batch.join()

    def join(self) -> None:
        """Wait for every copy fed so far (more may be fed afterwards)."""
        try:
            self.batch.join()
        except BaseException:
            self.abort()
            raise


class DownloadRun(_CopyRun):
    """One download's copies fed one at a time (from a finished plan or while the planner
    still merges the listings), then :meth:`finish` (failures, deletes).

    :meth:`copy` submits an action to the shared pool, blocking while ``window`` tasks are
    pending, so memory holds at most the window's actions, whatever the number of objects;
    it makes the file's parent folder first (once per folder) and, with ``count_total``,
    adds the object's size (bytes) to the progress total
    (:func:`~pos3lite.progress.add_total`), so the bar's total grows with the listing.
    Copies are never raised mid-run: each failure is collected. Call :meth:`finish` once
    every copy was fed, or :meth:`abort` when feeding stopped on an
    error (cancel, wait for the running tasks, release the folder descriptors).
    """

    def __init__(
        self,
        *,
        client: S3Client,
        bucket: str,
        key_prefix: str,
        local_root: Path,
        executor: Executor,
        progress: Progress,
        window: int,
        config: TransferConfig | None = None,
        on_done: Downloaded | None = None,
        count_total: bool = False,
    ) -> None:
        super().__init__(
            client=client,
            bucket=bucket,
            key_prefix=key_prefix,
            local_root=local_root,
            executor=executor,
            progress=progress,
            window=window,
            config=config,
            count_total=count_total,
        )
        self.on_done = on_done
        # Small files share their folders' descriptors instead of opening the path per file.
        self.folders = FolderCache()
        self._made: set[Path] = set()  # parent folders made (one entry per folder)
        self._closed = False

    def make_parents(self, actions: Iterable[Action]) -> None:
        """Make the parent folders of ``actions`` (shallowest first), once each."""
        parents = {
            safe_join(self.local_root, a.key).parent for a in actions if not a.key.endswith("/")
        }
        for folder in sorted(parents, key=lambda p: len(p.parts)):
            self._make(folder)

    def _make(self, folder: Path) -> None:
        self._made.add(folder)
        # A file or symlink in the way makes that file's copy fail, reported there.
        with contextlib.suppress(OSError, ValueError):
            make_dirs(folder)  # never through a symlinked folder

    def copy(self, action: Action) -> None:
        """Feed one copy (blocks while the window is full)."""
        if not action.key.endswith("/"):
            try:
                parent = safe_join(self.local_root, action.key).parent
            except ValueError:
                parent = None  # the worker's own safe_join fails this key alone
            if parent is not None and parent not in self._made:
                self._make(parent)
        super().copy(action)

    def _copy(self, action: Action) -> None:
        target = safe_join(self.local_root, action.key)
        if action.key.endswith("/"):
            make_dirs(target)  # never through a symlinked folder
            return
        src = action.src
        key = self.key_prefix + action.key
        try:
            if src is not None and src.size >= self.config.multipart_threshold:
                _RangedDownload(
                    self.batch,
                    self.client,
                    self.bucket,
                    key,
                    target,
                    src,
                    self.config,
                    self.progress,
                    on_done=self.on_done,
                ).start()
            else:
                _download_small(
                    self.client,
                    self.bucket,
                    key,
                    target,
                    src,
                    self.progress,
                    make_parents=False,
                    on_done=self.on_done,
                    folders=self.folders,
                )
        except Exception as exc:
            logger.error("failed to download s3://%s/%s: %s", self.bucket, key, exc)
            raise

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            self.folders.close()

    def abort(self) -> None:
        """Feeding stopped on an error: cancel, let running tasks wind down, clean up."""
        try:
            super().abort()
        finally:
            self._close()

    def finish(
        self, plan: Plan, *, delete: bool, extra_failures: Sequence[BaseException] = ()
    ) -> None:
        """Wait for every copy; raise the failures (with ``extra_failures`` and the plan's
        conflicts) as TransferError("Download", ...); only when there are none, apply the
        plan's deletes (TransferError("Delete", ...) for local delete failures)."""
        try:
            self.batch.join()
        except BaseException:
            self.abort()
            raise
        self._close()
        failures = list(extra_failures)
        failures += [
            KeyConflictError(key, "is both an object and a prefix with objects under it")
            for key in plan.conflicts
        ]
        failures += self.batch.failures
        if failures:
            raise TransferError("Download", failures)
        if delete and plan.deletes:
            _delete_local(plan.deletes, self.local_root, self.progress)


def _delete_local(deletes: Iterable[Action], local_root: Path, progress: Progress) -> None:
    delete_failures: list[BaseException] = []
    touched: set[Path] = set()
    for action in deletes:  # deepest first
        try:
            target = safe_join(local_root, action.key)
            if action.key.endswith("/"):
                remove(target, folder=True)  # never through a symlinked folder
            else:
                remove(target)
                file_done(progress, "delete", str(target))
            touched.add(target.parent)
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:  # ValueError: UnsafeKeyError (symlink)
            logger.error("failed to delete %r: %s", str(local_root / action.key), exc)
            delete_failures.append(exc)
    _prune_empty_dirs(touched, local_root)
    if delete_failures:
        raise TransferError("Delete", delete_failures)


def _prune_empty_dirs(dirs: Iterable[Path], root: Path) -> None:
    for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        while d != root and root in d.parents:
            try:
                remove(d, folder=True)
            except (OSError, ValueError):
                break
            d = d.parent


# --------------------------------------------------------------------------- upload


class _MultipartUpload(_PartGroup):
    """One large file uploaded as a multipart upload, parts as pool tasks (see rules)."""

    def __init__(
        self,
        batch: Batch,
        client: S3Client,
        bucket: str,
        key: str,
        path: Path,
        size: int,
        config: TransferConfig,
        on_bytes: Callable[[int], None],
        progress: Progress | None = None,
        on_complete: Callable[[str], None] | None = None,
    ) -> None:
        self.batch, self.client, self.bucket, self.key = batch, client, bucket, key
        self.progress = progress
        self.path, self.size, self.on_bytes = path, size, on_bytes
        self.on_complete = on_complete
        self.part_size = config.part_size_for(size)
        self.count = -(-size // self.part_size)
        self.etags: list[str] = [""] * self.count
        self.lock = threading.Lock()
        self.remaining = self.count
        self.error: BaseException | None = None
        self.upload_id = ""

    def start(self) -> None:
        self.upload_id = self.client.create_multipart_upload(self.bucket, self.key)
        submitted = 0
        try:
            for i in range(self.count):
                self.batch.submit(self.run_part, i)
                submitted += 1
        except BaseException:
            # Parts never submitted will never finish the group: abort here, since an
            # UploadId was obtained (the parts already running see the error and stop).
            with self.lock:
                self.error = self.error or RuntimeError("could not schedule every part")
                self.remaining -= self.count - submitted
                last_one = self.remaining == 0
            if last_one:
                self.finish()
            else:
                self._abort()
            raise

    def part(self, i: int) -> None:
        offset = i * self.part_size
        length = min(self.part_size, self.size - offset)
        if _PART_MEMORY.take(length):
            # Read once: hashed (Content-MD5, payload SHA-256) and sent from one buffer.
            try:
                data = _read_part(self.path, offset, length)
                self.etags[i] = self.client.upload_part_bytes(
                    self.bucket, self.key, self.upload_id, i + 1, data, on_bytes=self.on_bytes
                )
            finally:
                _PART_MEMORY.give(length)
            return
        # Over the memory budget: stream from the file (read once to hash, once to send).
        self.etags[i] = self.client.upload_part(
            self.bucket,
            self.key,
            self.upload_id,
            i + 1,
            self.path,
            offset,
            length,
            on_bytes=self.on_bytes,
        )

    def finish(self) -> None:
        if self.error is None and not self.batch.cancelled:
            try:
                parts = [(i + 1, e) for i, e in enumerate(self.etags)]
                etag = self.client.complete_multipart_upload(
                    self.bucket, self.key, self.upload_id, parts
                )
                file_done(self.progress, "upload", self.path, f"s3://{self.bucket}/{self.key}")
                if self.on_complete is not None:
                    self.on_complete(etag)
                return
            except Exception as exc:
                self.error = exc
        self._abort()
        if self.error is not None:
            logger.error("failed to upload s3://%s/%s: %s", self.bucket, self.key, self.error)
            self.batch.fail(self.error)

    def _abort(self) -> None:
        try:
            self.client.abort_multipart_upload(self.bucket, self.key, self.upload_id)
        except Exception as exc:
            logger.error(
                "could not abort multipart upload %s of s3://%s/%s: %s",
                self.upload_id,
                self.bucket,
                self.key,
                exc,
            )


class _ByteBudget:
    """A process-wide cap (bytes) on part buffers held in memory at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._used = 0
        self._lock = threading.Lock()

    def take(self, n: int) -> bool:
        """Reserve ``n`` bytes if they fit; False (nothing reserved) if they do not."""
        with self._lock:
            if self._used + n > self.limit:
                return False
            self._used += n
            return True

    def give(self, n: int) -> None:
        with self._lock:
            self._used -= n


#: Multipart parts read into memory at once: each such part is read from the file once,
#: hashed and sent from the same buffer. 32 MiB (four default 8 MiB parts) keeps a large
#: upload's peak RSS near 64 MiB; parts beyond it stream from the file as before.
_PART_MEMORY = _ByteBudget(32 * MiB)


def _read_part(path: Path, offset: int, length: int) -> bytes:
    """``length`` bytes of ``path`` from ``offset``. Raises OSError naming the file if it
    shrank under us."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.pread(fd, length, offset)
        if len(data) < length:
            chunks = [data]
            got = len(data)
            while got < length:
                more = os.pread(fd, length - got, offset + got)
                if not more:
                    raise OSError(f"file shrank while uploading it: {os.fsdecode(path)!r}")
                chunks.append(more)
                got += len(more)
            data = b"".join(chunks)
        return data
    finally:
        os.close(fd)


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
    config: TransferConfig | None = None,
    extra_failures: Sequence[BaseException] = (),
    on_done: Uploaded | None = None,
) -> None:
    """Apply an upload plan: put ``local_root / key`` at ``key_prefix + key``.

    ``extra_failures`` (keys that failed at plan time) count as copy failures: they
    suppress deletes and are raised with them. ``on_done`` is called from the worker for
    each file whose object was written (see :data:`Uploaded`).

    Empty local folders become zero-byte directory markers (``key/``). Raises
    TransferError("Upload", ...) for copy failures and TransferError("Delete", ...) for
    per-key DeleteObjects failures; deletes run only when every copy succeeded.
    """
    run = UploadRun(
        client=client,
        bucket=bucket,
        key_prefix=key_prefix,
        local_root=local_root,
        executor=executor,
        progress=progress,
        window=window,
        limiter=limiter,
        config=config,
        on_done=on_done,
    )
    run.feed_all(plan.copies)
    run.finish(plan, delete=delete, extra_failures=extra_failures)


class UploadRun(_CopyRun):
    """One upload's copies fed one at a time (from a finished plan or while the planner
    still merges the local walk, the listing and the sync state), then :meth:`finish`
    (failures, then the remote deletes).

    :meth:`copy` submits an action to the shared pool, blocking while ``window`` tasks are
    pending, so memory holds at most the window's actions, whatever the number of files;
    with ``count_total`` it adds the file's size (bytes, as walked) to the progress total
    (:func:`~pos3lite.progress.add_total`), so the bar's total grows with the walk.
    Copies are never raised mid-run: each failure is collected. Call :meth:`finish` once
    every copy was fed, or :meth:`abort` when feeding stopped on an error (cancel, and wait
    for the running tasks: a multipart upload cut short is aborted by its own task).
    """

    def __init__(
        self,
        *,
        client: S3Client,
        bucket: str,
        key_prefix: str,
        local_root: Path,
        executor: Executor,
        progress: Progress,
        window: int,
        limiter: ByteRateLimiter | None = None,
        config: TransferConfig | None = None,
        on_done: Uploaded | None = None,
        count_total: bool = False,
    ) -> None:
        super().__init__(
            client=client,
            bucket=bucket,
            key_prefix=key_prefix,
            local_root=local_root,
            executor=executor,
            progress=progress,
            window=window,
            config=config,
            count_total=count_total,
        )
        self.limiter = limiter
        self.on_done = on_done

    def _on_bytes(self, n: int) -> None:
        if self.limiter is not None:
            self.limiter.consume(n)
        self.progress.update(n)

    def _copy(self, action: Action) -> None:
        bucket, key = self.bucket, self.key_prefix + action.key
        try:
            if action.key.endswith("/"):
                self.client.put_object(bucket, key, b"")
                return
            path = self.local_root.joinpath(*action.key.split("/"))
            before = path.stat()
            size = before.st_size
            on_done = self.on_done

            def done(etag: str) -> None:
                if on_done is not None:
                    on_done(action.key, Entry(action.key, size, 0.0, etag), before)

            if size >= self.config.multipart_threshold:
                _MultipartUpload(
                    self.batch,
                    self.client,
                    bucket,
                    key,
                    path,
                    size,
                    self.config,
                    self._on_bytes,
                    self.progress,
                    done,
                ).start()
            else:
                done(self.client.put_object_from_file(bucket, key, path, on_bytes=self._on_bytes))
                file_done(self.progress, "upload", path, f"s3://{bucket}/{key}")
        except Exception as exc:
            logger.error("failed to upload %r to s3://%s/%s: %s", action.key, bucket, key, exc)
            raise

    def finish(
        self, plan: Plan, *, delete: bool, extra_failures: Sequence[BaseException] = ()
    ) -> None:
        """Wait for every copy; raise the failures (with ``extra_failures`` and the plan's
        conflicts) as TransferError("Upload", ...); only when there are none and ``delete``,
        remove the plan's deletes with DeleteObjects (TransferError("Delete", ...) for a
        failed batch or per-key failures)."""
        self.join()
        failures: list[BaseException] = list(extra_failures)
        failures += [KeyConflictError(key, "is both a file and a folder") for key in plan.conflicts]
        failures += self.batch.failures
        if failures:
            raise TransferError("Upload", failures)
        if delete and plan.deletes:
            _delete_remote(self.client, self.bucket, self.key_prefix, plan.deletes, self.progress)


def _delete_remote(
    client: S3Client, bucket: str, key_prefix: str, deletes: Iterable[Action], progress: Progress
) -> None:
    keys = [key_prefix + a.key for a in deletes]
    try:
        errors: list[BaseException] = list(client.delete_objects(bucket, keys))
    except (S3Error, TransportError) as exc:
        # A whole DeleteObjects batch failed: the same shape as per-key failures.
        logger.error("failed to delete under s3://%s/%s: %s", bucket, key_prefix, exc)
        raise TransferError("Delete", [exc]) from exc
    failed = {getattr(err, "key", None) for err in errors}
    for key in keys:
        if key not in failed:
            file_done(progress, "delete", f"s3://{bucket}/{key}")
    if errors:
        for err in errors:
            logger.error("failed to delete: %s", err)
        raise TransferError("Delete", errors)


def download_object(
    client: S3Client,
    bucket: str,
    key: str,
    target: Path,
    src: Entry,
    *,
    executor: Callable[[], Executor],
    progress: Progress,
    config: TransferConfig | None = None,
) -> None:
    """Download one object to ``target`` (ranged and parallel when large).

    ``executor`` returns the pool, made on first use: a small object is fetched in the
    calling thread and needs none.

    Raises TransferError("Download", [...]) if it fails; ``target`` is untouched then.
    """
    cfg = config or TransferConfig()
    if src.size < cfg.multipart_threshold:
        # One request: run it here rather than on the pool (no thread hand-off).
        try:
            _download_small(client, bucket, key, target, src, progress)
        except Exception as exc:
            raise TransferError("Download", [exc]) from exc
        return
    batch = Batch(executor())

    def copy(_: object) -> None:
        _RangedDownload(batch, client, bucket, key, target, src, cfg, progress).start()

    batch.run([None], copy, window=1)
    if batch.failures:
        raise TransferError("Download", batch.failures)


def upload_file(
    client: S3Client,
    bucket: str,
    key: str,
    path: Path,
    *,
    executor: Callable[[], Executor],
    progress: Progress,
    limiter: ByteRateLimiter | None = None,
    config: TransferConfig | None = None,
) -> str:
    """Upload one file to ``key`` (multipart and parallel when large); return the ETag that
    PutObject or CompleteMultipartUpload returned (no quotes).

    ``executor`` returns the pool, made on first use: a small file is sent from the calling
    thread and needs none.

    Raises TransferError("Upload", [...]) if it fails (a multipart upload is aborted).
    """
    cfg = config or TransferConfig()

    def on_bytes(n: int) -> None:
        if limiter is not None:
            limiter.consume(n)
        progress.update(n)

    size = path.stat().st_size
    if size < cfg.multipart_threshold:
        try:
            etag = client.put_object_from_file(bucket, key, path, on_bytes=on_bytes)
        except Exception as exc:
            raise TransferError("Upload", [exc]) from exc
        file_done(progress, "upload", path, f"s3://{bucket}/{key}")
        return etag

    batch = Batch(executor())
    etags: list[str] = []

    def copy(_: object) -> None:
        _MultipartUpload(
            batch, client, bucket, key, path, size, cfg, on_bytes, progress, etags.append
        ).start()

    batch.run([None], copy, window=1)
    if batch.failures:
        raise TransferError("Upload", batch.failures)
    return etags[0] if etags else ""
