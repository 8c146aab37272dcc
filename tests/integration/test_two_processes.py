"""Two processes mirroring into the same cache root do not corrupt each other's files."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from .conftest import put, tree

pytestmark = pytest.mark.integration

SCRIPT = r"""
import sys, pos3lite
with pos3lite.mirror(cache_root=sys.argv[1], show_progress=False, max_workers=4):
    print(pos3lite.download(sys.argv[2]))
"""


def test_two_processes_share_a_cache_root_safely(
    s3_env: Any, oracle: Any, bucket: str, tmp_path: Path
) -> None:
    expected = {f"d{i % 7}/f{i:03d}.bin": os.urandom(1000 + i * 37) for i in range(150)}
    with ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda kv: put(oracle, bucket, f"shared/{kv[0]}", kv[1]), expected.items()))
    cache = tmp_path / "cache"
    env = dict(os.environ)
    cmd = [sys.executable, "-c", SCRIPT, str(cache), f"s3://{bucket}/shared"]
    for _round in range(3):
        procs = [
            subprocess.Popen(
                cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for _ in range(2)
        ]
        outs = [p.communicate(timeout=120) for p in procs]
        for p, (out, err) in zip(procs, outs, strict=True):
            assert p.returncode == 0, err
            assert out.strip() == str(cache / "_" / bucket / "shared")
        local = cache / "_" / bucket / "shared"
        assert tree(local) == expected  # no torn, mixed or missing file
        assert not [p for p in local.rglob("*") if p.name.endswith(".pos3lite-tmp")]
        # Change half the objects so the next round rewrites files in both processes.
        for rel in list(expected)[::2]:
            expected[rel] = os.urandom(len(expected[rel]) + 1)
            put(oracle, bucket, f"shared/{rel}", expected[rel])
