"""The urllib3 Transport: the only module that imports urllib3 (and, through it, ssl).

Rules:

* one ``PoolManager`` per transport, one pool per endpoint (scheme, host, port) holding up to
  ``max_connections`` keep-alive connections, and one shared SSL context with certificate
  verification on;
* urllib3's own retries and redirects are off: exactly one layer (the S3 client) decides;
* the request target is handed to the connection pool as ``/path?query`` so urllib3 sends the
  encoded path exactly as it was signed (``PoolManager.urlopen`` would run the URL through
  ``parse_url``, which removes ``.`` and ``..`` segments and breaks the signature);
* bodies stream both ways: uploads are read from the caller's stream in blocks, downloads are
  yielded in chunks as they arrive;
* timeouts are a connect timeout and a read *idle* timeout (urllib3 applies the read timeout
  to each socket read), never a whole-request deadline;
* every urllib3 error is translated to :class:`pos3lite.errors.TransportError` here, at one
  boundary, including errors raised while the body streams; a TLS certificate that fails
  verification becomes :class:`pos3lite.errors.CertificateError`, which is never retried;
* proxies and the CA bundle as botocore: ``HTTPS_PROXY``/``HTTP_PROXY`` (either case) pick a
  proxy by the target's scheme, ``NO_PROXY`` bypasses it (``urllib.request``'s rules), HTTPS
  goes through a CONNECT tunnel and plain HTTP in absolute form; ``AWS_CA_BUNDLE`` replaces
  the system trust store. Read when the transport is built.
"""

from __future__ import annotations

import http.client
import os
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    SSLError,
)
from urllib3.exceptions import ReadTimeoutError as _Urllib3ReadTimeout

from ..errors import CertificateError, ConnectError, ReadTimeoutError, TransportError
from .base import Headers, Request, Response

if TYPE_CHECKING:
    import ssl

__all__ = ["DEFAULT_TIMEOUT", "Urllib3Transport"]

#: Default (connect, read-idle) timeouts in seconds.
DEFAULT_TIMEOUT = (10.0, 60.0)
#: Bytes per chunk yielded by Response.iter_bytes and per block read from upload streams.
CHUNK_SIZE = 256 * 1024


class Urllib3Transport:
    """Transport over a urllib3 ``PoolManager``.

    Args:
        max_connections: keep-alive connections kept per endpoint (size it to the number of
            worker threads); extra concurrent requests open short-lived connections.
        timeout: default ``(connect, read_idle)`` timeouts in seconds, used when a request
            carries none.
        ca_bundle: optional path to a PEM bundle replacing the system trust store; default
            ``$AWS_CA_BUNDLE``.
        proxies: ``{"http": url, "https": url, "no": "host,.domain"}``; default from the
            environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``, as botocore).
        environ: the environment read for the two defaults (default :data:`os.environ`).
    """

    def __init__(
        self,
        *,
        max_connections: int = 10,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        ca_bundle: str | None = None,
        proxies: Mapping[str, str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections!r}")
        env = os.environ if environ is None else environ
        if proxies is None:
            proxies = _proxies_from(env)
        self._proxies = dict(proxies)
        self._proxy_managers: dict[str, urllib3.ProxyManager] = {}
        self._proxy_headers: dict[tuple[str, str], dict[str, str]] = {}
        self._max_connections = max_connections
        self._timeout = timeout
        self._lock = threading.Lock()
        self._ssl_context: ssl.SSLContext | None = None
        self._ca_bundle = ca_bundle or env.get("AWS_CA_BUNDLE") or None
        self._pools: dict[tuple[str, str], urllib3.HTTPConnectionPool] = {}
        self._timeouts: dict[tuple[float, float], urllib3.Timeout] = {}
        self._manager = urllib3.PoolManager(
            num_pools=64,  # >= the endpoints one mirror talks to; pools are cached below
            maxsize=max_connections,
            block=False,
            retries=False,
            ssl_context=None,
        )
        self._manager.pool_classes_by_scheme = _POOL_CLASSES

    def _pool(self, scheme: str, host: str, port: int | None) -> urllib3.HTTPConnectionPool:
        proxy = self._proxy_for(scheme, host)
        if scheme == "https" or (proxy or "").startswith("https"):
            with self._lock:
                if self._ssl_context is None:
                    # One SSL context for every pool: verification on, system trust store
                    # (or the given bundle). Built on first HTTPS use, not at import.
                    from urllib3.util.ssl_ import create_urllib3_context

                    ctx = create_urllib3_context()
                    if self._ca_bundle:
                        ctx.load_verify_locations(cafile=self._ca_bundle)
                    else:
                        ctx.load_default_certs()
                    self._ssl_context = ctx
                    self._manager.connection_pool_kw["ssl_context"] = ctx
                    for manager in self._proxy_managers.values():
                        manager.connection_pool_kw["ssl_context"] = ctx
        if proxy:
            with self._lock:
                found = self._proxy_managers.get(proxy)
                if found is None:
                    # user:password in the proxy URL becomes Proxy-Authorization (also on
                    # the CONNECT of a tunnel), as requests/botocore do.
                    parsed = urlsplit(proxy)
                    headers = None
                    if parsed.username is not None:
                        from urllib.parse import unquote

                        auth = f"{unquote(parsed.username)}:{unquote(parsed.password or '')}"
                        headers = urllib3.make_headers(proxy_basic_auth=auth)
                    found = urllib3.ProxyManager(
                        proxy,
                        proxy_headers=headers,
                        num_pools=64,
                        maxsize=self._max_connections,
                        block=False,
                        retries=False,
                        ssl_context=self._ssl_context,
                    )
                    found.pool_classes_by_scheme = _POOL_CLASSES
                    self._proxy_managers[proxy] = found
            return found.connection_from_host(host, port, scheme)
        return self._manager.connection_from_host(host, port, scheme)

    def _proxy_for(self, scheme: str, host: str) -> str | None:
        """The proxy URL for ``scheme://host``, or ``None`` (no proxy, or NO_PROXY)."""
        proxy = self._proxies.get(scheme)
        if not proxy:
            return None
        if _bypassed(host, self._proxies.get("no", "")):
            return None
        return proxy if "://" in proxy else f"http://{proxy}"

    def send(self, request: Request) -> Response:
        """Send ``request`` and return the response with its body unread.

        Raises:
            ConnectError: the connection could not be opened.
            ReadTimeoutError: no byte arrived within the read timeout.
            TransportError: any other failure before a complete response head arrived.
        """
        pool, target, extra = self._route(request.url)
        timeout = self._timeouts.get(request.timeout or self._timeout)
        if timeout is None:
            connect, read = request.timeout or self._timeout
            timeout = urllib3.Timeout(connect=connect, read=read)
            self._timeouts[request.timeout or self._timeout] = timeout
        with _translate(request):
            raw = pool.urlopen(
                request.method,
                target,
                body=request.body,
                headers={**dict(request.headers), **extra},
                retries=False,
                redirect=False,
                assert_same_host=False,
                preload_content=request.preload,
                decode_content=False,
                chunked=False,
                timeout=timeout,
                body_pos=None,
            )
        if request.preload:
            # The body is read and the connection back in the pool already.
            return Response(raw.status, Headers(raw.headers), chunks=iter((raw.data,)))
        state = {"done": request.method == "HEAD"}

        def chunks() -> Iterator[bytes]:
            with _translate(request):
                yield from raw.stream(CHUNK_SIZE, decode_content=False)
            state["done"] = True

        def on_close() -> None:
            if not state["done"]:
                # Unread body: drop the connection rather than drain a large object.
                raw.close()
            raw.release_conn()

        return Response(raw.status, Headers(raw.headers), chunks=chunks(), on_close=on_close)

    def _route(self, url: str) -> tuple[urllib3.HTTPConnectionPool, str, dict[str, str]]:
        """The pool for ``url``'s origin, the request target (path and query as given) and
        extra headers. Plain HTTP through a proxy is sent in absolute form (RFC 9112
        section 3.2.2) with the proxy's own headers; HTTPS goes through a CONNECT tunnel."""
        scheme, sep, rest = url.partition("://")
        netloc, slash, tail = rest.partition("/")
        pool = self._pools.get((scheme, netloc))
        if pool is None:
            parts = urlsplit(url)
            if not sep or scheme not in ("http", "https") or not parts.hostname:
                raise TransportError(f"unsupported URL {url.split('?', 1)[0]!r}")
            pool = self._pool(scheme, parts.hostname, parts.port)
            self._pools[(scheme, netloc)] = pool
            proxy = self._proxy_for(scheme, parts.hostname)
            if proxy and scheme == "http":
                manager = self._proxy_managers[proxy]
                self._proxy_headers[(scheme, netloc)] = dict(manager.proxy_headers)
        target = "/" + tail if slash else "/"
        extra = self._proxy_headers.get((scheme, netloc))
        if extra is not None:
            return pool, f"{scheme}://{netloc}{target}", extra
        return pool, target, {}

    def close(self) -> None:
        """Close every pooled connection."""
        self._pools.clear()
        self._manager.clear()
        for manager in self._proxy_managers.values():
            manager.clear()


# ------------------------------------------------------------------ fast response heads

#: A plain HTTP/1.1 status line: the code (``1``..``9`` first, as http.client checks
#: 100..999) and an optional reason.
_STATUS_RE = re.compile(rb"HTTP/1\.1 ([1-9][0-9][0-9])(?:[ \t]([^\r\n]*))?\r\n")
#: Header lines as RFC 9112 section 5 writes them, without obsolete line folding: a token
#: of printable ASCII other than ``:`` (the characters the email parser takes as a name),
#: ``:``, a value with no CR or LF, CRLF; the block ends with an empty line.
_HEAD_RE = re.compile(rb"(?:[!-9;-~]+:[^\r\n]*\r\n){0,99}\r\n")
_FAST_METHODS = frozenset(("GET", "HEAD", "PUT", "POST", "DELETE"))


class _HeadMessage(http.client.HTTPMessage):
    """The ``HTTPMessage`` http.client would build for a plain header block, filled
    directly. Values are ISO-8859-1 decoded strings (never surrogates), for which the
    ``compat32`` policy's fetch is the identity, so ``get`` and ``items`` skip it, and
    ``get`` answers from a lower-cased index of the first value of each name. The
    ``email.message.Message`` methods reach the header list only through the ``_headers``
    property, which drops the index, so any change through them is seen."""

    _pairs: list[tuple[str, str]]
    _index: dict[str, str] | None = None

    @property
    def _headers(self) -> list[tuple[str, str]]:
        self._index = None
        return self._pairs

    @_headers.setter
    def _headers(self, pairs: list[tuple[str, str]]) -> None:
        self._index = None
        self._pairs = pairs

    def get(self, name: str, failobj: object = None) -> object:  # type: ignore[override]
        index = self._index
        if index is None:
            index = {}
            for k, v in self._pairs:
                index.setdefault(k.lower(), v)
            self._index = index
        return index.get(name.lower(), failobj)

    def items(self) -> list[tuple[str, str]]:
        return list(self._pairs)


class _FastHeadResponse(http.client.HTTPResponse):
    """An ``http.client.HTTPResponse`` whose ``begin`` reads a plain response head without
    the ``email`` package's feed parser (about a third of urllib3's CPU per small request).

    Only a head that is already whole in the connection's read buffer, starts with
    ``HTTP/1.1`` and a final (>= 200) status, and has only ``name: value`` lines (no
    obsolete folding, no bare CR or LF, at most 99, as http.client allows) is parsed
    here; anything else (interim 1xx answers, HTTP/1.0, odd or partial heads, a closed
    connection) goes to http.client's own ``begin`` with nothing consumed, so errors and
    edge cases are exactly http.client's. The result (status, reason, version, ``msg``, ``length``,
    ``chunked``, ``will_close``) is what http.client's ``begin`` sets (RFC 9112 section 6.3
    body-length rules as http.client applies them).
    """

    def begin(self) -> None:
        if self.headers is not None or self._method not in _FAST_METHODS:
            super().begin()
            return
        buf = self.fp.peek(1)
        status = _STATUS_RE.match(buf)
        if status is None or status.group(1)[0] == 0x31:  # b"1": interim answers
            super().begin()
            return
        head = _HEAD_RE.match(buf, status.end())
        if head is None:
            super().begin()
            return
        self.fp.read(head.end())  # consume exactly the head, already buffered
        msg = _HeadMessage()
        msg.set_payload("")  # the email parser's payload for a head without a body
        text = buf[status.end() : head.end() - 4].decode("iso-8859-1")
        pairs = []
        index: dict[str, str] = {}
        if text:
            for line in text.split("\r\n"):
                name, _, value = line.partition(":")
                value = value.lstrip(" \t")
                pairs.append((name, value))
                index.setdefault(name.lower(), value)
        msg._headers = pairs
        msg._index = index
        self.headers = self.msg = msg
        code = int(status.group(1))
        self.code = self.status = code
        reason = status.group(2)
        self.reason = reason.decode("iso-8859-1").strip() if reason else ""
        self.version = 11
        tr_enc = msg.get("transfer-encoding")
        self.chunked = isinstance(tr_enc, str) and tr_enc.lower() == "chunked"
        if self.chunked:
            self.chunk_left = None
        self.will_close = self._check_close()
        self.length = None
        length = msg.get("content-length")
        if isinstance(length, str) and length and not self.chunked:
            try:
                n = int(length)
            except ValueError:
                n = -1
            if n >= 0:
                self.length = n
        if code in (204, 304) or self._method == "HEAD":
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True


class _HTTPConnection(urllib3.connection.HTTPConnection):
    response_class = _FastHeadResponse


class _HTTPSConnection(urllib3.connection.HTTPSConnection):
    response_class = _FastHeadResponse


class _HTTPConnectionPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSConnectionPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOL_CLASSES: dict[str, type[urllib3.HTTPConnectionPool]] = {
    "http": _HTTPConnectionPool,
    "https": _HTTPSConnectionPool,
}


@contextmanager
def _translate(request: Request) -> Iterator[None]:
    where = f"{request.method} {request.url.split('?', 1)[0]}"
    try:
        yield
    except (ConnectTimeoutError, NewConnectionError) as exc:
        raise ConnectError(
            f"cannot connect for {where}: {exc}", method=request.method, url=request.url
        ) from None
    except _Urllib3ReadTimeout as exc:
        raise ReadTimeoutError(
            f"read timed out for {where}: {exc}", method=request.method, url=request.url
        ) from None
    except SSLError as exc:
        if _certificate_failure(exc):
            raise CertificateError(
                f"TLS certificate verification failed for {where}: {exc}",
                method=request.method,
                url=request.url,
            ) from None
        raise ConnectError(
            f"TLS failure for {where}: {exc}", method=request.method, url=request.url
        ) from None
    except (ProtocolError, HTTPError, OSError) as exc:
        raise TransportError(
            f"connection failed for {where}: {exc}", method=request.method, url=request.url
        ) from None


def _certificate_failure(exc: BaseException) -> bool:
    """True if ``exc`` (or its cause chain) is a certificate verification failure."""
    import ssl

    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(
            seen
        ):
            return True
        seen = (
            seen.__cause__
            or seen.__context__
            or (seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None)
        )
    return False


def _proxies_from(env: Mapping[str, str]) -> dict[str, str]:
    """``{"http", "https", "no"}`` from ``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY`` (lower
    case wins, as in ``urllib.request.getproxies_environment``)."""
    out: dict[str, str] = {}
    for name in ("http", "https", "no"):
        value = env.get(f"{name}_proxy") or env.get(f"{name.upper()}_PROXY")
        if value:
            out[name] = value
    return out


def _bypassed(host: str, no_proxy: str) -> bool:
    """True if ``host`` matches ``NO_PROXY``: ``*``, the host itself, or a domain suffix
    (``example.com`` and ``.example.com`` both cover ``s3.example.com``), as urllib's
    ``proxy_bypass_environment`` and botocore."""
    host = host.lower().strip("[]")
    for entry in no_proxy.split(","):
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        name = entry.rsplit(":", 1)[0] if entry.count(":") == 1 else entry
        name = name.strip("[]").lstrip(".")
        if host == name or host.endswith("." + name):
            return True
    return False
