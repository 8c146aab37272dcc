"""The listing scanner's fast path (one regex per <Contents> layout, fields pulled out by
``findall``) against the strict scanner it short-cuts: on every page of the scanner's tables
and on pages built to trip it, the fast path either declines (``None``) or gives exactly
the strict scanner's result, and the whole scan gives the tree parser's result."""

from __future__ import annotations

import pytest

from pos3lite.s3 import listscan
from pos3lite.s3.listscan import MalformedListingError, ScannedPage, scan_list_objects_v2

from .test_listscan import LM, MALFORMED, NS, ODD_KEYS, PAGES, _tree, listing

HEAD = f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult {NS}><Name>b</Name>'
AWS_ITEM = (
    "<Contents><Key>{k}</Key><LastModified>2026-11-21T23:03:25.000Z</LastModified>"
    "<ETag>&quot;{e}&quot;</ETag><Size>{s}</Size><StorageClass>STANDARD</StorageClass>"
    "</Contents>"
)
GO_ITEM = (
    "<Contents><Key>{k}</Key><ETag>&#34;{e}&#34;</ETag><Size>{s}</Size>"
    "<Owner><ID>o</ID><DisplayName></DisplayName></Owner><StorageClass>STANDARD"
    "</StorageClass><LastModified>2026-12-07T14:18:01Z</LastModified></Contents>"
)


def _page(items: str, *, head: str = HEAD, tail: str = "", echo: bool = True) -> bytes:
    enc = "<EncodingType>url</EncodingType>" if echo else ""
    return (f"{head}{enc}<IsTruncated>false</IsTruncated>{items}{tail}</ListBucketResult>").encode()


def _aws(n: int, **kw: str) -> str:
    return "".join(
        AWS_ITEM.format(k=kw.get("k", f"d/f{i:04d}.bin"), e=f"{i:032x}", s=i) for i in range(n)
    )


def _go(n: int) -> str:
    return "".join(GO_ITEM.format(k=f"d/f{i:04d}", e=f"{i:032x}", s=i) for i in range(n))


# Pages the fast path must take, and pages built so that a careless fast path would
# accept something the strict scanner does not, or read it differently.
FAST = {
    "AWS layout": _page(_aws(50)),
    "Go layout (Owner, ETag quoted as &#34;)": _page(_go(50), tail="<KeyCount>50</KeyCount>"),
    "keys to URL-decode": _page(_aws(3, k="a+b%2Bc%20d")),
    "keys not decoded without the echo": _page(_aws(3, k="a+b%2Bc"), echo=False),
    "bare ETags": _page(_aws(3).replace("&quot;", "")),
    "common prefixes after the objects": _page(
        _aws(3), tail="<CommonPrefixes><Prefix>p+q/</Prefix></CommonPrefixes>"
    ),
    "token after the objects": _page(
        _aws(2), tail="<NextContinuationToken>x&amp;y</NextContinuationToken>"
    ).replace(b"<IsTruncated>false", b"<IsTruncated>true"),
    "self-closing and empty Owner": _page(
        _aws(2).replace("<StorageClass>", "<Owner></Owner><Checksum/><StorageClass>")
    ),
    "whitespace before the first object and after the last": _page(
        "\n  " + _aws(2) + "\n", tail="<KeyCount>2</KeyCount>\n"
    ),
    "empty ETag and key": _page((AWS_ITEM.format(k="", e="", s=1) + _aws(1)).replace("&quot;", "")),
}
DECLINE = {
    "whitespace between objects": _page(_aws(2).replace("</Contents><", "</Contents>\n<")),
    "whitespace inside an object": _page(_aws(2).replace("<Size>", " <Size>")),
    "a later object with another layout": _page(
        _aws(2) + _aws(1).replace("<StorageClass>STANDARD</StorageClass>", "")
    ),
    "a later object with fields in another order": _page(
        _aws(1)
        + "<Contents><Size>1</Size><Key>z</Key>"
        + LM
        + "<ETag>&quot;e&quot;</ETag><StorageClass>S</StorageClass></Contents>"
    ),
    "a later ETag quoted another way": _page(_aws(1) + _aws(1).replace("&quot;", "&#34;")),
    "an entity in a later key": _page(_aws(1) + _aws(1, k="a&amp;b")),
    "a character reference in a key": _page(_aws(1, k="a&#x41;b")),
    "an entity in the first key": _page(_aws(2, k="a&lt;b")),
    "common prefixes between objects": _page(
        _aws(1) + "<CommonPrefixes><Prefix>p/</Prefix></CommonPrefixes>" + _aws(1)
    ),
    "text between objects": _page(_aws(1) + "junk" + _aws(1)),
    "a repeated field": _page(_aws(2).replace("<Size>", "<Size>9</Size><Size>")),
    "a self-closing field": _page(_aws(2).replace("<ETag>", "<ETag/><X>")),
    "Owner with text": _page(_aws(2).replace("<StorageClass>", "<Owner>me</Owner><StorageClass>")),
    "a nested unknown element": _page(
        _aws(2).replace("<StorageClass>", "<R><I>x</I></R><StorageClass>")
    ),
    "an empty Size": _page(_aws(2).replace("<Size>0</Size>", "<Size></Size>")),
    "no LastModified": _page(
        _aws(2).replace("<LastModified>2026-11-21T23:03:25.000Z</LastModified>", "")
    ),
    "a bad Size": _page(_aws(2).replace("<Size>1</Size>", "<Size>x</Size>")),
    "a bad LastModified": _page(_aws(2).replace("2026-11-21T23", "yesterday", 1)),
    "a bare & before the objects": _page(_aws(2), head=HEAD.replace("<Name>b", "<Name>a&b")),
    "CDATA after the objects": _page(_aws(2), tail="<X><![CDATA[y]]></X>"),
    "]]> in a key": _page(_aws(2, k="a]]>b"), echo=False),
    "an unclosed object at the end": _page(_aws(2) + "<Contents><Key>k</Key>"),
    "an element around the objects": _page("<Wrap>" + _aws(2) + "</Wrap>"),
    "an object after trailing leaves": _page(_aws(1) + "<KeyCount>2</KeyCount>" + _aws(1)),
    "attributes on an object": _page(_aws(2).replace("<Contents>", '<Contents a="1">', 1)),
    "a U+FFFF in a key": _page(_aws(2, k="a\uffffb"), echo=False),
    "a control character in a key": _page(_aws(2, k="a\x01b"), echo=False),
    "junk after the root": _page(_aws(2)) + b"<more/>",
}
TABLE = {**PAGES, **MALFORMED, **FAST, **DECLINE}


def _strict(body: bytes, etag: bool = True) -> ScannedPage | None:
    """The strict scanner with the fast path off; None where it leaves the page to expat."""
    try:
        return listscan._scan_strict(body, etag, fast=False)
    except listscan._Fallback:
        return None
    except MalformedListingError:
        return None


def _fast(body: bytes, etag: bool = True) -> ScannedPage | None:
    try:
        text = listscan._decode(body)  # the checks _scan_strict makes before the fast path
    except listscan._Fallback:
        return None
    m = listscan._PROLOG.match(text)
    if m is None:
        return None
    try:
        return listscan._scan_fast(text, m.end(), etag, body)
    except MalformedListingError:
        pytest.fail("the fast path raised instead of declining")


@pytest.mark.parametrize("name", list(TABLE))
@pytest.mark.parametrize("etag", [True, False])
def test_the_fast_path_declines_or_agrees_with_the_strict_scanner(name: str, etag: bool) -> None:
    body = TABLE[name]
    fast = _fast(body, etag)
    if fast is not None:
        assert fast == _strict(body, etag)
        assert fast == scan_list_objects_v2(body, etag=etag)


@pytest.mark.parametrize("name", list(FAST))
def test_s3_shaped_pages_take_the_fast_path_and_match_the_tree_parser(name: str) -> None:
    body = FAST[name]
    fast = _fast(body)
    assert fast is not None, "the fast path declined a page it is meant for"
    assert fast == _tree(body)
    assert fast.entries, "the page lists objects"


@pytest.mark.parametrize("name", list(DECLINE))
def test_pages_outside_the_fast_path_are_declined(name: str) -> None:
    assert _fast(DECLINE[name]) is None


@pytest.mark.parametrize("name", list(DECLINE))
def test_declined_pages_scan_as_the_tree_parser_reads_them(name: str) -> None:
    body = DECLINE[name]
    try:
        want = _tree(body)
    except Exception:
        with pytest.raises(MalformedListingError):
            scan_list_objects_v2(body)
        return
    assert scan_list_objects_v2(body) == want


def test_the_table_pages_of_the_scanner_use_the_fast_path() -> None:
    # the S3-shaped pages of the scanner's own table go through the fast path too
    taken = [name for name, body in PAGES.items() if _fast(body) is not None]
    assert "odd keys, url-encoded and echoed" in taken
    assert "Go encoding/xml shape (SeaweedFS, MinIO)" in taken


def test_a_thousand_key_page_keeps_order_and_values() -> None:
    keys = [f"k{i:04d}{'+' if i % 7 == 0 else ''}" for i in range(1000)]
    body = listing(keys, encode=True)
    fast = _fast(body)
    assert fast is not None and fast == _strict(body) == _tree(body)
    assert [e[0] for e in fast.entries] == keys
    assert [e[1] for e in fast.entries] == list(range(1000))
    assert ODD_KEYS  # the odd keys are covered by the scanner's table
