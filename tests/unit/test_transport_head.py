"""The urllib3 transport's fast response-head reader (issue 12, item 5) gives exactly what
http.client's own ``begin`` gives, and hands every head it does not take to http.client
untouched. Each head is read both ways from the same bytes and the results compared;
a real socket on 127.0.0.1 checks the path through urllib3."""

from __future__ import annotations

import http.client
import io
import socket
import threading
from collections.abc import Iterator

import pytest

from pos3lite.transport.base import Headers, Request
from pos3lite.transport.urllib3 import Urllib3Transport, _FastHeadResponse, _HeadMessage


class _Sock:
    """What ``HTTPResponse.__init__`` needs of a socket: ``makefile`` over fixed bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(io.BytesIO(self.data))


def _read(cls: type[http.client.HTTPResponse], data: bytes, method: str) -> dict[str, object]:
    resp = cls(_Sock(data), method=method)  # type: ignore[arg-type]
    try:
        resp.begin()
    except Exception as exc:
        return {"error": type(exc), "args": exc.args}
    return {
        "status": resp.status,
        "reason": resp.reason,
        "version": resp.version,
        "items": resp.msg.items(),
        "get": [resp.msg.get(n) for n in ("content-length", "ETAG", "x-missing", "connection")],
        "length": resp.length,
        "chunked": resp.chunked,
        "will_close": resp.will_close,
        "body": resp.read(),
        "fast": isinstance(resp.msg, _HeadMessage),
    }


BODY = b"0123456789"
PLAIN = (
    b'HTTP/1.1 200 OK\r\nContent-Length: 10\r\nETag: "abc"\r\nX-Amz-Meta-Odd: caf\xe9 \r\n'
    b"Date: Mon, 07 Dec 2026 17:00:00 GMT\r\nx-empty:\r\nX-Dup: 1\r\nx-dup: 2\r\n\r\n" + BODY
)

# (name, raw response, method, expected to take the fast path)
CASES = [
    ("plain GET", PLAIN, "GET", True),
    ("plain HEAD: no body whatever the length", PLAIN, "HEAD", True),
    ("no reason", b"HTTP/1.1 404\r\nContent-Length: 2\r\n\r\nno", "GET", True),
    ("no headers", b"HTTP/1.1 200 OK\r\n\r\nrest", "GET", True),
    ("204", b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", "DELETE", True),
    ("304", b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n", "GET", True),
    (
        "chunked",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "GET",
        True,
    ),
    (
        "chunked wins over length",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: Chunked\r\n\r\n"
        b"2\r\nab\r\n0\r\n\r\n",
        "GET",
        True,
    ),
    (
        "connection close",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
        "GET",
        True,
    ),
    ("no length: read to close", b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\nuntil close", "GET", True),
    ("bad length", b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\nabc", "GET", True),
    ("negative length", b"HTTP/1.1 200 OK\r\nContent-Length: -4\r\n\r\nabc", "GET", True),
    ("spaces and tabs after the colon", b"HTTP/1.1 200 OK\r\nA:\t  v \r\nB:v\r\n\r\n", "PUT", True),
    ("99 headers", b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 99 + b"\r\n", "GET", True),
    # handed to http.client
    (
        "100 headers: http.client's limit",
        b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 100 + b"\r\n",
        "GET",
        False,
    ),
    (
        "interim 100 Continue",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        "PUT",
        False,
    ),
    ("HTTP/1.0", b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", "GET", False),
    ("HTTP/1.0 keep-alive", b"HTTP/1.0 200 OK\r\nKeep-Alive: 5\r\n\r\nok", "GET", False),
    (
        "obsolete folding",
        b"HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 0\r\n\r\n",
        "GET",
        False,
    ),
    ("bare LF", b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", "GET", False),
    (
        "line without a colon",
        b"HTTP/1.1 200 OK\r\nbroken line\r\nContent-Length: 0\r\n\r\n",
        "GET",
        False,
    ),
    ("space in a name", b"HTTP/1.1 200 OK\r\nBad Name: v\r\n\r\n", "GET", False),
    ("status out of range", b"HTTP/1.1 099 Odd\r\n\r\n", "GET", False),
    ("not HTTP", b"ICY 200 OK\r\n\r\n", "GET", False),
    ("closed before any byte", b"", "GET", False),
    ("head cut short", b"HTTP/1.1 200 OK\r\nContent-Len", "GET", False),
    ("other method", PLAIN, "OPTIONS", False),
]


@pytest.mark.parametrize(
    ("data", "method", "fast"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_fast_head_reads_exactly_what_http_client_reads(
    data: bytes, method: str, fast: bool
) -> None:
    ours = _read(_FastHeadResponse, data, method)
    theirs = _read(http.client.HTTPResponse, data, method)
    taken = ours.pop("fast", False)
    theirs.pop("fast", None)
    assert ours == theirs
    assert taken is fast


def test_fast_head_message_answers_like_the_email_parser() -> None:
    resp = _FastHeadResponse(_Sock(PLAIN), method="GET")  # type: ignore[arg-type]
    resp.begin()
    ref = http.client.HTTPResponse(_Sock(PLAIN), method="GET")  # type: ignore[arg-type]
    ref.begin()
    assert isinstance(resp.msg, _HeadMessage)
    for name in ("x-dup", "X-AMZ-META-ODD", "x-empty", "nope"):
        assert resp.msg.get(name) == ref.msg.get(name)
        assert resp.msg[name] == ref.msg[name]
        assert resp.msg.get_all(name) == ref.msg.get_all(name)
    assert resp.msg.get("nope", "dflt") == "dflt"
    assert list(resp.msg.keys()) == list(ref.msg.keys())
    assert resp.msg.defects == [] and not resp.msg.is_multipart()
    assert resp.msg.get_payload() == ref.msg.get_payload()
    # changes through the email.message API are seen by the fast get (urllib3 rewrites
    # folded values that way)
    changes = [
        lambda m: m.replace_header("ETag", '"new"'),
        lambda m: m.__delitem__("x-dup"),
        lambda m: m.__setitem__("X-Dup", "3"),
        lambda m: m.add_header("X-Added", "a"),
    ]
    for change in changes:
        for msg in (resp.msg, ref.msg):
            assert msg.get("etag") is not None  # the fast one has its index built
            change(msg)
        for name in ("etag", "x-dup", "x-added"):
            assert resp.msg.get(name) == ref.msg.get(name)
        assert resp.msg.items() == ref.msg.items()


@pytest.fixture
def raw_server() -> Iterator[tuple[int, list[bytes]]]:
    """Answers requests on one keep-alive connection with the queued raw responses."""
    answers: list[bytes] = []
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                buf = b""
                while answers:
                    while b"\r\n\r\n" not in buf:
                        got = conn.recv(65536)
                        if not got:
                            break
                        buf += got
                    if b"\r\n\r\n" not in buf:
                        break
                    buf = buf.split(b"\r\n\r\n", 1)[1]
                    conn.sendall(answers.pop(0))

    threading.Thread(target=serve, daemon=True).start()
    yield srv.getsockname()[1], answers
    srv.close()


def test_transport_reads_fast_and_fallback_heads_on_one_connection(
    raw_server: tuple[int, list[bytes]],
) -> None:
    port, answers = raw_server
    answers += [
        PLAIN,
        b"HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 3\r\n\r\nabc",  # folded
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope",
    ]
    transport = Urllib3Transport(max_connections=1, proxies={})
    url = f"http://127.0.0.1:{port}/b/k"
    try:
        with transport.send(Request("GET", url, {}, preload=True)) as r:
            assert (r.status, r.read()) == (200, BODY)
            assert r.headers["etag"] == '"abc"'
            assert r.headers["x-amz-meta-odd"] == "caf\xe9 "
            assert r.headers["x-dup"] == "2"  # the last value, as before this change
        with transport.send(Request("GET", url, {})) as r:
            assert (r.status, r.read()) == (200, b"abc")
            assert r.headers["x-a"] == "one two"  # urllib3 unfolds obsolete folding
        with transport.send(Request("GET", url, {})) as r:
            assert (r.status, r.read()) == (200, b"xyz")
        with transport.send(Request("GET", url, {}, preload=True)) as r:
            assert (r.status, r.read()) == (404, b"nope")
    finally:
        transport.close()


def test_headers_get_is_case_insensitive_with_a_default() -> None:
    h = Headers({"ETag": '"x"', "Content-Length": "3"})
    assert h.get("etag") == '"x"' and h.get("CONTENT-LENGTH") == "3"
    assert h.get("x-missing") is None and h.get("x-missing", "d") == "d"
