"""The dataset manifest and shard formats: pure parsing and serialisation, no I/O.

A manifest is JSON Lines (one JSON object per line, UTF-8), the format s3exchange 0.1.1
reads and writes. Three kinds of entry are understood::

    {"kind": "file", "key": ..., "id"?: ..., "meta"?: {...}, "size_bytes"?: n, "etag"?: ...}
    {"kind": "shard", "archive_key": ..., "format": "tar", "compression": null | "gzip",
     "count": n, "size_bytes": n, "etag": ..., "index_key"?: ...}
    {"kind": "manifest_ref", "key": ...}

Keys are object keys in the manifest's bucket. Rules:

* Unknown kinds and unknown fields are preserved verbatim: rewrites copy the original line
  bytes, never a re-serialised dict.
* A line that does not parse, or a known kind without its required fields, raises
  :class:`~pos3lite.errors.InvalidManifestError` naming the manifest key and the 1-based
  line number; it is never skipped and never treated as an empty manifest.
* Blank lines are ignored (s3exchange writes none, editors add a trailing one).

Tar shards follow the WebDataset layout: member ``{sample}.{ext}`` where ``sample`` is the
member path up to the first dot of its last segment, a sample's members adjacent, nothing
else in the archive. A sidecar index ``<shard>.idx.json`` records each member's data offset
and size so one member is one ranged GET.

Spec: JSON Lines (https://jsonlines.org), RFC 8259 (JSON); the WebDataset format
(https://github.com/webdataset/webdataset, "The WebDataset Format") and its WIDS shard list.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidManifestError

__all__ = [
    "INDEX_VERSION",
    "IndexMember",
    "ShardIndex",
    "check_entry",
    "expand_braces",
    "file_entry",
    "iter_lines",
    "parse_index",
    "parse_line",
    "parse_lines",
    "ref_entry",
    "serialise",
    "serialise_index",
    "shard_entry",
    "split_sample",
    "wids_shardlist",
]

INDEX_VERSION = 1
KNOWN_KINDS = ("file", "shard", "manifest_ref")
_REQUIRED: Mapping[str, tuple[str, ...]] = {
    "file": ("key",),
    "shard": ("archive_key",),
    "manifest_ref": ("key",),
}
_COMPRESSIONS = (None, "gzip")


def check_entry(entry: Mapping[str, Any], *, where: str = "entry") -> None:
    """Validate one entry: a JSON object with a string ``kind``; known kinds carry their
    required string fields (``key`` or ``archive_key``) and shards a known format.

    Raises:
        InvalidManifestError: naming ``where`` and the problem.
    """
    if not isinstance(entry, Mapping):
        raise InvalidManifestError(f"{where}: not a JSON object: {entry!r}")
    kind = entry.get("kind")
    if not isinstance(kind, str):
        raise InvalidManifestError(f"{where}: 'kind' must be a string, got {kind!r}")
    for name in _REQUIRED.get(kind, ()):
        value = entry.get(name)
        if not isinstance(value, str) or not value:
            raise InvalidManifestError(
                f"{where}: a {kind!r} entry needs a non-empty string {name!r}, got {value!r}"
            )
    if kind == "shard":
        fmt = entry.get("format", "tar")
        if fmt != "tar":
            raise InvalidManifestError(f"{where}: unsupported shard format {fmt!r}")
        if entry.get("compression") not in _COMPRESSIONS:
            raise InvalidManifestError(
                f"{where}: unsupported shard compression {entry.get('compression')!r}"
            )


def parse_line(raw: bytes | str, *, key: str, line_number: int) -> dict[str, Any]:
    """Parse one manifest line (bytes or text, trailing newline allowed) into a dict.

    Raises:
        InvalidManifestError: the line is not UTF-8 JSON, not an object, or a known kind
            misses a required field; the message names ``key`` and ``line_number``.
    """
    where = f"manifest {key!r} line {line_number}"
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        value = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidManifestError(
            f"{where}: not valid JSON: {exc}", key=key, line_number=line_number
        ) from None
    try:
        check_entry(value, where=where)
    except InvalidManifestError as exc:
        raise InvalidManifestError(str(exc), key=key, line_number=line_number) from None
    out: dict[str, Any] = value
    return out


def iter_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Split a stream of byte chunks into lines (without the ``\\n``), incrementally.

    Memory is one line plus one chunk. A final line without a newline is yielded too.
    """
    pending = b""
    for chunk in chunks:
        if not chunk:
            continue
        pending += chunk
        *lines, pending = pending.split(b"\n")
        yield from lines
    if pending:
        yield pending


def parse_lines(chunks: Iterable[bytes], *, key: str) -> Iterator[tuple[bytes, dict[str, Any]]]:
    """Parse a manifest body streamed as byte chunks; yield ``(raw_line, entry)``.

    ``raw_line`` is the line's exact bytes without the newline (so a rewrite can copy it
    verbatim). Blank lines are skipped; ``\\r\\n`` endings are accepted.

    Raises:
        InvalidManifestError: on the first bad line (key and line number in the message).
    """
    for number, line in enumerate(iter_lines(chunks), start=1):
        raw = line[:-1] if line.endswith(b"\r") else line
        if not raw.strip():
            continue
        yield raw, parse_line(raw, key=key, line_number=number)


def serialise(entry: Mapping[str, Any]) -> bytes:
    """One entry as a compact JSON line, UTF-8, ending in ``\\n`` (field order kept).

    Raises:
        InvalidManifestError: the entry is not valid (see :func:`check_entry`).
        TypeError: a value is not JSON-serialisable.
    """
    check_entry(entry)
    return json.dumps(entry, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


def _drop_none(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if v is not None}


def file_entry(
    key: str,
    *,
    id: str | None = None,
    meta: Mapping[str, Any] | None = None,
    size_bytes: int | None = None,
    etag: str | None = None,
) -> dict[str, Any]:
    """A ``file`` entry for the object ``key``; absent optional fields are left out."""
    return _drop_none(
        {
            "kind": "file",
            "key": key,
            "id": id,
            "meta": dict(meta) if meta is not None else None,
            "size_bytes": size_bytes,
            "etag": etag,
        }
    )


def shard_entry(
    archive_key: str,
    *,
    count: int,
    size_bytes: int,
    etag: str,
    compression: str | None = None,
    index_key: str | None = None,
) -> dict[str, Any]:
    """A ``shard`` entry for a tar archive (``compression`` is ``None`` or ``"gzip"``)."""
    if compression not in _COMPRESSIONS:
        raise ValueError(f"compression must be None or 'gzip', got {compression!r}")
    entry: dict[str, Any] = {
        "kind": "shard",
        "archive_key": archive_key,
        "format": "tar",
        "compression": compression,
        "count": count,
        "size_bytes": size_bytes,
        "etag": etag,
    }
    if index_key is not None:
        entry["index_key"] = index_key
    return entry


def ref_entry(key: str) -> dict[str, Any]:
    """A ``manifest_ref`` entry pointing at the manifest object ``key``."""
    return {"kind": "manifest_ref", "key": key}


# ---------------------------------------------------------------------------- shard index


@dataclass(frozen=True, slots=True)
class IndexMember:
    """One tar member: its ``name``, the byte ``offset`` of its data in the uncompressed
    archive, its ``size`` in bytes, and the caller's ``id`` and ``meta`` (or ``None``)."""

    name: str
    offset: int
    size: int
    id: str | None = None
    meta: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ShardIndex:
    """The sidecar index of one shard (``<shard>.idx.json``)."""

    archive_key: str
    members: tuple[IndexMember, ...]


def serialise_index(index: ShardIndex) -> bytes:
    """The index as JSON bytes: ``{"version": 1, "archive_key", "members": [{"name",
    "offset", "size", "id"?, "meta"?}]}``."""
    members = []
    for m in index.members:
        item: dict[str, Any] = {"name": m.name, "offset": m.offset, "size": m.size}
        if m.id is not None:
            item["id"] = m.id
        if m.meta is not None:
            item["meta"] = dict(m.meta)
        members.append(item)
    doc = {"version": INDEX_VERSION, "archive_key": index.archive_key, "members": members}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def parse_index(data: bytes, *, key: str) -> ShardIndex:
    """Parse a sidecar index.

    Raises:
        InvalidManifestError: not JSON, an unknown version, or a member without a string
            name and non-negative integer offset and size; the message names ``key``.
    """
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidManifestError(f"shard index {key!r}: not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("version") != INDEX_VERSION:
        raise InvalidManifestError(f"shard index {key!r}: not a version {INDEX_VERSION} index")
    members = []
    for number, item in enumerate(doc.get("members", [])):
        ok = (
            isinstance(item, dict)
            and isinstance(item.get("name"), str)
            and isinstance(item.get("offset"), int)
            and isinstance(item.get("size"), int)
            and item["offset"] >= 0
            and item["size"] >= 0
        )
        if not ok:
            raise InvalidManifestError(f"shard index {key!r}: bad member {number}: {item!r}")
        members.append(
            IndexMember(
                item["name"], item["offset"], item["size"], item.get("id"), item.get("meta")
            )
        )
    return ShardIndex(str(doc.get("archive_key", "")), tuple(members))


# ---------------------------------------------------------------------------- WebDataset

# WebDataset's own rule (webdataset.tariterators.base_plus_ext): the sample key is the path
# up to the first dot of the last path segment; the rest is the extension.
_SAMPLE = re.compile(r"^((?:.*/|)[^./]+)\.([^/]+)$")


def split_sample(member_path: str) -> tuple[str, str]:
    """Split a member path into ``(sample, ext)`` as WebDataset does.

    ``"train/0001.jpg"`` gives ``("train/0001", "jpg")``; ``"0001.seg.png"`` gives
    ``("0001", "seg.png")``.

    Raises:
        ValueError: the path has no extension, a leading dot in its last segment, an empty
            segment, a ``..`` segment, a leading ``/`` or a NUL (tar readers would skip or
            misplace it).
    """
    segments = member_path.split("/")
    if (
        not member_path
        or member_path.startswith("/")
        or "\0" in member_path
        or any(s in ("", ".", "..") for s in segments)
    ):
        raise ValueError(f"unsafe tar member path {member_path!r}")
    match = _SAMPLE.match(member_path)
    if match is None:
        raise ValueError(
            f"tar member path {member_path!r} is not of the WebDataset form "
            "'{sample}.{ext}' (an extension after the sample name is required)"
        )
    return match.group(1), match.group(2)


_BRACE = re.compile(r"\{([^{}]*)\}")


def expand_braces(pattern: str) -> list[str]:
    """Expand shell-style braces as WebDataset's shard lists do.

    ``{000..002}`` is a zero-padded numeric range (inclusive, width of the first bound),
    ``{a,b}`` an alternative; several groups multiply, left to right.

    Raises:
        ValueError: an empty or descending range, or unbalanced braces.
    """
    match = _BRACE.search(pattern)
    if match is None:
        if "{" in pattern or "}" in pattern:
            raise ValueError(f"unbalanced braces in {pattern!r}")
        return [pattern]
    body = match.group(1)
    head, tail = pattern[: match.start()], pattern[match.end() :]
    if ".." in body:
        lo, _, hi = body.partition("..")
        if not (lo.isdigit() and hi.isdigit()) or int(hi) < int(lo):
            raise ValueError(f"bad range {{{body}}} in {pattern!r}")
        width = len(lo)
        options = [str(n).zfill(width) for n in range(int(lo), int(hi) + 1)]
    else:
        options = body.split(",")
    return [head + opt + rest for opt in options for rest in expand_braces(tail)]


def brace_range(prefix: str, first: int, last: int, suffix: str, *, width: int = 6) -> str:
    """``prefix{first..last}suffix`` with zero-padded numbers (one name if first == last)."""
    if first == last:
        return f"{prefix}{first:0{width}d}{suffix}"
    return f"{prefix}{{{first:0{width}d}..{last:0{width}d}}}{suffix}"


def wids_shardlist(shards: Iterable[tuple[str, int]], *, name: str | None = None) -> bytes:
    """A WIDS shard list: ``{"wids_version": 1, "shardlist": [{"url", "nsamples"}]}``.

    ``shards`` gives ``(url, nsamples)`` pairs in order; ``url`` may be relative to the
    shard list's own location (WIDS resolves it against that).
    """
    doc: dict[str, Any] = {"wids_version": 1}
    if name is not None:
        doc["name"] = name
    doc["shardlist"] = [{"url": url, "nsamples": n} for url, n in shards]
    return json.dumps(doc, indent=1, ensure_ascii=False).encode("utf-8") + b"\n"
