"""Region and endpoint for S3, from the profile, the environment and the shared config file.

Order, as the AWS CLI and botocore: the pos3lite profile, then environment variables, then the
shared config file's profile section (``$AWS_PROFILE``, default ``default``), where the
endpoint comes from the ``services`` section the profile names (``[services x]`` with an
``s3 =`` sub-section holding ``endpoint_url``) and then the profile's own ``endpoint_url``.

Spec: AWS SDKs and Tools Reference Guide, "Service-specific endpoints", "Environment
variables" and "Shared config and credentials files".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..errors import ConfigError
from .files import IniReadError, _env, _get, config_sections, read_ini, shared_config_path

if TYPE_CHECKING:
    import configparser

    from ..profiles import Profile

__all__ = ["DEFAULT_REGION", "is_aws_endpoint", "resolve_endpoint", "resolve_region"]

DEFAULT_REGION = "us-east-1"
"""The region used when neither the profile, the environment nor the config file names one."""


def _shared_config(env: Mapping[str, str]) -> configparser.SectionProxy | None:
    """The shared config file's section for ``$AWS_PROFILE`` (``default``), or ``None``."""
    path = shared_config_path(env)
    if path is None:
        return None
    try:
        parser = read_ini(path)
    except IniReadError as exc:
        raise ConfigError(f"AWS config file: {exc}") from None
    if parser is None:
        return None
    for section in config_sections(_get(env, "AWS_PROFILE") or "default"):
        if parser.has_section(section):
            return parser[section]
    return None


def _services_endpoint(section: configparser.SectionProxy) -> str | None:
    """``endpoint_url`` of the ``s3`` sub-section of the ``[services x]`` section named by
    the profile's ``services`` setting."""
    name = section.get("services")
    parser = section.parser
    if not name or not parser.has_section(f"services {name}"):
        return None
    nested = parser[f"services {name}"].get("s3") or ""
    for line in nested.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "endpoint_url" and value.strip():
            return value.strip()
    return None


def resolve_region(profile: Profile | None, environ: Mapping[str, str] | None = None) -> str:
    """The signing region.

    Order: ``profile.region``, ``$AWS_REGION``, ``$AWS_DEFAULT_REGION``, ``region`` in the
    config file's section for ``$AWS_PROFILE`` (default ``default``), else ``"us-east-1"``.
    See "Environment variables" and "Shared config and credentials files" in the AWS SDKs and
    Tools Reference Guide.

    Raises:
        ConfigError: the config file exists but is unreadable or malformed.
    """
    if profile is not None and profile.region:
        return profile.region
    env = _env(environ)
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        value = _get(env, var)
        if value is not None:
            return value
    section = _shared_config(env)
    if section is not None and section.get("region"):
        return str(section.get("region"))
    return DEFAULT_REGION


def resolve_endpoint(
    profile: Profile | None, environ: Mapping[str, str] | None = None
) -> str | None:
    """The endpoint URL, or ``None`` for AWS (the client builds ``https://s3.<region>...``).

    Order: ``profile.endpoint``, ``$AWS_ENDPOINT_URL_S3``, ``$AWS_ENDPOINT_URL``, then the
    shared config file's profile section: the ``s3`` ``endpoint_url`` of the ``[services x]``
    section it names, then its own ``endpoint_url``. Everything after ``profile.endpoint`` is
    skipped when ``$AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`` or the profile section's
    ``ignore_configured_endpoint_urls`` is ``true``. See "Service-specific endpoints" in the
    AWS SDKs and Tools Reference Guide.

    Raises:
        ConfigError: an endpoint does not start with ``http://`` or ``https://``, or the
            config file exists but is unreadable or malformed.
    """
    if profile is not None and profile.endpoint:
        return profile.endpoint
    env = _env(environ)
    if (_get(env, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS") or "").lower() == "true":
        return None
    found: list[tuple[str, str]] = []
    for var in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        value = _get(env, var)
        if value is not None:
            found.append((var, value))
    if not found:
        section = _shared_config(env)
        if section is not None and (
            (section.get("ignore_configured_endpoint_urls") or "").strip().lower() != "true"
        ):
            services = _services_endpoint(section)
            if services:
                found.append(
                    ("the s3 endpoint_url of the config file's services section", services)
                )
            elif section.get("endpoint_url"):
                found.append(("endpoint_url in the AWS config file", str(section["endpoint_url"])))
    for where, value in found:
        if not value.lower().startswith(("http://", "https://")):
            raise ConfigError(f"{where} must start with http:// or https://, got {value!r}")
        return value
    return None


def is_aws_endpoint(endpoint: str | None) -> bool:
    """True for ``None`` (AWS by region) and for endpoints on ``amazonaws.com`` or
    ``amazonaws.com.cn``: endpoints that may receive AWS-issued ambient credentials."""
    if endpoint is None:
        return True
    host = (urlsplit(endpoint).hostname or "").lower()
    return host.endswith((".amazonaws.com", ".amazonaws.com.cn"))
