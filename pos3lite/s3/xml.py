"""Parse and build the XML bodies of the S3 REST API; pure (standard library only).

Covers ListObjectsV2 results (with ``encoding-type=url``), error responses, the DeleteObjects
request and its result. Spec: Amazon S3 API Reference pages "ListObjectsV2", "DeleteObjects",
"Error responses". ``xml.etree`` is imported here, and this module is imported by the S3
client on first use, never by ``import pos3lite``.
"""

from __future__ import annotations

import calendar
import functools
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote_plus

__all__ = [
    "MAX_BODY",
    "DeleteResult",
    "ErrorInfo",
    "ListPage",
    "ObjectInfo",
    "build_complete_multipart",
    "build_delete_objects",
    "parse_complete_multipart",
    "parse_delete_result",
    "parse_error",
    "parse_http_date",
    "parse_initiate_multipart",
    "parse_iso8601",
    "parse_list_multipart_uploads",
    "parse_list_objects_v2",
    "peek_continuation_token",
    "xml_can_carry",
]

#: The largest XML answer body read (listing pages, error bodies, multipart results), bytes.
#: A ListObjectsV2 page of 1000 keys of 1024 bytes each is about 1.3 MiB; anything beyond
#: this is not an S3 answer (a proxy page, a runaway stream) and is refused unread.
MAX_BODY = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One object from a listing or a HEAD: ``key``, ``size`` (bytes), ``last_modified``
    (seconds since the Unix epoch, UTC) and ``etag`` (without quotes)."""

    key: str
    size: int
    last_modified: float
    etag: str


@dataclass(frozen=True, slots=True)
class ListPage:
    """One ListObjectsV2 page: objects, common prefixes (with delimiter) and the
    continuation token for the next page (``None`` when the listing is complete)."""

    objects: tuple[ObjectInfo, ...]
    common_prefixes: tuple[str, ...]
    next_token: str | None


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """The fields of an S3 ``<Error>`` body; empty strings when absent."""

    code: str
    message: str
    request_id: str
    region: str


@dataclass(frozen=True, slots=True)
class DeleteResult:
    """DeleteObjects outcome: keys deleted, and (key, code, message) for each key that was not."""

    deleted: tuple[str, ...]
    errors: tuple[tuple[str, str, str], ...]


def _parse(body: bytes) -> tuple[ET.Element, str, str]:
    """Parse ``body``; return the root, its namespace prefix (``"{uri}"`` or ``""``; S3
    answers in the 2006-03-01 namespace, some compatible stores in none) and its local tag."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        # ParseError is a SyntaxError: callers catch ValueError for every malformed answer.
        raise ValueError(f"not well-formed XML ({exc}): {body[:60]!r}") from None
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    return root, ns, root.tag[len(ns) :]


def _text(el: ET.Element | None, name: str) -> str:
    if el is None:
        return ""
    child = el.find(name)
    return child.text or "" if child is not None else ""


def escape(text: str) -> str:
    """Escape ``&``, ``<`` and ``>`` for XML character data, and write ``\\r``, ``\\n`` and
    ``\\t`` as character references: a parser normalises literal line ends (``\\r\\n`` and
    ``\\r`` become ``\\n``, XML 1.0 section 2.11), so a key ``a\\rb`` sent literally arrives
    as ``a\\nb`` and names another object."""
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("\r", "&#13;")
        .replace("\n", "&#10;")
        .replace("\t", "&#9;")
    )


# XML 1.0 "Char": tab, line feed, carriage return and the ranges below; nothing else can be
# written in a document at all, not even as a character reference. Compiled on first use:
# the character class costs ~10 ms to compile, a third of this module's import.
_NOT_XML_CHAR = "[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"


def xml_can_carry(text: str) -> bool:
    """True if ``text`` can be written in an XML 1.0 document (see :func:`escape`).

    False for C0 controls other than tab, LF and CR, lone surrogates, U+FFFE and U+FFFF;
    such keys must be deleted with a single DeleteObject, never inside DeleteObjects.
    """
    if text.isascii():
        # C speed for the usual key: printable ASCII plus tab, LF and CR are all Chars.
        return text.isprintable() or all(c >= " " or c in "\t\n\r" for c in text)
    return re.search(_NOT_XML_CHAR, text) is None


_ISO_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?$"
)


@functools.lru_cache(maxsize=4096)
def parse_iso8601(value: str) -> float:
    """Parse an S3 timestamp such as ``2026-11-21T23:03:25.000Z`` to epoch seconds (float).

    Raises ValueError naming the value if it is not ISO 8601. Cached: a listing repeats the
    same LastModified second many times.
    """
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = None
    if parsed is not None and parsed.tzinfo is not None:
        return parsed.timestamp()
    m = _ISO_RE.match(text)
    if not m:
        raise ValueError(f"not an ISO 8601 timestamp: {value!r}")
    y, mo, d, h, mi, sec, frac, tz = m.groups()
    seconds: float = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(sec), 0, 0, 0))
    if frac:
        seconds += float("0." + frac)
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        seconds -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return float(seconds)


@functools.lru_cache(maxsize=1024)  # GETs of one listing repeat the same second
def parse_http_date(value: str) -> float:
    """Parse an RFC 7231 IMF-fixdate (``Last-Modified``, ``Date``) to epoch seconds.

    Raises ValueError naming the value if it cannot be parsed.
    """
    from email.utils import parsedate_to_datetime

    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"not an HTTP date: {value!r}") from exc


_TRUNCATED_RE = re.compile(rb"<IsTruncated>\s*true\s*</IsTruncated>")
_TOKEN_RE = re.compile(rb"<NextContinuationToken>([^<]*)</NextContinuationToken>")
# "&amp;" last, so "&amp;lt;" becomes "&lt;" and not "<".
_ENTITIES = {"&lt;": "<", "&gt;": ">", "&quot;": '"', "&apos;": "'", "&amp;": "&"}


def peek_continuation_token(body: bytes) -> str | None:
    """The NextContinuationToken of a truncated ListObjectsV2 body, found without parsing
    the whole document (so the next page can be requested while this one is parsed);
    ``None`` if the page is not truncated. The caller checks it against the parser's.
    """
    if not _TRUNCATED_RE.search(body):
        return None
    m = _TOKEN_RE.search(body)
    if m is None:
        return None
    token = m.group(1).decode("utf-8", "replace")
    for entity, char in _ENTITIES.items():
        token = token.replace(entity, char)
    return token


def parse_list_objects_v2(body: bytes, *, url_encoded: bool = True) -> ListPage:
    """Parse a ListObjectsV2 result body.

    Keys and prefixes are decoded the way S3 encodes them (form encoding: ``+`` is a space,
    ``%2B`` a plus) only when the body echoes ``<EncodingType>url</EncodingType>``, as
    botocore does: a server that ignored ``encoding-type=url`` (s3rver) sends raw keys, and
    decoding ``a+b.txt`` would name another object. ``url_encoded=False`` never decodes.
    Raises ValueError when the body is not a well-formed ListBucketResult.
    """
    root, ns, tag = _parse(body)
    if tag != "ListBucketResult":
        raise ValueError(f"expected ListBucketResult, got <{tag}>")
    url_encoded = url_encoded and _text(root, ns + "EncodingType").strip().lower() == "url"

    def dec(s: str) -> str:
        return unquote_plus(s) if url_encoded and ("%" in s or "+" in s) else s

    cut = len(ns)
    objects = []
    for c in root.iterfind(ns + "Contents"):
        fields = {child.tag[cut:]: child.text or "" for child in c}
        objects.append(
            ObjectInfo(
                key=dec(fields.get("Key", "")),
                size=int(fields.get("Size") or 0),
                last_modified=parse_iso8601(fields.get("LastModified", "")),
                etag=fields.get("ETag", "").strip('"'),
            )
        )
    prefixes = tuple(dec(_text(p, ns + "Prefix")) for p in root.iterfind(ns + "CommonPrefixes"))
    truncated = _text(root, ns + "IsTruncated").lower() == "true"
    token = _text(root, ns + "NextContinuationToken") or None
    if truncated and token is None:
        raise ValueError("ListObjectsV2 page is truncated but has no NextContinuationToken")
    return ListPage(tuple(objects), prefixes, token if truncated else None)


def parse_error(body: bytes) -> ErrorInfo | None:
    """Parse an S3 ``<Error>`` body; ``None`` if the body is empty or not an error document."""
    if not body.strip():
        return None
    try:
        root, ns, tag = _parse(body)
    except ValueError:
        return None
    if tag != "Error":
        return None
    return ErrorInfo(
        code=_text(root, ns + "Code"),
        message=_text(root, ns + "Message"),
        request_id=_text(root, ns + "RequestId"),
        region=_text(root, ns + "Region"),
    )


def build_delete_objects(keys: Sequence[str], *, quiet: bool = True) -> bytes:
    """Build the DeleteObjects request body for up to 1000 keys (UTF-8 bytes).

    ``\\r``, ``\\n`` and ``\\t`` are written as character references (see :func:`escape`).
    Raises ValueError for an empty batch, more than 1000 keys (the S3 limit), or a key XML
    cannot carry (see :func:`xml_can_carry`; delete those one by one).
    """
    if not keys or len(keys) > 1000:
        raise ValueError(f"DeleteObjects takes 1..1000 keys, got {len(keys)}")
    for key in keys:
        if not xml_can_carry(key):
            raise ValueError(f"key {key!r} cannot be written in XML; delete it on its own")
    parts = ['<?xml version="1.0" encoding="UTF-8"?><Delete>']
    if quiet:
        parts.append("<Quiet>true</Quiet>")
    for key in keys:
        parts.append(f"<Object><Key>{escape(key)}</Key></Object>")
    parts.append("</Delete>")
    return "".join(parts).encode("utf-8")


def parse_delete_result(body: bytes) -> DeleteResult:
    """Parse a DeleteObjects result: deleted keys and per-key (key, code, message) errors."""
    root, ns, tag = _parse(body)
    if tag != "DeleteResult":
        raise ValueError(f"expected DeleteResult, got <{tag}>")
    deleted = tuple(_text(d, ns + "Key") for d in root.iterfind(ns + "Deleted"))
    errors = tuple(
        (_text(e, ns + "Key"), _text(e, ns + "Code"), _text(e, ns + "Message"))
        for e in root.iterfind(ns + "Error")
    )
    return DeleteResult(deleted, errors)


def parse_initiate_multipart(body: bytes) -> str:
    """The UploadId of a CreateMultipartUpload result.

    Any root element carrying an ``UploadId`` is accepted (rclone answers
    ``<InitiateMultipartUpload>``, not ``<InitiateMultipartUploadResult>``): an UploadId
    that was issued must be read, or the upload could never be aborted. Raises ValueError
    for an ``<Error>`` body or a body without an UploadId.
    """
    root, ns, tag = _parse(body)
    upload_id = _text(root, ns + "UploadId").strip()
    if tag == "Error" or not upload_id:
        raise ValueError(f"expected a CreateMultipartUpload result with an UploadId, got <{tag}>")
    return upload_id


def parse_list_multipart_uploads(body: bytes) -> list[tuple[str, str, float]]:
    """``(key, upload_id, initiated)`` for each ``<Upload>`` of a ListMultipartUploads
    result (``initiated`` in epoch seconds; 0.0 when absent). Keys are not URL-decoded
    (the request does not ask for ``encoding-type``). Raises ValueError when malformed.
    """
    root, ns, tag = _parse(body)
    if tag != "ListMultipartUploadsResult":
        raise ValueError(f"expected ListMultipartUploadsResult, got <{tag}>")
    out = []
    for u in root.iterfind(ns + "Upload"):
        initiated = _text(u, ns + "Initiated")
        out.append(
            (
                _text(u, ns + "Key"),
                _text(u, ns + "UploadId"),
                parse_iso8601(initiated) if initiated else 0.0,
            )
        )
    return out


def build_complete_multipart(parts: Sequence[tuple[int, str]]) -> bytes:
    """The CompleteMultipartUpload body for ``(part_number, etag)`` pairs in part order.

    Raises ValueError for no parts, more than 10,000, or part numbers not strictly rising.
    """
    if not parts or len(parts) > 10_000:
        raise ValueError(f"a multipart upload has 1..10000 parts, got {len(parts)}")
    numbers = [n for n, _ in parts]
    if numbers != sorted(set(numbers)) or numbers[0] < 1:
        raise ValueError("part numbers must rise strictly from 1")
    items = "".join(
        f"<Part><PartNumber>{n}</PartNumber><ETag>&quot;{escape(e.strip(chr(34)))}&quot;</ETag></Part>"
        for n, e in parts
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{items}'
        "</CompleteMultipartUpload>"
    ).encode()


def parse_complete_multipart(body: bytes) -> str:
    """The ETag (no quotes) of a CompleteMultipartUpload result. Raises ValueError."""
    root, ns, tag = _parse(body)
    if tag != "CompleteMultipartUploadResult":
        raise ValueError(f"expected CompleteMultipartUploadResult, got <{tag}>")
    return _text(root, ns + "ETag").strip('"')


def build_complete_multipart_checksums(parts: Sequence[tuple[int, str, str]], name: str) -> bytes:
    """The CompleteMultipartUpload body for ``(part_number, etag, checksum)`` triples, each
    part carrying its checksum element ``name`` (e.g. ``"ChecksumCRC32"``, base64 value).

    Raises ValueError like :func:`build_complete_multipart`.
    """
    plain = build_complete_multipart([(n, e) for n, e, _ in parts])
    if not name.isalnum():
        raise ValueError(f"invalid checksum element name {name!r}")
    for n, e, value in parts:
        before = f"<PartNumber>{n}</PartNumber><ETag>&quot;{escape(e.strip(chr(34)))}&quot;</ETag>"
        after = before + f"<{name}>{escape(value)}</{name}>"
        plain = plain.replace(before.encode(), after.encode(), 1)
    return plain


def parse_copy_result(body: bytes) -> str:
    """The ETag (no quotes) of a CopyObjectResult or CopyPartResult. Raises ValueError."""
    root, ns, tag = _parse(body)
    if tag not in ("CopyObjectResult", "CopyPartResult"):
        raise ValueError(f"expected CopyObjectResult or CopyPartResult, got <{tag}>")
    return _text(root, ns + "ETag").strip('"')
