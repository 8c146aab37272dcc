"""Credentials documents (JSON from container/IMDS endpoints and ``credential_process``).

Pure parsing shared by the providers; messages name fields, never values.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from ..errors import CredentialsError
from .sigv4 import Credentials

__all__ = ["credentials_from_document"]


def _json_document(raw: bytes, where: str) -> dict[str, object]:
    """Parse ``raw`` as one JSON object; errors never quote the content (it may be secret)."""
    import json

    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise CredentialsError(f"{where} is not valid JSON") from None
    if not isinstance(document, dict):
        raise CredentialsError(f"{where} is not a JSON object")
    return document


def credentials_from_document(
    document: Mapping[str, object], where: str, *, token_field: str = "Token"
) -> Credentials:
    """Build :class:`Credentials` from a parsed JSON credentials document.

    The container and IMDS endpoints answer with ``AccessKeyId``, ``SecretAccessKey``,
    ``Token`` and ``Expiration``; ``credential_process`` prints ``SessionToken`` instead of
    ``Token``.

    Args:
        document: the parsed JSON object.
        where: the provider (and source) for error messages, e.g. ``"container: response"``.
        token_field: the name of the session-token field.

    Returns:
        The credentials; ``expiration`` is an aware UTC datetime, or ``None`` when the
        document has no ``Expiration``.

    Raises:
        CredentialsError: a required field is missing, empty or not a string, or
            ``Expiration`` is not ISO 8601. The message names the field, never a value.
    """
    access_key = document.get("AccessKeyId")
    secret_key = document.get("SecretAccessKey")
    token = document.get(token_field)
    raw_expiration = document.get("Expiration")
    for field_name, value in (("AccessKeyId", access_key), ("SecretAccessKey", secret_key)):
        if not isinstance(value, str) or not value:
            raise CredentialsError(f"{where} lacks a string {field_name}")
    for field_name, value in ((token_field, token), ("Expiration", raw_expiration)):
        if value is not None and not isinstance(value, str):
            raise CredentialsError(f"{where} has a non-string {field_name}")
    assert isinstance(access_key, str) and isinstance(secret_key, str)
    expiration = None
    if isinstance(raw_expiration, str) and raw_expiration:
        expiration = _parse_expiration(raw_expiration, f"{where}: Expiration")
    return Credentials(
        access_key=access_key,
        secret_key=secret_key,
        token=token if isinstance(token, str) and token else None,
        expiration=expiration,
    )


def _parse_expiration(value: str, where: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CredentialsError(f"{where} is not an ISO 8601 timestamp: {value!r}") from None
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
