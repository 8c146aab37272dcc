"""Tests for pos3lite.auth.credentials: providers, the chain, region and endpoint."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pos3lite import profiles
from pos3lite.auth.credentials import (
    CredentialChain,
    CredentialProvider,
    EnvironmentProvider,
    Freshness,
    ProcessProvider,
    SharedFilesProvider,
    StaticProvider,
    default_chain,
    provider_for,
    resolve_endpoint,
    resolve_region,
)
from pos3lite.auth.sigv4 import Credentials
from pos3lite.errors import ConfigError, CredentialsError
from pos3lite.profiles import Profile

SECRET = "wJalr%XUtnFEMI/K7MDENG+bPxRfiCYzEXAMPLE"
TOKEN = "FwoGZXIvYXdzE%tokenvalue"
AMBIENT = ["environment", "web-identity", "shared-credentials-file", "container", "imds"]


@pytest.fixture(autouse=True)
def _clean_profiles() -> Iterator[None]:
    profiles._reset_for_tests()
    yield
    profiles._reset_for_tests()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    (path / ".aws").mkdir(parents=True)
    return path


def env_for(home: Path, **extra: str) -> dict[str, str]:
    return {"HOME": str(home), **extra}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def assert_no_secret(exc: BaseException) -> None:
    for text in (str(exc), repr(exc)):
        assert SECRET not in text
        assert TOKEN not in text


# --------------------------------------------------------------------------------------------
# StaticProvider
# --------------------------------------------------------------------------------------------


def test_static_provider() -> None:
    provider = StaticProvider("AKIA", SECRET, TOKEN)
    assert provider.name == "static"
    assert isinstance(provider, CredentialProvider)
    assert provider.load() == Credentials("AKIA", SECRET, TOKEN)
    assert SECRET not in repr(provider)
    assert TOKEN not in repr(provider)


@pytest.mark.parametrize(("ak", "sk"), [("", SECRET), ("AKIA", "")])
def test_static_provider_needs_both(ak: str, sk: str) -> None:
    with pytest.raises(CredentialsError) as info:
        StaticProvider(ak, sk)
    assert "static" in str(info.value)
    assert_no_secret(info.value)


# --------------------------------------------------------------------------------------------
# EnvironmentProvider
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}, None),
        ({"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": SECRET}, Credentials("AK", SECRET)),
        (
            {
                "AWS_ACCESS_KEY_ID": "AK",
                "AWS_SECRET_ACCESS_KEY": SECRET,
                "AWS_SESSION_TOKEN": TOKEN,
            },
            Credentials("AK", SECRET, TOKEN),
        ),
        (
            {
                "AWS_ACCESS_KEY_ID": "AK",
                "AWS_SECRET_ACCESS_KEY": SECRET,
                "AWS_SECURITY_TOKEN": TOKEN,
            },
            Credentials("AK", SECRET, TOKEN),
        ),
        (
            {
                "AWS_ACCESS_KEY_ID": "AK",
                "AWS_SECRET_ACCESS_KEY": SECRET,
                "AWS_CREDENTIAL_EXPIRATION": "2030-01-02T03:04:05Z",
            },
            Credentials("AK", SECRET, None, datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ),
    ],
)
def test_environment_provider(env: dict[str, str], expected: Credentials | None) -> None:
    assert EnvironmentProvider(env).load() == expected


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"AWS_ACCESS_KEY_ID": "AK"}, "AWS_SECRET_ACCESS_KEY is not"),
        ({"AWS_SECRET_ACCESS_KEY": SECRET}, "AWS_ACCESS_KEY_ID is not"),
        (
            {
                "AWS_ACCESS_KEY_ID": "AK",
                "AWS_SECRET_ACCESS_KEY": SECRET,
                "AWS_CREDENTIAL_EXPIRATION": "soon",
            },
            "AWS_CREDENTIAL_EXPIRATION",
        ),
    ],
)
def test_environment_provider_broken(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(CredentialsError) as info:
        EnvironmentProvider(env).load()
    assert "environment" in str(info.value)
    assert fragment in str(info.value)
    assert_no_secret(info.value)


def test_environment_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    provider = EnvironmentProvider()
    assert provider.load() is None
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKLATE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    assert provider.load() == Credentials("AKLATE", SECRET)


# --------------------------------------------------------------------------------------------
# SharedFilesProvider
# --------------------------------------------------------------------------------------------

CREDS = f"""
[default]
aws_access_key_id = AKDEFAULT
aws_secret_access_key = {SECRET}

[work]
aws_access_key_id = AKWORK
aws_secret_access_key = {SECRET}
aws_session_token = {TOKEN}

[roleonly]
role_arn = arn:aws:iam::123456789012:role/x
"""

CONFIG = f"""
[default]
region = eu-west-1

[profile cfgkeys]
aws_access_key_id = AKCONFIG
aws_secret_access_key = {SECRET}
region = ap-south-1

[profile roleonly]
region = us-west-2
sso_session = corp
"""


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        (None, Credentials("AKDEFAULT", SECRET)),
        ("default", Credentials("AKDEFAULT", SECRET)),
        ("work", Credentials("AKWORK", SECRET, TOKEN)),
        ("cfgkeys", Credentials("AKCONFIG", SECRET)),  # from "[profile cfgkeys]" in config
        # role_arn / SSO: refused (a later provider would act as another identity)
        ("roleonly", CredentialsError),
    ],
)
def test_shared_files(
    home: Path, profile: str | None, expected: Credentials | type[Exception]
) -> None:
    write(home / ".aws" / "credentials", CREDS)
    write(home / ".aws" / "config", CONFIG)
    env = env_for(home)
    if profile is not None:
        env["AWS_PROFILE"] = profile
    provider = SharedFilesProvider(env)
    assert provider.name == "shared-credentials-file"
    if isinstance(expected, type):
        with pytest.raises(expected, match=r"role_arn|sso_session"):
            provider.load()
    else:
        assert provider.load() == expected


def test_shared_files_credentials_file_wins_over_config(home: Path) -> None:
    write(
        home / ".aws" / "credentials",
        f"[p]\naws_access_key_id = AKCRED\naws_secret_access_key = {SECRET}\n",
    )
    write(
        home / ".aws" / "config",
        f"[profile p]\naws_access_key_id = AKCONF\naws_secret_access_key = {SECRET}\n",
    )
    creds = SharedFilesProvider(env_for(home, AWS_PROFILE="p")).load()
    assert creds is not None
    assert creds.access_key == "AKCRED"


def test_shared_files_env_overrides(tmp_path: Path) -> None:
    creds_path = write(
        tmp_path / "c", f"[default]\naws_access_key_id = AKENV\naws_secret_access_key = {SECRET}\n"
    )
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(creds_path), "AWS_CONFIG_FILE": str(tmp_path / "n")}
    assert SharedFilesProvider(env).load() == Credentials("AKENV", SECRET)


def test_shared_files_default_config_section_forms(home: Path) -> None:
    write(
        home / ".aws" / "config",
        f"[profile default]\naws_access_key_id = AKPD\naws_secret_access_key = {SECRET}\n",
    )
    assert SharedFilesProvider(env_for(home)).load() == Credentials("AKPD", SECRET)


def test_shared_files_nothing(home: Path) -> None:
    assert SharedFilesProvider(env_for(home)).load() is None  # no files at all
    write(home / ".aws" / "credentials", "[other]\naws_access_key_id = AK\n")
    assert SharedFilesProvider(env_for(home)).load() is None  # no [default] section


def test_shared_files_no_home(monkeypatch: pytest.MonkeyPatch) -> None:
    import pwd

    def no_entry(uid: int) -> object:
        raise KeyError(uid)

    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    assert SharedFilesProvider({}).load() is None
    env = {"AWS_EC2_METADATA_DISABLED": "true"}
    assert default_chain(env).provider_names == AMBIENT
    with pytest.raises(CredentialsError, match=", ".join(AMBIENT)):
        default_chain(env).resolve()
    assert resolve_region(None, {}) == "us-east-1"


@pytest.mark.parametrize(
    ("creds", "env_extra", "fragments"),
    [
        ("[default]\naws_access_key_id = AK\n", {}, ["aws_secret_access_key", "[default]"]),
        (f"[default]\naws_secret_access_key = {SECRET}\n", {}, ["aws_access_key_id"]),
        ("[default]\naws_access_key_id = AK\n", {}, ["credentials"]),
        (f"[default]\n{SECRET}\n", {}, ["cannot parse", "ParsingError"]),
        (f"{SECRET}\n", {}, ["MissingSectionHeaderError"]),
        (CREDS, {"AWS_PROFILE": "ghost"}, ["'ghost'", "AWS_PROFILE"]),
        ("DIR", {}, ["cannot read"]),
    ],
)
def test_shared_files_broken(
    home: Path, creds: str, env_extra: dict[str, str], fragments: list[str]
) -> None:
    path = home / ".aws" / "credentials"
    if creds == "DIR":
        path.mkdir()
    else:
        write(path, creds)
    with pytest.raises(CredentialsError) as info:
        SharedFilesProvider(env_for(home, **env_extra)).load()
    message = str(info.value)
    assert "shared-credentials-file" in message
    for fragment in fragments:
        assert fragment in message
    assert_no_secret(info.value)
    assert info.value.__cause__ is None


def test_shared_files_percent_in_secret_is_literal(home: Path) -> None:
    write(
        home / ".aws" / "credentials",
        f"[default]\naws_access_key_id = AK\n"
        f"aws_secret_access_key = {SECRET}\naws_session_token = {TOKEN}\n",
    )
    creds = SharedFilesProvider(env_for(home)).load()
    assert creds == Credentials("AK", SECRET, TOKEN)


# --------------------------------------------------------------------------------------------
# credential_process
# --------------------------------------------------------------------------------------------

PROCESS_SCRIPT = """
import json, pathlib, sys, time
spec = json.loads(pathlib.Path(sys.argv[1]).read_text())
counter = pathlib.Path(sys.argv[1] + ".runs")
counter.write_text(str(int(counter.read_text()) + 1 if counter.exists() else 1))
time.sleep(spec.get("sleep", 0))
sys.stdout.write(spec.get("stdout", ""))
sys.stderr.write(spec.get("stderr", ""))
sys.exit(spec.get("code", 0))
"""


def process_document(access_key: str = "AKPROC", **extra: object) -> str:
    return json.dumps(
        {
            "Version": 1,
            "AccessKeyId": access_key,
            "SecretAccessKey": SECRET,
            "SessionToken": TOKEN,
            "Expiration": "2030-01-01T01:00:00Z",
            **extra,
        }
    )


class FakeProcess:
    """A credential_process: sys.executable running a script driven by a JSON spec file."""

    def __init__(self, root: Path) -> None:
        self.script = write(root / "proc" / "fake_process.py", PROCESS_SCRIPT)
        self.spec = root / "proc" / "spec.json"
        self.set(stdout=process_document())

    def set(self, **spec: object) -> None:
        self.spec.write_text(json.dumps(spec))

    @property
    def command(self) -> str:
        return shlex.join([sys.executable, str(self.script), str(self.spec)])

    @property
    def runs(self) -> int:
        counter = Path(str(self.spec) + ".runs")
        return int(counter.read_text()) if counter.exists() else 0


def access_key(provider: CredentialProvider) -> str | None:
    creds = provider.load()
    return None if creds is None else creds.access_key


@pytest.fixture
def proc(tmp_path: Path) -> FakeProcess:
    return FakeProcess(tmp_path)


def test_credential_process(home: Path, proc: FakeProcess) -> None:
    write(home / ".aws" / "config", f"[profile tool]\ncredential_process = {proc.command}\n")
    creds = SharedFilesProvider(env_for(home, AWS_PROFILE="tool")).load()
    expected = Credentials("AKPROC", SECRET, TOKEN, datetime(2030, 1, 1, 1, tzinfo=UTC))
    assert creds == expected
    assert ProcessProvider(proc.command).load() == expected
    assert proc.runs == 2


def test_credential_process_optional_fields(proc: FakeProcess) -> None:
    proc.set(stdout=json.dumps({"Version": 1, "AccessKeyId": "AK", "SecretAccessKey": SECRET}))
    assert ProcessProvider(proc.command).load() == Credentials("AK", SECRET)


def test_credential_process_precedence(home: Path, proc: FakeProcess) -> None:
    # botocore: credentials-file keys, then credential_process, then config-file keys.
    write(
        home / ".aws" / "config",
        f"[default]\naws_access_key_id = AKCONF\naws_secret_access_key = {SECRET}\n"
        f"credential_process = {proc.command}\n",
    )
    assert access_key(SharedFilesProvider(env_for(home))) == "AKPROC"
    write(
        home / ".aws" / "credentials",
        f"[default]\naws_access_key_id = AKCRED\naws_secret_access_key = {SECRET}\n",
    )
    assert access_key(SharedFilesProvider(env_for(home))) == "AKCRED"
    assert proc.runs == 1
    # credential_process in the credentials file works too.
    write(home / ".aws" / "credentials", f"[default]\ncredential_process = {proc.command}\n")
    write(home / ".aws" / "config", "[default]\ncredential_process = /nonexistent/program\n")
    assert access_key(SharedFilesProvider(env_for(home))) == "AKPROC"


def test_credential_process_rerun_at_refresh(home: Path, proc: FakeProcess) -> None:
    write(home / ".aws" / "config", f"[default]\ncredential_process = {proc.command}\n")
    clock = Clock(datetime(2030, 1, 1, tzinfo=UTC))
    chain = CredentialChain([SharedFilesProvider(env_for(home))], clock=clock)
    assert chain.resolve().access_key == "AKPROC"
    assert chain.resolve().access_key == "AKPROC"
    assert proc.runs == 1
    proc.set(stdout=process_document("AKNEXT", Expiration="2030-01-01T02:00:00Z"))
    clock.now = datetime(2030, 1, 1, 0, 50, tzinfo=UTC)
    assert chain.resolve().access_key == "AKNEXT"
    assert proc.runs == 2


@pytest.mark.parametrize(
    ("spec", "fragments"),
    [
        (
            {"stdout": process_document(), "stderr": "warming up\nvault is locked\n", "code": 3},
            ["exited with status 3", "vault is locked"],
        ),
        ({"stdout": f"here you go: {SECRET} {TOKEN}"}, ["is not valid JSON"]),
        ({"stdout": "[]"}, ["is not a JSON object"]),
        ({"stdout": process_document(Version=2)}, ["Version 2", "only 1"]),
        ({"stdout": process_document(Version=True)}, ["Version True"]),
        ({"stdout": json.dumps({"Version": 1, "AccessKeyId": "AK"})}, ["SecretAccessKey"]),
        ({"stdout": json.dumps({"Version": 1, "SecretAccessKey": SECRET})}, ["AccessKeyId"]),
        ({"stdout": process_document(Expiration="later")}, ["Expiration"]),
        ({"stdout": process_document(SessionToken=7)}, ["non-string SessionToken"]),
    ],
)
def test_credential_process_broken(
    home: Path,
    proc: FakeProcess,
    caplog: pytest.LogCaptureFixture,
    spec: dict[str, object],
    fragments: list[str],
) -> None:
    caplog.set_level("DEBUG")
    proc.set(**spec)
    write(home / ".aws" / "config", f"[profile tool]\ncredential_process = {proc.command}\n")
    with pytest.raises(CredentialsError) as info:
        SharedFilesProvider(env_for(home, AWS_PROFILE="tool")).load()
    message = str(info.value)
    assert message.startswith("credential-process: profile 'tool'")
    for fragment in fragments:
        assert fragment in message
    assert str(proc.spec) not in message  # the program is named, its arguments are not
    assert_no_secret(info.value)
    assert SECRET not in caplog.text and TOKEN not in caplog.text


def test_credential_process_timeout(proc: FakeProcess) -> None:
    proc.set(sleep=5, stdout=process_document())
    started = time.monotonic()
    with pytest.raises(CredentialsError, match=r"did not finish within 0\.3 s"):
        ProcessProvider(proc.command, timeout=0.3).load()
    assert time.monotonic() - started < 4


@pytest.mark.parametrize(
    ("command", "fragment"),
    [
        ("/nonexistent/credential-helper --password hunter2", "cannot run '/nonexistent/"),
        ("helper 'unbalanced --password hunter2", "cannot parse"),
        ("   ", "is empty"),
    ],
)
def test_credential_process_bad_command(command: str, fragment: str) -> None:
    with pytest.raises(CredentialsError, match=fragment) as info:
        ProcessProvider(command, profile="p").load()
    assert "hunter2" not in str(info.value)
    assert "credential-process: profile 'p'" in str(info.value)


def test_credential_process_no_shell(proc: FakeProcess, tmp_path: Path) -> None:
    marker = tmp_path / "shell-ran"
    with pytest.raises(CredentialsError):
        ProcessProvider(f"{proc.command}; touch {marker}").load()
    assert not marker.exists()


def test_process_provider_repr() -> None:
    provider = ProcessProvider("helper --secret s3cr3t", profile="p")
    assert "s3cr3t" not in repr(provider)
    assert provider.name == "credential-process"


# --------------------------------------------------------------------------------------------
# CredentialChain
# --------------------------------------------------------------------------------------------


class FakeProvider:
    def __init__(self, name: str, result: Credentials | Exception | None) -> None:
        self.name = name
        self.result = result
        self.calls = 0

    def load(self) -> Credentials | None:
        self.calls += 1
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


A = Credentials("AKA", SECRET)
B = Credentials("AKB", SECRET)


@pytest.mark.parametrize(
    ("results", "expected", "calls"),
    [
        ([A], A, [1]),
        ([None, A], A, [1, 1]),
        ([A, B], A, [1, 0]),
        ([None, None, B], B, [1, 1, 1]),
    ],
)
def test_chain_first_wins(
    results: list[Credentials | None], expected: Credentials, calls: list[int]
) -> None:
    providers = [FakeProvider(f"p{i}", r) for i, r in enumerate(results)]
    chain = CredentialChain(providers)
    assert [p.calls for p in providers] == [0] * len(providers)  # lazy
    assert chain.resolve() == expected
    assert [p.calls for p in providers] == calls
    assert chain.resolve() == expected  # memoised
    assert [p.calls for p in providers] == calls


def test_chain_nothing_lists_providers() -> None:
    chain = CredentialChain([FakeProvider("environment", None), FakeProvider("files", None)])
    with pytest.raises(CredentialsError, match="providers tried: environment, files"):
        chain.resolve()


def test_chain_broken_provider_stops() -> None:
    later = FakeProvider("later", A)
    chain = CredentialChain([FakeProvider("b", CredentialsError("b: broken")), later])
    with pytest.raises(CredentialsError, match="b: broken"):
        chain.resolve()
    assert later.calls == 0


def test_chain_invalidate() -> None:
    provider = FakeProvider("p", A)
    chain = CredentialChain([provider])
    chain.resolve()
    chain.invalidate()
    provider.result = B
    assert chain.resolve() == B
    assert provider.calls == 2


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


T0 = datetime(2030, 1, 1, tzinfo=UTC)


def test_chain_refreshes_within_advisory_window() -> None:
    clock = Clock(T0)
    first = Credentials("AK1", SECRET, TOKEN, expiration=T0 + timedelta(minutes=60))
    second = Credentials("AK2", SECRET, TOKEN, expiration=T0 + timedelta(hours=2))
    provider = FakeProvider("imds", first)
    chain = CredentialChain([provider], clock=clock)
    assert chain.resolve() is first
    provider.result = second
    clock.now = T0 + timedelta(minutes=44)  # 16 minutes left: still fine
    assert chain.resolve() is first
    clock.now = T0 + timedelta(minutes=46)  # 14 minutes left: inside the advisory window
    assert chain.resolve() is second
    assert provider.calls == 2


def test_chain_advisory_failure_keeps_old_credentials(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock(T0)
    first = Credentials("AK1", SECRET, TOKEN, expiration=T0 + timedelta(minutes=30))
    provider = FakeProvider("imds", first)
    chain = CredentialChain([provider], clock=clock)
    chain.resolve()
    provider.result = CredentialsError("imds: down")
    clock.now = T0 + timedelta(minutes=18)  # 12 minutes left: advisory
    with caplog.at_level("DEBUG", logger="pos3lite"):
        assert chain.resolve() is first
    assert "imds: down" in caplog.text
    assert any(r.levelname == "WARNING" for r in caplog.records)
    assert SECRET not in caplog.text and TOKEN not in caplog.text
    assert provider.calls == 2


def test_chain_mandatory_failure_raises() -> None:
    clock = Clock(T0)
    first = Credentials("AK1", SECRET, expiration=T0 + timedelta(minutes=30))
    provider = FakeProvider("imds", first)
    chain = CredentialChain([provider], clock=clock)
    chain.resolve()
    provider.result = CredentialsError("imds: down")
    clock.now = T0 + timedelta(minutes=21)  # 9 minutes left: mandatory
    with pytest.raises(CredentialsError, match="imds: down"):
        chain.resolve()
    clock.now = T0 + timedelta(minutes=31)  # expired: still raised
    with pytest.raises(CredentialsError, match="imds: down"):
        chain.resolve()
    provider.result = Credentials("AK2", SECRET, expiration=T0 + timedelta(hours=3))
    assert chain.resolve().access_key == "AK2"  # recovers once the source does


def test_chain_refreshes_from_the_source_provider() -> None:
    clock = Clock(T0)
    first = FakeProvider("first", None)
    source = FakeProvider("source", Credentials("AK1", SECRET, expiration=T0 + timedelta(hours=1)))
    chain = CredentialChain([first, source], clock=clock)
    chain.resolve()
    first.result = Credentials("AKNEW", SECRET)  # appears later: not consulted on refresh
    source.result = Credentials("AK2", SECRET, expiration=T0 + timedelta(hours=2))
    clock.now = T0 + timedelta(minutes=55)
    assert chain.resolve().access_key == "AK2"
    assert first.calls == 1
    chain.invalidate()  # invalidate asks the whole chain again
    assert chain.resolve().access_key == "AKNEW"


def test_chain_source_that_goes_away() -> None:
    clock = Clock(T0)
    provider = FakeProvider(
        "web-identity", Credentials("AK1", SECRET, expiration=T0 + timedelta(hours=1))
    )
    chain = CredentialChain([provider], clock=clock)
    chain.resolve()
    provider.result = None
    clock.now = T0 + timedelta(minutes=55)
    with pytest.raises(CredentialsError, match="web-identity: no longer has credentials"):
        chain.resolve()


def test_chain_refuses_expired_and_warns_on_short_lived(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock(T0)
    provider = FakeProvider("p", Credentials("AK", SECRET, expiration=T0 - timedelta(seconds=1)))
    chain = CredentialChain([provider], clock=clock)
    with pytest.raises(CredentialsError, match="p: returned credentials that expired"):
        chain.resolve()
    short = Credentials("AKS", SECRET, expiration=T0 + timedelta(minutes=5))
    provider.result = short
    with caplog.at_level("WARNING"):
        assert chain.resolve() is short
    assert "expire soon" in caplog.text
    assert chain.resolve() is short
    assert provider.calls == 3  # inside the mandatory window: asked again at each call


def test_chain_windows_validated() -> None:
    with pytest.raises(ValueError, match="mandatory_window"):
        CredentialChain(
            [], advisory_window=timedelta(minutes=1), mandatory_window=timedelta(minutes=2)
        )


@pytest.mark.parametrize(
    ("left", "expected"),
    [
        (None, Freshness.FRESH),
        (timedelta(minutes=16), Freshness.FRESH),
        (timedelta(minutes=15), Freshness.ADVISORY),
        (timedelta(minutes=11), Freshness.ADVISORY),
        (timedelta(minutes=10), Freshness.MANDATORY),
        (timedelta(minutes=-1), Freshness.MANDATORY),
    ],
)
def test_chain_freshness_table(left: timedelta | None, expected: Freshness) -> None:
    chain = CredentialChain([], clock=Clock(T0))
    exp = None if left is None else T0 + left
    assert chain.freshness(Credentials("AK", SECRET, expiration=exp)) is expected


def test_chain_naive_expiration_taken_as_utc() -> None:
    clock = Clock(T0)
    naive = Credentials("AK1", SECRET, expiration=datetime(2030, 1, 1, 0, 1))
    provider = FakeProvider("p", naive)
    chain = CredentialChain([provider], clock=clock)
    chain.resolve()
    chain.resolve()
    assert provider.calls == 2  # one minute left (taken as UTC): asked again at each call
    clock.now = datetime(2030, 1, 1, 0, 2, tzinfo=UTC)
    with pytest.raises(CredentialsError, match="expired"):
        chain.resolve()


def test_chain_one_resolution_in_flight() -> None:
    class Slow:
        name = "slow"

        def __init__(self) -> None:
            self.calls = 0

        def load(self) -> Credentials:
            self.calls += 1
            time.sleep(0.05)
            return A

    provider = Slow()
    chain = CredentialChain([provider])
    gate = threading.Barrier(8)
    results: list[Credentials] = []

    def worker() -> None:
        gate.wait()
        results.append(chain.resolve())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert provider.calls == 1
    assert results == [A] * 8


@pytest.mark.parametrize(
    ("minutes_left", "waiters_get"), [(12, "AK1"), (5, "AK2")], ids=["advisory", "mandatory"]
)
def test_chain_one_refresh_in_flight_under_8_threads(minutes_left: int, waiters_get: str) -> None:
    clock = Clock(T0)
    first = Credentials("AK1", SECRET, expiration=T0 + timedelta(hours=1))
    second = Credentials("AK2", SECRET, expiration=T0 + timedelta(hours=2))
    started = threading.Event()

    class Slow:
        name = "slow"

        def __init__(self) -> None:
            self.calls = 0
            self.result = first

        def load(self) -> Credentials:
            self.calls += 1
            if self.calls > 1:
                started.set()
                time.sleep(0.2)
            return self.result

    provider = Slow()
    chain = CredentialChain([provider], clock=clock)
    chain.resolve()
    provider.result = second
    clock.now = T0 + timedelta(hours=1) - timedelta(minutes=minutes_left)
    results: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        got = chain.resolve().access_key
        with lock:
            results.append(got)

    leader = threading.Thread(target=worker)
    leader.start()
    assert started.wait(5)
    others = [threading.Thread(target=worker) for _ in range(7)]
    for t in others:
        t.start()
    for t in [leader, *others]:
        t.join()
    assert provider.calls == 2  # one refresh, whatever the window
    # Advisory: the 7 others do not wait and keep the current credentials; mandatory: they
    # wait for the refresh.
    assert sorted(results) == sorted(["AK2"] + [waiters_get] * 7)


def test_chain_repr_has_no_secret() -> None:
    chain = CredentialChain([StaticProvider("AK", SECRET, TOKEN)])
    chain.resolve()
    assert SECRET not in repr(chain)
    assert "static" in repr(chain)


# --------------------------------------------------------------------------------------------
# default_chain / provider_for
# --------------------------------------------------------------------------------------------


def test_default_chain_order(home: Path) -> None:
    write(home / ".aws" / "credentials", CREDS)
    env = env_for(home, AWS_ACCESS_KEY_ID="AKENV", AWS_SECRET_ACCESS_KEY=SECRET)
    chain = default_chain(env)
    assert chain.provider_names == AMBIENT
    assert chain.resolve().access_key == "AKENV"
    assert default_chain(env_for(home)).resolve().access_key == "AKDEFAULT"


def test_provider_for_public_never_looks(home: Path) -> None:
    public = Profile("pub", "https://e", public=True)
    assert provider_for(public, env_for(home, AWS_ACCESS_KEY_ID="AK")) is None


def test_provider_for_static_keys_ignore_environment(home: Path) -> None:
    p = Profile("p", "https://e", access_key="AKPROF", secret_key=SECRET, session_token=TOKEN)
    chain = provider_for(p, env_for(home, AWS_ACCESS_KEY_ID="AKENV", AWS_SECRET_ACCESS_KEY="x"))
    assert chain is not None
    assert chain.provider_names == ["static"]
    assert chain.resolve() == Credentials("AKPROF", SECRET, TOKEN)


@pytest.mark.parametrize(
    ("profile", "names"),
    [
        (None, AMBIENT),
        # A custom endpoint never gets IMDS/container/web-identity credentials (issue 9).
        (Profile("p", "https://e"), ["environment", "shared-credentials-file"]),
        (Profile("p", "https://e", use_ambient_credentials=True), AMBIENT),
        (Profile("p", "https://s3.eu-west-1.amazonaws.com"), AMBIENT),
    ],
)
def test_provider_for_ambient(home: Path, profile: Profile | None, names: list[str]) -> None:
    env = env_for(home, AWS_ACCESS_KEY_ID="AKENV", AWS_SECRET_ACCESS_KEY=SECRET)
    chain = provider_for(profile, env)
    assert chain is not None
    assert chain.provider_names == names
    assert chain.resolve().access_key == "AKENV"


def test_provider_for_registry_credentials_file(tmp_path: Path) -> None:
    registry = write(
        tmp_path / "profiles.toml",
        '[profiles.p]\nendpoint = "https://e"\ncredentials_file = "p.creds"\n',
    )
    write(
        tmp_path / "p.creds", f"[p]\naws_access_key_id = AKFILE\naws_secret_access_key = {SECRET}\n"
    )
    profiles.load_registry(registry)
    chain = provider_for(profiles.resolve_profile("p"), {})
    assert chain is not None
    assert chain.resolve() == Credentials("AKFILE", SECRET)


# --------------------------------------------------------------------------------------------
# resolve_region / resolve_endpoint
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile_region", "env", "config", "expected"),
    [
        ("eu-north-1", {"AWS_REGION": "x", "AWS_DEFAULT_REGION": "y"}, True, "eu-north-1"),
        (None, {"AWS_REGION": "r1", "AWS_DEFAULT_REGION": "r2"}, True, "r1"),
        (None, {"AWS_REGION": "", "AWS_DEFAULT_REGION": "r2"}, True, "r2"),
        (None, {}, True, "eu-west-1"),  # [default] in config
        (None, {"AWS_PROFILE": "cfgkeys"}, True, "ap-south-1"),  # [profile cfgkeys]
        (None, {"AWS_PROFILE": "roleonly"}, True, "us-west-2"),
        (None, {"AWS_PROFILE": "ghost"}, True, "us-east-1"),
        (None, {}, False, "us-east-1"),
    ],
)
def test_resolve_region(
    home: Path, profile_region: str | None, env: dict[str, str], config: bool, expected: str
) -> None:
    if config:
        write(home / ".aws" / "config", CONFIG)
    profile = Profile("p", None, region=profile_region)
    assert resolve_region(profile, env_for(home, **env)) == expected


def test_resolve_region_config_override(tmp_path: Path) -> None:
    cfg = write(tmp_path / "cfg", "[default]\nregion = sa-east-1\n")
    assert resolve_region(None, {"AWS_CONFIG_FILE": str(cfg)}) == "sa-east-1"


def test_resolve_region_broken_config(home: Path) -> None:
    write(home / ".aws" / "config", f"{SECRET}\n")
    with pytest.raises(ConfigError) as info:
        resolve_region(None, env_for(home))
    assert str(home / ".aws" / "config") in str(info.value)
    assert_no_secret(info.value)


def test_resolve_region_reads_os_environ_at_call_time(
    monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AWS_REGION", "call-time-1")
    assert resolve_region(None) == "call-time-1"
    monkeypatch.setenv("AWS_REGION", "call-time-2")
    assert resolve_region(None) == "call-time-2"


@pytest.mark.parametrize(
    ("endpoint", "env", "expected"),
    [
        ("https://prof", {"AWS_ENDPOINT_URL_S3": "https://s3env"}, "https://prof"),
        (
            None,
            {"AWS_ENDPOINT_URL_S3": "https://s3env", "AWS_ENDPOINT_URL": "https://g"},
            "https://s3env",
        ),
        (None, {"AWS_ENDPOINT_URL": "http://global:9000"}, "http://global:9000"),
        (None, {"AWS_ENDPOINT_URL_S3": "", "AWS_ENDPOINT_URL": "http://g"}, "http://g"),
        (None, {}, None),
        (
            None,
            {"AWS_ENDPOINT_URL": "http://g", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"},
            None,
        ),
        (
            "https://prof",
            {"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"},
            "https://prof",
        ),
    ],
)
def test_resolve_endpoint(endpoint: str | None, env: dict[str, str], expected: str | None) -> None:
    assert resolve_endpoint(Profile("p", endpoint), env) == expected
    if endpoint is None:
        assert resolve_endpoint(None, env) == expected


def test_resolve_endpoint_invalid_env() -> None:
    with pytest.raises(ConfigError, match="AWS_ENDPOINT_URL_S3"):
        resolve_endpoint(None, {"AWS_ENDPOINT_URL_S3": "minio:9000"})


def test_no_io_at_import() -> None:
    # Nothing is read at import: with open() disabled the modules still import, and the
    # parsers they use lazily are not imported.
    code = (
        "import builtins, sys\n"
        "def refuse(*a, **k):\n"
        "    raise AssertionError(f'open at import: {a!r}')\n"
        "builtins.open = refuse\n"
        "import pos3lite.profiles, pos3lite.auth.credentials, pos3lite.urls\n"
        "assert 'tomllib' not in sys.modules, 'tomllib'\n"
        "assert 'configparser' not in sys.modules, 'configparser'\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "body",
    [
        "role_arn = arn:aws:iam::123456789012:role/r\nsource_profile = base\n",
        "sso_session = corp\nsso_account_id = 1\n",
        "credential_source = Ec2InstanceMetadata\nrole_arn = arn:aws:iam::1:role/r\n",
    ],
)
def test_profiles_naming_unsupported_identities_are_refused_not_skipped(
    tmp_path: Path, body: str
) -> None:
    from pos3lite.auth.credentials import SharedFilesProvider

    config = tmp_path / "config"
    config.write_text("[profile assumed]\n" + body)
    env = {
        "AWS_PROFILE": "assumed",
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    with pytest.raises(CredentialsError, match="does not support") as info:
        SharedFilesProvider(env).load()
    assert "assumed" in str(info.value)
