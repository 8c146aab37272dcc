"""Registrations' local folders: overlap rules, in one process and across processes.

Rules:

* Two registrations whose resolved local folders are equal or nested, where at least one
  uploads (``upload`` or ``sync``), are refused with an error naming both: one would delete
  or overwrite the other's files before they are uploaded. Downloads may overlap.
* Across processes the same rule is held with advisory ``fcntl.flock`` locks on one small
  file per local folder under ``<cache_root>/.pos3lite/locks/``: shared for a download,
  exclusive for an upload or sync. The file records the holder's pid, kind and URL, which
  the error names. A lock file nobody holds is stale and removed. One ``registry.lock``
  serialises the check-and-take so two processes cannot both pass the check.
* Downloads into the same folder from several processes run one after the other
  (:meth:`Registry.transfer_lock`, a blocking exclusive flock): the second then finds
  nothing to do.
* A lock is released when the mirror closes (or the process dies: the kernel drops it).
  After ``fork()`` the child forgets the parent's locks without releasing them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..localfs.cache import ensure_cache_root
from .state import META_DIR

__all__ = ["Claim", "Registry", "overlaps"]

logger = logging.getLogger(__name__)

LOCKS_DIR = "locks"


def overlaps(a: Path, b: Path) -> bool:
    """True if the folders ``a`` and ``b`` are equal or one is inside the other."""
    return a == b or a in b.parents or b in a.parents


@dataclass(slots=True)
class Claim:
    """A held registration lock (``fd`` is ``-1`` once released)."""

    path: Path
    exclusive: bool
    fd: int
    what: str


def _name(path: Path) -> str:
    return hashlib.sha256(os.fsencode(path)).hexdigest()[:32]


class Registry:
    """Cross-process registration locks under one cache root (see the module rules)."""

    def __init__(self, cache_root: Path) -> None:
        self.dir = cache_root / META_DIR / LOCKS_DIR
        self._held: list[Claim] = []

    def _ensure_dir(self) -> None:
        ensure_cache_root(self.dir.parent.parent)  # 0700 when this is the first write
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    @contextlib.contextmanager
    def _registry_lock(self) -> Iterator[None]:
        self._ensure_dir()
        fd = os.open(self.dir / "registry.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def claim(self, path: Path, *, exclusive: bool, what: str) -> Claim:
        """Take the lock for the local folder ``path``.

        Args:
            path: the resolved local folder (or file).
            exclusive: True for an upload or sync, False for a download.
            what: the registration, for the other process's error (``"upload of s3://..."``).

        Raises:
            ConfigError: another process holds an overlapping registration where one of the
                two uploads; the message names both folders, the other's registration and
                its pid.
        """
        mine = {c.path for c in self._held if c.fd >= 0}
        with self._registry_lock():
            for entry in os.scandir(self.dir):
                if not entry.name.endswith(".lock") or entry.name == "registry.lock":
                    continue
                info = _read(entry.path)
                if info is None:
                    continue
                other = Path(info[3])
                if other in mine or not overlaps(path, other):
                    continue
                self._probe(entry.path, path, exclusive, what, info)
            lock_path = self.dir / f"{_name(path)}.lock"
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
                try:
                    fcntl.flock(fd, mode | fcntl.LOCK_NB)
                except BlockingIOError:
                    info = _read(str(lock_path)) or ("?", "?", "?", str(path))
                    raise _refusal(path, what, info) from None
                os.ftruncate(fd, 0)
                kind = "upload" if exclusive else "download"
                os.pwrite(fd, f"{os.getpid()}\n{kind}\n{what}\n{path}\n".encode(), 0)
            except BaseException:
                os.close(fd)
                raise
        claim = Claim(path, exclusive, fd, what)
        self._held.append(claim)
        return claim

    def _probe(
        self, lock_file: str, path: Path, exclusive: bool, what: str, info: tuple[str, ...]
    ) -> None:
        try:
            fd = os.open(lock_file, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass
            else:  # nobody holds it: stale
                with contextlib.suppress(OSError):
                    os.unlink(lock_file)
                return
            if exclusive:
                raise _refusal(path, what, info)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                raise _refusal(path, what, info) from None
        finally:
            os.close(fd)

    def release(self, claim: Claim) -> None:
        """Release one claim (idempotent)."""
        if claim.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(claim.fd)
            claim.fd = -1
        with contextlib.suppress(ValueError):
            self._held.remove(claim)

    def release_all(self) -> None:
        """Release every claim of this registry."""
        for claim in list(self._held):
            self.release(claim)

    def forget_after_fork(self) -> None:
        """In a forked child: drop the inherited claims without unlocking them (an
        ``flock`` lives as long as any copy of the descriptor; the parent keeps its own)."""
        for claim in self._held:
            with contextlib.suppress(OSError):
                os.close(claim.fd)
            claim.fd = -1
        self._held = []

    @contextlib.contextmanager
    def transfer_lock(self, path: Path) -> Iterator[None]:
        """Hold an exclusive lock for transferring into ``path`` (blocks while another
        process downloads into the same folder)."""
        self._ensure_dir()
        fd = os.open(self.dir / f"{_name(path)}.xfer", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                    break
                except InterruptedError:  # pragma: no cover - EINTR on old kernels
                    continue
                except OSError as exc:  # pragma: no cover
                    if exc.errno != errno.EINTR:
                        raise
            yield
        finally:
            os.close(fd)


def _read(path: str) -> tuple[str, str, str, str] | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().split("\n")
    except OSError:
        return None
    if len(lines) < 4 or not lines[3]:
        return None
    return lines[0], lines[1], lines[2], lines[3]


def _refusal(path: Path, what: str, info: tuple[str, ...]) -> ConfigError:
    pid, kind, other_what, other_path = info[:4]
    return ConfigError(
        f"Conflict: {what} into {str(path)!r} overlaps {other_what} into {other_path!r} "
        f"held by process {pid} ({kind}); local folders where one side uploads must not "
        "be equal or nested"
    )
