"""pos3lite: S3 as simple as local files.

A light, drop-in replacement for the public API of ``pos3`` 0.4.0 with run-time
dependencies urllib3 and tqdm only (imported on first use, never here)::

    import pos3lite as pos3

    with pos3.mirror():
        data = pos3.download("s3://bucket/data")     # a local pathlib.Path, read at disk speed
        out = pos3.upload("s3://bucket/results")      # mirrored back in the background + on exit

Everything public is re-exported here; importing this module reads no files and opens no
sockets.
"""

from __future__ import annotations

from ._mirror import (
    TransferPlan,
    download,
    ls,
    mirror,
    plan_download,
    plan_upload,
    sync,
    upload,
    with_mirror,
)
from .errors import (
    AccessDeniedError,
    ConfigError,
    CredentialsError,
    InvalidURLError,
    KeyConflictError,
    MirrorStateError,
    NotFoundError,
    Pos3liteError,
    ProfileError,
    RemoteNotFoundError,
    S3Error,
    TransferError,
    TransportError,
    UnsafeKeyError,
)
from .profiles import Profile, register_profile

__version__ = "0.1.0"

__all__ = [
    "AccessDeniedError",
    "ConfigError",
    "CredentialsError",
    "InvalidURLError",
    "KeyConflictError",
    "MirrorStateError",
    "NotFoundError",
    "Pos3liteError",
    "Profile",
    "ProfileError",
    "RemoteNotFoundError",
    "S3Error",
    "TransferError",
    "TransferPlan",
    "TransportError",
    "UnsafeKeyError",
    "__version__",
    "download",
    "ls",
    "mirror",
    "plan_download",
    "plan_upload",
    "register_profile",
    "sync",
    "upload",
    "with_mirror",
]
