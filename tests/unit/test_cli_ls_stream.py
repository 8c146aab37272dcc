"""`pos3lite ls` streams: each listing page is printed before the next one is read, so a
listing of millions of keys needs no more memory than a page (as aws s3 ls, rclone lsf and
s5cmd ls)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, quote_plus, urlsplit

import pytest

from pos3lite import cli
from pos3lite.auth.sigv4 import Credentials
from pos3lite.s3.client import S3Client
from pos3lite.transport.base import MockTransport, Request, Response


class _Static:
    def resolve(self) -> Credentials:
        return Credentials("AKIDEXAMPLE", "secret-example")


def _page(keys: list[str], token: str | None) -> bytes:
    items = "".join(
        f"<Contents><Key>{quote_plus(k)}</Key><Size>1</Size>"
        "<LastModified>2026-11-21T23:03:25.000Z</LastModified><ETag>&quot;e&quot;</ETag>"
        "</Contents>"
        for k in keys
    )
    nxt = f"<NextContinuationToken>{token}</NextContinuationToken>" if token else ""
    return (
        "<ListBucketResult><IsTruncated>"
        + ("true" if token else "false")
        + f"</IsTruncated><EncodingType>url</EncodingType>{items}{nxt}</ListBucketResult>"
    ).encode()


PAGES = 5


def test_ls_prints_each_page_before_the_last_one_is_read(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "secret-example",
        "AWS_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "POS3LITE_PROFILES_FILE": str(tmp_path / "none.toml"),
    }.items():
        monkeypatch.setenv(name, value)
    printed_before_last_page: list[str] = []

    def handler(r: Request) -> Response:
        token = parse_qs(urlsplit(r.url).query).get("continuation-token", ["p0"])[0]
        n = int(token[1:])
        if n == PAGES - 1:
            # The listing helper fetches ahead, so wait until the consumer has printed
            # everything before this page, then note what stdout already holds.
            import time

            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                out = capsys.readouterr().out
                printed_before_last_page.extend(out.splitlines())
                if len(printed_before_last_page) >= 2 * (PAGES - 1):
                    break
                time.sleep(0.01)
        nxt = f"p{n + 1}" if n + 1 < PAGES else None
        return Response(200, {}, chunks=iter([_page([f"d/k{n}a", f"d/k{n}b"], nxt)]))

    def client(ctx: object, profile: object) -> S3Client:
        return S3Client(MockTransport(handler), region="us-east-1", credentials=_Static())

    monkeypatch.setattr(cli, "_client", client)
    assert cli.main(["ls", "-r", "s3://bkt/d/"]) == 0
    rest = capsys.readouterr().out.splitlines()
    expected = [f"s3://bkt/d/k{n}{c}" for n in range(PAGES) for c in "ab"]
    assert printed_before_last_page == expected[: 2 * (PAGES - 1)]
    assert printed_before_last_page + rest == expected
