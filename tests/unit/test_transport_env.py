"""The urllib3 transport honours proxies and the CA bundle as botocore does, and a TLS
certificate failure is final (issue 9). Real sockets on 127.0.0.1; the certificate is made
with the ``openssl`` command line tool."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pos3lite.errors import CertificateError
from pos3lite.s3.client import S3Client
from pos3lite.transport.base import Request
from pos3lite.transport.urllib3 import Urllib3Transport, _bypassed


class RawServer:
    """Answers every request with 200 and an empty body; records each request head."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.heads: list[str] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self.port = self._sock.getsockname()[1]
        self._context = context
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            try:
                if self._context is not None:
                    conn = self._context.wrap_socket(conn, server_side=True)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                if data:
                    self.heads.append(data.split(b"\r\n\r\n")[0].decode("latin-1"))
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    )
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()

    def close(self) -> None:
        self._sock.close()


@pytest.fixture
def raw() -> Iterator[RawServer]:
    server = RawServer()
    yield server
    server.close()


def test_http_goes_through_http_proxy_in_absolute_form(raw: RawServer) -> None:
    t = Urllib3Transport(environ={"HTTP_PROXY": f"http://user:pw@127.0.0.1:{raw.port}"})
    with t.send(Request("GET", "http://s3.example.invalid:9000/bkt/a%20b?list-type=2")) as r:
        assert r.status == 200
    head = raw.heads[0]
    assert head.startswith("GET http://s3.example.invalid:9000/bkt/a%20b?list-type=2 HTTP/1.1")
    assert "\r\nproxy-authorization: basic dxnlcjpwdw==" in head.lower()  # user:pw


def test_no_proxy_bypasses_the_proxy(raw: RawServer) -> None:
    target = RawServer()
    try:
        t = Urllib3Transport(
            environ={
                "HTTP_PROXY": f"http://127.0.0.1:{raw.port}",
                "NO_PROXY": "localhost,127.0.0.1",
            }
        )
        with t.send(Request("GET", f"http://127.0.0.1:{target.port}/bkt/k")) as r:
            assert r.status == 200
        assert raw.heads == [] and target.heads[0].startswith("GET /bkt/k HTTP/1.1")
    finally:
        target.close()


@pytest.mark.parametrize(
    ("host", "no_proxy", "bypass"),
    [
        ("s3.example.com", "example.com", True),
        ("s3.example.com", ".example.com", True),
        ("example.com", ".example.com", True),
        ("badexample.com", "example.com", False),
        ("s3.example.com", "*", True),
        ("127.0.0.1", "localhost, 127.0.0.1:9000", True),
        ("s3.example.com", "", False),
    ],
)
def test_no_proxy_rules(host: str, no_proxy: str, bypass: bool) -> None:
    assert _bypassed(host, no_proxy) is bypass


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RawServer, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command line tool")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(d / "cert.pem", d / "key.pem")
    server = RawServer(ctx)
    yield server, d / "cert.pem"
    server.close()


def test_an_untrusted_certificate_fails_once_and_is_not_retried(
    tls: tuple[RawServer, Path],
) -> None:
    server, _ = tls
    before = len(server.heads)
    t = Urllib3Transport(environ={})
    client = S3Client(t, region="us-east-1", endpoint=f"https://127.0.0.1:{server.port}",
                      sleep=lambda s: None)  # fmt: skip
    attempts: list[int] = []
    original = t.send

    def counting(request: Request):  # type: ignore[no-untyped-def]
        attempts.append(1)
        return original(request)

    t.send = counting  # type: ignore[method-assign]
    with pytest.raises(CertificateError, match="certificate"):
        client.head_bucket("bkt")
    assert len(attempts) == 1 and len(server.heads) == before


def test_aws_ca_bundle_is_trusted(tls: tuple[RawServer, Path]) -> None:
    server, cert = tls
    t = Urllib3Transport(environ={"AWS_CA_BUNDLE": str(cert)})
    with t.send(Request("GET", f"https://127.0.0.1:{server.port}/bkt")) as r:
        assert r.status == 200
