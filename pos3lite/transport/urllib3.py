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

import os
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
