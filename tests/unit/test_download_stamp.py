"""A small download hands the sync-state recorder the stamp of the file it wrote, taken on
the file's descriptor (issue 12, item 5: no stat by path per object); when the file's
mtime is changed after the write (the object changed between LIST and GET), no stamp is
given and the recorder stats the path."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from pos3lite.engine.model import Entry
from pos3lite.progress import NullProgress
from pos3lite.s3.client import S3Client
from pos3lite.transfer import _download_small
from pos3lite.transport.base import MockTransport, Request, Response

BODY = b"stamped bytes"
ETAG = hashlib.md5(BODY).hexdigest()


def _client() -> S3Client:
    def handler(request: Request) -> Response:
        return Response(
            200,
            {
                "Content-Length": str(len(BODY)),
                "ETag": f'"{ETAG}"',
                "Last-Modified": "Sat, 21 Nov 2026 23:03:25 GMT",
            },
            chunks=iter((BODY,)),
        )

    return S3Client(MockTransport(handler), region="us-east-1", endpoint="http://127.0.0.1:9")


def _stamp(path: Path) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


@pytest.mark.parametrize("listed_etag", [ETAG, "0" * 32])
def test_the_written_files_stamp_reaches_the_recorder(tmp_path: Path, listed_etag: str) -> None:
    target = tmp_path / "f.bin"
    got: list[Entry] = []
    src = Entry("f.bin", len(BODY), 1_000_000.0, listed_etag)
    _download_small(_client(), "b", "f.bin", target, src, NullProgress(), on_done=got.append)
    assert target.read_bytes() == BODY
    [entry] = got
    assert (entry.key, entry.size, entry.etag) == ("f.bin", len(BODY), ETAG)
    if listed_etag == ETAG:
        assert os.stat(target).st_mtime == 1_000_000.0
        assert entry.stamp == _stamp(target)
    else:  # re-stamped with the GET's Last-Modified after the write: the path is stat'ed
        assert os.stat(target).st_mtime == entry.mtime != 1_000_000.0
        assert entry.stamp is None
