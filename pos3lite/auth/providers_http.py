"""HTTP credential providers: container (ECS task role, EKS Pod Identity) and EC2 IMDSv2.

Rules:

* Requests go through the :class:`~pos3lite.transport.base.Transport` protocol. A provider
  given no transport builds a one-connection
  :class:`~pos3lite.transport.urllib3.Urllib3Transport` with short timeouts for each
  :meth:`load` and closes it afterwards (loads happen once per credential lifetime, so no
  pool is kept open between them). Tests inject a transport or point the base URLs at a
  local fake.
* A provider whose environment variables are absent returns ``None`` without any I/O. The
  IMDS provider also returns ``None`` when nothing answers at the metadata address (not on
  EC2); once an endpoint has answered, a failure or a malformed answer is a
  :class:`~pos3lite.errors.CredentialsError` naming the provider and the URL (never the
  query, a header value or the body).
* Response bodies are capped (64 KiB) and parsed as JSON (``json`` imported lazily).

Specs: AWS SDKs and Tools Reference Guide, "Container credential provider" and "IMDS
credential provider"; Amazon EC2 User Guide, "Use the Instance Metadata Service to access
instance metadata" (IMDSv2 session tokens).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config.files import _env, _get
from ..errors import CredentialsError, ReadTimeoutError, TransportError
from ..transport.base import Request
from .documents import _json_document, credentials_from_document

if TYPE_CHECKING:
    from ..transport.base import Transport
    from .sigv4 import Credentials

__all__ = [
    "CONTAINER_HOST",
    "IMDS_ENDPOINT",
    "IMDS_ENDPOINT_IPV6",
    "ContainerProvider",
    "InstanceMetadataProvider",
    "validate_container_full_uri",
]

logger = logging.getLogger(__name__)

CONTAINER_HOST = "http://169.254.170.2"
"""Base URL for ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`` (the ECS agent)."""

IMDS_ENDPOINT = "http://169.254.169.254"
"""The EC2 instance metadata service (IPv4)."""

IMDS_ENDPOINT_IPV6 = "http://[fd00:ec2::254]"
"""The EC2 instance metadata service (IPv6, ``AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6``)."""

# Hosts that FULL_URI may name over plain http besides loopback: the ECS agent, EKS Pod
# Identity (IPv4 and IPv6). "Container credential provider" in the SDKs reference guide.
_CONTAINER_HTTP_HOSTS = frozenset({"169.254.170.2", "169.254.170.23", "fd00:ec2::23"})

_IMDS_TOKEN_PATH = "/latest/api/token"
_IMDS_ROLE_PATH = "/latest/meta-data/iam/security-credentials/"
_IMDS_TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
_IMDS_TOKEN_HEADER = "X-aws-ec2-metadata-token"

MAX_BODY = 64 * 1024


# --------------------------------------------------------------------------------------------
# HTTP helpers (shared with sts.py)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer read in full: ``status`` and ``body`` (bytes, capped)."""

    status: int
    body: bytes

    def __repr__(self) -> str:
        return f"Answer({self.status}, {len(self.body)} bytes)"


@contextmanager
def open_transport(
    transport: Transport | None, timeout: tuple[float, float]
) -> Iterator[Transport]:
    """Yield ``transport``, or a fresh one-connection urllib3 transport closed on exit.

    Args:
        transport: an injected transport (left open), or ``None``.
        timeout: ``(connect, read)`` seconds for the transport built here.
    """
    if transport is not None:
        yield transport
        return
    from ..transport.urllib3 import Urllib3Transport

    built = Urllib3Transport(max_connections=1, timeout=timeout)
    try:
        yield built
    finally:
        built.close()


def fetch(transport: Transport, request: Request, *, where: str, limit: int = MAX_BODY) -> Answer:
    """Send ``request`` and read the whole body (at most ``limit`` bytes).

    Raises:
        TransportError: no complete answer.
        CredentialsError: the body is longer than ``limit`` (``where`` names the provider).
    """
    with transport.send(request) as response:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise CredentialsError(f"{where}: the answer is larger than {limit} bytes")
            chunks.append(chunk)
        return Answer(response.status, b"".join(chunks))


def fetch_with_retries(
    transport: Transport,
    request: Request,
    *,
    where: str,
    attempts: int,
    delay: float,
    sleep: Callable[[float], None],
    retry_if: Callable[[Answer], bool] | None = None,
    limit: int = MAX_BODY,
) -> Answer:
    """:func:`fetch` up to ``attempts`` times, sleeping ``delay`` seconds between tries.

    A try is repeated after a :class:`TransportError`, an HTTP 5xx or 429, or when
    ``retry_if(answer)`` is true. The last answer is returned, or the last error raised.
    """
    for attempt in range(1, max(attempts, 1) + 1):
        last = attempt >= attempts
        try:
            answer = fetch(transport, request, where=where, limit=limit)
        except TransportError:
            if last:
                raise
        else:
            retryable = answer.status >= 500 or answer.status == 429
            if retry_if is not None and not retryable:
                retryable = retry_if(answer)
            if last or not retryable:
                return answer
        logger.debug("%s: attempt %d failed; retrying", where, attempt)
        sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _flag(env: Mapping[str, str], name: str) -> bool:
    return (_get(env, name) or "").strip().lower() == "true"


def _url_for_messages(url: str) -> str:
    return url.split("?", 1)[0]


# --------------------------------------------------------------------------------------------
# Container credentials (ECS, EKS Pod Identity)
# --------------------------------------------------------------------------------------------


def validate_container_full_uri(url: str) -> None:
    """Check that ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` may be used.

    Allowed: any ``https`` URL; ``http`` only to a loopback host (``localhost``,
    ``127.0.0.0/8``, ``::1``) or to the ECS/EKS link-local hosts ``169.254.170.2``,
    ``169.254.170.23`` and ``[fd00:ec2::23]`` ("Container credential provider"). Host names
    other than ``localhost`` are not resolved through DNS (botocore resolves them; a name
    that only *resolves* to loopback is refused here).

    Raises:
        CredentialsError: the URL is not allowed; the message names the host.
    """
    import ipaddress
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        host = None
        parts = None
    if parts is not None and host:
        if parts.scheme == "https":
            return
        if parts.scheme == "http":
            if host == "localhost" or host in _CONTAINER_HTTP_HOSTS:
                return
            try:
                if ipaddress.ip_address(host).is_loopback:
                    return
            except ValueError:
                pass
    shown = host if host else "(no host)"
    raise CredentialsError(
        f"container: AWS_CONTAINER_CREDENTIALS_FULL_URI host {shown!r} is not allowed; use "
        "https, a loopback address, 169.254.170.2 (ECS) or 169.254.170.23 (EKS Pod Identity)"
    )


class ContainerProvider:
    """Credentials from the ECS agent or EKS Pod Identity agent.

    Environment ("Container credential provider", AWS SDKs and Tools Reference Guide):

    * ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI``: a path on ``http://169.254.170.2`` (ECS task
      roles); it wins over FULL_URI and must start with ``/``.
    * ``AWS_CONTAINER_CREDENTIALS_FULL_URI``: a whole URL, allowed only as described in
      :func:`validate_container_full_uri`.
    * ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`` (read again at every :meth:`load`, since
      EKS rotates it) or else ``AWS_CONTAINER_AUTHORIZATION_TOKEN``: the value sent as the
      ``Authorization`` header.

    The answer is JSON with ``AccessKeyId``, ``SecretAccessKey``, ``Token`` and
    ``Expiration`` (ISO 8601).

    Args:
        environ: the environment; ``None`` reads :data:`os.environ` at each :meth:`load`.
        transport: a transport to use (tests); ``None`` builds a short-lived urllib3 one.
        relative_base_url: the base for RELATIVE_URI (default ``http://169.254.170.2``).
        timeout: connect and read timeout, seconds (botocore: 2 s).
        attempts: tries per load; transport errors, 5xx and 429 are retried (botocore: 3).
        retry_delay: seconds between tries (botocore: 1 s).
        sleep: the sleep function (tests pass a no-op).
    """

    name = "container"

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        transport: Transport | None = None,
        relative_base_url: str = CONTAINER_HOST,
        timeout: float = 2.0,
        attempts: int = 3,
        retry_delay: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._environ = environ
        self._transport = transport
        self._relative_base = relative_base_url.rstrip("/")
        self._timeout = timeout
        self._attempts = attempts
        self._retry_delay = retry_delay
        self._sleep = sleep

    def load(self) -> Credentials | None:
        """Return the container's credentials, ``None`` when neither URI variable is set.

        Raises:
            CredentialsError: the URI is not allowed, the token file cannot be read or holds
                a line break, the endpoint cannot be reached or answers other than 200, or
                the answer is not the JSON document described above.
        """
        env = _env(self._environ)
        relative = _get(env, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        full = _get(env, "AWS_CONTAINER_CREDENTIALS_FULL_URI")
        if relative is not None:
            if not relative.startswith("/"):
                raise CredentialsError(
                    f"{self.name}: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must start with '/'"
                )
            url = self._relative_base + relative
        elif full is not None:
            validate_container_full_uri(full)
            url = full
        else:
            return None
        headers = {"Accept": "application/json"}
        token = self._authorization(env)
        if token is not None:
            headers["Authorization"] = token
        shown = _url_for_messages(url)
        request = Request("GET", url, headers, timeout=(self._timeout, self._timeout))
        logger.debug("fetching container credentials from %s", shown)
        with open_transport(self._transport, (self._timeout, self._timeout)) as transport:
            try:
                answer = fetch_with_retries(
                    transport,
                    request,
                    where=self.name,
                    attempts=self._attempts,
                    delay=self._retry_delay,
                    sleep=self._sleep,
                )
            except TransportError as exc:
                raise CredentialsError(f"{self.name}: cannot reach {shown}: {exc}") from None
        if answer.status != 200:
            raise CredentialsError(
                f"{self.name}: {shown} answered HTTP {answer.status}{_json_code(answer.body)}"
            )
        where = f"{self.name}: answer from {shown}"
        return credentials_from_document(_json_document(answer.body, where), where)

    def _authorization(self, env: Mapping[str, str]) -> str | None:
        token: str | None
        path = _get(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
        if path is not None:
            try:
                with open(path, encoding="utf-8") as fh:
                    token = fh.read().strip()
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or type(exc).__name__
                raise CredentialsError(
                    f"{self.name}: cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE "
                    f"{path}: {reason}"
                ) from None
            source = f"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {path}"
            if not token:
                raise CredentialsError(f"{self.name}: {source} is empty")
        else:
            token = _get(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN")
            source = "AWS_CONTAINER_AUTHORIZATION_TOKEN"
        if token is not None and ("\r" in token or "\n" in token):
            raise CredentialsError(f"{self.name}: {source} contains a line break")
        return token

    def __repr__(self) -> str:
        return "ContainerProvider()"


def _json_code(body: bytes) -> str:
    """``" (code X)"`` from an ``{"code": ...}`` error body, else ``""``; nothing else."""
    import json

    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    code = document.get("code") if isinstance(document, dict) else None
    if isinstance(code, str) and code.replace("_", "").replace("-", "").isalnum():
        return f" (code {code[:64]})"
    return ""


# --------------------------------------------------------------------------------------------
# EC2 instance metadata (IMDSv2)
# --------------------------------------------------------------------------------------------


class InstanceMetadataProvider:
    """Credentials of the EC2 instance profile, from the instance metadata service.

    IMDSv2 ("IMDS credential provider", AWS SDKs and Tools Reference Guide):

    1. ``PUT /latest/api/token`` with ``X-aws-ec2-metadata-token-ttl-seconds`` gets a session
       token;
    2. ``GET /latest/meta-data/iam/security-credentials/`` with ``X-aws-ec2-metadata-token``
       names the role;
    3. ``GET /latest/meta-data/iam/security-credentials/<role>`` returns JSON with
       ``AccessKeyId``, ``SecretAccessKey``, ``Token`` and ``Expiration``.

    As in botocore, when step 1 answers 403, 404 or 405, or times out on read (a container
    behind a hop limit of 1), the requests go on without a token (IMDSv1) unless
    ``AWS_EC2_METADATA_V1_DISABLED=true``.

    Environment: ``AWS_EC2_METADATA_DISABLED=true`` turns the provider off;
    ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` replaces ``http://169.254.169.254``
    (``AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6`` selects ``http://[fd00:ec2::254]``);
    ``AWS_METADATA_SERVICE_TIMEOUT`` (seconds, default 1) and
    ``AWS_METADATA_SERVICE_NUM_ATTEMPTS`` (default 1) as in botocore.

    Args:
        environ: the environment; ``None`` reads :data:`os.environ` at each :meth:`load`.
        transport: a transport to use (tests); ``None`` builds a short-lived urllib3 one.
        base_url: the metadata endpoint; wins over the environment.
        timeout: connect and read timeout, seconds; wins over the environment.
        attempts: tries per request (transport errors and 5xx are retried); wins over the
            environment.
        token_ttl: the session token's lifetime, seconds (default 21600, the maximum).
        sleep: the sleep function between tries (tests pass a no-op).
    """

    name = "imds"

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        transport: Transport | None = None,
        base_url: str | None = None,
        timeout: float | None = None,
        attempts: int | None = None,
        token_ttl: int = 21600,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._environ = environ
        self._transport = transport
        self._base_url = base_url
        self._timeout = timeout
        self._attempts = attempts
        self._token_ttl = token_ttl
        self._sleep = sleep

    def load(self) -> Credentials | None:
        """Return the instance role's credentials.

        Returns:
            The credentials; ``None`` when the provider is disabled, nothing answers at the
            metadata endpoint, or the instance has no role.

        Raises:
            CredentialsError: a configuration variable is invalid; the endpoint answered but
                refused a request (e.g. HTTP 401: token refused, or IMDSv1 needed while
                ``AWS_EC2_METADATA_V1_DISABLED=true``); or the credentials are malformed.
        """
        env = _env(self._environ)
        if _flag(env, "AWS_EC2_METADATA_DISABLED"):
            return None
        base = self._endpoint(env)
        timeout = self._timeout if self._timeout is not None else self._env_timeout(env)
        attempts = self._attempts if self._attempts is not None else self._env_attempts(env)
        with open_transport(self._transport, (timeout, timeout)) as transport:
            session = _ImdsSession(transport, base, timeout, attempts, self._sleep)
            return self._load(session, env)

    def _load(self, session: _ImdsSession, env: Mapping[str, str]) -> Credentials | None:
        name = self.name
        token: str | None = None
        try:
            answer = session.send("PUT", _IMDS_TOKEN_PATH, {_IMDS_TTL_HEADER: str(self._token_ttl)})
        except ReadTimeoutError:
            answer = None  # connected, no answer: a hop limit of 1 drops the PUT's reply
        except TransportError:
            logger.debug("%s: no metadata service at %s", name, session.base)
            return None
        if answer is not None:
            if answer.status == 200:
                token = answer.body.decode("ascii", "replace").strip()
                if not token:
                    raise CredentialsError(
                        f"{name}: {session.url(_IMDS_TOKEN_PATH)} sent an empty token"
                    )
            elif answer.status not in (403, 404, 405):
                raise CredentialsError(
                    f"{name}: {session.url(_IMDS_TOKEN_PATH)} answered HTTP {answer.status}"
                )
        if token is None:
            if _flag(env, "AWS_EC2_METADATA_V1_DISABLED"):
                if not session.answered:
                    return None
                raise CredentialsError(
                    f"{name}: no IMDSv2 session token (HTTP {answer.status if answer else '-'}) "
                    "and AWS_EC2_METADATA_V1_DISABLED=true forbids IMDSv1"
                )
            logger.debug("%s: no IMDSv2 token; falling back to IMDSv1", name)
        headers = {_IMDS_TOKEN_HEADER: token} if token else {}

        answer = session.get_or_none(_IMDS_ROLE_PATH, headers)
        if answer is None:
            return None
        if answer.status == 404:
            logger.debug("%s: the instance has no IAM role", name)
            return None
        session.require_ok(answer, _IMDS_ROLE_PATH)
        lines = answer.body.decode("utf-8", "replace").split()
        if not lines:
            logger.debug("%s: the instance has no IAM role", name)
            return None
        role = lines[0]

        from urllib.parse import quote

        path = _IMDS_ROLE_PATH + quote(role, safe="")
        answer = session.get_or_none(path, headers)
        if answer is None:
            raise CredentialsError(f"{name}: {session.url(path)} did not answer")
        session.require_ok(answer, path)
        where = f"{name}: credentials of role {role!r}"
        document = _json_document(answer.body, where)
        code = document.get("Code")
        if code is not None and code != "Success":
            shown = code if isinstance(code, str) and code.isalnum() else "?"
            raise CredentialsError(f"{where} have Code {shown!r}, not 'Success'")
        logger.debug("%s: credentials of role %s", name, role)
        return credentials_from_document(document, where)

    def _endpoint(self, env: Mapping[str, str]) -> str:
        if self._base_url is not None:
            return self._base_url.rstrip("/")
        value = _get(env, "AWS_EC2_METADATA_SERVICE_ENDPOINT")
        if value is not None:
            if not value.lower().startswith(("http://", "https://")):
                raise CredentialsError(
                    f"{self.name}: AWS_EC2_METADATA_SERVICE_ENDPOINT must start with http:// "
                    f"or https://, got {value!r}"
                )
            return value.rstrip("/")
        mode = (_get(env, "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE") or "IPv4").lower()
        if mode == "ipv6":
            return IMDS_ENDPOINT_IPV6
        if mode != "ipv4":
            raise CredentialsError(
                f"{self.name}: AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE must be IPv4 or IPv6"
            )
        return IMDS_ENDPOINT

    def _env_timeout(self, env: Mapping[str, str]) -> float:
        raw = _get(env, "AWS_METADATA_SERVICE_TIMEOUT")
        if raw is None:
            return 1.0
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not value > 0:
            raise CredentialsError(
                f"{self.name}: AWS_METADATA_SERVICE_TIMEOUT must be a positive number of "
                f"seconds, got {raw!r}"
            )
        return value

    def _env_attempts(self, env: Mapping[str, str]) -> int:
        raw = _get(env, "AWS_METADATA_SERVICE_NUM_ATTEMPTS")
        if raw is None:
            return 1
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise CredentialsError(
                f"{self.name}: AWS_METADATA_SERVICE_NUM_ATTEMPTS must be an integer >= 1, "
                f"got {raw!r}"
            )
        return value

    def __repr__(self) -> str:
        return "InstanceMetadataProvider()"


class _ImdsSession:
    """The requests of one IMDS load; remembers whether the service ever answered."""

    def __init__(
        self,
        transport: Transport,
        base: str,
        timeout: float,
        attempts: int,
        sleep: Callable[[float], None],
    ) -> None:
        self.transport = transport
        self.base = base
        self.timeout = timeout
        self.attempts = attempts
        self.sleep = sleep
        self.answered = False

    def url(self, path: str) -> str:
        return self.base + path

    def send(self, method: str, path: str, headers: Mapping[str, str]) -> Answer:
        request = Request(method, self.url(path), dict(headers), timeout=(self.timeout,) * 2)
        answer = fetch_with_retries(
            self.transport,
            request,
            where="imds",
            attempts=self.attempts,
            delay=0.0,
            sleep=self.sleep,
        )
        self.answered = True
        return answer

    def get_or_none(self, path: str, headers: Mapping[str, str]) -> Answer | None:
        """GET; ``None`` if the service never answered in this load, else errors raise."""
        try:
            return self.send("GET", path, headers)
        except TransportError as exc:
            if not self.answered:
                logger.debug("imds: no metadata service at %s", self.base)
                return None
            raise CredentialsError(f"imds: {self.url(path)} failed: {exc}") from None

    def require_ok(self, answer: Answer, path: str) -> None:
        if answer.status == 200:
            return
        hint = " (the IMDSv2 session token was refused)" if answer.status == 401 else ""
        raise CredentialsError(f"imds: {self.url(path)} answered HTTP {answer.status}{hint}")
