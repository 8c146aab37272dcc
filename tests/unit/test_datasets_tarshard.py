"""The streamed tar shard writer: offsets, WebDataset rules, gzip, sequential reading."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from pos3lite.datasets.tarshard import TarShardWriter, iter_members


class _WriteOnly(io.RawIOBase):
    """A non-seekable sink (like a multipart writer) that records what it got."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.largest_write = 0

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self.buf += b
        self.largest_write = max(self.largest_write, len(b))
        return len(b)


def test_offsets_point_at_member_data_and_tarfile_agrees(tmp_path: Path) -> None:
    out = _WriteOnly()
    w = TarShardWriter(out, mtime=1_700_000_000)
    src = tmp_path / "big.bin"
    src.write_bytes(bytes(range(256)) * 40)
    long_name = "d/" + "x" * 150 + ".txt"  # needs a pax header
    w.add("0001.jpg", b"JPEG" * 100, id="1", meta={"label": 3})
    w.add("0001.json", io.BytesIO(b'{"a":1}'))
    w.add("0002.bin", src)
    w.add("0002.empty", b"")
    w.add(long_name, b"long")
    w.close()
    data = bytes(out.buf)
    for m in w.members:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            info = tar.getmember(m.name)
            assert info.offset_data == m.offset and info.size == m.size
        assert (
            data[m.offset : m.offset + m.size]
            == {
                "0001.jpg": b"JPEG" * 100,
                "0001.json": b'{"a":1}',
                "0002.bin": src.read_bytes(),
                "0002.empty": b"",
                long_name: b"long",
            }[m.name]
        )
    assert w.members[0].id == "1" and w.members[0].meta == {"label": 3}
    assert w.count == 5 and w.data_bytes == 400 + 7 + 10240 + 0 + 4
    # headers, data, padding and end blocks; tarfile pads the last record without counting it
    assert w.tar_bytes <= len(data) < w.tar_bytes + tarfile.RECORDSIZE
    # only the members written: no manifest member, no directories
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.getnames() == [m.name for m in w.members]


def test_memory_is_not_the_member_size() -> None:
    out = _WriteOnly()
    w = TarShardWriter(out)

    class Stream(io.RawIOBase):
        left = 5 * 1024 * 1024

        def readable(self) -> bool:
            return True

        def readinto(self, b: bytearray) -> int:  # type: ignore[override]
            n = min(len(b), self.left)
            b[:n] = b"z" * n
            self.left -= n
            return n

    w.add("big.bin", Stream(), size=5 * 1024 * 1024)
    w.close()
    assert out.largest_write <= 64 * 1024  # streamed in record-sized writes


@pytest.mark.parametrize(
    ("names", "error"),
    [
        (["a.jpg", "b.jpg", "a.txt"], "already closed"),
        (["a.jpg", "a.jpg"], "duplicate"),
        (["noext"], "WebDataset form"),
        (["../x.jpg"], "unsafe"),
    ],
)
def test_webdataset_rules_are_enforced(names: list[str], error: str) -> None:
    w = TarShardWriter(_WriteOnly())
    with pytest.raises(ValueError, match=error):
        for n in names:
            w.add(n, b"x")


def test_non_seekable_source_needs_a_size() -> None:
    class NoSeek(io.RawIOBase):
        def readable(self) -> bool:
            return True

    w = TarShardWriter(_WriteOnly())
    with pytest.raises(ValueError, match="size"):
        w.add("a.bin", NoSeek())  # type: ignore[arg-type]


def test_short_source_is_an_error() -> None:
    w = TarShardWriter(_WriteOnly())
    with pytest.raises(OSError):
        w.add("a.bin", io.BytesIO(b"abc"), size=10)


def test_gzip_shard_reads_back_sequentially() -> None:
    out = _WriteOnly()
    w = TarShardWriter(out, compression="gzip")
    for i in range(20):
        w.add(f"{i:04d}.txt", f"sample {i}".encode() * 50)
    w.close()
    data = bytes(out.buf)
    assert data[:2] == b"\x1f\x8b"
    assert len(data) < w.tar_bytes  # compressed
    plain = gzip.decompress(data)
    assert plain[w.members[3].offset : w.members[3].offset + w.members[3].size] == b"sample 3" * 50

    class OneWay(io.RawIOBase):
        def __init__(self) -> None:
            self._b = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, b: bytearray) -> int:  # type: ignore[override]
            return self._b.readinto(b)

    got = list(iter_members(OneWay(), compression="gzip"))  # type: ignore[arg-type]
    assert got == [(f"{i:04d}.txt", f"sample {i}".encode() * 50) for i in range(20)]


def test_bad_compression() -> None:
    with pytest.raises(ValueError, match="xz"):
        TarShardWriter(_WriteOnly(), compression="xz")
