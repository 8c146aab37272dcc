"""Datasets on S3: JSON Lines manifests and WebDataset-style tar shards.

::

    from pos3lite.datasets import Manifest

    m = Manifest("s3://bucket/ds/manifest.jsonl")
    with m.writer() as w:                          # published once, at the end, by CAS
        w.add_to_shard("000001.jpg", "img1.jpg", id="1", meta={"label": 3})
        w.add_to_shard("000001.cls", b"3")
        w.add_file("extra/readme.txt", "README.txt")
    for item in m.files():                          # a shard member is one ranged GET
        data = item.read()

Not imported by ``import pos3lite``; ``pos3lite.datasets`` loads on first use. See
docs/datasets.md for the format and the guarantees.
"""

from __future__ import annotations

from ..errors import InvalidManifestError
from .format import expand_braces, split_sample, wids_shardlist
from .manifest import CompactReport, DatasetItem, DeleteReport, Manifest
from .writer import ManifestWriter, write_wids

__all__ = [
    "CompactReport",
    "DatasetItem",
    "DeleteReport",
    "InvalidManifestError",
    "Manifest",
    "ManifestWriter",
    "expand_braces",
    "split_sample",
    "wids_shardlist",
    "write_wids",
]
