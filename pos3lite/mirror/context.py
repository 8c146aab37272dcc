"""The mirror context: lifecycle, registrations, background uploads, exit policy, signals.

One mirror is active per process at a time (as in pos3 0.4.0); it is found through a
ContextVar first and a process-wide fallback second, so threads started inside the context
(including executor threads that do not inherit context variables) see it.

Lifecycle: ``State.UNOPENED -> OPENED -> CLOSED``; illegal transitions raise.

Exit policy (pos3's; see ``policy.py`` for the table): a normal end, ``KeyboardInterrupt``
and any ``SystemExit`` run every registered upload; only an ``Exception`` skips the
registrations without ``sync_on_error=True``, each named in a WARNING. While a mirror is
active in the main thread and SIGTERM has its default action, SIGTERM raises
``SystemExit(143)`` so the final sync runs (``mirror(handle_sigterm=False)`` opts out).

Sync state (``state.py``): every transfer and verification is recorded per registration
and key, so later runs decide from what was last in sync (three-way for ``sync``; see
``engine/threeway.py``). Background ticks and flushes are incremental between full listings
(``policy.lists_in_full``, ``ticks.py``): a tick with no local change sends no request.
``compare="checksum"`` hashes a local file once while it is unchanged (``md5cache.py``).

Safety rules (where pos3 loses data, see docs/pos3-differences.md):

* a download whose URL matches no object and no key raises RemoteNotFoundError instead of
  deleting the local copy; a source that lists nothing never deletes a file that was never
  in sync;
* deletes run only after every copy succeeded and only from complete listings; background
  ticks and :func:`flush` upload only, deletes wait for the final sync;
* keys that would land outside the destination are refused and named;
* local folders of registrations where one uploads never overlap (in this process and
  across processes sharing the cache root).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import enum
import functools
import gc
import itertools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import pos3lite.mirror.policy as policy
import pos3lite.mirror.scan as scan_module

from ..engine import diff as engine_diff
from ..engine.compact import KeyList, PairList, StrList
from ..engine.compare import make_compare
from ..engine.filters import Filter
from ..engine.model import Action, Entry, Plan, Reason, Stamp, Synced
from ..engine.threeway import Direction
from ..errors import (
    AccessDeniedError,
    ConfigError,
    KeyConflictError,
    MirrorStateError,
    NotFoundError,
    Pos3liteError,
    RemoteNotFoundError,
    TransferError,
)
from ..keys import CollisionSieve, collisions, conflict_errors
from ..localfs import (
    DEFAULT_CACHE_ROOT,
    Walk,
    default_cache_root,
    ensure_cache_root,
    iter_stamps,
    iter_walk,
    remove,
    remove_stale_temps,
    safe_join,
    walk,
)
from ..profiles import Profile, effective_profile, resolve_profile
from ..progress import Progress, make_progress
from ..s3.factory import ClientCache
from ..s3.listing import ListingOrderError
from ..transfer import (
    ByteRateLimiter,
    DownloadRun,
    TransferConfig,
    UploadRun,
    download_object,
    upload_file,
)
from ..urls import S3URL, check_local_path, is_s3_url, parse_s3_url
from .md5cache import Md5Cache
from .registry import Claim, Registry, overlaps
from .scan import RemoteScan, UnsortedListing, anchored, scan_remote
from .scheduler import Scheduler
from .state import META_DIR, SyncState, registration_name
from .streams import BaseView, GrowingFilter, LocalStream, Peek, markers_as_folders
from .ticks import FoldScreen, fold_name, local_changes, next_dirs

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from ..localfs.watch import Changes, Watcher
    from ..s3.client import S3Client

__all__ = [
    "DEFAULT_CACHE_ROOT",
    "TransferPlan",
    "default_cache_root",
    "download",
    "flush",
    "ls",
    "mirror",
    "plan_download",
    "plan_upload",
    "sync",
    "upload",
    "with_mirror",
]

logger = logging.getLogger("pos3lite")

#: Longest wait (seconds) of the background thread between looks at the timetable.
TICK_SECONDS = 1.0
#: Seconds ``mirror`` exit waits for a running background sync to finish.
JOIN_SECONDS = 60.0

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class TransferPlan:
    """What a download or upload would do (pos3-compatible).

    ``to_copy`` is a sequence of ``(source, destination)`` string pairs: an ``s3://bucket/key``
    URL and a local path, in transfer direction; ``to_delete`` lists the destination paths or
    URLs that ``delete=True`` would remove. Only files are listed (no folders or markers).

    Both behave as the lists they were in pos3 (``len``, iteration, indexing, ``==`` with a
    list), but :meth:`plan_download` fills them with compact read-only sequences
    (:class:`~pos3lite.engine.compact.PairList`, :class:`~pos3lite.engine.compact.StrList`)
    that make each pair or path when it is read, so a plan of millions of files costs its
    keys' bytes, not two strings and a tuple per file; ``list(plan.to_copy)`` gives a list.
    """

    to_copy: Sequence[tuple[str, str]]
    to_delete: Sequence[str]


class State(enum.Enum):
    """Lifecycle of a mirror."""

    UNOPENED = "unopened"
    OPENED = "opened"
    CLOSED = "closed"


_GC_LOCK = threading.Lock()
_GC_HOLDS = 0
_GC_WAS_ENABLED = False


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while listings, the sync state and plans are
    built. They are large and acyclic (tuples, Entries, dicts), so reference counting frees
    them all, but every collection pass would walk each of them: at 10,000 keys that was
    all of the CPU a no-op resync gained from the sync state. Nested and concurrent callers
    share one pause; the collector's earlier state comes back when the last one leaves."""
    global _GC_HOLDS, _GC_WAS_ENABLED
    with _GC_LOCK:
        if _GC_HOLDS == 0:
            _GC_WAS_ENABLED = gc.isenabled()
            gc.disable()
        _GC_HOLDS += 1
    try:
        yield
    finally:
        with _GC_LOCK:
            _GC_HOLDS -= 1
            if _GC_HOLDS == 0 and _GC_WAS_ENABLED:
                gc.enable()


@dataclass
class _Download:
    url: str
    local_path: Path
    delete: bool
    exclude: tuple[str, ...]
    profile: Profile | None
    ready: threading.Event = field(default_factory=threading.Event, compare=False)
    error: BaseException | None = field(default=None, compare=False)
    claim: Claim | None = field(default=None, compare=False)


@dataclass
class _Upload:
    url: str
    raw: S3URL = field(compare=False)
    local_path: Path
    interval: float | None
    delete: bool
    sync_on_error: bool
    exclude: tuple[str, ...]
    profile: Profile | None
    follow_symlinks: bool = False
    claim: Claim | None = field(default=None, compare=False)
    # Incremental passes (policy.lists_in_full): ticks since the last full listing in this
    # mirror (None: never listed), whether the last pass failed, and the empty local folders
    # known to exist on S3 after the last successful pass (marker or keys under them).
    passes: int | None = field(default=None, compare=False)
    failed: bool = field(default=False, compare=False)
    dirs: frozenset[str] = field(default=frozenset(), compare=False)
    # Change notification (ticks.py, localfs/watch.py): the inotify watcher started by the
    # first tick, and whether inotify proved unavailable for this registration.
    watcher: Watcher | None = field(default=None, compare=False)
    watch_off: bool = field(default=False, compare=False)
    # The folded names of the registration's records, for planning a tick's changed keys
    # without every record (ticks.py); None: read again at the next tick with a change.
    folds: FoldScreen | None = field(default=None, compare=False)


def _state_name(url: str, profile: Profile | None, local: Path) -> str:
    return registration_name(profile.local_name if profile else "_", url, local)


#: The recorded stamp of a file that changed while it was uploaded (matches no real file).
_UNSYNCED: Stamp = (-1, -1, -1, -1)


def _stamp(st: os.stat_result) -> Stamp:
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


class _Recorder:
    """Collects sync-state records from transfer workers (thread-safe), written in one
    transaction by :meth:`flush`."""

    def __init__(self, state: SyncState, name: str, root: Path, *, enabled: bool = True) -> None:
        self.state, self.name, self.root = state, name, root
        self.enabled = enabled
        self._lock = threading.Lock()
        self._puts: list[tuple[str, Synced]] = []

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/")) if key else self.root

    def put(self, key: str, record: Synced) -> None:
        with self._lock:
            self._puts.append((key, record))

    def downloaded(self, key: str, obj: Entry) -> None:
        """A download of ``key`` reached its final path: record it with the new stamp
        (``obj.stamp``, the written file's, when the writer gave it; else a stat)."""
        stamp = obj.stamp
        if stamp is None:
            try:
                stamp = _stamp(os.stat(self._path(key), follow_symlinks=False))
            except OSError:
                return
        self.put(key, Synced(stamp, obj.etag, obj.size, obj.mtime))

    def uploaded(self, key: str, obj: Entry, before: os.stat_result) -> None:
        """An upload of ``key`` was written; record it only if the file did not change
        while it was read (stat before == stat after)."""
        try:
            after = os.stat(self._path(key))
        except OSError:
            return
        if _stamp(after) != _stamp(before):
            logger.warning(
                "%s changed while it was uploaded; it will be uploaded again next time",
                self._path(key),
            )
            # The object is ours but the local file is not in sync with it: a stamp no
            # file has, so every later decision sees "changed locally" (and a sync keeps
            # the local file rather than adopting the object by its timestamp).
            self.put(key, Synced(_UNSYNCED, obj.etag or None, obj.size, obj.mtime))
            return
        self.put(key, Synced(_stamp(after), obj.etag or None, obj.size, obj.mtime))

    def discard(self, keys: set[str]) -> None:
        """Drop the records not yet written for ``keys``."""
        if keys:
            with self._lock:
                self._puts = [(k, r) for k, r in self._puts if k not in keys]

    def adopt(self, actions: Sequence[Action], *, local_is_src: bool) -> None:
        for a in actions:
            loc, rem = (a.src, a.dst) if local_is_src else (a.dst, a.src)
            if loc is None or rem is None or loc.stamp is None:
                continue
            self.put(a.key, Synced(loc.stamp, rem.etag, rem.size, rem.mtime))

    def flush(self, forget: Iterable[str] = ()) -> None:
        with self._lock:
            puts, self._puts = self._puts, []
        if self.enabled:
            self.state.update(self.name, puts, forget)


class _StreamedCopies:
    """The copies of a plain download, started while the planner still merges the listing
    and the walk (``engine.diff.plan(on_copy=...)``): memory holds the pool's window of
    actions, not one per object, and the progress total grows as copies are decided.

    The safety rules are :class:`~pos3lite.transfer.DownloadRun`'s: deletes are collected
    by the planner and run only after the whole listing was read and every copy succeeded;
    failures are collected and raised together. Case-fold / Unicode-normalisation twins
    (``README.md`` and ``Readme.md``) are only known once every key was seen, and neither
    twin may be touched, so only a copy that creates a new file streams (nothing at its
    path, checked with ``lstat``: on a case-insensitive folder a twin's file answers
    too); copies that replace a local file are held (a resync's changed files: few) and
    run once the plan is complete. When the plan then finds twins, the new files this run
    streamed for them are removed again, so the folder ends as it was.

    The download phase of a two-way sync streams too: the three-way rules decide each key
    as the merge passes it (``engine.threeway.decide``), and the copies that replace a local
    version (kept aside under the cache root first) are among the held ones. The fallbacks
    (out-of-order stores, checksum comparison, possible collisions) plan from complete
    lists; the copies streamed before a fallback was needed are waited for first (they then
    compare equal), and the held ones are dropped (re-planned).
    """

    def __init__(
        self, mirror: _Mirror, client: S3Client, url: S3URL, reg: _Download, rec: _Recorder
    ) -> None:
        self.mirror, self.client, self.url, self.reg, self.rec = mirror, client, url, reg, rec
        self.run: DownloadRun | None = None
        self.held: list[Action] = []
        self.created = KeyList()  # keys of the new files streamed (compact)

    def begin(self, scan: RemoteScan) -> Callable[[Action], None]:
        """The listing found a prefix: make the folder and return the copy callback."""
        m, target = self.mirror, self.reg.local_path
        if scan.found:  # (a sync whose remote is gone copies nothing: no folder made)
            ensure_cache_root(m.cache_root, target)
            target.mkdir(parents=True, exist_ok=True)
        if self.run is None:
            progress = make_progress(
                m.show_progress, 0, f"Downloading {self.url.normalized()}", grows=True
            )
            self.run = m._download_run(
                self.client, self.url, scan, target, progress, self.rec, count=True
            )
        return self.copy

    def copy(self, action: Action) -> None:
        assert self.run is not None
        key = action.key
        if action.dst is not None or os.path.lexists(
            self.reg.local_path.joinpath(*key.rstrip("/").split("/"))
        ):
            self.held.append(action)
            return
        if not key.endswith("/"):
            self.created.append(key)
        self.run.copy(action)

    def settle(self) -> None:
        """A fallback plans again from complete lists: wait for the copies fed so far and
        forget the held ones (the new plan decides them again)."""
        self.held.clear()
        if self.run is not None:
            self.run.join()

    def undo_twins(self, keys: Iterable[str]) -> None:
        """Remove the new files this run streamed for keys that turned out to be twins
        (``keys``: every key of both sides of the fallback plan)."""
        if not len(self.created):
            return
        twins = {k for pair in collisions(keys) for k in pair}
        undone = {key for key in self.created if key in twins}
        for key in undone:
            with contextlib.suppress(OSError, ValueError):
                remove(safe_join(self.reg.local_path, key))
        self.rec.discard(undone)  # never recorded as in sync: the file is gone again

    def abort(self) -> None:
        """Planning failed: stop the copies, record those that finished, close the bar."""
        if self.run is not None:
            try:
                self.run.abort()
            finally:
                self.run.progress.close()
                self.rec.flush()


class _StreamedUploads:
    """The copies of an upload pass, started while the planner still merges the local walk,
    the remote listing and the sync state (``engine.diff.plan(on_copy=...)``): the pool
    starts sending while the walk and the listing are read, memory holds the pool's window
    of actions, and the progress total grows as copies are decided.

    The safety rules are :class:`~pos3lite.transfer.UploadRun`'s: deletes are collected by
    the planner and run only after the whole listing was read and every copy succeeded
    (never from a failed or partial listing); failures are collected and raised together.
    Case-fold / Unicode-normalisation twins (``README.md`` and ``Readme.md``) are only known
    once every key was seen, and neither twin may be touched, so only a copy that creates a
    new object streams (no object at its key in the listing); copies that replace an
    object (a resync's changed files: few) are held and run once the plan is complete.
    When the plan then finds twins, the objects this pass created for them are deleted
    again (they were made from local files that stay), so the prefix ends as it was.

    The fallbacks (a listing out of byte order, possible collisions) plan again from
    complete lists: the copies streamed before are waited for and recorded in the sync
    state first (so the new plan skips them), and the held ones are dropped (re-planned).
    Checksum comparison hashes the local files first and does not stream. The run (and its
    progress bar) is made at the first copy, so a pass with nothing to send shows no bar.
    """

    def __init__(
        self,
        mirror: _Mirror,
        client: S3Client,
        url: S3URL,
        reg: _Upload,
        key_prefix: str,
        rec: _Recorder,
        *,
        folder_markers: bool,
    ) -> None:
        self.mirror, self.client, self.url, self.reg, self.rec = mirror, client, url, reg, rec
        self.key_prefix = key_prefix
        self.folder_markers = folder_markers
        self.run: UploadRun | None = None
        self.held: list[Action] = []
        self.created = KeyList()  # keys of the objects this pass created (compact)

    def copy(self, action: Action) -> None:
        """The planner's ``on_copy``: start a new object's upload, hold the others."""
        key = action.key
        if key.endswith("/") and not self.folder_markers:
            return
        if action.dst is not None:
            self.held.append(action)
            return
        if self.run is None:
            m = self.mirror
            progress = make_progress(m.show_progress, 0, f"Uploading {self.reg.url}", grows=True)
            self.run = m._upload_run(
                self.client, self.url, self.key_prefix, self.reg.local_path, progress, self.rec
            )
            self.run.count_total = True
        self.created.append(key)
        self.run.copy(action)

    def settle(self) -> None:
        """A fallback plans again from complete lists: wait for the copies fed so far and
        record them (so the new plan skips them: an upload's size-and-mtime comparison
        alone would send a file written in the same second again), and forget the held
        ones (the new plan decides them again)."""
        self.held.clear()
        if self.run is not None:
            self.run.join()
            self.rec.flush()

    def undo_twins(self, keys: Iterable[str]) -> None:
        """Delete the objects this pass created for keys that turned out to be twins
        (``keys``: every key of both sides of the fallback plan)."""
        if not len(self.created):
            return
        twins = {k for pair in collisions(keys) for k in pair}
        undone = sorted(key for key in self.created if key in twins)
        if not undone:
            return
        bucket, prefix = self.url.bucket, self.key_prefix
        try:
            errors: list[BaseException] = list(
                self.client.delete_objects(bucket, [prefix + k for k in undone])
            )
        except Pos3liteError as exc:  # the whole DeleteObjects request failed
            errors = [exc]
        for err in errors:
            logger.error("could not delete the twin uploaded before it was found: %s", err)
        # Never recorded as in sync: the object is gone again (settle() wrote the records).
        self.rec.discard(set(undone))
        self.rec.flush(forget=undone)

    def abort(self) -> None:
        """Planning failed: stop the copies, record those that finished, close the bar."""
        if self.run is not None:
            try:
                self.run.abort()
            finally:
                self.run.progress.close()
                self.rec.flush()


def _noting_dirs(entries: Iterable[Entry], dirs: set[str]) -> Iterator[Entry]:
    """``entries`` passed through, the folder keys (the walk's empty folders) added to
    ``dirs`` on the way."""
    for e in entries:
        if e.key[-1:] == "/":
            dirs.add(e.key)
        yield e


def _conflict(a: str, b: str) -> bool:
    a, b = a.rstrip("/"), b.rstrip("/")
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


class _Mirror:
    """State of one active mirror; created by :func:`mirror`."""

    def __init__(
        self,
        *,
        cache_root: Path,
        show_progress: bool,
        max_workers: int,
        default_profile: Profile | None,
        limiter: ByteRateLimiter | None,
        compare: str,
        max_attempts: int = 5,
        timeout: tuple[float, float] = (10.0, 60.0),
        payload_signing: str = "auto",
        list_concurrency: int = 8,
    ) -> None:
        self.cache_root = cache_root
        self.show_progress = show_progress
        self.max_workers = max_workers
        self.default_profile = default_profile
        self.limiter = limiter
        self.compare = compare
        self.transfer_config = TransferConfig()
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.payload_signing = payload_signing
        self.list_concurrency = list_concurrency
        self.state = State.UNOPENED
        self._lock = threading.RLock()
        self._sync_lock = threading.Lock()
        self._downloads: dict[tuple[str, Profile | None], _Download] = {}
        self._uploads: dict[tuple[str, Profile | None], _Upload] = {}
        self._clients = self._client_cache()
        self._executor: ThreadPoolExecutor | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.state_store = SyncState(cache_root)
        self.md5_cache = Md5Cache(cache_root)
        self.registry = Registry(cache_root)
        self.scheduler = Scheduler(time.monotonic)
        self.pid = os.getpid()
        # The sync state decides for the default comparison; "size" (pos3's) and "checksum"
        # are explicit choices of a stateless rule and keep it.
        self.use_state = compare == "size_mtime"
        # Buckets seen listing out of UTF-8 byte order: planned from sorted lists from then on.
        self._unsorted_buckets: set[str] = set()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self.state is not State.UNOPENED:
            raise MirrorStateError(f"cannot start a mirror that is {self.state.value}")
        self.state = State.OPENED

    def stop(self, exc: BaseException | None = None) -> None:
        """Close the mirror: stop the background thread, run the final sync as the exit
        policy says for ``exc`` (the exception that left the body, if any), release the
        locks and pools."""
        if self.state is not State.OPENED:
            raise MirrorStateError(f"cannot stop a mirror that is {self.state.value}")
        try:
            self._stop.set()
            self._wake.set()
            if self._thread is not None:
                self._thread.join(JOIN_SECONDS)
            self._final_sync(exc)
        finally:
            self.state = State.CLOSED
            try:
                if self._executor is not None:
                    self._executor.shutdown(wait=True)
                self._clients.close()
            finally:
                for reg in self._uploads.values():
                    if reg.watcher is not None:
                        reg.watcher.close()
                self.registry.release_all()
                self.state_store.close()
                self.md5_cache.close()

    def after_fork_in_child(self) -> None:
        """In a child forked while this mirror was open: rebuild locks and pools so the
        child can use the API, and drop the parent's upload registrations so the child
        never uploads them (the parent does)."""
        self._lock = threading.RLock()
        self._sync_lock = threading.Lock()
        self._clients = self._client_cache()  # the parent's sockets: never touched here
        self._executor = None  # its threads do not exist in the child
        self._thread = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        for reg in self._uploads.values():
            if reg.watcher is not None:
                reg.watcher.forget()  # the parent's inotify queue: never read here
        self._uploads = {}
        self._downloads = {k: d for k, d in self._downloads.items() if d.ready.is_set()}
        for d in self._downloads.values():
            d.claim = None
        self.scheduler = Scheduler(time.monotonic)
        self.state_store.forget_connection()
        self.md5_cache.forget_connection()
        self.registry.forget_after_fork()
        self.pid = os.getpid()

    def _require_open(self) -> None:
        if self.state is not State.OPENED:
            raise MirrorStateError(f"the mirror is {self.state.value}")

    # ------------------------------------------------------------------ resources

    def _client_cache(self) -> ClientCache:
        return ClientCache(
            max_connections=self.max_workers,
            timeout=self.timeout,
            max_attempts=self.max_attempts,
            payload_signing=self.payload_signing,
        )

    def client(self, profile: Profile | None) -> S3Client:
        """The S3 client for a profile (one per profile, all sharing one connection pool)."""
        return self._clients.get(profile)

    @property
    def executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                from concurrent.futures import ThreadPoolExecutor

                self._executor = ThreadPoolExecutor(
                    max_workers=self.max_workers, thread_name_prefix="pos3lite"
                )
            return self._executor

    def cache_path_for(self, url: S3URL, profile: Profile | None) -> Path:
        base = self.cache_root / (profile.local_name if profile else "_") / url.bucket
        parts = [p for p in url.prefix.split("/") if p]
        return base.joinpath(*parts)

    def _local_path(
        self, url: S3URL, local: str | os.PathLike[str] | None, p: Profile | None
    ) -> Path:
        if local is not None:
            return Path(local).expanduser().resolve()
        return self.cache_path_for(url, p)

    # ------------------------------------------------------------------ scanning

    def _scan_remote(
        self,
        client: S3Client,
        url: S3URL,
        exclude: Sequence[str] = (),
        *,
        stream: bool = False,
        spill: bool = False,
    ) -> RemoteScan:
        """``scan_remote``; ``spill``: the streamed listing sorted first (a store known to
        list out of byte order), spilled to disk under the cache root beyond a bound."""
        root = self.cache_root if spill else None
        return scan_remote(
            client,
            url,
            exclude,
            stream=stream,
            spill_root=root,
            list_concurrency=self.list_concurrency,
        )

    def _with_md5(self, entries: list[Entry], root: Path) -> list[Entry]:
        """Local entries with their MD5 filled in (checksum comparison): from the MD5 cache
        for files unchanged since they were hashed, the others hashed in parallel."""
        files = [e for e in entries if not e.key.endswith("/")]
        paths = [root.joinpath(*e.key.split("/")) for e in files]
        digests = dict(
            zip(
                (e.key for e in files),
                self.md5_cache.digests(paths, self.executor),
                strict=True,
            )
        )
        return [Entry(e.key, e.size, e.mtime, digests.get(e.key)) for e in entries]

    def _plan(
        self,
        src: list[Entry],
        dst: list[Entry],
        *,
        exact_mtime: bool,
        delete: bool,
        exclude: Sequence[str],
        protected: Sequence[str] = (),
        what: str,
        base: dict[str, Synced] | BaseView | None = None,
        two_way: bool = False,
        remote_src: bool = False,
        failures: list[Pos3liteError] | None = None,
        keys_only: bool = False,
    ) -> Plan:
        # A 0-byte object "x" where the local side has the folder "x/" is that folder's
        # marker as servers that store "x/" as a file (rclone) list it.
        local = dst if remote_src else src
        folders = {e.key[:-1] for e in local if e.key.endswith("/")}
        if folders:
            remote = [
                Entry(e.key + "/", 0, e.mtime, e.etag) if e.size == 0 and e.key in folders else e
                for e in (src if remote_src else dst)
            ]
            remote.sort(key=lambda e: engine_diff.sort_key(e.key))
            src, dst = (remote, dst) if remote_src else (src, remote)
        pairs = collisions(e.key for e in (*src, *dst))
        if pairs:
            # Case-fold / Unicode-normalisation twins would copy one and delete the other:
            # neither is touched, and each pair fails as a KeyConflictError naming both.
            for err in conflict_errors(pairs):
                logger.error("%s: %s", what, err)
                if failures is not None:
                    failures.append(err)
            twins = {k for pair in pairs for k in pair}
            protected = [*protected, *twins]
            src = [e for e in src if e.key not in twins]
        only_in_sync = False
        if delete and not src and dst and not two_way:
            if base:
                # An empty source may only remove what was last in sync with it.
                only_in_sync = True
            else:
                # A source that lists nothing never empties the destination: an empty or
                # mistyped source is far more often a mistake than an intent (aws-cli#1564).
                logger.warning(
                    "%s: the source is empty; not deleting anything at the destination", what
                )
                delete = False
        patterns = list(exclude) + [anchored(k) for k in protected]
        plan = engine_diff.plan(
            src,
            dst,
            compare=make_compare(self.compare, exact_mtime=exact_mtime),
            delete=delete,
            exclude=Filter(patterns),
            base=None if isinstance(base, BaseView) else base,
            base_records=base.records() if isinstance(base, BaseView) else None,
            direction=None if base is None else (Direction.DOWN if exact_mtime else Direction.UP),
            two_way=two_way,
            deletes_need_base=only_in_sync,
            keys_only=keys_only,
        )
        self._log_fallbacks(plan, what)
        return plan

    def _log_fallbacks(self, plan: Plan, what: str) -> None:
        if plan.fallbacks:
            logger.info(
                "%s: %d object(s) have multipart ETags; compared by size and mtime instead",
                what,
                len(plan.fallbacks),
            )

    def _plan_streamed(
        self,
        remote: Iterable[Entry],
        local: Iterable[Entry],
        *,
        exact_mtime: bool,
        delete: bool,
        exclude: Sequence[str],
        skipped: list[str],
        what: str,
        base: dict[str, Synced] | BaseView | None = None,
        two_way: bool = False,
        remote_src: bool = False,
        keys_only: bool = False,
        on_copy: Callable[[Action], object] | None = None,
    ) -> Plan | None:
        """:meth:`_plan` in one pass over streams: the remote listing (sorted; it raises
        UnsortedListing otherwise), the local walk and the sync state's records are merged
        as they are read, so memory holds the plan's actions, not the listings.

        ``skipped`` is the walk's list of keys to protect, growing as the walk goes. Returns
        ``None`` when two keys may collide under case folding or Unicode normalisation
        (:class:`CollisionSieve`): the caller then plans with :meth:`_plan` from complete
        lists, which names the colliding pairs and protects them.

        ``on_copy`` receives each copy as the merge decides it (``Plan.copies`` is then
        empty; see ``engine.diff.plan``)."""
        loc = LocalStream(local)
        rem = Peek(markers_as_folders(remote, loc))
        src, dst = (rem, loc) if remote_src else (loc, rem)
        only_in_sync = False
        if delete and not two_way and src.empty() and not dst.empty():
            if base:
                only_in_sync = True  # an empty source only removes what was in sync with it
            else:
                logger.warning(
                    "%s: the source is empty; not deleting anything at the destination", what
                )
                delete = False
        sieve = CollisionSieve()
        plan = engine_diff.plan(
            src,
            dst,
            compare=make_compare(self.compare, exact_mtime=exact_mtime),
            delete=delete,
            exclude=GrowingFilter(list(exclude), skipped),
            base=None if isinstance(base, BaseView) else base,
            base_records=base.records() if isinstance(base, BaseView) else None,
            direction=None if base is None else (Direction.DOWN if exact_mtime else Direction.UP),
            two_way=two_way,
            deletes_need_base=only_in_sync,
            observe=sieve.add,
            keys_only=keys_only,
            on_copy=on_copy,
        )
        if sieve.suspect():
            return None
        self._log_fallbacks(plan, what)
        return plan

    # ------------------------------------------------------------------ registrations

    def _check_local_overlap(self, path: Path, what: str, *, uploading: bool) -> None:
        """Refuse a registration whose local folder overlaps one of this mirror's, when
        either of the two uploads (see ``registry.py``)."""
        others: list[tuple[str, Path, bool]] = [
            (f"upload of {u.url}", u.local_path, True) for u in self._uploads.values()
        ]
        others += [(f"download of {d.url}", d.local_path, False) for d in self._downloads.values()]
        for other_what, other_path, other_uploads in others:
            if (uploading or other_uploads) and overlaps(path, other_path):
                raise ConfigError(
                    f"Conflict: {what} into {str(path)!r} overlaps {other_what} into "
                    f"{str(other_path)!r}; local folders where one side uploads must not be "
                    "equal or nested"
                )

    def _claim(self, path: Path, *, exclusive: bool, what: str) -> Claim | None:
        """The cross-process lock of a registration; ``None`` (with a warning) when the
        cache root cannot hold locks (read-only), in which case only this process is
        checked."""
        try:
            return self.registry.claim(path, exclusive=exclusive, what=what)
        except OSError as exc:
            if path.is_relative_to(self.cache_root):
                # The folder itself lives under the unwritable cache root: the transfer
                # cannot work either, so its own error (naming the cache root) is the one.
                raise
            logger.warning(
                "cannot lock %s across processes (cache root %s: %s); "
                "overlapping registrations are only checked in this process",
                path,
                self.cache_root,
                exc,
            )
            return None

    @contextmanager
    def _transfer_lock(self, path: Path) -> Iterator[None]:
        try:
            lock = self.registry.transfer_lock(path)
            lock.__enter__()
        except OSError:
            yield
            return
        try:
            yield
        finally:
            lock.__exit__(None, None, None)

    @_gc_paused()
    def _base(self, name: str) -> dict[str, Synced]:
        """The sync state of a registration (empty when states are off for this compare)."""
        return self.state_store.load(name) if self.use_state else {}

    def _base_view(self, name: str) -> BaseView:
        """The sync state of a registration, read lazily (streamed into the planner)."""
        return BaseView(self.state_store, name, enabled=self.use_state)

    def _recorder(self, name: str, root: Path) -> _Recorder:
        return _Recorder(self.state_store, name, root, enabled=self.use_state)

    def _conflict_path(self, url: S3URL, profile: Profile | None, key: str) -> Path:
        """Where a version replaced by a two-way sync is kept: under the cache root's
        metadata folder, never in the user's folder."""
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        base = self.cache_root / META_DIR / "conflicts" / f"{stamp}-{os.getpid()}"
        base = base / (profile.local_name if profile else "_") / url.bucket
        parts = [p for p in url.prefix.split("/") if p] + key.split("/")
        return base.joinpath(*parts)

    # ------------------------------------------------------------------ download

    def download(
        self,
        remote: str,
        local: str | os.PathLike[str] | None,
        delete: bool,
        exclude: Sequence[str] | None,
        profile: str | Profile | None,
    ) -> Path:
        self._require_open()
        if not is_s3_url(remote):
            check_local_path(remote)
            effective_profile(None, profile, self.default_profile)
            path = Path(remote).expanduser().resolve()
            if not path.exists():
                raise FileNotFoundError(f"local path does not exist: {str(path)!r}")
            return path
        url = parse_s3_url(remote)
        p = effective_profile(url.profile, profile, self.default_profile)
        local_path = self._local_path(url, local, p)
        reg = _Download(url.normalized(), local_path, delete, tuple(exclude or ()), p)
        regkey = (reg.url, p)
        with self._lock:
            existing = self._downloads.get(regkey)
            if existing is not None:
                if existing != reg:
                    raise ConfigError(
                        f"Download for '{reg.url}' already registered with different parameters"
                    )
            else:
                self._check_conflicts(reg.url, p, self._uploads.values(), "download", "upload")
                what = f"download of {reg.url}"
                self._check_local_overlap(local_path, what, uploading=False)
                reg.claim = self._claim(local_path, exclusive=False, what=what)
                self._downloads[regkey] = reg
        if existing is not None:
            existing.ready.wait()
            if existing.error is not None:
                raise existing.error
            return existing.local_path
        try:
            self._perform_download(url, reg, two_way=False, missing_ok=False, cache_folder=False)
        except BaseException as exc:
            reg.error = exc
            with self._lock:
                self._downloads.pop(regkey, None)
            if reg.claim is not None:
                self.registry.release(reg.claim)
            raise
        finally:
            reg.ready.set()
        return local_path

    @staticmethod
    def _nothing_to_plan(
        scan: RemoteScan,
        url: S3URL,
        target: Path,
        base: dict[str, Synced] | BaseView | None,
        two_way: bool,
    ) -> bool:
        """True when a download has no plan: an exact object, or nothing found remotely and
        nothing local in sync with it. Raises ConfigError when the prefix's local side is a
        file."""
        if scan.obj is not None or (not scan.found and not (two_way and base)):
            return True
        if target.exists() and not target.is_dir():
            raise ConfigError(
                f"local path {str(target)!r} is a file, but {url.normalized()} is a prefix "
                "(a folder is expected)"
            )
        return False

    @_gc_paused()
    def _plan_download(
        self,
        client: S3Client,
        url: S3URL,
        target: Path,
        *,
        delete: bool,
        exclude: Sequence[str],
        what: str,
        base: dict[str, Synced] | BaseView | None = None,
        two_way: bool = False,
        keys_only: bool = False,
        feed: _StreamedCopies | None = None,
    ) -> tuple[RemoteScan, Walk, Plan | None]:
        """Scan both sides of a download and plan it; the one planner behind
        :meth:`download`, :meth:`sync` and :meth:`plan_download`, so a plan shows exactly
        what a download would do. The plan is ``None`` for an exact object, or when nothing
        is found remotely and nothing local was in sync with it.

        The listing, the walk and the state are streamed through the engine
        (:meth:`_plan_streamed`); a store that lists out of UTF-8 byte order, possible key
        collisions, or checksum comparison (which hashes the local files first) are
        planned again from complete, sorted lists.

        With ``feed`` (a download, not a dry run), the streamed pass hands each copy to
        ``feed`` as it is decided, so transfers start while the listing is still read;
        copies it fed before a fallback are waited for before the local side is walked
        again, and the fallback plan holds the rest (they compare equal now)."""
        # A bucket known to list out of byte order streams its listing through an external
        # sort (spilled to disk beyond a bound); one found out of order on the way is
        # listed again that way.
        for spill in (False, True) if self.compare != "checksum" else ():
            if not spill and url.bucket in self._unsorted_buckets:
                continue
            scan = self._scan_remote(client, url, exclude, stream=True, spill=spill)
            try:
                if self._nothing_to_plan(scan, url, target, base, two_way):
                    return scan, Walk(), None
                report = Walk()
                assert scan.stream is not None
                plan = self._plan_streamed(
                    scan.stream,
                    iter_walk(target, follow_dir_links=False, report=report),
                    exact_mtime=True,
                    delete=delete,
                    exclude=exclude,
                    skipped=report.skipped,
                    what=what,
                    base=base,
                    two_way=two_way,
                    remote_src=True,
                    keys_only=keys_only,
                    on_copy=None if feed is None else feed.begin(scan),
                )
            except UnsortedListing as exc:
                logger.debug("%s: listed out of byte order (%s); planning again", what, exc)
                self._unsorted_buckets.add(url.bucket)
                if feed is not None:
                    feed.settle()  # the copies fed so far land before the walk runs again
                continue
            finally:
                scan.close()
            if plan is not None:
                return scan, report, plan
            if feed is not None:
                feed.settle()  # the copies already fed land before the walk sees the folder
            break  # possible case-fold twins: planned from whole lists below
        # Walk the local side while the remote side is listed (the two are independent).
        walking = (
            self.executor.submit(walk, target, follow_dir_links=False) if target.is_dir() else None
        )
        scan = self._scan_remote(client, url, exclude)
        if self._nothing_to_plan(scan, url, target, base, two_way):
            return scan, Walk(), None
        local = walking.result() if walking is not None else Walk()
        dst = local.entries
        if self.compare == "checksum":
            dst = self._with_md5(dst, target)
        plan = self._plan(
            scan.entries,
            dst,
            exact_mtime=True,
            delete=delete,
            exclude=exclude,
            protected=local.skipped,
            what=what,
            base=base,
            two_way=two_way,
            remote_src=True,
            failures=scan.unsafe,
            keys_only=keys_only,
        )
        if feed is not None:
            feed.undo_twins(e.key for e in (*scan.entries, *dst))
        return scan, local, plan

    def _object_changed(
        self, obj: Entry, target: Path, base: Synced | None = None
    ) -> tuple[bool, Entry | None]:
        """Whether the local file ``target`` differs from the object ``obj`` (or is absent),
        and the local entry when it is a file."""
        if not target.is_file():
            return True, None
        st = target.stat()
        mine = Entry(obj.key, st.st_size, st.st_mtime, None, stamp=_stamp(st))
        if base is not None:
            from ..engine.threeway import local_changed, remote_changed

            return local_changed(mine, base) or remote_changed(obj, base), mine
        if self.compare == "checksum":
            md5 = self.md5_cache.md5(target)
            mine = Entry(obj.key, st.st_size, st.st_mtime, md5, stamp=_stamp(st))
        return make_compare(self.compare, exact_mtime=True).differs(obj, mine) is not None, mine

    def _perform_download(
        self, url: S3URL, reg: _Download, *, two_way: bool, missing_ok: bool, cache_folder: bool
    ) -> None:
        client = self.client(reg.profile)
        target = reg.local_path
        name = _state_name(reg.url, reg.profile, target)
        with self._transfer_lock(target):
            # Read lazily: streamed into the planner in key order, never loaded whole.
            base = self._base_view(name)
            rec = self._recorder(name, target)
            # The copies stream into the pool while the listing is read (_StreamedCopies).
            feed = _StreamedCopies(self, client, url, reg, rec)
            try:
                scan, local, plan = self._plan_download(
                    client,
                    url,
                    target,
                    delete=reg.delete,
                    exclude=reg.exclude,
                    what=f"download {url.normalized()}",
                    base=base,
                    two_way=two_way,
                    feed=feed,
                )
            except BaseException:
                if feed is not None:
                    feed.abort()  # no delete ran; the copies that finished are recorded
                raise
            if scan.obj is not None:
                self._download_object(client, url, scan.obj, target, rec, base.get(""))
                return
            if plan is None:
                if not missing_ok:
                    raise RemoteNotFoundError(
                        url.normalized() + ("/" if url.key.endswith("/") else "")
                    )
                if not cache_folder:
                    ensure_cache_root(self.cache_root, target)
                    target.mkdir(parents=True, exist_ok=True)
                return
            self._apply_download(
                client, url, scan, local, plan, reg, rec, two_way=two_way, feed=feed
            )
            if not scan.found and cache_folder:
                # The remote has nothing: a cache folder emptied by the deletes goes too,
                # so the caller can create it (LeRobotDataset.create: mkdir(exist_ok=False)).
                with contextlib.suppress(OSError):
                    target.rmdir()

    def _apply_download(
        self,
        client: S3Client,
        url: S3URL,
        scan: RemoteScan,
        local: Walk,
        plan: Plan,
        reg: _Download,
        rec: _Recorder,
        *,
        two_way: bool,
        feed: _StreamedCopies | None = None,
    ) -> None:
        """Run a download plan: copies (those ``feed`` already started while planning, then
        ``plan.copies``), then, only when every copy succeeded, the deletes."""
        target = reg.local_path
        held = feed.held if feed is not None else []
        for a in (*held, *plan.copies):
            if a.reason is Reason.CONFLICT:
                self._keep_local_version(url, reg.profile, target, a.key)
        for a in plan.kept:
            self._keep_remote_version(client, url, scan, reg.profile, a)
        run = feed.run if feed is not None else None
        if run is not None:
            progress = run.progress
        else:
            total = sum(a.src.size for a in plan.copies if a.src is not None)
            progress = make_progress(self.show_progress, total, f"Downloading {url.normalized()}")
        try:
            if run is None:
                if plan.copies or scan.found:
                    ensure_cache_root(self.cache_root, target)
                    target.mkdir(parents=True, exist_ok=True)
                run = self._download_run(client, url, scan, target, progress, rec, count=False)
                run.make_parents(plan.copies)
            run.feed_all(itertools.chain(held, plan.copies))
            run.finish(plan, delete=reg.delete, extra_failures=scan.unsafe)
            if local.temp_files:
                n = remove_stale_temps(local, now=time.time())
                if n:
                    logger.info("removed %d stale temporary file(s) under %s", n, target)
        finally:
            progress.close()
            rec.adopt(plan.adopted, local_is_src=False)
            gone = [
                a.key
                for a in plan.deletes
                if not os.path.lexists(target.joinpath(*a.key.rstrip("/").split("/")))
            ]
            rec.flush(forget=gone)

    def _download_run(
        self,
        client: S3Client,
        url: S3URL,
        scan: RemoteScan,
        target: Path,
        progress: Progress,
        rec: _Recorder,
        *,
        count: bool,
    ) -> DownloadRun:
        return DownloadRun(
            client=client,
            bucket=url.bucket,
            key_prefix=scan.key_prefix,
            local_root=target,
            executor=self.executor,
            progress=progress,
            window=self.max_workers * 2,
            config=self.transfer_config,
            on_done=lambda e: rec.downloaded(e.key, e),
            count_total=count,
        )

    def _keep_local_version(
        self, url: S3URL, profile: Profile | None, root: Path, key: str
    ) -> None:
        """Before a two-way sync overwrites a local change, keep it under the cache root."""
        src = root.joinpath(*key.split("/"))
        dest = self._conflict_path(url, profile, key)
        dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            os.link(src, dest)  # the download replaces src by rename; the link keeps this one
        except OSError:
            import shutil

            shutil.copy2(src, dest)
        logger.warning(
            "%s: the local version differs from the newer remote one and was replaced; "
            "the local version is kept at %s",
            src,
            dest,
        )

    def _keep_remote_version(
        self, client: S3Client, url: S3URL, scan: RemoteScan, profile: Profile | None, a: Action
    ) -> None:
        """Both sides changed and the local file is newer: it stays (and is uploaded); the
        remote version it will replace is kept under the cache root."""
        assert a.src is not None
        dest = self._conflict_path(url, profile, a.key)
        dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        download_object(
            client,
            url.bucket,
            scan.key_prefix + a.key,
            dest,
            a.src,
            executor=lambda: self.executor,
            progress=make_progress(False, a.src.size, ""),
            config=self.transfer_config,
        )
        logger.warning(
            "s3://%s/%s%s and the local file both changed since the last sync; the newer "
            "local file wins, the remote version is kept at %s",
            url.bucket,
            scan.key_prefix,
            a.key,
            dest,
        )

    def _download_object(
        self,
        client: S3Client,
        url: S3URL,
        obj: Entry,
        target: Path,
        rec: _Recorder,
        base: Synced | None,
    ) -> None:
        if target.is_dir():
            raise TransferError(
                "Download",
                [KeyConflictError(url.key, f"is an object but {str(target)!r} is a folder")],
            )
        changed, mine = self._object_changed(obj, target, base)
        if not changed:
            if base is None and mine is not None and mine.stamp is not None:
                rec.put("", Synced(mine.stamp, obj.etag, obj.size, obj.mtime))
                rec.flush()
            return
        ensure_cache_root(self.cache_root, target)
        progress = make_progress(self.show_progress, obj.size, f"Downloading {url.normalized()}")
        try:
            download_object(
                client,
                url.bucket,
                url.key,
                target,
                obj,
                executor=lambda: self.executor,
                progress=progress,
                config=self.transfer_config,
            )
            rec.downloaded("", obj)
        finally:
            progress.close()
            rec.flush()

    # ------------------------------------------------------------------ upload

    def upload(
        self,
        remote: str,
        local: str | os.PathLike[str] | None,
        interval: float | None,
        delete: bool,
        sync_on_error: bool,
        exclude: Sequence[str] | None,
        profile: str | Profile | None,
        follow_symlinks: bool = False,
        *,
        claim: Claim | None = None,
    ) -> Path:
        self._require_open()
        if not is_s3_url(remote):
            check_local_path(remote)
            effective_profile(None, profile, self.default_profile)
            path = Path(remote).expanduser().resolve()
            path.mkdir(parents=True, exist_ok=True)
            return path
        if interval is not None and not (isinstance(interval, (int, float)) and interval > 0):
            raise ConfigError(f"interval must be > 0 seconds or None, got {interval!r}")
        url = parse_s3_url(remote)
        p = effective_profile(url.profile, profile, self.default_profile)
        local_path = self._local_path(url, local, p)
        reg = _Upload(
            url.normalized(),
            url,
            local_path,
            interval,
            delete,
            sync_on_error,
            tuple(exclude or ()),
            p,
            follow_symlinks,
        )
        regkey = (reg.url, p)
        with self._lock:
            existing = self._uploads.get(regkey)
            if existing is not None:
                if existing != reg:
                    raise ConfigError(
                        f"Upload for '{reg.url}' already registered with different parameters"
                    )
                return existing.local_path
            self._check_conflicts(reg.url, p, self._downloads.values(), "upload", "download")
            self._check_conflicts(reg.url, p, self._uploads.values(), "upload", "upload")
            what = f"upload of {reg.url}"
            if claim is None:
                self._check_local_overlap(local_path, what, uploading=True)
                claim = self._claim(local_path, exclusive=True, what=what)
            reg.claim = claim
            if local is None:
                # The cache folder is ours: create it so the caller can write into it.
                ensure_cache_root(self.cache_root, local_path)
                local_path.mkdir(parents=True, exist_ok=True)
            self._uploads[regkey] = reg
            if interval is not None:
                self.scheduler.add(regkey, float(interval))
                self._ensure_thread()
        return local_path

    def _check_conflicts(
        self,
        url: str,
        profile: Profile | None,
        others: Iterable[_Download | _Upload],
        new_kind: str,
        old_kind: str,
    ) -> None:
        for other in others:
            if other.profile == profile and _conflict(url, other.url):
                raise ConfigError(
                    f"Conflict: {new_kind} '{url}' overlaps with {old_kind} '{other.url}'"
                )

    def _sync_upload(self, reg: _Upload, phase: policy.Phase) -> None:
        """Upload the changes of one registration; deletes only in the final sync.

        A pass lists the remote prefix in full or is incremental (no LIST; see
        ``policy.lists_in_full`` and ``ticks.py``): the final sync always lists, a tick
        lists every ``policy.FULL_LISTING_EVERY``-th time, after a failed pass, when the
        registration was never listed in this mirror or the sync state holds nothing for it,
        and whenever the comparison does not use the sync state (``compare="size"`` or
        ``"checksum"``). :func:`flush` is incremental once the registration was listed: it
        uploads every local file whose stamp differs from its record or that has none, which
        is every local change."""
        full = not self.use_state or policy.lists_in_full(
            phase, passes_since_listing=reg.passes, failed=reg.failed
        )
        changes = self._watched_changes(reg, phase)  # before any walk of this pass
        try:
            if not full and self._upload_changes(reg, changes):
                if phase is policy.Phase.TICK and reg.passes is not None:
                    reg.passes += 1
            else:
                reg.folds = None  # a full pass records what it likes: the screen is re-read
                self._upload_pass(reg, phase)
        except BaseException:
            reg.failed = True
            if reg.watcher is not None:
                reg.watcher.baseline = False
            raise
        reg.failed = False
        if reg.watcher is not None:
            reg.watcher.baseline = True  # watched since before this pass's walk began

    def _watched_changes(self, reg: _Upload, phase: policy.Phase) -> Changes | None:
        """What the registration's inotify watcher saw since the last pass, when a tick may
        stat only that (see ``ticks.py``); None: this pass walks in full. Starts the watcher
        on the first tick (before its walk), keeps its watches in step on every other pass,
        restarts it on doubt, and drops it for good where inotify is unavailable."""
        if phase is policy.Phase.FINAL:
            return None
        w = reg.watcher
        from_tick = phase is policy.Phase.TICK
        try:
            if w is None:
                if from_tick and self.use_state and not (reg.watch_off or reg.follow_symlinks):
                    from ..localfs.watch import Watcher

                    reg.watcher = Watcher(reg.local_path)
                return None
            changes = w.drain()
            if changes.full:
                w.restart()
                return None
        except OSError as exc:
            from ..localfs.watch import WatchUnavailable

            if reg.watcher is not None:
                reg.watcher.close()
                reg.watcher = None
            if isinstance(exc, WatchUnavailable):
                reg.watch_off = True
                logger.info("background ticks of %s stat every file: %s", reg.url, exc)
            return None  # else the folder is missing or not a folder yet: again next tick
        return changes if from_tick and w.baseline else None

    def _upload_changes(self, reg: _Upload, changes: Changes | None = None) -> bool:
        """An incremental pass (see ``ticks.py``): walk the local folder (stat only), merge it
        with the sync state's records and upload the changed files, each its own PUT (or
        multipart upload), with no LIST. Nothing changed: no request at all. Uploads only.
        Returns False, having done nothing, when the state holds no record for the
        registration or the folder is not a folder (the caller lists in full).

        ``changes`` (a watched tick): stat only the names the watcher reported, and walk only
        its new folders, instead of the whole folder, and read only their records (by key);
        none at all: return True at once.

        Raises TransferError for failed copies and local names S3 cannot hold, as a full pass.
        """
        if changes is not None and changes.empty:
            return True  # nothing stat-ed, nothing sent
        root = reg.local_path
        if changes is None and not root.is_dir():  # a watcher reports a missing root
            return False
        url = reg.raw
        key_prefix = url.prefix + "/" if url.prefix else ""
        name = _state_name(reg.url, reg.profile, root)
        report = Walk()
        max_key = 1024 - len(key_prefix.encode())
        with _gc_paused():
            if changes is None:
                walked = iter_stamps(
                    root, follow_symlinks=reg.follow_symlinks, max_key_bytes=max_key, report=report
                )
                found = local_changes(walked, self.state_store.iter_stamps(name))
            else:
                from ..localfs.watch import stamp_rows

                rows = stamp_rows(root, changes, max_key_bytes=max_key, report=report)
                # Only the records of the names reported, read by key (not every record).
                files = (r[0].decode("utf-8", "surrogateescape") for r in rows if r[1] is not None)
                got = self.state_store.records_of(name, files)
                if got is None or not (got[0] or self.state_store.has_records(name)):
                    return False  # unreadable or empty state: the caller lists in full
                recs = sorted(
                    (k.encode("utf-8", "surrogateescape"), *r.local) for k, r in got[0].items()
                )
                found = local_changes(rows, recs)
                found.known = True
        if not found.known:
            return False
        failures: list[Pos3liteError] = list(report.failures)
        skip = Filter(list(reg.exclude))
        changed = [(k, st) for k, st in found.changed if not (skip and skip.excluded(k))]
        new_dirs = [d for d in found.dirs if d not in reg.dirs and not (skip and skip.excluded(d))]
        if changed or new_dirs:
            self._upload_changed(reg, root, key_prefix, name, changed, found.dirs, report, failures)
        elif failures:
            raise TransferError("Upload", failures)
        if changes is None:
            reg.dirs = frozenset(found.dirs)
        else:
            redone = changes.touched | changes.walk
            reg.dirs = next_dirs(reg.dirs, redone, changes.walk | changes.gone, found.dirs)
        return True

    def _upload_changed(
        self,
        reg: _Upload,
        root: Path,
        key_prefix: str,
        name: str,
        changed: list[tuple[str, Stamp]],
        dirs: list[str],
        report: Walk,
        failures: list[Pos3liteError],
    ) -> None:
        """Plan the changed files and new empty folders of an incremental pass against the
        sync state's records (the remote as last seen: records as objects, plus the folders
        known to exist there), with the same planner as a full pass, and upload them.

        Only the records of the changed keys are read when the registration's
        :class:`FoldScreen` shows that no other recorded key can be a case-fold twin of
        them (:meth:`_plan_changed_keys`); otherwise every record is (the rule and why the
        decisions are the same either way: ``ticks.py``)."""
        client = self.client(reg.profile)
        url = reg.raw
        twins: list[Pos3liteError] = []
        with _gc_paused():
            planned = self._plan_changed_keys(reg, name, changed, dirs, report, twins)
            if planned is None:
                base = self._base(name)
                plan = self._plan_changed(reg, base, changed, dirs, report, twins)
                planned = plan, base.keys()
        plan, recorded = planned
        failures.extend(twins)
        if reg.folds is not None:
            # Counted before the uploads run (a failed one counts too: over-counting only
            # sends a later tick to the whole plan; missing a record could miss a twin).
            for a in (*plan.copies, *plan.adopted):
                if not a.key.endswith("/") and a.key not in recorded:
                    reg.folds.add(a.key)
        if reg.profile is not None and not reg.profile.folder_markers:
            copies = tuple(a for a in plan.copies if not a.key.endswith("/"))
            plan = dataclasses.replace(plan, copies=copies)
        rec = self._recorder(name, root)
        self._execute_upload(reg, client, url, key_prefix, root, plan, rec, False, failures)

    def _plan_changed_keys(
        self,
        reg: _Upload,
        name: str,
        changed: list[tuple[str, Stamp]],
        dirs: list[str],
        report: Walk,
        twins: list[Pos3liteError],
    ) -> tuple[Plan, Collection[str]] | None:
        """The plan of :meth:`_upload_changed` from the records of the changed keys only
        (read by key), and the keys recorded among them; ``None`` when the rule in
        ``ticks.py`` cannot rule out a twin among the other records (or the state cannot be
        read): the caller then plans from every record. Twins found appear in ``twins``."""
        screen = reg.folds
        if screen is None:
            try:
                screen = FoldScreen(self.state_store.iter_keys(name))
            except (sqlite3.Error, OSError) as exc:
                logger.debug("upload %s: sync state keys unreadable (%s)", reg.url, exc)
                return None
            reg.folds = screen
        keys = [k for k, _ in changed] + list(dirs)
        if screen.suspect or len(keys) > max(256, screen.size // 4):
            return None
        names = {fold_name(k) for k in keys}
        names.update(fold_name(d) for d in reg.dirs)
        wanted = set(names)
        wanted.update(n + "/" for n in names)
        for k in keys:  # every ancestor, as a file ("a") and as a folder ("a/")
            i = k.find("/")
            while 0 <= i < len(k) - 1:
                wanted.add(k[:i])
                wanted.add(k[: i + 1])
                i = k.find("/", i + 1)
        got = self.state_store.records_of(name, wanted, under=[fold_name(k) + "/" for k in keys])
        if got is None:
            return None
        recs, below = got
        files = {k for k, _ in changed}
        for n in names:
            if screen.count(n) != (n in recs) + (n + "/" in recs):
                return None  # another recorded key may fold like n (or the screen is stale)
        for under, (key, record) in below.items():
            if under[:-1] in files:
                return None  # a file with records under it: the whole plan names the conflicts
            recs.setdefault(key, record)
        return self._plan_changed(reg, recs, changed, dirs, report, twins), recs.keys()

    def _plan_changed(
        self,
        reg: _Upload,
        records: dict[str, Synced],
        changed: list[tuple[str, Stamp]],
        dirs: list[str],
        report: Walk,
        twins: list[Pos3liteError],
    ) -> Plan:
        """The upload plan of a tick's changed files and empty folders (``dirs``) against
        ``records`` (every record, or those :meth:`_plan_changed_keys` read) as the remote
        side, with the folders the registration knows; twins found go to ``twins``."""
        src = [Entry(k, st[0], st[1] / 1e9, stamp=st) for k, st in changed]
        src += [Entry(d, 0, 0.0) for d in dirs]
        src.sort(key=lambda e: engine_diff.sort_key(e.key))
        dst = [Entry(k, r.size, r.mtime, r.etag) for k, r in records.items() if k]
        dst += [Entry(d, 0, 0.0) for d in reg.dirs]
        dst.sort(key=lambda e: engine_diff.sort_key(e.key))
        return self._plan(
            src,
            dst,
            exact_mtime=False,
            delete=False,
            exclude=reg.exclude,
            protected=report.skipped,
            what=f"upload {reg.url}",
            base=records,
            failures=twins,
        )

    def _execute_upload(
        self,
        reg: _Upload,
        client: S3Client,
        url: S3URL,
        key_prefix: str,
        root: Path,
        plan: Plan,
        rec: _Recorder,
        delete: bool,
        failures: list[Pos3liteError],
        *,
        feed: _StreamedUploads | None = None,
    ) -> None:
        """Run an upload plan: copies (those ``feed`` already started while planning, then
        the ones it held, then ``plan.copies``), then, only when every copy succeeded and
        ``delete``, the remote deletes. Raises TransferError as ``UploadRun.finish``."""
        run = feed.run if feed is not None else None
        held = feed.held if feed is not None else []
        if run is None:
            total = sum(a.src.size for a in (*held, *plan.copies) if a.src is not None)
            progress = make_progress(self.show_progress, total, f"Uploading {reg.url}")
            run = self._upload_run(client, url, key_prefix, root, progress, rec)
        forget: list[str] = []
        try:
            run.feed_all(itertools.chain(held, plan.copies))
            run.finish(plan, delete=delete, extra_failures=failures)
            forget = [a.key for a in plan.deletes] if delete else []
        finally:
            run.progress.close()
            rec.adopt(plan.adopted, local_is_src=True)
            # The files that went up are recorded even when others failed (as downloads
            # are): a failed pass is followed by a full one, which then skips them.
            rec.flush(forget=forget)

    def _upload_run(
        self,
        client: S3Client,
        url: S3URL,
        key_prefix: str,
        root: Path,
        progress: Progress,
        rec: _Recorder,
    ) -> UploadRun:
        return UploadRun(
            client=client,
            bucket=url.bucket,
            key_prefix=key_prefix,
            local_root=root,
            executor=self.executor,
            progress=progress,
            window=self.max_workers * 2,
            limiter=self.limiter,
            config=self.transfer_config,
            on_done=rec.uploaded,
        )

    def _upload_pass(self, reg: _Upload, phase: policy.Phase) -> None:
        """A full pass: list the remote prefix, walk the local folder, plan and upload."""
        root = reg.local_path
        if not os.path.lexists(root):
            # Nothing was ever written there (pos3: quietly nothing to upload).
            logger.debug("upload %s: %s does not exist; nothing to upload", reg.url, root)
            return
        client = self.client(reg.profile)
        url = reg.raw
        key_prefix = url.prefix + "/" if url.prefix else ""
        name = _state_name(reg.url, reg.profile, root)
        rec = self._recorder(name, root)
        if root.is_file():
            self._upload_file(client, url, root, rec)
            return
        delete = reg.delete and policy.deletes_in(phase)
        failures: list[Pos3liteError] = []  # plan-time: case-fold twins, local names
        dirs: set[str] = set()
        markers = reg.profile.folder_markers if reg.profile else True
        # The copies start while the walk and the listing are still merged (see
        # _StreamedUploads); the deletes wait for the whole plan and every copy.
        feed = _StreamedUploads(self, client, url, reg, key_prefix, rec, folder_markers=markers)
        try:
            plan = self._plan_upload(
                client,
                url,
                root,
                delete=delete,
                exclude=reg.exclude,
                what=f"upload {reg.url}",
                base=self._base_view(name),
                follow_symlinks=reg.follow_symlinks,
                folder_markers=markers,
                failures=failures,
                empty_dirs=dirs,
                feed=feed,
            )
        except BaseException:
            feed.abort()  # no delete ran; the copies that finished are recorded
            raise
        self._execute_upload(
            reg, client, url, key_prefix, root, plan, rec, delete, failures, feed=feed
        )
        # Every copy succeeded: each empty local folder now exists on S3 (its marker was
        # there or was written, or keys under it are), and the listing is fresh.
        reg.dirs = frozenset(dirs)
        reg.passes = 0

    @_gc_paused()
    def _plan_upload(
        self,
        client: S3Client,
        url: S3URL,
        root: Path,
        *,
        delete: bool,
        exclude: Sequence[str],
        what: str,
        base: dict[str, Synced] | BaseView | None = None,
        follow_symlinks: bool = False,
        folder_markers: bool = True,
        failures: list[Pos3liteError] | None = None,
        empty_dirs: set[str] | None = None,
        feed: _StreamedUploads | None = None,
    ) -> Plan:
        """Scan both sides of an upload of the folder ``root`` and plan it; the one planner
        behind upload syncs and :meth:`plan_upload`. Symlinks are skipped (and their keys
        protected from deletes) unless ``follow_symlinks``. Keys that fail at plan time
        (case-fold twins, local names S3 cannot hold) are appended to ``failures``;
        ``folder_markers=False`` plans no markers; ``empty_dirs`` (if given) receives the
        keys of the empty local folders (for incremental passes).

        With ``feed`` (an upload pass, not a dry run), the streamed pass hands each copy to
        ``feed`` as it is decided (``Plan.copies`` then holds none of them; ``feed.held``
        the ones held back), so uploads start while the walk and the listing are read;
        the copies fed before a fallback land before the sides are read again, and the
        objects created for keys that turn out to be twins are deleted again."""
        key_prefix = url.prefix + "/" if url.prefix else ""
        max_key = 1024 - len(key_prefix.encode())  # S3's key limit, prefix included
        # Streamed as downloads are (see _plan_download; a bucket listing out of byte
        # order through an external sort); checksum comparison hashes the local files
        # first and keeps the list-based planner below.
        for spill in (False, True) if self.compare != "checksum" else ():
            if not spill and url.bucket in self._unsorted_buckets:
                continue
            streamed = self._plan_upload_streamed(
                client,
                url,
                root,
                key_prefix=key_prefix,
                max_key=max_key,
                delete=delete,
                exclude=exclude,
                what=what,
                base=base,
                follow_symlinks=follow_symlinks,
                folder_markers=folder_markers,
                spill=spill,
                on_copy=None if feed is None else feed.copy,
            )
            if streamed is None and feed is not None:
                feed.settle()  # the copies fed so far land before the sides are read again
            if streamed is not None:
                plan, walked, dirs = streamed
                if failures is not None:
                    failures.extend(walked.failures)
                if empty_dirs is not None:
                    empty_dirs.update(dirs)
                return plan
            if spill or url.bucket not in self._unsorted_buckets:
                break  # possible case-fold twins: planned from whole lists below
        # Overlaps with the remote listing.
        walking = self.executor.submit(
            walk, root, follow_symlinks=follow_symlinks, max_key_bytes=max_key
        )
        remote = self._scan_remote(client, S3URL(url.bucket, key_prefix, url.profile), exclude)
        local = walking.result()
        if failures is not None:
            failures.extend(local.failures)
        if empty_dirs is not None:
            empty_dirs.update(e.key for e in local.entries if e.key.endswith("/"))
        src = local.entries
        if self.compare == "checksum":
            src = self._with_md5(src, root)
        twins: list[Pos3liteError] = []
        plan = self._plan(
            src,
            remote.entries,
            exact_mtime=False,
            delete=delete,
            exclude=exclude,
            protected=local.skipped,
            what=what,
            base=base,
            failures=twins,
        )
        if remote.unsafe and plan.deletes:
            # Keys we refused to read make the remote listing incomplete for deleting.
            plan = dataclasses.replace(plan, deletes=())
        if not folder_markers:
            copies = tuple(a for a in plan.copies if not a.key.endswith("/"))
            plan = dataclasses.replace(plan, copies=copies)
        if failures is not None:
            failures.extend(twins)
        if feed is not None:
            feed.undo_twins(e.key for e in (*src, *remote.entries))
        return plan

    def _plan_upload_streamed(
        self,
        client: S3Client,
        url: S3URL,
        root: Path,
        *,
        key_prefix: str,
        max_key: int,
        delete: bool,
        exclude: Sequence[str],
        what: str,
        base: dict[str, Synced] | BaseView | None,
        follow_symlinks: bool,
        folder_markers: bool,
        spill: bool = False,
        on_copy: Callable[[Action], object] | None = None,
    ) -> tuple[Plan, Walk, set[str]] | None:
        """:meth:`_plan_upload` in one streamed pass (walk, listing and state merged as they
        are read): the plan, the walk's report and the keys of the empty local folders;
        ``None`` when it must be planned from whole lists (a listing out of byte order,
        possible case-fold twins). ``on_copy`` receives each copy as it is decided
        (``Plan.copies`` is then empty; see ``engine.diff.plan``)."""
        remote = self._scan_remote(
            client, S3URL(url.bucket, key_prefix, url.profile), exclude, stream=True, spill=spill
        )
        report = Walk()
        dirs: set[str] = set()
        assert remote.stream is not None
        try:
            plan = self._plan_streamed(
                remote.stream,
                _noting_dirs(
                    iter_walk(
                        root, follow_symlinks=follow_symlinks, max_key_bytes=max_key, report=report
                    ),
                    dirs,
                ),
                exact_mtime=False,
                delete=delete,
                exclude=exclude,
                skipped=report.skipped,
                what=what,
                base=base,
                on_copy=on_copy,
            )
        except UnsortedListing as exc:
            logger.debug("%s: listed out of byte order (%s); planning again", what, exc)
            self._unsorted_buckets.add(url.bucket)
            return None
        finally:
            remote.close()
        if plan is None:
            return None
        if remote.unsafe and plan.deletes:
            # Keys we refused to read make the remote listing incomplete for deleting.
            plan = dataclasses.replace(plan, deletes=())
        if not folder_markers:
            copies = tuple(a for a in plan.copies if not a.key.endswith("/"))
            plan = dataclasses.replace(plan, copies=copies)
        return plan, report, dirs

    def _upload_file(self, client: S3Client, url: S3URL, path: Path, rec: _Recorder) -> None:
        """Upload one local file to the URL's key (an upload registered on a file path)."""
        st = path.stat()
        base = self._base_view(rec.name).get("")
        if base is not None and _stamp(st) == base.local:
            return
        if base is None:
            try:
                info = client.head_object(url.bucket, url.prefix)
            except NotFoundError:
                info = None
            if info is not None:
                mine = Entry(path.name, st.st_size, st.st_mtime)
                theirs = Entry(path.name, info.size, info.last_modified, info.etag)
                if self.compare == "checksum":
                    md5 = self.md5_cache.md5(path)
                    mine = Entry(path.name, st.st_size, st.st_mtime, md5)
                if make_compare(self.compare, exact_mtime=False).differs(mine, theirs) is None:
                    rec.put("", Synced(_stamp(st), info.etag, info.size, info.last_modified))
                    rec.flush()
                    return
        progress = make_progress(self.show_progress, st.st_size, f"Uploading {url.normalized()}")
        try:
            etag = upload_file(
                client,
                url.bucket,
                url.prefix,
                path,
                executor=lambda: self.executor,
                progress=progress,
                limiter=self.limiter,
                config=self.transfer_config,
            )
            rec.uploaded("", Entry("", st.st_size, 0.0, etag), st)
        finally:
            progress.close()
            rec.flush()

    # ------------------------------------------------------------------ background + exit

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._background, name="pos3lite-sync", daemon=True
            )
            self._thread.start()
        self._wake.set()

    def _background(self) -> None:
        """The one background thread: runs due ticks one at a time (never overlapping),
        sleeping until the next is due; uploads only (see ``policy.deletes_in``)."""
        while not self._stop.is_set():
            with self._lock:
                due = self.scheduler.due()
                regs = [(k, self._uploads.get(k)) for k in due]  # type: ignore[call-overload]
                nxt = self.scheduler.next_due()
            for key, r in regs:
                try:
                    if r is None or self._stop.is_set():
                        continue
                    with self._sync_lock:
                        if self._stop.is_set():
                            continue
                        self._sync_upload(r, policy.Phase.TICK)
                except Exception as exc:
                    # Logged and retried on the next tick; the final sync raises.
                    logger.warning(
                        "background upload of %s failed (retrying in %s s): %s",
                        r.url if r is not None else key,
                        r.interval if r is not None else "?",
                        exc,
                    )
                finally:
                    with self._lock:
                        self.scheduler.done(key)
            if regs:
                continue
            wait = TICK_SECONDS if nxt is None else max(0.0, nxt - time.monotonic())
            self._wake.wait(min(wait, TICK_SECONDS))
            self._wake.clear()

    def flush(self, remote: str | None) -> None:
        """Upload the pending changes of one registration (``remote``) or all, now."""
        self._require_open()
        with self._lock:
            if remote is None:
                regs = list(self._uploads.values())
            else:
                if not is_s3_url(remote):
                    raise ConfigError(f"flush() needs an s3:// URL, got: {remote!r}")
                url = parse_s3_url(remote)
                regs = [r for r in self._uploads.values() if r.url == url.normalized()]
                if not regs:
                    raise ConfigError(f"flush(): no upload or sync is registered for {remote!r}")
        failures: list[BaseException] = []
        with self._sync_lock:
            for r in regs:
                try:
                    self._sync_upload(r, policy.Phase.FLUSH)
                except TransferError as exc:
                    failures.extend(exc.failures)
                except Exception as exc:
                    failures.append(exc)
        if failures:
            raise TransferError("Upload", failures)

    def _final_sync(self, exc: BaseException | None) -> None:
        ending = policy.classify(exc)
        with self._lock:
            regs = list(self._uploads.values())
        decision = policy.exit_plan(ending, [(r.url, r.sync_on_error) for r in regs])
        for name in decision.skip:
            logger.warning(
                "not uploading %s: the mirror exited with %s and the registration has "
                "sync_on_error=False",
                name,
                type(exc).__name__,
            )
        run = [r for r in regs if r.url in decision.run]
        if not run:
            return
        failures: list[BaseException] = []
        with self._sync_lock:
            for r in run:
                try:
                    self._sync_upload(r, policy.Phase.FINAL)
                except Exception as e:
                    logger.error("final upload of %s failed: %s", r.url, e)
                    failures.append(e)
        if not failures or not decision.raise_failures:
            return
        if len(failures) == 1:
            raise failures[0]
        flat: list[BaseException] = []
        for f in failures:
            flat.extend(f.failures if isinstance(f, TransferError) else [f])
        raise TransferError("Upload", flat)

    # ------------------------------------------------------------------ sync, ls, plans

    def sync(
        self,
        remote: str,
        local: str | os.PathLike[str] | None,
        interval: float | None,
        delete_local: bool,
        delete_remote: bool,
        sync_on_error: bool,
        exclude: Sequence[str] | None,
        profile: str | Profile | None,
        follow_symlinks: bool = False,
    ) -> Path:
        self._require_open()
        if not is_s3_url(remote):
            check_local_path(remote)
            effective_profile(None, profile, self.default_profile)
            return Path(remote).expanduser().resolve()
        url = parse_s3_url(remote)
        p = effective_profile(url.profile, profile, self.default_profile)
        local_path = self._local_path(url, local, p)
        norm = url.normalized()
        with self._lock:
            self._check_conflicts(norm, p, self._downloads.values(), "sync", "download")
            self._check_conflicts(norm, p, self._uploads.values(), "sync", "upload")
            what = f"sync of {norm}"
            self._check_local_overlap(local_path, what, uploading=True)
            claim = self._claim(local_path, exclusive=True, what=what)
        try:
            reg = _Download(norm, local_path, delete_local, tuple(exclude or ()), p)
            self._perform_download(
                url, reg, two_way=True, missing_ok=True, cache_folder=local is None
            )
            return self.upload(
                remote,
                local_path,
                interval,
                delete_remote,
                sync_on_error,
                exclude,
                profile,
                follow_symlinks,
                claim=claim,
            )
        except BaseException:
            if claim is not None:
                self.registry.release(claim)
            raise

    def ls(self, prefix: str, recursive: bool, profile: str | Profile | None) -> list[str]:
        self._require_open()
        if not is_s3_url(prefix):
            check_local_path(prefix)
            effective_profile(None, profile, self.default_profile)
            return _ls_local(prefix, recursive)
        url = parse_s3_url(prefix)
        client = self.client(effective_profile(url.profile, profile, self.default_profile))
        key = url.key
        denied: AccessDeniedError | None = None
        if key and not key.endswith("/"):
            try:
                client.head_object(url.bucket, key)
                return [f"s3://{url.bucket}/{key}"]
            except NotFoundError:
                key += "/"
            except AccessDeniedError as exc:  # prefix-scoped policy: list key/ instead
                denied = exc
                key += "/"
        out: list[str] = []
        for window in (self.list_concurrency, 1) if recursive else (1,):
            out = []
            try:
                for item in client.list_objects(
                    url.bucket,
                    key,
                    delimiter=None if recursive else "/",
                    page_size=scan_module.LIST_PAGE_SIZE,
                    concurrency=window,
                ):
                    name = item if isinstance(item, str) else item.key
                    if name == key:
                        continue
                    out.append(f"s3://{url.bucket}/{name}")
            except ListingOrderError:
                continue  # a store out of byte order: listed again sequentially
            break
        if denied is not None and not out:
            raise denied
        # S3 lists in UTF-8 byte order; compatible stores (SeaweedFS) may not.
        out.sort(key=engine_diff.sort_key)
        return out

    def _plan_target(
        self,
        what: str,
        remote: str,
        local: str | os.PathLike[str] | None,
        profile: str | Profile | None,
    ) -> tuple[S3URL, Profile | None, Path]:
        """The ``(url, profile, local folder)`` a ``plan_*`` call is about; ConfigError names
        a ``remote`` that is not an ``s3://`` URL (plans compare with S3, never two folders)."""
        self._require_open()
        if not is_s3_url(remote):
            raise ConfigError(f"{what} requires an s3:// URL, got: {remote!r}")
        url = parse_s3_url(remote)
        p = effective_profile(url.profile, profile, self.default_profile)
        return url, p, self._local_path(url, local, p)

    def plan_download(
        self,
        remote: str,
        local: str | os.PathLike[str] | None,
        exclude: Sequence[str] | None,
        profile: str | Profile | None,
        delete: bool = True,
    ) -> TransferPlan:
        url, p, target = self._plan_target("plan_download", remote, local, profile)
        base = self._base_view(_state_name(url.normalized(), p, target))
        scan, _, plan = self._plan_download(
            self.client(p),
            url,
            target,
            delete=delete,
            exclude=exclude or (),
            what=f"plan {url.normalized()}",
            base=base,
            keys_only=True,
        )
        if scan.obj is not None:
            changed, _ = self._object_changed(scan.obj, target, base.get(""))
            pairs = [(f"s3://{url.bucket}/{url.key}", str(target))] if changed else []
            return TransferPlan(pairs, [])
        if plan is None:
            raise RemoteNotFoundError(url.normalized())
        assert plan.copy_keys is not None and plan.delete_keys is not None
        # Pairs and paths are made when read: a plan of millions of files holds only its
        # keys (see engine/compact.py). Keys are safe relative paths (checked by the scan
        # and the walk), so joining them as strings gives what Path.joinpath gave.
        root = str(target)
        source = f"s3://{url.bucket}/{scan.key_prefix}"
        return TransferPlan(
            PairList(plan.copy_keys, lambda k: (source + k, os.path.join(root, k))),
            StrList(plan.delete_keys, lambda k: os.path.join(root, k), reverse=True),
        )

    def plan_sync(
        self,
        remote: str,
        local: str | os.PathLike[str] | None,
        exclude: Sequence[str] | None,
        profile: str | Profile | None,
        delete_local: bool = True,
        delete_remote: bool = True,
    ) -> tuple[TransferPlan, TransferPlan]:
        """What :meth:`sync` followed by its final upload would do now: ``(download phase,
        upload phase)``, each as a :class:`TransferPlan` (the CLI's ``sync --dry-run``)."""
        url, p, target = self._plan_target("plan_sync", remote, local, profile)
        client = self.client(p)
        base = self._base_view(_state_name(url.normalized(), p, target))
        scan, _, down = self._plan_download(
            client,
            url,
            target,
            delete=delete_local,
            exclude=exclude or (),
            what=f"plan {url.normalized()}",
            base=base,
            two_way=True,
        )
        if scan.obj is not None:
            raise ConfigError(f"sync needs a prefix, {url.normalized()} is an object")
        down = down or Plan()
        key_prefix = url.prefix + "/" if url.prefix else ""

        def rurl(key: str) -> str:
            return f"s3://{url.bucket}/{key_prefix}{key}"

        def lpath(key: str) -> str:
            return str(target.joinpath(*key.split("/")))

        fetched = {a.key for a in down.copies}
        removed = {a.key for a in down.deletes}
        files = [a for a in down.copies if not a.key.endswith("/")]
        down_plan = TransferPlan(
            [(rurl(a.key), lpath(a.key)) for a in files],
            [lpath(a.key) for a in down.deletes if not a.key.endswith("/")],
        )
        if not target.is_dir():
            return down_plan, TransferPlan([], [])
        up = self._plan_upload(
            client,
            url,
            target,
            delete=delete_remote,
            exclude=exclude or (),
            what=f"plan {url.normalized()}",
            base=base,
        )
        up_plan = TransferPlan(
            [
                (lpath(a.key), rurl(a.key))
                for a in up.copies
                if not a.key.endswith("/") and a.key not in fetched and a.key not in removed
            ],
            [rurl(a.key) for a in up.deletes if not a.key.endswith("/") and a.key not in fetched],
        )
        return down_plan, up_plan

    def plan_upload(
        self,
        remote: str,
        local: str | os.PathLike[str] | None,
        exclude: Sequence[str] | None,
        profile: str | Profile | None,
        delete: bool = True,
    ) -> TransferPlan:
        url, p, root = self._plan_target("plan_upload", remote, local, profile)
        if not root.exists():
            raise FileNotFoundError(f"upload source does not exist: {str(root)!r}")
        key_prefix = url.prefix + "/" if url.prefix else ""
        plan = self._plan_upload(
            self.client(p),
            url,
            root,
            delete=delete,
            exclude=exclude or (),
            what=f"plan {url.normalized()}",
            base=self._base_view(_state_name(url.normalized(), p, root)),
            folder_markers=p.folder_markers if p else True,
        )
        copies = [
            (str(root.joinpath(*a.key.split("/"))), f"s3://{url.bucket}/{key_prefix}{a.key}")
            for a in plan.copies
            if not a.key.endswith("/")
        ]
        deletes = [
            f"s3://{url.bucket}/{key_prefix}{a.key}"
            for a in plan.deletes
            if not a.key.endswith("/")
        ]
        return TransferPlan(copies, deletes)


def _ls_local(prefix: str, recursive: bool) -> list[str]:
    display = Path(prefix).expanduser()
    path = display.resolve()
    if path.is_file():
        return [str(display)]
    if not path.is_dir():
        return []
    if recursive:
        return [
            str(display / e.key) + ("/" if e.key.endswith("/") else "") for e in walk(path).entries
        ]
    out = []
    for child in sorted(path.iterdir(), key=lambda c: c.name.encode("utf-8", "surrogateescape")):
        out.append(str(display / child.name) + ("/" if child.is_dir() else ""))
    return out


# ---------------------------------------------------------------------- process-wide state

_ACTIVE: contextvars.ContextVar[_Mirror | None] = contextvars.ContextVar(
    "pos3lite_active_mirror", default=None
)
_GLOBAL: _Mirror | None = None
_GLOBAL_LOCK = threading.Lock()


def _require_active() -> _Mirror:
    m = _ACTIVE.get() or _GLOBAL
    if m is None:
        raise MirrorStateError("No active mirror context")
    return m


@contextmanager
def mirror(
    cache_root: str | os.PathLike[str] | None = None,
    show_progress: bool = True,
    max_workers: int = 10,
    default_profile: str | Profile | None = None,
    max_upload_bytes_per_second: float | None = None,
    *,
    compare: str = "size_mtime",
    max_attempts: int = 5,
    connect_timeout: float = 10.0,
    read_timeout: float = 60.0,
    payload_signing: str = "auto",
    handle_sigterm: bool = True,
    list_concurrency: int = 8,
) -> Iterator[None]:
    """Open the mirror context (pos3-compatible); the context value is ``None``.

    Args:
        cache_root: folder for cached copies (``<cache_root>/<profile local_name or _>/
            <bucket>/<key>``); ``None`` means ``$POS3LITE_CACHE_ROOT`` or
            ``~/.cache/positronic/s3/`` (see :func:`default_cache_root`). Not created until
            something is written.
        show_progress: draw tqdm byte bars on stderr.
        max_workers: worker threads (and pooled connections per endpoint), >= 1.
        default_profile: a profile name or :class:`Profile` used when neither the URL nor
            the call names one; resolved on entry.
        max_upload_bytes_per_second: one cap (bytes/s) shared by every upload; ``None`` for
            none. Downloads are not limited.
        compare: change detection, ``"size_mtime"`` (default), ``"size"`` (pos3's) or
            ``"checksum"`` (MD5 against single-part ETags).
        max_attempts: attempts per request, first included (throttling, 5xx, resets,
            timeouts, truncated bodies and checksum mismatches are retried with
            exponential backoff and full jitter, capped at 20 s).
        connect_timeout: seconds to open a connection.
        read_timeout: seconds a socket may stay silent mid-request (an idle timeout, not a
            deadline: a slow transfer that keeps moving never times out).
        payload_signing: ``"auto"`` signs each body's SHA-256 over plain HTTP and sends
            ``UNSIGNED-PAYLOAD`` over HTTPS; ``"signed"`` / ``"unsigned"`` force one way
            (cost: one SHA-256 pass over every uploaded byte, see benchmarks/RESULTS.md).
        handle_sigterm: while the mirror is active in the main thread and SIGTERM has its
            default action, SIGTERM raises ``SystemExit(143)`` so the final sync runs (a
            Kubernetes stop); the previous handler is restored on exit. ``False`` opts out.
        list_concurrency: ListObjectsV2 listings run at once for a remote prefix longer
            than one page (1,000 keys): the rest is split on ``/`` and each top-level folder
            listed on its own, this many at once (see ``pos3lite.s3.listing``, "Adaptive
            split"); a prefix that fits one page costs one request either way. ``1`` lists
            every prefix sequentially. New in pos3lite.

    Exit: a normal end, ``KeyboardInterrupt`` and any ``SystemExit`` upload every
    registration (as pos3); an ``Exception`` uploads only ``sync_on_error=True`` ones and
    names each skipped one in a WARNING (see ``pos3lite/mirror/policy.py``).

    Raises:
        MirrorStateError: another mirror is active in this process.
        ProfileError: ``default_profile`` names an unknown profile.
        ValueError: ``max_workers < 1``, ``list_concurrency < 1``, a bad rate or an unknown
            ``compare``.
        TransferError: on a clean exit, when the final upload sync fails.
    """
    if not isinstance(max_workers, int) or max_workers < 1:
        raise ConfigError(f"max_workers must be an int >= 1, got {max_workers!r}")
    make_compare(compare, exact_mtime=True)  # validates the name
    if not isinstance(max_attempts, int) or max_attempts < 1:
        raise ConfigError(f"max_attempts must be an int >= 1, got {max_attempts!r}")
    if payload_signing not in ("auto", "signed", "unsigned"):
        raise ConfigError(
            f"payload_signing must be auto, signed or unsigned, got {payload_signing!r}"
        )
    if not isinstance(list_concurrency, int) or list_concurrency < 1:
        raise ConfigError(f"list_concurrency must be an int >= 1, got {list_concurrency!r}")
    if not (connect_timeout > 0 and read_timeout > 0):
        raise ConfigError(
            f"timeouts must be > 0 seconds, got connect={connect_timeout!r} read={read_timeout!r}"
        )
    limiter = (
        ByteRateLimiter(max_upload_bytes_per_second)
        if max_upload_bytes_per_second is not None
        else None
    )
    default = resolve_profile(default_profile)
    root = default_cache_root() if cache_root is None else Path(cache_root).expanduser().resolve()
    global _GLOBAL
    with _GLOBAL_LOCK:
        if _GLOBAL is not None:
            raise MirrorStateError("Mirror already active")
        m = _Mirror(
            cache_root=root,
            show_progress=show_progress,
            max_workers=max_workers,
            default_profile=default,
            limiter=limiter,
            compare=compare,
            max_attempts=max_attempts,
            timeout=(connect_timeout, read_timeout),
            payload_signing=payload_signing,
            list_concurrency=list_concurrency,
        )
        m.start()
        _GLOBAL = m
    token = _ACTIVE.set(m)
    previous = _install_sigterm(handle_sigterm)
    body_exc: BaseException | None = None
    try:
        yield None
    except BaseException as exc:
        body_exc = exc
        raise
    finally:
        try:
            m.stop(body_exc)
        finally:
            _restore_sigterm(previous)
            with _GLOBAL_LOCK:
                _GLOBAL = None
            try:
                _ACTIVE.reset(token)
            except ValueError:  # exited in another context; the global is already cleared
                _ACTIVE.set(None)


_NOT_INSTALLED = object()


def _on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(policy.SIGTERM_EXIT_CODE)


def _install_sigterm(wanted: bool) -> object:
    """Install the SIGTERM handler if the policy says so; return the previous handler, or
    ``_NOT_INSTALLED``."""
    import signal

    main = threading.current_thread() is threading.main_thread()
    current = signal.getsignal(signal.SIGTERM) if main else None
    if not policy.handles_sigterm(
        wanted=wanted, main_thread=main, default_handler=current is signal.SIG_DFL
    ):
        return _NOT_INSTALLED
    return signal.signal(signal.SIGTERM, _on_sigterm)


def _restore_sigterm(previous: object) -> None:
    if previous is _NOT_INSTALLED:
        return
    import signal

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)  # type: ignore[arg-type]


def _after_fork_in_child() -> None:
    """``os.register_at_fork`` hook: the child gets fresh locks and pools, and never
    uploads the parent's registrations."""
    global _GLOBAL_LOCK
    _GLOBAL_LOCK = threading.Lock()
    m = _GLOBAL
    if m is not None and m.state is State.OPENED:
        m.after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)


def with_mirror(
    cache_root: str | os.PathLike[str] | None = None,
    show_progress: bool = True,
    max_workers: int = 10,
    default_profile: str | Profile | None = None,
    max_upload_bytes_per_second: float | None = None,
    *,
    compare: str = "size_mtime",
    max_attempts: int = 5,
    connect_timeout: float = 10.0,
    read_timeout: float = 60.0,
    payload_signing: str = "auto",
    handle_sigterm: bool = True,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator form of :func:`mirror`: each call of the function runs in a fresh mirror.

    Takes the same arguments as :func:`mirror`; returns a decorator that passes the wrapped
    function's return value through.
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with mirror(
                cache_root,
                show_progress,
                max_workers,
                default_profile,
                max_upload_bytes_per_second,
                compare=compare,
                max_attempts=max_attempts,
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                payload_signing=payload_signing,
                handle_sigterm=handle_sigterm,
            ):
                return fn(*args, **kwargs)

        return wrapper

    return decorate


def download(
    remote: str,
    local: str | os.PathLike[str] | None = None,
    delete: bool = True,
    exclude: Sequence[str] | None = None,
    profile: str | Profile | None = None,
) -> Path:
    """Mirror ``remote`` to a local folder (or file) now and return its local path.

    Args:
        remote: ``s3://[profile@]bucket/key`` (an object, or a prefix; a trailing ``/``
            forces a prefix). A local path is returned resolved, untouched.
        local: destination path; default ``<cache_root>/<profile>/<bucket>/<key>``.
        delete: remove local files that are not in S3 (only after every copy succeeded).
        exclude: glob patterns excluded on both sides (never copied, never deleted).
        profile: profile name or :class:`Profile` (the URL's ``profile@`` wins).

    Returns:
        The local path (a folder for a prefix, a file for an object).

    Raises:
        RemoteNotFoundError: no object and no key under the prefix (nothing is deleted).
        FileNotFoundError: a local ``remote`` path that does not exist.
        TransferError: some files failed (each listed in ``.failures``); no local deletes ran.
        S3Error, TransportError, CredentialsError: listing failed.
        ConfigError: bad URL, unknown profile, conflicting registration.
        MirrorStateError: no active mirror.
    """
    return _require_active().download(remote, local, delete, exclude, profile)


def upload(
    remote: str,
    local: str | os.PathLike[str] | None = None,
    interval: float | None = 300,
    delete: bool = True,
    sync_on_error: bool = False,
    exclude: Sequence[str] | None = None,
    profile: str | Profile | None = None,
    *,
    follow_symlinks: bool = False,
) -> Path:
    """Register a local folder to be mirrored to ``remote``; return the local path.

    Nothing is sent at call time. With ``interval`` (seconds) a background thread uploads
    about 1 s after registration, then ``interval`` seconds after the end of each upload
    (uploads only: remote deletes wait for the exit); the mirror's exit uploads once more
    (see the exit policy in :func:`mirror`). With ``local=None`` the cache folder is created
    so the caller can write into it. A folder that does not exist at exit uploads nothing.
    Only files that changed since the last upload (the sync state) are sent.

    Args:
        follow_symlinks: upload what symlinks point to (loops are detected); by default
            symlinks are skipped (logged at INFO) and their remote keys never deleted.

    Raises:
        ConfigError: bad URL, unknown profile, conflicting registration (also a local folder
            equal to or nested with another registration's, in this or another process).
        MirrorStateError: no active mirror.
        TransferError: never here; the final sync raises it at context exit.
    """
    return _require_active().upload(
        remote, local, interval, delete, sync_on_error, exclude, profile, follow_symlinks
    )


def sync(
    remote: str,
    local: str | os.PathLike[str] | None = None,
    interval: float | None = 300,
    delete_local: bool = True,
    delete_remote: bool = True,
    sync_on_error: bool = False,
    exclude: Sequence[str] | None = None,
    profile: str | Profile | None = None,
    *,
    follow_symlinks: bool = False,
) -> Path:
    """Bring the local folder up to date with ``remote`` now (three-way, from the sync
    state), then register it for upload; return the local folder.

    The download phase keeps local changes: a file changed or created locally is never
    overwritten or deleted (the upload sends it); a file deleted remotely and unchanged
    locally is deleted locally; when both sides changed, the newer wins and the other
    version is kept under ``<cache_root>/.pos3lite/conflicts/``, named in a WARNING.
    A remote prefix that does not exist yet is not an error: with ``local=None`` no folder
    is created (the caller may ``mkdir(exist_ok=False)`` it); with an explicit ``local``
    the folder is created empty. ``follow_symlinks`` as in :func:`upload`. Raises as
    :func:`download` and :func:`upload`.
    """
    return _require_active().sync(
        remote,
        local,
        interval,
        delete_local,
        delete_remote,
        sync_on_error,
        exclude,
        profile,
        follow_symlinks,
    )


def flush(remote: str | None = None) -> None:
    """Upload the pending changes of one registration now and return when they are on S3.

    For a checkpoint save or the end of an episode. Uploads only: remote deletes still wait
    for the mirror's exit (as background ticks). Once a registration's remote prefix was
    listed in this mirror and its last pass succeeded, a flush is incremental (no LIST; see
    ``mirror/ticks.py``): it uploads every local file whose stamp ``(size, st_mtime_ns,
    st_ino, st_ctime_ns)`` differs from the sync state's record or that has none, so it sends
    no request when nothing changed and never misses a local change.

    Args:
        remote: the ``s3://`` URL of an ``upload``/``sync`` registration; ``None`` for all.

    Raises:
        TransferError: some files failed (each in ``.failures``).
        ConfigError: ``remote`` is not registered for upload.
        MirrorStateError: no active mirror.
    """
    _require_active().flush(remote)


def ls(prefix: str, recursive: bool = False, profile: str | Profile | None = None) -> list[str]:
    """List an ``s3://`` prefix or a local folder.

    Returns ``s3://bucket/key`` strings (never with the profile) or local paths, in key
    order; sub-prefixes (non-recursive) and folders end with ``/``. An exact object or a
    local file lists as itself; a missing prefix gives ``[]``.
    """
    return _require_active().ls(prefix, recursive, profile)


def plan_download(
    remote: str,
    local: str | os.PathLike[str] | None = None,
    exclude: Sequence[str] | None = None,
    profile: str | Profile | None = None,
) -> TransferPlan:
    """What :func:`download` with ``delete=True`` would do, without doing it.

    Raises ConfigError for a non-S3 URL, RemoteNotFoundError when nothing is at the URL.
    """
    return _require_active().plan_download(remote, local, exclude, profile)


def plan_upload(
    remote: str,
    local: str | os.PathLike[str] | None = None,
    exclude: Sequence[str] | None = None,
    profile: str | Profile | None = None,
) -> TransferPlan:
    """What an upload sync with ``delete=True`` would do now, without doing it.

    Raises ConfigError for a non-S3 URL, FileNotFoundError for a missing local source.
    """
    return _require_active().plan_upload(remote, local, exclude, profile)


def _rebind_public_name() -> None:
    """Importing this package binds it as ``pos3lite.mirror``; put the function back."""
    import sys

    parent = sys.modules.get("pos3lite")
    if parent is not None:
        parent.mirror = mirror  # type: ignore[attr-defined]


_rebind_public_name()
