"""The sqlite3 set-up shared by the mirror's metadata databases (sync state, MD5 cache).

Both live in ``<cache_root>/.pos3lite/`` and are opened the same way: the metadata folder is
created ``0700``, the database runs in WAL mode with ``synchronous=NORMAL`` (crash-safe,
one fsync per checkpoint rather than per transaction), the schema is created if missing and
one probe query proves the file readable before the connection is handed out. What each
does with a damaged file differs (the state keeps it aside for inspection, the cache just
deletes it), so both are offered here as :func:`move_aside` with or without a target.

Spec: SQLite "Write-Ahead Logging" and "PRAGMA synchronous" documentation.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from ..localfs.cache import ensure_cache_root

__all__ = ["close_quietly", "connect", "move_aside"]

#: The files one WAL database consists of.
_SUFFIXES = ("", "-wal", "-shm")


def connect(path: Path, schema: str, probe: str, *, timeout: float) -> sqlite3.Connection:
    """Open (creating if needed) the WAL database at ``path``.

    Args:
        path: ``<cache_root>/.pos3lite/<name>.sqlite3``; the cache root and the metadata
            folder are created ``0700`` when missing.
        schema: ``CREATE ... IF NOT EXISTS`` statements run on every open.
        probe: a cheap query that reads the database, run once so that a damaged file fails
            here rather than at first use.
        timeout: seconds sqlite waits on another process's lock (``busy_timeout``).

    Returns:
        A connection in autocommit mode (``isolation_level=None``) usable from any thread
        (the caller serialises its use).

    Raises:
        sqlite3.DatabaseError: the file is not a readable database (the connection is
            closed first); OSError: the metadata folder cannot be created.
    """
    ensure_cache_root(path.parent.parent)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=timeout, check_same_thread=False, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(schema)
        db.execute(probe).fetchone()
    except BaseException:
        db.close()
        raise
    return db


def move_aside(path: Path, aside: Path | None = None) -> None:
    """Move the database at ``path`` with its ``-wal`` and ``-shm`` files to ``aside``
    (same suffixes), or delete them when ``aside`` is None. Missing files are skipped and
    errors ignored: the caller opens a fresh database next, which fails loudly if the
    folder is unusable."""
    for suffix in _SUFFIXES:
        with contextlib.suppress(OSError):
            if aside is None:
                os.unlink(str(path) + suffix)
            else:
                os.replace(str(path) + suffix, str(aside) + suffix)


def close_quietly(db: sqlite3.Connection | None) -> None:
    """Close ``db`` if any, ignoring sqlite errors (a damaged database may fail to close)."""
    if db is not None:
        with contextlib.suppress(sqlite3.Error):
            db.close()
