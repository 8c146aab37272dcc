"""Multipart upload parts over MockTransport: each part read from the file once, hashed
(Content-MD5, payload SHA-256) and sent from that one buffer; over the memory budget, the
streamed path (read to hash, read to send) still uploads the same bytes."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from pos3lite import transfer
from pos3lite.auth.sigv4 import Credentials
from pos3lite.progress import NullProgress
from pos3lite.s3 import client as client_module
from pos3lite.s3.client import S3Client
from pos3lite.transfer import MiB, TransferConfig, upload_file
from pos3lite.transport.base import MockTransport, Request, Response


class Static:
    def resolve(self) -> Credentials:
        return Credentials("AKIDEXAMPLE", "very-secret-key")


class Server:
    def __init__(self) -> None:
        self.parts: dict[int, bytes] = {}
        self.lock = threading.Lock()

    def __call__(self, r: Request) -> Response:
        q = parse_qs(urlsplit(r.url).query, keep_blank_values=True)
        if r.method == "POST" and "uploads" in q:
            body = b"<InitiateMultipartUploadResult><UploadId>u1</UploadId>"
            body += b"</InitiateMultipartUploadResult>"
            return Response(200, {}, chunks=iter([body]))
        if r.method == "PUT":
            data = r.body if isinstance(r.body, bytes) else r.body.read()  # type: ignore[union-attr]
            md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
            assert r.headers["content-md5"] == md5
            assert r.headers["x-amz-content-sha256"] == hashlib.sha256(data).hexdigest()
            assert int(r.headers["content-length"]) == len(data)
            with self.lock:
                self.parts[int(q["partNumber"][0])] = data
            return Response(200, {"etag": f'"{hashlib.md5(data).hexdigest()}"'})
        if r.method == "POST":
            body = b"<CompleteMultipartUploadResult><ETag>&quot;x-3&quot;</ETag>"
            body += b"</CompleteMultipartUploadResult>"
            return Response(200, {}, chunks=iter([body]))
        raise AssertionError(r)


def _upload(tmp_path: Path) -> tuple[bytes, Server]:
    data = os.urandom(11 * MiB)  # parts of 5, 5 and 1 MiB
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    server = Server()
    now = datetime(2026, 1, 2, tzinfo=UTC)
    client = S3Client(
        MockTransport(server),
        region="us-east-1",
        endpoint="http://127.0.0.1:9",  # plain HTTP: the payload SHA-256 is signed
        credentials=Static(),
        clock=lambda: now,
    )
    cfg = TransferConfig(multipart_threshold=5 * MiB, part_size=5 * MiB)
    with ThreadPoolExecutor(4) as pool:
        upload_file(
            client,
            "bkt",
            "big.bin",
            path,
            executor=lambda: pool,
            progress=NullProgress(),
            config=cfg,
        )
    return data, server


def test_each_part_is_read_once_and_sent_from_that_buffer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[int] = []
    real_pread = os.pread

    def counting_pread(fd: int, n: int, offset: int) -> bytes:
        out = real_pread(fd, n, offset)
        read.append(len(out))
        return out

    def no_streaming(*a: object, **k: object) -> None:
        raise AssertionError("a part was streamed from the file (read twice)")

    monkeypatch.setattr(transfer.os, "pread", counting_pread)
    monkeypatch.setattr(client_module, "_FileSlice", no_streaming)
    data, server = _upload(tmp_path)
    assert sum(read) == len(data)  # every byte read from the file exactly once
    assert b"".join(server.parts[n] for n in sorted(server.parts)) == data
    assert sorted(server.parts) == [1, 2, 3]


def test_parts_over_the_memory_budget_stream_from_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transfer, "_PART_MEMORY", transfer._ByteBudget(4 * MiB))
    streamed: list[int] = []
    real = client_module._FileSlice

    class Counting(real):  # type: ignore[misc,valid-type]
        def __init__(self, path: object, offset: int, length: int, on_bytes: object) -> None:
            streamed.append(length)
            super().__init__(path, offset, length, on_bytes)

    monkeypatch.setattr(client_module, "_FileSlice", Counting)
    data, server = _upload(tmp_path)
    assert b"".join(server.parts[n] for n in sorted(server.parts)) == data
    assert sorted(streamed) == [5 * MiB, 5 * MiB]  # the 1 MiB part fit in the budget
    assert transfer._PART_MEMORY._used == 0  # every reservation given back


def test_a_file_that_shrinks_fails_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "short.bin"
    path.write_bytes(b"x" * 10)
    with pytest.raises(OSError, match=r"short\.bin"):
        transfer._read_part(path, 0, 20)
