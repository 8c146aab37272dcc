"""One place that turns a profile into an :class:`~pos3lite.s3.client.S3Client`.

The mirror and the object API both build clients per profile over one shared transport; the
profile's endpoint, region, addressing style, credentials (or anonymous access) and
``verify_etag`` option reach the client the same way for both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..profiles import Profile
    from ..transport.base import Transport
    from .client import S3Client

__all__ = ["client_for_profile"]


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
