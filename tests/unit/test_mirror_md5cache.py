"""The MD5 cache of checksum mode (pos3lite/mirror/md5cache.py)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pos3lite.mirror import md5cache
from pos3lite.mirror.md5cache import CACHE_FILE, Md5Cache
from pos3lite.mirror.state import META_DIR


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every file the cache actually reads to hash."""
    calls: list[Path] = []
    real = md5cache.file_md5

    def counting(path: Path, **kw: int) -> str:
        calls.append(Path(path))
        return real(path, **kw)

    monkeypatch.setattr(md5cache, "file_md5", counting)
    return calls


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_an_unchanged_file_is_hashed_once(tmp_path: Path, hashed: list[Path]) -> None:
    files = [tmp_path / f"f{i}" for i in range(5)]
    for i, f in enumerate(files):
        f.write_bytes(b"x" * i)
    with ThreadPoolExecutor(2) as pool:
        first = Md5Cache(tmp_path / "cache").digests(files, pool)
        assert first == [md5(b"x" * i) for i in range(5)]
        assert sorted(hashed) == sorted(files)
        hashed.clear()
        # Another process (a new cache object, same file) and the single-file call.
        again = Md5Cache(tmp_path / "cache")
        assert again.digests(files, pool) == first
        assert again.md5(files[3]) == first[3]
    assert hashed == []
    assert (tmp_path / "cache" / META_DIR / CACHE_FILE).is_file()


def test_a_same_size_same_second_rewrite_is_hashed_again(
    tmp_path: Path, hashed: list[Path]
) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"aaaa")
    cache = Md5Cache(tmp_path / "cache")
    assert cache.md5(f) == md5(b"aaaa")
    before = f.stat()
    f.write_bytes(b"bbbb")  # same size, within the same second: st_mtime_ns moves
    os.utime(f, ns=(before.st_atime_ns, before.st_mtime_ns + 1))
    assert f.stat().st_mtime // 1 == before.st_mtime // 1
    hashed.clear()
    assert cache.md5(f) == md5(b"bbbb")
    assert hashed == [f]


def test_a_rewrite_with_its_mtime_restored_is_hashed_again(
    tmp_path: Path, hashed: list[Path]
) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"aaaa")
    cache = Md5Cache(tmp_path / "cache")
    cache.md5(f)
    before = f.stat()
    f.write_bytes(b"cccc")
    os.utime(f, ns=(before.st_atime_ns, before.st_mtime_ns))  # `touch -r`, rsync -t
    assert (f.stat().st_size, f.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    hashed.clear()
    assert cache.md5(f) == md5(b"cccc")  # st_ctime_ns moved
    assert hashed == [f]


def test_a_file_replaced_by_rename_is_hashed_again(tmp_path: Path, hashed: list[Path]) -> None:
    f, new = tmp_path / "f", tmp_path / "new"
    f.write_bytes(b"aaaa")
    cache = Md5Cache(tmp_path / "cache")
    cache.md5(f)
    st = f.stat()
    new.write_bytes(b"dddd")
    os.utime(new, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(new, f)  # another inode under the same name
    hashed.clear()
    assert cache.md5(f) == md5(b"dddd")
    assert hashed == [f]


def test_a_file_written_while_hashed_is_not_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"aaaa")
    real = md5cache.file_md5

    def racing(path: Path, **kw: int) -> str:
        out = real(path, **kw)
        with open(path, "ab") as fh:  # the writer appends right after the read
            fh.write(b"!")
        return out

    monkeypatch.setattr(md5cache, "file_md5", racing)
    cache = Md5Cache(tmp_path / "cache")
    assert cache.md5(f) == md5(b"aaaa")
    # A digest of content that changed under the read is not stored.
    assert not cache.path.exists() or sqlite3.connect(cache.path).execute(
        "SELECT count(*) FROM md5"
    ).fetchone() == (0,)
    monkeypatch.setattr(md5cache, "file_md5", real)
    assert cache.md5(f) == md5(b"aaaa!")  # nothing was cached for the old content


def test_the_cache_is_bounded(tmp_path: Path) -> None:
    cache = Md5Cache(tmp_path / "cache", max_rows=10)
    files = [tmp_path / f"f{i}" for i in range(25)]
    for f in files:
        f.write_bytes(f.name.encode())
        cache.md5(f)
    db = sqlite3.connect(cache.path)
    (n,) = db.execute("SELECT count(*) FROM md5").fetchone()
    assert 0 < n <= 10


def test_a_damaged_cache_costs_hashing_never_a_wrong_digest(
    tmp_path: Path, hashed: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"aaaa")
    Md5Cache(tmp_path / "cache").md5(f)
    path = tmp_path / "cache" / META_DIR / CACHE_FILE
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    path.write_bytes(b"this is not a database" * 100)
    hashed.clear()
    cache = Md5Cache(tmp_path / "cache")
    assert cache.md5(f) == md5(b"aaaa")
    assert hashed == [f]
    assert "damaged" in caplog.text
    hashed.clear()
    assert cache.md5(f) == md5(b"aaaa")  # rebuilt: cached again
    assert hashed == []


def test_an_unwritable_cache_root_still_hashes(tmp_path: Path, hashed: list[Path]) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"aaaa")
    blocker = tmp_path / "cache"
    blocker.write_bytes(b"a file where the cache root should be")
    cache = Md5Cache(blocker)
    assert cache.md5(f) == md5(b"aaaa")
    assert cache.md5(f) == md5(b"aaaa")
    assert hashed == [f, f]


def test_a_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Md5Cache(tmp_path / "cache").md5(tmp_path / "nope")
