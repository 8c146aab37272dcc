"""The local walk: a folder tree as sync-engine Entries, streamed in S3's key order.

Rules:

* Entries come out lazily in the UTF-8 byte order of their keys, the order ``ListObjectsV2``
  returns: each folder's children are sorted on their own, a folder keyed as ``name/``
  (``a-b`` < ``a.b`` < ``a/x`` < ``a0``), and folders are walked depth first with an explicit
  stack (no recursion: any depth works). Memory is one folder's listing per open level.
* Files are listed with size (bytes) and mtime (seconds since the epoch); a folder is listed
  (key ending ``/``) only when it is empty, since non-empty ones are implied by their files.
* Folders are opened relative to their parent's descriptor (``dir_fd=``), with
  ``O_NOFOLLOW`` unless a symlink is followed on purpose, so paths longer than ``PATH_MAX``
  work and a folder swapped for a symlink mid-walk is not entered.
* Symlinks (upload sources, the default): skipped and logged at INFO, never followed out of
  the tree, and put in ``Walk.skipped`` so the caller never deletes their remote copy (as
  pos3; LeRobot's ``checkpoints/last -> 000010`` must not come back as a folder).
  ``follow_symlinks=True`` follows them; a link to a folder on the current path (a loop) or
  a broken link is skipped with a WARNING and put in ``skipped``.
* Download destinations (``destination=True``): symlinks are neither listed nor followed
  (so never deleted nor written through); their keys are in ``Walk.links``. A download that
  must write at or under a symlinked folder fails for that file, naming the link (see
  :mod:`pos3lite.localfs.write`).
* A local name that is not valid UTF-8 cannot be an S3 key: in a source it becomes a
  per-file :class:`~pos3lite.errors.UnsafeKeyError` in ``Walk.failures`` naming
  ``os.fsdecode(path)`` (the walk goes on; the key is in ``skipped``); in a destination it is
  left alone with a WARNING. Likewise a key longer than S3's 1,024 bytes (UTF-8) in a source.
* pos3lite's own temporary files (``*.pos3lite-tmp``) are never listed; they are collected in
  ``Walk.temp_files`` for :func:`~pos3lite.localfs.write.remove_stale_temps`.
* :func:`iter_stamps` is the same walk yielding flat ``(key bytes, size, st_mtime_ns, st_ino,
  st_ctime_ns)`` rows instead of Entries: an incremental background tick compares 100,000s
  of them with the sync state's rows of the same shape (an Entry costs several times a tuple
  to build, and a row compares with one ``==``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from ..engine.model import Entry
from ..errors import Pos3liteError, UnsafeKeyError
from .write import TEMP_SUFFIX

__all__ = [
    "FD_BUDGET",
    "MAX_KEY_BYTES",
    "StampRow",
    "Walk",
    "file_md5",
    "iter_stamps",
    "iter_walk",
    "open_under",
    "walk",
]

logger = logging.getLogger(__name__)

#: S3's limit on a key, in UTF-8 bytes (AWS "Naming Amazon S3 objects").
MAX_KEY_BYTES = 1024
#: Folder descriptors a walk keeps open at most; deeper levels are reopened when needed.
FD_BUDGET = 64

#: A row of :func:`iter_stamps`: ``(key as UTF-8 bytes, size, st_mtime_ns, st_ino,
#: st_ctime_ns)`` for a file, ``(key + "/", None, None, None, None)`` for an empty folder.
StampRow = tuple[bytes, int | None, int | None, int | None, int | None]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_S_ISREG = stat.S_ISREG


@dataclass(slots=True)
class Walk:
    """Result of :func:`walk` (or the report filled by :func:`iter_walk`).

    Attributes:
        entries: Entries in UTF-8 key byte order (:func:`walk` only).
        skipped: keys the caller must protect from deletes: symlinks not followed, broken or
            looping links, unreadable entries, special files, undecodable or over-long names.
        temp_files: ``(path, mtime)`` of pos3lite temporary files found.
        failures: per-file errors (:class:`~pos3lite.errors.UnsafeKeyError`) for names that
            cannot be S3 keys; a caller turns them into ``TransferError`` entries.
        links: keys of symlinks in a download destination (folders end with ``/``).
    """

    entries: list[Entry] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    temp_files: list[tuple[str, float]] = field(default_factory=list)  # (path, mtime)
    failures: list[Pos3liteError] = field(default_factory=list)
    links: list[str] = field(default_factory=list)


# A child of a listed folder: (sort key, name, stat, is_dir, is_link).
_Child = tuple[bytes, str, os.stat_result, bool, bool]


@dataclass(slots=True)
class _Frame:
    name: str  # the folder's name in its parent ("" for the root)
    rel: str  # its key prefix: "" for the root, else "a/b/"
    ident: tuple[int, int]
    fd: int | None
    via_link: bool  # entered through a followed symlink: reopen without O_NOFOLLOW
    children: list[_Child]  # sorted descending: pop() gives the next in key order
    nbytes: int  # len(rel) in UTF-8 bytes


def walk(
    root: Path,
    *,
    follow_symlinks: bool = False,
    destination: bool = False,
    follow_dir_links: bool | None = None,
    max_key_bytes: int | None = MAX_KEY_BYTES,
) -> Walk:
    """List the tree under ``root`` as Entries (see the module rules); all in memory.

    Args:
        root: the folder to list. A missing folder gives an empty Walk; the caller decides
            whether that is an error.
        follow_symlinks: follow symlinks to files and folders (loops detected).
        destination: the tree is a download destination (see the module rules).
        follow_dir_links: the old keyword: ``True`` is ``follow_symlinks=True``, ``False`` is
            ``destination=True`` (its old meaning).
        max_key_bytes: longest key (UTF-8 bytes) to list; longer ones become failures. Pass
            ``MAX_KEY_BYTES - len(prefix)``; ``None`` turns the check off.

    Raises:
        NotADirectoryError: ``root`` exists but is not a folder; OSError if it cannot be read.
    """
    result = Walk()
    result.entries = list(
        iter_walk(
            root,
            follow_symlinks=follow_symlinks,
            destination=destination,
            follow_dir_links=follow_dir_links,
            max_key_bytes=max_key_bytes,
            report=result,
        )
    )
    return result


def iter_walk(
    root: Path,
    *,
    follow_symlinks: bool = False,
    destination: bool = False,
    follow_dir_links: bool | None = None,
    max_key_bytes: int | None = MAX_KEY_BYTES,
    report: Walk | None = None,
) -> Iterator[Entry]:
    """Yield the Entries under ``root`` lazily, in UTF-8 key byte order (see :func:`walk`).

    ``report`` (a :class:`Walk` whose ``entries`` are left alone) collects skipped keys,
    failures, links and temp files as the walk goes; it is complete once the iterator is
    exhausted.
    """
    if follow_dir_links is not None:
        follow_symlinks, destination = follow_dir_links, not follow_dir_links
    if destination:
        max_key_bytes = None
    out = report if report is not None else Walk()
    try:
        st = os.stat(root)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(f"not a folder: {str(root)!r}")
    walker = _Walker(str(root), follow_symlinks, destination, max_key_bytes, out)
    yield from cast(Iterator[Entry], walker.run())


def iter_stamps(
    root: Path,
    *,
    follow_symlinks: bool = False,
    max_key_bytes: int | None = MAX_KEY_BYTES,
    report: Walk | None = None,
    under: str = "",
) -> Iterator[StampRow]:
    """The walk of an upload source (:func:`iter_walk`: same order, same skips and report) as
    :data:`StampRow` rows: ``(key.encode(), size, st_mtime_ns, st_ino, st_ctime_ns)`` for a
    file (the :data:`~pos3lite.engine.model.Stamp` after the key), ``(key.encode(), None,
    None, None, None)`` for an empty folder (key ending ``/``).

    ``under`` (a folder key ending ``/``, e.g. ``"a/b/"``) walks only that folder of the tree
    (a change watcher's new folder): keys keep the prefix, the folder is opened from ``root``
    one component at a time with ``O_NOFOLLOW`` (a component that is a symlink or missing
    gives nothing), and the folder itself is not listed even when empty.

    Raises:
        NotADirectoryError: ``root`` exists but is not a folder; OSError if it cannot be read.
    """
    out = report if report is not None else Walk()
    try:
        st = os.stat(root)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(f"not a folder: {str(root)!r}")
    walker = _Walker(str(root), follow_symlinks, False, max_key_bytes, out, stamps=True)
    walker.under = under
    yield from cast(Iterator[StampRow], walker.run())


def open_under(root_fd: int, key: str) -> int:
    """Open the folder ``key`` (``"a/b/"``; ``""``: a duplicate of ``root_fd``) below the
    folder open at ``root_fd``, one component at a time with ``O_NOFOLLOW``: a symlinked
    component is never followed. Returns a new descriptor; raises OSError (``ELOOP``,
    ``ENOTDIR``, ``ENOENT``...) when a component is missing, a symlink or not a folder."""
    fd = os.dup(root_fd)
    for name in key.split("/"):
        if not name:
            continue
        try:
            nxt = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
        finally:
            os.close(fd)
        fd = nxt
    return fd


class _Walker:
    def __init__(
        self,
        root: str,
        follow: bool,
        destination: bool,
        max_key: int | None,
        out: Walk,
        *,
        stamps: bool = False,
    ) -> None:
        self.stamps = stamps  # yield StampRows rather than Entries
        self.root, self.follow, self.destination = root, follow, destination
        self.max_key, self.out = max_key, out
        self.stack: list[_Frame] = []
        self.under = ""  # iter_stamps(under=...): the key prefix of the folder walked
        self.ancestors: set[tuple[int, int]] = set()
        self.nonempty = False  # set by list_folder

    def display(self, key: str) -> str:
        return os.path.join(self.root, *key.rstrip("/").split("/")) if key else self.root

    def run(self) -> Iterator[Entry | StampRow]:
        stamps = self.stamps
        fd = os.open(self.root, _DIR_FLAGS)
        rel = self.under
        if rel:
            try:
                start = open_under(fd, rel)
            except OSError:
                return  # gone, or a component is a symlink: nothing under it is listed
            finally:
                os.close(fd)
            fd = start
        try:
            st = os.fstat(fd)
            ident = (st.st_dev, st.st_ino)
            children = self.list_folder(fd, rel)
            self.stack.append(_Frame("", rel, ident, fd, False, children, len(rel.encode())))
            self.ancestors.add(ident)
            stack = self.stack
            # No key limit: every length fits (sys.maxsize stands in for "none").
            limit = self.max_key if self.max_key is not None else sys.maxsize
            fits = self.key_fits
            while stack:
                top = stack[-1]
                children, rel, base = top.children, top.rel, top.nbytes
                # The files of one folder in a tight loop (most of a walk): locals only,
                # one Entry each; a subfolder breaks out so the stack's new top is read.
                while children:
                    sk, name, cst, is_dir, is_link = children.pop()
                    key = rel + name
                    nbytes = base + len(sk)  # sk: the name's UTF-8 bytes (+ "/")
                    if is_dir:
                        entry = self.enter(key, name, cst, is_link, nbytes)
                        if entry is not None:
                            yield (entry.key.encode(), None, None, None, None) if stamps else entry
                        if stack[-1] is not top:
                            break  # entered: walk the subfolder first
                        continue
                    if nbytes <= limit or fits(key):
                        # The stamp is what the sync state compares: any write or
                        # metadata change to the file gives another one.
                        size = cst.st_size
                        if stamps:
                            yield key.encode(), size, cst.st_mtime_ns, cst.st_ino, cst.st_ctime_ns
                        else:
                            stamp = (size, cst.st_mtime_ns, cst.st_ino, cst.st_ctime_ns)
                            yield Entry(key, size, cst.st_mtime, None, stamp)
                else:
                    self.pop()
        finally:
            for frame in self.stack:
                if frame.fd is not None:
                    os.close(frame.fd)
            self.stack.clear()

    def pop(self) -> None:
        frame = self.stack.pop()
        if frame.fd is not None:
            os.close(frame.fd)
        self.ancestors.discard(frame.ident)

    def key_fits(self, key: str) -> bool:
        if self.max_key is None:
            return True
        n = len(key.encode("utf-8"))
        if n <= self.max_key:
            return True
        err = UnsafeKeyError(
            key,
            f"{n} bytes; S3 keys are at most {MAX_KEY_BYTES} bytes with the prefix "
            f"(a local file under {self.root!r})",
        )
        logger.error("%s", err)
        self.out.failures.append(err)
        self.out.skipped.append(key)
        return False

    def enter(
        self, key: str, name: str, st: os.stat_result, via_link: bool, nbytes: int
    ) -> Entry | None:
        """Open and list the child folder ``key``; push it, or return its entry if empty."""
        ident = (st.st_dev, st.st_ino)
        if ident in self.ancestors:
            logger.warning("skipping symlink loop at %r", self.display(key))
            self.out.skipped.append(key + "/")
            return None
        try:
            parent = self.fd_of(len(self.stack) - 1)
            fd = os.open(name, _DIR_FLAGS | (0 if via_link else os.O_NOFOLLOW), dir_fd=parent)
        except OSError as exc:
            logger.warning("skipping unreadable folder %r: %s", self.display(key), exc)
            self.out.skipped.append(key + "/")
            return None
        try:
            now = os.fstat(fd)
            if (now.st_dev, now.st_ino) != ident:
                raise OSError(f"folder replaced during the walk: {self.display(key)!r}")
            children = self.list_folder(fd, key + "/")
        except OSError as exc:
            os.close(fd)
            logger.warning("skipping unreadable folder %r: %s", self.display(key), exc)
            self.out.skipped.append(key + "/")
            return None
        if not self.nonempty:
            os.close(fd)
            return Entry(key + "/", 0, st.st_mtime) if self.key_fits(key + "/") else None
        self.stack.append(_Frame(name, key + "/", ident, fd, via_link, children, nbytes))
        self.ancestors.add(ident)
        if len(self.stack) > FD_BUDGET + 1:
            old = self.stack[-FD_BUDGET - 1]
            if old.fd is not None:
                os.close(old.fd)
                old.fd = None
        return None

    def fd_of(self, i: int) -> int:
        """The descriptor of stack frame ``i``, reopened from the nearest open ancestor if it
        was closed to stay within FD_BUDGET (each level checked to be the same folder)."""
        frame = self.stack[i]
        if frame.fd is not None:
            return frame.fd
        j = i
        while self.stack[j].fd is None:
            j -= 1
        base = self.stack[j].fd
        assert base is not None
        fd = base
        for k in range(j + 1, i + 1):
            f = self.stack[k]
            flags = _DIR_FLAGS | (0 if f.via_link else os.O_NOFOLLOW)
            try:
                nxt = os.open(f.name, flags, dir_fd=fd)
            finally:
                if fd != base:
                    os.close(fd)
            st = os.fstat(nxt)
            if (st.st_dev, st.st_ino) != f.ident:
                os.close(nxt)
                raise OSError(f"folder replaced during the walk: {self.display(f.rel)!r}")
            fd = nxt
        frame.fd = fd
        return fd

    def list_folder(self, fd: int, rel: str) -> list[_Child]:
        """The children of the folder open at ``fd`` (key prefix ``rel``), sorted descending
        by key bytes; side effects on the report. Sets ``self.nonempty`` when the folder
        holds anything besides temp files (skipped entries count: the folder is not empty)."""
        children: list[_Child] = []
        append = children.append
        nonempty = False
        with os.scandir(fd) as it:
            for de in it:
                # The common case inline (a regular file with a UTF-8 name; most of a
                # 100,000-file walk); classify() decides the rest (DirEntry caches the stat).
                name = de.name
                try:
                    lst = de.stat(follow_symlinks=False)
                    if _S_ISREG(lst.st_mode) and not name.endswith(TEMP_SUFFIX):
                        append((name.encode(), name, lst, False, False))
                        nonempty = True
                        continue
                except (OSError, UnicodeEncodeError):
                    pass
                self.nonempty = nonempty
                self.classify(fd, rel, de, children)
                nonempty = self.nonempty
        self.nonempty = nonempty
        children.sort(reverse=True)
        return children

    def classify(self, fd: int, rel: str, de: os.DirEntry[str], children: list[_Child]) -> None:
        name = de.name
        key = rel + name
        try:
            lst = de.stat(follow_symlinks=False)
        except OSError as exc:
            logger.warning("skipping %r: %s", self.display(key), exc)
            self.out.skipped.append(key)
            self.nonempty = True
            return
        if _S_ISREG(lst.st_mode):  # the common case first, with the fewest calls
            if name.endswith(TEMP_SUFFIX):
                self.out.temp_files.append((self.display(key), lst.st_mtime))
                return
            self.nonempty = True
            try:
                children.append((name.encode("utf-8"), name, lst, False, False))
            except UnicodeEncodeError:
                self.undecodable(key, False)
            return
        self.nonempty = True
        is_link = stat.S_ISLNK(lst.st_mode)
        st = lst
        if is_link:
            try:
                st = os.stat(name, dir_fd=fd)  # what the link points at
            except OSError as exc:
                if self.destination:
                    self.out.links.append(key)
                    logger.info("leaving symlink %r in a download destination", self.display(key))
                else:
                    level = logging.WARNING if self.follow else logging.INFO
                    logger.log(level, "skipping broken symlink %r: %s", self.display(key), exc)
                    self.out.skipped.append(key)
                return
            suffix = "/" if stat.S_ISDIR(st.st_mode) else ""
            if self.destination:
                self.out.links.append(key + suffix)
                logger.info("leaving symlink %r in a download destination", self.display(key))
                return
            if not self.follow:
                logger.info("skipping symlink %r (follow_symlinks=False)", self.display(key))
                self.out.skipped.append(key + suffix)
                return
        is_dir = stat.S_ISDIR(st.st_mode)
        try:
            raw = name.encode("utf-8")
        except UnicodeEncodeError:
            self.undecodable(key, is_dir)
            return
        if is_dir:
            children.append((raw + b"/", name, st, True, is_link))
        elif stat.S_ISREG(st.st_mode):
            children.append((raw, name, st, False, is_link))
        else:
            logger.warning("skipping %r: not a regular file or folder", self.display(key))
            self.out.skipped.append(key)

    def undecodable(self, key: str, is_dir: bool) -> None:
        path = self.display(key)
        if self.destination:
            logger.warning("leaving %r alone: its name is not valid UTF-8", path)
            return
        what = "folder" if is_dir else "file"
        err = UnsafeKeyError(
            key,
            f"local {what} name {path!r} is not valid UTF-8; S3 keys are UTF-8 "
            "(rename it, e.g. with convmv)",
        )
        logger.error("%s", err)
        self.out.failures.append(err)
        self.out.skipped.append(key + ("/" if is_dir else ""))


def file_md5(path: Path, *, block_size: int = 1024 * 1024) -> str:
    """Hex MD5 of the file at ``path`` (read in ``block_size``-byte blocks)."""
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(block_size):
            h.update(block)
    return h.hexdigest()
