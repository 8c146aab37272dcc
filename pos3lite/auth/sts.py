"""Web identity credentials: STS ``AssumeRoleWithWebIdentity`` (EKS IRSA, OIDC federation).

Rules:

* The call is unsigned (the web identity token is the proof), sent as a form-encoded POST
  so the token never sits in a URL that a proxy or a log could record.
* The endpoint is regional, ``https://sts.<region>.amazonaws.com`` (``.amazonaws.com.cn``
  for ``cn-`` regions), as the SDKs use by default; ``$AWS_ENDPOINT_URL_STS`` or the
  ``endpoint`` argument replace it.
* The token file is read again at each :meth:`WebIdentityProvider.load`, i.e. at each
  refresh: Kubernetes rotates projected service-account tokens.
* The XML answer is parsed with :mod:`xml.etree.ElementTree`, imported inside the function;
  documents with a DTD are refused. Errors quote the STS error code and message with the
  token redacted, never a key, a token or the body.

Specs: AWS STS API Reference, "AssumeRoleWithWebIdentity" and "Common Errors"; AWS SDKs and
Tools Reference Guide, "Assume role credential provider" (web identity settings
``web_identity_token_file``, ``role_arn``, ``role_session_name``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ..config.files import (
    IniReadError,
    _env,
    _get,
    expand_user,
    read_ini,
    shared_config_path,
)
from ..config.files import config_sections as _config_sections
from ..errors import CredentialsError, TransportError
from ..transport.base import Request
from .documents import credentials_from_document
from .providers_http import Answer, fetch_with_retries, open_transport

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

    from ..transport.base import Transport
    from .sigv4 import Credentials

__all__ = [
    "STS_API_VERSION",
    "WebIdentityProvider",
    "assume_role_with_web_identity",
    "parse_assume_role_with_web_identity",
    "sts_endpoint",
]

logger = logging.getLogger(__name__)

STS_API_VERSION = "2011-06-15"
"""The STS Query API version sent as ``Version``."""

_NAME = "web-identity"
_MAX_BODY = 1024 * 1024
# STS error codes worth a second try ("AssumeRoleWithWebIdentity", Errors): the identity
# provider was unreachable, or STS throttled.
_RETRY_CODES = frozenset({"IDPCommunicationError", "Throttling", "ThrottlingException"})


def sts_endpoint(region: str) -> str:
    """The regional STS endpoint for ``region``, e.g. ``https://sts.eu-west-1.amazonaws.com``.

    Args:
        region: an AWS region name; ``cn-`` regions get the ``amazonaws.com.cn`` suffix.

    Returns:
        The ``https://`` base URL, without a trailing slash.
    """
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://sts.{region}.{suffix}"


class WebIdentityProvider:
    """Credentials for a role assumed with a web identity (OIDC) token.

    Settings, environment first and then the profile's section in the config file
    (``$AWS_PROFILE``, else ``default``):

    ==================================  ==============================  ========================
    environment                         config file                     meaning
    ==================================  ==============================  ========================
    ``AWS_WEB_IDENTITY_TOKEN_FILE``     ``web_identity_token_file``     path of the token (JWT)
    ``AWS_ROLE_ARN``                    ``role_arn``                    the role to assume
    ``AWS_ROLE_SESSION_NAME``           ``role_session_name``           optional session name
    ``AWS_REGION``,                     ``region``                      picks the STS endpoint
    ``AWS_DEFAULT_REGION``                                              (default ``us-east-1``)
    ==================================  ==============================  ========================

    Without a token file the provider returns ``None``. The session name defaults to
    ``pos3lite-session-<unix seconds>``. See "Assume role credential provider" in the AWS
    SDKs and Tools Reference Guide and "AssumeRoleWithWebIdentity" in the STS API Reference.

    Args:
        environ: the environment; ``None`` reads :data:`os.environ` at each :meth:`load`.
        transport: a transport to use (tests); ``None`` builds a short-lived urllib3 one.
        endpoint: the STS base URL; wins over ``$AWS_ENDPOINT_URL_STS`` and the region.
        timeout: ``(connect, read)`` seconds.
        attempts: tries per load; transport errors, 5xx, throttling and
            ``IDPCommunicationError`` are retried.
        retry_delay: seconds before the second try, doubled after each further try.
        sleep: the sleep function (tests pass a no-op).
        clock: seconds since the epoch, for the default session name.
    """

    name = _NAME

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        transport: Transport | None = None,
        endpoint: str | None = None,
        timeout: tuple[float, float] = (3.0, 10.0),
        attempts: int = 3,
        retry_delay: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._environ = environ
        self._transport = transport
        self._endpoint = endpoint
        self._timeout = timeout
        self._attempts = attempts
        self._retry_delay = retry_delay
        self._sleep = sleep
        self._clock = clock

    def load(self) -> Credentials | None:
        """Assume the role and return its temporary credentials.

        Returns:
            The credentials (with ``expiration``), or ``None`` when no token file is set.

        Raises:
            CredentialsError: a token file is set without a role ARN; the token file cannot
                be read or is empty; the config file is malformed; STS cannot be reached,
                refuses the call (the message carries the STS error code and message) or
                answers with a malformed document.
        """
        env = _env(self._environ)
        profile = self._profile_settings(env)
        token_file = _get(env, "AWS_WEB_IDENTITY_TOKEN_FILE")
        token_source = "AWS_WEB_IDENTITY_TOKEN_FILE"
        if token_file is None and profile.get("web_identity_token_file"):
            token_file = profile["web_identity_token_file"]
            token_source = "web_identity_token_file"
        if token_file is None:
            return None
        role_arn = _get(env, "AWS_ROLE_ARN") or profile.get("role_arn") or None
        if role_arn is None:
            raise CredentialsError(
                f"{self.name}: {token_source} is set but no role ARN is (set AWS_ROLE_ARN or "
                "role_arn in the profile)"
            )
        session_name = (
            _get(env, "AWS_ROLE_SESSION_NAME")
            or profile.get("role_session_name")
            or f"pos3lite-session-{int(self._clock())}"
        )
        token = self._read_token(token_file, token_source, env)
        endpoint = self._endpoint or _get(env, "AWS_ENDPOINT_URL_STS")
        if endpoint is None:
            region = (
                _get(env, "AWS_REGION")
                or _get(env, "AWS_DEFAULT_REGION")
                or profile.get("region")
                or "us-east-1"
            )
            endpoint = sts_endpoint(region)
        logger.debug("assuming role %s with a web identity token via %s", role_arn, endpoint)
        with open_transport(self._transport, self._timeout) as transport:
            return assume_role_with_web_identity(
                transport,
                endpoint=endpoint,
                role_arn=role_arn,
                session_name=session_name,
                token=token,
                timeout=self._timeout,
                attempts=self._attempts,
                retry_delay=self._retry_delay,
                sleep=self._sleep,
            )

    def _profile_settings(self, env: Mapping[str, str]) -> dict[str, str]:
        path = shared_config_path(env)
        if path is None:
            return {}
        try:
            parser = read_ini(path)
        except IniReadError as exc:
            raise CredentialsError(f"{self.name}: {exc}") from None
        if parser is None:
            return {}
        for section in _config_sections(_get(env, "AWS_PROFILE") or "default"):
            if parser.has_section(section):
                keys = ("web_identity_token_file", "role_arn", "role_session_name", "region")
                found = parser[section]
                return {k: found[k] for k in keys if found.get(k)}
        return {}

    def _read_token(self, token_file: str, source: str, env: Mapping[str, str]) -> str:
        path = expand_user(token_file, env)
        if path is None:
            raise CredentialsError(f"{self.name}: cannot expand {source} {token_file}")
        try:
            token = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise CredentialsError(f"{self.name}: cannot read {source} {path}: {reason}") from None
        if not token:
            raise CredentialsError(f"{self.name}: {source} {path} is empty")
        return token

    def __repr__(self) -> str:
        return "WebIdentityProvider()"


def assume_role_with_web_identity(
    transport: Transport,
    *,
    endpoint: str,
    role_arn: str,
    session_name: str,
    token: str,
    timeout: tuple[float, float] = (3.0, 10.0),
    attempts: int = 3,
    retry_delay: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> Credentials:
    """Call STS ``AssumeRoleWithWebIdentity`` and return the role's credentials.

    Sends an unsigned ``POST <endpoint>/`` with the form body ``Action=
    AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=..&RoleSessionName=..&
    WebIdentityToken=..``.

    Args:
        transport: the transport to send through.
        endpoint: the STS base URL, e.g. ``https://sts.us-east-1.amazonaws.com``.
        role_arn: the role to assume.
        session_name: ``RoleSessionName`` (2-64 characters of ``[\\w+=,.@-]``).
        token: the OIDC token (a secret: it appears in no message).
        timeout: ``(connect, read)`` seconds.
        attempts: tries in total.
        retry_delay: seconds before the second try, doubled after each further try.
        sleep: the sleep function.

    Returns:
        Credentials with ``token`` and an aware UTC ``expiration``.

    Raises:
        CredentialsError: STS cannot be reached, answers with an error (code and message
            quoted, the token redacted), or answers with a malformed document.
    """
    from urllib.parse import urlencode

    body = urlencode(
        [
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", STS_API_VERSION),
            ("RoleArn", role_arn),
            ("RoleSessionName", session_name),
            ("WebIdentityToken", token),
        ]
    ).encode("ascii")
    url = endpoint.rstrip("/") + "/"
    headers = {
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
        "Content-Length": str(len(body)),
        "Accept": "text/xml",
    }
    request = Request("POST", url, headers, body, timeout)
    delays = iter(retry_delay * 2**i for i in range(max(attempts, 1)))

    def backoff(_: float) -> None:
        sleep(next(delays, retry_delay))

    def retry_if(answer: Answer) -> bool:
        return _error_code(answer.body) in _RETRY_CODES

    try:
        answer = fetch_with_retries(
            transport,
            request,
            where=_NAME,
            attempts=attempts,
            delay=retry_delay,
            sleep=backoff,
            retry_if=retry_if,
            limit=_MAX_BODY,
        )
    except TransportError as exc:
        raise CredentialsError(f"{_NAME}: cannot reach STS at {url}: {exc}") from None
    if answer.status != 200:
        code, message = _error_details(answer.body)
        detail = f"{code}: {message}" if message else code
        detail = detail.replace(token, "<token>") if token else detail
        raise CredentialsError(
            f"{_NAME}: STS AssumeRoleWithWebIdentity for {role_arn} failed with HTTP "
            f"{answer.status}" + (f" ({detail})" if detail else "")
        )
    return parse_assume_role_with_web_identity(answer.body)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _parse_xml(body: bytes, what: str) -> Element:
    # Imported here, not at module level: `import pos3lite` must not load the XML parser.
    import xml.etree.ElementTree as ET

    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise CredentialsError(f"{_NAME}: {what} holds a DTD; refused")
    try:
        return ET.fromstring(body)
    except ET.ParseError:
        raise CredentialsError(f"{_NAME}: {what} is not well-formed XML") from None


def parse_assume_role_with_web_identity(body: bytes) -> Credentials:
    """Parse an ``AssumeRoleWithWebIdentityResponse`` document.

    Shape (STS API Reference, "AssumeRoleWithWebIdentity")::

        <AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
          <AssumeRoleWithWebIdentityResult>
            <Credentials>
              <AccessKeyId>..</AccessKeyId><SecretAccessKey>..</SecretAccessKey>
              <SessionToken>..</SessionToken><Expiration>2030-01-01T00:00:00Z</Expiration>
            </Credentials>
            ...
          </AssumeRoleWithWebIdentityResult>
        </AssumeRoleWithWebIdentityResponse>

    Args:
        body: the response body (bytes).

    Returns:
        The credentials, ``expiration`` as an aware UTC datetime.

    Raises:
        CredentialsError: not XML, another root element, or a missing field (named, never
            quoted).
    """
    root = _parse_xml(body, "the STS answer")
    where = f"{_NAME}: the STS answer"
    if _local(root.tag) != "AssumeRoleWithWebIdentityResponse":
        raise CredentialsError(f"{where} is a {_local(root.tag)!r} document")
    element = None
    for node in root.iter():
        if _local(node.tag) == "Credentials":
            element = node
            break
    if element is None:
        raise CredentialsError(f"{where} has no Credentials element")
    fields = {_local(child.tag): (child.text or "").strip() for child in element}
    if not fields.get("SessionToken"):
        raise CredentialsError(f"{where} lacks a SessionToken")
    if not fields.get("Expiration"):
        raise CredentialsError(f"{where} lacks an Expiration")
    return credentials_from_document(fields, where, token_field="SessionToken")


def _error_details(body: bytes) -> tuple[str, str]:
    """``(code, message)`` of an STS ``ErrorResponse``; ``("", "")`` if it is not one."""
    try:
        root = _parse_xml(body, "the STS error")
    except CredentialsError:
        return "", ""
    code = message = ""
    for node in root.iter():
        tag = _local(node.tag)
        if tag == "Code" and not code:
            code = (node.text or "").strip()
        elif tag == "Message" and not message:
            message = (node.text or "").strip()
    return code[:100], message[:300]


def _error_code(body: bytes) -> str:
    return _error_details(body)[0]
