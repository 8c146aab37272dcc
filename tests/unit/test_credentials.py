"""Tests for pos3lite.auth.credentials: providers, the chain, region and endpoint."""

from __future__ import annotations

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
credential_process = /bin/true
"""


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        (None, Credentials("AKDEFAULT", SECRET)),
        ("default", Credentials("AKDEFAULT", SECRET)),
        ("work", Credentials("AKWORK", SECRET, TOKEN)),
        ("cfgkeys", Credentials("AKCONFIG", SECRET)),  # from "[profile cfgkeys]" in config
        ("roleonly", None),  # no static keys: left for later providers
    ],
)
def test_shared_files(home: Path, profile: str | None, expected: Credentials | None) -> None:
    write(home / ".aws" / "credentials", CREDS)
    write(home / ".aws" / "config", CONFIG)
    env = env_for(home)
    if profile is not None:
        env["AWS_PROFILE"] = profile
    provider = SharedFilesProvider(env)
    assert provider.name == "shared-credentials-file"
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
    assert default_chain({}).provider_names == ["environment", "shared-credentials-file"]
    with pytest.raises(CredentialsError, match="environment, shared-credentials-file"):
        default_chain({}).resolve()
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


def test_chain_refreshes_within_window() -> None:
    clock = Clock(T0)
    first = Credentials("AK1", SECRET, TOKEN, expiration=T0 + timedelta(minutes=30))
    second = Credentials("AK2", SECRET, TOKEN, expiration=T0 + timedelta(hours=2))
    provider = FakeProvider("imds", first)
    chain = CredentialChain([provider], clock=clock, refresh_window=timedelta(minutes=5))
    assert chain.resolve() is first
    provider.result = second
    clock.now = T0 + timedelta(minutes=24)  # 6 minutes left: still fine
    assert chain.resolve() is first
    clock.now = T0 + timedelta(minutes=26)  # 4 minutes left: inside the window
    assert chain.resolve() is second
    assert provider.calls == 2


def test_chain_keeps_unexpired_credentials_if_refresh_fails() -> None:
    clock = Clock(T0)
    first = Credentials("AK1", SECRET, expiration=T0 + timedelta(minutes=10))
    provider = FakeProvider("imds", first)
    chain = CredentialChain([provider], clock=clock)
    chain.resolve()
    provider.result = CredentialsError("imds: down")
    clock.now = T0 + timedelta(minutes=7)  # in the window but not expired
    assert chain.resolve() is first
    clock.now = T0 + timedelta(minutes=11)  # expired: the failure surfaces
    with pytest.raises(CredentialsError, match="imds: down"):
        chain.resolve()


def test_chain_naive_expiration_taken_as_utc() -> None:
    clock = Clock(T0)
    naive = Credentials("AK1", SECRET, expiration=datetime(2030, 1, 1, 0, 1))
    provider = FakeProvider("p", naive)
    chain = CredentialChain([provider], clock=clock)
    chain.resolve()
    chain.resolve()
    assert provider.calls == 2  # within 5 minutes of expiry: always refreshed


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
    assert chain.provider_names == ["environment", "shared-credentials-file"]
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


@pytest.mark.parametrize("profile", [None, Profile("p", "https://e")])
def test_provider_for_ambient(home: Path, profile: Profile | None) -> None:
    env = env_for(home, AWS_ACCESS_KEY_ID="AKENV", AWS_SECRET_ACCESS_KEY=SECRET)
    chain = provider_for(profile, env)
    assert chain is not None
    assert chain.provider_names == ["environment", "shared-credentials-file"]
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
