"""Tests for the HTTP credential providers (container, IMDSv2, STS web identity).

The endpoints are faked with pytest-httpserver: the IMDS fake insists on the IMDSv2 token, the
container fake on the Authorization header, and the STS fake answers with the documented
AssumeRoleWithWebIdentityResponse shape.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request as WRequest
from werkzeug import Response as WResponse

from pos3lite.auth.credentials import CredentialChain, default_chain
from pos3lite.auth.providers_http import (
    ContainerProvider,
    InstanceMetadataProvider,
    validate_container_full_uri,
)
from pos3lite.auth.sigv4 import Credentials
from pos3lite.auth.sts import (
    WebIdentityProvider,
    parse_assume_role_with_web_identity,
    sts_endpoint,
)
from pos3lite.errors import ConnectError, CredentialsError, ReadTimeoutError
from pos3lite.transport.base import MockTransport, Request, Response

SECRET = "wJalr%XUtnFEMI/K7MDENG+bPxRfiCYzEXAMPLE"
TOKEN = "FwoGZXIvYXdzE%sessiontokenvalue"
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW0ifQ.c2lnbmF0dXJlLXNlY3JldA"
AUTH = "pod-identity-auth-token-value"
EXPIRATION = "2030-01-01T01:00:00Z"
EXPIRES = datetime(2030, 1, 1, 1, tzinfo=UTC)
T0 = datetime(2030, 1, 1, tzinfo=UTC)
SECRETS = (SECRET, TOKEN, JWT, AUTH)
ROLE_ARN = "arn:aws:iam::123456789012:role/pos3lite-test"


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def assert_error_clean(exc: BaseException) -> None:
    assert_no_secret(str(exc), repr(exc))


def no_sleep(_: float) -> None:
    pass


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def creds_json(access_key: str = "ASIAEXAMPLE", **extra: Any) -> str:
    doc = {
        "AccessKeyId": access_key,
        "SecretAccessKey": SECRET,
        "Token": TOKEN,
        "Expiration": EXPIRATION,
        **extra,
    }
    return json.dumps(doc)


@pytest.fixture
def base_env(tmp_path: Path) -> dict[str, str]:
    """An isolated environment: no AWS files, IMDS off."""
    return {
        "HOME": str(tmp_path / "home"),
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


# --------------------------------------------------------------------------------------------
# IMDSv2
# --------------------------------------------------------------------------------------------

IMDS_TOKEN = "AQAEAImdsSessionToken=="
ROLE = "pos3lite-instance-role"
ROLE_LIST = "/latest/meta-data/iam/security-credentials/"


def fake_imds(
    server: HTTPServer,
    *,
    role: str | None = ROLE,
    creds: str | None = None,
    token_status: int = 200,
    require_token: bool = True,
) -> None:
    """IMDS: the token PUT needs the TTL header; other requests need the token if required."""

    def token(req: WRequest) -> WResponse:
        if token_status != 200:
            return WResponse(status=token_status)
        if req.headers.get("X-aws-ec2-metadata-token-ttl-seconds") != "21600":
            return WResponse("missing TTL", status=400)
        return WResponse(IMDS_TOKEN)

    def guarded(body: str | None) -> Callable[[WRequest], WResponse]:
        def handler(req: WRequest) -> WResponse:
            if require_token and req.headers.get("X-aws-ec2-metadata-token") != IMDS_TOKEN:
                return WResponse(status=401)  # IMDSv2 required: a v1 GET is refused
            if body is None:
                return WResponse(status=404)
            return WResponse(body)

        return handler

    server.expect_request("/latest/api/token", method="PUT").respond_with_handler(token)
    server.expect_request(ROLE_LIST, method="GET").respond_with_handler(
        guarded(None if role is None else role + "\n")
    )
    if role is not None:
        body = creds if creds is not None else creds_json(Code="Success", Type="AWS-HMAC")
        server.expect_request(ROLE_LIST + role, method="GET").respond_with_handler(guarded(body))


def imds(server: HTTPServer, **env: str) -> InstanceMetadataProvider:
    return InstanceMetadataProvider(
        {"AWS_EC2_METADATA_SERVICE_ENDPOINT": server.url_for("/"), **env}
    )


def test_imds_v2(httpserver: HTTPServer, caplog: pytest.LogCaptureFixture) -> None:
    fake_imds(httpserver)
    caplog.set_level(logging.DEBUG)
    creds = imds(httpserver).load()
    assert creds == Credentials("ASIAEXAMPLE", SECRET, TOKEN, EXPIRES)
    methods = [(req.method, req.path) for req, _ in httpserver.log]
    assert methods == [
        ("PUT", "/latest/api/token"),
        ("GET", ROLE_LIST),
        ("GET", ROLE_LIST + ROLE),
    ]
    for req, _ in httpserver.log[1:]:
        assert req.headers["X-aws-ec2-metadata-token"] == IMDS_TOKEN
    assert_no_secret(caplog.text)
    assert IMDS_TOKEN not in caplog.text


def test_imds_fake_refuses_v1(httpserver: HTTPServer) -> None:
    # The fake is strict: without the session token the role list is refused...
    fake_imds(httpserver, token_status=405)
    with pytest.raises(CredentialsError) as info:
        imds(httpserver).load()
    assert "imds" in str(info.value) and "HTTP 401" in str(info.value)
    # ...so test_imds_v2 passing proves the v2 token was sent.


def test_imds_v1_fallback_when_token_endpoint_missing(httpserver: HTTPServer) -> None:
    fake_imds(httpserver, token_status=404, require_token=False)
    creds = imds(httpserver).load()
    assert creds is not None and creds.access_key == "ASIAEXAMPLE"
    assert "X-aws-ec2-metadata-token" not in httpserver.log[1][0].headers


def test_imds_v1_disabled(httpserver: HTTPServer) -> None:
    fake_imds(httpserver, token_status=403, require_token=False)
    with pytest.raises(CredentialsError, match="AWS_EC2_METADATA_V1_DISABLED"):
        imds(httpserver, AWS_EC2_METADATA_V1_DISABLED="true").load()
    assert len(httpserver.log) == 1


def test_imds_no_role(httpserver: HTTPServer) -> None:
    fake_imds(httpserver, role=None)
    assert imds(httpserver).load() is None


def test_imds_disabled_does_nothing(httpserver: HTTPServer) -> None:
    fake_imds(httpserver)
    assert imds(httpserver, AWS_EC2_METADATA_DISABLED="true").load() is None
    assert imds(httpserver, AWS_EC2_METADATA_DISABLED="TRUE").load() is None
    assert httpserver.log == []


def test_imds_nothing_listening() -> None:
    provider = InstanceMetadataProvider({}, base_url="http://127.0.0.1:9", timeout=0.5)
    assert provider.load() is None


@pytest.mark.parametrize(
    ("creds", "fragment"),
    [
        (f"not json {SECRET}", "is not valid JSON"),
        ("[1, 2]", "is not a JSON object"),
        (json.dumps({"Code": "Success", "AccessKeyId": "AK", "Token": TOKEN}), "SecretAccessKey"),
        (creds_json(Code="AssumeRoleUnauthorizedAccess"), "AssumeRoleUnauthorizedAccess"),
        (creds_json(Expiration="tomorrow"), "Expiration"),
        (creds_json(Token=5), "non-string Token"),
    ],
)
def test_imds_malformed(httpserver: HTTPServer, creds: str, fragment: str) -> None:
    fake_imds(httpserver, creds=creds)
    with pytest.raises(CredentialsError) as info:
        imds(httpserver).load()
    message = str(info.value)
    assert message.startswith("imds: ")
    assert ROLE in message
    assert fragment in message
    assert_error_clean(info.value)


def test_imds_short_timeouts_and_one_attempt() -> None:
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        seen.append(request)
        return Response(500, {})

    provider = InstanceMetadataProvider({}, transport=MockTransport(handler))
    with pytest.raises(CredentialsError, match="HTTP 500"):
        provider.load()
    assert len(seen) == 1  # botocore: metadata_service_num_attempts = 1
    assert seen[0].timeout == (1.0, 1.0)  # botocore: metadata_service_timeout = 1 s
    assert seen[0].url == "http://169.254.169.254/latest/api/token"
    assert seen[0].headers["X-aws-ec2-metadata-token-ttl-seconds"] == "21600"


def test_imds_env_tuning_and_ipv6() -> None:
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        seen.append(request)
        return Response(503, {})

    env = {
        "AWS_METADATA_SERVICE_TIMEOUT": "2.5",
        "AWS_METADATA_SERVICE_NUM_ATTEMPTS": "3",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "IPv6",
    }
    provider = InstanceMetadataProvider(env, transport=MockTransport(handler), sleep=no_sleep)
    with pytest.raises(CredentialsError, match="HTTP 503"):
        provider.load()
    assert len(seen) == 3
    assert seen[0].timeout == (2.5, 2.5)
    assert seen[0].url.startswith("http://[fd00:ec2::254]/")


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"AWS_EC2_METADATA_SERVICE_ENDPOINT": "169.254.169.254"}, "must start with http"),
        ({"AWS_METADATA_SERVICE_TIMEOUT": "soon"}, "AWS_METADATA_SERVICE_TIMEOUT"),
        ({"AWS_METADATA_SERVICE_NUM_ATTEMPTS": "0"}, "AWS_METADATA_SERVICE_NUM_ATTEMPTS"),
        ({"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "ipx"}, "ENDPOINT_MODE"),
    ],
)
def test_imds_bad_configuration(env: dict[str, str], fragment: str) -> None:
    transport = MockTransport(lambda r: Response(500, {}))
    with pytest.raises(CredentialsError, match=fragment):
        InstanceMetadataProvider(env, transport=transport).load()
    assert transport.requests == []


def test_imds_read_timeout_on_token_falls_back_to_v1() -> None:
    # A container behind a hop limit of 1 never sees the PUT's answer (botocore falls back).
    def handler(request: Request) -> Response:
        if request.method == "PUT":
            raise ReadTimeoutError("read timed out", method="PUT", url=request.url)
        if request.url.endswith("/security-credentials/"):
            return Response(200, {}, chunks=iter([ROLE.encode()]))
        return Response(200, {}, chunks=iter([creds_json().encode()]))

    transport = MockTransport(handler)
    creds = InstanceMetadataProvider({}, transport=transport).load()
    assert creds is not None and creds.access_key == "ASIAEXAMPLE"
    assert "X-aws-ec2-metadata-token" not in transport.requests[1].headers


def test_imds_failure_after_answer_is_an_error() -> None:
    def handler(request: Request) -> Response:
        if request.method == "PUT":
            return Response(200, {}, chunks=iter([IMDS_TOKEN.encode()]))
        raise ConnectError("refused", method="GET", url=request.url)

    with pytest.raises(CredentialsError, match=r"imds: .*security-credentials.* failed"):
        InstanceMetadataProvider({}, transport=MockTransport(handler)).load()


def test_imds_huge_answer_refused(httpserver: HTTPServer) -> None:
    fake_imds(httpserver, creds="x" * 100_000)
    with pytest.raises(CredentialsError, match="larger than"):
        imds(httpserver).load()


# --------------------------------------------------------------------------------------------
# Container (ECS, EKS Pod Identity)
# --------------------------------------------------------------------------------------------


class FakeContainer:
    """The ECS/EKS agent: answers only requests with the expected Authorization header."""

    def __init__(self, server: HTTPServer, path: str = "/v2/credentials/abc") -> None:
        self.server = server
        self.path = path
        self.auth: str | None = None
        self.calls = 0
        self.delay = 0.0
        self.body = creds_json("ASIACONTAINER")
        self.status = 200
        server.expect_request(path, method="GET").respond_with_handler(self.handle)

    @property
    def url(self) -> str:
        return self.server.url_for(self.path)

    @property
    def base(self) -> str:
        return self.server.url_for("/").rstrip("/")

    def handle(self, req: WRequest) -> WResponse:
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        if self.auth is not None and req.headers.get("Authorization") != self.auth:
            return WResponse('{"code": "AccessDenied"}', status=401)
        return WResponse(self.body, status=self.status)


def test_container_relative_uri(httpserver: HTTPServer) -> None:
    fake = FakeContainer(httpserver)
    env = {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": fake.path}
    provider = ContainerProvider(env, relative_base_url=fake.base)
    assert provider.load() == Credentials("ASIACONTAINER", SECRET, TOKEN, EXPIRES)
    assert "Authorization" not in httpserver.log[0][0].headers


def test_container_relative_uri_default_host() -> None:
    transport = MockTransport(lambda r: Response(200, {}, chunks=iter([creds_json().encode()])))
    env = {
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/x",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1/ignored",
    }
    ContainerProvider(env, transport=transport).load()
    assert transport.requests[0].url == "http://169.254.170.2/v2/credentials/x"
    assert transport.requests[0].timeout == (2.0, 2.0)


def test_container_full_uri_with_token(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeContainer(httpserver)
    fake.auth = AUTH
    caplog.set_level(logging.DEBUG)
    env = {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": fake.url,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": AUTH,
    }
    creds = ContainerProvider(env).load()
    assert creds is not None and creds.access_key == "ASIACONTAINER"
    assert httpserver.log[0][0].headers["Authorization"] == AUTH
    env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "wrong"
    with pytest.raises(CredentialsError) as info:
        ContainerProvider(env, sleep=no_sleep).load()
    assert "container" in str(info.value)
    assert "HTTP 401 (code AccessDenied)" in str(info.value)
    assert_error_clean(info.value)
    assert_no_secret(caplog.text)


def test_container_token_file_read_at_each_refresh(
    httpserver: HTTPServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeContainer(httpserver)
    token_file = tmp_path / "eks-pod-identity-token"
    token_file.write_text(AUTH + "-1\n")
    fake.auth = AUTH + "-1"
    env = {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": fake.url,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file),
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": "ignored-when-the-file-is-set",
    }
    clock = Clock(T0)
    chain = CredentialChain([ContainerProvider(env)], clock=clock)
    assert chain.resolve().access_key == "ASIACONTAINER"
    token_file.write_text(AUTH + "-2")  # rotated by the agent
    fake.auth = AUTH + "-2"
    fake.body = creds_json("ASIAROTATED", Expiration="2030-01-01T02:00:00Z")
    clock.now = T0 + timedelta(minutes=52)  # 8 minutes left: mandatory refresh
    assert chain.resolve().access_key == "ASIAROTATED"
    assert [req.headers["Authorization"] for req, _ in httpserver.log] == [
        AUTH + "-1",
        AUTH + "-2",
    ]
    assert_no_secret(caplog.text)


def test_container_token_file_problems(tmp_path: Path) -> None:
    transport = MockTransport(lambda r: Response(200, {}))
    env = {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.23/v1/credentials",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(tmp_path / "missing"),
    }
    with pytest.raises(CredentialsError, match=r"container: cannot read .*missing"):
        ContainerProvider(env, transport=transport).load()
    (tmp_path / "missing").write_text("")
    with pytest.raises(CredentialsError, match="is empty"):
        ContainerProvider(env, transport=transport).load()
    (tmp_path / "missing").write_text(f"{AUTH}\r\nX-Injected: 1")
    with pytest.raises(CredentialsError, match="line break") as info:
        ContainerProvider(env, transport=transport).load()
    assert_error_clean(info.value)
    assert transport.requests == []


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://169.254.170.2/v2/credentials", True),
        ("http://169.254.170.23/v1/credentials", True),
        ("http://[fd00:ec2::23]/v1/credentials", True),
        ("http://127.0.0.1:8080/creds", True),
        ("http://127.0.0.2/creds", True),
        ("http://localhost/creds", True),
        ("http://[::1]:9/creds", True),
        ("https://credentials.example.com/creds", True),
        ("http://credentials.example.com/creds", False),
        ("http://169.254.169.254/latest", False),
        ("http://10.0.0.1/creds", False),
        ("ftp://127.0.0.1/creds", False),
        ("http:///creds", False),
        ("not a url", False),
    ],
)
def test_container_full_uri_hosts(url: str, allowed: bool) -> None:
    if allowed:
        validate_container_full_uri(url)
    else:
        with pytest.raises(CredentialsError, match="container: AWS_CONTAINER_CREDENTIALS_FULL_URI"):
            validate_container_full_uri(url)


def test_container_disallowed_full_uri_sends_nothing() -> None:
    transport = MockTransport(lambda r: Response(200, {}))
    env = {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://evil.example.com/creds",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": AUTH,
    }
    with pytest.raises(CredentialsError, match=r"'evil\.example\.com' is not allowed"):
        ContainerProvider(env, transport=transport).load()
    assert transport.requests == []


def test_container_relative_uri_must_be_a_path() -> None:
    transport = MockTransport(lambda r: Response(200, {}))
    env = {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "@evil.example.com/creds"}
    with pytest.raises(CredentialsError, match="must start with '/'"):
        ContainerProvider(env, transport=transport).load()
    assert transport.requests == []


def test_container_nothing_configured() -> None:
    transport = MockTransport(lambda r: Response(200, {}))
    assert ContainerProvider({}, transport=transport).load() is None
    assert transport.requests == []


@pytest.mark.parametrize(
    ("status", "body", "fragment"),
    [
        (200, f"<html>{SECRET}</html>", "is not valid JSON"),
        (200, json.dumps({"AccessKeyId": "AK"}), "lacks a string SecretAccessKey"),
        (200, json.dumps({"SecretAccessKey": SECRET}), "lacks a string AccessKeyId"),
        (404, json.dumps({"code": "NotFound", "message": SECRET}), "HTTP 404 (code NotFound)"),
        (400, f"bad {TOKEN}", "HTTP 400"),
    ],
)
def test_container_malformed(httpserver: HTTPServer, status: int, body: str, fragment: str) -> None:
    fake = FakeContainer(httpserver)
    fake.status, fake.body = status, body
    with pytest.raises(CredentialsError) as info:
        ContainerProvider({"AWS_CONTAINER_CREDENTIALS_FULL_URI": fake.url}).load()
    assert str(info.value).startswith("container: ")
    assert fragment in str(info.value)
    assert_error_clean(info.value)


def test_container_retries_server_errors(httpserver: HTTPServer) -> None:
    answers = iter([(500, "oops"), (200, creds_json("ASIAAFTERRETRY"))])

    def handle(req: WRequest) -> WResponse:
        status, body = next(answers)
        return WResponse(body, status=status)

    httpserver.expect_request("/creds").respond_with_handler(handle)
    sleeps: list[float] = []
    env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": httpserver.url_for("/creds")}
    creds = ContainerProvider(env, sleep=sleeps.append).load()
    assert creds is not None and creds.access_key == "ASIAAFTERRETRY"
    assert sleeps == [1.0]


def test_container_unreachable() -> None:
    def refuse(request: Request) -> Response:
        raise ConnectError("connection refused", method="GET", url=request.url)

    transport = MockTransport(refuse)
    env = {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/x"}
    with pytest.raises(CredentialsError, match=r"container: cannot reach http://169\.254\.170\.2"):
        ContainerProvider(env, transport=transport, sleep=no_sleep).load()
    assert len(transport.requests) == 3


def test_container_one_refresh_in_flight_under_8_threads(httpserver: HTTPServer) -> None:
    fake = FakeContainer(httpserver)
    clock = Clock(T0)
    chain = CredentialChain(
        [ContainerProvider({"AWS_CONTAINER_CREDENTIALS_FULL_URI": fake.url})], clock=clock
    )
    chain.resolve()
    assert fake.calls == 1
    fake.delay = 0.2
    fake.body = creds_json("ASIANEW", Expiration="2030-01-01T03:00:00Z")
    clock.now = T0 + timedelta(minutes=55)  # mandatory: everyone waits for one refresh
    gate = threading.Barrier(8)
    results: list[str] = []

    def worker() -> None:
        gate.wait()
        results.append(chain.resolve().access_key)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert fake.calls == 2
    assert results == ["ASIANEW"] * 8


# --------------------------------------------------------------------------------------------
# STS AssumeRoleWithWebIdentity
# --------------------------------------------------------------------------------------------

STS_OK = f"""<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:jobs:trainer</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/pos3lite-test/trainer-session</Arn>
      <AssumedRoleId>AROACLKWSDQRAOEXAMPLE:trainer-session</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>{TOKEN}</SessionToken>
      <SecretAccessKey>{SECRET}</SecretAccessKey>
      <Expiration>{EXPIRATION}</Expiration>
      <AccessKeyId>ASIAWEBIDENTITY</AccessKeyId>
    </Credentials>
    <Provider>arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/X</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata>
    <RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId>
  </ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>
"""


def sts_error(code: str, message: str) -> str:
    return f"""<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error>
    <Type>Sender</Type>
    <Code>{code}</Code>
    <Message>{message}</Message>
  </Error>
  <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>
</ErrorResponse>
"""


class FakeSTS:
    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.answers: list[tuple[int, str]] = []
        self.forms: list[dict[str, list[str]]] = []
        self.content_types: list[str] = []
        self.authorization: list[str | None] = []
        server.expect_request("/", method="POST").respond_with_handler(self.handle)

    def handle(self, req: WRequest) -> WResponse:
        self.forms.append(parse_qs(req.get_data(as_text=True), strict_parsing=True))
        self.content_types.append(req.headers.get("Content-Type", ""))
        self.authorization.append(req.headers.get("Authorization"))
        status, body = self.answers.pop(0) if self.answers else (200, STS_OK)
        return WResponse(body, status=status, content_type="text/xml")


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "eks.amazonaws.com" / "serviceaccount" / "token"
    path.parent.mkdir(parents=True)
    path.write_text(JWT)
    return path


def web_env(base_env: dict[str, str], token_file: Path, **extra: str) -> dict[str, str]:
    return {
        **base_env,
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file),
        "AWS_ROLE_ARN": ROLE_ARN,
        **extra,
    }


def test_web_identity(
    httpserver: HTTPServer,
    base_env: dict[str, str],
    token_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    sts = FakeSTS(httpserver)
    env = web_env(base_env, token_file, AWS_ROLE_SESSION_NAME="trainer-session")
    provider = WebIdentityProvider(env, endpoint=httpserver.url_for("/"))
    assert provider.load() == Credentials("ASIAWEBIDENTITY", SECRET, TOKEN, EXPIRES)
    assert sts.forms == [
        {
            "Action": ["AssumeRoleWithWebIdentity"],
            "Version": ["2011-06-15"],
            "RoleArn": [ROLE_ARN],
            "RoleSessionName": ["trainer-session"],
            "WebIdentityToken": [JWT],
        }
    ]
    assert sts.content_types[0].startswith("application/x-www-form-urlencoded")
    assert sts.authorization == [None]  # unsigned
    assert JWT not in httpserver.log[0][0].url  # the token travels in the body only
    assert_no_secret(caplog.text)


def test_web_identity_token_file_read_at_each_refresh(
    httpserver: HTTPServer, base_env: dict[str, str], token_file: Path
) -> None:
    sts = FakeSTS(httpserver)
    clock = Clock(T0)
    provider = WebIdentityProvider(web_env(base_env, token_file), endpoint=httpserver.url_for("/"))
    chain = CredentialChain([provider], clock=clock)
    chain.resolve()
    token_file.write_text(JWT + "-rotated")  # the kubelet rotates projected tokens
    clock.now = T0 + timedelta(minutes=47)  # advisory window
    chain.resolve()
    assert [form["WebIdentityToken"] for form in sts.forms] == [[JWT], [JWT + "-rotated"]]


def test_web_identity_default_session_name(base_env: dict[str, str], token_file: Path) -> None:
    transport = MockTransport(lambda r: Response(200, {}, chunks=iter([STS_OK.encode()])))
    WebIdentityProvider(
        web_env(base_env, token_file, AWS_REGION="eu-west-3"),
        transport=transport,
        clock=lambda: 1893456000.7,
    ).load()
    request = transport.requests[0]
    assert request.method == "POST"
    assert request.url == "https://sts.eu-west-3.amazonaws.com/"
    assert isinstance(request.body, bytes)
    form = parse_qs(request.body.decode())
    assert form["RoleSessionName"] == ["pos3lite-session-1893456000"]
    assert request.timeout == (3.0, 10.0)
    assert "Authorization" not in request.headers


@pytest.mark.parametrize(
    ("extra", "url"),
    [
        ({}, "https://sts.us-east-1.amazonaws.com/"),
        ({"AWS_DEFAULT_REGION": "ap-southeast-2"}, "https://sts.ap-southeast-2.amazonaws.com/"),
        ({"AWS_REGION": "cn-north-1"}, "https://sts.cn-north-1.amazonaws.com.cn/"),
        (
            {"AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL_STS": "https://sts.internal:8443"},
            "https://sts.internal:8443/",
        ),
    ],
)
def test_web_identity_endpoint(
    base_env: dict[str, str], token_file: Path, extra: dict[str, str], url: str
) -> None:
    transport = MockTransport(lambda r: Response(200, {}, chunks=iter([STS_OK.encode()])))
    WebIdentityProvider(web_env(base_env, token_file, **extra), transport=transport).load()
    assert transport.requests[0].url == url


def test_sts_endpoint() -> None:
    assert sts_endpoint("us-west-2") == "https://sts.us-west-2.amazonaws.com"
    assert sts_endpoint("cn-northwest-1") == "https://sts.cn-northwest-1.amazonaws.com.cn"


def test_web_identity_from_config_profile(
    httpserver: HTTPServer, tmp_path: Path, base_env: dict[str, str], token_file: Path
) -> None:
    sts = FakeSTS(httpserver)
    config = tmp_path / "config"
    config.write_text(
        "[profile irsa]\n"
        f"web_identity_token_file = {token_file}\n"
        f"role_arn = {ROLE_ARN}\n"
        "role_session_name = from-config\n"
        "region = eu-west-1\n"
    )
    env = {**base_env, "AWS_CONFIG_FILE": str(config), "AWS_PROFILE": "irsa"}
    provider = WebIdentityProvider(env, endpoint=httpserver.url_for("/"))
    assert provider.load() is not None
    assert sts.forms[0]["RoleSessionName"] == ["from-config"]
    assert sts.forms[0]["RoleArn"] == [ROLE_ARN]
    # Without AWS_PROFILE the default profile has no web identity settings.
    del env["AWS_PROFILE"]
    assert WebIdentityProvider(env, endpoint=httpserver.url_for("/")).load() is None


def test_web_identity_not_configured(base_env: dict[str, str]) -> None:
    transport = MockTransport(lambda r: Response(500, {}))
    assert WebIdentityProvider(base_env, transport=transport).load() is None
    env = {**base_env, "AWS_ROLE_ARN": ROLE_ARN}  # a role without a token: not web identity
    assert WebIdentityProvider(env, transport=transport).load() is None
    assert transport.requests == []


def test_web_identity_configuration_errors(
    base_env: dict[str, str], token_file: Path, tmp_path: Path
) -> None:
    transport = MockTransport(lambda r: Response(500, {}))
    env = {**base_env, "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file)}
    with pytest.raises(CredentialsError, match=r"web-identity: .*no role ARN"):
        WebIdentityProvider(env, transport=transport).load()
    missing = tmp_path / "gone"
    env = web_env(base_env, missing)
    with pytest.raises(CredentialsError, match=f"web-identity: cannot read .*{missing.name}"):
        WebIdentityProvider(env, transport=transport).load()
    missing.write_text("  \n")
    with pytest.raises(CredentialsError, match="is empty"):
        WebIdentityProvider(env, transport=transport).load()
    assert transport.requests == []


def test_web_identity_sts_error(
    httpserver: HTTPServer,
    base_env: dict[str, str],
    token_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    sts = FakeSTS(httpserver)
    sts.answers = [(400, sts_error("InvalidIdentityToken", f"Token {JWT} has expired"))]
    provider = WebIdentityProvider(web_env(base_env, token_file), endpoint=httpserver.url_for("/"))
    with pytest.raises(CredentialsError) as info:
        provider.load()
    message = str(info.value)
    assert message.startswith("web-identity: STS AssumeRoleWithWebIdentity for " + ROLE_ARN)
    assert "HTTP 400" in message
    assert "InvalidIdentityToken: Token <token> has expired" in message
    assert_error_clean(info.value)
    assert len(sts.forms) == 1  # not retried
    assert_no_secret(caplog.text)


def test_web_identity_retries_idp_errors(
    httpserver: HTTPServer, base_env: dict[str, str], token_file: Path
) -> None:
    sts = FakeSTS(httpserver)
    sts.answers = [
        (400, sts_error("IDPCommunicationError", "the IdP did not answer")),
        (503, "<html>unavailable</html>"),
    ]
    sleeps: list[float] = []
    provider = WebIdentityProvider(
        web_env(base_env, token_file), endpoint=httpserver.url_for("/"), sleep=sleeps.append
    )
    creds = provider.load()
    assert creds is not None and creds.access_key == "ASIAWEBIDENTITY"
    assert len(sts.forms) == 3
    assert sleeps == [0.5, 1.0]


def test_web_identity_unreachable(base_env: dict[str, str], token_file: Path) -> None:
    def refuse(request: Request) -> Response:
        raise ConnectError("connection refused", method="POST", url=request.url)

    provider = WebIdentityProvider(
        web_env(base_env, token_file), transport=MockTransport(refuse), sleep=no_sleep
    )
    with pytest.raises(CredentialsError, match="web-identity: cannot reach STS") as info:
        provider.load()
    assert_error_clean(info.value)


def _without(tag: str) -> str:
    start = STS_OK.index(f"<{tag}>")
    end = STS_OK.index(f"</{tag}>") + len(tag) + 3
    return STS_OK[:start] + STS_OK[end:]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (f"{SECRET} not xml <", "not well-formed XML"),
        (sts_error("X", "y"), "'ErrorResponse' document"),
        (
            '<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"/>',
            "no Credentials element",
        ),
        (_without("SessionToken"), "lacks a SessionToken"),
        (_without("Expiration"), "lacks an Expiration"),
        (_without("SecretAccessKey"), "lacks a string SecretAccessKey"),
        (_without("AccessKeyId"), "lacks a string AccessKeyId"),
        (
            '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>'
            "<AssumeRoleWithWebIdentityResponse/>",
            "DTD",
        ),
    ],
)
def test_sts_malformed_answers(body: str, fragment: str) -> None:
    with pytest.raises(CredentialsError) as info:
        parse_assume_role_with_web_identity(body.encode())
    assert str(info.value).startswith("web-identity: ")
    assert fragment in str(info.value)
    assert_error_clean(info.value)


def test_sts_parse_without_namespace() -> None:
    body = STS_OK.replace(' xmlns="https://sts.amazonaws.com/doc/2011-06-15/"', "")
    assert parse_assume_role_with_web_identity(body.encode()).expiration == EXPIRES


# --------------------------------------------------------------------------------------------
# The default chain: precedence between providers
# --------------------------------------------------------------------------------------------


@pytest.fixture
def everything(
    httpserver: HTTPServer, tmp_path: Path, base_env: dict[str, str], token_file: Path
) -> dict[str, str]:
    """Every source configured at once, each answering with its own access key."""
    sts_answer = STS_OK
    httpserver.expect_request("/", method="POST").respond_with_data(
        sts_answer, content_type="text/xml"
    )
    container = FakeContainer(httpserver)
    fake_imds(httpserver, creds=creds_json("ASIAIMDS"))
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[default]\naws_access_key_id = AKFILE\naws_secret_access_key = {SECRET}\n"
    )
    return {
        **base_env,
        "AWS_ACCESS_KEY_ID": "AKENV",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file),
        "AWS_ROLE_ARN": ROLE_ARN,
        "AWS_ENDPOINT_URL_STS": httpserver.url_for("/"),
        "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": container.url,
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": httpserver.url_for("/"),
        "AWS_EC2_METADATA_DISABLED": "false",
    }


def test_default_chain_precedence(
    everything: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    env = dict(everything)
    order = [
        ("AKENV", ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")),
        ("ASIAWEBIDENTITY", ("AWS_WEB_IDENTITY_TOKEN_FILE",)),
        ("AKFILE", ("AWS_SHARED_CREDENTIALS_FILE",)),
        ("ASIACONTAINER", ("AWS_CONTAINER_CREDENTIALS_FULL_URI",)),
        ("ASIAIMDS", ("AWS_EC2_METADATA_SERVICE_ENDPOINT",)),
    ]
    for expected, remove in order:
        assert default_chain(env).resolve().access_key == expected
        for name in remove:
            env[name] = "" if name != "AWS_SHARED_CREDENTIALS_FILE" else env["HOME"] + "/none"
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    with pytest.raises(CredentialsError) as info:
        default_chain(env).resolve()
    assert "environment, web-identity, shared-credentials-file, container, imds" in str(info.value)
    assert_error_clean(info.value)
    assert_no_secret(caplog.text)


def test_provider_modules_import_lazily() -> None:
    # json, subprocess, shlex, the XML parser and urllib3 load only when a provider runs.
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import pos3lite.auth.credentials, pos3lite.auth.providers_http, pos3lite.auth.sts\n"
        "from pos3lite.auth.credentials import default_chain\n"
        "default_chain({})\n"
        "heavy = ('json', 'subprocess', 'shlex', 'xml.etree.ElementTree', 'urllib3', 'ssl')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""
