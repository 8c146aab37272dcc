"""The sync state: what was last in sync, per registration and key (sqlite3, WAL mode).

Rules:

* One database per cache root, ``<cache_root>/.pos3lite/state.sqlite3``: the cache root's own
  metadata folder (profile folder names cannot start with ``.``), never the user's folder.
* A registration is ``(profile local_name, normalised s3:// URL, resolved local folder)``;
  a download, an upload and a sync of the same URL into the same folder share it, so what
  one transferred the others know.
* A row holds the local file's stamp ``(size, st_mtime_ns, st_ino, st_ctime_ns)`` and the
  object's ``(ETag, size, LastModified)`` at the last successful transfer or verification.
  Keys are stored as UTF-8 bytes (``surrogateescape`` for undecodable local names), so the
  table's order is the engine's :func:`~pos3lite.engine.diff.sort_key` order.
* Crash safety is sqlite's: WAL journal, one transaction per batch of changes. A damaged or
  unreadable database is moved aside (``.corrupt-<time>``) and replaced by an empty one:
  a lost state costs extra transfers (the no-state rules apply), never data.
* Concurrent processes are sqlite's business (file locks, ``busy_timeout``); threads share one
  connection under a lock. Updates touch only the changed keys.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pos3lite.mirror.sqlitedb as sqlitedb

from ..engine.model import Synced

__all__ = ["META_DIR", "STATE_FILE", "SyncState", "registration_name"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: The cache root's metadata folder.
META_DIR = ".pos3lite"
#: The database file inside :data:`META_DIR`.
STATE_FILE = "state.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS registrations (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS entries (
    reg INTEGER NOT NULL,
    key BLOB NOT NULL,
    lsize INTEGER NOT NULL,
    lmtime_ns INTEGER NOT NULL,
    lino INTEGER NOT NULL,
    lctime_ns INTEGER NOT NULL,
    etag TEXT,
    rsize INTEGER NOT NULL,
    rmtime REAL NOT NULL,
    PRIMARY KEY (reg, key)
) WITHOUT ROWID;
"""


def registration_name(profile_name: str, url: str, local: Path) -> str:
    """The registration's identity: ``<profile>\\0<url>\\0<local folder>``."""
    return f"{profile_name}\0{url}\0{os.fsdecode(local)}"


def _kb(key: str) -> bytes:
    return key.encode("utf-8", "surrogateescape")


class SyncState:
    """The sync state of one cache root (see the module rules).

    Args:
        cache_root: the mirror's cache root; the metadata folder is created ``0700``.

    Opening is lazy (first use), so a mirror that never transfers creates nothing.
    """

    def __init__(self, cache_root: Path) -> None:
        self.path = cache_root / META_DIR / STATE_FILE
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._ids: dict[str, int] = {}

    # ----------------------------------------------------------------- connection

    def _open(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        try:
            db = self._connect()
        except sqlite3.DatabaseError as exc:
            self._set_aside(exc)
            db = self._connect()
        self._db = db
        return db

    def _connect(self) -> sqlite3.Connection:
        return sqlitedb.connect(
            self.path, _SCHEMA, "SELECT count(*) FROM registrations", timeout=30.0
        )

    def _set_aside(self, exc: BaseException) -> None:
        aside = self.path.with_name(f"{STATE_FILE}.corrupt-{int(time.time())}")
        logger.warning(
            "sync state %s is unreadable (%s); moved to %s and starting afresh "
            "(files will be compared without a state once)",
            self.path,
            exc,
            aside,
        )
        sqlitedb.move_aside(self.path, aside)

    def _reg_id(self, db: sqlite3.Connection, name: str, *, create: bool = True) -> int | None:
        found = self._ids.get(name)
        if found is not None:
            return found
        row = db.execute("SELECT id FROM registrations WHERE name = ?", (name,)).fetchone()
        if row is None:
            if not create:
                # Reads never write: a write would make the last connection's close
                # checkpoint (and fsync) the database on every no-op resync.
                return None
            db.execute("INSERT OR IGNORE INTO registrations(name) VALUES (?)", (name,))
            row = db.execute("SELECT id FROM registrations WHERE name = ?", (name,)).fetchone()
        self._ids[name] = int(row[0])
        return int(row[0])

    def _guard(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(db)``; a damaged database is set aside once and the call retried."""
        with self._lock:
            try:
                return fn(self._open())
            except sqlite3.DatabaseError as exc:
                if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                    raise
                self.close_locked()
                self._set_aside(exc)
                return fn(self._open())

    # ----------------------------------------------------------------- API

    def load(self, reg: str) -> dict[str, Synced]:
        """Every record of registration ``reg``, by key (empty when there is none).

        Reading creates nothing: without a database file the state is empty."""
        if self._db is None and not self.path.exists():
            return {}

        def run(db: sqlite3.Connection) -> dict[str, Synced]:
            rid = self._reg_id(db, reg, create=False)
            if rid is None:
                return {}
            rows = db.execute(
                "SELECT key, lsize, lmtime_ns, lino, lctime_ns, etag, rsize, rmtime "
                "FROM entries WHERE reg = ?",
                (rid,),
            )
            return {
                key.decode("utf-8", "surrogateescape"): Synced((ls, lm, li, lc), etag, rs, rm)
                for key, ls, lm, li, lc, etag, rs, rm in rows
            }

        try:
            return self._guard(run)
        except (sqlite3.Error, OSError) as exc:
            logger.warning("could not read the sync state %s: %s", self.path, exc)
            return {}

    def records(self, reg: str, *, batch: int = 2000) -> Iterator[tuple[bytes, Synced]]:
        """Every record of registration ``reg`` as ``(key as UTF-8 bytes, record)``, in key
        byte order (sqlite's BINARY order of the BLOB key, which is the engine's
        :func:`~pos3lite.engine.diff.sort_key` order), read ``batch`` rows at a time; the
        empty key's record (an upload or download of one object) is left out.

        Each batch is one short query (``key > last ORDER BY key LIMIT batch``) under the
        connection lock, so a long merge never holds the lock or a read transaction open.
        A read error is logged and ends the stream early (fewer records: the no-state rules
        apply to the rest, as with :meth:`load`)."""
        if self._db is None and not self.path.exists():
            return
        last = b""  # the record of the empty key (a registration on one object) is not listed
        while True:

            def run(db: sqlite3.Connection, last: bytes = last) -> list[Any]:
                rid = self._reg_id(db, reg, create=False)
                if rid is None:
                    return []
                return db.execute(
                    "SELECT key, lsize, lmtime_ns, lino, lctime_ns, etag, rsize, rmtime "
                    "FROM entries WHERE reg = ? AND key > ? ORDER BY key LIMIT ?",
                    (rid, last, batch),
                ).fetchall()

            try:
                rows = self._guard(run)
            except (sqlite3.Error, OSError) as exc:
                logger.warning("could not read the sync state %s: %s", self.path, exc)
                return
            for key, ls, lm, li, lc, etag, rs, rm in rows:
                yield key, Synced((ls, lm, li, lc), etag, rs, rm)
            if len(rows) < batch:
                return
            last = rows[-1][0]

    def get(self, reg: str, key: str) -> Synced | None:
        """The record of one key of registration ``reg``, or ``None``."""
        if self._db is None and not self.path.exists():
            return None

        def run(db: sqlite3.Connection) -> Synced | None:
            rid = self._reg_id(db, reg, create=False)
            if rid is None:
                return None
            row = db.execute(
                "SELECT lsize, lmtime_ns, lino, lctime_ns, etag, rsize, rmtime "
                "FROM entries WHERE reg = ? AND key = ?",
                (rid, _kb(key)),
            ).fetchone()
            if row is None:
                return None
            ls, lm, li, lc, etag, rs, rm = row
            return Synced((ls, lm, li, lc), etag, rs, rm)

        try:
            return self._guard(run)
        except (sqlite3.Error, OSError) as exc:
            logger.warning("could not read the sync state %s: %s", self.path, exc)
            return None

    def records_of(
        self, reg: str, keys: Iterable[str], *, under: Iterable[str] = (), batch: int = 500
    ) -> tuple[dict[str, Synced], dict[str, tuple[str, Synced]]] | None:
        """The records of some keys of registration ``reg``, read by key (an incremental
        tick's changed files), never the whole registration.

        Args:
            keys: the keys to read; those without a record are left out of the answer.
            under: folder keys (ending ``/``); for each, the first record below it in key
                byte order is read (``key >= prefix AND key < prefix-with-'/'-as-'0'``,
                ``LIMIT 1``): whether the state holds anything under a folder.
            batch: keys per ``WHERE reg = ? AND key IN (...)`` query.

        Returns:
            ``(records by key, {folder key: (key, record) of the first record under it}``
            (folders with nothing under them left out)), or ``None`` when the state cannot be
            read (logged; the caller then reads it in full, as before). Reading creates
            nothing: without a database file both mappings are empty."""
        wanted = sorted({_kb(k) for k in keys})
        prefixes = sorted({_kb(p) for p in under})
        if self._db is None and not self.path.exists():
            return {}, {}

        def run(db: sqlite3.Connection) -> tuple[dict[str, Synced], dict[str, tuple[str, Synced]]]:
            found: dict[str, Synced] = {}
            first: dict[str, tuple[str, Synced]] = {}
            rid = self._reg_id(db, reg, create=False)
            if rid is None:
                return found, first
            cols = "key, lsize, lmtime_ns, lino, lctime_ns, etag, rsize, rmtime"
            for i in range(0, len(wanted), batch):
                chunk = wanted[i : i + batch]
                marks = ",".join("?" * len(chunk))
                q = f"SELECT {cols} FROM entries WHERE reg = ? AND key IN ({marks})"
                for key, ls, lm, li, lc, etag, rs, rm in db.execute(q, (rid, *chunk)):
                    found[key.decode("utf-8", "surrogateescape")] = Synced(
                        (ls, lm, li, lc), etag, rs, rm
                    )
            q = (
                f"SELECT {cols} FROM entries WHERE reg = ? AND key >= ? AND key < ? "
                "ORDER BY key LIMIT 1"
            )
            for p in prefixes:
                row = db.execute(q, (rid, p, p[:-1] + b"0")).fetchone()  # "0" follows "/"
                if row is not None:
                    key, ls, lm, li, lc, etag, rs, rm = row
                    first[p.decode("utf-8", "surrogateescape")] = (
                        key.decode("utf-8", "surrogateescape"),
                        Synced((ls, lm, li, lc), etag, rs, rm),
                    )
            return found, first

        try:
            return self._guard(run)
        except (sqlite3.Error, OSError) as exc:
            logger.warning("could not read the sync state %s: %s", self.path, exc)
            return None

    def iter_keys(self, reg: str, *, page: int = 20_000) -> Iterator[bytes]:
        """Every recorded key of registration ``reg`` (UTF-8 bytes, the empty key of a
        one-object registration included), in key byte order, ``page`` rows at a time.

        Unlike the other readers, an unreadable state is raised, not logged and cut short:
        a caller that must see every key (the twin screen of incremental ticks, see
        ``ticks.py``) cannot take a partial answer for a whole one.

        Raises:
            sqlite3.Error, OSError: the state could not be read."""
        if self._db is None and not self.path.exists():
            return
        after = b""
        op = ">="
        while True:

            def run(db: sqlite3.Connection, after: bytes = after, op: str = op) -> list[Any]:
                rid = self._reg_id(db, reg, create=False)
                if rid is None:
                    return []
                return db.execute(
                    f"SELECT key FROM entries WHERE reg = ? AND key {op} ? ORDER BY key LIMIT ?",
                    (rid, after, page),
                ).fetchall()

            rows = self._guard(run)
            for (key,) in rows:
                yield key
            if len(rows) < page:
                return
            after, op = rows[-1][0], ">"

    def has_records(self, reg: str) -> bool:
        """Whether registration ``reg`` has any record."""
        if self._db is None and not self.path.exists():
            return False

        def run(db: sqlite3.Connection) -> bool:
            rid = self._reg_id(db, reg, create=False)
            if rid is None:
                return False
            q = "SELECT 1 FROM entries WHERE reg = ? LIMIT 1"
            return db.execute(q, (rid,)).fetchone() is not None

        try:
            return self._guard(run)
        except (sqlite3.Error, OSError) as exc:
            logger.warning("could not read the sync state %s: %s", self.path, exc)
            return False

    def iter_stamps(
        self, reg: str, *, page: int = 20_000
    ) -> Iterator[tuple[bytes, int, int, int, int]]:
        """The recorded local stamp of every key of registration ``reg`` as rows ``(key as
        UTF-8 bytes, size, st_mtime_ns, st_ino, st_ctime_ns)`` (the shape of
        :func:`~pos3lite.localfs.iter_stamps`), in key byte order (the walk's and
        ``ListObjectsV2``'s), read ``page`` rows at a time (memory stays bounded; the
        connection is not held between pages).

        Reading creates nothing; an unreadable state is logged and ends the stream (the
        caller sees fewer records: files without one are uploaded, never skipped)."""
        if self._db is None and not self.path.exists():
            return
        after = b""
        op = ">="  # the first page includes the root's own record ("")
        while True:

            def run(
                db: sqlite3.Connection, after: bytes = after, op: str = op
            ) -> list[tuple[bytes, int, int, int, int]]:
                rid = self._reg_id(db, reg, create=False)
                if rid is None:
                    return []
                return db.execute(
                    "SELECT key, lsize, lmtime_ns, lino, lctime_ns FROM entries "
                    f"WHERE reg = ? AND key {op} ? ORDER BY key LIMIT ?",
                    (rid, after, page),
                ).fetchall()

            try:
                rows = self._guard(run)
            except (sqlite3.Error, OSError) as exc:
                logger.warning("could not read the sync state %s: %s", self.path, exc)
                return
            yield from rows
            if len(rows) < page:
                return
            after, op = rows[-1][0], ">"

    def update(
        self, reg: str, put: Iterable[tuple[str, Synced]], forget: Iterable[str] = ()
    ) -> None:
        """Record ``put`` (key, record) pairs and drop the ``forget`` keys, in one transaction.

        A failure to write is logged, not raised: the transfer itself succeeded, and a
        missing record costs a comparison without a state next time.
        """
        puts = [
            (_kb(k), s.local[0], s.local[1], s.local[2], s.local[3], s.etag, s.size, s.mtime)
            for k, s in put
        ]
        drops = [(_kb(k),) for k in forget]
        if not puts and not drops:
            return

        def run(db: sqlite3.Connection) -> None:
            rid = self._reg_id(db, reg)
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(
                    "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(rid, *row) for row in puts],
                )
                db.executemany(
                    "DELETE FROM entries WHERE reg = ? AND key = ?", [(rid, *d) for d in drops]
                )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

        try:
            self._guard(run)
        except (sqlite3.Error, OSError) as exc:
            logger.warning("could not write the sync state %s: %s", self.path, exc)

    def close_locked(self) -> None:
        sqlitedb.close_quietly(self._db)
        self._db = None
        self._ids.clear()

    def close(self) -> None:
        """Close the connection (reopened on next use)."""
        with self._lock:
            self.close_locked()

    def forget_connection(self) -> None:
        """After ``fork()``: drop the parent's connection without touching it (sqlite
        connections must not cross a fork) and rebuild the lock."""
        self._db = None
        self._ids = {}
        self._lock = threading.Lock()
