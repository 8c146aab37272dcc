"""Request/Response values and the one-method Transport protocol.

Rules: a transport sends exactly the bytes it is given. The URL's path and query are sent as
they are, already encoded and signed by the caller (no normalising of ``.``, ``..`` or ``//``);
transports never retry and never follow redirects (the S3 client owns those decisions);
failures to get an HTTP answer are raised as :class:`pos3lite.errors.TransportError`.

Pure module: standard library only. ``MockTransport`` lets tests and users drive the S3 client
without a network, in the style of httpx's ``MockTransport``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol, TypeVar, overload

__all__ = ["Body", "Headers", "MockTransport", "Request", "Response", "Transport"]

#: A request body: nothing, bytes in memory, or a readable binary stream whose length is
#: given in the ``content-length`` header (streamed from its current position).
Body = bytes | BinaryIO | None

_T = TypeVar("_T")


class Headers(Mapping[str, str]):
    """An immutable, case-insensitive header mapping (names compared lower-cased)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        self._items: dict[str, str] = {}
        for name, value in (items or {}).items():
            self._items[name.lower()] = value

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    @overload
    def get(self, name: str, /) -> str | None: ...
    @overload
    def get(self, name: str, /, default: str | _T) -> str | _T: ...
    def get(self, name: str, /, default: object = None) -> object:
        """The value of ``name`` (any case), else ``default``; one dict lookup, not
        ``Mapping.get``'s ``__getitem__`` and ``KeyError`` (called several times a request)."""
        return self._items.get(name.lower(), default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        # Authorization and security tokens are never shown.
        shown = {
            k: ("<hidden>" if k in ("authorization", "x-amz-security-token") else v)
            for k, v in self._items.items()
        }
        return f"Headers({shown!r})"


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request, ready to send.

    ``url`` is ``scheme://host[:port]/path[?query]`` with path and query already encoded
    exactly as signed. ``headers`` includes ``Authorization``; its repr hides it.
    ``timeout`` is ``(connect, read)`` in seconds; ``read`` bounds the idle time between
    bytes, not the whole request. ``preload`` asks the transport to read the whole body
    before returning (for small bodies: one read, the connection released at once).
    """

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Body = None
    timeout: tuple[float, float] | None = None
    preload: bool = False

    def __repr__(self) -> str:
        return f"Request({self.method} {self.url.split('?', 1)[0]})"


class Response:
    """An HTTP response whose body may still be on the wire.

    ``status`` is the HTTP status code; ``headers`` is case-insensitive. Read the body with
    :meth:`read` (all of it, as bytes) or :meth:`iter_bytes` (chunks), then :meth:`close`
    (also done by using the response as a context manager). Closing before the body is
    consumed drops the connection instead of returning it to the pool.
    """

    def __init__(
        self,
        status: int,
        headers: Mapping[str, str],
        *,
        chunks: Iterator[bytes] | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.status = status
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self._chunks = chunks if chunks is not None else iter(())
        self._on_close = on_close
        self._closed = False

    def iter_bytes(self) -> Iterator[bytes]:
        """Yield the body in chunks (bytes); each chunk is yielded as it arrives."""
        yield from self._chunks

    def read(self) -> bytes:
        """Read and return the whole remaining body (bytes)."""
        return b"".join(self._chunks)

    def close(self) -> None:
        """Release the connection; idempotent."""
        if not self._closed:
            self._closed = True
            if self._on_close is not None:
                self._on_close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Response({self.status})"


class Transport(Protocol):
    """Sends one request and returns its response; raises TransportError when no answer."""

    def send(self, request: Request) -> Response:
        """Send ``request``; return the response with its body unread."""
        ...

    def close(self) -> None:
        """Close pooled connections."""
        ...


class MockTransport:
    """A Transport that calls ``handler(request) -> Response`` instead of the network.

    Request bodies given as streams are read into bytes before the handler sees them, so
    handlers can inspect ``request.body`` as bytes.
    """

    def __init__(self, handler: Callable[[Request], Response]) -> None:
        self._handler = handler
        self.requests: list[Request] = []

    def send(self, request: Request) -> Response:
        body = request.body
        if body is not None and not isinstance(body, bytes):
            length = int(request.headers.get("content-length", "-1"))
            body = body.read(length) if length >= 0 else body.read()
            request = Request(
                request.method,
                request.url,
                request.headers,
                body,
                request.timeout,
                request.preload,
            )
        self.requests.append(request)
        return self._handler(request)

    def close(self) -> None:
        """Nothing to release."""
