"""The ``pos3lite`` command line against a real server.

Most tests run the installed ``pos3lite`` console script in a subprocess (the real entry
point: exit status, stdout/stderr separation, no traceback); a few call
:func:`pos3lite.cli.main` in-process.
The environment is isolated: AWS_* points at the test server, the AWS config files and the
profiles file point at paths that do not exist, the cache root is under ``tmp_path``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import pos3lite
from pos3lite.cli import main
from tests.integration.conftest import get, keys, put, tree

pytestmark = pytest.mark.integration


def cli_env(server: Any, tmp_path: Path, **overrides: str | None) -> dict[str, str]:
    (tmp_path / "no-profiles.toml").touch()  # an empty registry (a missing one is an error)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "POS3LITE_", "POS3_")) and k != "XDG_CONFIG_HOME"
    }
    env.update(
        AWS_ACCESS_KEY_ID=server.access_key,
        AWS_SECRET_ACCESS_KEY=server.secret_key,
        AWS_ENDPOINT_URL_S3=server.endpoint,
        AWS_REGION=server.region,
        AWS_CONFIG_FILE=str(tmp_path / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-aws-credentials"),
        POS3LITE_CACHE_ROOT=str(tmp_path / "cache"),
        POS3LITE_PROFILES_FILE=str(tmp_path / "no-profiles.toml"),
        AWS_EC2_METADATA_DISABLED="true",  # hermetic: never probe an instance metadata service
        PYTHONDONTWRITEBYTECODE="1",
    )
    for k, v in overrides.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def console_script() -> str:
    """The installed ``pos3lite`` entry point of this interpreter's environment."""
    beside = Path(sys.executable).parent / "pos3lite"
    found = str(beside) if beside.is_file() else shutil.which("pos3lite")
    assert found, "the pos3lite console script is not installed (pip install -e .)"
    return found


def run(
    args: list[str], env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [console_script(), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_failed(proc: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """Exit ``code``, empty stdout, no traceback; returns stderr."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    return proc.stderr


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture
def env(s3_server: Any, tmp_path: Path) -> dict[str, str]:
    return cli_env(s3_server, tmp_path)


@pytest.fixture
def data(bucket: str, oracle: Any) -> str:
    put(oracle, bucket, "d/a.txt", b"alpha")
    put(oracle, bucket, "d/sub/b.txt", b"bravo")
    put(oracle, bucket, "d/logs/x.log", b"log")
    put(oracle, bucket, "d/c.tmp", b"tmp")
    return bucket


# ----------------------------------------------------------------------------- basics


def test_version(env: dict[str, str], tmp_path: Path) -> None:
    proc = run(["--version"], env)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"pos3lite {pos3lite.__version__}"


def test_ls_prints_one_url_per_line(data: str, env: dict[str, str]) -> None:
    b = data
    proc = run(["ls", f"s3://{b}/d"], env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f"s3://{b}/d/a.txt",
        f"s3://{b}/d/c.tmp",
        f"s3://{b}/d/logs/",
        f"s3://{b}/d/sub/",
    ]
    rec = run(["ls", "-r", f"s3://{b}/d/"], env)
    assert rec.returncode == 0, rec.stderr
    assert rec.stdout.splitlines() == sorted(
        f"s3://{b}/{k}" for k in ["d/a.txt", "d/sub/b.txt", "d/logs/x.log", "d/c.tmp"]
    )


def test_ls_missing_prefix_fails_with_one_line(data: str, env: dict[str, str]) -> None:
    # aws s3 ls exits 1 when nothing matches; an empty answer must not look like success.
    for prefix in (f"s3://{data}/missing/", f"s3://{data}/missing"):
        proc = run(["ls", prefix], env)
        line = one_line(assert_failed(proc))
        assert f"'s3://{data}/missing/'" in line


def test_ls_in_process(data: str, s3_env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls", f"s3://{data}/d/sub"]) == 0
    out, _err = capsys.readouterr()
    assert out.splitlines() == [f"s3://{data}/d/sub/b.txt"]


# ----------------------------------------------------------------------------- download


def test_download_prints_the_local_path(data: str, env: dict[str, str], tmp_path: Path) -> None:
    b = data
    proc = run(["download", f"s3://{b}/d"], env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1
    expected = (tmp_path / "cache" / "_" / b / "d").resolve()
    assert lines[0] == str(expected)
    assert tree(expected) == {
        "a.txt": b"alpha",
        "sub/b.txt": b"bravo",
        "logs/x.log": b"log",
        "c.tmp": b"tmp",
    }


def test_download_with_local_and_in_process(
    data: str, s3_env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dst = tmp_path / "here"
    code = main(["download", f"s3://{data}/d/a.txt", "--local", str(dst), "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out == f"{dst.resolve()}\n"
    assert dst.read_bytes() == b"alpha"


def test_download_delete_off_by_default(data: str, env: dict[str, str], tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "extra.txt").write_bytes(b"mine")
    proc = run(["download", f"s3://{data}/d", "--local", str(dst)], env)
    assert proc.returncode == 0, proc.stderr
    assert (dst / "extra.txt").read_bytes() == b"mine"
    assert (dst / "a.txt").read_bytes() == b"alpha"
    proc = run(["download", f"s3://{data}/d", "--local", str(dst), "--delete"], env)
    assert proc.returncode == 0, proc.stderr
    assert not (dst / "extra.txt").exists()
    assert (dst / "a.txt").read_bytes() == b"alpha"


def test_download_repeated_exclude(data: str, env: dict[str, str], tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    proc = run(
        [
            "download",
            f"s3://{data}/d",
            "--local",
            str(dst),
            "--exclude",
            "logs",
            "--exclude",
            "*.tmp",
        ],
        env,
    )
    assert proc.returncode == 0, proc.stderr
    assert tree(dst) == {"a.txt": b"alpha", "sub/b.txt": b"bravo"}


def test_download_dry_run_changes_nothing(data: str, env: dict[str, str], tmp_path: Path) -> None:
    b = data
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "extra.txt").write_bytes(b"mine")
    proc = run(["download", f"s3://{b}/d", "--local", str(dst), "-n"], env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert sorted(lines) == sorted(
        f"(dryrun) download: s3://{b}/d/{rel} to {dst / rel}"
        for rel in ["a.txt", "c.tmp", "logs/x.log", "sub/b.txt"]
    )
    assert not any(line.startswith("(dryrun) delete:") for line in lines)
    assert tree(dst) == {"extra.txt": b"mine"}

    proc = run(["download", f"s3://{b}/d", "--local", str(dst), "--dry-run", "--delete"], env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert f"(dryrun) delete: {dst / 'extra.txt'}" in lines
    assert sum(line.startswith("(dryrun) download: ") for line in lines) == 4
    assert tree(dst) == {"extra.txt": b"mine"}
    assert not (tmp_path / "cache").exists()


def test_download_dry_run_into_cache_creates_nothing(
    data: str, env: dict[str, str], tmp_path: Path
) -> None:
    proc = run(["download", f"s3://{data}/d/sub", "--dry-run"], env)
    assert proc.returncode == 0, proc.stderr
    target = (tmp_path / "cache" / "_" / data / "d" / "sub" / "b.txt").resolve()
    assert proc.stdout.splitlines() == [f"(dryrun) download: s3://{data}/d/sub/b.txt to {target}"]
    assert not (tmp_path / "cache").exists()


def test_download_missing_remote_fails(data: str, env: dict[str, str], tmp_path: Path) -> None:
    proc = run(["download", f"s3://{data}/nope", "--local", str(tmp_path / "dst")], env)
    line = one_line(assert_failed(proc))
    assert line.startswith("pos3lite download: ")
    assert f"s3://{data}/nope" in line
    assert not (tmp_path / "dst").exists()


def test_download_missing_bucket_fails(env: dict[str, str], tmp_path: Path) -> None:
    proc = run(["download", "s3://no-such-bucket-pos3lite/x", "--local", str(tmp_path / "d")], env)
    line = one_line(assert_failed(proc))
    assert "NoSuchBucket" in line


def test_wrong_secret_fails_without_leaking(data: str, s3_server: Any, tmp_path: Path) -> None:
    wrong = "definitely/not+the-secret"
    env = cli_env(s3_server, tmp_path, AWS_SECRET_ACCESS_KEY=wrong)
    for args in (["download", f"s3://{data}/d"], ["ls", f"s3://{data}/d/"]):
        proc = run(args, env)
        line = one_line(assert_failed(proc))
        assert "403" in line
        # download starts with a HEAD probe, whose 403 has no body: "Forbidden" (as SDKs say);
        # ls of "d/" (trailing slash: no HEAD) starts with a LIST, whose XML body names the
        # real cause.
        assert any(c in line for c in ("SignatureDoesNotMatch", "AccessDenied", "Forbidden"))
        if args[0] == "ls":
            assert "SignatureDoesNotMatch" in line
        assert wrong not in proc.stderr
        assert s3_server.secret_key not in proc.stderr


def test_download_non_s3_url_fails(env: dict[str, str], tmp_path: Path) -> None:
    proc = run(["download", str(tmp_path / "local")], env)
    line = one_line(assert_failed(proc))
    assert "s3://" in line
    assert line.startswith("pos3lite download:")


# ----------------------------------------------------------------------------- usage errors


def test_no_subcommand_is_usage_error(env: dict[str, str]) -> None:
    proc = run([], env)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "usage: pos3lite" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_flag_reports_subcommand_usage(env: dict[str, str]) -> None:
    proc = run(["download", "s3://bkt/x", "--bogus-flag"], env)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "usage: pos3lite download" in proc.stderr
    assert "unrecognized arguments: --bogus-flag" in proc.stderr


def test_bad_compare_is_usage_error(env: dict[str, str]) -> None:
    proc = run(["download", "s3://bkt/x", "--compare", "sha256"], env)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "--compare" in proc.stderr


def test_dry_run_is_not_an_ls_flag(env: dict[str, str]) -> None:
    proc = run(["ls", "s3://bkt/x", "-n"], env)
    assert proc.returncode == 2
    assert "usage: pos3lite ls" in proc.stderr


def test_usage_error_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["upload", "s3://bkt/x", "--nope"])
    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "usage: pos3lite upload" in err


# ----------------------------------------------------------------------------- upload


def test_upload_one_shot(bucket: str, oracle: Any, env: dict[str, str], tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"A")
    (src / "sub" / "b.bin").write_bytes(b"\x00\x01\x02")
    proc = run(["upload", f"s3://{bucket}/up", "--local", str(src)], env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert keys(oracle, bucket) == ["up/a.txt", "up/sub/b.bin"]
    assert get(oracle, bucket, "up/a.txt") == b"A"
    assert get(oracle, bucket, "up/sub/b.bin") == b"\x00\x01\x02"


def test_upload_from_default_cache_path(
    bucket: str, oracle: Any, env: dict[str, str], tmp_path: Path
) -> None:
    src = tmp_path / "cache" / "_" / bucket / "p"
    src.mkdir(parents=True)
    (src / "x.txt").write_bytes(b"x")
    proc = run(["upload", f"s3://{bucket}/p"], env)
    assert proc.returncode == 0, proc.stderr
    assert get(oracle, bucket, "p/x.txt") == b"x"


def test_upload_missing_source_fails(
    bucket: str, oracle: Any, env: dict[str, str], tmp_path: Path
) -> None:
    proc = run(["upload", f"s3://{bucket}/up", "--local", str(tmp_path / "missing")], env)
    line = one_line(assert_failed(proc))
    assert "does not exist" in line and "missing" in line
    assert not (tmp_path / "missing").exists()
    assert keys(oracle, bucket) == []
    # Without --local: the cache path does not exist and is not created.
    proc = run(["upload", f"s3://{bucket}/up"], env)
    one_line(assert_failed(proc))
    assert not (tmp_path / "cache" / "_" / bucket / "up").exists()


def test_upload_delete_off_by_default(
    bucket: str, oracle: Any, env: dict[str, str], tmp_path: Path
) -> None:
    put(oracle, bucket, "up/remote-only.txt", b"keep me")
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"A")
    proc = run(["upload", f"s3://{bucket}/up", "--local", str(src)], env)
    assert proc.returncode == 0, proc.stderr
    assert keys(oracle, bucket) == ["up/a.txt", "up/remote-only.txt"]
    proc = run(["upload", f"s3://{bucket}/up", "--local", str(src), "--delete"], env)
    assert proc.returncode == 0, proc.stderr
    assert keys(oracle, bucket) == ["up/a.txt"]


def test_upload_repeated_exclude(
    bucket: str, oracle: Any, env: dict[str, str], tmp_path: Path
) -> None:
    put(oracle, bucket, "up/logs/old.log", b"remote log")  # excluded: never deleted either
    src = tmp_path / "src"
    (src / "logs").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"A")
    (src / "b.tmp").write_bytes(b"T")
    (src / "logs" / "new.log").write_bytes(b"L")
    proc = run(
        [
            "upload",
            f"s3://{bucket}/up",
            "--local",
            str(src),
            "--delete",
            "--exclude",
            "logs",
            "--exclude",
            "*.tmp",
        ],
        env,
    )
    assert proc.returncode == 0, proc.stderr
    assert keys(oracle, bucket) == ["up/a.txt", "up/logs/old.log"]


def test_upload_dry_run(bucket: str, oracle: Any, env: dict[str, str], tmp_path: Path) -> None:
    put(oracle, bucket, "up/gone.txt", b"g")
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"A")
    proc = run(["upload", f"s3://{bucket}/up", "--local", str(src), "-n", "--delete"], env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f"(dryrun) upload: {src / 'a.txt'} to s3://{bucket}/up/a.txt",
        f"(dryrun) delete: s3://{bucket}/up/gone.txt",
    ]
    assert keys(oracle, bucket) == ["up/gone.txt"]
    proc = run(["upload", f"s3://{bucket}/up", "--local", str(src), "-n"], env)
    assert proc.stdout.splitlines() == [
        f"(dryrun) upload: {src / 'a.txt'} to s3://{bucket}/up/a.txt"
    ]


def test_upload_non_s3_url_fails(env: dict[str, str], tmp_path: Path) -> None:
    proc = run(["upload", str(tmp_path / "somewhere"), "--local", str(tmp_path)], env)
    one_line(assert_failed(proc))
    assert not (tmp_path / "somewhere").exists()


# ----------------------------------------------------------------------------- sync


def test_sync_prints_local_path_and_uploads_back(
    data: str, oracle: Any, env: dict[str, str], tmp_path: Path
) -> None:
    b = data
    dst = tmp_path / "work"
    proc = run(["sync", f"s3://{b}/d", "--local", str(dst)], env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [str(dst.resolve())]
    assert (dst / "sub" / "b.txt").read_bytes() == b"bravo"
    (dst / "new.txt").write_bytes(b"new")
    proc = run(["sync", f"s3://{b}/d", "--local", str(dst)], env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [str(dst.resolve())]
    assert get(oracle, b, "d/new.txt") == b"new"


def test_sync_of_missing_remote_creates_folder(
    bucket: str, env: dict[str, str], tmp_path: Path
) -> None:
    proc = run(["sync", f"s3://{bucket}/fresh"], env)
    assert proc.returncode == 0, proc.stderr
    expected = (tmp_path / "cache" / "_" / bucket / "fresh").resolve()
    assert proc.stdout.splitlines() == [str(expected)]
    assert expected.is_dir()


# ----------------------------------------------------------------------------- profiles


def _write_profiles(tmp_path: Path, server: Any) -> Path:
    creds = tmp_path / "seaweed.creds"
    creds.write_text(
        "[seaweed]\n"
        f"aws_access_key_id = {server.access_key}\n"
        f"aws_secret_access_key = {server.secret_key}\n"
    )
    toml = tmp_path / "profiles.toml"
    toml.write_text(
        "[profiles.seaweed]\n"
        f'endpoint = "{server.endpoint}"\n'
        f'region = "{server.region}"\n'
        'local_name = "sw"\n'
        'credentials_file = "seaweed.creds"\n'
    )
    return toml


def test_profile_flag_uses_profiles_file(data: str, s3_server: Any, tmp_path: Path) -> None:
    toml = _write_profiles(tmp_path, s3_server)
    # No ambient credentials or endpoint: only the profile can make this work.
    env = cli_env(
        s3_server,
        tmp_path,
        AWS_ACCESS_KEY_ID=None,
        AWS_SECRET_ACCESS_KEY=None,
        AWS_ENDPOINT_URL_S3=None,
        POS3LITE_PROFILES_FILE=str(toml),
    )
    proc = run(["ls", f"s3://{data}/d/sub", "--profile", "seaweed"], env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"s3://{data}/d/sub/b.txt"]

    proc = run(["download", f"s3://{data}/d/sub", "--profile", "seaweed"], env)
    assert proc.returncode == 0, proc.stderr
    expected = (tmp_path / "cache" / "sw" / data / "d" / "sub").resolve()
    assert proc.stdout.splitlines() == [str(expected)]
    assert tree(expected) == {"b.txt": b"bravo"}

    # The URL's profile@ selects it too, and output URLs keep it, so they can be fed back.
    proc = run(["ls", f"s3://seaweed@{data}/d/sub"], env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"s3://seaweed@{data}/d/sub/b.txt"]
    again = run(["ls", proc.stdout.strip()], env)
    assert again.returncode == 0, again.stderr
    assert again.stdout == proc.stdout


def test_unknown_profile_fails(data: str, env: dict[str, str]) -> None:
    proc = run(["ls", f"s3://{data}/d", "--profile", "nosuchprofile"], env)
    line = one_line(assert_failed(proc))
    assert "nosuchprofile" in line


def test_missing_credentials_fail_cleanly(data: str, s3_server: Any, tmp_path: Path) -> None:
    env = cli_env(s3_server, tmp_path, AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None)
    env["HOME"] = str(tmp_path / "home")  # no ~/.aws either
    proc = run(["download", f"s3://{data}/d", "--local", str(tmp_path / "dst")], env)
    line = one_line(assert_failed(proc))
    assert line.startswith("pos3lite download: ")
    assert "credentials" in line.lower()
    assert not (tmp_path / "dst").exists()


def test_ls_local_folder(env: dict[str, str], tmp_path: Path) -> None:
    root = tmp_path / "loc"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"a")
    (root / "sub" / "b.txt").write_bytes(b"b")
    proc = run(["ls", str(root)], env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"{root}/a.txt", f"{root}/sub/"]
    proc = run(["ls", "-r", str(root)], env)
    assert proc.stdout.splitlines() == [f"{root}/a.txt", f"{root}/sub/b.txt"]
