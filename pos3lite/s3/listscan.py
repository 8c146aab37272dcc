"""Scan ListObjectsV2 result pages without building an element tree; pure (standard library).

Rules:

* A page becomes one :class:`ScannedPage`: a list of compact entries, plain tuples
  ``(key, size, last_modified, etag)`` (str, int bytes, float epoch seconds UTC, str without
  quotes, or ``""`` when the caller asked not to keep ETags), the common prefixes, and the
  continuation token. Plain tuples of atomic values are untracked by CPython's cyclic
  garbage collector after its first pass, so listings of millions of keys do not make every
  collection walk them (an ``ObjectInfo`` per key stays tracked for its lifetime).
* The result equals :func:`pos3lite.s3.xml.parse_list_objects_v2` on the same body for every
  document (namespaced or not, any child order, entities, unknown elements); the unit tests
  hold this on a table of pages. Two paths give it: a strict scanner for the shape every S3
  server sends (root ``ListBucketResult`` in the default namespace, flat leaf elements, the
  five predefined entities), which fully matches the document from prolog to end tag and
  falls back, on anything else, to an expat pass with ElementTree's semantics (same
  parser, hence the same well-formedness errors). Neither builds an element tree.
* Keys and prefixes are URL-decoded (form encoding: ``+`` is a space, ``%2B`` a plus) only
  when the page echoes ``<EncodingType>url</EncodingType>``, as botocore does: a server
  that ignores ``encoding-type=url`` sends raw keys, and ``a+b`` must stay ``a+b``.
* Any malformed page (not XML, not a ``ListBucketResult``, truncated without a
  ``NextContinuationToken``, a bad ``Size`` or ``LastModified``) raises
  :class:`MalformedListingError`, a :class:`~pos3lite.errors.TransportError` (an answer that
  is not a usable listing, retryable like a garbled reply) and a :class:`ValueError`.

Spec: Amazon S3 API Reference, "ListObjectsV2" (response elements, ``encoding-type``);
XML 1.0 (Fifth Edition) sections 2.2 (characters), 2.4 (character data), 4.6 (predefined
entities). ``xml.parsers.expat`` is imported on first use of the fallback only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_plus

from ..errors import TransportError
from .xml import parse_iso8601

__all__ = ["Entry", "MalformedListingError", "ScannedPage", "scan_list_objects_v2"]

#: One listed object: (key, size in bytes, LastModified in epoch seconds, ETag or "").
Entry = tuple[str, int, float, str]


class MalformedListingError(TransportError, ValueError):
    """A ListObjectsV2 answer that is not a usable listing page (bad XML, wrong root,
    truncated without a token, a bad Size or LastModified). The message names the problem
    and quotes the start of the body (never a secret: listing bodies carry none)."""


@dataclass(frozen=True, slots=True)
class ScannedPage:
    """One ListObjectsV2 page: ``entries`` (compact tuples, see :data:`Entry`) in the order
    the server sent them, ``common_prefixes`` (decoded), ``next_token`` (``None`` when the
    listing is complete) and ``url_encoded`` (the page echoed ``EncodingType`` ``url``)."""

    entries: list[Entry]
    common_prefixes: list[str]
    next_token: str | None
    url_encoded: bool


def _fail(reason: str, body: bytes) -> MalformedListingError:
    head = body[:120].decode("utf-8", "replace")
    return MalformedListingError(f"malformed ListObjectsV2 answer: {reason} (body starts {head!r})")


# ---------------------------------------------------------------- the strict scanner

_WS = r"[ \t\r\n]*"
_LEAF = r"[^<]*"
_PROLOG = re.compile(
    r"\A\ufeff?(?:<\?xml[ \t\r\n][^?<>]*\?>)?"
    + _WS
    + r'<ListBucketResult(?:[ \t\r\n]+xmlns="[^"<>&]*")?'
    + _WS
    + ">"
)
# One root child per match: Contents (group 1), CommonPrefixes, a leaf, an empty element.
# Inside Contents the four fields (groups 2-5) may come in any order (repeated: the last one
# wins, as the dict in xml.py does); other leaf children, empty ones and Owner are skipped.
# Anything else (attributes, CDATA, an empty Key, a Contents with text) fails the match and
# the page goes to the expat pass.
_NAME = r"[A-Za-z][A-Za-z0-9]*"
_CHILD = re.compile(
    _WS
    + r"(?:(<Contents>)(?:"
    + _WS
    + r"(?:<Key>([^<]*)</Key>|<LastModified>([^<]*)</LastModified>|<ETag>([^<]*)</ETag>"
    + r"|<Size>([^<]*)</Size>"
    + rf"|<(?!(?:Key|LastModified|ETag|Size|Owner)[/>])({_NAME})>[^<]*</\6>"
    + rf"|<(?!(?:Key|LastModified|ETag|Size)/){_NAME}/>"
    + r"|<Owner>(?:"
    + _WS
    + rf"(?:<({_NAME})>[^<]*</\7>|<{_NAME}/>))*"
    + _WS
    + r"</Owner>))*"
    + _WS
    + r"</Contents>"
    + r"|<CommonPrefixes>"
    + _WS
    + r"<Prefix>([^<]*)</Prefix>"
    + _WS
    + r"</CommonPrefixes>"
    + rf"|<(?!(?:Contents|CommonPrefixes)>)({_NAME})>([^<]*)</\9>"
    + rf"|<(?!(?:Contents|CommonPrefixes)/)({_NAME})/>)"
)
_END = re.compile(_WS + r"</ListBucketResult>" + _WS + r"\Z")
# Characters XML 1.0 forbids (section 2.2) or that a parser rewrites (CR, section 2.11);
# with the substrings below, markup the strict scanner leaves to expat (CDATA, comments,
# DOCTYPE, character references, processing instructions). Plain substring tests and one
# character class: a regex alternation here would cost more than the whole scan.
_FORBIDDEN = bytes([*range(0x09), 0x0B, 0x0C, 0x0D, *range(0x0E, 0x20)])
_NONCHARS = (b"\xef\xbf\xbe", b"\xef\xbf\xbf")  # U+FFFE, U+FFFF in UTF-8
_ODD_MARKUP = ("]]>", "<!")
_PREDEFINED = ("&quot;", "&amp;", "&lt;", "&gt;", "&apos;")  # the most frequent first
# Character references: Go's encoding/xml (SeaweedFS, MinIO) writes '"' as "&#34;".
_CHARREF = re.compile(r"&#(?:([0-9]+)|x([0-9a-fA-F]+));")
_ENTITY = re.compile(r"&(?:(lt|gt|amp|quot|apos)|#([0-9]+)|#x([0-9a-fA-F]+));")
_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}


def _xml_char(code: int) -> bool:
    """XML 1.0 section 2.2, production [2] Char."""
    return (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    )


def _entity(m: re.Match[str]) -> str:
    name, dec, hexa = m.groups()
    if name is not None:
        return _ENTITIES[name]
    return chr(int(dec) if dec is not None else int(hexa, 16))  # checked in _scan_strict


_ENCODING = re.compile(r"\A\ufeff?<\?xml[^>]*encoding=[\"']([^\"']*)[\"']")


def _unescape(text: str) -> str:
    return _ENTITY.sub(_entity, text) if "&" in text else text


def _etag(raw: str) -> str:
    # S3 sends the ETag quoted as &quot;...&quot;, Go servers as &#34;...&#34;: slice it
    # without a regex when it is.
    if raw.startswith("&quot;") and raw.endswith("&quot;") and "&" not in raw[6:-6]:
        return raw[6:-6]
    if raw.startswith("&#34;") and raw.endswith("&#34;") and "&" not in raw[5:-5]:
        return raw[5:-5]
    return _unescape(raw).strip('"')


class _Fallback(Exception):
    """The strict scanner met something outside its subset: use the expat pass."""


def _scan_strict(body: bytes, keep_etag: bool) -> ScannedPage:
    if len(body.translate(None, _FORBIDDEN)) != len(body) or any(n in body for n in _NONCHARS):
        raise _Fallback
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _Fallback from None
    enc = _ENCODING.match(text)
    if enc is not None and enc.group(1).lower().replace("_", "-") not in ("utf-8", "utf8"):
        raise _Fallback
    if any(odd in text for odd in _ODD_MARKUP):
        raise _Fallback
    if text.count("<?") > text.startswith(("<?xml", "\ufeff<?xml")):
        raise _Fallback
    amps = text.count("&")
    if amps:
        # Each "&" must start a predefined entity or a character reference to a character
        # XML allows. The common cases cost one str.count over the page each: Go servers
        # quote ETags as &#34;, S3 as &quot;.
        refs = text.count("&#")
        quotes = text.count("&#34;") if refs else 0
        if refs != quotes:  # other character references: check each distinct one
            found = _CHARREF.findall(text)
            for dec, hexa in set(found):
                code = int(dec) if dec else int(hexa, 16)
                if code > 0x10FFFF or not _xml_char(code):
                    raise _Fallback  # not well-formed: expat says so
            rest = amps - len(found)
        else:
            rest = amps - quotes
        for entity in _PREDEFINED:
            if not rest:
                break
            rest -= text.count(entity)
        if rest:
            raise _Fallback  # a bare "&" (not well-formed) or another entity: expat decides
    m = _PROLOG.match(text)
    if m is None:
        raise _Fallback
    pos = m.end()
    child = _CHILD.match
    raw: list[tuple[str | None, str | None, str | None, str | None]] = []
    prefixes: list[str] = []
    leaves: dict[str, str] = {}
    while True:
        m = child(text, pos)
        if m is None or m.end() == pos:
            break
        pos = m.end()
        if m.group(1) is not None:
            raw.append(m.group(2, 3, 4, 5))  # type: ignore[arg-type]
        elif m.group(8) is not None:
            prefixes.append(m.group(8))
        elif m.group(9) is not None:
            leaves.setdefault(m.group(9), m.group(10))  # the first one, as Element.find
        elif m.group(11) is not None:
            leaves.setdefault(m.group(11), "")
    if _END.match(text, pos) is None:
        raise _Fallback
    return _build(
        raw,
        prefixes,
        _unescape(leaves.get("IsTruncated", "")),
        _unescape(leaves.get("NextContinuationToken", "")),
        _unescape(leaves.get("EncodingType", "")),
        keep_etag,
        body,
        escaped=True,
    )


def _build(
    raw: list[tuple[str | None, str | None, str | None, str | None]],
    prefixes: list[str],
    truncated_text: str,
    token_text: str,
    encoding_type: str,
    keep_etag: bool,
    body: bytes,
    *,
    escaped: bool,
) -> ScannedPage:
    url_encoded = encoding_type.strip().lower() == "url"  # as xml.py (and botocore)
    unesc = _unescape if escaped else _identity
    entries: list[Entry] = []
    append = entries.append
    try:
        for key, modified, etag, size in raw:
            k = unesc(key) if key else ""
            if url_encoded and ("%" in k or "+" in k):
                k = unquote_plus(k)
            e = (_etag(etag) if escaped else etag.strip('"')) if keep_etag and etag else ""
            append((k, int(size) if size else 0, parse_iso8601(unesc(modified or "")), e))
    except ValueError as exc:
        raise _fail(str(exc), body) from None
    cps = [unesc(p) for p in prefixes]
    if url_encoded:
        cps = [unquote_plus(p) if ("%" in p or "+" in p) else p for p in cps]
    truncated = truncated_text.lower() == "true"
    token = token_text or None
    if truncated and token is None:
        raise _fail("the page is truncated but has no NextContinuationToken", body)
    return ScannedPage(entries, cps, token if truncated else None, url_encoded)


def _identity(text: str) -> str:
    return text


# ---------------------------------------------------------------- the expat fallback


def _scan_expat(body: bytes, keep_etag: bool) -> ScannedPage:
    """ElementTree's semantics for a ListBucketResult, from expat events (no tree)."""
    import xml.parsers.expat as expat

    parser = expat.ParserCreate(namespace_separator="}")
    parser.buffer_text = True
    # Element names arrive as "uri}local" (or "local" without a namespace); ElementTree
    # writes "{uri}local". Children count only in the root's namespace, as iterfind does.
    state: dict[str, str | None] = {"root": None}
    path: list[str] = []
    texts: list[list[str]] = []  # per open element: its text before its first child
    started_child: list[bool] = []
    raw: list[tuple[str | None, str | None, str | None, str | None]] = []
    prefixes: list[str] = []
    leaves: dict[str, str] = {}
    fields: dict[str, str] = {}
    cp_prefix: list[str] = []

    def start(name: str, attrs: object) -> None:
        if started_child:
            started_child[-1] = True
        if not path:
            state["root"] = name
        path.append(name)
        texts.append([])
        started_child.append(False)

    def end(name: str) -> None:
        text = "".join(texts.pop())
        started_child.pop()
        path.pop()
        root = state["root"] or ""
        ns = root[: root.index("}") + 1] if "}" in root else ""
        depth = len(path)
        if depth == 1:
            if name == ns + "Contents":
                raw.append(
                    (
                        fields.get("Key", ""),
                        fields.get("LastModified", ""),
                        fields.get("ETag", ""),
                        fields.get("Size", ""),
                    )
                )
                fields.clear()
            elif name == ns + "CommonPrefixes":
                prefixes.append(cp_prefix[0] if cp_prefix else "")
                cp_prefix.clear()
            elif name.startswith(ns) and "}" not in name[len(ns) :]:
                leaves.setdefault(name[len(ns) :], text)
        elif depth == 2:
            parent = path[1]
            if parent == ns + "Contents":
                # xml.py keys the dict by the tag with the root's namespace cut off
                fields[name[len(ns) :] if ns else name] = text
            elif parent == ns + "CommonPrefixes" and name == ns + "Prefix" and not cp_prefix:
                cp_prefix.append(text)

    def chars(data: str) -> None:
        if started_child and not started_child[-1]:
            texts[-1].append(data)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    try:
        parser.Parse(body, True)
    except expat.ExpatError as exc:
        raise _fail(f"not well-formed XML ({exc})", body) from None
    root = state["root"] or ""
    ns = root[: root.index("}") + 1] if "}" in root else ""
    if root[len(ns) :] != "ListBucketResult":
        tag = root[len(ns) :] or "nothing"
        raise _fail(f"expected ListBucketResult, got <{tag}>", body)
    return _build(
        raw,
        prefixes,
        leaves.get("IsTruncated", ""),
        leaves.get("NextContinuationToken", ""),
        leaves.get("EncodingType", ""),
        keep_etag,
        body,
        escaped=False,
    )


def scan_list_objects_v2(body: bytes, *, etag: bool = True) -> ScannedPage:
    """Scan one ListObjectsV2 result body (bytes as received) into a :class:`ScannedPage`.

    With ``etag=False`` every entry's ETag is ``""`` (keep it only where a comparison needs
    it: a listing of millions saves about 50 bytes per key). Keys are URL-decoded only when
    the page echoes ``EncodingType`` ``url``. Raises :class:`MalformedListingError` for a
    body that is not a well-formed, complete ListBucketResult page.
    """
    try:
        return _scan_strict(body, etag)
    except _Fallback:
        return _scan_expat(body, etag)
