"""Fault tier: pos3lite against the real S3 server (SeaweedFS) through a fault-injecting proxy.

* ``s3_server`` (session): ``weed mini`` on free loopback ports, SigV4 enforced.
* ``oracle`` (session): boto3, path-style, talking to the server directly (never through
  the proxy); it creates buckets and reads back what pos3lite wrote.
* ``make_proxy``: starts :class:`~tests.faults.proxy.FaultProxy` instances in front of the
  server; each one's counters go to the fault ledger when the test ends.
* ``fault_record``: the test's ledger entry; a test calls ``fault_record.converged = True``
  once everything it checks holds, which makes its faults count as survived.

The terminal summary prints, per mode, the faults injected and survived; the same numbers
(and per-test detail) go to ``faults-summary.json`` in the session's temporary folder, or
to ``$POS3LITE_FAULTS_JSON`` if set.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.seaweedfs import SeaweedFS, oracle_client

from .proxy import MODES, FaultProxy
from .support import LEDGER, LedgerEntry, build_tree, profile_for

TREE_SEED = 20240601


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "faults: fault injection against the local SeaweedFS server via a proxy"
    )


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not LEDGER.entries:
        return
    tr = terminalreporter
    tr.section("fault injection summary")
    tr.write_line(f"{'mode':<12} {'injected':>9} {'survived':>9}")
    totals = LEDGER.totals()
    for mode in MODES:
        t = totals[mode]
        tr.write_line(f"{mode:<12} {t['injected']:>9} {t['survived']:>9}")
    all_inj = sum(t["injected"] for t in totals.values())
    all_srv = sum(t["survived"] for t in totals.values())
    tr.write_line(f"{'total':<12} {all_inj:>9} {all_srv:>9}")
    for e in LEDGER.entries:
        st = e.stats
        tr.write_line(
            f"  {e.test.split('::')[-1]}: converged={e.converged} runs={e.runs} "
            f"requests={st.get('requests')} injected={sum(st.get('injected', {}).values())} "
            + " ".join(f"{k}={v}" for k, v in e.notes.items())
        )
    if LEDGER.json_path is not None:
        tr.write_line(f"fault summary JSON: {LEDGER.json_path}")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """A running SeaweedFS S3 server on 127.0.0.1 with SigV4 enforced."""
    with SeaweedFS(workdir=tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture(scope="session")
def oracle(s3_server: SeaweedFS) -> Any:
    """boto3 straight to the server (no proxy): the independent oracle."""
    pytest.importorskip("boto3")
    return oracle_client(s3_server, retries={"max_attempts": 5, "mode": "standard"})


@pytest.fixture
def bucket(oracle: Any) -> str:
    """A fresh, empty bucket for one test."""
    name = f"f-{uuid.uuid4().hex[:20]}"
    oracle.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def expected_tree() -> dict[str, bytes]:
    """The seeded 300-file tree, {key: bytes}."""
    return build_tree(TREE_SEED)


@pytest.fixture(scope="session")
def source_dir(tmp_path_factory: pytest.TempPathFactory, expected_tree: dict[str, bytes]) -> Path:
    """The seeded tree written to disk (read-only by convention)."""
    from .support import write_tree

    root = tmp_path_factory.mktemp("source")
    write_tree(root, expected_tree)
    return root


@pytest.fixture(scope="session", autouse=True)
def _ledger_json(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield
    if not LEDGER.entries:
        return
    override = os.environ.get("POS3LITE_FAULTS_JSON")
    path = Path(override) if override else tmp_path_factory.getbasetemp() / "faults-summary.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(LEDGER.as_json(), indent=2, ensure_ascii=False))
    LEDGER.json_path = path


@pytest.fixture(autouse=True)
def _no_profiles_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the developer's profiles.toml and AWS config out of the runs."""
    monkeypatch.setenv("POS3LITE_PROFILES_FILE", str(tmp_path / "no-profiles.toml"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture
def fault_record(request: pytest.FixtureRequest) -> Iterator[LedgerEntry]:
    """This test's ledger entry (stats are merged from every proxy it started)."""
    entry = LedgerEntry(test=request.node.nodeid, stats={})
    yield entry
    LEDGER.add(entry)


@pytest.fixture
def make_proxy(
    s3_server: SeaweedFS, fault_record: LedgerEntry
) -> Iterator[Callable[..., FaultProxy]]:
    """``make_proxy(seed, rates=None, **kw)``: a started FaultProxy in front of the server."""
    started: list[FaultProxy] = []

    def make(seed: int, rates: dict[str, float] | None = None, **kw: Any) -> FaultProxy:
        p = FaultProxy(s3_server.endpoint, seed, rates, **kw).start()
        started.append(p)
        return p

    yield make
    for p in started:
        p.stop()
    merged: dict[str, Any] = {
        "requests": 0,
        "forwarded": 0,
        "upstream_errors": 0,
        "injected": dict.fromkeys(MODES, 0),
        "not_applicable": dict.fromkeys(MODES, 0),
        "damaged_create_upload_ids": [],
        "seeds": [],
    }
    for p in started:
        st = p.stats()
        merged["seeds"].append(st["seed"])
        for k in ("requests", "forwarded", "upstream_errors"):
            merged[k] += st[k]
        for k in ("injected", "not_applicable"):
            for m in MODES:
                merged[k][m] += st[k][m]
        merged["damaged_create_upload_ids"] += st["damaged_create_upload_ids"]
    fault_record.stats = merged


@pytest.fixture
def direct_profile(s3_server: SeaweedFS) -> Any:
    """A Profile straight to the server (seeding without faults)."""
    return profile_for(s3_server.endpoint, s3_server)
