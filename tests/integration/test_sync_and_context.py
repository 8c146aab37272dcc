"""Integration: sync(), registration conflict rules (reference A.18), the mirror context,
with_mirror, and profile selection (URL > profile= > default_profile, profiles.toml)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

import pos3lite
from pos3lite import (
    ConfigError,
    MirrorStateError,
    Pos3liteError,
    Profile,
    ProfileError,
    TransferError,
    register_profile,
)

from .conftest import get, keys, open_mirror, put, tree

pytestmark = pytest.mark.integration


def _twin(profile: Profile, local_name: str) -> Profile:
    """Same server and keys as ``profile``, another identity (and cache folder)."""
    return Profile(
        local_name=local_name,
        endpoint=profile.endpoint,
        region=profile.region,
        access_key=profile.access_key,
        secret_key=profile.secret_key,
    )


# ---------------------------------------------------------------------------- sync


def test_sync_downloads_then_uploads_on_exit(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    put(oracle, bucket, "work/in.txt", b"input")
    put(oracle, bucket, "work/old.txt", b"to be removed locally")
    with open_mirror(tmp_path, profile):
        path = pos3lite.sync(f"s3://{bucket}/work", interval=None)
        assert path == (tmp_path / "cache" / "test" / bucket / "work").resolve()
        assert tree(path) == {"in.txt": b"input", "old.txt": b"to be removed locally"}
        (path / "out.txt").write_bytes(b"output")
        (path / "old.txt").unlink()
        assert keys(oracle, bucket) == ["work/in.txt", "work/old.txt"]  # not yet
    assert keys(oracle, bucket) == ["work/in.txt", "work/out.txt"]
    assert get(oracle, bucket, "work/out.txt") == b"output"


def test_sync_missing_remote_creates_local_folder(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    dest = tmp_path / "fresh"
    with open_mirror(tmp_path, profile):
        path = pos3lite.sync(f"s3://{bucket}/new-prefix", local=dest, interval=None)
        assert path == dest.resolve()
        assert path.is_dir() and list(path.iterdir()) == []
        (path / "made.txt").write_bytes(b"made here")
    assert get(oracle, bucket, "new-prefix/made.txt") == b"made here"


def test_second_sync_of_same_url_conflicts(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    put(oracle, bucket, "work/a.txt", b"a")
    with open_mirror(tmp_path, profile):
        pos3lite.sync(f"s3://{bucket}/work", interval=None)
        with pytest.raises(ConfigError, match="Conflict"):
            pos3lite.sync(f"s3://{bucket}/work", interval=None)
        with pytest.raises(ValueError, match="Conflict"):
            pos3lite.sync(f"s3://{bucket}/work/sub", interval=None)


def test_sync_failed_download_registers_no_upload(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    put(oracle, bucket, "work/c", b"file")
    put(oracle, bucket, "work/c/d", b"under the file")
    dest = tmp_path / "dest"
    with open_mirror(tmp_path, profile):
        with pytest.raises(TransferError):
            pos3lite.sync(f"s3://{bucket}/work", local=dest, interval=None)
        (dest / "new.txt").write_bytes(b"must not be uploaded")
    assert "work/new.txt" not in keys(oracle, bucket)


# ---------------------------------------------------------------------------- registrations


def test_same_download_is_deduplicated_without_refresh(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    put(oracle, bucket, "data/a.txt", b"v1")
    with open_mirror(tmp_path, profile):
        first = pos3lite.download(f"s3://{bucket}/data")
        put(oracle, bucket, "data/a.txt", b"version 2")
        second = pos3lite.download(f"s3://{bucket}/data/")  # same normalised URL
        assert second == first
        assert (first / "a.txt").read_bytes() == b"v1"  # no refresh inside one mirror
        with pytest.raises(ConfigError, match="different parameters"):
            pos3lite.download(f"s3://{bucket}/data", delete=False)
        with pytest.raises(ValueError, match="different parameters"):
            pos3lite.download(f"s3://{bucket}/data", exclude=["*.log"])
    with open_mirror(tmp_path, profile):  # a new mirror does refresh
        pos3lite.download(f"s3://{bucket}/data")
    assert (first / "a.txt").read_bytes() == b"version 2"


def test_concurrent_same_download_runs_once(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    put(oracle, bucket, "data/a.txt", b"a")
    results: list[Path] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(pos3lite.download(f"s3://{bucket}/data"))
        except BaseException as exc:
            errors.append(exc)

    with open_mirror(tmp_path, profile):
        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    assert len(set(results)) == 1 and len(results) == 4
    assert tree(results[0]) == {"a.txt": b"a"}


def test_upload_and_download_overlap_conflicts(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    put(oracle, bucket, "data/sub/a.txt", b"a")
    put(oracle, bucket, "data2/b.txt", b"b")
    with open_mirror(tmp_path, profile):
        pos3lite.download(f"s3://{bucket}/data/sub")
        # download -> upload: same URL and parent both conflict.
        with pytest.raises(ConfigError, match="Conflict: upload"):
            pos3lite.upload(f"s3://{bucket}/data/sub", interval=None)
        with pytest.raises(ConfigError, match="Conflict: upload"):
            pos3lite.upload(f"s3://{bucket}/data", interval=None)
        # download -> download overlapping: allowed.
        pos3lite.download(f"s3://{bucket}/data")
        # a sibling whose name merely starts the same does not overlap
        pos3lite.upload(f"s3://{bucket}/data2", interval=None)
        # upload -> download: same URL and child conflict.
        with pytest.raises(ConfigError, match="Conflict: download"):
            pos3lite.download(f"s3://{bucket}/data2")
        # upload -> upload: child conflicts, equal re-registration is a no-op,
        # different parameters are refused.
        with pytest.raises(ConfigError, match="Conflict: upload"):
            pos3lite.upload(f"s3://{bucket}/data2/deeper", interval=None)
        again = pos3lite.upload(f"s3://{bucket}/data2", interval=None)
        assert again == (tmp_path / "cache" / "test" / bucket / "data2").resolve()
        with pytest.raises(ConfigError, match="different parameters"):
            pos3lite.upload(f"s3://{bucket}/data2", interval=None, delete=False)


def test_bucket_root_upload_conflicts_with_everything(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    put(oracle, bucket, "x/a.txt", b"a")
    with open_mirror(tmp_path, profile):
        pos3lite.download(f"s3://{bucket}/x")
        with pytest.raises(ConfigError, match="Conflict"):
            pos3lite.upload(f"s3://{bucket}", interval=None)


def test_same_url_under_two_profiles_does_not_conflict(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    put(oracle, bucket, "shared/a.txt", b"a")
    other = _twin(profile, "other")
    with open_mirror(tmp_path, profile):
        down = pos3lite.download(f"s3://{bucket}/shared")
        up = pos3lite.upload(f"s3://{bucket}/shared", interval=None, profile=other)
        assert down.parent.parent.name == "test"
        assert up.parent.parent.name == "other"
        (up / "a.txt").write_bytes(b"a")
        (up / "b.txt").write_bytes(b"from the other profile")
    assert get(oracle, bucket, "shared/b.txt") == b"from the other profile"


# ---------------------------------------------------------------------------- context


def test_no_active_mirror_outside_context(tmp_path: Path) -> None:
    for call in (
        lambda: pos3lite.download("s3://bucket/x"),
        lambda: pos3lite.upload("s3://bucket/x"),
        lambda: pos3lite.sync("s3://bucket/x"),
        lambda: pos3lite.ls("s3://bucket/x"),
    ):
        with pytest.raises(MirrorStateError, match="No active mirror context") as info:
            call()
        assert isinstance(info.value, RuntimeError)


def test_nested_mirror_is_refused(tmp_path: Path) -> None:
    with open_mirror(tmp_path) as value:
        assert value is None
        with (
            pytest.raises(RuntimeError, match="Mirror already active"),
            open_mirror(tmp_path / "o"),
        ):
            pass  # pragma: no cover
    # The failed nested entry did not leave the outer state broken: a new mirror opens.
    with open_mirror(tmp_path):
        pass


def test_mirror_in_another_thread_is_refused(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def other() -> None:
        try:
            with open_mirror(tmp_path / "t"):
                pass  # pragma: no cover
        except BaseException as exc:
            errors.append(exc)

    with open_mirror(tmp_path):
        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert len(errors) == 1 and isinstance(errors[0], MirrorStateError)


def test_with_mirror_fresh_mirror_per_call(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    put(oracle, bucket, "data/a.txt", b"v1")

    @pos3lite.with_mirror(cache_root=tmp_path / "cache", show_progress=False)
    def fetch(url: str) -> bytes:
        return (pos3lite.download(url, profile=profile) / "a.txt").read_bytes()

    assert fetch(f"s3://{bucket}/data") == b"v1"
    put(oracle, bucket, "data/a.txt", b"version 2")
    # A fresh mirror per call: no deduplication across calls, so the change is seen.
    assert fetch(f"s3://{bucket}/data") == b"version 2"
    with pytest.raises(MirrorStateError):
        pos3lite.download(f"s3://{bucket}/data")
    with open_mirror(tmp_path), pytest.raises(RuntimeError, match="Mirror already active"):
        fetch(f"s3://{bucket}/data")


def test_download_in_thread_started_inside_context(
    oracle: Any, bucket: str, profile: Any, tmp_path: Path
) -> None:
    put(oracle, bucket, "data/t.txt", b"from a thread")
    out: list[Any] = []

    def work() -> None:
        try:
            out.append(pos3lite.download(f"s3://{bucket}/data"))
        except BaseException as exc:
            out.append(exc)

    with open_mirror(tmp_path, profile):
        t = threading.Thread(target=work)
        t.start()
        t.join()
    assert len(out) == 1 and isinstance(out[0], Path)
    assert tree(out[0]) == {"t.txt": b"from a thread"}


# ---------------------------------------------------------------------------- profiles


def test_url_profile_with_registered_profile(
    oracle: Any, bucket: str, s3_env: Any, tmp_path: Path
) -> None:
    register_profile("named", s3_env.endpoint, region=s3_env.region, local_name="named_cache")
    put(oracle, bucket, "data/a.txt", b"a")
    with open_mirror(tmp_path):
        path = pos3lite.download(f"s3://named@{bucket}/data")
        out = pos3lite.upload(f"s3://named@{bucket}/out", interval=None)
        (out / "o.txt").write_bytes(b"o")
    assert path == (tmp_path / "cache" / "named_cache" / bucket / "data").resolve()
    assert tree(path) == {"a.txt": b"a"}
    assert get(oracle, bucket, "out/o.txt") == b"o"


def test_public_profile_cannot_write(
    oracle: Any, bucket: str, s3_server: Any, tmp_path: Path
) -> None:
    register_profile("anon", s3_server.endpoint, public=True, region=s3_server.region)
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"a")
    with pytest.raises(Pos3liteError), open_mirror(tmp_path):
        pos3lite.upload(f"s3://anon@{bucket}/out", local=src, interval=None)
    assert keys(oracle, bucket) == []


def test_unknown_profile_is_refused(tmp_path: Path) -> None:
    with open_mirror(tmp_path), pytest.raises(ProfileError, match="nobody"):
        pos3lite.download("s3://nobody@bucket/data")
    with pytest.raises(ValueError, match="nobody"), open_mirror(tmp_path, "nobody"):
        pass  # pragma: no cover


def test_profiles_toml_with_credentials_file(
    oracle: Any,
    bucket: str,
    s3_server: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No ambient credentials: they must come from the credentials_file.
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "weed.creds").write_text(
        "[weed]\n"
        f"aws_access_key_id = {s3_server.access_key}\n"
        f"aws_secret_access_key = {s3_server.secret_key}\n"
    )
    toml = conf / "profiles.toml"
    toml.write_text(
        "[profiles.weed]\n"
        f'endpoint = "{s3_server.endpoint}"\n'
        f'region = "{s3_server.region}"\n'
        'local_name = "weedcache"\n'
        'credentials_file = "weed.creds"\n'
    )
    monkeypatch.setenv("POS3LITE_PROFILES_FILE", str(toml))
    put(oracle, bucket, "data/a.txt", b"from toml")
    with open_mirror(tmp_path):
        path = pos3lite.download(f"s3://weed@{bucket}/data")
        out = pos3lite.upload(f"s3://{bucket}/up", interval=None, profile="weed")
        (out / "u.txt").write_bytes(b"uploaded via toml")
    assert path == (tmp_path / "cache" / "weedcache" / bucket / "data").resolve()
    assert tree(path) == {"a.txt": b"from toml"}
    assert get(oracle, bucket, "up/u.txt") == b"uploaded via toml"


def test_profile_precedence(oracle: Any, bucket: str, s3_env: Any, tmp_path: Path) -> None:
    for name in ("p_default", "p_arg", "p_url"):
        register_profile(name, s3_env.endpoint, region=s3_env.region)
    for k in ("a", "b", "c", "d"):
        put(oracle, bucket, f"{k}/f.txt", k.encode())
    with open_mirror(tmp_path, "p_default"):
        by_default = pos3lite.download(f"s3://{bucket}/a")
        by_arg = pos3lite.download(f"s3://{bucket}/b", profile="p_arg")
        by_url = pos3lite.download(f"s3://p_url@{bucket}/c", profile="p_arg")
    with open_mirror(tmp_path):
        ambient = pos3lite.download(f"s3://{bucket}/d")
    cache = (tmp_path / "cache").resolve()
    assert by_default == cache / "p_default" / bucket / "a"
    assert by_arg == cache / "p_arg" / bucket / "b"
    assert by_url == cache / "p_url" / bucket / "c"
    assert ambient == cache / "_" / bucket / "d"
    assert (by_url / "f.txt").read_bytes() == b"c"


def test_ls_output_drops_profile(oracle: Any, bucket: str, s3_env: Any, tmp_path: Path) -> None:
    register_profile("lister", s3_env.endpoint, region=s3_env.region)
    put(oracle, bucket, "data/a.txt", b"a")
    put(oracle, bucket, "data/sub/b.txt", b"b")
    with open_mirror(tmp_path):
        flat = pos3lite.ls(f"s3://lister@{bucket}/data")
        deep = pos3lite.ls(f"s3://lister@{bucket}/data", recursive=True)
        missing = pos3lite.ls(f"s3://{bucket}/nothing-here")
    assert flat == [f"s3://{bucket}/data/a.txt", f"s3://{bucket}/data/sub/"]
    assert deep == [f"s3://{bucket}/data/a.txt", f"s3://{bucket}/data/sub/b.txt"]
    assert missing == []
