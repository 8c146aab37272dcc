"""Endpoint and region from the AWS shared config file (issue 9): ``endpoint_url`` and
``services`` sections as the AWS CLI reads them; credentials a custom endpoint may receive."""

from __future__ import annotations

from pathlib import Path

import pytest

from pos3lite.auth.credentials import provider_for
from pos3lite.config.aws import is_aws_endpoint, resolve_endpoint, resolve_region
from pos3lite.errors import ConfigError

SERVICES = """\
[profile dev]
services = local-s3
region = eu-central-1

[services local-s3]
s3 =
  endpoint_url = http://127.0.0.1:9000
  addressing_style = path
"""


def env_with_config(tmp_path: Path, text: str, **extra: str) -> dict[str, str]:
    path = tmp_path / "config"
    path.write_text(text, encoding="utf-8")
    return {"HOME": str(tmp_path), "AWS_CONFIG_FILE": str(path), **extra}


def test_endpoint_url_of_the_profile_section(tmp_path: Path) -> None:
    env = env_with_config(tmp_path, "[default]\nendpoint_url = https://minio.example:9000\n")
    assert resolve_endpoint(None, env) == "https://minio.example:9000"


def test_services_section_names_the_s3_endpoint(tmp_path: Path) -> None:
    env = env_with_config(tmp_path, SERVICES, AWS_PROFILE="dev")
    assert resolve_endpoint(None, env) == "http://127.0.0.1:9000"
    assert resolve_region(None, env) == "eu-central-1"


def test_services_endpoint_wins_over_the_profiles_own(tmp_path: Path) -> None:
    text = SERVICES.replace("region = eu-central-1", "endpoint_url = http://other:1")
    env = env_with_config(tmp_path, text, AWS_PROFILE="dev")
    assert resolve_endpoint(None, env) == "http://127.0.0.1:9000"


def test_environment_wins_and_ignore_switches_it_off(tmp_path: Path) -> None:
    env = env_with_config(tmp_path, SERVICES, AWS_PROFILE="dev", AWS_ENDPOINT_URL="http://env:1")
    assert resolve_endpoint(None, env) == "http://env:1"
    env = env_with_config(
        tmp_path, SERVICES, AWS_PROFILE="dev", AWS_IGNORE_CONFIGURED_ENDPOINT_URLS="true"
    )
    assert resolve_endpoint(None, env) is None
    text = SERVICES.replace(
        "services = local-s3", "services = local-s3\nignore_configured_endpoint_urls = true"
    )
    assert resolve_endpoint(None, env_with_config(tmp_path, text, AWS_PROFILE="dev")) is None


def test_a_bad_endpoint_url_in_the_config_file_is_a_config_error(tmp_path: Path) -> None:
    env = env_with_config(tmp_path, "[default]\nendpoint_url = minio:9000\n")
    with pytest.raises(ConfigError, match=r"minio:9000"):
        resolve_endpoint(None, env)


@pytest.mark.parametrize(
    ("endpoint", "aws"),
    [
        (None, True),
        ("https://s3.eu-west-1.amazonaws.com", True),
        ("https://bucket.s3.cn-north-1.amazonaws.com.cn", True),
        ("http://127.0.0.1:9000", False),
        ("https://amazonaws.com.evil.example", False),
    ],
)
def test_is_aws_endpoint(endpoint: str | None, aws: bool) -> None:
    assert is_aws_endpoint(endpoint) is aws


def test_an_endpoint_from_the_config_file_gets_no_instance_credentials(tmp_path: Path) -> None:
    env = env_with_config(tmp_path, SERVICES, AWS_PROFILE="dev")
    chain = provider_for(None, env)
    assert chain is not None
    assert chain.provider_names == ["environment", "shared-credentials-file"]


def test_profile_options_from_profiles_toml(tmp_path: Path) -> None:
    from pos3lite import profiles

    toml = tmp_path / "profiles.toml"
    toml.write_text(
        '[profiles.m]\nendpoint = "http://127.0.0.1:9000"\nuse_ambient_credentials = true\n'
        'verify_etag = "off"\nfolder_markers = false\n'
        '[profiles.d]\nendpoint = "http://127.0.0.1:9000"\n',
        encoding="utf-8",
    )
    got = profiles._read_registry(toml)
    assert (got["m"].use_ambient_credentials, got["m"].verify_etag, got["m"].folder_markers) == (
        True,
        "off",
        False,
    )
    assert (got["d"].use_ambient_credentials, got["d"].verify_etag, got["d"].folder_markers) == (
        False,
        "auto",
        True,
    )


@pytest.mark.parametrize(
    "line",
    ['use_ambient_credentials = "yes"', 'verify_etag = "maybe"', "folder_markers = 1"],
)
def test_bad_profile_options_are_profile_errors(tmp_path: Path, line: str) -> None:
    from pos3lite import profiles
    from pos3lite.errors import ProfileError

    toml = tmp_path / "profiles.toml"
    toml.write_text(f'[profiles.m]\nendpoint = "http://h:1"\n{line}\n', encoding="utf-8")
    with pytest.raises(ProfileError, match=line.split(" ")[0]):
        profiles._read_registry(toml)
