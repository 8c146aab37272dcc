"""One exception tree for pos3lite, rooted at :class:`Pos3liteError`.

::

    Pos3liteError (Exception)
    ├── ConfigError (also ValueError)         bad argument, URL, profile or profiles.toml
    │   ├── InvalidURLError                   not an s3:// URL, bad bucket name, unsafe key
    │   └── ProfileError                      unknown profile, invalid profile definition
    ├── UnsafeKeyError (also ValueError)      a key that would land outside its destination
    ├── KeyConflictError                      a file on one side, a folder on the other
    ├── MirrorStateError (also RuntimeError)  no active mirror / mirror already active
    ├── CredentialsError                      no credentials found, or a provider failed
    ├── TransportError                        the request never got an HTTP answer
    │   ├── ConnectError                      could not connect (refused, DNS, TLS)
    │   │   └── CertificateError              the TLS certificate failed verification
    │   └── ReadTimeoutError                  the socket stalled past the read timeout
    ├── S3Error                               the server answered with an S3 error
    │   ├── NotFoundError (also FileNotFoundError)  404: NoSuchKey, NoSuchBucket, ...
    │   ├── AccessDeniedError                 403: AccessDenied, SignatureDoesNotMatch, ...
    │   └── PreconditionFailedError           412: a conditional request's condition failed
    │       └── AlreadyExistsError (also FileExistsError)  ``if_none_match="*"`` on a key
    │                                         that exists
    ├── ChecksumMismatchError                 downloaded bytes do not match the object's checksum
    ├── RemoteNotFoundError (also FileNotFoundError)
    │                                         a download URL matched no object and no prefix
    ├── TransferError                         one or more copy/delete workers failed
    ├── ConditionalWritesUnsupportedError     the endpoint ignores If-None-Match / If-Match
    ├── LockLostError                         a lease lock could not be confirmed or renewed
    └── InvalidManifestError (also ValueError)
                                              a dataset manifest line or shard index that
                                              does not parse (key and line number named)

``ConfigError`` and ``UnsafeKeyError`` subclass :class:`ValueError` and ``MirrorStateError``
subclasses :class:`RuntimeError` so code written against pos3 (which raised those builtins)
keeps catching them. Rules: every message names the bad value; no message, ``repr`` or log
line ever carries a secret (secret keys, session tokens, signatures).

Every exception pickles and unpickles with its message and attributes (they cross process
boundaries in worker pools): :meth:`Pos3liteError.__reduce__` rebuilds the instance without
calling ``__init__`` and restores its ``__dict__``, so subclasses with their own
constructor signatures inherit it without writing anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "AccessDeniedError",
    "AlreadyExistsError",
    "CertificateError",
    "ChecksumMismatchError",
    "ConditionalWritesUnsupportedError",
    "ConfigError",
    "ConnectError",
    "CredentialsError",
    "InvalidManifestError",
    "InvalidURLError",
    "KeyConflictError",
    "LockLostError",
    "MirrorStateError",
    "NotFoundError",
    "Pos3liteError",
    "PreconditionFailedError",
    "ProfileError",
    "ReadTimeoutError",
    "RemoteNotFoundError",
    "S3Error",
    "TransferError",
    "TransportError",
    "UnsafeKeyError",
]


def _rebuild(cls: type[Pos3liteError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    """Unpickle an exception: create it without ``__init__``, then restore its attributes."""
    # BaseException.__new__ stores ``args`` (so str() is the original message) and, unlike
    # calling the class, never runs a subclass __init__ with a signature of its own.
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class Pos3liteError(Exception):
    """Base class of every error pos3lite raises on purpose.

    Pickling (``pickle``, ``copy``, process pools) keeps the message and every attribute, for
    this class and every subclass, whatever the subclass's ``__init__`` signature.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class ConfigError(Pos3liteError, ValueError):
    """A bad argument, URL, profile or configuration file (a :class:`ValueError`)."""


class InvalidURLError(ConfigError):
    """A string that is not a usable ``s3://[profile@]bucket/key`` URL."""


class ProfileError(ConfigError):
    """An unknown profile name or an invalid profile definition."""


class UnsafeKeyError(Pos3liteError, ValueError):
    """An object key that would write outside its destination folder.

    Keys with ``..`` segments, a leading ``/``, a backslash or a NUL are refused, and nothing
    is written for them. ``key`` holds the offending key.
    """

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"refusing unsafe key {key!r}: {reason}")
        self.key = key
        self.reason = reason


class KeyConflictError(Pos3liteError):
    """A key that cannot be materialised: a file on one side and a folder (or prefix with
    objects under it) on the other, e.g. objects ``a`` and ``a/b`` in one listing.

    Reported and skipped; nothing is dropped silently and nothing is deleted for it.
    """

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"key {key!r} {reason}")
        self.key = key
        self.reason = reason


class MirrorStateError(Pos3liteError, RuntimeError):
    """The call needs an active mirror (or another mirror is already active)."""


class CredentialsError(Pos3liteError):
    """No credentials could be found, or a credential provider failed."""


class TransportError(Pos3liteError):
    """The request never got a complete HTTP answer (connection refused, reset, timeout)."""

    def __init__(self, message: str, *, method: str = "", url: str = "") -> None:
        super().__init__(message)
        self.method = method
        self.url = url


class ConnectError(TransportError):
    """Could not open a connection (refused, DNS failure, TLS handshake failure)."""


class CertificateError(ConnectError):
    """The server's TLS certificate failed verification; never retried (it would fail the
    same way). Set ``AWS_CA_BUNDLE`` for a private certificate authority."""


class ReadTimeoutError(TransportError):
    """The server sent nothing for longer than the read timeout."""


class S3Error(Pos3liteError):
    """An S3 error response, parsed from its XML body (or from the status for HEAD).

    Attributes: ``code`` (e.g. ``"NoSuchKey"``), ``message``, ``request_id``, ``bucket``,
    ``key`` and ``status`` (the HTTP status code, an int). See the AWS page
    "Error responses" in the Amazon S3 API Reference.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int,
        request_id: str | None = None,
        bucket: str | None = None,
        key: str | None = None,
        region: str | None = None,
        server_time: float | None = None,
    ) -> None:
        where = f"s3://{bucket}/{key}" if bucket and key else f"s3://{bucket}" if bucket else ""
        text = f"{code} (HTTP {status})"
        if where:
            text += f" for {where}"
        if message:
            text += f": {message}"
        if request_id:
            text += f" [request id {request_id}]"
        super().__init__(text)
        self.code = code
        self.message = message
        self.status = status
        self.request_id = request_id
        self.bucket = bucket
        self.key = key
        self.region = region
        self.server_time = server_time


class NotFoundError(S3Error, FileNotFoundError):
    """HTTP 404: the bucket or key does not exist (``NoSuchBucket``, ``NoSuchKey``).

    Also a :class:`FileNotFoundError`, so ``except FileNotFoundError`` catches a missing
    object as it catches a missing file. The object API also raises it for ``if_match`` on a
    missing key, whether the server answered 404 (AWS) or 412 (Ceph, SeaweedFS).
    """


class AccessDeniedError(S3Error):
    """HTTP 403: access denied, or the request signature was rejected."""


class ChecksumMismatchError(Pos3liteError):
    """The bytes received do not match the checksum the server gave for them.

    ``url`` names the object; ``expected`` and ``actual`` are hex digests. Retried, then
    raised; the file is never left at its final path.
    """

    def __init__(self, url: str, expected: str, actual: str) -> None:
        super().__init__(f"checksum mismatch for {url}: expected {expected}, got {actual}")
        self.url = url
        self.expected = expected
        self.actual = actual


class RemoteNotFoundError(Pos3liteError, FileNotFoundError):
    """A download URL matched neither an object nor any key under its prefix.

    Raised instead of treating the remote as empty, which would delete the local copy.
    """

    def __init__(self, url: str) -> None:
        super().__init__(f"no object and no objects under prefix at {url}")
        self.url = url


class TransferError(Pos3liteError):
    """One or more copy or delete workers failed (pos3-compatible).

    ``operation`` is ``"Download"``, ``"Upload"`` or ``"Delete"``; ``failures`` is the list
    of per-file exceptions, in completion order. Raised only after every worker finished.
    """

    def __init__(self, operation: str, failures: Sequence[BaseException]) -> None:
        first = failures[0] if failures else "no detail"
        super().__init__(f"{operation}: {len(failures)} worker(s) failed: {first}")
        self.operation = operation
        self.failures = list(failures)


class PreconditionFailedError(S3Error):
    """HTTP 412 ``PreconditionFailed``: the condition of a conditional request did not hold.

    Raised for ``if_match`` (the object's ETag differs) and ``if_none_match`` on reads. See
    "Conditional requests" in the Amazon S3 User Guide and RFC 9110 section 13.
    """


class AlreadyExistsError(PreconditionFailedError, FileExistsError):
    """A create-only write (``if_none_match="*"``) found the key already there (HTTP 412).

    Also a :class:`FileExistsError`, as ``open(path, "xb")`` raises for a local file.
    """


class ConditionalWritesUnsupportedError(Pos3liteError):
    """The endpoint accepts ``If-None-Match`` / ``If-Match`` on writes but does not enforce
    them (found by :func:`pos3lite.check_conditional_writes`); ``endpoint`` names it."""

    def __init__(self, endpoint: str, detail: str) -> None:
        super().__init__(
            f"the S3 endpoint {endpoint} does not enforce conditional writes ({detail}); "
            "a lock or create-only write on it would not be safe"
        )
        self.endpoint = endpoint
        self.detail = detail

    def __reduce__(self) -> tuple[type[ConditionalWritesUnsupportedError], tuple[str, str]]:
        return (type(self), (self.endpoint, self.detail))


class LockLostError(Pos3liteError):
    """A lease lock is no longer held: a renewal failed, the lease ran out, or another
    holder took it over. ``url`` names the lock object; ``token`` is the fencing token this
    holder had."""

    def __init__(self, url: str, token: int | None, reason: str) -> None:
        super().__init__(f"lock {url} (token {token}) lost: {reason}")
        self.url = url
        self.token = token
        self.reason = reason

    def __reduce__(self) -> tuple[type[LockLostError], tuple[str, int | None, str]]:
        return (type(self), (self.url, self.token, self.reason))


class InvalidManifestError(Pos3liteError, ValueError):
    """A dataset manifest line, entry or shard index that does not parse.

    The message names the manifest key and the 1-based line number; ``key`` and
    ``line_number`` hold them when known (else ``None``). Raised instead of skipping the
    line or treating the manifest as empty, so nothing is rewritten from it.
    """

    def __init__(
        self, message: str, *, key: str | None = None, line_number: int | None = None
    ) -> None:
        super().__init__(message)
        self.key = key
        self.line_number = line_number

    def __reduce__(self) -> tuple[type[InvalidManifestError], tuple[str], dict[str, object]]:
        return (type(self), (str(self),), {"key": self.key, "line_number": self.line_number})
