"""Local-folder registration locks across processes (pos3lite/mirror/registry.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pos3lite.errors import ConfigError
from pos3lite.mirror.registry import Registry, overlaps

HOLD = r"""
import sys
from pathlib import Path
from pos3lite.mirror.registry import Registry
reg = Registry(Path(sys.argv[1]))
reg.claim(Path(sys.argv[2]), exclusive=sys.argv[3] == "ex", what="upload of s3://b/held")
print("held", flush=True)
sys.stdin.readline()
"""


@pytest.mark.parametrize(
    ("a", "b", "want"),
    [("/x", "/x", True), ("/x", "/x/y", True), ("/x/y", "/x", True), ("/x", "/xy", False)],
)
def test_overlaps(a: str, b: str, want: bool) -> None:
    assert overlaps(Path(a), Path(b)) is want


def _holder(cache: Path, path: Path, mode: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(cache), str(path), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def _release(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("\n")
    proc.stdin.flush()
    proc.wait(timeout=30)


# other process holds (mode, folder) / we claim (folder, exclusive) / refused?
CASES = [
    ("ex", "d", "d", False, True),  # B downloads what A uploads
    ("ex", "d", "d/sub", False, True),  # nested
    ("ex", "d/sub", "d", True, True),
    ("sh", "d", "d", False, False),  # two downloads may share a folder
    ("sh", "d", "d/sub", True, True),  # an upload inside a download
    ("ex", "d", "e", True, False),  # unrelated folders
]


@pytest.mark.parametrize(("mode", "held", "mine", "exclusive", "refused"), CASES)
def test_cross_process_claims(
    tmp_path: Path, mode: str, held: str, mine: str, exclusive: bool, refused: bool
) -> None:
    cache = tmp_path / "cache"
    proc = _holder(cache, tmp_path / held, mode)
    try:
        reg = Registry(cache)
        if refused:
            with pytest.raises(ConfigError) as info:
                reg.claim(tmp_path / mine, exclusive=exclusive, what="download of s3://b/mine")
            msg = str(info.value)
            assert f"process {proc.pid}" in msg
            assert str(tmp_path / held) in msg and str(tmp_path / mine) in msg
            assert "s3://b/held" in msg and "s3://b/mine" in msg
        else:
            claim = reg.claim(tmp_path / mine, exclusive=exclusive, what="x")
            reg.release(claim)
    finally:
        _release(proc)
    # Once the holder is gone, its lock is stale: anything may claim, and it is cleaned.
    reg = Registry(cache)
    claim = reg.claim(tmp_path / mine, exclusive=True, what="y")
    reg.release_all()
    assert claim.fd == -1
