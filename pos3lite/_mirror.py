"""The mirror context: lifecycle, registrations, background uploads, exit policy.

One mirror is active per process at a time (as in pos3 0.4.0); it is found through a
ContextVar first and a process-wide fallback second, so threads started inside the context
(including executor threads that do not inherit context variables) see it.

Lifecycle: ``State.UNOPENED -> OPENED -> CLOSED``; illegal transitions raise.

Exit policy (pos3 counted every BaseException, Ctrl-C included, as a clean exit):

======================================  =========================================
how the ``with`` body ends              what the final sync uploads
======================================  =========================================
normally, or ``sys.exit(0)``             every upload registration; errors raise
an Exception, ``KeyboardInterrupt``,     only registrations with
``sys.exit(non-zero)``, other            ``sync_on_error=True``; their errors are
BaseException                            logged, the body's exception propagates
======================================  =========================================

Safety rules (where pos3 loses data, see docs/pos3-differences.md):

* a download whose URL matches no object and no key raises RemoteNotFoundError instead of
  deleting the local copy; a source that lists nothing never deletes the destination;
* deletes run only after every copy succeeded and only from complete listings;
* keys that would land outside the destination are refused and named;
* an upload from a missing local folder raises instead of doing nothing.
"""

from __future__ import annotations

import contextvars
import enum
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from .engine import diff as engine_diff
from .engine.compare import make_compare
from .engine.filters import Filter
from .engine.model import Entry, Plan
from .errors import (
    AccessDeniedError,
    ConfigError,
    KeyConflictError,
    MirrorStateError,
    NotFoundError,
    Pos3liteError,
    RemoteNotFoundError,
    TransferError,
    UnsafeKeyError,
)
from .keys import collisions, conflict_errors
from .localfs import Walk, file_md5, remove_stale_temps, walk
from .profiles import Profile, effective_profile, resolve_profile
from .progress import make_progress
from .transfer import (
    ByteRateLimiter,
    TransferConfig,
    download_object,
    execute_download,
    execute_upload,
    upload_file,
)
from .urls import S3URL, check_local_path, check_relative_key, is_s3_url, parse_s3_url

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from .s3.client import S3Client
    from .transport.base import Transport

__all__ = [
    "DEFAULT_CACHE_ROOT",
    "TransferPlan",
    "default_cache_root",
    "download",
    "ls",
    "mirror",
    "plan_download",
    "plan_upload",
    "sync",
    "upload",
    "with_mirror",
]

logger = logging.getLogger("pos3lite")

#: pos3's default cache root, kept so a drop-in switch reuses a warm cache.
DEFAULT_CACHE_ROOT = "~/.cache/positronic/s3/"
#: Seconds between checks of the background upload thread.
TICK_SECONDS = 1.0
#: Seconds ``mirror`` exit waits for a running background sync to finish.
JOIN_SECONDS = 60.0

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class TransferPlan:
    """What a download or upload would do (pos3-compatible).

    ``to_copy`` is a list of ``(source, destination)`` string pairs: an ``s3://bucket/key``
    URL and a local path, in transfer direction; ``to_delete`` lists the destination paths or
    URLs that ``delete=True`` would remove. Only files are listed (no folders or markers).
    """

    to_copy: list[tuple[str, str]]
    to_delete: list[str]


class State(enum.Enum):
    """Lifecycle of a mirror."""

    UNOPENED = "unopened"
    OPENED = "opened"
    CLOSED = "closed"


def default_cache_root(environ: dict[str, str] | None = None) -> Path:
    """The cache root used when ``mirror(cache_root=None)``.

    ``$POS3LITE_CACHE_ROOT`` if set (Lambda and read-only-HOME containers point it at
    ``/tmp``), else pos3's ``~/.cache/positronic/s3/``; if the home folder cannot be
    determined (arbitrary-UID containers), ``<tempdir>/pos3lite-cache``.
    """
    env = os.environ if environ is None else environ
    override = env.get("POS3LITE_CACHE_ROOT")
    if override:
        return Path(override).expanduser().resolve()
    try:
        return Path(DEFAULT_CACHE_ROOT).expanduser().resolve()
    except RuntimeError:
        import tempfile

        return Path(tempfile.gettempdir(), "pos3lite-cache").resolve()


@dataclass
class _Download:
    url: str
    local_path: Path
    delete: bool
    exclude: tuple[str, ...]
    profile: Profile | None
    ready: threading.Event = field(default_factory=threading.Event, compare=False)
    error: BaseException | None = field(default=None, compare=False)


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
    last_sync: float = field(default=0.0, compare=False)


@dataclass
class _RemoteScan:
    """A complete remote listing: either one exact object or the entries under a prefix."""

    key_prefix: str
    obj: Entry | None = None
    entries: list[Entry] = field(default_factory=list)
    # Refused keys (UnsafeKeyError) and keys colliding under case folding or Unicode
    # normalisation (KeyConflictError): each fails only itself.
    unsafe: list[Pos3liteError] = field(default_factory=list)
    found: bool = False


def _conflict(a: str, b: str) -> bool:
    a, b = a.rstrip("/"), b.rstrip("/")
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def _anchored(key: str) -> str:
    """An exclude pattern matching exactly ``key`` (glob metacharacters escaped)."""
    out = []
    for ch in key.rstrip("/"):
        out.append(f"[{ch}]" if ch in "*?[" else ch)
    return "/" + "".join(out)


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
        self.state = State.UNOPENED
        self._lock = threading.RLock()
        self._sync_lock = threading.Lock()
        self._downloads: dict[tuple[str, Profile | None], _Download] = {}
        self._uploads: dict[tuple[str, Profile | None], _Upload] = {}
        self._clients: dict[Profile | None, S3Client] = {}
        self._transport: Transport | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self.state is not State.UNOPENED:
            raise MirrorStateError(f"cannot start a mirror that is {self.state.value}")
        self.state = State.OPENED

    def stop(self, had_error: bool) -> None:
        if self.state is not State.OPENED:
            raise MirrorStateError(f"cannot stop a mirror that is {self.state.value}")
        try:
            self._stop.set()
            if self._thread is not None:
                self._thread.join(JOIN_SECONDS)
            self._final_sync(had_error)
        finally:
            self.state = State.CLOSED
            if self._executor is not None:
                self._executor.shutdown(wait=True)
            if self._transport is not None:
                self._transport.close()

    def _require_open(self) -> None:
        if self.state is not State.OPENED:
            raise MirrorStateError(f"the mirror is {self.state.value}")

    # ------------------------------------------------------------------ resources

    def client(self, profile: Profile | None) -> S3Client:
        """The S3 client for a profile (one per profile, all sharing one connection pool)."""
        with self._lock:
            found = self._clients.get(profile)
            if found is not None:
                return found
            from .auth.credentials import provider_for, resolve_endpoint, resolve_region
            from .s3.client import S3Client
            from .s3.retry import Retry

            if self._transport is None:
                from .transport.urllib3 import Urllib3Transport

                self._transport = Urllib3Transport(
                    max_connections=self.max_workers, timeout=self.timeout
                )
            made = S3Client(
                self._transport,
                region=resolve_region(profile),
                endpoint=resolve_endpoint(profile),
                credentials=provider_for(profile),
                addressing_style=profile.addressing_style if profile else "auto",
                retry=Retry(max_attempts=self.max_attempts),
                payload_signing=self.payload_signing,
                verify_etag=profile.verify_etag if profile else "auto",
            )
            self._clients[profile] = made
            return made

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
        self, client: S3Client, url: S3URL, exclude: Sequence[str] = ()
    ) -> _RemoteScan:
        key = url.key
        denied: AccessDeniedError | None = None
        if key and not key.endswith("/"):
            try:
                info = client.head_object(url.bucket, key)
            except NotFoundError:
                pass
            except AccessDeniedError as exc:
                # A prefix-scoped policy denies HEAD on the bare prefix: list key/ instead,
                # and re-raise this error only if nothing comes back (a listing error, e.g.
                # SignatureDoesNotMatch for a wrong secret, is raised with its own code).
                denied = exc
            else:
                name = key.rsplit("/", 1)[-1]
                obj = Entry(name, info.size, info.last_modified, info.etag)
                return _RemoteScan(key_prefix=key, obj=obj, found=True)
            key += "/"
        scan = _RemoteScan(key_prefix=key)
        skip = Filter(list(exclude))
        for item in client.list_objects(url.bucket, key):
            assert not isinstance(item, str)
            scan.found = True
            rel = item.key[len(key) :]
            if not rel:
                continue  # the prefix's own directory marker
            try:
                check_relative_key(rel[:-1] if rel.endswith("/") else rel)
            except UnsafeKeyError as exc:
                if skip and skip.excluded(rel):
                    continue  # excluded: never read, never written, never deleted
                logger.error("refusing key %r under %s: %s", item.key, url.normalized(), exc)
                scan.unsafe.append(UnsafeKeyError(item.key, exc.reason))
                continue
            size = 0 if rel.endswith("/") else item.size
            scan.entries.append(Entry(rel, size, item.last_modified, item.etag))
        if denied is not None and not scan.found:
            raise denied
        # S3 lists in UTF-8 byte order; compatible stores may not. The engine needs it.
        scan.entries.sort(key=lambda e: engine_diff.sort_key(e.key))
        return scan

    def _with_md5(self, entries: list[Entry], root: Path) -> list[Entry]:
        """Local entries with their MD5 filled in (checksum comparison), hashed in parallel."""
        files = [e for e in entries if not e.key.endswith("/")]
        digests = dict(
            zip(
                (e.key for e in files),
                self.executor.map(lambda e: file_md5(root.joinpath(*e.key.split("/"))), files),
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
        remote_src: bool = False,
        failures: list[Pos3liteError] | None = None,
    ) -> Plan:
        # A 0-byte object "x" where the local side has the folder "x/" is that folder's
        # marker as servers that store "x/" as a file (rclone) list it.
        local = dst if remote_src else src
        folders = {e.key[:-1] for e in local if e.key.endswith("/")}
        if folders:
            remote = [
                Entry(e.key + "/", 0, e.mtime, e.etag)
                if e.size == 0 and e.key in folders
                else e
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
        if delete and not src and dst:
            # A source that lists nothing never empties the destination: an empty or
            # mistyped source is far more often a mistake than an intent (aws-cli#1564).
            logger.warning(
                "%s: the source is empty; not deleting anything at the destination", what
            )
            delete = False
        patterns = list(exclude) + [_anchored(k) for k in protected]
        plan = engine_diff.plan(
            src,
            dst,
            compare=make_compare(self.compare, exact_mtime=exact_mtime),
            delete=delete,
            exclude=Filter(patterns),
        )
        if plan.fallbacks:
            logger.info(
                "%s: %d object(s) have multipart ETags; compared by size and mtime instead",
                what,
                len(plan.fallbacks),
            )
        return plan

    # ------------------------------------------------------------------ download

    def download(
        self,
        remote: str,
        local: str | os.PathLike[str] | None,
        delete: bool,
        exclude: Sequence[str] | None,
        profile: str | Profile | None,
        *,
        missing_ok: bool = False,
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
                self._downloads[regkey] = reg
        if existing is not None:
            existing.ready.wait()
            if existing.error is not None:
                raise existing.error
            return existing.local_path
        try:
            self._perform_download(url, reg, missing_ok=missing_ok)
        except BaseException as exc:
            reg.error = exc
            with self._lock:
                self._downloads.pop(regkey, None)
            raise
        finally:
            reg.ready.set()
        return local_path

    def _plan_download(
        self,
        client: S3Client,
        url: S3URL,
        target: Path,
        *,
        delete: bool,
        exclude: Sequence[str],
        what: str,
    ) -> tuple[_RemoteScan, Walk, Plan | None]:
        """Scan both sides of a download and plan it; the one planner behind
        :meth:`download` and :meth:`plan_download`, so a plan shows exactly what a
        download would do. The plan is ``None`` for an exact object or nothing found."""
        # Walk the local side while the remote side is listed (the two are independent).
        walking = (
            self.executor.submit(walk, target, follow_dir_links=False) if target.is_dir() else None
        )
        scan = self._scan_remote(client, url, exclude)
        if scan.obj is not None or not scan.found:
            return scan, Walk(), None
        if target.exists() and not target.is_dir():
            raise ConfigError(
                f"local path {str(target)!r} is a file, but {url.normalized()} is a prefix "
                "(a folder is expected)"
            )
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
            remote_src=True,
            failures=scan.unsafe,
        )
        return scan, local, plan

    def _object_changed(self, obj: Entry, target: Path) -> bool:
        """Whether the local file ``target`` differs from the object ``obj`` (or is absent)."""
        if not target.is_file():
            return True
        st = target.stat()
        md5 = file_md5(target) if self.compare == "checksum" else None
        mine = Entry(obj.key, st.st_size, st.st_mtime, md5)
        return make_compare(self.compare, exact_mtime=True).differs(obj, mine) is not None

    def _perform_download(self, url: S3URL, reg: _Download, *, missing_ok: bool) -> None:
        client = self.client(reg.profile)
        target = reg.local_path
        scan, local, plan = self._plan_download(
            client,
            url,
            target,
            delete=reg.delete,
            exclude=reg.exclude,
            what=f"download {url.normalized()}",
        )
        if scan.obj is not None:
            self._download_object(client, url, scan.obj, target)
            return
        if plan is None:
            if not missing_ok:
                raise RemoteNotFoundError(url.normalized() + ("/" if url.key.endswith("/") else ""))
            target.mkdir(parents=True, exist_ok=True)
            return
        total = sum(a.src.size for a in plan.copies if a.src is not None)
        progress = make_progress(self.show_progress, total, f"Downloading {url.normalized()}")
        try:
            target.mkdir(parents=True, exist_ok=True)
            execute_download(
                plan,
                client=client,
                bucket=url.bucket,
                key_prefix=scan.key_prefix,
                local_root=target,
                executor=self.executor,
                progress=progress,
                delete=reg.delete,
                window=self.max_workers * 2,
                extra_failures=scan.unsafe,
                config=self.transfer_config,
            )
            if local.temp_files:
                n = remove_stale_temps(local, now=time.time())
                if n:
                    logger.info("removed %d stale temporary file(s) under %s", n, target)
        finally:
            progress.close()

    def _download_object(self, client: S3Client, url: S3URL, obj: Entry, target: Path) -> None:
        if target.is_dir():
            raise TransferError(
                "Download",
                [KeyConflictError(url.key, f"is an object but {str(target)!r} is a folder")],
            )
        if not self._object_changed(obj, target):
            return
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
        finally:
            progress.close()

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
    ) -> Path:
        self._require_open()
        if not is_s3_url(remote):
            check_local_path(remote)
            effective_profile(None, profile, self.default_profile)
            path = Path(remote).expanduser().resolve()
            path.mkdir(parents=True, exist_ok=True)
            return path
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
            last_sync=time.monotonic(),
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
            if local is None:
                # The cache folder is ours: create it so the caller can write into it.
                local_path.mkdir(parents=True, exist_ok=True)
            self._uploads[regkey] = reg
            if interval is not None:
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

    def _sync_upload(self, reg: _Upload) -> None:
        root = reg.local_path
        if not root.exists():
            raise TransferError(
                "Upload", [FileNotFoundError(f"upload source does not exist: {str(root)!r}")]
            )
        client = self.client(reg.profile)
        url = reg.raw
        key_prefix = url.prefix + "/" if url.prefix else ""
        if root.is_file():
            self._upload_file(client, url, root)
            return
        failures: list[Pos3liteError] = []
        plan = self._plan_upload(
            client,
            url,
            root,
            delete=reg.delete,
            exclude=reg.exclude,
            what=f"upload {reg.url}",
            folder_markers=reg.profile.folder_markers if reg.profile else True,
            failures=failures,
        )
        total = sum(a.src.size for a in plan.copies if a.src is not None)
        progress = make_progress(self.show_progress, total, f"Uploading {reg.url}")
        try:
            execute_upload(
                plan,
                client=client,
                bucket=url.bucket,
                key_prefix=key_prefix,
                local_root=root,
                executor=self.executor,
                progress=progress,
                delete=reg.delete,
                window=self.max_workers * 2,
                limiter=self.limiter,
                config=self.transfer_config,
                extra_failures=failures,
            )
        finally:
            progress.close()

    def _plan_upload(
        self,
        client: S3Client,
        url: S3URL,
        root: Path,
        *,
        delete: bool,
        exclude: Sequence[str],
        what: str,
        folder_markers: bool = True,
        failures: list[Pos3liteError] | None = None,
    ) -> Plan:
        """Scan both sides of an upload of the folder ``root`` and plan it; the one planner
        behind upload syncs and :meth:`plan_upload`. Keys that fail at plan time (case-fold
        twins) are appended to ``failures``; ``folder_markers=False`` plans no markers."""
        key_prefix = url.prefix + "/" if url.prefix else ""
        walking = self.executor.submit(walk, root)  # overlaps with the remote listing
        remote = self._scan_remote(client, S3URL(url.bucket, key_prefix, url.profile), exclude)
        local = walking.result()
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
            failures=twins,
        )
        if remote.unsafe and plan.deletes:
            # Keys we refused to read make the remote listing incomplete for deleting.
            plan = Plan(plan.copies, (), plan.conflicts, plan.fallbacks, plan.unchanged)
        if not folder_markers:
            copies = tuple(a for a in plan.copies if not a.key.endswith("/"))
            plan = Plan(copies, plan.deletes, plan.conflicts, plan.fallbacks, plan.unchanged)
        if failures is not None:
            failures.extend(twins)
        return plan

    def _upload_file(self, client: S3Client, url: S3URL, path: Path) -> None:
        """Upload one local file to the URL's key (an upload registered on a file path)."""
        st = path.stat()
        try:
            info = client.head_object(url.bucket, url.prefix)
        except NotFoundError:
            info = None
        if info is not None:
            mine = Entry(path.name, st.st_size, st.st_mtime)
            theirs = Entry(path.name, info.size, info.last_modified, info.etag)
            if self.compare == "checksum":
                mine = Entry(path.name, st.st_size, st.st_mtime, file_md5(path))
            if make_compare(self.compare, exact_mtime=False).differs(mine, theirs) is None:
                return
        progress = make_progress(self.show_progress, st.st_size, f"Uploading {url.normalized()}")
        try:
            upload_file(
                client,
                url.bucket,
                url.prefix,
                path,
                executor=lambda: self.executor,
                progress=progress,
                limiter=self.limiter,
                config=self.transfer_config,
            )
        finally:
            progress.close()

    # ------------------------------------------------------------------ background + exit

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._background, name="pos3lite-sync", daemon=True
            )
            self._thread.start()

    def _background(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            now = time.monotonic()
            with self._lock:
                due = [
                    r
                    for r in self._uploads.values()
                    if r.interval is not None and now - r.last_sync >= r.interval
                ]
                for r in due:
                    r.last_sync = now
            if not due:
                continue
            with self._sync_lock:
                for r in due:
                    if self._stop.is_set():
                        return
                    try:
                        self._sync_upload(r)
                    except Exception as exc:
                        # Logged and retried on the next interval tick; the final sync raises.
                        logger.warning(
                            "background upload of %s failed (retrying in %s s): %s",
                            r.url,
                            r.interval,
                            exc,
                        )

    def _final_sync(self, had_error: bool) -> None:
        with self._lock:
            regs = [r for r in self._uploads.values() if r.sync_on_error or not had_error]
        if not regs:
            return
        failures: list[BaseException] = []
        with self._sync_lock:
            for r in regs:
                try:
                    self._sync_upload(r)
                except Exception as exc:
                    logger.error("final upload of %s failed: %s", r.url, exc)
                    failures.append(exc)
        if not failures or had_error:
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
    ) -> Path:
        if not is_s3_url(remote):
            check_local_path(remote)
            effective_profile(None, profile, self.default_profile)
            return Path(remote).expanduser().resolve()
        local_path = self.download(remote, local, delete_local, exclude, profile, missing_ok=True)
        url = parse_s3_url(remote)
        p = effective_profile(url.profile, profile, self.default_profile)
        with self._lock:
            self._downloads.pop((url.normalized(), p), None)
        return self.upload(
            remote, local_path, interval, delete_remote, sync_on_error, exclude, profile
        )

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
        out = []
        for item in client.list_objects(url.bucket, key, delimiter=None if recursive else "/"):
            name = item if isinstance(item, str) else item.key
            if name == key:
                continue
            out.append(f"s3://{url.bucket}/{name}")
        if denied is not None and not out:
            raise denied
        # S3 lists in UTF-8 byte order; compatible stores (SeaweedFS) may not.
        out.sort(key=engine_diff.sort_key)
        return out

    def plan_download(
        self,
        remote: str,
        local: str | os.PathLike[str] | None,
        exclude: Sequence[str] | None,
        profile: str | Profile | None,
        delete: bool = True,
    ) -> TransferPlan:
        self._require_open()
        if not is_s3_url(remote):
            raise ConfigError(f"plan_download requires an s3:// URL, got: {remote!r}")
        url = parse_s3_url(remote)
        p = effective_profile(url.profile, profile, self.default_profile)
        target = self._local_path(url, local, p)
        scan, _, plan = self._plan_download(
            self.client(p),
            url,
            target,
            delete=delete,
            exclude=exclude or (),
            what=f"plan {url.normalized()}",
        )
        if scan.obj is not None:
            changed = self._object_changed(scan.obj, target)
            pairs = [(f"s3://{url.bucket}/{url.key}", str(target))] if changed else []
            return TransferPlan(pairs, [])
        if plan is None:
            raise RemoteNotFoundError(url.normalized())
        copies = [
            (f"s3://{url.bucket}/{scan.key_prefix}{a.key}", str(target.joinpath(*a.key.split("/"))))
            for a in plan.copies
            if not a.key.endswith("/")
        ]
        deletes = [
            str(target.joinpath(*a.key.split("/"))) for a in plan.deletes if not a.key.endswith("/")
        ]
        return TransferPlan(copies, deletes)

    def plan_upload(
        self,
        remote: str,
        local: str | os.PathLike[str] | None,
        exclude: Sequence[str] | None,
        profile: str | Profile | None,
        delete: bool = True,
    ) -> TransferPlan:
        self._require_open()
        if not is_s3_url(remote):
            raise ConfigError(f"plan_upload requires an s3:// URL, got: {remote!r}")
        url = parse_s3_url(remote)
        p = effective_profile(url.profile, profile, self.default_profile)
        root = self._local_path(url, local, p)
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

    Raises:
        MirrorStateError: another mirror is active in this process.
        ProfileError: ``default_profile`` names an unknown profile.
        ValueError: ``max_workers < 1``, a bad rate or an unknown ``compare``.
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
        )
        m.start()
        _GLOBAL = m
    token = _ACTIVE.set(m)
    had_error = False
    try:
        yield None
    except SystemExit as exc:
        had_error = exc.code not in (None, 0)
        raise
    except BaseException:
        had_error = True
        raise
    finally:
        try:
            m.stop(had_error)
        finally:
            with _GLOBAL_LOCK:
                _GLOBAL = None
            try:
                _ACTIVE.reset(token)
            except ValueError:  # exited in another context; the global is already cleared
                _ACTIVE.set(None)


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
) -> Path:
    """Register a local folder to be mirrored to ``remote``; return the local path.

    Nothing is sent at call time. With ``interval`` (seconds) a background thread uploads
    every ``interval`` seconds (first after ``interval``); the mirror's exit uploads once
    more (see the exit policy in the module docs). With ``local=None`` the cache folder is
    created so the caller can write into it.

    Raises:
        ConfigError: bad URL, unknown profile, conflicting registration.
        MirrorStateError: no active mirror.
        TransferError: never here; the final sync raises it at context exit.
    """
    return _require_active().upload(
        remote, local, interval, delete, sync_on_error, exclude, profile
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
) -> Path:
    """Download ``remote`` now, then register the same folder for upload (pos3 semantics).

    A remote prefix that does not exist yet is not an error here: the local folder is
    created empty. Returns the local folder. Raises as :func:`download` and :func:`upload`.
    """
    return _require_active().sync(
        remote, local, interval, delete_local, delete_remote, sync_on_error, exclude, profile
    )


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
