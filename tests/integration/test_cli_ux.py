"""The CLI as aws-cli and rclone users expect it (issue 13), against the real SeaweedFS fixture.

Every test runs the installed ``pos3lite`` console script in a subprocess with an isolated
environment (see ``test_cli.cli_env``); stderr is a pipe, so not a terminal.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest

from pos3lite import cli
from tests.integration.conftest import READ_ACCESS_KEY, READ_SECRET_KEY, get, keys, put
from tests.integration.test_cli import assert_failed, cli_env, console_script, one_line, run

pytestmark = pytest.mark.integration


@pytest.fixture
def env(s3_server: Any, tmp_path: Path) -> dict[str, str]:
    return cli_env(s3_server, tmp_path)


@pytest.fixture
def data(bucket: str, oracle: Any) -> str:
    put(oracle, bucket, "d/a.txt", b"alpha")
    put(oracle, bucket, "d/sub/b.txt", b"bravo!")
    return bucket


def _src(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "one.txt").write_bytes(b"1" * 100)
    (src / "sub" / "two words.txt").write_bytes(b"2" * 50)
    return src


# ------------------------------------------------------------------ 1. output and progress


def test_verbose_prints_a_line_per_transfer_and_a_summary(
    bucket: str, oracle: Any, env: dict[str, str], tmp_path: Path
) -> None:
    src = _src(tmp_path)
    up = run(["upload", f"s3://{bucket}/p", "--local", str(src), "-v"], env)
    assert up.returncode == 0, up.stderr
    lines = up.stderr.splitlines()
    assert f"upload: {src / 'one.txt'} to s3://{bucket}/p/one.txt" in lines
    assert f"upload: {src / 'sub' / 'two words.txt'} to s3://{bucket}/p/sub/two words.txt" in lines
    summary = lines[-1]
    pattern = r"pos3lite upload: 2 files, 150 B in \d+\.\d\d s \(.+/s\)"
    assert re.fullmatch(pattern, summary), summary
    assert up.stdout == ""

    put(oracle, bucket, "p/extra.txt", b"xyz")
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "stale.txt").write_bytes(b"old")
    down = run(["download", f"s3://{bucket}/p", "--local", str(dst), "--delete", "-v"], env)
    assert down.returncode == 0, down.stderr
    lines = down.stderr.splitlines()
    assert f"download: s3://{bucket}/p/extra.txt to {dst / 'extra.txt'}" in lines
    assert f"delete: {dst / 'stale.txt'}" in lines
    assert re.match(r"pos3lite download: 3 files, 153 B in .*, 1 deleted$", lines[-1]), lines
    assert down.stdout.strip() == str(dst)


def test_not_a_terminal_means_no_progress_frames(
    bucket: str, env: dict[str, str], tmp_path: Path
) -> None:
    proc = run(["upload", f"s3://{bucket}/p", "--local", str(_src(tmp_path))], env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no bar, no carriage-return frames in a log file


def test_progress_flag_draws_a_bar_with_files_that_stays(
    bucket: str, env: dict[str, str], tmp_path: Path
) -> None:
    proc = run(["upload", f"s3://{bucket}/p", "--local", str(_src(tmp_path)), "--progress"], env)
    assert proc.returncode == 0, proc.stderr
    # The final frame stays: complete, with the byte total and the file count.
    last = proc.stderr.rstrip("\n").split("\r")[-1]
    assert "100%" in last and "150/150" in last and "2 files" in last, proc.stderr
    assert proc.stderr.endswith("\n")


def test_quiet_prints_only_errors(data: str, env: dict[str, str], tmp_path: Path) -> None:
    dst = str(tmp_path / "q")
    ok = run(["download", f"s3://{data}/d", "--local", dst, "-q", "--progress"], env)
    assert ok.returncode == 0
    assert ok.stderr == ""
    bad = run(["download", f"s3://{data}/nothing", "-q"], env)
    assert "nothing" in one_line(assert_failed(bad))


def test_verbose_and_quiet_together_is_a_usage_error(env: dict[str, str]) -> None:
    proc = run(["ls", "s3://", "-v", "-q"], env)
    assert proc.returncode == 2
    assert "-q" in proc.stderr or "--quiet" in proc.stderr


# --------------------------------------------------------------------------------- 2. ls


def test_ls_long_shows_size_and_last_modified(data: str, oracle: Any, env: dict[str, str]) -> None:
    proc = run(["ls", "-l", f"s3://{data}/d/"], env)
    assert proc.returncode == 0, proc.stderr
    head = oracle.head_object(Bucket=data, Key="d/a.txt")
    when = datetime.fromtimestamp(head["LastModified"].timestamp()).strftime("%Y-%m-%d %H:%M:%S")
    a_line, sub_line = proc.stdout.splitlines()
    assert a_line.split() == [*when.split(), "5", f"s3://{data}/d/a.txt"]
    assert sub_line.split() == ["PRE", f"s3://{data}/d/sub/"]
    one = run(["ls", "--long", f"s3://{data}/d/sub/b.txt"], env)
    assert one.stdout.split()[-2:] == ["6", f"s3://{data}/d/sub/b.txt"]


def test_ls_of_s3_root_lists_buckets(data: str, s3_server: Any, tmp_path: Path) -> None:
    env = cli_env(s3_server, tmp_path)
    proc = run(["ls", "s3://"], env)
    assert proc.returncode == 0, proc.stderr
    assert f"s3://{data}/" in proc.stdout.splitlines()
    bare = run(["ls"], env)
    assert bare.stdout == proc.stdout
    long = run(["ls", "-l", "s3://"], env)
    mine = [line for line in long.stdout.splitlines() if line.endswith(f" s3://{data}/")]
    assert len(mine) == 1 and re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", mine[0]), long.stdout

    toml = tmp_path / "profiles.toml"
    toml.write_text(
        f'[profiles.sw]\nendpoint = "{s3_server.endpoint}"\nregion = "{s3_server.region}"\n'
    )
    env["POS3LITE_PROFILES_FILE"] = str(toml)
    named = run(["ls", "s3://sw@"], env)
    assert named.returncode == 0, named.stderr
    assert f"s3://sw@{data}/" in named.stdout.splitlines()


def test_ls_missing_local_folder_fails(env: dict[str, str], tmp_path: Path) -> None:
    proc = run(["ls", str(tmp_path / "no such")], env)
    assert f"'{tmp_path / 'no such'}'" in one_line(assert_failed(proc))


def test_ls_local_long(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "f.bin").write_bytes(b"x" * 7)
    proc = run(["ls", "-l", str(tmp_path / "f.bin")], env)
    assert proc.stdout.split()[-2:] == ["7", str(tmp_path / "f.bin")]


def test_ls_accepts_the_common_flags(data: str, s3_server: Any, tmp_path: Path) -> None:
    env = cli_env(s3_server, tmp_path, AWS_ENDPOINT_URL_S3=None)
    args = ["ls", f"s3://{data}/d/", "--workers", "2", "--no-progress", "-q"]
    args += ["--cache-root", str(tmp_path / "c"), "--endpoint-url", s3_server.endpoint]
    args += ["--region", s3_server.region]
    proc = run(args, env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"s3://{data}/d/a.txt", f"s3://{data}/d/sub/"]


# ------------------------------------------------------- 3. endpoint, region and profiles


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Not S3: answers every request with an HTML 404 and records the Authorization header."""

    seen: ClassVar[list[str]] = []

    def _answer(self) -> None:
        _Recorder.seen.append(self.headers.get("Authorization", ""))
        body = b"<html><body>Not Found</body></html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_PUT = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def not_s3() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Recorder.seen.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_endpoint_url_and_region_flags_reach_the_request(
    env: dict[str, str], not_s3: str, tmp_path: Path
) -> None:
    proc = run(
        ["download", "s3://some-bucket/k", "--endpoint-url", not_s3, "--region", "eu-west-9"], env
    )
    line = one_line(assert_failed(proc))
    assert "the endpoint did not answer like S3" in line
    assert "NoSuchBucket" not in line
    assert _Recorder.seen and all("/eu-west-9/s3/aws4_request" in a for a in _Recorder.seen)


def test_aws_shared_config_profile(data: str, s3_server: Any, tmp_path: Path) -> None:
    env = cli_env(s3_server, tmp_path, AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None)
    Path(env["AWS_SHARED_CREDENTIALS_FILE"]).write_text(
        f"[awsp]\naws_access_key_id = {s3_server.access_key}\n"
        f"aws_secret_access_key = {s3_server.secret_key}\n"
    )
    Path(env["AWS_CONFIG_FILE"]).write_text("[profile awsp]\nregion = us-east-1\n")
    proc = run(["ls", f"s3://{data}/d/sub/", "--profile", "awsp"], env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"s3://{data}/d/sub/b.txt"]
    unknown = run(["ls", f"s3://{data}/d/", "--profile", "nope"], env)
    line = one_line(assert_failed(unknown))
    assert "nope" in line and "no-profiles.toml" in line
    assert env["AWS_CONFIG_FILE"] in line and "AWS_PROFILE" in line


def test_pos3lite_profile_wins_over_aws_profile_of_the_same_name(
    data: str, s3_server: Any, tmp_path: Path
) -> None:
    env = cli_env(s3_server, tmp_path, AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None)
    Path(env["AWS_SHARED_CREDENTIALS_FILE"]).write_text(
        "[same]\naws_access_key_id = AKIDWRONG\naws_secret_access_key = wrong\n"
    )
    creds = tmp_path / "sw.creds"
    creds.write_text(
        f"[default]\naws_access_key_id = {s3_server.access_key}\n"
        f"aws_secret_access_key = {s3_server.secret_key}\n"
    )
    toml = tmp_path / "profiles.toml"
    toml.write_text(
        f'[profiles.same]\nendpoint = "{s3_server.endpoint}"\ncredentials_file = "sw.creds"\n'
    )
    env["POS3LITE_PROFILES_FILE"] = str(toml)
    proc = run(["ls", f"s3://same@{data}/d/sub/"], env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"s3://same@{data}/d/sub/b.txt"]


# ------------------------------------------------------------------ 4. single objects


def test_single_object_into_an_existing_folder_or_trailing_slash(
    data: str, env: dict[str, str], tmp_path: Path
) -> None:
    existing = tmp_path / "existing"
    existing.mkdir()
    proc = run(["download", f"s3://{data}/d/a.txt", "--local", str(existing)], env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(existing / "a.txt")
    assert (existing / "a.txt").read_bytes() == b"alpha"

    proc = run(["download", f"s3://{data}/d/a.txt", "--local", f"{tmp_path / 'newdir'}/"], env)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "newdir").is_dir()
    assert (tmp_path / "newdir" / "a.txt").read_bytes() == b"alpha"


def test_file_uploaded_to_a_prefix_with_slash_keeps_its_name(
    bucket: str, oracle: Any, env: dict[str, str], tmp_path: Path
) -> None:
    f = tmp_path / "report.csv"
    f.write_bytes(b"a,b\n")
    proc = run(["upload", f"s3://{bucket}/prefix/", "--local", str(f)], env)
    assert proc.returncode == 0, proc.stderr
    assert keys(oracle, bucket) == ["prefix/report.csv"]
    assert get(oracle, bucket, "prefix/report.csv") == b"a,b\n"


# --------------------------------------------------------------------------- 5. errors


def test_upload_failures_are_one_line_with_a_count(
    bucket: str, s3_server: Any, tmp_path: Path
) -> None:
    env = cli_env(
        s3_server,
        tmp_path,
        AWS_ACCESS_KEY_ID=READ_ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=READ_SECRET_KEY,
    )
    src = _src(tmp_path)
    (src / "three.txt").write_bytes(b"3")
    proc = run(["upload", f"s3://{bucket}/p", "--local", str(src)], env)
    line = one_line(assert_failed(proc))
    assert line.startswith("pos3lite upload: upload failed: AccessDenied")
    assert line.endswith("(and 2 more failures; -v lists them)")
    verbose = run(["upload", f"s3://{bucket}/p", "--local", str(src), "-v"], env)
    err = assert_failed(verbose)
    assert "(and 2 more failures)" in err
    for name in ("one.txt", "three.txt", "two words.txt"):
        assert name in err


def _read_only_dir(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        return ro
    # root ignores mode bits; /sys is read-only for everyone in containers and on hosts.
    if os.access("/sys", os.W_OK) and Path("/sys/pos3lite-probe").parent.is_dir():
        try:
            Path("/sys/pos3lite-probe").mkdir()
        except OSError:
            return Path("/sys")
        pytest.skip("no read-only folder available")
    return Path("/sys")


def test_read_only_destination_reports_the_folder(
    data: str, env: dict[str, str], tmp_path: Path
) -> None:
    ro = _read_only_dir(tmp_path)
    proc = run(["download", f"s3://{data}/d/a.txt", "--local", str(ro / "a.txt")], env)
    line = one_line(assert_failed(proc))
    assert ".pos3lite-tmp" not in line
    assert f"'{ro}'" in line
    assert "Permission denied" in line or "Read-only" in line or "not permitted" in line


def test_read_only_home_hints_at_the_cache_root(data: str, s3_server: Any, tmp_path: Path) -> None:
    env = cli_env(s3_server, tmp_path, POS3LITE_CACHE_ROOT=None)
    env["HOME"] = str(_read_only_dir(tmp_path))
    proc = run(["download", f"s3://{data}/d"], env)
    line = one_line(assert_failed(proc))
    assert "--cache-root" in line and "POS3LITE_CACHE_ROOT" in line


def test_urls_in_errors_are_quoted_so_spaces_show(data: str, env: dict[str, str]) -> None:
    proc = run(["download", f"s3://{data}/d/missing "], env)
    assert f"'s3://{data}/d/missing '" in one_line(assert_failed(proc))


def test_closed_stdout_ends_quietly(bucket: str, oracle: Any, env: dict[str, str]) -> None:
    for i in range(30):
        put(oracle, bucket, f"k/{i:03}", b"x")
    proc = subprocess.Popen(
        [console_script(), "ls", "-r", f"s3://{bucket}/k/"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # like `| head -0`: the reader is gone before the first line
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0
    assert err == ""


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["download", "s3://b/k", "--workers", "0"], "--workers"),
        (["upload", "s3://b/k", "--workers", "many"], "--workers"),
        (["ls", "s3://b/", "--endpoint-url", "localhost:9000"], "--endpoint-url"),
        (["ls", "s3://b/", "--region", ""], "--region"),
        (["server", "--port", "0"], "--port"),
    ],
)
def test_bad_flag_values_are_usage_errors(args: list[str], flag: str, env: dict[str, str]) -> None:
    proc = run(args, env)
    assert proc.returncode == 2, proc.stderr
    assert f"argument {flag}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bucket_names_checked_locally(s3_server: Any, tmp_path: Path, not_s3: str) -> None:
    toml = tmp_path / "profiles.toml"
    toml.write_text(f'[profiles.virt]\nendpoint = "{not_s3}"\naddressing_style = "virtual"\n')
    env = cli_env(s3_server, tmp_path, POS3LITE_PROFILES_FILE=str(toml))
    for name in ("Upper", "under_score"):
        proc = run(["ls", f"s3://virt@{name}-bucket/x"], env)
        line = one_line(assert_failed(proc))
        assert f"'{name}-bucket'" in line and "path-style" in line
    for name in ("192.168.1.2", "xn--bucket"):
        proc = run(["download", f"s3://{name}/x"], env)
        assert f"'{name}'" in one_line(assert_failed(proc))
    assert _Recorder.seen == []  # refused before any request
    # With path style (a custom endpoint), legacy names go to the server.
    legacy = run(["ls", "s3://Legacy_Name/x"], cli_env(s3_server, tmp_path))
    assert "NoSuchBucket" in one_line(assert_failed(legacy))


def test_interrupt_exits_130(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    def interrupted(_args: Any) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_run", interrupted)
    assert cli.main(["ls", "s3://b/"]) == 130
    assert capsys.readouterr().err == "pos3lite ls: interrupted\n"


# --------------------------------------------------------------------------- 6. server


def _port_free(port: int) -> bool:
    """Nothing listens on ``port`` (connections are refused; TIME_WAIT entries may remain)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_server_command_starts_serves_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    from tests.support.seaweedfs import free_base_port

    port = free_base_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POS3"))}
    env["AWS_EC2_METADATA_DISABLED"] = "true"  # hermetic: never probe a metadata service
    proc = subprocess.Popen(
        [console_script(), "server", "--port", str(port), "--data", str(tmp_path / "data")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, so SIGINT goes to all as Ctrl-C does
    )
    try:
        assert proc.stdout is not None
        exports: dict[str, str] = {}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line or line.startswith("#"):
                break
            name, _, value = line.removeprefix("export ").strip().partition("=")
            exports[name] = value.strip("'")
        if "AWS_ENDPOINT_URL_S3" not in exports:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
            pytest.fail(f"no export lines; stderr: {proc.stderr.read() if proc.stderr else ''}")
        assert exports["AWS_ENDPOINT_URL_S3"] == f"http://127.0.0.1:{port}"
        use = dict(env, **exports)
        use["POS3LITE_CACHE_ROOT"] = str(tmp_path / "cache")
        use["POS3LITE_PROFILES_FILE"] = str(tmp_path / "none.toml")
        use["AWS_CONFIG_FILE"] = str(tmp_path / "none")
        use["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "none")
        src = _src(tmp_path)
        up = run(["upload", "s3://demo/try", "--local", str(src)], use)
        assert up.returncode == 0, up.stderr
        listed = run(["ls", "-r", "s3://demo/try/"], use)
        assert listed.stdout.splitlines() == [
            "s3://demo/try/one.txt",
            "s3://demo/try/sub/two words.txt",
        ]
    finally:
        with contextlib.suppress(ProcessLookupError):  # already gone after a failed start
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the CLI and weed both get it
        code = proc.wait(timeout=60)
    assert code == 0, proc.stderr.read() if proc.stderr else ""
    assert _port_free(port)


# ------------------------------------------------------------------ 3b. profiles files


def test_missing_profiles_file_is_an_error_naming_it(
    data: str, s3_server: Any, tmp_path: Path
) -> None:
    missing = tmp_path / "typo" / "profiles.toml"
    env = cli_env(s3_server, tmp_path, POS3LITE_PROFILES_FILE=str(missing))
    proc = run(["ls", f"s3://anything@{data}/d/"], env)
    line = one_line(assert_failed(proc))
    assert "POS3LITE_PROFILES_FILE" in line and f"'{missing}'" in line


def test_pos3_and_pos3lite_profiles_files_are_merged(
    data: str, s3_server: Any, tmp_path: Path
) -> None:
    env = cli_env(s3_server, tmp_path, POS3LITE_PROFILES_FILE=None)
    home = tmp_path / "home"
    env["HOME"] = str(home)
    for app, name in (("pos3", "old"), ("pos3lite", "new")):
        folder = home / ".config" / app
        folder.mkdir(parents=True)
        (folder / "profiles.toml").write_text(
            f'[profiles.{name}]\nendpoint = "{s3_server.endpoint}"\n'
            # the same name in both files: pos3lite's wins (pos3's points nowhere)
            f'[profiles.both]\nendpoint = "'
            + (s3_server.endpoint if app == "pos3lite" else "http://127.0.0.1:9")
            + '"\n'
        )
    for name in ("old", "new", "both"):
        proc = run(["ls", f"s3://{name}@{data}/d/sub/"], env)
        assert proc.returncode == 0, (name, proc.stderr)
        assert proc.stdout.splitlines() == [f"s3://{name}@{data}/d/sub/b.txt"]


def test_verbose_lines_for_multipart_transfers(
    bucket: str, env: dict[str, str], tmp_path: Path
) -> None:
    """Large files go through multipart upload and ranged download: still one line each."""
    src = tmp_path / "big"
    src.mkdir()
    size = 9 * 2**20  # above the 8 MiB multipart threshold
    (src / "large.bin").write_bytes(os.urandom(1024) * (size // 1024))
    up = run(["upload", f"s3://{bucket}/big", "--local", str(src), "-v"], env)
    assert up.returncode == 0, up.stderr
    assert f"upload: {src / 'large.bin'} to s3://{bucket}/big/large.bin" in up.stderr.splitlines()
    assert "1 file, 9.0 MiB in" in up.stderr.splitlines()[-1]
    dst = tmp_path / "back"
    down = run(["download", f"s3://{bucket}/big", "--local", str(dst), "-v"], env)
    assert down.returncode == 0, down.stderr
    line = f"download: s3://{bucket}/big/large.bin to {dst / 'large.bin'}"
    assert line in down.stderr.splitlines()
    assert (dst / "large.bin").stat().st_size == size
