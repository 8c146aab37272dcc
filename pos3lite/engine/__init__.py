"""The sync engine: pure values and functions, no I/O, no threads, no clock.

``plan(src, dst, compare=..., delete=..., exclude=...)`` merges two listings of
:class:`Entry` values sorted by :func:`sort_key` into a :class:`Plan` of copies and deletes.
Only the standard library is used here; adapters (local folder walk, S3 listing) build the
entries and ``transfer`` executes the plan.
"""

from pos3lite.engine.compare import (
    COMPARE_NAMES,
    Checksum,
    Compare,
    SizeMtime,
    SizeOnly,
    make_compare,
)
from pos3lite.engine.diff import plan, sort_key
from pos3lite.engine.filters import Filter
from pos3lite.engine.model import Action, Entry, Plan, Reason, Stamp, Synced
from pos3lite.engine.threeway import Decision, Direction, decide

__all__ = [
    "COMPARE_NAMES",
    "Action",
    "Checksum",
    "Compare",
    "Decision",
    "Direction",
    "Entry",
    "Filter",
    "Plan",
    "Reason",
    "SizeMtime",
    "SizeOnly",
    "Stamp",
    "Synced",
    "decide",
    "make_compare",
    "plan",
    "sort_key",
]
