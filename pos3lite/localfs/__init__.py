"""Local file-system side of a mirror: walk, safe joins, atomic writes, cache roots.

* :mod:`.walk` lists a tree as sync-engine Entries streamed in S3 key order, skipping
  symlinks unless asked, and reports names that cannot be S3 keys per file.
* :mod:`.write` writes through folder descriptors with ``O_NOFOLLOW`` into locked temp
  files renamed into place, and removes temp files whose writer died.
* :mod:`.cache` finds and creates the cache root (``0700``, owner checked).
* :mod:`.watch` (Linux inotify: which files background ticks must stat) loads ctypes, so
  it is imported by its first user, never from here.

Every name below is importable from ``pos3lite.localfs``.
"""

from __future__ import annotations

from .cache import DEFAULT_CACHE_ROOT, default_cache_root, ensure_cache_root, fallback_cache_root
from .walk import (
    FD_BUDGET,
    MAX_KEY_BYTES,
    StampRow,
    Walk,
    file_md5,
    iter_stamps,
    iter_walk,
    walk,
)
from .write import (
    STALE_TEMP_SECONDS,
    TEMP_SUFFIX,
    FolderCache,
    TempFile,
    make_dirs,
    open_dir,
    remove,
    remove_stale_temps,
    remove_temp_if_dead,
    safe_join,
    temp_path_for,
    write_atomic,
)

__all__ = [
    "DEFAULT_CACHE_ROOT",
    "FD_BUDGET",
    "MAX_KEY_BYTES",
    "STALE_TEMP_SECONDS",
    "TEMP_SUFFIX",
    "FolderCache",
    "StampRow",
    "TempFile",
    "Walk",
    "default_cache_root",
    "ensure_cache_root",
    "fallback_cache_root",
    "file_md5",
    "iter_stamps",
    "iter_walk",
    "make_dirs",
    "open_dir",
    "remove",
    "remove_stale_temps",
    "remove_temp_if_dead",
    "safe_join",
    "temp_path_for",
    "walk",
    "write_atomic",
]
