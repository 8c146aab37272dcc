"""Hold the package's shape: layering, import cost, public surface, dependencies."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import pos3lite

PKG = Path(pos3lite.__file__).resolve().parent
REPO = PKG.parent

# Pure modules: standard library only, and none of these.
PURE = [
    "errors.py",
    "urls.py",
    "engine/model.py",
    "engine/diff.py",
    "engine/compare.py",
    "engine/filters.py",
    "auth/sigv4.py",
    "s3/xml.py",
    "s3/listscan.py",
    "transport/base.py",
]
FORBIDDEN_IN_PURE = {"os", "socket", "threading", "time", "urllib3", "tqdm", "subprocess"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("rel", PURE)
def test_pure_modules_do_no_io(rel: str) -> None:
    roots = {name.split(".")[0] for name in _imports(PKG / rel)}
    assert not roots & FORBIDDEN_IN_PURE, f"{rel} imports {sorted(roots & FORBIDDEN_IN_PURE)}"


def test_only_the_transport_adapter_imports_urllib3_and_only_progress_imports_tqdm() -> None:
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).as_posix()
        roots = {name.split(".")[0] for name in _imports(path)}
        if rel != "transport/urllib3.py":
            assert "urllib3" not in roots, rel
        if rel != "progress.py":
            assert "tqdm" not in roots, rel
        assert not roots & {"boto3", "botocore", "requests"}, rel


def test_import_is_light() -> None:
    code = (
        "import sys, pos3lite; "
        "print(','.join(m for m in ('urllib3','tqdm','ssl','xml.etree.ElementTree','tomllib',"
        "'configparser','boto3','botocore') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"import pos3lite loaded: {out}"


def test_public_surface_is_pos3s_plus_errors() -> None:
    pos3_names = {
        "mirror",
        "with_mirror",
        "download",
        "upload",
        "sync",
        "ls",
        "plan_download",
        "plan_upload",
        "register_profile",
        "Profile",
        "TransferError",
        "TransferPlan",
    }
    assert pos3_names <= set(pos3lite.__all__)
    for name in pos3lite.__all__:
        assert hasattr(pos3lite, name), name
    assert issubclass(pos3lite.TransferError, Exception)
    assert issubclass(pos3lite.ConfigError, ValueError)
    assert issubclass(pos3lite.MirrorStateError, RuntimeError)


def test_runtime_dependencies_are_urllib3_and_tqdm_only() -> None:
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = sorted(
        d.split(">")[0].split("=")[0].split("<")[0].strip() for d in meta["dependencies"]
    )
    assert names == ["tqdm", "urllib3"]


def test_version_is_hard_coded() -> None:
    assert isinstance(pos3lite.__version__, str) and pos3lite.__version__.count(".") == 2
