"""The merge of a local walk with the sync state's records (pos3lite/mirror/ticks.py)."""

from __future__ import annotations

import pytest

from pos3lite.mirror.ticks import local_changes

A = (1, 10, 100, 1000)
B = (2, 20, 200, 2000)


def test_unchanged_files_are_not_listed() -> None:
    out = local_changes([("a", A), ("b/c", B)], [("a", A), ("b/c", B)])
    assert out.changed == [] and out.files == 2 and out.records == 2


def test_a_differing_stamp_or_a_missing_record_is_a_change() -> None:
    moved = (1, 10, 101, 1000)  # same size and mtime, another inode (replaced by rename)
    out = local_changes(
        [("a", moved), ("b", A), ("c", A), ("d/", None)],
        [("a", A), ("c", A), ("z", B)],
    )
    assert out.changed == [("a", moved), ("b", A)]
    assert out.dirs == ["d/"]


def test_records_of_deleted_files_are_skipped() -> None:
    out = local_changes([("m", A)], [("a", A), ("b", A), ("m", A), ("x", A)])
    assert out.changed == []
    assert out.records == 3  # records past the last local key are not read


def test_an_empty_state_knows_nothing() -> None:
    out = local_changes([("a", A)], [])
    assert out.records == 0 and out.changed == [("a", A)]


def test_utf8_byte_order_is_str_order() -> None:
    # "a.b" < "a/" < "a0" < "z" < "é" in UTF-8 bytes: the walk's and the state's order.
    keys = ["a.b", "a/c", "a0", "z", "\u00e9"]
    assert keys == sorted(keys, key=lambda k: k.encode())
    out = local_changes([(k, A) for k in keys], [(k, A) for k in keys])
    assert out.changed == []


def test_out_of_order_sides_raise() -> None:
    with pytest.raises(ValueError, match="local walk out of order"):
        local_changes([("b", A), ("a", A)], [])
    with pytest.raises(ValueError, match="sync state out of order"):
        local_changes([("z", A)], [("b", A), ("a", A)])
