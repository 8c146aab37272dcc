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
* In front of the strict scanner, a fast path takes the usual page: every ``<Contents>``
  with the first one's children in the same order, no whitespace inside, no entity in a
  field. One regex per such layout (built once) matches a whole element and ``findall``
  pulls the fields of the page out in C; the matches must tile the objects' region
  exactly and the rest of the page is scanned as the strict scanner does. It yields the
  strict scanner's result or declines (the page then goes through the strict scanner), so
  it accepts nothing the strict scanner rejects (unit tests hold both on one table).
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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat
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


def _check_text(text: str) -> None:
    """Raise _Fallback for markup the strict scanner leaves to expat (CDATA, comments,
    DOCTYPE, processing instructions) and for any ``&`` that does not start a predefined
    entity or a reference to a character XML allows."""
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


# ---------------------------------------------------------------- the fast path
#
# Most pages repeat one <Contents> layout: the same children in the same order, no
# whitespace, ETags quoted one way. The fast path reads the layout off the page's first
# <Contents>, builds (once per layout) one regex for a whole element of exactly that
# layout, and lets ``findall`` pull every element's fields out in C. It then checks that
# the matches tile the region from the first <Contents> to the last </Contents> (the
# characters of all matches add up to its length), and scans what lies before and after
# with the strict scanner's own child regex. Every element the layout regex matches is one
# the strict scanner's <Contents> alternative matches over the same characters with the
# same fields; anything else (another layout further down, whitespace, an entity in a
# field, CommonPrefixes between objects) returns None and the page goes through the strict
# scanner from the start, so what is accepted, and what it yields, is the strict scanner's.

_FIELDS = ("Key", "LastModified", "ETag", "Size")
_TOKEN = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)(/?)>([^<]*)")
_WS_ONLY = re.compile(_WS)
_ETAG_QUOTES = ("&quot;", "&#34;")  # S3, Go's encoding/xml


@dataclass(frozen=True, slots=True)
class _Layout:
    """One <Contents> layout: ``regex`` matches a whole element with every variable text
    as a group; ``fixed`` is the element's length outside the groups; ``fields`` the group
    index of Key, LastModified, ETag and Size (-1 when absent)."""

    regex: re.Pattern[str]
    fixed: int
    groups: int
    fields: tuple[int, int, int, int]


_LAYOUTS: dict[tuple[object, ...], _Layout | None] = {}


def _layout(text: str, start: int, end: int) -> _Layout | None:
    """The layout of the <Contents> element ``text[start:end]``, or None (not one the fast
    path takes)."""
    toks = []
    pos = start
    for m in _TOKEN.finditer(text, start, end):
        if m.start() != pos:
            return None
        pos = m.end()
        toks.append(m.groups())
    if pos != end or len(toks) < 2:
        return None
    quote = ""
    for close, name, selfclosing, txt in toks:
        if name == "ETag" and not close and not selfclosing:
            for q in _ETAG_QUOTES:
                if len(txt) >= 2 * len(q) and txt.startswith(q) and txt.endswith(q):
                    quote = q
            break
    sig = (*((c, n, e, t == "") for c, n, e, t in toks), quote)
    if sig in _LAYOUTS:
        return _LAYOUTS[sig]
    layout = _make_layout(toks, quote)
    if len(_LAYOUTS) < 64:
        _LAYOUTS[sig] = layout
    return layout


def _make_layout(toks: list[tuple[str, ...]], quote: str) -> _Layout | None:
    if toks[0] != ("", "Contents", "", "") or toks[-1] != ("/", "Contents", "", ""):
        return None
    pieces: list[str] = ["<Contents>"]
    fixed = len("<Contents>")
    groups = 0
    fields = [-1, -1, -1, -1]

    def lit(s: str) -> None:
        nonlocal fixed
        pieces.append(re.escape(s))
        fixed += len(s)

    def group(pattern: str) -> int:
        nonlocal groups
        pieces.append(pattern)
        groups += 1
        return groups - 1

    i, last = 1, len(toks) - 1
    while i < last:
        close, name, selfclosing, txt = toks[i]
        if close:
            return None
        if selfclosing:  # <X/>: the strict scanner takes it for any X but the four fields
            if name in _FIELDS or txt:
                return None
            lit(f"<{name}/>")
            i += 1
            continue
        if toks[i + 1][:3] == ("/", name, ""):  # a leaf <X>text</X>
            if toks[i + 1][3]:
                return None  # text after it (whitespace): the strict scanner's business
            if name == "Owner":
                if txt:
                    return None
                lit("<Owner></Owner>")
            elif name in _FIELDS:
                f = _FIELDS.index(name)
                if fields[f] >= 0:
                    return None  # a repeated field
                if name == "ETag" and quote:
                    lit(f"<ETag>{quote}")
                    fields[f] = group('([^<&"]*)')
                    lit(f"{quote}</ETag>")
                elif name == "ETag":
                    lit("<ETag>")
                    fields[f] = group('([^<&"]*)')
                    lit("</ETag>")
                else:
                    lit(f"<{name}>")
                    fields[f] = group("([^<&]+)" if name == "Size" else "([^<&]*)")
                    lit(f"</{name}>")
            else:
                lit(f"<{name}>")
                group("([^<&]*)")
                lit(f"</{name}>")
            i += 2
            continue
        if name != "Owner" or txt:  # only Owner has children in the strict scanner
            return None
        lit("<Owner>")
        i += 1
        while i < last and toks[i][:3] != ("/", "Owner", ""):
            close, child, selfclosing, txt = toks[i]
            if close:
                return None
            if selfclosing:
                if txt:
                    return None
                lit(f"<{child}/>")
                i += 1
            elif toks[i + 1][:3] == ("/", child, "") and not toks[i + 1][3]:
                lit(f"<{child}>")
                group("([^<&]*)")
                lit(f"</{child}>")
                i += 2
            else:
                return None
        if i >= last or toks[i][3]:
            return None
        lit("</Owner>")
        i += 1
    if fields[1] < 0:
        return None  # no LastModified: the strict scanner raises the error
    lit("</Contents>")
    f0, f1, f2, f3 = fields
    return _Layout(re.compile("".join(pieces)), fixed, groups, (f0, f1, f2, f3))


def _scan_fast(text: str, pos: int, keep_etag: bool, body: bytes) -> ScannedPage | None:
    """The page after the prolog (ending at ``pos``) through the fast path, or None."""
    first = text.find("<Contents>", pos)
    if first < 0:
        return None
    end = text.find("</Contents>", first)
    if end < 0:
        return None
    layout = _layout(text, first, end + 11)
    if layout is None:
        return None
    last = text.rfind("</Contents>") + 11
    rows = layout.regex.findall(text, first, last)
    n = len(rows)
    cols: list[tuple[str, ...]] = (
        list(zip(*rows, strict=True)) if layout.groups > 1 else [tuple(rows)]
    )
    if n * layout.fixed + sum(sum(map(len, col)) for col in cols) != last - first:
        return None  # the matches do not tile the region
    if "]" in text and "]]>" in text:
        return None  # not well-formed: the strict scanner leaves it to expat
    try:
        _check_text(text[:first])
        _check_text(text[last:])
    except _Fallback:
        return None
    child = _CHILD.match
    prefixes: list[str] = []
    leaves: dict[str, str] = {}
    for lo, hi in ((pos, first), (last, len(text))):
        while True:
            m = child(text, lo, hi)
            if m is None or m.end() == lo:
                break
            lo = m.end()
            if m.group(1) is not None:
                return None
            if m.group(8) is not None:
                prefixes.append(m.group(8))
            elif m.group(9) is not None:
                leaves.setdefault(m.group(9), m.group(10))
            elif m.group(11) is not None:
                leaves.setdefault(m.group(11), "")
        if hi == first:
            if _WS_ONLY.fullmatch(text, lo, first) is None:
                return None
        elif _END.match(text, lo) is None:
            return None
    encoding_type = _unescape(leaves.get("EncodingType", ""))
    kf, mf, ef, sf = layout.fields
    keys: Sequence[str] = cols[kf] if kf >= 0 else [""] * n
    if encoding_type.strip().lower() == "url":  # as _build
        joined = "".join(keys)
        if "%" in joined or "+" in joined:
            keys = [unquote_plus(k) if ("%" in k or "+" in k) else k for k in keys]
    try:
        sizes: Iterable[int] = map(int, cols[sf]) if sf >= 0 else repeat(0, n)
        stamps = {s: parse_iso8601(s) for s in set(cols[mf])}
    except ValueError:
        return None  # the strict scanner raises the error
    etags: Iterable[str] = cols[ef] if keep_etag and ef >= 0 else repeat("", n)
    try:
        entries = list(zip(keys, sizes, map(stamps.__getitem__, cols[mf]), etags, strict=True))
    except ValueError:
        return None
    return _build(
        [],
        prefixes,
        _unescape(leaves.get("IsTruncated", "")),
        _unescape(leaves.get("NextContinuationToken", "")),
        encoding_type,
        keep_etag,
        body,
        escaped=True,
        entries=entries,
    )


def _decode(body: bytes) -> str:
    """The page as text, or _Fallback for bytes the strict scanner leaves to expat
    (characters XML forbids, not UTF-8, another declared encoding)."""
    if len(body.translate(None, _FORBIDDEN)) != len(body):
        raise _Fallback
    # (one-byte searches are memchr: cheap on pages that hold no U+FFFE, U+FFFF or "]")
    if b"\xef" in body and any(n in body for n in _NONCHARS):
        raise _Fallback
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _Fallback from None
    enc = _ENCODING.match(text)
    if enc is not None and enc.group(1).lower().replace("_", "-") not in ("utf-8", "utf8"):
        raise _Fallback
    return text


def _scan_strict(body: bytes, keep_etag: bool, *, fast: bool = True) -> ScannedPage:
    text = _decode(body)
    m = _PROLOG.match(text)
    if m is None:
        raise _Fallback
    pos = m.end()
    page = _scan_fast(text, pos, keep_etag, body) if fast else None
    if page is not None:
        return page
    _check_text(text)
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
    entries: list[Entry] | None = None,
) -> ScannedPage:
    url_encoded = encoding_type.strip().lower() == "url"  # as xml.py (and botocore)
    unesc = _unescape if escaped else _identity
    if entries is None:
        entries = []
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
