"""Change notification for background ticks: a Linux inotify watcher over a folder tree.

A background tick that stats every file of a 100,000-file tree costs about a second of CPU
whatever changed. With a :class:`Watcher` (the pattern of Syncthing's filesystem watcher plus
its periodic full rescan), a tick learns from the kernel which names changed and stats only
those: a tick with no event makes no system call but one ``read`` that finds the queue empty.

Rules:

* Linux only, standard library only: ``inotify_init1(IN_NONBLOCK | IN_CLOEXEC)``,
  ``inotify_add_watch`` and ``inotify_rm_watch`` through :mod:`ctypes` against the C library
  (man 7 inotify); events are read with ``os.read`` and parsed with :mod:`struct`
  (``struct inotify_event``). This module is imported only when a registration's first tick
  runs, never by ``import pos3lite``. Where inotify cannot be had (another system, no
  ctypes, ``ENOSYS``) or a watch cannot be added (``ENOSPC``: ``fs.inotify.max_user_watches``;
  ``EMFILE``: ``fs.inotify.max_user_instances``), :class:`WatchUnavailable` is raised and the
  caller keeps its stat walk.
* Every folder of the tree the walk (:mod:`.walk`) descends into is watched: real folders
  with UTF-8 names; symlinks are never followed (``IN_DONT_FOLLOW``, ``IN_ONLYDIR``), as the
  walk of an upload source does by default. The caller starts the watcher *before* the stat
  walk that establishes its baseline, so a change between the two is seen by one or both.
* A new folder (created or moved in) gets its watches first, then is walked by the caller
  (:attr:`Changes.walk`): a file created in it before its watch existed is found by that
  walk, one created after by an event (or both, which is harmless).
* Events are folded into a :class:`Changes`: names to stat, new folders to walk, folders
  whose emptiness may have changed, folders gone. :func:`stamp_rows` turns it into the rows
  :func:`~pos3lite.localfs.iter_stamps` gives for the same files, so the caller compares them
  with its records as it compares a full walk.
* Doubt means a full stat walk (:attr:`Changes.full`): the kernel's queue overflowed
  (``IN_Q_OVERFLOW``), a watch was dropped while its folder is still needed (``IN_IGNORED``,
  ``IN_UNMOUNT``), the root was moved or deleted, an event came for an unknown watch, a
  folder turned up under two keys (a bind mount), more events than one drain reads, or the
  watcher is used in a process other than the one that created it (after ``fork()`` the
  child shares the parent's inotify descriptor: it must :meth:`Watcher.forget` it, never
  read it). The caller then :meth:`Watcher.restart`-s the watcher before walking.
* What inotify does not see, and why the caller still walks in full from time to time:
  writes through ``mmap`` (no ``IN_MODIFY``), changes made by another machine on a network
  filesystem (NFS, SMB, FUSE), and writes through a hard link whose path lies in a folder
  that is not watched (events go to the folder of the path used).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import stat
import struct
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .walk import StampRow, Walk, _Walker, iter_stamps, open_under
from .write import TEMP_SUFFIX

__all__ = [
    "EVENTS",
    "Changes",
    "WatchUnavailable",
    "Watcher",
    "folder_is_empty",
    "load_inotify",
    "parse_events",
    "stamp_rows",
]

logger = logging.getLogger(__name__)

# <sys/inotify.h> (the same on every Linux architecture; IN_NONBLOCK and IN_CLOEXEC are
# O_NONBLOCK and O_CLOEXEC, which are not, so they come from os).
IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_UNMOUNT = 0x00002000
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_EXCL_UNLINK = 0x04000000
IN_ISDIR = 0x40000000

#: The events watched on every folder (``IN_EXCL_UNLINK``: none for a file once unlinked).
EVENTS = (
    IN_CREATE
    | IN_CLOSE_WRITE
    | IN_MODIFY
    | IN_ATTRIB
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
)
_MASK = EVENTS | IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK

_HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then name
#: Bytes asked of one ``read``: room for hundreds of events (one is 16 bytes + its name).
READ_BYTES = 64 * 1024
#: Reads one drain makes at most; a tree writing faster than that is walked in full instead.
MAX_READS = 64

#: An event as parsed: ``(wd, mask, cookie, name bytes)`` (``b""`` for the folder itself).
Event = tuple[int, int, int, bytes]


class WatchUnavailable(OSError):
    """inotify cannot watch this tree: another system, no ctypes or libc symbol, or a kernel
    limit (``errno`` ``ENOSPC``: ``fs.inotify.max_user_watches``; ``EMFILE``:
    ``fs.inotify.max_user_instances``)."""


@dataclass(frozen=True, slots=True)
class Inotify:
    """The three system calls (``-1`` and ``errno`` on failure, as libc returns them)."""

    init1: Callable[[int], int]
    add_watch: Callable[[int, bytes, int], int]
    rm_watch: Callable[[int, int], int]


def load_inotify() -> Inotify:
    """The inotify calls of the running C library.

    Raises:
        WatchUnavailable: not Linux, ctypes unusable, or the library lacks the calls.
    """
    if not sys.platform.startswith("linux"):
        raise WatchUnavailable(errno.ENOSYS, f"inotify is Linux only (this is {sys.platform})")
    # The symbols of the running process (its C library: glibc or musl), without
    # ctypes.util.find_library, which runs ldconfig in a subprocess.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        init1 = libc.inotify_init1
        add = libc.inotify_add_watch
        rm = libc.inotify_rm_watch
    except (OSError, AttributeError) as exc:
        raise WatchUnavailable(errno.ENOSYS, f"inotify not available: {exc}") from exc
    init1.argtypes, init1.restype = [ctypes.c_int], ctypes.c_int
    add.argtypes, add.restype = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32], ctypes.c_int
    rm.argtypes, rm.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return Inotify(init1, add, rm)


def parse_events(buf: bytes) -> list[Event]:
    """Split one ``read`` of an inotify descriptor into events (several per read; each name
    is NUL-padded to an alignment the kernel chooses, and is any bytes but ``/`` and NUL).

    Raises:
        ValueError: a truncated event (the kernel never returns one).
    """
    out: list[Event] = []
    off, end, size = 0, len(buf), _HEADER.size
    while off < end:
        if off + size > end:
            raise ValueError(f"truncated inotify event at byte {off} of {end}")
        wd, mask, cookie, n = _HEADER.unpack_from(buf, off)
        off += size
        if off + n > end:
            raise ValueError(f"truncated inotify event name at byte {off} of {end}")
        name = buf[off : off + n].split(b"\0", 1)[0]
        off += n
        out.append((wd, mask, cookie, name))
    return out


@dataclass(slots=True)
class Changes:
    """What the events drained since the last :meth:`Watcher.drain` say (keys relative to
    the root, UTF-8 text with ``surrogateescape`` for other bytes; folders end with ``/``,
    the root is ``""``).

    Attributes:
        full: doubt (see the module rules): walk the whole tree instead.
        files: names that were created, written, closed after writing, moved in or had
            their metadata changed: stat these.
        walk: folders created or moved in (their watches are in place): walk these.
        touched: folders in which a name appeared or went: their emptiness may differ.
        gone: folders deleted or moved out (their watches are removed).
    """

    full: bool = False
    files: set[str] = field(default_factory=set)
    walk: set[str] = field(default_factory=set)
    touched: set[str] = field(default_factory=set)
    gone: set[str] = field(default_factory=set)

    @property
    def empty(self) -> bool:
        """Nothing happened (and no doubt)."""
        return not (self.full or self.files or self.walk or self.touched or self.gone)


def _decodes(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Watcher:
    """inotify watches over every folder of the tree at ``root`` (see the module rules).

    Args:
        root: the registration's local folder.
        lib: the system calls (default: :func:`load_inotify`).

    Raises:
        WatchUnavailable: inotify cannot be had, or a watch limit was hit (nothing is left
            open).
        OSError: the root is missing or not a folder (nothing is left open; try later).
    """

    def __init__(self, root: Path, *, lib: Inotify | None = None) -> None:
        self.root = os.fspath(root)
        self.lib = lib if lib is not None else load_inotify()
        self.fd = -1
        self.pid = os.getpid()
        #: The caller's mark: a full walk that started after these watches succeeded.
        self.baseline = False
        self._wds: dict[int, str] = {}  # watch descriptor -> folder key
        self._keys: dict[str, int] = {}  # folder key -> watch descriptor
        self._retired: set[int] = set()  # removed by us or deleted: their events are stale
        self._doubt = False
        self.restart()

    # ------------------------------------------------------------------ lifecycle

    def restart(self) -> None:
        """Drop every watch and event and watch the whole tree again (after a doubt, before
        the full walk that follows it).

        Raises:
            WatchUnavailable: as the constructor (the watcher is closed).
        """
        self.close()
        fd = self.lib.init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise WatchUnavailable(err, f"inotify_init1: {os.strerror(err)}")
        self.fd, self.pid, self._doubt, self.baseline = fd, os.getpid(), False, False
        try:
            self._add_tree("")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the inotify descriptor (the kernel drops every watch). Idempotent."""
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
        self.fd = -1
        self._wds, self._keys, self._retired = {}, {}, set()

    def forget(self) -> None:
        """In a forked child: drop the inherited descriptor without touching its watches
        (they belong to the parent's open file description, which it keeps reading)."""
        self.close()

    @property
    def watched(self) -> int:
        """How many folders are watched."""
        return len(self._keys)

    # ------------------------------------------------------------------ watches

    def _add(self, key: str) -> bool:
        """Watch one folder; False when it is gone, not a folder, a symlink or unreadable
        (the walk skips those too; the parent's events tell if that changes)."""
        path = os.path.join(self.root, key) if key else self.root
        # The root is followed if it is a symlink, as the walk opens it; nothing below it is.
        mask = _MASK if key else _MASK & ~IN_DONT_FOLLOW
        wd = self.lib.add_watch(self.fd, os.fsencode(path), mask)
        if wd < 0:
            err = ctypes.get_errno()
            if err in (errno.ENOSPC, errno.EMFILE, errno.ENOMEM):
                raise WatchUnavailable(err, f"inotify_add_watch {path!r}: {os.strerror(err)}")
            if not key:  # the root is missing or not a folder (yet): try again later
                raise OSError(err, f"inotify_add_watch: {os.strerror(err)}", path)
            return False
        old = self._wds.get(wd)
        if old is not None and old != key:
            # One folder under two keys (a bind mount, or a move not yet drained): the
            # events cannot name both, so the tick walks in full.
            self._doubt = True
            return True
        self._retired.discard(wd)
        self._wds[wd] = key
        self._keys[key] = wd
        return True

    def _add_tree(self, top: str) -> None:
        """Watch ``top`` and every folder below it, each watch added before its folder is
        listed (so a subfolder created meanwhile gives an event or is listed)."""
        stack = [top]
        while stack:
            key = stack.pop()
            if not self._add(key):
                continue
            path = os.path.join(self.root, key) if key else self.root
            try:
                with os.scandir(path) as it:
                    for de in it:
                        try:
                            if de.is_dir(follow_symlinks=False) and _decodes(de.name):
                                stack.append(f"{key}{de.name}/")
                        except OSError:
                            continue
            except OSError:
                continue

    def _remove_tree(self, top: str) -> None:
        """Stop watching ``top`` and everything below it (deleted or moved out: a watch that
        moved out would go on reporting under keys that are no longer there)."""
        for key in [k for k in self._keys if k.startswith(top)]:
            wd = self._keys.pop(key)
            self._wds.pop(wd, None)
            self._retired.add(wd)
            self.lib.rm_watch(self.fd, wd)  # EINVAL when already gone: nothing to do

    # ------------------------------------------------------------------ events

    def drain(self) -> Changes:
        """Read every queued event, keep the watches in step with the tree (new folders
        watched, gone ones dropped) and return what changed since the last drain.

        ``Changes.full`` is set on any doubt (module rules); the caller then calls
        :meth:`restart` and walks in full. Raises WatchUnavailable when a new folder's watch
        hits a kernel limit (the caller closes the watcher and walks from then on).
        """
        out = Changes()
        if self.fd < 0 or os.getpid() != self.pid:
            out.full = True  # closed, or a forked child: never read the parent's queue
            return out
        for _ in range(MAX_READS):
            try:
                buf = os.read(self.fd, READ_BYTES)
            except BlockingIOError:
                break
            for event in parse_events(buf):
                self._apply(event, out)
        else:
            self._doubt = True
        if self._doubt:
            out.full = True
        return out

    def _apply(self, event: Event, out: Changes) -> None:
        wd, mask, _cookie, raw = event
        if mask & IN_Q_OVERFLOW:
            self._doubt = True
            return
        if wd in self._retired:
            if mask & IN_IGNORED:
                self._retired.discard(wd)
            return
        key = self._wds.get(wd)
        if key is None or mask & (IN_IGNORED | IN_UNMOUNT):
            self._doubt = True  # a watch the tree still needs is gone, or never was ours
            return
        if not raw:  # the folder itself
            if mask & (IN_DELETE_SELF | IN_MOVE_SELF) and not key:
                self._doubt = True  # the root itself moved or went
            elif mask & IN_DELETE_SELF:
                self._keys.pop(key, None)
                self._wds.pop(wd, None)
                self._retired.add(wd)
            return  # a subfolder's move is told by its parent's IN_MOVED_FROM / _TO
        name = os.fsdecode(raw)
        child = key + name
        if mask & IN_ISDIR:
            sub = child + "/"
            if mask & (IN_DELETE | IN_MOVED_FROM):
                self._remove_tree(sub)
                out.gone.add(sub)
                out.touched.add(key)
            elif mask & (IN_CREATE | IN_MOVED_TO) or sub not in self._keys:
                # New, moved in, or (IN_ATTRIB) perhaps readable now: watch, then walk.
                if _decodes(name):
                    self._remove_tree(sub)  # moved within the tree: drop stale keys
                    self._add_tree(sub)
                    out.walk.add(sub)
                    out.gone.discard(sub)
                else:
                    out.files.add(child)  # reported as a name S3 cannot hold
                out.touched.add(key)
            return
        if mask & (IN_DELETE | IN_MOVED_FROM):
            out.touched.add(key)
            return
        out.files.add(child)
        if mask & (IN_CREATE | IN_MOVED_TO):
            out.touched.add(key)


# ---------------------------------------------------------------------- stat the changes


def folder_is_empty(fd: int) -> bool:
    """Whether the folder open at ``fd`` is empty as the walk counts it: nothing in it but
    pos3lite temp files (an entry that cannot be stat-ed counts as something)."""
    with os.scandir(fd) as it:
        for de in it:
            if not de.name.endswith(TEMP_SUFFIX):
                return False
            try:
                if not stat.S_ISREG(de.stat(follow_symlinks=False).st_mode):
                    return False
            except OSError:
                return False
    return True


def _under_any(key: str, folders: Iterable[str]) -> bool:
    return any(key.startswith(f) for f in folders)


def stamp_rows(
    root: Path,
    changes: Changes,
    *,
    max_key_bytes: int | None,
    report: Walk,
) -> list[StampRow]:
    """The :func:`~pos3lite.localfs.iter_stamps` rows of what ``changes`` names, in key byte
    order: each changed name that is a regular file now (stat-ed through its folder opened
    with ``O_NOFOLLOW``; gone, symlinked or special names give no row), every file and empty
    folder of each new folder (walked), and each touched folder that is empty now. Names S3
    cannot hold go to ``report.failures`` as the walk reports them; symlinks to
    ``report.skipped``.

    Raises:
        OSError: the root cannot be opened.
    """
    rows: list[StampRow] = []
    walker = _Walker(os.fspath(root), False, False, max_key_bytes, report)
    walks = sorted(changes.walk)
    tops = [w for i, w in enumerate(walks) if not _under_any(w, walks[:i])]
    skip = [*tops, *sorted(changes.gone - changes.walk)]
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    folders: dict[str, int | None] = {}

    def folder(key: str) -> int | None:
        if key not in folders:
            try:
                folders[key] = open_under(root_fd, key)
            except OSError:
                folders[key] = None
        return folders[key]

    try:
        for key in sorted(changes.files):
            if _under_any(key, skip):
                continue
            parent, _, name = key.rpartition("/")
            fd = folder(parent + "/" if parent else "")
            if fd is None:
                continue
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError:
                continue  # gone again: ticks never delete
            mode = st.st_mode
            if stat.S_ISREG(mode):
                if name.endswith(TEMP_SUFFIX):
                    continue
                try:
                    kb = key.encode("utf-8")
                except UnicodeEncodeError:
                    walker.undecodable(key, False)
                    continue
                if max_key_bytes is None or len(kb) <= max_key_bytes or walker.key_fits(key):
                    rows.append((kb, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns))
            elif stat.S_ISDIR(mode):
                if not _decodes(key):
                    walker.undecodable(key, True)
            elif stat.S_ISLNK(mode):
                logger.info("skipping symlink %r (follow_symlinks=False)", walker.display(key))
                report.skipped.append(key)
        for key in tops:
            rows.extend(iter_stamps(root, max_key_bytes=max_key_bytes, report=report, under=key))
        for key in sorted(changes.touched | changes.walk):
            if not key or (_under_any(key, skip) and key not in tops):
                continue
            fd = folder(key)
            if fd is None:
                continue
            try:
                empty = folder_is_empty(fd)
            except OSError:
                continue
            if empty and walker.key_fits(key):
                rows.append((key.encode("utf-8"), None, None, None, None))
    finally:
        for fd in folders.values():
            if fd is not None:
                os.close(fd)
        os.close(root_fd)
    rows.sort(key=lambda r: r[0])
    return rows
