"""Multipart uploads and ranged downloads against servers' quirks (issue 9), over MockTransport.

The fake below is an in-memory S3 with switches for what real servers do differently:
rclone's ``<InitiateMultipartUpload>`` root, ministack/nanio ignoring ``?partNumber=`` on HEAD,
servers refusing it, rclone's GET ``Last-Modified`` differing from the listing's.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from pos3lite.engine.model import Action, Entry, Plan, Reason
from pos3lite.errors import S3Error, TransferError
from pos3lite.progress import NullProgress
from pos3lite.s3.client import S3Client
from pos3lite.transfer import TransferConfig, download_object, execute_upload, upload_file
from pos3lite.transport.base import MockTransport
from tests.support.fake_s3 import FakeS3

MiB = 1024 * 1024
CFG = TransferConfig(multipart_threshold=8 * MiB, part_size=8 * MiB)
LISTED = 1795302205.0  # 2026-11-21T23:03:25Z


class Serial:
    """An executor that runs each task at once, in the caller (deterministic)."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        f: Future[Any] = Future()
        f.set_result(fn(*args))
        return f


def client_for(fake: FakeS3) -> tuple[S3Client, MockTransport]:
    t = MockTransport(fake)
    return S3Client(t, region="us-east-1", endpoint="http://127.0.0.1:1", sleep=lambda s: None), t


def payload(n: int) -> bytes:
    return (b"0123456789abcdef" * (n // 16 + 1))[:n]


# ------------------------------------------------------------------ multipart upload


def test_multipart_upload_completes_when_the_root_element_is_not_the_usual_one(
    tmp_path: Path,
) -> None:
    fake = FakeS3(initiate_root="InitiateMultipartUpload")  # rclone
    src = tmp_path / "big"
    src.write_bytes(payload(9 * MiB))
    client, _ = client_for(fake)
    upload_file(client, "b", "big", src, executor=Serial, progress=NullProgress(), config=CFG)
    assert fake.objects["big"] == src.read_bytes() and fake.aborted == []


def test_a_failed_part_aborts_the_upload_whose_upload_id_was_obtained(tmp_path: Path) -> None:
    fake = FakeS3(initiate_root="InitiateMultipartUpload", fail_part=2)
    src = tmp_path / "big"
    src.write_bytes(payload(17 * MiB))
    client, _ = client_for(fake)
    with pytest.raises(TransferError):
        upload_file(client, "b", "big", src, executor=Serial, progress=NullProgress(), config=CFG)
    assert fake.aborted == ["up-1"] and "big" not in fake.objects


def test_parts_that_cannot_be_scheduled_abort_the_upload(tmp_path: Path) -> None:
    class Refusing(Serial):
        calls = 0

        def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
            Refusing.calls += 1
            if Refusing.calls == 3:  # the copy task, part 1, then the pool shuts down
                raise RuntimeError("cannot schedule new futures after shutdown")
            return super().submit(fn, *args)

    fake = FakeS3()
    src = tmp_path / "big"
    src.write_bytes(payload(17 * MiB))
    client, _ = client_for(fake)
    with pytest.raises(TransferError, match="schedule"):
        upload_file(client, "b", "big", src, executor=Refusing, progress=NullProgress(), config=CFG)
    assert fake.aborted == ["up-1"] and "big" not in fake.objects


# ------------------------------------------------------------------ ranged download


@pytest.mark.parametrize("mode", ["ignore", "refuse"])
def test_part_number_ignored_or_refused_falls_back_to_ranges_and_warns(
    tmp_path: Path, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    # nanio: a 9 MiB object in two 5 MiB parts; 8 MiB ranges also make two: a composite
    # check over them would fail every download although the bytes are right.
    fake = FakeS3(part_number=mode)
    data = payload(9 * MiB)
    fake.put_multipart("k", data, 5 * MiB)
    client, _ = client_for(fake)
    target = tmp_path / "k"
    src = Entry("k", len(data), LISTED, fake.etag("k"))
    with caplog.at_level(logging.WARNING):
        download_object(
            client, "b", "k", target, src, executor=Serial, progress=NullProgress(), config=CFG
        )
    assert target.read_bytes() == data
    assert [r for r in caplog.records if "unverified" in r.getMessage()]


def test_part_number_honoured_verifies_the_composite_etag(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeS3(part_number="honour")
    data = payload(9 * MiB)
    fake.put_multipart("k", data, 5 * MiB)
    client, t = client_for(fake)
    target = tmp_path / "k"
    with caplog.at_level(logging.WARNING):
        download_object(
            client,
            "b",
            "k",
            target,
            Entry("k", len(data), LISTED, fake.etag("k")),
            executor=Serial,
            progress=NullProgress(),
            config=CFG,
        )
    assert target.read_bytes() == data
    assert [r.headers.get("range") for r in t.requests if r.method == "GET"] == [
        f"bytes=0-{5 * MiB - 1}",
        f"bytes={5 * MiB}-{9 * MiB - 1}",
    ]
    assert not [r for r in caplog.records if "unverified" in r.getMessage()]


@pytest.mark.parametrize(
    ("same_etag", "expected"),
    [(True, LISTED), (False, LISTED + 0.5)],
    ids=["same-object-keeps-listing-mtime", "changed-object-gets-get-mtime"],
)
def test_mtime_is_restamped_from_a_get_only_when_its_etag_differs(
    tmp_path: Path, same_etag: bool, expected: float
) -> None:
    # rclone: the GET's Last-Modified differs from the listing's by a fraction of a second.
    fake = FakeS3(get_last_modified="Sat, 21 Nov 2026 23:03:26 GMT")
    fake.objects["k"] = b"hello"
    client, _ = client_for(fake)
    etag = fake.etag("k") if same_etag else "0" * 32
    target = tmp_path / "k"
    download_object(
        client,
        "b",
        "k",
        target,
        Entry("k", 5, LISTED + 0.5, etag),
        executor=Serial,
        progress=NullProgress(),
    )
    want = LISTED + 0.5 if same_etag else LISTED + 1
    assert os.stat(target).st_mtime == want
    assert expected  # ids document the rule


# ------------------------------------------------------------------ deletes


def test_a_failed_delete_objects_batch_is_a_transfer_error(tmp_path: Path) -> None:
    fake = FakeS3(delete_objects_status=403)
    client, _ = client_for(fake)
    plan = Plan(deletes=(Action("gone", Reason.EXTRA, None, Entry("gone", 1, LISTED)),))
    with pytest.raises(TransferError) as info:
        execute_upload(
            plan,
            client=client,
            bucket="b",
            key_prefix="p/",
            local_root=tmp_path,
            executor=Serial(),
            progress=NullProgress(),
            delete=True,
            window=2,  # type: ignore[arg-type]
        )
    assert info.value.operation == "Delete"
    assert isinstance(info.value.failures[0], S3Error)
