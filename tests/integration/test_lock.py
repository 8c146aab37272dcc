"""The lease lock against SeaweedFS: acquire/release/tokens, loss detection, and a stress test
with several processes, one of them SIGKILLed while it holds the lock."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pos3lite import Client, ConfigError, Lock, LockLostError
from tests.integration.conftest import get, put

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def client(profile: Any) -> Iterator[Client]:
    with Client(profile) as c:
        yield c


def state(oracle: Any, bucket: str, key: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(get(oracle, bucket, key))
    return doc


def test_acquire_release_and_tokens_rise(client: Client, oracle: Any, bucket: str) -> None:
    url = f"s3://{bucket}/locks/a"
    first = client.lock(url, lease=3)
    assert first.acquire() is True
    assert first.token == 1
    assert 2.5 < first.remaining() <= 3
    assert state(oracle, bucket, "locks/a")["state"] == "held"
    second = client.lock(url, lease=3)
    assert second.acquire(blocking=False) is False
    started = time.monotonic()
    assert second.acquire(timeout=0.5) is False
    assert 0.4 < time.monotonic() - started < 2.5
    first.ensure()
    first.release()
    assert first.remaining() == 0.0
    assert state(oracle, bucket, "locks/a")["state"] == "released"
    with second:
        assert second.token == 2
        assert state(oracle, bucket, "locks/a")["token"] == 2
    with first:  # a released lock is taken at once, with the next token
        assert first.token == 3
    with pytest.raises(RuntimeError, match="unlocked"):
        first.release()


def test_heartbeat_renews_past_the_lease(client: Client, oracle: Any, bucket: str) -> None:
    url = f"s3://{bucket}/locks/hb"
    with client.lock(url, lease=1.0) as held:
        etag = oracle.head_object(Bucket=bucket, Key="locks/hb")["ETag"]
        time.sleep(1.6)
        assert held.remaining() > 0.2
        held.ensure()
        assert oracle.head_object(Bucket=bucket, Key="locks/hb")["ETag"] != etag
        # a waiter does not take over a lock that is being renewed
        assert client.lock(url, lease=1.0).acquire(timeout=2.0) is False


def test_lost_lock_is_reported(client: Client, oracle: Any, bucket: str) -> None:
    url = f"s3://{bucket}/locks/lost"
    held = client.lock(url, lease=1.5)
    held.acquire()
    doc = state(oracle, bucket, "locks/lost")
    doc["holder"] = "someone else"
    put(oracle, bucket, "locks/lost", json.dumps(doc).encode())  # a foreign takeover
    with pytest.raises(LockLostError) as caught:
        held.ensure()
    assert caught.value.token == 1
    assert held.remaining() == 0.0
    with pytest.raises(LockLostError):
        held.release()


def test_heartbeat_failure_marks_the_lock_lost(client: Client, oracle: Any, bucket: str) -> None:
    held = client.lock(f"s3://{bucket}/locks/hb-lost", lease=0.9)
    held.acquire()
    doc = state(oracle, bucket, "locks/hb-lost")
    doc["beat"] = 999  # a different body, so a different ETag
    put(oracle, bucket, "locks/hb-lost", json.dumps(doc).encode())
    time.sleep(1.0)  # the heartbeat (every 0.3 s) meets the changed ETag
    assert held.remaining() == 0.0
    with pytest.raises(LockLostError, match="took it over"):
        held.ensure()
    with pytest.raises(LockLostError):
        held.release()


def test_takeover_of_an_abandoned_lock(client: Client, oracle: Any, bucket: str) -> None:
    """A holder that stopped renewing (its heartbeat thread gone) is taken over after
    lease x 1.5 of unchanged ETag, with the next token."""
    url = f"s3://{bucket}/locks/abandoned"
    dead = client.lock(url, lease=1.0)
    dead.acquire()
    dead._stop.set()  # simulate a frozen holder: no more renewals
    started = time.monotonic()
    with client.lock(url, lease=1.0) as taker:
        waited = time.monotonic() - started
        assert taker.token == 2
    assert 1.4 <= waited < 3.0
    with pytest.raises(LockLostError):
        dead.ensure()


def test_lock_refuses_an_object_that_is_not_a_lock(
    client: Client, oracle: Any, bucket: str
) -> None:
    put(oracle, bucket, "data.csv", b"a,b\n")
    with pytest.raises(ConfigError, match="not a pos3lite lock"):
        client.lock(f"s3://{bucket}/data.csv", lease=1).acquire(timeout=1)
    assert get(oracle, bucket, "data.csv") == b"a,b\n"
    with pytest.raises(ConfigError, match="lease"):
        client.lock(f"s3://{bucket}/x", lease=0)


def test_module_lock_function(s3_env: Any, oracle: Any, bucket: str) -> None:
    import pos3lite

    with pos3lite.lock(f"s3://{bucket}/locks/m", lease=2) as lk:
        assert isinstance(lk, Lock) and lk.token == 1


# ------------------------------------------------------------------ stress test

WORKER = r"""
import json, os, signal, sys, time
import pos3lite
from pos3lite import Profile, LockLostError

endpoint, region, ak, sk, bucket, name, sections, kill_at, out, marker, others = sys.argv[1:]
client = pos3lite.Client(Profile(local_name="w", endpoint=endpoint, region=region,
                                 access_key=ak, secret_key=sk))
lock_url, counter_url = f"s3://{bucket}/stress/lock", f"s3://{bucket}/stress/counter"
def wait_for(path):
    deadline = time.time() + 120
    while not os.path.exists(path) and time.time() < deadline:
        time.sleep(0.05)

if int(kill_at) < 0:
    # Contend only once the victim holds the lock it will die with, and tell it when this
    # process is watching the lock, so the takeover is measured from waiters already waiting
    # however the processes get scheduled.
    client.check_conditional_writes(lock_url)
    wait_for(marker)
    assert not client.lock(lock_url, lease=2.0).acquire(blocking=False)
    open(f"{marker}-{name}", "w").close()
done = 0
with open(out, "a") as log:
    while done < int(sections):
        lk = client.lock(lock_url, lease=2.0)
        lk.acquire()
        start = time.time()
        if done == int(kill_at):
            open(marker, "w").close()
            for other in others.split(","):
                wait_for(f"{marker}-{other}")
            time.sleep(0.2)  # the others now wait on a lock held by a doomed process
            log.write(json.dumps({"who": name, "token": lk.token, "start": start,
                                  "end": time.time(), "killed": True}) + "\n")
            log.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        value = int(client.get_bytes(counter_url))
        time.sleep(0.05)
        try:
            lk.ensure()
            client.put(counter_url, str(value + 1).encode())
            end = time.time()
            lk.release()
        except LockLostError as exc:
            log.write(json.dumps({"who": name, "lost": str(exc)}) + "\n")
            continue
        log.write(json.dumps({"who": name, "token": lk.token, "start": start, "end": end,
                              "value": value}) + "\n")
        log.flush()
        done += 1
"""


def test_stress_processes_with_a_sigkilled_holder(
    s3_server: Any, oracle: Any, bucket: str, tmp_path: Path
) -> None:
    lease = 2.0
    workers, sections = 5, 4
    put(oracle, bucket, "stress/counter", b"0")
    log = tmp_path / "sections.jsonl"
    common = [
        s3_server.endpoint,
        s3_server.region,
        s3_server.access_key,
        s3_server.secret_key,
        bucket,
    ]
    marker = str(tmp_path / "victim-holds-the-lock")
    names = [f"w{i}" for i in range(workers)]
    cmds = [[*common, n, str(sections), "-1", str(log), marker, ""] for n in names]
    # the victim completes one section, then is SIGKILLed while holding the lock in its second
    cmds.append([*common, "victim", str(sections), "1", str(log), marker, ",".join(names)])
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in cmds
    ]
    for p in procs:
        _, err = p.communicate(timeout=240)
        if p is procs[-1]:
            assert p.returncode == -signal.SIGKILL, err
        else:
            assert p.returncode == 0, err
    records = [json.loads(line) for line in log.read_text().splitlines()]
    lost = [r for r in records if "lost" in r]
    sections_run = sorted((r for r in records if "token" in r), key=lambda r: r["start"])
    completed = [r for r in sections_run if not r.get("killed")]
    killed = [r for r in sections_run if r.get("killed")]
    assert len(killed) == 1 and len(completed) == workers * sections + 1

    # zero overlapping critical sections; the killed one lasts until the next holder starts
    for before, after in itertools.pairwise(sections_run):
        if not before.get("killed"):
            assert before["end"] <= after["start"], (before, after)
    # strictly increasing fencing tokens, in the order the sections ran
    tokens = [r["token"] for r in sections_run]
    assert tokens == sorted(set(tokens)), tokens
    # a takeover within lease x 2 of the kill
    after_kill = [r for r in sections_run if r["start"] > killed[0]["start"]]
    takeover = after_kill[0]["start"] - killed[0]["end"]
    assert takeover <= lease * 2, f"takeover after {takeover:.2f} s"
    # an exact counter: every completed section added one, none was lost or doubled
    assert int(get(oracle, bucket, "stress/counter")) == len(completed)
    assert sorted(r["value"] for r in completed) == list(range(len(completed)))
    print(
        f"\nlock stress: {len(completed)} sections in {len(cmds)} processes, 1 SIGKILLed "
        f"holder, takeover after {takeover:.2f} s (lease {lease} s), tokens "
        f"{tokens[0]}..{tokens[-1]}, {len(lost)} lost-lock retries, 0 overlaps"
    )
