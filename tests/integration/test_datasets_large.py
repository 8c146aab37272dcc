"""A large shard written and read back in a child process with its peak RSS checked.

The 1 GiB figure the issue asks for is measured by benchmarks/datasets_large_shard.py (run
once, quoted in docs/datasets.md); the suite keeps a 200 MiB run so memory that grew with
the shard size would show here too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LIMIT_MIB = 150


def test_a_200_mib_shard_is_written_and_read_in_bounded_memory(
    s3_env: Any, bucket: str
) -> None:
    url = f"s3://{bucket}/ds/manifest.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks/datasets_large_shard.py"), url, "--mib", "200"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["shard_mib"] == 200 and result["members"] == 50
    assert result["peak_rss_mib"] < LIMIT_MIB, result
    print(f"\n200 MiB shard: peak RSS {result['peak_rss_mib']} MiB")
