"""MD5s of local files for ``compare="checksum"``, cached so an unchanged file is hashed once.

Rules:

* A digest is keyed by the file's ``(st_dev, st_ino)`` and valid only while its
  ``(size, st_mtime_ns, st_ctime_ns)`` are the ones recorded: any write (even of the same size
  in the same second: ``st_mtime_ns`` and ``st_ctime_ns`` move), a replacement by rename (a new
  inode) or a restored mtime (``st_ctime_ns`` moves) costs a fresh hash.
* A digest is stored only when the file's stat is the same before and after it was read, so
  a file written while it was hashed is never cached with a digest of mixed content.
* One sqlite3 database (WAL) per cache root, ``<cache_root>/.pos3lite/md5.sqlite3``, apart from
  the sync state so that losing one never costs the other. It is bounded: beyond
  ``max_rows`` digests the oldest stored are dropped.
* It is only a cache: a damaged database is deleted and rebuilt, a locked or unwritable one
  is skipped; either way the file is hashed, nothing is lost. Threads share one connection
  under a lock; hashing itself runs outside the lock (on the caller's executor).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import TypeVar

import pos3lite.mirror.sqlitedb as sqlitedb

from ..localfs import file_md5
from .state import META_DIR

__all__ = ["CACHE_FILE", "MAX_ROWS", "Md5Cache"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: The database file inside the cache root's metadata folder.
CACHE_FILE = "md5.sqlite3"
#: Digests kept at most (about 100 bytes each on disk).
MAX_ROWS = 1_000_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS md5 (
    dev INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    md5 TEXT NOT NULL,
    added REAL NOT NULL,
    PRIMARY KEY (dev, ino)
) WITHOUT ROWID;
"""

# (dev, ino, size, mtime_ns, ctime_ns)
_Ident = tuple[int, int, int, int, int]


def _ident(st: os.stat_result) -> _Ident:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class Md5Cache:
    """The MD5 cache of one cache root (see the module rules).

    Args:
        cache_root: the mirror's cache root (the metadata folder is created ``0700`` on the
            first store).
        max_rows: digests kept at most.
    """

    def __init__(self, cache_root: Path, *, max_rows: int = MAX_ROWS) -> None:
        self.path = cache_root / META_DIR / CACHE_FILE
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._off = False  # unusable for this process: hash everything

    # ----------------------------------------------------------------- connection

    def _connect(self) -> sqlite3.Connection:
        return sqlitedb.connect(
            self.path, _SCHEMA, "SELECT count(*) FROM md5 WHERE dev = -1", timeout=5.0
        )

    def _run(self, what: str, fn: Callable[[sqlite3.Connection], T]) -> T | None:
        """``fn(db)`` under the lock; a damaged database is deleted and rebuilt once, any
        other failure turns the cache off (logged): the caller hashes instead."""
        with self._lock:
            if self._off:
                return None
            for attempt in (1, 2):
                try:
                    if self._db is None:
                        self._db = self._connect()
                    return fn(self._db)
                except sqlite3.OperationalError as exc:
                    if "locked" in str(exc) or "busy" in str(exc):
                        logger.debug("md5 cache %s busy (%s); hashing instead", self.path, exc)
                        return None
                    self._fail(what, exc, attempt)
                except sqlite3.DatabaseError as exc:
                    self._fail(what, exc, attempt)
                except OSError as exc:
                    self._close()
                    self._off = True
                    logger.warning("md5 cache %s unusable (%s); hashing instead", self.path, exc)
                    return None
            return None

    def _fail(self, what: str, exc: BaseException, attempt: int) -> None:
        self._close()
        if attempt == 1:
            logger.warning(
                "md5 cache %s is damaged (%s while %s); starting it afresh", self.path, exc, what
            )
            sqlitedb.move_aside(self.path)
        else:
            self._off = True
            logger.warning("md5 cache %s unusable (%s); hashing instead", self.path, exc)

    def _close(self) -> None:
        sqlitedb.close_quietly(self._db)
        self._db = None

    def close(self) -> None:
        """Close the connection (reopened on next use)."""
        with self._lock:
            self._close()

    def forget_connection(self) -> None:
        """After ``fork()``: drop the parent's connection without touching it."""
        self._db = None
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- API

    def _lookup(self, idents: Sequence[_Ident]) -> list[str | None]:
        if not self.path.exists() and self._db is None:
            return [None] * len(idents)

        def run(db: sqlite3.Connection) -> list[str | None]:
            out: list[str | None] = []
            q = "SELECT size, mtime_ns, ctime_ns, md5 FROM md5 WHERE dev = ? AND ino = ?"
            for dev, ino, size, mtime_ns, ctime_ns in idents:
                row = db.execute(q, (dev, ino)).fetchone()
                ok = row is not None and (row[0], row[1], row[2]) == (size, mtime_ns, ctime_ns)
                out.append(row[3] if ok else None)
            return out

        got = self._run("reading", run)
        return got if got is not None else [None] * len(idents)

    def _store(self, rows: Sequence[tuple[_Ident, str]]) -> None:
        if not rows:
            return
        now = time.time()

        def run(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(
                    "INSERT OR REPLACE INTO md5 VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(*ident, md5, now) for ident, md5 in rows],
                )
                (n,) = db.execute("SELECT count(*) FROM md5").fetchone()
                if n > self.max_rows:
                    # Drop the oldest tenth beyond the bound (hysteresis: not on every store).
                    extra = n - self.max_rows + self.max_rows // 10
                    db.execute(
                        "DELETE FROM md5 WHERE (dev, ino) IN "
                        "(SELECT dev, ino FROM md5 ORDER BY added LIMIT ?)",
                        (extra,),
                    )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

        self._run("writing", run)

    def digests(self, paths: Sequence[Path], executor: Executor | None = None) -> list[str]:
        """The hex MD5 of each file in ``paths`` (same order): from the cache when the file's
        identity and stat match a stored digest, else hashed (on ``executor`` when given,
        each file read in 1 MiB blocks) and stored.

        Raises:
            OSError: a file cannot be stat-ed or read (as :func:`~pos3lite.localfs.file_md5`).
        """
        idents = [_ident(os.stat(p)) for p in paths]
        found = self._lookup(idents)
        todo = [i for i, md5 in enumerate(found) if md5 is None]
        if not todo:
            return [md5 for md5 in found if md5 is not None]

        def hash_one(i: int) -> tuple[int, str, bool]:
            md5 = file_md5(paths[i])
            try:
                same = _ident(os.stat(paths[i])) == idents[i]
            except OSError:
                same = False
            return i, md5, same

        done = executor.map(hash_one, todo) if executor is not None else map(hash_one, todo)
        fresh: list[tuple[_Ident, str]] = []
        for i, md5, same in done:
            found[i] = md5
            if same:
                fresh.append((idents[i], md5))
        self._store(fresh)
        return [md5 if md5 is not None else "" for md5 in found]

    def md5(self, path: Path) -> str:
        """The hex MD5 of one file (see :meth:`digests`)."""
        return self.digests([path])[0]
