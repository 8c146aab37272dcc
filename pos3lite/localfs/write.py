"""Writes into a local tree that someone else may change: dir-fd opens, locked temp files.

Rules:

* Every folder of a write target is opened relative to the file descriptor of its parent
  with ``O_NOFOLLOW`` (``openat`` via ``dir_fd=``), the way rsync's receiver does. A symlink
  where a folder should be is an :class:`~pos3lite.errors.UnsafeKeyError` naming the link, and
  a folder swapped for a symlink after the walk cannot redirect the write: the rename and the
  ``mkdir`` calls go through the descriptor that was opened, never through a path again.
* Without ``root`` every component of the (resolved, absolute) path is opened with
  ``O_NOFOLLOW``: the mirror resolves its folders, so any symlink met is one planted inside the
  tree. With ``root``, the components down to ``root`` are trusted (may be symlinks) and only
  the ones below it must be real folders.
* Many files written into the same folders (a download of a prefix) share one
  :class:`FolderCache`: each folder is opened that way once and its descriptor kept, each
  write works on a ``dup`` of it; the guarantee is the same (writes go through a descriptor
  opened without following symlinks), without walking the path again per file.
* A download goes to ``.<name>.<token><n>.pos3lite-tmp`` beside the target. The writer holds
  an exclusive ``fcntl.flock`` on that file for its whole life (the lock dies with the
  process, even on SIGKILL), so :func:`remove_stale_temps` removes exactly the temp files whose
  lock it can take, whatever their age. The temp file is renamed over the target with
  ``os.replace`` (atomic: no partial file ever appears at a final path) and the final mtime is
  set on the open descriptor after the rename.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import logging
import os
import secrets
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol, runtime_checkable

from ..errors import UnsafeKeyError
from ..urls import check_relative_key

__all__ = [
    "STALE_TEMP_SECONDS",
    "TEMP_SUFFIX",
    "FolderCache",
    "TempFile",
    "make_dirs",
    "open_dir",
    "remove",
    "remove_stale_temps",
    "remove_temp_if_dead",
    "safe_join",
    "temp_path_for",
    "write_atomic",
]

logger = logging.getLogger(__name__)

#: Suffix of pos3lite's temporary files; files ending with it are never listed.
TEMP_SUFFIX = ".pos3lite-tmp"
#: Kept for compatibility; temp files are no longer judged by age but by their lock.
STALE_TEMP_SECONDS = 0.0

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NOFOLLOW = os.O_NOFOLLOW


def safe_join(root: Path, key: str) -> Path:
    """Return ``root / key`` for a relative key, refusing keys that escape ``root``.

    Raises:
        UnsafeKeyError: the key is empty, absolute, has ``.``/``..``/empty segments, a
            backslash or a NUL (see :func:`pos3lite.urls.check_relative_key`).
    """
    check_relative_key(key.rstrip("/") if key.endswith("/") else key)
    return root.joinpath(*key.rstrip("/").split("/"))


def _named(exc: OSError, path: Path | str) -> OSError:
    """``exc`` with its ``filename`` set to the full ``path``: calls relative to a directory
    descriptor report only the last name, and error messages must name the real file."""
    exc.filename = str(path)
    return exc


def _symlink_error(target: Path, link: str) -> UnsafeKeyError:
    return UnsafeKeyError(
        str(target),
        f"{link!r} is a symlink inside the destination; pos3lite never writes through "
        "symlinks there (remove the link or download elsewhere)",
    )


def open_dir(path: Path, *, root: Path | None = None, create: bool = False) -> int:
    """Open the folder ``path`` and return its file descriptor (the caller closes it).

    Each component below ``root`` (every component when ``root`` is ``None``) is opened
    relative to its parent's descriptor with ``O_NOFOLLOW | O_DIRECTORY``; missing ones are
    made (mode ``0o777`` less the umask) when ``create`` is true.

    Raises:
        UnsafeKeyError: a component is a symlink (the message names it).
        NotADirectoryError: a component is a file; FileNotFoundError: it is missing and
            ``create`` is false; other OSError as the system reports them.
        ValueError: ``path`` is not ``root`` or below it.
    """
    path = Path(os.path.abspath(path))
    if root is None:
        base, parts = Path(path.anchor), path.parts[1:]
    else:
        base = Path(os.path.abspath(root))
        parts = path.relative_to(base).parts
    fd = os.open(base, _DIR_FLAGS)
    here = base
    try:
        for part in parts:
            here = here / part
            nxt = _open_child_dir(fd, part, here, path, create)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_child_dir(fd: int, name: str, here: Path, target: Path, create: bool) -> int:
    for _ in range(3):  # a concurrent rmdir/mkdir between our calls: try again
        try:
            return os.open(name, _DIR_FLAGS | _NOFOLLOW, dir_fd=fd)
        except FileNotFoundError:
            if not create:
                raise
            try:
                os.mkdir(name, 0o777, dir_fd=fd)
            except FileExistsError:
                pass
            except OSError as exc:
                raise _named(exc, here) from None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except OSError:
                    raise exc from None
                if stat.S_ISLNK(st.st_mode):
                    raise _symlink_error(target, str(here)) from None
                raise NotADirectoryError(
                    errno.ENOTDIR, f"not a folder: {str(here)!r} (needed for {str(target)!r})"
                ) from None
            raise _named(exc, here) from None
    raise FileNotFoundError(errno.ENOENT, f"folder keeps vanishing: {str(here)!r}")


def make_dirs(path: Path, *, root: Path | None = None) -> None:
    """``mkdir -p path`` without following a symlink (see :func:`open_dir`)."""
    os.close(open_dir(path, root=root, create=True))


def remove(path: Path, *, folder: bool = False, root: Path | None = None) -> None:
    """Delete the file (or, with ``folder``, the empty folder) at ``path`` through its
    parent's descriptor, never through a symlinked folder (see :func:`open_dir`); a symlink
    at ``path`` itself is removed, not its target.

    Raises:
        UnsafeKeyError: a folder on the way is a symlink; OSError as ``unlink``/``rmdir``.
    """
    path = Path(os.path.abspath(path))
    fd = open_dir(path.parent, root=root)
    try:
        if folder:
            os.rmdir(path.name, dir_fd=fd)
        else:
            os.unlink(path.name, dir_fd=fd)
    except OSError as exc:
        raise _named(exc, path) from None
    finally:
        os.close(fd)


class FolderCache:
    """Descriptors of folders opened with :func:`open_dir`, kept for reuse (thread-safe).

    :meth:`open` returns a new descriptor (a ``dup``, the caller closes it) of the folder
    ``path``, opening it through :func:`open_dir` only the first time; at most ``size``
    folders are kept (the least recently used is closed). :meth:`forget` drops one (its
    folder was removed or replaced); :meth:`close` closes them all. Use one cache per
    batch of writes under one ``root`` and close it when the batch ends.
    """

    def __init__(self, *, root: Path | None = None, size: int = 64) -> None:
        import threading

        self._root = root
        self._size = size
        self._fds: dict[Path, int] = {}
        self._lock = threading.Lock()

    def open(self, path: Path, *, create: bool = False) -> int:
        """A new descriptor of the folder ``path`` (see :func:`open_dir` for the errors)."""
        with self._lock:
            fd = self._fds.pop(path, -1)
            if fd >= 0:
                self._fds[path] = fd  # most recently used last
                return os.dup(fd)
        fd = open_dir(path, root=self._root, create=create)
        with self._lock:
            if path not in self._fds:
                self._fds[path] = os.dup(fd)
                while len(self._fds) > self._size:
                    os.close(self._fds.pop(next(iter(self._fds))))
        return fd

    def forget(self, path: Path) -> None:
        """Stop reusing ``path``'s descriptor (the next :meth:`open` opens it again)."""
        with self._lock:
            fd = self._fds.pop(path, -1)
        if fd >= 0:
            os.close(fd)

    def close(self) -> None:
        """Close every kept descriptor; idempotent."""
        with self._lock:
            fds, self._fds = list(self._fds.values()), {}
        for fd in fds:
            os.close(fd)

    def __enter__(self) -> FolderCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- temp files

_TOKEN: list[str] = []
_COUNTER = itertools.count()


def _temp_name(name: str) -> str:
    if not _TOKEN:
        _TOKEN.append(secrets.token_hex(4))
    stem = name
    while len(os.fsencode(stem)) > 200:
        stem = stem[:-1]
    return f".{stem}.{_TOKEN[0]}{next(_COUNTER):x}{TEMP_SUFFIX}"


def _reset_token_after_fork() -> None:
    _TOKEN.clear()  # a forked child must not share its parent's temp names


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_token_after_fork)


def temp_path_for(target: Path) -> Path:
    """A temporary path beside ``target``: ``.<name>.<token><n>.pos3lite-tmp``.

    Unique per call: a random token per process (drawn once) and a counter, so two
    processes sharing a folder, or two threads, never share a temporary file. The name is
    kept within NAME_MAX (255 bytes) even for a long target name.
    """
    return target.with_name(_temp_name(target.name))


class TempFile:
    """A locked temporary file beside ``target``, opened through its folder's descriptor.

    Created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` and locked with ``flock(LOCK_EX)`` before
    any byte is written; the lock is held until :meth:`commit` or :meth:`discard` (or the
    process dies). Use as a context manager: leaving without :meth:`commit` discards.

    Attributes:
        target: the final path; ``name``: the temp file's name in ``target``'s folder;
        ``fd``: the locked descriptor (read-write); ``dir_fd``: the folder's descriptor.

    With ``folders`` the target's folder descriptor comes from that :class:`FolderCache`
    (``root`` is then the cache's); a cached folder that has gone is opened once more.

    Raises (from the constructor): UnsafeKeyError for a symlinked folder on the way
    (see :func:`open_dir`); OSError from the file system.
    """

    def __init__(
        self,
        target: Path,
        *,
        root: Path | None = None,
        make_parents: bool = True,
        folders: FolderCache | None = None,
    ) -> None:
        self.target = Path(os.path.abspath(target))
        parent = self.target.parent
        if folders is None:
            self.dir_fd = open_dir(parent, root=root, create=make_parents)
        else:
            self.dir_fd = folders.open(parent, create=make_parents)
        self.fd = -1
        try:
            try:
                self.name = self._create()
            except FileNotFoundError:
                if folders is None:
                    raise
                # The cached folder was removed (or replaced) since it was opened: open
                # the path again, as a cache-less write would have.
                folders.forget(parent)
                os.close(self.dir_fd)
                self.dir_fd = -1
                self.dir_fd = folders.open(parent, create=make_parents)
                self.name = self._create()
        except BaseException:
            if self.dir_fd >= 0:
                os.close(self.dir_fd)
            raise
        self.done = False

    def _create(self) -> str:
        while True:
            name = _temp_name(self.target.name)
            try:
                fd = os.open(
                    name,
                    os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | _NOFOLLOW,
                    0o666,
                    dir_fd=self.dir_fd,
                )
            except OSError as exc:
                raise _named(exc, self.target.with_name(name)) from None
            fcntl.flock(fd, fcntl.LOCK_EX)
            # A cleaner may have taken the lock between our create and our flock and
            # removed the file: then ours is an orphan inode; start again with a new name.
            try:
                same = _same_file(
                    os.fstat(fd), os.stat(name, dir_fd=self.dir_fd, follow_symlinks=False)
                )
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                return name
            os.close(fd)

    @property
    def path(self) -> Path:
        """The temp file's path (for messages; writes go through the descriptors)."""
        return self.target.with_name(self.name)

    def writer(self) -> BinaryIO:
        """An unbuffered file object on the locked descriptor (closing it keeps the fd)."""
        return open(self.fd, "wb", buffering=0, closefd=False)

    def reopen(self) -> BinaryIO:
        """A new, independent read-write file object on the same temp file (own offset, for
        parallel ranged writes), opened through the folder's descriptor.

        Raises:
            OSError: the temp file was removed or replaced by another file.
        """
        fd = os.open(self.name, os.O_RDWR | os.O_CLOEXEC | _NOFOLLOW, dir_fd=self.dir_fd)
        if not _same_file(os.fstat(fd), os.fstat(self.fd)):
            os.close(fd)
            raise FileNotFoundError(errno.ENOENT, f"temporary file replaced: {str(self.path)!r}")
        return open(fd, "r+b")

    def commit(self, mtime: float | None = None) -> os.stat_result:
        """Rename the temp file over ``target`` (``os.replace`` in the opened folder), then
        set its mtime (seconds since the epoch) on the descriptor, then release the lock.

        Returns the file's ``fstat`` after the mtime was set: the stat of the file this
        writer made, whatever happens at the path afterwards."""
        try:
            os.replace(self.name, self.target.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
        except OSError as exc:
            raise _named(exc, self.target) from None
        self.done = True
        try:
            if mtime is not None:
                os.utime(self.fd, (mtime, mtime))
            return os.fstat(self.fd)
        finally:
            self.close()

    def discard(self) -> None:
        """Remove the temp file (if still ours) and release the lock."""
        if not self.done and self.fd >= 0:
            self.done = True
            with contextlib.suppress(OSError):
                if _same_file(
                    os.fstat(self.fd), os.stat(self.name, dir_fd=self.dir_fd, follow_symlinks=False)
                ):
                    os.unlink(self.name, dir_fd=self.dir_fd)
        self.close()

    def close(self) -> None:
        """Close the descriptors (releases the lock); idempotent."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.dir_fd >= 0:
            os.close(self.dir_fd)
            self.dir_fd = -1

    def __enter__(self) -> TempFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.discard()


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def write_atomic(
    target: Path,
    fill: Callable[[BinaryIO], None],
    *,
    mtime: float | None = None,
    make_parents: bool = True,
    root: Path | None = None,
    folders: FolderCache | None = None,
) -> os.stat_result:
    """Create or replace ``target`` atomically with the bytes ``fill(f)`` writes into ``f``.

    The bytes go to a locked :class:`TempFile` in the same folder (same file system, unique
    per call), which is ``os.replace``-d over ``target``; the mtime (seconds since the epoch)
    is set after the rename. On any exception the temporary file is removed and the exception
    propagates; ``target`` is left untouched. Missing parent folders are made unless
    ``make_parents`` is false. Folders are opened with ``O_NOFOLLOW`` below ``root`` (see the
    module rules). ``folders`` shares opened folders between writes (see
    :class:`FolderCache`).

    Returns:
        The new file's stat, taken on its descriptor after the rename and the mtime.

    Raises:
        UnsafeKeyError: a folder on the way is a symlink (named in the message).
        OSError: from the file system; anything ``fill`` raises.
    """
    with TempFile(target, root=root, make_parents=make_parents, folders=folders) as tmp:
        with tmp.writer() as f:
            fill(f)
        return tmp.commit(mtime)


# --------------------------------------------------------------------------- cleanup


def remove_temp_if_dead(path: str | os.PathLike[str]) -> bool:
    """Remove the temp file at ``path`` if no live writer holds its lock; return whether it
    was removed. A file that vanished or cannot be opened is left alone (False)."""
    p = Path(path)
    if not p.name.endswith(TEMP_SUFFIX):
        raise ValueError(f"not a pos3lite temporary file: {str(p)!r}")
    try:
        dir_fd = open_dir(p.parent)
    except (OSError, ValueError):
        return False
    try:
        fd = os.open(p.name, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | _NOFOLLOW, dir_fd=dir_fd)
    except OSError:
        os.close(dir_fd)
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a live writer holds it
        if not _same_file(os.fstat(fd), os.stat(p.name, dir_fd=dir_fd, follow_symlinks=False)):
            return False
        os.unlink(p.name, dir_fd=dir_fd)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
        os.close(dir_fd)


@runtime_checkable
class _HasTemps(Protocol):
    temp_files: list[tuple[str, float]]


def remove_stale_temps(
    found: _HasTemps | Iterable[tuple[str, float]],
    *,
    now: float | None = None,
    older_than: float = 0.0,
) -> int:
    """Remove the temporary files listed in ``found`` (a :class:`~pos3lite.localfs.Walk` or
    ``(path, mtime)`` pairs) whose writer is gone; return how many were removed.

    A file is removed when its ``flock`` can be taken, whatever its age: a live writer in
    any process holds the lock for the file's whole life. ``older_than`` (seconds before
    ``now``, epoch seconds) can further spare recent files; by default it spares none.
    """
    items = found.temp_files if isinstance(found, _HasTemps) else found
    removed = 0
    for path, mtime in list(items):
        if now is not None and older_than > 0 and now - mtime <= older_than:
            continue
        if remove_temp_if_dead(path):
            removed += 1
    return removed
