"""Credential providers, the provider chain, and region/endpoint resolution.

Rules:

* A provider's :meth:`~CredentialProvider.load` returns ``None`` for "I have nothing here"
  and raises :class:`~pos3lite.errors.CredentialsError` for "I have something, but it is
  broken" (a half-set key pair, an unreadable or malformed file). Messages name the provider
  and the file or variable, never a secret.
* :class:`CredentialChain` asks its providers in order; the first that returns credentials
  wins. Resolution is lazy, memoised and thread-safe (one resolution in flight), and
  credentials with an ``expiration`` are resolved again once they are within the refresh
  window of an injectable clock. Container (ECS/EKS), instance metadata (IMDS), web identity
  and ``credential_process`` providers slot in later by joining :func:`default_chain`'s list.
* Files are read with interpolation off, so ``%`` in a secret is literal. Nothing is read at
  import time; every ``environ=None`` parameter means :data:`os.environ` at call time.

Specs: AWS SDKs and Tools Reference Guide, "Shared config and credentials files",
"Environment variables", "AWS access keys" and "Service-specific endpoints".
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..errors import ConfigError, CredentialsError
from .sigv4 import Credentials

if TYPE_CHECKING:
    import configparser

    from ..profiles import Profile

__all__ = [
    "DEFAULT_REFRESH_WINDOW",
    "DEFAULT_REGION",
    "CredentialChain",
    "CredentialProvider",
    "EnvironmentProvider",
    "SharedFilesProvider",
    "StaticProvider",
    "default_chain",
    "provider_for",
    "resolve_endpoint",
    "resolve_region",
]

logger = logging.getLogger(__name__)

DEFAULT_REGION = "us-east-1"
"""The region used when neither the profile, the environment nor the config file names one."""

DEFAULT_REFRESH_WINDOW = timedelta(minutes=5)
"""Credentials expiring within this window are resolved again before use."""


# --------------------------------------------------------------------------------------------
# Small file-system helpers, shared with profiles.py
# --------------------------------------------------------------------------------------------


class IniReadError(Exception):
    """An INI file exists but could not be read or parsed; the message holds no file content."""


def home_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """Return the user's home directory, or ``None`` when it cannot be determined.

    ``$HOME`` first, then the passwd entry of the current uid. Unlike :meth:`Path.home`, this
    never raises: arbitrary-uid containers have neither.
    """
    env = os.environ if environ is None else environ
    home = env.get("HOME")
    if home:
        return Path(home)
    try:
        import pwd

        return Path(pwd.getpwuid(os.getuid()).pw_dir)
    except (ImportError, KeyError, AttributeError):
        return None


def expand_user(path: str, environ: Mapping[str, str] | None = None) -> Path | None:
    """Expand a leading ``~`` or ``~/`` using :func:`home_dir`; ``None`` if there is no home.

    ``~user`` forms are left to :func:`os.path.expanduser`.
    """
    if path == "~" or path.startswith("~/"):
        home = home_dir(environ)
        if home is None:
            return None
        return home / path[2:] if len(path) > 1 else home
    if path.startswith("~"):
        expanded = os.path.expanduser(path)
        return None if expanded.startswith("~") else Path(expanded)
    return Path(path)


def read_ini(path: Path) -> configparser.ConfigParser | None:
    """Read an INI file with interpolation off; ``None`` if the file does not exist.

    Raises:
        IniReadError: the file exists but is unreadable or malformed. The message names the
            path and the line number, never a line's text (it could hold a secret).
    """
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as fh:
            parser.read_file(fh)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IniReadError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError:
        raise IniReadError(f"cannot read {path}: not valid UTF-8") from None
    except configparser.Error as exc:
        raise IniReadError(f"cannot parse {path}: {_describe_ini_error(exc)}") from None
    return parser


def _describe_ini_error(exc: Exception) -> str:
    # configparser messages quote the offending line, which may be a secret: keep only the
    # error type and the line numbers.
    import configparser

    kind = type(exc).__name__
    lineno = getattr(exc, "lineno", None)
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return f"{kind} at line {lineno}"
    if isinstance(exc, configparser.ParsingError):
        lines = ", ".join(str(lineno) for lineno, _ in exc.errors)
        return f"{kind} at line(s) {lines}"
    if isinstance(exc, configparser.DuplicateOptionError):
        return f"{kind}: option {exc.option!r} repeated in section {exc.section!r}"
    if isinstance(exc, configparser.DuplicateSectionError):
        return f"{kind}: section {exc.section!r} repeated"
    return f"{kind} at line {lineno}" if lineno is not None else kind


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def _get(env: Mapping[str, str], name: str) -> str | None:
    """An environment variable, with the empty string treated as unset."""
    value = env.get(name)
    return value if value else None


# --------------------------------------------------------------------------------------------
# Providers
# --------------------------------------------------------------------------------------------


@runtime_checkable
class CredentialProvider(Protocol):
    """One source of credentials.

    Attributes:
        name: a short, stable label used in logs and errors, e.g. ``"environment"``.
    """

    name: str

    def load(self) -> Credentials | None:
        """Return credentials, or ``None`` when this source has none.

        Raises:
            CredentialsError: the source exists but is broken; the message names the provider
                and never contains a secret.
        """
        ...


class StaticProvider:
    """Credentials given explicitly, e.g. by a :class:`~pos3lite.profiles.Profile`.

    Args:
        access_key: the access key id.
        secret_key: the secret access key (hidden from ``repr``).
        token: an optional session token (hidden from ``repr``).
        expiration: when temporary credentials expire, if known.
    """

    name = "static"

    def __init__(
        self,
        access_key: str,
        secret_key: str,
        token: str | None = None,
        *,
        expiration: datetime | None = None,
    ) -> None:
        if not access_key or not secret_key:
            raise CredentialsError("static: access_key and secret_key must both be set")
        self._credentials = Credentials(
            access_key=access_key, secret_key=secret_key, token=token, expiration=expiration
        )

    def load(self) -> Credentials:
        """Return the static credentials."""
        return self._credentials

    def __repr__(self) -> str:
        return f"StaticProvider(access_key={self._credentials.access_key!r})"


class EnvironmentProvider:
    """Credentials from ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``.

    ``AWS_SECURITY_TOKEN`` is accepted as a legacy alias of the session token and
    ``AWS_CREDENTIAL_EXPIRATION`` (ISO 8601) as the expiration, as botocore does. See the AWS
    SDKs and Tools Reference Guide, "Environment variables" and "AWS access keys".

    Args:
        environ: the environment to read; ``None`` reads :data:`os.environ` at each
            :meth:`load`.
    """

    name = "environment"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ

    def load(self) -> Credentials | None:
        """Return credentials from the environment, ``None`` if neither key is set.

        Raises:
            CredentialsError: only one of the key pair is set, or the expiration is not an
                ISO 8601 timestamp.
        """
        env = _env(self._environ)
        access_key = _get(env, "AWS_ACCESS_KEY_ID")
        secret_key = _get(env, "AWS_SECRET_ACCESS_KEY")
        if access_key is None and secret_key is None:
            return None
        if access_key is None or secret_key is None:
            missing = "AWS_ACCESS_KEY_ID" if access_key is None else "AWS_SECRET_ACCESS_KEY"
            present = "AWS_SECRET_ACCESS_KEY" if access_key is None else "AWS_ACCESS_KEY_ID"
            raise CredentialsError(
                f"{self.name}: {present} is set but {missing} is not; set both or neither"
            )
        token = _get(env, "AWS_SESSION_TOKEN") or _get(env, "AWS_SECURITY_TOKEN")
        expiration = None
        raw_expiration = _get(env, "AWS_CREDENTIAL_EXPIRATION")
        if raw_expiration is not None:
            expiration = _parse_expiration(
                raw_expiration, f"{self.name}: AWS_CREDENTIAL_EXPIRATION"
            )
        return Credentials(
            access_key=access_key, secret_key=secret_key, token=token, expiration=expiration
        )

    def __repr__(self) -> str:
        return "EnvironmentProvider()"


class SharedFilesProvider:
    """Static keys from the shared credentials and config files, for ``AWS_PROFILE``.

    The profile is ``$AWS_PROFILE``, else ``default``. The credentials file
    (``$AWS_SHARED_CREDENTIALS_FILE``, else ``~/.aws/credentials``) is searched first, in
    section ``[<profile>]``; then the config file (``$AWS_CONFIG_FILE``, else
    ``~/.aws/config``), in section ``[profile <profile>]`` (``[default]`` for the default
    profile). Keys: ``aws_access_key_id``, ``aws_secret_access_key``, ``aws_session_token``
    (``aws_security_token`` as a legacy alias). Files are read with interpolation off. See
    the AWS SDKs and Tools Reference Guide, "Shared config and credentials files".

    A section without static keys (``role_arn``, ``sso_session``, ``credential_process``...)
    yields ``None`` so that a later provider can handle it.

    Args:
        environ: the environment to read; ``None`` reads :data:`os.environ` at each
            :meth:`load`.
    """

    name = "shared-credentials-file"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ

    def load(self) -> Credentials | None:
        """Return the profile's static keys, or ``None`` when the files do not have them.

        Raises:
            CredentialsError: a file is unreadable or malformed; a section has only one of the
                key pair; or ``AWS_PROFILE`` names a profile found in neither file.
        """
        env = _env(self._environ)
        explicit = _get(env, "AWS_PROFILE")
        profile = explicit or "default"
        found_section = False
        sources = (
            (shared_credentials_path(env), [profile]),
            (shared_config_path(env), _config_sections(profile)),
        )
        for path, sections in sources:
            if path is None:
                continue
            try:
                parser = read_ini(path)
            except IniReadError as exc:
                raise CredentialsError(f"{self.name}: {exc}") from None
            if parser is None:
                continue
            for section in sections:
                if not parser.has_section(section):
                    continue
                found_section = True
                creds = self._from_section(parser[section], path, section)
                if creds is not None:
                    logger.debug("credentials from %s [%s]", path, section)
                    return creds
        if explicit is not None and not found_section:
            raise CredentialsError(
                f"{self.name}: profile {explicit!r} (from AWS_PROFILE) is not defined in "
                f"{shared_credentials_path(env)} or {shared_config_path(env)}"
            )
        return None

    def _from_section(
        self, section: configparser.SectionProxy, path: Path, name: str
    ) -> Credentials | None:
        access_key = section.get("aws_access_key_id") or None
        secret_key = section.get("aws_secret_access_key") or None
        if access_key is None and secret_key is None:
            return None
        if access_key is None or secret_key is None:
            missing = "aws_access_key_id" if access_key is None else "aws_secret_access_key"
            raise CredentialsError(f"{self.name}: section [{name}] in {path} lacks {missing}")
        token = section.get("aws_session_token") or section.get("aws_security_token") or None
        return Credentials(access_key=access_key, secret_key=secret_key, token=token)

    def __repr__(self) -> str:
        return "SharedFilesProvider()"


def shared_credentials_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """``$AWS_SHARED_CREDENTIALS_FILE`` or ``~/.aws/credentials``; ``None`` without a home."""
    env = _env(environ)
    override = _get(env, "AWS_SHARED_CREDENTIALS_FILE")
    return expand_user(override, env) if override else _in_home(env, ".aws", "credentials")


def shared_config_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """``$AWS_CONFIG_FILE`` or ``~/.aws/config``; ``None`` without a home."""
    env = _env(environ)
    override = _get(env, "AWS_CONFIG_FILE")
    return expand_user(override, env) if override else _in_home(env, ".aws", "config")


def _in_home(env: Mapping[str, str], *parts: str) -> Path | None:
    home = home_dir(env)
    return None if home is None else home.joinpath(*parts)


def _config_sections(profile: str) -> list[str]:
    # The config file names profiles "[profile x]"; the default profile is "[default]"
    # (botocore also accepts "[profile default]").
    if profile == "default":
        return ["default", "profile default"]
    return [f"profile {profile}"]


def _parse_expiration(value: str, where: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CredentialsError(f"{where} is not an ISO 8601 timestamp: {value!r}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


# --------------------------------------------------------------------------------------------
# The chain
# --------------------------------------------------------------------------------------------


def _utc_now() -> datetime:
    return datetime.now(UTC)


class CredentialChain:
    """Ask providers in order; the first one that returns credentials wins.

    Resolution is lazy (nothing happens until :meth:`resolve`), memoised and thread-safe: one
    resolution is in flight at a time and concurrent callers wait for it. Credentials with an
    ``expiration`` are resolved again, through the whole chain, once ``clock()`` is within
    ``refresh_window`` of it; if that refresh fails while the old credentials have not expired
    yet, the old ones are kept (with a warning), as botocore's advisory refresh does.

    Args:
        providers: the providers, in priority order.
        clock: returns the current time as an aware datetime (injectable for tests).
        refresh_window: how long before expiration to refresh.
    """

    def __init__(
        self,
        providers: Sequence[CredentialProvider],
        *,
        clock: Callable[[], datetime] = _utc_now,
        refresh_window: timedelta = DEFAULT_REFRESH_WINDOW,
    ) -> None:
        self._providers = tuple(providers)
        self._clock = clock
        self._refresh_window = refresh_window
        self._lock = threading.Lock()
        self._cached: Credentials | None = None

    @property
    def providers(self) -> tuple[CredentialProvider, ...]:
        """The providers, in the order they are asked."""
        return self._providers

    @property
    def provider_names(self) -> list[str]:
        """The providers' names, in order."""
        return [p.name for p in self._providers]

    def resolve(self) -> Credentials:
        """Return credentials from the first provider that has them (memoised).

        Returns:
            The credentials.

        Raises:
            CredentialsError: a provider is broken, or no provider had credentials (the
                message lists the providers tried).
        """
        cached = self._cached
        if cached is not None and not self._needs_refresh(cached):
            return cached
        with self._lock:
            cached = self._cached
            if cached is not None and not self._needs_refresh(cached):
                return cached
            try:
                fresh = self._load()
            except CredentialsError:
                if cached is not None and not self._is_expired(cached):
                    logger.warning(
                        "refreshing credentials failed; using the current ones until they "
                        "expire at %s",
                        cached.expiration,
                    )
                    return cached
                raise
            self._cached = fresh
            return fresh

    def invalidate(self) -> None:
        """Forget the memoised credentials; the next :meth:`resolve` asks the providers again.

        For callers that learn credentials went stale early (e.g. an ``ExpiredToken`` error).
        """
        with self._lock:
            self._cached = None

    def _load(self) -> Credentials:
        for provider in self._providers:
            creds = provider.load()
            if creds is not None:
                logger.debug("credentials found by the %s provider", provider.name)
                return creds
        tried = ", ".join(self.provider_names) or "none"
        raise CredentialsError(
            f"no credentials found (providers tried: {tried}); set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, configure ~/.aws/credentials, or use a public profile"
        )

    def _expiration(self, creds: Credentials) -> datetime | None:
        exp = creds.expiration
        if exp is not None and exp.tzinfo is None:
            exp = exp.replace(tzinfo=UTC)  # naive expirations are taken as UTC
        return exp

    def _needs_refresh(self, creds: Credentials) -> bool:
        exp = self._expiration(creds)
        return exp is not None and self._clock() >= exp - self._refresh_window

    def _is_expired(self, creds: Credentials) -> bool:
        exp = self._expiration(creds)
        return exp is not None and self._clock() >= exp

    def __repr__(self) -> str:
        return f"CredentialChain({self.provider_names!r})"


def default_chain(environ: Mapping[str, str] | None = None) -> CredentialChain:
    """The ambient chain: environment variables, then the shared files.

    Later additions (web identity, ``credential_process``, container, IMDS) join this list in
    the SDKs' order ("Understand the credential provider chain" in the AWS SDKs and Tools
    Reference Guide).

    Args:
        environ: the environment; ``None`` reads :data:`os.environ` when credentials load.
    """
    return CredentialChain([EnvironmentProvider(environ), SharedFilesProvider(environ)])


def provider_for(
    profile: Profile | None, environ: Mapping[str, str] | None = None
) -> CredentialChain | None:
    """The credential chain for a profile.

    Args:
        profile: ``None`` for the ambient environment, or a resolved profile.
        environ: the environment; ``None`` reads :data:`os.environ` when credentials load.

    Returns:
        ``None`` for a public (anonymous) profile, which never looks for credentials; a chain
        of one :class:`StaticProvider` for a profile with keys (including keys that
        ``profiles.py`` loaded from its ``credentials_file``); otherwise :func:`default_chain`.
    """
    if profile is not None:
        if profile.public:
            return None
        if profile.access_key and profile.secret_key:
            return CredentialChain(
                [StaticProvider(profile.access_key, profile.secret_key, profile.session_token)]
            )
    return default_chain(environ)


# --------------------------------------------------------------------------------------------
# Region and endpoint
# --------------------------------------------------------------------------------------------


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
    path = shared_config_path(env)
    if path is not None:
        try:
            parser = read_ini(path)
        except IniReadError as exc:
            raise ConfigError(f"AWS config file: {exc}") from None
        if parser is not None:
            for section in _config_sections(_get(env, "AWS_PROFILE") or "default"):
                if parser.has_section(section):
                    region = parser[section].get("region")
                    if region:
                        return region
    return DEFAULT_REGION


def resolve_endpoint(
    profile: Profile | None, environ: Mapping[str, str] | None = None
) -> str | None:
    """The endpoint URL, or ``None`` for AWS (the client builds ``https://s3.<region>...``).

    Order: ``profile.endpoint``, ``$AWS_ENDPOINT_URL_S3``, ``$AWS_ENDPOINT_URL``; the two
    variables are ignored when ``$AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`` is ``true``. See
    "Service-specific endpoints" in the AWS SDKs and Tools Reference Guide.

    Raises:
        ConfigError: an endpoint variable does not start with ``http://`` or ``https://``.
    """
    if profile is not None and profile.endpoint:
        return profile.endpoint
    env = _env(environ)
    if (_get(env, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS") or "").lower() == "true":
        return None
    for var in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        value = _get(env, var)
        if value is not None:
            if not value.lower().startswith(("http://", "https://")):
                raise ConfigError(f"{var} must start with http:// or https://, got {value!r}")
            return value
    return None
