"""The merge of a local walk with the sync state's records (pos3lite/mirror/ticks.py)."""

from __future__ import annotations

from typing import Any

from pos3lite.mirror.ticks import local_changes, next_dirs

A = (1, 10, 100, 1000)
B = (2, 20, 200, 2000)
DIR = (None, None, None, None)


def rows(*items: tuple[str, Any]) -> list[Any]:
    return [(k.encode(), *st) for k, st in items]


def test_unchanged_files_are_not_listed() -> None:
    out = local_changes(rows(("a", A), ("b/c", B)), rows(("a", A), ("b/c", B)))
    assert out.changed == [] and out.files == 2 and out.known


def test_a_differing_stamp_or_a_missing_record_is_a_change() -> None:
    moved = (1, 10, 101, 1000)  # same size and mtime, another inode (replaced by rename)
    touched = (1, 10, 100, 1001)  # same size, mtime and inode: metadata or mtime restored
    out = local_changes(
        rows(("a", moved), ("b", A), ("c", A), ("d/", DIR), ("e", touched)),
        rows(("a", A), ("c", A), ("e", A), ("z", B)),
    )
    assert out.changed == [("a", moved), ("b", A), ("e", touched)]
    assert out.dirs == ["d/"]


def test_records_of_deleted_files_are_skipped() -> None:
    out = local_changes(rows(("m", A)), rows(("a", A), ("b", A), ("m", A), ("x", A)))
    assert out.changed == []


def test_an_empty_state_knows_nothing() -> None:
    out = local_changes(rows(("a", A)), [])
    assert not out.known and out.changed == [("a", A)]


def test_utf8_byte_order() -> None:
    # "a.b" < "a/" < "a0" < "z" < "é" in UTF-8 bytes: the walk's and the state's order.
    keys = ["a.b", "a/c", "a0", "z", "\u00e9"]
    assert keys == sorted(keys, key=lambda k: k.encode())
    out = local_changes(rows(*[(k, A) for k in keys]), rows(*[(k, A) for k in keys[1:]]))
    assert out.changed == [("a.b", A)]


def test_a_watched_pass_updates_only_the_empty_folders_it_looked_at() -> None:
    known = {"e1/", "e2/", "n/old/", "gone/x/", "keep/"}
    out = next_dirs(
        known,
        redone={"e1/", "e2/", "n/"},  # folders whose emptiness was checked again
        below={"n/", "gone/"},  # walked again / deleted: everything under them redone
        empty_now=["e2/", "n/new/", "fresh/"],
    )
    assert out == {"e2/", "n/new/", "fresh/", "keep/"}
