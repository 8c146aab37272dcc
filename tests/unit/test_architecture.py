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
    "keys.py",
    "engine/model.py",
    "engine/diff.py",
    "engine/compare.py",
    "engine/filters.py",
    "engine/threeway.py",
    "engine/compact.py",
    "mirror/policy.py",
    "mirror/scheduler.py",
    "mirror/ticks.py",
    "auth/sigv4.py",
    "auth/documents.py",
    "s3/xml.py",
    "s3/listscan.py",
    "s3/retry.py",
    "transport/base.py",
    "datasets/format.py",
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


def test_datasets_load_lazily_and_only_through_the_object_api() -> None:
    code = (
        "import sys, pos3lite; assert 'pos3lite.datasets' not in sys.modules; "
        "import pos3lite.datasets; "
        "print(','.join(m for m in ('urllib3','pos3lite.objects','pos3lite.s3.client') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"import pos3lite.datasets loaded: {out}"
    for path in (PKG / "datasets").rglob("*.py"):
        found = _imports(path) | {
            node.module or ""
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom) and node.level
        }
        assert not {"s3.client", "transport.urllib3", "_mirror"} & found, path.name


def test_object_api_names_are_lazy_and_not_shadowed_by_submodules() -> None:
    """``pos3lite.lock`` / ``pos3lite.open`` stay the functions even after the modules that
    define them were imported (a submodule named like a public function would replace it)."""
    code = (
        "import sys, pos3lite; "
        "assert 'pos3lite.objects' not in sys.modules and 'pos3lite._lock' not in sys.modules; "
        "c = pos3lite.Client(); c.lock; import pos3lite._lock, pos3lite.objects; "
        "assert callable(pos3lite.lock) and callable(pos3lite.open), pos3lite.lock; "
        "assert issubclass(pos3lite.NotFoundError, FileNotFoundError); "
        "assert issubclass(pos3lite.AlreadyExistsError, (FileExistsError)); "
        "assert issubclass(pos3lite.AlreadyExistsError, pos3lite.PreconditionFailedError)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _internal_imports(path: Path) -> set[str]:
    """Every pos3lite module ``path`` imports, anywhere in the file (module level, inside
    functions, under TYPE_CHECKING): a cycle through any of them is a design cycle."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    modules = {_module_name(p) for p in PKG.rglob("*.py")}
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        for target in targets:
            if target in modules and target != name:
                found.add(target)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_no_import_cycles() -> None:
    # Every edge counts, deferred imports and a package's own __init__ included (importing
    # pos3lite.mirror.scan runs pos3lite/mirror/__init__.py first): a submodule imports its
    # siblings by module path (``from .scan import x`` or ``import pos3lite.mirror.scan``),
    # never through its package (``from . import scan``), so a package __init__ that
    # forwards to a submodule closes no cycle. Only the top-level lazy __init__ is left out.
    graph = {}
    for path in PKG.rglob("*.py"):
        graph[_module_name(path)] = {d for d in _internal_imports(path) if d != "pos3lite"}
    assert _cycles(graph) == []


def test_the_cycle_check_sees_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_config_does_not_import_auth() -> None:
    for path in (PKG / "config").glob("*.py"):
        assert not any(m.startswith("pos3lite.auth") for m in _internal_imports(path)), path


def test_the_server_launcher_is_stdlib_and_only_the_cli_imports_it() -> None:
    """``pos3lite/_server.py`` (``pos3lite server``) stays out of every other module."""
    allowed = set(sys.stdlib_module_names) | {"__future__"}
    roots = {name.split(".")[0] for name in _imports(PKG / "_server.py")}
    assert roots <= allowed, sorted(roots - allowed)
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).as_posix()
        if rel in ("cli.py", "_server.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [a.name for a in node.names]
                assert not any(n.split(".")[-1] == "_server" for n in names), rel


def test_localfs_is_an_adapter_importing_only_values_below_it() -> None:
    """localfs (walk, writes, cache root) sits under transfer and the mirror: it may use
    errors, urls and the engine's values, never the S3 client, transfer or the mirror."""
    allowed = {"errors", "urls", "engine.model", "localfs.walk", "localfs.write", "localfs.cache"}
    for path in sorted((PKG / "localfs").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                base = "localfs." if node.level == 1 else ""
                target = base + (node.module or "")
                if node.level == 1 and not node.module:
                    continue
                assert target.removeprefix("localfs.") in allowed or target in allowed, (
                    f"{path.name} imports {target}"
                )
            elif isinstance(node, ast.ImportFrom | ast.Import):
                names = (
                    [node.module]
                    if isinstance(node, ast.ImportFrom)
                    else [a.name for a in node.names]
                )
                assert not any(str(n).startswith("pos3lite") for n in names), path.name


def test_the_mirror_package_does_not_shadow_the_mirror_function() -> None:
    """``pos3lite/mirror/`` shares its name with ``pos3lite.mirror()``: whatever is imported
    first, ``pos3lite.mirror`` stays callable as the context manager."""
    code = (
        "import pos3lite.mirror.policy, pos3lite, tempfile\n"
        "with pos3lite.mirror(cache_root=tempfile.mkdtemp(), show_progress=False):\n"
        "    pass\n"
        "from pos3lite import mirror, flush\n"
        "import pos3lite.mirror.context\n"
        "import inspect; print(inspect.isfunction(pos3lite.mirror))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "True"


def test_pos3_private_names_exist_with_pos3s_meaning() -> None:
    """positronic's tests import these pos3 names."""
    from pos3lite import profiles

    assert pos3lite._parse_s3_url("s3://prof@bkt/a/b/") == ("bkt", "a/b/")
    assert pos3lite._PROFILES is profiles._PROFILES
    prof = pos3lite.Profile(local_name="x", endpoint="http://127.0.0.1:1")
    assert profiles._resolve_profile(prof) is prof
    assert profiles._resolve_profile(None) is None
    with pytest.raises(ValueError):
        pos3lite._parse_s3_url("https://bkt/a")


def test_the_architecture_rules_hold_for_the_mirror_package() -> None:
    """mirror/state, registry and policy never import the context (no cycles)."""
    for rel in (
        "mirror/state.py",
        "mirror/registry.py",
        "mirror/policy.py",
        "mirror/scheduler.py",
        "mirror/streams.py",
        "mirror/ticks.py",
        "mirror/md5cache.py",
        "mirror/spill.py",
        "mirror/sqlitedb.py",
    ):
        tree = ast.parse((PKG / rel).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert "context" not in node.module, rel


def test_the_change_watcher_and_ctypes_load_only_when_a_tick_starts_one() -> None:
    """``localfs/watch.py`` (inotify through ctypes) is imported by the first background
    tick, never by ``import pos3lite``, the mirror or ``pos3lite.localfs``; it uses only the
    standard library and the walk below it."""
    code = (
        "import sys, pos3lite, pos3lite.localfs, pos3lite.mirror.context; "
        "print(','.join(m for m in ('ctypes','pos3lite.localfs.watch') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"loaded eagerly: {out}"
    allowed = set(sys.stdlib_module_names) | {"__future__"}
    roots = {name.split(".")[0] for name in _imports(PKG / "localfs" / "watch.py")}
    assert roots <= allowed, sorted(roots - allowed)
    for path in PKG.rglob("*.py"):
        if path.name == "watch.py":
            continue
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level only: the mirror imports it inside functions
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.endswith("watch"), path
