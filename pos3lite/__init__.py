"""pos3lite: S3 as simple as local files.

A light, drop-in replacement for the public API of ``pos3`` 0.4.0 with run-time
dependencies urllib3 and tqdm only (imported on first use, never here)::

    import pos3lite as pos3

    with pos3.mirror():
        data = pos3.download("s3://bucket/data")     # a local pathlib.Path, read at disk speed
        out = pos3.upload("s3://bucket/results")      # mirrored back in the background + on exit

Everything public is reachable from here; importing this module reads no files, opens no
sockets and loads the mirror machinery only on first use of a public name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    AccessDeniedError,
    AlreadyExistsError,
    CertificateError,
    ChecksumMismatchError,
    ConditionalWritesUnsupportedError,
    ConfigError,
    ConnectError,
    CredentialsError,
    InvalidManifestError,
    InvalidURLError,
    KeyConflictError,
    LockLostError,
    MirrorStateError,
    NotFoundError,
    Pos3liteError,
    PreconditionFailedError,
    ProfileError,
    ReadTimeoutError,
    RemoteNotFoundError,
    S3Error,
    TransferError,
    TransportError,
    UnsafeKeyError,
)

if TYPE_CHECKING:
    from ._lock import Lock
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
    from .objects import (
        Client,
        DeleteReport,
        ObjectInfo,
        ObjectReader,
        PutResult,
        check_conditional_writes,
        copy,
        delete,
        delete_many,
        exists,
        get,
        get_bytes,
        head,
        list_objects,
        lock,
        open,
        presign,
        put,
    )
    from .profiles import Profile, register_profile

# The mirror machinery (threads, pathlib, logging, the engine) loads on first attribute
# access (PEP 562), so `import pos3lite` stays a few milliseconds; see benchmarks/.
_LAZY = {
    "TransferPlan": "._mirror",
    "download": "._mirror",
    "ls": "._mirror",
    "mirror": "._mirror",
    "plan_download": "._mirror",
    "plan_upload": "._mirror",
    "sync": "._mirror",
    "upload": "._mirror",
    "with_mirror": "._mirror",
    "Profile": ".profiles",
    "register_profile": ".profiles",
    # The object API and the lease lock (issue 10).
    "Client": ".objects",
    "DeleteReport": ".objects",
    "ObjectInfo": ".objects",
    "ObjectReader": ".objects",
    "PutResult": ".objects",
    "check_conditional_writes": ".objects",
    "copy": ".objects",
    "delete": ".objects",
    "delete_many": ".objects",
    "exists": ".objects",
    "get": ".objects",
    "get_bytes": ".objects",
    "head": ".objects",
    "list_objects": ".objects",
    "open": ".objects",
    "presign": ".objects",
    "put": ".objects",
    "Lock": "._lock",
    "lock": ".objects",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pos3lite' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    # Public names only: not the helpers this module imports for itself (``Any``,
    # ``TYPE_CHECKING``, ``annotations``) nor submodules loaded as a side effect.
    return sorted(set(__all__) | set(_LAZY))


__version__ = "0.1.0"

__all__ = [
    "AccessDeniedError",
    "AlreadyExistsError",
    "CertificateError",
    "ChecksumMismatchError",
    "Client",
    "ConditionalWritesUnsupportedError",
    "ConfigError",
    "ConnectError",
    "CredentialsError",
    "DeleteReport",
    "InvalidManifestError",
    "InvalidURLError",
    "KeyConflictError",
    "Lock",
    "LockLostError",
    "MirrorStateError",
    "NotFoundError",
    "ObjectInfo",
    "ObjectReader",
    "Pos3liteError",
    "PreconditionFailedError",
    "Profile",
    "ProfileError",
    "PutResult",
    "ReadTimeoutError",
    "RemoteNotFoundError",
    "S3Error",
    "TransferError",
    "TransferPlan",
    "TransportError",
    "UnsafeKeyError",
    "__version__",
    "check_conditional_writes",
    "copy",
    "delete",
    "delete_many",
    "download",
    "exists",
    "get",
    "get_bytes",
    "head",
    "list_objects",
    "lock",
    "ls",
    "mirror",
    "open",
    "plan_download",
    "plan_upload",
    "presign",
    "put",
    "register_profile",
    "sync",
    "upload",
    "with_mirror",
]
