"""One place that turns a profile into an :class:`~pos3lite.s3.client.S3Client`.

The mirror and the object API both build clients per profile over one shared transport; the
profile's endpoint, region, addressing style, credentials (or anonymous access) and
``verify_etag`` option reach the client the same way for both.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..profiles import Profile
    from ..transport.base import Transport
    from .client import S3Client

__all__ = ["ClientCache", "client_for_profile"]


def client_for_profile(
    transport: Transport,
    profile: Profile | None,
    *,
    max_attempts: int,
    payload_signing: str = "auto",
) -> S3Client:
    """An S3 client for ``profile`` (``None``: the ambient AWS configuration) over
    ``transport``, retrying each request up to ``max_attempts`` times.

    Raises ConfigError or ProfileError for a bad region, endpoint or option; credentials are
    resolved lazily, on the first signed request.
    """
    from ..auth.credentials import provider_for, resolve_endpoint, resolve_region
    from .client import S3Client
    from .retry import Retry

    return S3Client(
        transport,
        region=resolve_region(profile),
        endpoint=resolve_endpoint(profile),
        credentials=provider_for(profile),
        addressing_style=profile.addressing_style if profile else "auto",
        retry=Retry(max_attempts=max_attempts),
        payload_signing=payload_signing,
        verify_etag=profile.verify_etag if profile else "auto",
    )


class ClientCache:
    """One :class:`S3Client` per profile over one lazily built, shared connection pool:
    what a mirror and an object-API client hold. Thread-safe.

    Args:
        max_connections: connections kept per host by the pool.
        timeout: ``(connect, read)`` timeouts in seconds.
        max_attempts: attempts per request (first try included).
        payload_signing: the clients' ``payload_signing`` mode.
        transport: a transport to use instead of building a urllib3 pool (tests, custom
            transports); it is closed by :meth:`close` like the built one.
    """

    def __init__(
        self,
        *,
        max_connections: int,
        timeout: tuple[float, float],
        max_attempts: int,
        payload_signing: str = "auto",
        transport: Transport | None = None,
    ) -> None:
        self._max_connections = max_connections
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._payload_signing = payload_signing
        self._transport = transport
        self._clients: dict[Profile | None, S3Client] = {}
        self._lock = threading.Lock()

    def get(self, profile: Profile | None) -> S3Client:
        """The client for ``profile``, built on first use (see :func:`client_for_profile`
        for the errors raised)."""
        with self._lock:
            found = self._clients.get(profile)
            if found is not None:
                return found
            if self._transport is None:
                from ..transport.urllib3 import Urllib3Transport

                self._transport = Urllib3Transport(
                    max_connections=self._max_connections, timeout=self._timeout
                )
            made = client_for_profile(
                self._transport,
                profile,
                max_attempts=self._max_attempts,
                payload_signing=self._payload_signing,
            )
            self._clients[profile] = made
            return made

    def close(self) -> None:
        """Close the connection pool (idempotent); clients built afterwards get a new one."""
        with self._lock:
            transport, self._transport = self._transport, None
            self._clients = {}
        if transport is not None:
            transport.close()
