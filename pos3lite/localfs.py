"""Local file-system side of a mirror: walk, safe joins, atomic writes.

Rules:

* :func:`walk` lists a folder as sync-engine Entries sorted by the UTF-8 bytes of their keys,
  the order S3 lists keys in. Files are listed with size and mtime; a directory is listed
  (key ending ``/``) only when it is empty, since non-empty ones are implied by their files.
* Symlinks are followed like ``aws s3 sync`` does by default: a link to a file is that file,
  a link to a folder is walked; a link that loops back to a folder on the current path, or a
  broken link, is skipped with a warning and reported in ``Walk.skipped`` so the caller
  protects its key (a skipped file never causes a remote delete).
* When the tree is a download destination (``follow_dir_links=False``), links to folders are
  not entered but reported in ``Walk.skipped``: writing or deleting through them would touch
  files outside the destination.
* pos3lite's own temporary files (``.<name>.<random>.pos3lite-tmp``) are never listed, so
  they are never uploaded nor treated as extra files.
* :func:`safe_join` refuses keys that would land outside the destination root.
* :func:`write_atomic` writes into a temporary file beside the target and ``os.replace``-s it
  into place, so no partial file ever appears at a final path.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import os
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .engine.model import Entry
from .urls import check_relative_key

__all__ = [
    "STALE_TEMP_SECONDS",
    "TEMP_SUFFIX",
    "Walk",
    "file_md5",
    "remove_stale_temps",
    "safe_join",
    "temp_path_for",
    "walk",
    "write_atomic",
]

logger = logging.getLogger(__name__)

#: Suffix of pos3lite's temporary files; files ending with it are never listed.
TEMP_SUFFIX = ".pos3lite-tmp"
#: A temporary file untouched this long (seconds) belongs to a writer that died (a hard kill
#: or power loss); live writers touch theirs at least every read timeout.
STALE_TEMP_SECONDS = 3600.0


def remove_stale_temps(found: Walk, *, now: float, older_than: float = STALE_TEMP_SECONDS) -> int:
    """Delete the temporary files in ``found`` last modified more than ``older_than``
    seconds before ``now`` (epoch seconds); return how many were removed.

    Fresh ones are left alone: another process mirroring into the same folder may be
    writing them.
    """
    removed = 0
    for path, mtime in found.temp_files:
        if now - mtime > older_than:
            with contextlib.suppress(OSError):
                os.unlink(path)
                removed += 1
    return removed


@dataclass(slots=True)
class Walk:
    """Result of :func:`walk`: ``entries`` sorted by key bytes; ``skipped`` keys (broken or
    looping symlinks, unreadable entries) that the caller must protect from deletes."""

    entries: list[Entry] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    temp_files: list[tuple[str, float]] = field(default_factory=list)  # (path, mtime)


def walk(root: Path, *, follow_dir_links: bool = True, follow_symlinks: bool = True) -> Walk:
    """List the tree under ``root`` as Entries (see the module rules).

    Args:
        root: the folder to list. A missing folder gives an empty Walk; the caller decides
            whether that is an error.
        follow_dir_links: walk into symlinked folders (uploads); ``False`` reports them in
            ``skipped`` instead (download destinations).
        follow_symlinks: ``False`` skips every symlink (logged at INFO, reported in
            ``skipped`` so its key is protected from deletes), as pos3 did for uploads.

    Raises:
        NotADirectoryError: ``root`` exists but is not a folder.
    """
    result = Walk()
    if not root.exists():
        return result
    if not root.is_dir():
        raise NotADirectoryError(f"not a folder: {str(root)!r}")
    root_st = root.stat()
    _walk_dir(
        str(root),
        "",
        {(root_st.st_dev, root_st.st_ino)},
        result,
        follow_dir_links,
        follow_symlinks,
    )
    result.entries.sort(key=lambda e: e.key.encode("utf-8", "surrogateescape"))
    return result


def _walk_dir(
    path: str,
    rel: str,
    ancestors: set[tuple[int, int]],
    out: Walk,
    follow: bool,
    links: bool = True,
) -> bool:
    """Walk one folder; returns True if it yielded anything (so the folder is not empty)."""
    any_child = False
    try:
        scan = list(os.scandir(path))
    except OSError as exc:
        logger.warning("skipping unreadable folder %r: %s", path, exc)
        out.skipped.append(rel)
        return True  # unknown content: do not list as empty
    for de in scan:
        name = de.name
        if name.endswith(TEMP_SUFFIX):
            with contextlib.suppress(OSError):
                out.temp_files.append((de.path, de.stat(follow_symlinks=False).st_mtime))
            continue
        key = rel + name
        if not links and de.is_symlink():
            logger.info("skipping symlink %r (follow_symlinks=False)", de.path)
            out.skipped.append(key)
            any_child = True
            continue
        try:
            st = os.stat(de.path)  # follows symlinks
        except OSError as exc:
            logger.warning("skipping %r: %s", de.path, exc)
            out.skipped.append(key)
            any_child = True
            continue
        if stat.S_ISDIR(st.st_mode):
            if not follow and de.is_symlink():
                logger.warning(
                    "not entering symlinked folder %r in a download destination", de.path
                )
                out.skipped.append(key + "/")
                any_child = True
                continue
            ident = (st.st_dev, st.st_ino)
            if ident in ancestors:
                logger.warning("skipping symlink loop at %r", de.path)
                out.skipped.append(key + "/")
                any_child = True
                continue
            ancestors.add(ident)
            if not _walk_dir(de.path, key + "/", ancestors, out, follow, links):
                out.entries.append(Entry(key + "/", 0, st.st_mtime))
            ancestors.discard(ident)
            any_child = True
        elif stat.S_ISREG(st.st_mode):
            stamp = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
            out.entries.append(Entry(key, st.st_size, st.st_mtime, stamp=stamp))
            any_child = True
        else:
            logger.warning("skipping %r: not a regular file or folder", de.path)
            out.skipped.append(key)
            any_child = True
    return any_child


def safe_join(root: Path, key: str) -> Path:
    """Return ``root / key`` for a relative key, refusing keys that escape ``root``.

    Raises:
        UnsafeKeyError: the key is empty, absolute, has ``.``/``..``/empty segments, a
            backslash or a NUL (see :func:`pos3lite.urls.check_relative_key`).
    """
    check_relative_key(key.rstrip("/") if key.endswith("/") else key)
    return root.joinpath(*key.rstrip("/").split("/"))


_TOKEN: list[str] = []
_COUNTER = itertools.count()


def temp_path_for(target: Path) -> Path:
    """A temporary path beside ``target``: ``.<name>.<token><n>.pos3lite-tmp``.

    Unique per call: a random token per process (drawn once) and a counter, so two
    processes sharing a folder, or two threads, never share a temporary file. The name is
    kept within NAME_MAX (255 bytes) even for a long target name.
    """
    if not _TOKEN:
        _TOKEN.append(secrets.token_hex(4))
    stem = target.name
    while len(os.fsencode(stem)) > 200:
        stem = stem[:-1]
    return target.with_name(f".{stem}.{_TOKEN[0]}{next(_COUNTER):x}{TEMP_SUFFIX}")


def write_atomic(
    target: Path,
    fill: Callable[[BinaryIO], None],
    *,
    mtime: float | None = None,
    make_parents: bool = True,
) -> None:
    """Create or replace ``target`` atomically with the bytes ``fill(f)`` writes into ``f``.

    The bytes go to ``.<name>.<random>.pos3lite-tmp`` in the same folder (same file system,
    unique per call so concurrent writers never share one), the mtime is set (seconds since
    the epoch) and the file is ``os.replace``-d over ``target``. On any exception the
    temporary file is removed and the exception propagates; ``target`` is left untouched.
    Parent folders are created unless ``make_parents`` is false (the caller made them).
    """
    if make_parents:
        target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(target)
    try:
        # Unbuffered: each write is one syscall, and no isatty/seek probing on open.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        with open(fd, "wb", buffering=0) as f:
            fill(f)
            if mtime is not None:
                os.utime(fd, (mtime, mtime))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def file_md5(path: Path, *, block_size: int = 1024 * 1024) -> str:
    """Hex MD5 of the file at ``path`` (read in ``block_size``-byte blocks)."""
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(block_size):
            h.update(block)
    return h.hexdigest()
