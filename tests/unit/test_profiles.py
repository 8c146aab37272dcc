"""Tests for pos3lite.profiles: Profile, register_profile, the profiles.toml registry."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pos3lite import profiles
from pos3lite.errors import ConfigError, ProfileError
from pos3lite.profiles import (
    Profile,
    effective_profile,
    load_registry,
    profiles_file,
    register_profile,
    resolve_profile,
)

SECRET = "s3cr3t%Value/+xyz"
TOKEN = "t0k3n-Value-abc"

ENV_VARS = ("POS3LITE_PROFILES_FILE", "POS3_PROFILES_FILE", "XDG_CONFIG_HOME")


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Reset both registries and point HOME at an empty folder, with no overrides."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    profiles._reset_for_tests()
    yield
    profiles._reset_for_tests()


def write_registry(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A registry path selected by $POS3LITE_PROFILES_FILE (not yet written)."""
    path = tmp_path / "conf" / "profiles.toml"
    monkeypatch.setenv("POS3LITE_PROFILES_FILE", str(path))
    return path


# --------------------------------------------------------------------------------------------
# Profile
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"local_name": "_"}, "reserved"),
        ({"local_name": ""}, "Invalid local_name ''"),
        ({"local_name": "a.b"}, "'a.b'"),
        ({"local_name": "a/b"}, "'a/b'"),
        ({"local_name": "../x"}, "'../x'"),
        ({"local_name": "a b"}, "'a b'"),
        ({"endpoint": "minio:9000"}, "'minio:9000'"),
        ({"endpoint": "ftp://host"}, "'ftp://host'"),
        ({"endpoint": ""}, "must start with http"),
        ({"addressing_style": "Path"}, "'Path'"),
        ({"addressing_style": "dns"}, "'dns'"),
        ({"public": "false"}, "'false'"),
        ({"region": 5}, "region 5"),
        ({"access_key": "AKIA"}, "set together"),
        ({"secret_key": SECRET}, "set together"),
    ],
)
def test_profile_validation(kwargs: dict[str, Any], fragment: str) -> None:
    fields: dict[str, Any] = {"local_name": "p", "endpoint": "https://s3.example.com"}
    fields.update(kwargs)
    with pytest.raises(ProfileError) as info:
        Profile(**fields)
    assert fragment in str(info.value)
    assert SECRET not in str(info.value)
    assert isinstance(info.value, ValueError)  # pos3 raised ValueError


@pytest.mark.parametrize(
    "kwargs",
    [
        {"local_name": "naïve"},  # str.isalnum() is Unicode-aware, as in pos3
        {"local_name": "a-b_C9"},
        {"endpoint": None},
        {"endpoint": "HTTP://127.0.0.1:9000"},
        {"endpoint": "http://[::1]:9000"},
        {"public": True},
        {"addressing_style": "path"},
        {"addressing_style": "virtual"},
        {"access_key": "AKIA", "secret_key": SECRET, "session_token": TOKEN},
    ],
)
def test_profile_valid(kwargs: dict[str, Any]) -> None:
    fields: dict[str, Any] = {"local_name": "p", "endpoint": "https://s3.example.com"}
    fields.update(kwargs)
    Profile(**fields)


def test_profile_repr_hides_secrets_and_is_hashable() -> None:
    p = Profile("p", "https://e", access_key="AKIAEXAMPLE", secret_key=SECRET, session_token=TOKEN)
    text = repr(p) + str(p)
    assert SECRET not in text
    assert TOKEN not in text
    assert "AKIAEXAMPLE" not in text
    same = Profile(
        "p", "https://e", access_key="AKIAEXAMPLE", secret_key=SECRET, session_token=TOKEN
    )
    assert {p: 1}[same] == 1
    assert p != Profile("p", "https://e")
    assert Profile("p", "https://e").addressing_style == "auto"
    with pytest.raises(AttributeError):
        p.region = "x"  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# register_profile
# --------------------------------------------------------------------------------------------


def test_register_and_resolve() -> None:
    register_profile("minio", "http://127.0.0.1:9000", region="us-east-1")
    got = resolve_profile("minio")
    assert got == Profile("minio", "http://127.0.0.1:9000", region="us-east-1")
    assert profiles._PROFILES["minio"] is got


def test_register_local_name_and_addressing_style() -> None:
    register_profile("acme", "https://e", public=True, local_name="acme2", addressing_style="path")
    assert resolve_profile("acme") == Profile(
        "acme2", "https://e", public=True, addressing_style="path"
    )


def test_register_equal_is_noop_and_different_raises() -> None:
    register_profile("n", "https://e")
    register_profile("n", "https://e")
    with pytest.raises(ProfileError, match="Profile 'n' already registered with different config"):
        register_profile("n", "https://other")
    with pytest.raises(ProfileError):
        register_profile("n", "https://e", addressing_style="path")
    assert resolve_profile("n") == Profile("n", "https://e")


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("", "https://e"), {}),
        (("_", "https://e"), {}),
        (("a.b", "https://e"), {}),
        (("ok", "https://e"), {"local_name": "_"}),
        (("ok", "s3.amazonaws.com"), {}),
        (("ok", "https://e"), {"addressing_style": "bogus"}),
    ],
)
def test_register_invalid(args: tuple[str, str], kwargs: dict[str, Any]) -> None:
    with pytest.raises(ProfileError):
        register_profile(*args, **kwargs)
    assert profiles._PROFILES == {}


def test_code_registration_wins_over_file_in_either_order(registry: Path) -> None:
    write_registry(registry, '[profiles.x]\nendpoint = "https://file"\n')
    assert resolve_profile("x") == Profile("x", "https://file")
    register_profile("x", "https://code")
    assert resolve_profile("x") == Profile("x", "https://code")
    profiles._reset_for_tests()
    register_profile("x", "https://code")
    load_registry()
    assert resolve_profile("x") == Profile("x", "https://code")


# --------------------------------------------------------------------------------------------
# resolve_profile / effective_profile
# --------------------------------------------------------------------------------------------


def test_resolve_passthrough_values() -> None:
    p = Profile("p", None)
    assert resolve_profile(None) is None
    assert resolve_profile(p) is p
    with pytest.raises(TypeError):
        resolve_profile(3)  # type: ignore[arg-type]


def test_unknown_profile_names_registry_path(registry: Path) -> None:
    with pytest.raises(ProfileError) as info:
        resolve_profile("nope")
    assert str(info.value) == (
        "Unknown profile: 'nope'. Register with pos3lite.register_profile() "
        f"or define it in {registry}."
    )


def test_unknown_profile_without_home(monkeypatch: pytest.MonkeyPatch) -> None:
    # Arbitrary-uid containers: no HOME, no passwd entry. Path.home() would raise RuntimeError.
    import pwd

    monkeypatch.delenv("HOME")

    def no_entry(uid: int) -> Any:
        raise KeyError(uid)

    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    assert profiles_file() is None
    with pytest.raises(ProfileError, match="Unknown profile: 'nope'"):
        resolve_profile("nope")


PW = "pw"


@pytest.mark.parametrize(
    ("url_profile", "arg", "default", "expected"),
    [
        (None, None, None, None),
        (None, None, "d", "d"),
        (None, "a", "d", "a"),
        (None, "a", None, "a"),
        ("u", "a", "d", "u"),
        ("u", None, None, "u"),
        ("u", None, "d", "u"),
        (None, PW, "d", PW),  # a Profile object as the argument
    ],
)
def test_effective_profile_precedence(
    url_profile: str | None, arg: str | None, default: str | None, expected: str | None
) -> None:
    objs = {n: Profile(n, f"https://{n}") for n in ("u", "a", "d", PW)}
    for name in ("u", "a"):
        register_profile(name, f"https://{name}")
    arg_value: str | Profile | None = objs[PW] if arg == PW else arg
    got = effective_profile(url_profile, arg_value, objs[default] if default else None)
    assert got == (objs[expected] if expected else None)


def test_effective_profile_unknown_url_profile_raises() -> None:
    with pytest.raises(ProfileError, match="'ghost'"):
        effective_profile("ghost", None, None)


# --------------------------------------------------------------------------------------------
# Registry location
# --------------------------------------------------------------------------------------------


def test_location_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = Path(os.environ["HOME"])
    xdg = tmp_path / "xdg"
    candidates = [
        xdg / "pos3lite" / "profiles.toml",
        home / ".config" / "pos3lite" / "profiles.toml",
        xdg / "pos3" / "profiles.toml",
        home / ".config" / "pos3" / "profiles.toml",
    ]
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    # Nothing exists: pos3lite's preferred default.
    assert profiles_file() == candidates[0]
    for path in candidates:
        write_registry(path, "")
    for expected in candidates:
        assert profiles_file() == expected
        expected.unlink()
    # Environment overrides win even when the file does not exist; pos3lite's first.
    monkeypatch.setenv("POS3_PROFILES_FILE", str(tmp_path / "pos3.toml"))
    assert profiles_file() == tmp_path / "pos3.toml"
    monkeypatch.setenv("POS3LITE_PROFILES_FILE", "~/lite.toml")
    assert profiles_file() == home / "lite.toml"


def test_location_ignores_relative_xdg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/dir")
    expected = Path(os.environ["HOME"]) / ".config" / "pos3lite" / "profiles.toml"
    assert profiles_file() == expected


def test_location_explicit_environ(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "POS3_PROFILES_FILE": "/x/p.toml"}
    assert profiles_file(env) == Path("/x/p.toml")


def test_loads_from_pos3_location(monkeypatch: pytest.MonkeyPatch) -> None:
    path = Path(os.environ["HOME"]) / ".config" / "pos3" / "profiles.toml"
    write_registry(path, '[profiles.legacy]\nendpoint = "https://legacy"\n')
    assert resolve_profile("legacy") == Profile("legacy", "https://legacy")


# --------------------------------------------------------------------------------------------
# Registry loading
# --------------------------------------------------------------------------------------------

FULL = """
[profiles.full]
endpoint = "http://127.0.0.1:9000"
region = "eu-west-1"
public = false
local_name = "full-cache"
addressing_style = "path"

[profiles.anon]
endpoint = "https://open.example.com"
public = true
"""


def test_full_table(registry: Path) -> None:
    write_registry(registry, FULL)
    assert resolve_profile("full") == Profile(
        "full-cache", "http://127.0.0.1:9000", region="eu-west-1", addressing_style="path"
    )
    assert resolve_profile("anon") == Profile("anon", "https://open.example.com", public=True)


def test_missing_file_is_empty_registry(registry: Path) -> None:
    load_registry()
    assert profiles._REGISTRY_LOADED
    assert profiles._REGISTRY_PROFILES == {}


def test_lazy_and_once_per_process(registry: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    real = profiles._read_registry

    def counting(path: Path) -> dict[str, Profile]:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(profiles, "_read_registry", counting)
    write_registry(registry, '[profiles.a]\nendpoint = "https://a"\n')
    register_profile("code", "https://code")
    resolve_profile("code")
    assert calls == []  # known code names never load the file
    resolve_profile("a")
    resolve_profile("a")
    with pytest.raises(ProfileError):
        resolve_profile("b")
    assert calls == [registry]
    # The file changes; without force nothing is reloaded.
    write_registry(registry, '[profiles.b]\nendpoint = "https://b"\n')
    with pytest.raises(ProfileError):
        resolve_profile("b")
    assert len(calls) == 1


def test_force_reload_replaces_entries(registry: Path) -> None:
    write_registry(registry, '[profiles.a]\nendpoint = "https://a"\n')
    assert resolve_profile("a") == Profile("a", "https://a")
    write_registry(registry, '[profiles.b]\nendpoint = "https://b"\n')
    load_registry(force=True)
    assert resolve_profile("b") == Profile("b", "https://b")
    with pytest.raises(ProfileError, match="Unknown profile: 'a'"):
        resolve_profile("a")


def test_explicit_path_and_pos3_alias(tmp_path: Path) -> None:
    path = write_registry(tmp_path / "other.toml", '[profiles.o]\nendpoint = "https://o"\n')
    profiles._load_profile_registry(path)
    assert resolve_profile("o") == Profile("o", "https://o")


def test_all_or_nothing(registry: Path) -> None:
    write_registry(registry, '[profiles.good]\nendpoint = "https://good"\n')
    load_registry()
    write_registry(
        registry,
        '[profiles.good2]\nendpoint = "https://good2"\n[profiles.bad]\nreigon = "x"\n'
        'endpoint = "https://bad"\n',
    )
    with pytest.raises(ProfileError):
        load_registry(force=True)
    # The failed reload committed nothing: the previous snapshot stays in place, as in pos3.
    assert "good2" not in profiles._REGISTRY_PROFILES
    assert resolve_profile("good") == Profile("good", "https://good")
    # A fixed file is picked up by the next forced reload.
    write_registry(registry, '[profiles.good2]\nendpoint = "https://good2"\n')
    load_registry(force=True)
    assert resolve_profile("good2") == Profile("good2", "https://good2")
    assert "good" not in profiles._REGISTRY_PROFILES


def test_failed_first_load_retries_on_next_lookup(registry: Path) -> None:
    write_registry(registry, "[profiles.x\n")
    with pytest.raises(ProfileError):
        resolve_profile("x")
    write_registry(registry, '[profiles.x]\nendpoint = "https://x"\n')
    assert resolve_profile("x") == Profile("x", "https://x")


def test_concurrent_lookups_load_once(registry: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_registry(registry, '[profiles.a]\nendpoint = "https://a"\n')
    calls: list[Path] = []
    real = profiles._read_registry
    gate = threading.Barrier(8)

    def counting(path: Path) -> dict[str, Profile]:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(profiles, "_read_registry", counting)
    results: list[Profile | None] = []

    def worker() -> None:
        gate.wait()
        results.append(resolve_profile("a"))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert results == [Profile("a", "https://a")] * 8


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ('[profiles.p]\nregion = "x"\n', ["'p'", "missing required 'endpoint'"]),
        ('[profiles.p]\nendpoint = ""\n', ["'p'", "missing required 'endpoint'"]),
        ("[profiles.p]\nendpoint = 5\n", ["'p'", "'endpoint' must be a string"]),
        ('[profiles.p]\nendpoint = "s3.example.com"\n', ["'p'", "http://"]),
        (
            '[profiles.p]\nendpoint = "https://e"\npublic = "false"\n',
            ["'p'", "'public' must be a TOML boolean", "'false'"],
        ),
        ('[profiles.p]\nendpoint = "https://e"\npublic = 0\n', ["'p'", "got 0"]),
        ('[profiles.p]\nendpoint = "https://e"\nreigon = "x"\n', ["'p'", "'reigon'"]),
        (
            '[profiles.p]\nendpoint = "https://e"\naccess_key = "AK"\n',
            ["'p'", "'access_key'"],
        ),
        ('[profiles.p]\nendpoint = "https://e"\nregion = 1\n', ["'p'", "'region'"]),
        ('[profiles.p]\nendpoint = "https://e"\nlocal_name = "a.b"\n', ["'p'", "'a.b'"]),
        ('[profiles.p]\nendpoint = "https://e"\nlocal_name = "_"\n', ["'p'", "reserved"]),
        ('[profiles.p]\nendpoint = "https://e"\naddressing_style = "x"\n', ["'p'", "'x'"]),
        ("[profiles]\np = 3\n", ["'p'", "must be a table"]),
        ('profiles = "x"\n', ["must be a table"]),
        ('[profile.p]\nendpoint = "https://e"\n', ["'profile'", "top-level"]),
        ("[profiles.p\n", ["Invalid TOML"]),
        ("x = = 1\n", ["Invalid TOML"]),
        (b"\xff\xfe", ["UTF-8"]),
    ],
)
def test_invalid_registry(registry: Path, text: str | bytes, fragments: list[str]) -> None:
    registry.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        registry.write_bytes(text)
    else:
        registry.write_text(text, encoding="utf-8")
    with pytest.raises(ProfileError) as info:
        resolve_profile("p")
    message = str(info.value)
    assert str(registry) in message
    for fragment in fragments:
        assert fragment in message
    assert isinstance(info.value, ConfigError)


def test_unreadable_registry_names_file(registry: Path) -> None:
    registry.mkdir(parents=True)  # a directory: open() fails with IsADirectoryError
    with pytest.raises(ProfileError, match="Cannot read profiles file") as info:
        resolve_profile("p")
    assert str(registry) in str(info.value)


# --------------------------------------------------------------------------------------------
# credentials_file
# --------------------------------------------------------------------------------------------


def creds_text(section: str = "p", secret: str = SECRET, token: str | None = TOKEN) -> str:
    lines = [f"[{section}]", "aws_access_key_id = AKIAEXAMPLE", f"aws_secret_access_key = {secret}"]
    if token:
        lines.append(f"aws_session_token = {token}")
    return "\n".join(lines) + "\n"


def test_credentials_file_relative_to_registry(
    registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_registry(registry, '[profiles.p]\nendpoint = "https://e"\ncredentials_file = "p.creds"\n')
    (registry.parent / "p.creds").write_text(creds_text(), encoding="utf-8")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    p = resolve_profile("p")
    assert p is not None
    # "%" in the secret is literal: interpolation is off (pos3 raised InterpolationSyntaxError).
    assert (p.access_key, p.secret_key, p.session_token) == ("AKIAEXAMPLE", SECRET, TOKEN)
    assert SECRET not in repr(p)


def test_credentials_file_home_expansion_and_default_section(registry: Path) -> None:
    home = Path(os.environ["HOME"])
    (home / "c.ini").write_text(creds_text("default", token=None), encoding="utf-8")
    write_registry(registry, '[profiles.p]\nendpoint = "https://e"\ncredentials_file = "~/c.ini"\n')
    p = resolve_profile("p")
    assert p is not None
    assert (p.access_key, p.secret_key, p.session_token) == ("AKIAEXAMPLE", SECRET, None)


def test_credentials_file_prefers_named_section(registry: Path) -> None:
    text = creds_text("default", secret="default-secret") + creds_text("p", token=None)
    (registry.parent).mkdir(parents=True)
    (registry.parent / "c.ini").write_text(text, encoding="utf-8")
    write_registry(registry, '[profiles.p]\nendpoint = "https://e"\ncredentials_file = "c.ini"\n')
    p = resolve_profile("p")
    assert p is not None
    assert p.secret_key == SECRET


@pytest.mark.parametrize(
    ("creds", "fragments"),
    [
        (None, ["not found or unreadable"]),
        ("DIR", ["cannot read"]),
        (creds_text("other") + creds_text("another"), ["[p] or [default]", "'other'", "another"]),
        ("[p]\naws_access_key_id = AK\n", ["must define both"]),
        (f"[p]\naws_secret_access_key = {SECRET}\n", ["must define both"]),
        (f"[p]\naws_access_key_id = AK\n{SECRET}\n", ["cannot parse", "ParsingError", "line"]),
        (f"{SECRET}\n[p]\n", ["cannot parse", "MissingSectionHeaderError"]),
        (creds_text() + creds_text(), ["cannot parse", "DuplicateSectionError"]),
        (
            f"[p]\naws_secret_access_key = {SECRET}\naws_secret_access_key = {SECRET}\n",
            ["DuplicateOptionError"],
        ),
    ],
)
def test_credentials_file_errors(registry: Path, creds: str | None, fragments: list[str]) -> None:
    write_registry(
        registry,
        '[profiles.ok]\nendpoint = "https://ok"\n'
        '[profiles.p]\nendpoint = "https://e"\ncredentials_file = "p.creds"\n',
    )
    creds_path = registry.parent / "p.creds"
    if creds == "DIR":
        creds_path.mkdir()
    elif creds is not None:
        creds_path.write_text(creds, encoding="utf-8")
    with pytest.raises(ProfileError) as info:
        resolve_profile("ok")  # all-or-nothing: one broken entry fails the whole load
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message
    assert str(creds_path) in message
    assert SECRET not in message
    assert SECRET not in repr(info.value)
    assert info.value.__cause__ is None
    assert not profiles._REGISTRY_LOADED


def test_no_error_message_contains_secrets(registry: Path) -> None:
    """Every failure path that has a secret at hand keeps it out of the message."""
    messages: list[str] = []
    attempts: list[Any] = [
        lambda: Profile("p", "https://e", secret_key=SECRET),
        lambda: Profile("p", "https://e", secret_key=SECRET, session_token=TOKEN),
        lambda: Profile("_", "https://e", access_key="AK", secret_key=SECRET),
        lambda: Profile("p", "bad", access_key="AK", secret_key=SECRET, session_token=TOKEN),
    ]
    for attempt in attempts:
        with pytest.raises(ProfileError) as info:
            attempt()
        messages.append(str(info.value) + repr(info.value))
    for message in messages:
        assert SECRET not in message
        assert TOKEN not in message
