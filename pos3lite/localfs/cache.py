"""Where cached copies live: the cache root, created private to its user.

Rules:

* ``$POS3LITE_CACHE_ROOT`` if set, else pos3's ``~/.cache/positronic/s3/`` (a drop-in switch
  reuses a warm cache); without a home folder (arbitrary-UID containers) a per-user folder
  ``<tempdir>/pos3lite-cache-<uid>``.
* The cache root is created with mode ``0700`` (cached objects may be private data).
* The fallback under the shared temp folder must be a real folder owned by this user and not
  writable by others; anything else (another user planted it first, or a symlink) is a
  :class:`~pos3lite.errors.ConfigError` naming it, never used.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from ..errors import ConfigError

__all__ = ["DEFAULT_CACHE_ROOT", "default_cache_root", "ensure_cache_root", "fallback_cache_root"]

#: pos3's default cache root, kept so a drop-in switch reuses a warm cache.
DEFAULT_CACHE_ROOT = "~/.cache/positronic/s3/"


def fallback_cache_root(tempdir: str | None = None) -> Path:
    """``<tempdir>/pos3lite-cache-<uid>``, created ``0700`` if missing, owner checked.

    Raises:
        ConfigError: the path exists but is a symlink, not a folder, owned by another user,
            or writable by group or others.
    """
    if tempdir is None:
        import tempfile  # only on the fallback path: most runs never need it

        tempdir = tempfile.gettempdir()
    base = Path(tempdir).resolve()
    uid = os.getuid()
    path = base / f"pos3lite-cache-{uid}"
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"cache root {str(path)!r} is not a folder (a symlink or file?)")
    if st.st_uid != uid:
        raise ConfigError(
            f"cache root {str(path)!r} belongs to uid {st.st_uid}, not {uid}; "
            "set POS3LITE_CACHE_ROOT to a folder of your own"
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(f"cache root {str(path)!r} is writable by other users")
    return path


def default_cache_root(environ: Mapping[str, str] | None = None) -> Path:
    """The cache root used when ``mirror(cache_root=None)`` (see the module rules).

    Raises:
        ConfigError: the per-user fallback under the temp folder is not safely ours.
    """
    env = os.environ if environ is None else environ
    override = env.get("POS3LITE_CACHE_ROOT")
    if override:
        return Path(override).expanduser().resolve()
    try:
        return Path(DEFAULT_CACHE_ROOT).expanduser().resolve()
    except RuntimeError:  # no home folder
        return fallback_cache_root()


def ensure_cache_root(root: Path, path: Path | None = None) -> Path:
    """Create the cache root (and missing parents) with mode ``0700``; return ``root``.

    Call it just before writing ``path``: nothing is made when ``path`` is given and lies
    outside ``root`` (a ``local=`` folder elsewhere). Plans and dry runs never call it, so they
    create nothing. An existing folder keeps its mode (the user may share it on purpose).
    """
    if path is not None and not path.is_relative_to(root):
        return root
    if not root.is_dir():
        root.mkdir(mode=0o700, parents=True, exist_ok=True)  # parents get the default mode
    return root
