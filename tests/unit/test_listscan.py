"""The ListObjectsV2 page scanner against the ElementTree parser: same pages, same results.

Every page of the table goes through both :func:`pos3lite.s3.listscan.scan_list_objects_v2`
(its strict scanner and, separately, its expat pass) and
:func:`pos3lite.s3.xml.parse_list_objects_v2`; the results must be identical. Malformed pages
must raise ``MalformedListingError`` (a ``TransportError`` in the pos3lite tree) where the
tree parser raises.
"""

from __future__ import annotations

import gc
import re
from urllib.parse import quote_plus

import pytest

from pos3lite.errors import Pos3liteError, TransportError
from pos3lite.s3 import listscan
from pos3lite.s3 import xml as s3xml
from pos3lite.s3.listscan import MalformedListingError, ScannedPage, scan_list_objects_v2

NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
LM = "<LastModified>2026-11-21T23:03:25.000Z</LastModified>"
ODD_KEYS = [
    "plain.txt",
    "a b.txt",
    "a+b.txt",
    "100%20off.txt",
    "x%2By",
    "é/ü/日本語.txt",
    "tab\there",
    "amp&lt<gt>'\"q",
    "emoji-\U0001f600",
    "~!@$^*()=[];,",
    " lead and trail ",
]


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def listing(
    keys: list[str],
    *,
    encode: bool,
    ns: bool = True,
    prefixes: tuple[str, ...] = (),
    token: str | None = None,
    extra: str = "",
    etag: str = "&quot;d41d8cd98f00b204e9800998ecf8427e&quot;",
) -> bytes:
    enc = quote_plus if encode else _xml_escape
    items = "".join(
        f"<Contents><Key>{enc(k)}</Key>{LM}<ETag>{etag}</ETag><Size>{i}</Size>"
        "<Owner><ID>o</ID><DisplayName>d</DisplayName></Owner>"
        "<StorageClass>STANDARD</StorageClass></Contents>"
        for i, k in enumerate(keys)
    )
    cps = "".join(f"<CommonPrefixes><Prefix>{enc(p)}</Prefix></CommonPrefixes>" for p in prefixes)
    trunc = "true" if token else "false"
    nxt = f"<NextContinuationToken>{_xml_escape(token)}</NextContinuationToken>" if token else ""
    echo = "<EncodingType>url</EncodingType>" if encode else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<ListBucketResult {NS if ns else ''}><Name>b</Name><Prefix></Prefix>{echo}"
        f"<KeyCount>{len(keys)}</KeyCount><MaxKeys>1000</MaxKeys>"
        f"<IsTruncated>{trunc}</IsTruncated>{nxt}{items}{cps}{extra}</ListBucketResult>"
    ).encode()


def _echoes(body: bytes) -> bool:
    return re.search(rb"(?i)<(?:\w+:)?EncodingType>\s*url\s*</", body) is not None


def _tree(body: bytes) -> ScannedPage:
    """The ElementTree parser's result in the scanner's shape (decoding only on the echo)."""
    page = s3xml.parse_list_objects_v2(body)  # decodes only when the page echoes url
    return ScannedPage(
        [(o.key, o.size, o.last_modified, o.etag) for o in page.objects],
        list(page.common_prefixes),
        page.next_token,
        _echoes(body),
    )


def _both(body: bytes) -> tuple[ScannedPage, ScannedPage]:
    return scan_list_objects_v2(body), listscan._scan_expat(body, True)


PAGES = {
    "odd keys, url-encoded and echoed": listing(ODD_KEYS, encode=True),
    "odd keys, raw (server ignored encoding-type)": listing(ODD_KEYS, encode=False),
    "no namespace": listing(ODD_KEYS, encode=True, ns=False),
    "prefixed namespace": (
        b'<s3:ListBucketResult xmlns:s3="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<s3:EncodingType>url</s3:EncodingType><s3:IsTruncated>false</s3:IsTruncated>"
        b"<s3:Contents><s3:Key>a%2Bb+c</s3:Key><s3:LastModified>2026-01-01T00:00:00Z"
        b"</s3:LastModified><s3:ETag>&quot;e&quot;</s3:ETag><s3:Size>3</s3:Size></s3:Contents>"
        b"<s3:CommonPrefixes><s3:Prefix>d+e/</s3:Prefix></s3:CommonPrefixes>"
        b"</s3:ListBucketResult>"
    ),
    "common prefixes": listing(["p/a"], encode=True, prefixes=("p/b c/", "p/x+y/")),
    "common prefixes raw": listing(["p/a"], encode=False, prefixes=("p/b+c/", "p/100%/")),
    "truncated with token": listing(["k1", "k2"], encode=True, token="1/ab+c==&x<y"),
    "not truncated but a token": listing(
        ["k"], encode=True, extra=("<NextContinuationToken>ignored</NextContinuationToken>")
    ),
    "empty page": listing([], encode=True),
    "empty page, self-closing prefix": (
        b"<ListBucketResult><Prefix/><IsTruncated>false</IsTruncated></ListBucketResult>"
    ),
    "fields in another order, no owner": (
        f"<ListBucketResult {NS}><IsTruncated>false</IsTruncated><Contents><Size>7</Size>"
        f'<ETag>"abc"</ETag><Key>z/y</Key>{LM}<ChecksumAlgorithm>CRC32</ChecksumAlgorithm>'
        "</Contents></ListBucketResult>"
    ).encode(),
    "repeated field: the last wins": (
        f"<ListBucketResult><Contents><Key>first</Key><Key>second</Key>{LM}<Size>1</Size>"
        "</Contents><IsTruncated>false</IsTruncated></ListBucketResult>"
    ).encode(),
    "missing Key, Size and ETag": (
        f"<ListBucketResult><Contents>{LM}</Contents></ListBucketResult>"
    ).encode(),
    "CDATA and comments": (
        f"<ListBucketResult><!-- c --><Contents><Key><![CDATA[a<b&c]]></Key>{LM}"
        "<Size>2</Size></Contents></ListBucketResult>"
    ).encode(),
    "character references and CRLF": (
        f"<ListBucketResult>\r\n<Contents><Key>a&#13;b&#x9;c\r\nd</Key>{LM}<Size>2</Size>"
        "</Contents>\r\n</ListBucketResult>"
    ).encode(),
    "Go encoding/xml shape (SeaweedFS, MinIO)": (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/'
        b'doc/2006-03-01/"><Name>bkt</Name><Prefix></Prefix><MaxKeys>1000</MaxKeys><Delimiter>/'
        b"</Delimiter><IsTruncated>false</IsTruncated><Contents><Key>a+b%2Bc</Key><ETag>&#34;"
        b"c4ca4238a0b923820dcc509a6f75849b&#34;</ETag><Size>1</Size><StorageClass>STANDARD"
        b"</StorageClass><LastModified>2026-12-07T14:18:01Z</LastModified></Contents>"
        b"<CommonPrefixes><Prefix>x/</Prefix></CommonPrefixes><EncodingType>url</EncodingType>"
        b"<KeyCount>3</KeyCount></ListBucketResult>"
    ),
    "character references in raw keys": (
        f"<ListBucketResult><Contents><Key>a&#13;b&#x9;c&#xA;&#39;&#x1F600;</Key>{LM}"
        "<ETag>&#34;x&#34;y&#34;</ETag><Size>2</Size></Contents></ListBucketResult>"
    ).encode(),
    "nested unknown element": (
        f"<ListBucketResult><Contents><Key>k</Key>{LM}<Size>2</Size><RestoreStatus>"
        "<IsRestoreInProgress>false</IsRestoreInProgress></RestoreStatus></Contents>"
        "</ListBucketResult>"
    ).encode(),
    "attributes on children": (
        f'<ListBucketResult><Contents a="1"><Key x="y">k</Key>{LM}<Size>2</Size></Contents>'
        "</ListBucketResult>"
    ).encode(),
    "whitespace around values kept": (
        f"<ListBucketResult>\n  <Contents>\n    <Key> k </Key>\n    {LM}\n    <Size> 4 </Size>"
        "\n  </Contents>\n  <IsTruncated> TRUE </IsTruncated>"
        "<NextContinuationToken>t</NextContinuationToken>\n</ListBucketResult>\n"
    ).encode(),
    "EncodingType not exactly url": listing(["a+b"], encode=False, extra="").replace(
        b"<Name>", b"<EncodingType>URL</EncodingType><Name>"
    ),
    "first IsTruncated wins": (
        b"<ListBucketResult><IsTruncated>false</IsTruncated><IsTruncated>true</IsTruncated>"
        b"</ListBucketResult>"
    ),
    "Latin-1 declared": (
        '<?xml version="1.0" encoding="ISO-8859-1"?><ListBucketResult><Contents>'
        f"<Key>caf\xe9</Key>{LM}<Size>1</Size></Contents></ListBucketResult>"
    ).encode("latin-1"),
    "BOM and a declaration": b"\xef\xbb\xbf" + listing(["k"], encode=True),
}


@pytest.mark.parametrize("name", list(PAGES))
def test_scanner_and_tree_parser_agree(name: str) -> None:
    body = PAGES[name]
    strict, expat = _both(body)
    want = _tree(body)
    assert strict == want
    assert expat == want


def test_the_table_exercises_both_paths() -> None:
    strict_ok = 0
    for body in PAGES.values():
        try:
            listscan._scan_strict(body, True)
        except listscan._Fallback:
            continue
        strict_ok += 1
    # the S3-shaped pages take the strict scanner; the odd ones the expat pass
    assert 10 <= strict_ok < len(PAGES)


def test_keys_are_decoded_only_when_the_encoding_type_is_echoed() -> None:
    raw = scan_list_objects_v2(listing(["a+b.txt", "100%20off.txt"], encode=False))
    assert [e[0] for e in raw.entries] == ["a+b.txt", "100%20off.txt"] and not raw.url_encoded
    enc = scan_list_objects_v2(listing(["a+b.txt", "100%20off.txt"], encode=True))
    assert [e[0] for e in enc.entries] == ["a+b.txt", "100%20off.txt"] and enc.url_encoded
    assert quote_plus("a+b.txt") == "a%2Bb.txt"  # so the echoed page really was encoded


def test_entries_are_plain_tuples_the_collector_stops_tracking() -> None:
    page = scan_list_objects_v2(listing(ODD_KEYS, encode=True))
    assert all(type(e) is tuple for e in page.entries)
    gc.collect()
    assert not any(gc.is_tracked(e) for e in page.entries)


def test_etags_can_be_dropped() -> None:
    page = scan_list_objects_v2(listing(["a", "b"], encode=True), etag=False)
    assert [e[3] for e in page.entries] == ["", ""]
    assert [e[:3] for e in page.entries] == [
        e[:3] for e in _tree(listing(["a", "b"], encode=True)).entries
    ]


MALFORMED = {
    "html from a proxy": b"<html><body>Sign in to the network</body></html>",
    "not xml": b"Service Unavailable",
    "empty": b"",
    "cut short": listing(ODD_KEYS, encode=True)[:-40],
    "bare ampersand": b"<ListBucketResult><Contents><Key>a&b</Key></Contents></ListBucketResult>",
    "unknown entity": (
        b"<ListBucketResult><Contents><Key>&nbsp;</Key></Contents></ListBucketResult>"
    ),
    "control character": (
        f"<ListBucketResult><Contents><Key>a\x01b</Key>{LM}</Contents></ListBucketResult>"
    ).encode(),
    "invalid utf-8": f"<ListBucketResult><Contents><Key>a\xffb</Key>{LM}".encode("latin-1")
    + b"</Contents></ListBucketResult>",
    "reference to a character XML forbids": (
        f"<ListBucketResult><Contents><Key>a&#0;b</Key>{LM}</Contents></ListBucketResult>"
    ).encode(),
    "reference beyond Unicode": (
        f"<ListBucketResult><Contents><Key>&#x110000;</Key>{LM}</Contents></ListBucketResult>"
    ).encode(),
    "mismatched tags": b"<ListBucketResult><Contents><Key>k</Size></Contents></ListBucketResult>",
    "truncated without token": (
        b"<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>"
    ),
    "bad size": f"<ListBucketResult><Contents><Key>k</Key>{LM}<Size>x</Size></Contents>"
    "</ListBucketResult>".encode(),
    "bad LastModified": (
        b"<ListBucketResult><Contents><Key>k</Key><LastModified>yesterday</LastModified>"
        b"</Contents></ListBucketResult>"
    ),
    "no LastModified": b"<ListBucketResult><Contents><Key>k</Key></Contents></ListBucketResult>",
    "an error document": b"<Error><Code>InternalError</Code></Error>",
    "trailing junk": listing(["k"], encode=True) + b"<more/>",
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_pages_raise_in_the_pos3lite_tree(name: str) -> None:
    body = MALFORMED[name]
    with pytest.raises(Exception):  # noqa: B017 - the tree parser raises ParseError or ValueError
        s3xml.parse_list_objects_v2(body)
    for scan in (scan_list_objects_v2, lambda b: listscan._scan_expat(b, True)):
        with pytest.raises(MalformedListingError, match="malformed ListObjectsV2 answer") as info:
            scan(body)
        assert isinstance(info.value, TransportError) and isinstance(info.value, Pos3liteError)
        assert isinstance(info.value, ValueError)


# ---------------------------------------------------------------- through the S3 client


def _client(pages: list[bytes]):  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    from pos3lite.auth.sigv4 import Credentials
    from pos3lite.s3.client import S3Client
    from pos3lite.transport.base import MockTransport, Request, Response

    class Static:
        def resolve(self) -> Credentials:
            return Credentials("AKIDEXAMPLE", "very-secret-key")

    served = iter(pages)

    def handler(r: Request) -> Response:
        return Response(200, {}, chunks=iter([next(served)]))

    from pos3lite.s3.retry import Retry

    now = datetime(2026, 1, 2, tzinfo=UTC)
    return S3Client(
        MockTransport(handler),
        region="us-east-1",
        credentials=Static(),
        clock=lambda: now,
        retry=Retry(max_attempts=1),
    )


def test_client_listing_keeps_raw_keys_when_the_server_does_not_echo_the_encoding() -> None:
    client = _client([listing(["a+b.txt", "100%20off.txt"], encode=False)])
    assert [o.key for o in client.list_objects("b")] == ["a+b.txt", "100%20off.txt"]


def test_client_listing_of_a_garbled_page_raises_in_the_tree_not_a_parse_error() -> None:
    from pos3lite.errors import S3Error
    from pos3lite.s3.client import MALFORMED

    client = _client([b"<html>captive portal</html>"])
    with pytest.raises(S3Error, match="captive portal") as info:
        list(client.list_objects("b"))
    assert info.value.code == MALFORMED  # the scanner's error, translated by the client
