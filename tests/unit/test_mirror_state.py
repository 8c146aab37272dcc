"""The sync state store (pos3lite/mirror/state.py): sqlite3 in WAL mode."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from pos3lite.engine.model import Synced
from pos3lite.mirror.state import META_DIR, STATE_FILE, SyncState, registration_name

REC = Synced((3, 10**18, 42, 10**18 + 5), "abc", 3, 1_700_000_000.0)


def test_round_trip_per_registration(tmp_path: Path) -> None:
    st = SyncState(tmp_path)
    a = registration_name("_", "s3://b/p", tmp_path / "a")
    b = registration_name("_", "s3://b/p", tmp_path / "b")
    st.update(a, [("x/1.txt", REC), ("caf\u00e9", REC), ("bad\udcff", REC)])
    st.update(b, [("y", REC)])
    assert st.load(a) == {"x/1.txt": REC, "caf\u00e9": REC, "bad\udcff": REC}
    assert st.load(b) == {"y": REC}
    st.update(a, [("x/1.txt", Synced(REC.local, "new", 4, 1.0))], forget=["caf\u00e9"])
    st.close()
    again = SyncState(tmp_path).load(a)
    assert again == {"x/1.txt": Synced(REC.local, "new", 4, 1.0), "bad\udcff": REC}
    db = tmp_path / META_DIR / STATE_FILE
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert (os.stat(tmp_path / META_DIR).st_mode & 0o777) == 0o700


def test_reading_creates_nothing(tmp_path: Path) -> None:
    assert SyncState(tmp_path / "cache").load("r") == {}
    assert not (tmp_path / "cache").exists()


def test_damaged_database_costs_transfers_not_errors(tmp_path: Path) -> None:
    st = SyncState(tmp_path)
    st.update("r", [("k", REC)])
    st.close()
    db = tmp_path / META_DIR / STATE_FILE
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" * 100)
    fresh = SyncState(tmp_path)
    assert fresh.load("r") == {}
    fresh.update("r", [("k2", REC)])
    assert SyncState(tmp_path).load("r") == {"k2": REC}
    assert [p.name for p in db.parent.iterdir() if ".corrupt-" in p.name]


def test_a_process_killed_mid_write_leaves_a_readable_state(tmp_path: Path) -> None:
    """SIGKILL while transactions of 1000 keys are being written: the state reopens and
    holds whole transactions only."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from pos3lite.mirror.state import SyncState\n"
        "from pos3lite.engine.model import Synced\n"
        "st = SyncState(Path(sys.argv[1]))\n"
        "rec = Synced((1, 2, 3, 4), 'e', 1, 1.0)\n"
        "st.update('r', [('before', rec)])\n"
        "print('ready', flush=True)\n"
        "n = 0\n"
        "while True:\n"
        "    st.update('r', [(f'k{n}-{i}', rec) for i in range(1000)])\n"
        "    n += 1\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    got = SyncState(tmp_path).load("r")
    assert "before" in got
    assert (len(got) - 1) % 1000 == 0 and len(got) > 1


def test_iter_stamps_streams_records_in_utf8_byte_order_page_by_page(tmp_path: Path) -> None:
    st = SyncState(tmp_path)
    reg = registration_name("_", "s3://b/p", tmp_path / "a")
    other = registration_name("_", "s3://b/q", tmp_path / "a")
    keys = ["", "z", "a/b", "a.b", "\u00e9", "a0", "a/"]
    st.update(reg, [(k, Synced((i, i, i, i), None, i, 0.0)) for i, k in enumerate(keys)])
    st.update(other, [("m", REC)])
    want = sorted(keys, key=lambda k: k.encode())
    for page in (1, 2, 3, 100):
        got = list(st.iter_stamps(reg, page=page))
        assert [r[0] for r in got] == [k.encode() for k in want]
        assert got == sorted((k.encode(), i, i, i, i) for i, k in enumerate(keys))
    assert list(st.iter_stamps("unknown")) == []
    st.close()
    assert list(SyncState(tmp_path / "cache").iter_stamps(reg)) == []
    assert not (tmp_path / "cache").exists()
