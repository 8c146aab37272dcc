"""Credential providers, the provider chain, and region/endpoint resolution.

Rules:

* A provider's :meth:`~CredentialProvider.load` returns ``None`` for "I have nothing here"
  and raises :class:`~pos3lite.errors.CredentialsError` for "I have something, but it is
  broken" (a half-set key pair, an unreadable or malformed file, a failing
  ``credential_process``, a malformed HTTP answer). Messages name the provider and the file,
  variable or URL, never a secret: no key, token, process output or response body is ever
  put in an exception, a ``repr`` or a log line.
* :class:`CredentialChain` asks its providers in order; the first that returns credentials
  wins. Resolution is lazy (first request), memoised and thread-safe (one resolution in
  flight). Temporary credentials are refreshed from the provider that produced them, as
  botocore's ``RefreshableCredentials`` does: inside the *advisory* window (15 min before
  ``expiration``) one thread tries to refresh and everyone keeps the current credentials if
  that fails (with a warning); inside the *mandatory* window (10 min) callers wait for the
  refresh and its failure is raised.
* :func:`default_chain` follows the SDKs' order ("Understand the credential provider chain"):
  environment, web identity (:mod:`.sts`), shared files (static keys and
  ``credential_process``), container (ECS/EKS) and EC2 instance metadata (IMDSv2) (both in
  :mod:`.providers_http`).
* Files are read with interpolation off, so ``%`` in a secret is literal. Nothing is read at
  import time; every ``environ=None`` parameter means :data:`os.environ` at call time.
  ``json``, ``subprocess``, ``shlex`` and the XML parser are imported inside the functions
  that use them.

Specs: AWS SDKs and Tools Reference Guide, "Shared config and credentials files",
"Environment variables", "AWS access keys", "Process credential provider" and
"Service-specific endpoints".
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..config.aws import DEFAULT_REGION, is_aws_endpoint, resolve_endpoint, resolve_region
from ..config.files import (
    IniReadError,
    _env,
    _get,
    config_sections,
    expand_user,
    home_dir,
    read_ini,
    shared_config_path,
    shared_credentials_path,
)
from ..errors import CredentialsError
from .documents import _json_document, _parse_expiration, credentials_from_document
from .sigv4 import Credentials

if TYPE_CHECKING:
    import configparser

    from ..profiles import Profile

# Re-exported (in __all__): these lived here before config/ and auth/documents.py.
_config_sections = config_sections

__all__ = [
    "ADVISORY_REFRESH_WINDOW",
    "DEFAULT_PROCESS_TIMEOUT",
    "DEFAULT_REGION",
    "MANDATORY_REFRESH_WINDOW",
    "CredentialChain",
    "CredentialProvider",
    "EnvironmentProvider",
    "Freshness",
    "IniReadError",
    "ProcessProvider",
    "SharedFilesProvider",
    "StaticProvider",
    "credentials_from_document",
    "default_chain",
    "expand_user",
    "home_dir",
    "is_aws_endpoint",
    "provider_for",
    "read_ini",
    "resolve_endpoint",
    "resolve_region",
    "shared_config_path",
    "shared_credentials_path",
]

logger = logging.getLogger(__name__)

ADVISORY_REFRESH_WINDOW = timedelta(minutes=15)
"""Within this time of ``expiration`` a refresh is tried; on failure the current credentials
are kept (botocore's ``_advisory_refresh_timeout``, 15 min)."""

MANDATORY_REFRESH_WINDOW = timedelta(minutes=10)
"""Within this time of ``expiration`` a refresh must succeed or the failure is raised
(botocore's ``_mandatory_refresh_timeout``, 10 min)."""

DEFAULT_PROCESS_TIMEOUT = 60.0
"""Seconds a ``credential_process`` may run before it is killed."""

_MAX_PROCESS_OUTPUT = 1024 * 1024


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


#: Profile keys that name an identity pos3lite cannot assume (role chaining, SSO).
_UNSUPPORTED_KEYS = frozenset(
    {"role_arn", "source_profile", "credential_source", "sso_session", "sso_start_url"}
)


class SharedFilesProvider:
    """Credentials for ``AWS_PROFILE`` from the shared credentials and config files.

    The profile is ``$AWS_PROFILE``, else ``default``. The credentials file
    (``$AWS_SHARED_CREDENTIALS_FILE``, else ``~/.aws/credentials``) holds section
    ``[<profile>]``; the config file (``$AWS_CONFIG_FILE``, else ``~/.aws/config``) holds
    ``[profile <profile>]`` (``[default]`` for the default profile). In botocore's order:

    1. static keys in the credentials file: ``aws_access_key_id``, ``aws_secret_access_key``,
       ``aws_session_token`` (``aws_security_token`` as a legacy alias);
    2. ``credential_process`` (credentials-file section first, then config), run by
       :class:`ProcessProvider`;
    3. static keys in the config file.

    Files are read with interpolation off. See the AWS SDKs and Tools Reference Guide, "Shared
    config and credentials files" and "Process credential provider".

    A section with none of these yields ``None`` when it is empty or holds
    ``web_identity_token_file`` (the business of :class:`~pos3lite.auth.sts.WebIdentityProvider`,
    earlier in the chain), and raises CredentialsError when it names an identity pos3lite
    cannot assume (``role_arn`` with ``source_profile``/``credential_source``, SSO), rather
    than let a later provider supply another identity.

    Args:
        environ: the environment to read; ``None`` reads :data:`os.environ` at each
            :meth:`load`.
        process_timeout: seconds a ``credential_process`` may run.
    """

    name = "shared-credentials-file"

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        process_timeout: float = DEFAULT_PROCESS_TIMEOUT,
    ) -> None:
        self._environ = environ
        self._process_timeout = process_timeout

    def load(self) -> Credentials | None:
        """Return the profile's credentials, or ``None`` when the files do not have them.

        Raises:
            CredentialsError: a file is unreadable or malformed; a section has only one of the
                key pair; ``AWS_PROFILE`` names a profile found in neither file; or the
                profile's ``credential_process`` failed (the error names
                ``credential-process``).
        """
        env = _env(self._environ)
        explicit = _get(env, "AWS_PROFILE")
        profile = explicit or "default"
        cred_path = shared_credentials_path(env)
        conf_path = shared_config_path(env)
        cred_section = self._section(cred_path, [profile])
        conf_section = self._section(conf_path, _config_sections(profile))
        if explicit is not None and cred_section is None and conf_section is None:
            raise CredentialsError(
                f"{self.name}: profile {explicit!r} (from AWS_PROFILE) is not defined in "
                f"{cred_path} or {conf_path}"
            )
        if cred_section is not None:
            creds = self._from_section(*cred_section)
            if creds is not None:
                return creds
        for found in (cred_section, conf_section):
            if found is not None:
                command = found[0].get("credential_process") or None
                if command is not None:
                    logger.debug("credential_process from %s [%s]", found[1], found[2])
                    return ProcessProvider(
                        command, profile=profile, timeout=self._process_timeout
                    ).load()
        if conf_section is not None:
            creds = self._from_section(*conf_section)
            if creds is not None:
                return creds
        for found in (cred_section, conf_section):
            if found is not None:
                unsupported = _UNSUPPORTED_KEYS.intersection(found[0].keys())
                if unsupported and "web_identity_token_file" not in found[0]:
                    # Falling through to a container or instance role would act as another
                    # identity than the one the profile names: refuse instead.
                    raise CredentialsError(
                        f"{self.name}: profile {profile!r} in {found[1]} uses "
                        f"{', '.join(sorted(unsupported))}, which pos3lite does not support; "
                        "export temporary keys into the environment (for example with "
                        "`aws configure export-credentials --format env`)"
                    )
        return None

    def _section(
        self, path: Path | None, names: list[str]
    ) -> tuple[configparser.SectionProxy, Path, str] | None:
        if path is None:
            return None
        try:
            parser = read_ini(path)
        except IniReadError as exc:
            raise CredentialsError(f"{self.name}: {exc}") from None
        if parser is None:
            return None
        for name in names:
            if parser.has_section(name):
                return parser[name], path, name
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
        logger.debug("credentials from %s [%s]", path, name)
        return Credentials(access_key=access_key, secret_key=secret_key, token=token)

    def __repr__(self) -> str:
        return "SharedFilesProvider()"


class ProcessProvider:
    """Credentials printed by an external program (``credential_process``).

    The command line is split with :func:`shlex.split` and run without a shell, with a
    timeout; the program inherits the environment and stdin (so it can prompt on a
    terminal). Its stdout must be one JSON object (the "Process credential provider" page of
    the AWS SDKs and Tools Reference Guide)::

        {"Version": 1, "AccessKeyId": "...", "SecretAccessKey": "...",
         "SessionToken": "...", "Expiration": "2030-01-01T00:00:00Z"}

    ``SessionToken`` and ``Expiration`` (ISO 8601) are optional; without ``Expiration`` the
    credentials are never refreshed. The command is run again at each :meth:`load`, which
    the chain calls before ``Expiration`` (see :class:`CredentialChain`).

    Secrets: stdout is never echoed. Error messages name the profile and the program (the
    first word of the command, never its arguments, which may hold a password) and quote at
    most the last line of stderr.

    Args:
        command: the ``credential_process`` value.
        profile: the profile it came from, for messages.
        timeout: seconds before the program is killed.
    """

    name = "credential-process"

    def __init__(
        self, command: str, *, profile: str = "default", timeout: float = DEFAULT_PROCESS_TIMEOUT
    ) -> None:
        self._command = command
        self._profile = profile
        self._timeout = timeout

    def load(self) -> Credentials:
        """Run the program and return the credentials it printed.

        Raises:
            CredentialsError: the command cannot be parsed or started, timed out, exited with
                a non-zero status, or printed something that is not the JSON document above.
        """
        import shlex
        import subprocess

        where = f"{self.name}: profile {self._profile!r}"
        try:
            argv = shlex.split(self._command)
        except ValueError:
            raise CredentialsError(
                f"{where}: cannot parse the credential_process command"
            ) from None
        if not argv:
            raise CredentialsError(f"{where}: credential_process is empty")
        program = argv[0]
        logger.debug("running credential_process %s for profile %s", program, self._profile)
        try:
            done = subprocess.run(
                argv, capture_output=True, timeout=self._timeout, check=False, shell=False
            )
        except subprocess.TimeoutExpired:
            raise CredentialsError(
                f"{where}: {program!r} did not finish within {self._timeout:g} s"
            ) from None
        except OSError as exc:
            raise CredentialsError(
                f"{where}: cannot run {program!r}: {exc.strerror or type(exc).__name__}"
            ) from None
        if done.returncode != 0:
            detail = _last_line(done.stderr)
            raise CredentialsError(
                f"{where}: {program!r} exited with status {done.returncode}"
                + (f": {detail}" if detail else "")
            )
        if len(done.stdout) > _MAX_PROCESS_OUTPUT:
            raise CredentialsError(f"{where}: {program!r} printed more than 1 MiB")
        document = _json_document(done.stdout, f"{where}: output of {program!r}")
        version = document.get("Version")
        if version != 1 or isinstance(version, bool):
            raise CredentialsError(
                f"{where}: output of {program!r} has Version {version!r}; only 1 is supported"
            )
        return credentials_from_document(
            document, f"{where}: output of {program!r}", token_field="SessionToken"
        )

    def __repr__(self) -> str:
        return f"ProcessProvider(profile={self._profile!r})"


def _last_line(stderr: bytes, limit: int = 200) -> str:
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    if not lines:
        return ""
    last = lines[-1]
    return last if len(last) <= limit else last[:limit] + "..."


# --------------------------------------------------------------------------------------------
# The chain
# --------------------------------------------------------------------------------------------


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Freshness(enum.Enum):
    """How close memoised credentials are to their ``expiration``."""

    FRESH = "fresh"
    """No expiration, or more than the advisory window left: use as they are."""
    ADVISORY = "advisory"
    """Inside the advisory window: try to refresh, keep them if that fails."""
    MANDATORY = "mandatory"
    """Inside the mandatory window (or expired): refresh, and raise if that fails."""


class CredentialChain:
    """Ask providers in order; the first one that returns credentials wins.

    Resolution is lazy (nothing happens until :meth:`resolve`), memoised and thread-safe: one
    resolution is in flight at a time. Credentials with an ``expiration`` are refreshed from
    the provider that produced them, following botocore's ``RefreshableCredentials``:

    ============================  ==============================================================
    time left before expiration   what :meth:`resolve` does
    ============================  ==============================================================
    > ``advisory_window``         return the memoised credentials
    ``advisory``..``mandatory``   one caller refreshes; the others do not wait and get the
                                  current credentials; if the refresh fails the current ones
                                  are kept and a warning is logged
    <= ``mandatory_window``       every caller waits for one refresh; its failure is raised
    ============================  ==============================================================

    Refreshed credentials that are already expired are refused (``CredentialsError``); ones
    still inside the mandatory window are used, with a warning, and refreshed again at the
    next call. Providers read their token files and run their processes again at each
    refresh. See "Understand the credential provider chain" in the AWS SDKs and Tools
    Reference Guide.

    Args:
        providers: the providers, in priority order.
        clock: returns the current time as an aware datetime (injectable for tests).
        advisory_window: how long before expiration a refresh is tried (default 15 min).
        mandatory_window: how long before expiration a refresh is required (default 10 min);
            must not exceed ``advisory_window``.

    Raises:
        ValueError: ``mandatory_window`` is longer than ``advisory_window``.
    """

    def __init__(
        self,
        providers: Sequence[CredentialProvider],
        *,
        clock: Callable[[], datetime] = _utc_now,
        advisory_window: timedelta = ADVISORY_REFRESH_WINDOW,
        mandatory_window: timedelta = MANDATORY_REFRESH_WINDOW,
    ) -> None:
        if mandatory_window > advisory_window:
            raise ValueError(
                f"mandatory_window ({mandatory_window}) exceeds advisory_window ({advisory_window})"
            )
        self._providers = tuple(providers)
        self._clock = clock
        self._advisory = advisory_window
        self._mandatory = mandatory_window
        self._lock = threading.Lock()
        self._cached: Credentials | None = None
        self._source: CredentialProvider | None = None

    @property
    def providers(self) -> tuple[CredentialProvider, ...]:
        """The providers, in the order they are asked."""
        return self._providers

    @property
    def provider_names(self) -> list[str]:
        """The providers' names, in order."""
        return [p.name for p in self._providers]

    def resolve(self) -> Credentials:
        """Return current credentials (memoised, refreshed before they expire).

        Returns:
            The credentials.

        Raises:
            CredentialsError: a provider is broken; no provider had credentials (the message
                lists the providers tried); or a refresh inside the mandatory window failed.
        """
        cached = self._cached
        if cached is not None:
            state = self.freshness(cached)
            if state is Freshness.FRESH:
                return cached
            if state is Freshness.ADVISORY:
                # Someone else is refreshing: the current credentials are still good.
                if not self._lock.acquire(blocking=False):
                    return cached
                try:
                    return self._resolve_locked()
                finally:
                    self._lock.release()
        with self._lock:
            return self._resolve_locked()

    def freshness(self, creds: Credentials) -> Freshness:
        """Classify ``creds`` against ``clock()`` and the two windows."""
        exp = self._expiration(creds)
        if exp is None:
            return Freshness.FRESH
        left = exp - self._clock()
        if left <= self._mandatory:
            return Freshness.MANDATORY
        if left <= self._advisory:
            return Freshness.ADVISORY
        return Freshness.FRESH

    def invalidate(self) -> None:
        """Forget the memoised credentials; the next :meth:`resolve` asks every provider again.

        For callers that learn credentials went stale early (e.g. an ``ExpiredToken`` error).
        """
        with self._lock:
            self._cached = None
            self._source = None

    def _resolve_locked(self) -> Credentials:
        cached = self._cached
        if cached is None or self._source is None:
            fresh, source = self._load()
            self._check_fresh(fresh, source)
            self._cached, self._source = fresh, source
            return fresh
        state = self.freshness(cached)
        if state is Freshness.FRESH:  # refreshed by the thread we waited for
            return cached
        source = self._source
        try:
            loaded = source.load()
            if loaded is None:
                raise CredentialsError(f"{source.name}: no longer has credentials")
            self._check_fresh(loaded, source)
        except CredentialsError as exc:
            if state is Freshness.ADVISORY:
                logger.warning(
                    "refreshing credentials from %s failed (%s); using the current ones, "
                    "which expire at %s",
                    source.name,
                    exc,
                    cached.expiration,
                )
                return cached
            raise
        logger.debug("credentials refreshed by the %s provider", source.name)
        self._cached = loaded
        return loaded

    def _check_fresh(self, creds: Credentials, source: CredentialProvider) -> None:
        exp = self._expiration(creds)
        if exp is None:
            return
        if self._clock() >= exp:
            raise CredentialsError(f"{source.name}: returned credentials that expired at {exp}")
        if self.freshness(creds) is Freshness.MANDATORY:
            logger.warning(
                "the %s provider returned credentials that expire soon (at %s); they will be "
                "refreshed again at the next request",
                source.name,
                exp,
            )

    def _load(self) -> tuple[Credentials, CredentialProvider]:
        for provider in self._providers:
            creds = provider.load()
            if creds is not None:
                logger.debug("credentials found by the %s provider", provider.name)
                return creds, provider
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

    def __repr__(self) -> str:
        return f"CredentialChain({self.provider_names!r})"


def default_chain(environ: Mapping[str, str] | None = None) -> CredentialChain:
    """The ambient chain, in the SDKs' order.

    1. :class:`EnvironmentProvider` (``AWS_ACCESS_KEY_ID``...);
    2. :class:`~pos3lite.auth.sts.WebIdentityProvider` (``AWS_WEB_IDENTITY_TOKEN_FILE`` +
       ``AWS_ROLE_ARN``, or ``web_identity_token_file`` + ``role_arn`` in the profile);
    3. :class:`SharedFilesProvider` (static keys, then ``credential_process``);
    4. :class:`~pos3lite.auth.providers_http.ContainerProvider` (ECS task role, EKS Pod
       Identity);
    5. :class:`~pos3lite.auth.providers_http.InstanceMetadataProvider` (EC2 IMDSv2).

    See "Understand the credential provider chain" in the AWS SDKs and Tools Reference Guide.
    Building the chain does no I/O; each provider looks at the environment when first asked.

    Args:
        environ: the environment; ``None`` reads :data:`os.environ` when credentials load.

    Returns:
        A new :class:`CredentialChain` (callers memoise it, one per profile).
    """
    from .providers_http import ContainerProvider, InstanceMetadataProvider
    from .sts import WebIdentityProvider

    return CredentialChain(
        [
            EnvironmentProvider(environ),
            WebIdentityProvider(environ),
            SharedFilesProvider(environ),
            ContainerProvider(environ),
            InstanceMetadataProvider(environ),
        ]
    )


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
        ``profiles.py`` loaded from its ``credentials_file``); for a custom (non-AWS)
        endpoint, from the profile or the environment, only the environment and the shared
        files (static keys, ``credential_process``): instance metadata, container and web
        identity credentials are AWS-issued session credentials and are never sent to
        another server unless the profile sets ``use_ambient_credentials``; otherwise
        :func:`default_chain`.

    Raises:
        ConfigError: the endpoint configuration is invalid (see ``resolve_endpoint``).
    """
    if profile is not None:
        if profile.public:
            return None
        if profile.access_key and profile.secret_key:
            return CredentialChain(
                [StaticProvider(profile.access_key, profile.secret_key, profile.session_token)]
            )
    ambient_ok = profile is not None and profile.use_ambient_credentials
    if not ambient_ok and not is_aws_endpoint(resolve_endpoint(profile, environ)):
        return CredentialChain([EnvironmentProvider(environ), SharedFilesProvider(environ)])
    return default_chain(environ)
