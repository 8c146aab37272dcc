"""Streamed download planning against a real server (issue 12): the listing, the local walk
and the sync state go through the engine in one pass; the rare cases that need whole lists
(a store listing out of byte order, possible case-fold twins) are planned again from them."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

import pos3lite
from pos3lite.s3.client import S3Client
from tests.integration.conftest import open_mirror, put, tree

pytestmark = pytest.mark.integration


def list_pages(monkeypatch: pytest.MonkeyPatch, calls: list[str], *, backwards: bool) -> None:
    """Note each ListObjectsV2 listing the mirror starts (its first page, by prefix), and
    with ``backwards`` reverse every page: a store listing out of byte order."""
    real = S3Client.list_page

    def page(self: S3Client, b: str, prefix: str = "", **kw: Any) -> Any:
        if not kw.get("token"):
            calls.append(prefix)
        got = real(self, b, prefix, **kw)
        return dataclasses.replace(got, entries=got.entries[::-1]) if backwards else got

    monkeypatch.setattr(S3Client, "list_page", page)


def test_store_listing_out_of_byte_order_is_planned_from_a_sorted_listing(
    bucket: str, oracle: Any, s3_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k in ("data/a.txt", "data/b/c.txt", "data/z.txt"):
        put(oracle, bucket, k, k.encode())
    calls: list[str] = []
    list_pages(monkeypatch, calls, backwards=True)
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "stale.txt").write_bytes(b"old")
    with open_mirror(tmp_path):
        plan = pos3lite.plan_download(f"s3://{bucket}/data/", local=dst)
        assert sorted(plan.to_copy) == sorted(
            (f"s3://{bucket}/data/{k}", str(dst / k)) for k in ("a.txt", "b/c.txt", "z.txt")
        )
        assert plan.to_delete == [str(dst / "stale.txt")]
        pos3lite.download(f"s3://{bucket}/data/", local=dst, delete=True)
    assert tree(dst) == {"a.txt": b"data/a.txt", "b/c.txt": b"data/b/c.txt", "z.txt": b"data/z.txt"}
    # The streamed attempt met the disorder, the sorted listing planned it; the mirror then
    # listed this bucket sorted straight away (3 listings, not 4).
    assert calls == ["data/"] * 3


def test_zero_byte_object_over_an_empty_local_folder_is_that_folder(
    bucket: str, oracle: Any, s3_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stores that keep folder markers without the "/" (rclone) list "x" with 0 bytes. It is
    # the empty local folder "x/", even though "x.txt" sorts between "x" and "x/".
    put(oracle, bucket, "data/x", b"")
    put(oracle, bucket, "data/x.txt", b"t")
    calls: list[str] = []
    list_pages(monkeypatch, calls, backwards=False)
    dst = tmp_path / "dst"
    (dst / "x").mkdir(parents=True)
    with open_mirror(tmp_path):
        pos3lite.download(f"s3://{bucket}/data/", local=dst, delete=True)
        plan = pos3lite.plan_download(f"s3://{bucket}/data/", local=dst)
    assert (dst / "x").is_dir() and (dst / "x.txt").read_bytes() == b"t"
    assert plan.to_copy == [] and plan.to_delete == []
    # Decided in the streamed pass: one listing each, no re-planning from whole lists.
    assert calls == ["data/", "data/"]


def test_case_fold_twins_are_named_when_planned_streamed(
    bucket: str, oracle: Any, s3_env: Any, tmp_path: Path
) -> None:
    put(oracle, bucket, "data/Readme.md", b"1")
    put(oracle, bucket, "data/README.md", b"2")
    put(oracle, bucket, "data/ok.txt", b"3")
    dst = tmp_path / "dst"
    with open_mirror(tmp_path):
        plan = pos3lite.plan_download(f"s3://{bucket}/data/", local=dst)
        assert plan.to_copy == [(f"s3://{bucket}/data/ok.txt", str(dst / "ok.txt"))]
        with pytest.raises(pos3lite.TransferError) as err:
            pos3lite.download(f"s3://{bucket}/data/", local=dst)
    assert "README.md" in str(err.value) and "Readme.md" in str(err.value)
    assert tree(dst) == {"ok.txt": b"3"}


@pytest.mark.parametrize("backwards", [False, True])
def test_upload_plans_stream_and_fall_back_for_out_of_order_listings(
    backwards: bool,
    bucket: str,
    oracle: Any,
    s3_env: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    put(oracle, bucket, "up/same.txt", b"same")
    put(oracle, bucket, "up/stale.txt", b"stale")
    calls: list[str] = []
    list_pages(monkeypatch, calls, backwards=backwards)
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "new.txt").write_bytes(b"new")
    (src / "sub" / "deep.txt").write_bytes(b"deep")
    with open_mirror(tmp_path):
        plan = pos3lite.plan_upload(f"s3://{bucket}/up", local=src)
    assert sorted(plan.to_copy) == [
        (str(src / "new.txt"), f"s3://{bucket}/up/new.txt"),
        (str(src / "sub" / "deep.txt"), f"s3://{bucket}/up/sub/deep.txt"),
    ]
    assert sorted(plan.to_delete) == [f"s3://{bucket}/up/same.txt", f"s3://{bucket}/up/stale.txt"]
    assert calls == ["up/"] * (2 if backwards else 1)


SPILL_KEYS = [f"data/{k}" for k in ("a.txt", "b/c.txt", "b/é.txt", "z.txt", "日本/x.bin")] + [
    f"data/many/{i:02d}.txt" for i in range(14)
]


@pytest.mark.parametrize("mode", ["download", "upload"])
def test_out_of_order_listing_beyond_the_bound_is_planned_from_spilled_runs(
    mode: str,
    bucket: str,
    oracle: Any,
    s3_env: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A store listing backwards, with a bound of 3 entries: the sorted listing the planner
    # streams comes from runs spilled under the cache root's metadata folder, all removed
    # after the plan; the result is the one an in-order listing gives.
    from pos3lite.mirror import spill

    for k in SPILL_KEYS:
        put(oracle, bucket, k, k.encode())
    put(oracle, bucket, "data/marker", b"")  # the empty local folder "marker/" (rclone)
    src = tmp_path / "src"
    for k in SPILL_KEYS[1:4] + SPILL_KEYS[5:]:  # not the first and last keys in byte order
        (src / k).parent.mkdir(parents=True, exist_ok=True)
        (src / k).write_bytes(b"local " + k.encode())
    # The reference: the same work against the store's own (in-order) listing.
    ref, dst = tmp_path / "ref", tmp_path / "dst"
    for d in (ref, dst):
        (d / "marker").mkdir(parents=True)
        (d / "stale.txt").write_bytes(b"old")
        (d / "a.txt").write_bytes(b"changed")
    with open_mirror(tmp_path / "refcache"):
        if mode == "download":
            want_plan = pos3lite.plan_download(f"s3://{bucket}/data/", local=ref)
            pos3lite.download(f"s3://{bucket}/data/", local=ref, delete=True)
        else:
            want_plan = pos3lite.plan_upload(f"s3://{bucket}/data", local=src / "data")
    monkeypatch.setattr(spill, "SPILL_BOUND", 3)
    monkeypatch.setattr(spill, "RECORD_ENTRIES", 2)
    runs: list[Path] = []
    real_write = spill._write_run

    def recording(buf: Any, folder: Path, n: int) -> Path:
        runs.append(real_write(buf, folder, n))
        assert runs[-1].is_file()
        return runs[-1]

    monkeypatch.setattr(spill, "_write_run", recording)
    calls: list[str] = []
    list_pages(monkeypatch, calls, backwards=True)
    cache = tmp_path / "cache"
    with open_mirror(tmp_path):
        if mode == "download":
            plan = pos3lite.plan_download(f"s3://{bucket}/data/", local=dst)
            pos3lite.download(f"s3://{bucket}/data/", local=dst, delete=True)
        else:
            plan = pos3lite.plan_upload(f"s3://{bucket}/data", local=src / "data")
    assert calls == ["data/"] * (3 if mode == "download" else 2)
    # 20 entries at 3 per run: six runs per sorted listing, each in a private folder under
    # the metadata folder, and none left.
    assert len(runs) == 6 * (2 if mode == "download" else 1)
    assert {p.parent.parent for p in runs} == {cache / ".pos3lite"}
    assert not list((cache / ".pos3lite").glob("sort-*"))
    assert not any(p.exists() for p in runs)
    if mode == "upload":
        assert not cache.exists()  # a plan creates nothing: what the sort made went too
    if mode == "download":
        assert sorted(plan.to_copy) == sorted(
            (a.replace(str(ref), str(dst)), b.replace(str(ref), str(dst)))
            for a, b in want_plan.to_copy
        )
        assert (
            plan.to_delete
            == [str(dst / "stale.txt")]
            == [p.replace(str(ref), str(dst)) for p in want_plan.to_delete]
        )
        assert tree(dst) == tree(ref) == {k[5:]: k.encode() for k in SPILL_KEYS}
        assert (dst / "marker").is_dir()
    else:
        assert sorted(plan.to_copy) == sorted(want_plan.to_copy)
        assert sorted(plan.to_delete) == sorted(want_plan.to_delete)
        assert sorted(plan.to_delete) == [
            f"s3://{bucket}/data/a.txt",
            f"s3://{bucket}/data/marker",
            f"s3://{bucket}/data/日本/x.bin",
        ]


def test_case_fold_twins_in_a_spilled_out_of_order_listing_are_still_named(
    bucket: str, oracle: Any, s3_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pos3lite.mirror import spill

    monkeypatch.setattr(spill, "SPILL_BOUND", 2)
    for k in ("data/Readme.md", "data/README.md", "data/ok.txt", "data/p.txt", "data/q.txt"):
        put(oracle, bucket, k, b"x")
    list_pages(monkeypatch, [], backwards=True)
    dst = tmp_path / "dst"
    with open_mirror(tmp_path), pytest.raises(pos3lite.TransferError) as err:
        pos3lite.download(f"s3://{bucket}/data/", local=dst)
    assert "README.md" in str(err.value) and "Readme.md" in str(err.value)
    assert tree(dst) == {"ok.txt": b"x", "p.txt": b"x", "q.txt": b"x"}
    assert not list((tmp_path / "cache" / ".pos3lite").glob("sort-*"))
