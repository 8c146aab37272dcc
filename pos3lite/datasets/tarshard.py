"""Streamed tar shards: write members into any writable binary stream, read them back.

:class:`TarShardWriter` drives :mod:`tarfile` in stream mode (``"w|"`` or ``"w|gz"``), so
nothing but tarfile's 10 KiB record buffer and one copy block is held in memory whatever
the shard size; the destination stream (a multipart writer) bounds the rest. For each
member it records the byte offset of the data in the uncompressed archive (header offset
plus header length, derived from ``TarFile.offset``), which is what the sidecar index
stores. WebDataset rules are enforced while writing: ``{sample}.{ext}`` names, a sample's
members adjacent, no duplicate member, no extra members.

Spec: POSIX.1-2001 pax interchange format (``tarfile.PAX_FORMAT``), RFC 1952 (gzip).
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator, Mapping
from typing import IO, Any, BinaryIO

from .format import IndexMember, split_sample

__all__ = ["Source", "TarShardWriter", "iter_members", "source_size"]

#: What a member's bytes may come from: bytes, a local path, or a binary file object.
Source = bytes | bytearray | memoryview | str | os.PathLike[str] | BinaryIO

_BLOCK = tarfile.BLOCKSIZE


def source_size(src: Source, size: int | None = None) -> int:
    """The byte size of ``src``: ``len`` of bytes, ``stat`` of a path, ``size`` if given,
    else the remaining length of a seekable file object.

    Raises:
        ValueError: a non-seekable stream without ``size``.
    """
    if size is not None:
        return size
    if isinstance(src, bytes | bytearray | memoryview):
        return len(src)
    if isinstance(src, str | os.PathLike):
        return os.stat(src).st_size
    if src.seekable():
        here = src.tell()
        end = src.seek(0, io.SEEK_END)
        src.seek(here)
        return end - here
    raise ValueError("a non-seekable stream needs its size in bytes (size=...)")


class _Opened:
    """``src`` as a readable binary file for the duration of a ``with``."""

    def __init__(self, src: Source) -> None:
        self._src = src
        self._owned: IO[bytes] | None = None

    def __enter__(self) -> IO[bytes]:
        src = self._src
        if isinstance(src, bytes | bytearray | memoryview):
            return io.BytesIO(src)
        if isinstance(src, str | os.PathLike):
            self._owned = open(src, "rb")
            return self._owned
        return src

    def __exit__(self, *exc: object) -> None:
        if self._owned is not None:
            self._owned.close()


class TarShardWriter:
    """Append members to a tar archive streamed into ``out`` (a writable binary stream).

    Args:
        out: where the archive bytes go (not closed by :meth:`close`).
        compression: ``None`` (plain tar; member offsets are usable for ranged reads) or
            ``"gzip"`` (offsets refer to the uncompressed stream; read sequentially).
        mtime: modification time stored in every header (seconds since the epoch).

    Attributes after writes: ``members`` (IndexMember list, in archive order), ``count``,
    ``data_bytes`` (sum of member sizes) and ``tar_bytes`` (uncompressed archive length so
    far, including headers and padding).
    """

    def __init__(self, out: IO[bytes], *, compression: str | None = None, mtime: int = 0):
        if compression not in (None, "gzip"):
            raise ValueError(f"compression must be None or 'gzip', got {compression!r}")
        mode = "w|gz" if compression == "gzip" else "w|"
        # Closed by close(); stream mode never seeks ``out``.
        self._tar = tarfile.open(  # type: ignore[call-overload]  # noqa: SIM115
            fileobj=out, mode=mode, format=tarfile.PAX_FORMAT
        )
        self.compression = compression
        self._mtime = mtime
        self.members: list[IndexMember] = []
        self.data_bytes = 0
        self._names: set[str] = set()
        self._samples: set[str] = set()
        self._last_sample: str | None = None
        self._closed = False

    @property
    def count(self) -> int:
        """Number of members written."""
        return len(self.members)

    @property
    def tar_bytes(self) -> int:
        """Uncompressed archive bytes written so far (headers, data and padding)."""
        return int(self._tar.offset)

    @property
    def last_sample(self) -> str | None:
        """The sample key of the last member written, or ``None``."""
        return self._last_sample

    def check(self, member_path: str) -> str:
        """Validate ``member_path`` for this shard; return its sample key.

        Raises:
            ValueError: not ``{sample}.{ext}``, already in this shard, or its sample was
                written earlier but not last (WebDataset needs a sample's files adjacent).
        """
        sample, _ext = split_sample(member_path)
        if member_path in self._names:
            raise ValueError(f"duplicate tar member {member_path!r} in one shard")
        if sample in self._samples and sample != self._last_sample:
            raise ValueError(
                f"member {member_path!r}: sample {sample!r} was already closed in this "
                "shard; a sample's files must be added one after another"
            )
        return sample

    def add(
        self,
        member_path: str,
        src: Source,
        *,
        size: int | None = None,
        id: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> IndexMember:
        """Write one member; return its index record (name, data offset, size, id, meta).

        Raises:
            ValueError: see :meth:`check`; or a non-seekable ``src`` without ``size``.
            OSError: reading ``src`` failed, or it was shorter than ``size``.
        """
        if self._closed:
            raise ValueError("the shard is closed")
        sample = self.check(member_path)
        length = source_size(src, size)
        info = tarfile.TarInfo(member_path)
        info.size = length
        info.mtime = self._mtime
        info.mode = 0o644
        with _Opened(src) as fileobj:
            self._tar.addfile(info, fileobj)
        # TarFile.offset is now past the data and its padding to a 512-byte block.
        padded = -(-length // _BLOCK) * _BLOCK
        record = IndexMember(member_path, self.tar_bytes - padded, length, id, meta)
        self.members.append(record)
        self.data_bytes += length
        self._names.add(member_path)
        self._samples.add(sample)
        self._last_sample = sample
        return record

    def discard(self) -> None:
        """Drop the archive without writing its end (the destination is being aborted).

        tarfile's stream would otherwise flush its buffer into ``out`` when collected.
        """
        if not self._closed:
            self._closed = True
            self._tar.closed = True
            stream = self._tar.fileobj
            if stream is not None and hasattr(stream, "buf"):  # tarfile._Stream
                stream.closed = True

    def close(self) -> None:
        """Write the end-of-archive blocks (and the gzip trailer); ``out`` stays open."""
        if not self._closed:
            self._closed = True
            self._tar.close()


def iter_members(
    fileobj: IO[bytes], *, compression: str | None = None
) -> Iterator[tuple[str, bytes]]:
    """Read a tar stream sequentially; yield ``(member name, data)`` for regular files.

    Memory is one member's data. ``compression`` is ``None`` or ``"gzip"``; the stream is
    never seeked (works on a network body).

    Raises:
        tarfile.TarError: the archive is corrupt or truncated.
    """
    mode = "r|gz" if compression == "gzip" else "r|"
    with tarfile.open(fileobj=fileobj, mode=mode) as tar:  # type: ignore[call-overload]
        for info in tar:
            if not info.isfile():
                continue
            handle = tar.extractfile(info)
            if handle is None:  # pragma: no cover - isfile() members always have data
                continue
            with handle:
                yield info.name, handle.read()
