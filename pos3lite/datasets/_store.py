"""The slice of the object API the datasets layer uses, as a Protocol.

:class:`pos3lite.objects.Client` satisfies it; tests may pass any object that does (for
example a Client built on a counting Transport). Nothing here opens a connection.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Protocol

if TYPE_CHECKING:
    from ..profiles import Profile


class ObjectInfoLike(Protocol):
    """What a listing or HEAD returns: at least key, size (bytes) and ETag."""

    @property
    def key(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def etag(self) -> str: ...


class PutResultLike(Protocol):
    """What a write returns: at least the new ETag."""

    @property
    def etag(self) -> str: ...


class ReaderLike(Protocol):
    """A streamed GetObject body (:class:`pos3lite.objects.ObjectReader`)."""

    @property
    def info(self) -> ObjectInfoLike: ...
    def read(self, size: int = -1, /) -> bytes: ...
    def readinto(self, buffer: Any, /) -> int | None: ...
    def iter_chunks(self, size: int = ...) -> Iterator[bytes]: ...
    def close(self) -> None: ...
    def __enter__(self) -> Any: ...
    def __exit__(self, *exc: object) -> Any: ...


class DeleteReportLike(Protocol):
    """DeleteObjects outcome: URLs deleted, and the error per URL that was not."""

    @property
    def deleted(self) -> list[str]: ...
    @property
    def errors(self) -> Any: ...


class ObjectStore(Protocol):
    """The object operations a manifest needs (signatures of :class:`pos3lite.objects.Client`)."""

    def head(self, url: str) -> ObjectInfoLike: ...
    def get(
        self,
        url: str,
        *,
        range: tuple[int, int | None] | None = None,
        if_match: str | None = None,
    ) -> Any: ...
    def get_bytes(self, url: str, **kw: Any) -> bytes: ...
    def put(
        self,
        url: str,
        data: Any,
        *,
        if_none_match: str | None = None,
        if_match: str | None = None,
        content_type: str | None = None,
    ) -> PutResultLike: ...
    def open(self, url: str, mode: str = "rb", **kw: Any) -> BinaryIO: ...
    def delete(self, url: str, *, if_match: str | None = None) -> None: ...
    def delete_many(self, urls: Iterable[str]) -> DeleteReportLike: ...
    def list_objects(self, url: str) -> Iterator[ObjectInfoLike]: ...


def default_store(profile: str | Profile | None) -> ObjectStore:
    """A :class:`pos3lite.objects.Client` for ``profile`` (imported on first use)."""
    from ..objects import Client

    store: ObjectStore = Client(profile)
    return store


def abort_writer(stream: IO[bytes]) -> None:
    """Abort an ``open(url, "wb"|"xb")`` writer: nothing is completed at the key."""
    abort = getattr(stream, "abort", None)
    if abort is not None:
        abort()
    else:  # pragma: no cover - every object-API writer has abort()
        stream.close()


def writer_etag(stream: IO[bytes]) -> str | None:
    """The ETag a closed ``open(url, "wb"|"xb")`` writer completed with, if it says."""
    result = getattr(stream, "result", None)
    etag = getattr(result, "etag", None)
    return etag if isinstance(etag, str) else None
