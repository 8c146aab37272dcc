"""Transfer throughput: pos3lite against pos3 0.4.0, boto3 (s3transfer), s3func, aws-cli,
s5cmd and rclone, all at 10 concurrent transfers, each in its own venv.

Usage::

    python benchmarks/throughput.py [--runs 3] [--scenarios down_small,up_small,noop,...]
                                    [--size-large 512M] [--tools pos3lite,pos3,...]

Creates the venvs under benchmarks/out/venvs/ if missing (reinstalls pos3lite from the
working tree every time), starts its own SeaweedFS on 127.0.0.1 (SigV4 on), generates and
seeds the data outside the timed runs, prints one markdown table per scenario and writes
every per-run number to benchmarks/out/throughput-<date>.json (and throughput-latest.json).

Scenarios (every run a fresh process; rounds interleave the tools A B C .., B C .. A, ...):

* ``down_small``  2,000 x 16 KiB objects into an emptied folder; sha256 of every file checked.
* ``up_small``    the same 2,000 files to a fresh prefix; every key's size and ETag (= MD5 of
  what the server stored) checked against the source, then the prefix is deleted.
* ``noop``        resync of 10,000 x 4 KiB objects into a folder the same tool filled before
  the timed rounds (untimed); nothing should move. sha256 of every file checked, and any
  file the tool rewrote (inode or mtime changed) is counted and shown.
* ``down_large``  one object (512 MiB unless --size-large) into an emptied folder; sha256.
* ``up_large``    the same file to a fresh key; size checked and the stored bytes read back
  and hashed by the harness (multipart ETags are not MD5s); then deleted.

Tools and how they are driven (10 everywhere: files in flight, and parts in flight where the
tool splits large objects; part sizes are each tool's default):

* pos3lite, pos3: ``with mirror(max_workers=10, show_progress=False): download(url,
  local=dir)`` / ``upload(url, local=dir, interval=None)`` (drivers/tp_*.py);
* boto3: one client, s3transfer ``TransferManager(max_concurrency=10)`` (drivers/tp_boto3.py);
* s3func: one ``S3Session(max_pool_connections=10)`` + ``ThreadPoolExecutor(10)``, one request
  per file (it has no multipart);
* aws-cli: ``aws s3 sync`` with ``s3.max_concurrent_requests = 10`` (temp AWS_CONFIG_FILE);
* s5cmd: ``s5cmd --numworkers 10 cp --concurrency 10`` (``sync`` for the no-op resync);
* rclone: ``rclone copy --transfers 10 --checkers 10 --multi-thread-streams 10
  --s3-upload-concurrency 10``; for the no-op resync also a ``--use-server-modtime`` variant.
* obstore: one ``S3Store`` + ``ThreadPoolExecutor(10)`` of blocking get/put calls
  (drivers/tp_obstore.py); it has no sync.

``--wan-ms 20`` (the ``wan`` scenario of issue 12): every tool talks to the server through
``wan_proxy.py``, a TCP proxy in its own process that delays every byte the server sends by
20 ms (a delay line: latency, no bandwidth cap). The proxy's own CPU during each run is read
from ``/proc/<pid>/stat`` and reported under each table; results go to
``throughput-wan-<date>.json``. Seeding and verification bypass the proxy.

A peer that cannot be installed, or whose run fails, is recorded as unavailable / FAILED with
the reason; the harness carries on.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench as B  # noqa: E402

SCENARIOS = ["down_small", "up_small", "noop", "down_large", "up_large"]
TOOLS = ["pos3lite", "pos3", "boto3", "s3func", "awscli", "s5cmd", "rclone", "obstore"]
PY_DRIVEN = {"pos3lite", "pos3", "boto3", "s3func", "obstore"}
NO_SYNC = {"boto3": "no sync: list+get re-downloads everything",
           "s3func": "no sync: list+get re-downloads everything",
           "obstore": "no sync: list+get re-downloads everything"}
WORKERS = 10
BUCKET = "bench"
SMALL_N, SMALL_SIZE = 2000, 16 * 1024
NOOP_N, NOOP_SIZE = 10_000, 4 * 1024


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


# ---------------------------------------------------------------- data


def make_data(root: Path, large_size: int) -> dict[str, dict[str, dict[str, Any]]]:
    """Deterministic local data; returns {set: {relpath: {size, sha256, md5}}}."""
    manifest_path = root / "manifest.json"
    params = {"small": [SMALL_N, SMALL_SIZE], "noop": [NOOP_N, NOOP_SIZE], "large": large_size}
    if manifest_path.exists():
        m = json.loads(manifest_path.read_text())
        if m.get("params") == params:
            return m["sets"]
    shutil.rmtree(root, ignore_errors=True)
    rng = random.Random(20261121)
    sets: dict[str, dict[str, dict[str, Any]]] = {}
    for name, n, size in (("small", SMALL_N, SMALL_SIZE), ("noop", NOOP_N, NOOP_SIZE)):
        sets[name] = {}
        for i in range(n):
            rel = f"d{i // 100:03d}/f{i:05d}.bin"
            data = rng.randbytes(size)
            p = root / name / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
            sets[name][rel] = {"size": size, "sha256": hashlib.sha256(data).hexdigest(),
                               "md5": hashlib.md5(data).hexdigest()}
    (root / "large").mkdir(parents=True, exist_ok=True)
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with open(root / "large" / "big.bin", "wb") as fh:
        left = large_size
        while left:
            chunk = rng.randbytes(min(left, 8 << 20))
            fh.write(chunk)
            sha.update(chunk)
            md5.update(chunk)
            left -= len(chunk)
    sets["large"] = {"big.bin": {"size": large_size, "sha256": sha.hexdigest(),
                                 "md5": md5.hexdigest()}}
    manifest_path.write_text(json.dumps({"params": params, "sets": sets}))
    return sets


def seed(client: Any, data: Path, sets: dict[str, Any], scenarios: list[str]) -> None:
    """Put the source objects the scenarios read, with boto3 (harness venv), untimed."""
    from boto3.s3.transfer import TransferConfig

    client.create_bucket(Bucket=BUCKET)
    wanted = [n for n, scs in (("small", ("down_small",)), ("noop", ("noop",)))
              if any(sc in scenarios for sc in scs)]
    jobs = [(data / name / rel, f"{name}/{rel}") for name in wanted for rel in sets[name]]
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda j: client.put_object(Bucket=BUCKET, Key=j[1],
                                                  Body=j[0].read_bytes()), jobs))
    if "down_large" in scenarios:
        client.upload_file(str(data / "large" / "big.bin"), BUCKET, "large/big.bin",
                           Config=TransferConfig(max_concurrency=10))


# ---------------------------------------------------------------- commands


def command(tool: str, op: str, prefix: str, local: Path, endpoint: str,
            venvs: dict[str, B.Venv]) -> list[str]:
    """op: down | up | resync. prefix ends with '/'."""
    src_remote = f"s3://{BUCKET}/{prefix}"
    driver = tool.split("@", 1)[0]  # pos3lite@REV: an earlier pos3lite, same driver
    if driver in PY_DRIVEN:
        return [venvs[tool].python, str(B.DRIVERS / f"tp_{driver}.py"),
                "up" if op == "up" else "down", BUCKET, prefix, str(local), str(WORKERS)]
    if tool == "awscli":
        base = [B.aws_bin(), "--endpoint-url", endpoint, "s3", "sync", "--only-show-errors"]
        return base + ([str(local), src_remote] if op == "up" else [src_remote, str(local)])
    if tool == "s5cmd":
        base = [B.s5cmd_bin(), "--endpoint-url", endpoint, "--numworkers", str(WORKERS)]
        if op == "up":
            return base + ["cp", "--concurrency", str(WORKERS), f"{local}/*", src_remote]
        if op == "resync":
            return base + ["sync", f"{src_remote}*", f"{local}/"]
        return base + ["cp", "--concurrency", str(WORKERS), f"{src_remote}*", f"{local}/"]
    if tool.startswith("rclone"):
        remote = f"bench:{BUCKET}/{prefix}"
        args = [B.rclone_bin(), "copy", "--transfers", str(WORKERS), "--checkers",
                str(WORKERS), "--multi-thread-streams", str(WORKERS),
                "--s3-upload-concurrency", str(WORKERS)]
        if tool == "rclone-smt":
            args.append("--use-server-modtime")
        return args + ([str(local), remote] if op == "up" else [remote, str(local)])
    raise ValueError(tool)


# ---------------------------------------------------------------- the wan proxy


def start_proxy(endpoint: str, delay_ms: float) -> tuple[Any, str]:
    """Start wan_proxy.py in its own process in front of ``endpoint``; (process, endpoint)."""
    import subprocess

    target = endpoint.split("://", 1)[1]
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("wan_proxy.py")), "--target", target,
         "--delay-ms", str(delay_ms)],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("LISTENING"):
        proc.kill()
        raise RuntimeError(f"latency proxy did not start: {line!r}")
    port = int(line.split()[1])
    B.log(f"latency proxy: {delay_ms:.0f} ms on 127.0.0.1:{port} -> {target}")
    return proc, f"http://127.0.0.1:{port}"


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- checks


def stat_snapshot(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, _d, files in os.walk(root):
        for n in files:
            st = os.stat(os.path.join(dirpath, n))
            out[os.path.relpath(os.path.join(dirpath, n), root)] = (st.st_ino, st.st_mtime_ns)
    return out


def verify_upload(client: Any, prefix: str, expected: dict[str, Any],
                  read_back: bool) -> tuple[bool, str]:
    got = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for o in page.get("Contents", []):
            got[o["Key"][len(prefix):]] = o
    # Zero-byte "folder/" keys are directory markers (pos3 writes one per folder and one for
    # the prefix itself): not data, so not a failure, but counted in the note.
    markers = [k for k in set(got) - set(expected)
               if (k == "" or k.endswith("/")) and got[k]["Size"] == 0]
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected) - set(markers))
    bad = []
    for rel, meta in expected.items():
        o = got.get(rel)
        if o is None:
            continue
        etag = o["ETag"].strip('"')
        if o["Size"] != meta["size"] or "-" not in etag and etag != meta["md5"]:
            bad.append(rel)
        elif read_back and "-" in etag:
            h = hashlib.sha256()
            body = client.get_object(Bucket=BUCKET, Key=prefix + rel)["Body"]
            while chunk := body.read(8 << 20):
                h.update(chunk)
            if h.hexdigest() != meta["sha256"]:
                bad.append(rel)
    if missing or extra or bad:
        return False, (f"verify FAILED: missing {len(missing)}, extra {len(extra)}, "
                       f"different {len(bad)} (e.g. {(missing + extra + bad)[:3]})")
    note = f"verified {len(expected)} objects"
    return True, note + (f" (+{len(markers)} directory markers)" if markers else "")


# ---------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--tools", default=",".join(TOOLS),
                    help="comma-separated subset (pos3lite is always included)")
    ap.add_argument("--size-large", default="512M", help="size of the large object (512M)")
    ap.add_argument("--wan-ms", type=float, default=0.0,
                    help="put a latency proxy delaying every response by this many ms "
                         "between the tools and the server (the wan scenario)")
    ap.add_argument("--no-rclone-smt", action="store_true",
                    help="skip the rclone --use-server-modtime variant of the no-op resync")
    B.add_source_arg(ap)
    args = ap.parse_args()
    B.set_source(args.pos3lite_source)
    B.reexec_in_harness_venv()

    scenarios = [s for s in args.scenarios.split(",") if s]
    for s in scenarios:
        if s not in SCENARIOS:
            ap.error(f"unknown scenario {s!r}; choose from {SCENARIOS}")
    tools = [t for t in args.tools.split(",") if t]
    if "pos3lite" not in tools:
        tools.insert(0, "pos3lite")
    large_size = parse_size(args.size_large)
    t_start = time.perf_counter()

    venvs = B.ensure_venvs(tools)
    unavailable = {t: v.reason for t, v in venvs.items() if not v.ok}
    tools = [t for t in tools if venvs[t].ok]
    if "pos3lite" not in tools:
        print(f"pos3lite could not be installed: {unavailable.get('pos3lite')}")
        return 1
    facts = B.machine_facts()
    facts.update(B.repo_state())

    B.log("generating data (cached in benchmarks/out/data when unchanged)")
    data = B.OUT / "data"
    sets = make_data(data, large_size)
    scratch = Path(tempfile.mkdtemp(prefix="pos3lite-tp-", dir=str(B.OUT)))
    logs = B.OUT / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    server = B.start_server(scratch / "weed")
    proxy = start_proxy(server.endpoint, args.wan_ms) if args.wan_ms else None
    per_run: dict[str, dict[str, list[dict[str, Any]]]] = {s: {} for s in scenarios}
    notes: dict[str, dict[str, str]] = {s: {} for s in scenarios}
    try:
        facing = server
        if proxy is not None:
            from types import SimpleNamespace

            facing = SimpleNamespace(endpoint=proxy[1], region=server.region,
                                     access_key=server.access_key, secret_key=server.secret_key)
        env = B.tool_env(facing, scratch)
        client = B.boto3_client(server)
        t0 = time.perf_counter()
        seed(client, data, sets, scenarios)
        B.log(f"seeded in {time.perf_counter() - t0:.1f} s")
        endpoint = facing.endpoint
        dest = scratch / "dest"

        def tools_for(sc: str) -> list[str]:
            if sc != "noop":
                return list(tools)
            out = [t for t in tools if t not in NO_SYNC]
            for t in tools:
                if t in NO_SYNC:
                    notes[sc][t] = NO_SYNC[t]
            if "rclone" in out and not args.no_rclone_smt:
                out.append("rclone-smt")
            return out

        def run_one(sc: str, tool: str, rnd: int) -> dict[str, Any]:
            logf = logs / f"throughput-{sc}-{tool}.log"
            with open(logf, "a") as fh:
                fh.write(f"\n=== round {rnd}\n")
            read_back = False
            if sc in ("down_small", "down_large"):
                name = "small" if sc == "down_small" else "large"
                B.clear_dir(dest)
                cmd = command(tool, "down", f"{name}/", dest, endpoint, venvs)
            elif sc in ("up_small", "up_large"):
                name = "small" if sc == "up_small" else "large"
                prefix = f"up/{sc}/{tool}/{rnd}/"
                cmd = command(tool, "up", prefix, data / name, endpoint, venvs)
                read_back = sc == "up_large"
            else:  # noop
                name = "noop"
                local = scratch / "noop" / tool
                before = stat_snapshot(local)
                cmd = command(tool, "resync", "noop/", local, endpoint, venvs)
            timeout = 1800 if "large" in sc else 900
            proxy_cpu0 = proc_cpu_s(proxy[0].pid) if proxy is not None else 0.0
            run = B.measure(cmd, env=env, cwd=str(scratch), timeout=timeout, log_to=logf)
            if proxy is not None:
                run.extra["proxy_cpu_s"] = proc_cpu_s(proxy[0].pid) - proxy_cpu0
            expected_digests = {k: v["sha256"] for k, v in sets[name].items()}
            if run.ok:
                if sc.startswith("down"):
                    run.ok, run.note = B.verify_tree(dest, expected_digests)
                elif sc.startswith("up"):
                    run.ok, run.note = verify_upload(client, prefix, sets[name], read_back)
                    if "directory markers" in run.note:
                        run.extra["markers"] = int(run.note.split("(+")[1].split()[0])
                else:
                    run.ok, run.note = B.verify_tree(local, expected_digests)
                    after = stat_snapshot(local)
                    rewritten = sum(1 for k, v in after.items() if before.get(k) != v)
                    run.extra["rewritten"] = rewritten
            else:
                run.note += " | " + B.tail(logf, 400).replace("\n", " ")
            if sc.startswith("up"):
                B.delete_prefix(client, BUCKET, prefix)
            if sc.startswith("down"):
                shutil.rmtree(dest, ignore_errors=True)
            os.sync()  # write-back of this run must not land in the next tool's timing
            d = run.as_dict()
            d["round"] = rnd
            d["cmd"] = " ".join(cmd)
            return d

        if "noop" in scenarios:
            for tool in tools_for("noop"):
                local = scratch / "noop" / tool
                B.clear_dir(local)
                B.log(f"noop: {tool} fills its folder (untimed)")
                cmd = command(tool, "down", "noop/", local, endpoint, venvs)
                r = B.measure(cmd, env=env, cwd=str(scratch), timeout=1800,
                              log_to=logs / f"throughput-noop-prep-{tool}.log")
                ok, note = (B.verify_tree(local, {k: v["sha256"]
                                                  for k, v in sets["noop"].items()})
                            if r.ok else (False, r.note))
                if not ok:
                    notes["noop"][tool] = f"initial fill failed: {note}"
                    B.log(f"noop prep of {tool} failed: {note}")

        for rnd in range(args.runs):
            for sc in scenarios:
                for tool in B.rotate(tools_for(sc), rnd):
                    if tool in notes[sc]:
                        continue
                    d = run_one(sc, tool, rnd)
                    per_run[sc].setdefault(tool, []).append(d)
                    B.log(f"round {rnd + 1}/{args.runs} {sc:<10} {tool:<10} "
                          f"{d['wall_s']:7.2f} s  cpu {d['cpu_s']:6.2f} s  "
                          f"rss {d['maxrss_kib'] / 1024:6.0f} MiB  "
                          f"{'ok' if d['ok'] else 'FAILED'} {d['note'][:120]}")
    finally:
        if proxy is not None:
            proxy[0].terminate()
            proxy[0].wait(timeout=10)
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)

    elapsed = time.perf_counter() - t_start
    facts["loadavg_end"] = B.machine_facts()["loadavg"]
    out = {
        "benchmark": "throughput", "runs": args.runs, "machine": facts,
        "wan_ms": args.wan_ms,
        "rss_method": B.RSS_METHOD, "workers": WORKERS, "large_size": large_size,
        "scenarios": scenarios, "versions": {t: v.version for t, v in venvs.items()},
        "unavailable": unavailable, "notes": notes,
        "summary": summarize(per_run), "per_run": per_run, "elapsed_s": elapsed,
    }
    kind = "throughput-wan" if args.wan_ms else "throughput"
    path = B.write_json(kind, out)
    (B.OUT / f"{kind}-latest.md").write_text(render(out) + "\n")
    print(render(out))
    try:  # the chart is a by-product; a plotting problem must not lose the numbers
        import plot_ratios

        plot_ratios.main()
    except Exception as e:
        B.log(f"ratios.png not drawn: {e}")
    print(f"\nraw per-run numbers: {path.relative_to(B.REPO)}; whole run took "
          f"{elapsed / 60:.1f} min")
    return 0


def summarize(per_run: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    s: dict[str, Any] = {}
    for sc, by_tool in per_run.items():
        s[sc] = {}
        for tool, runs in by_tool.items():
            good = [r for r in runs if r["ok"]]
            walls = [r["wall_s"] for r in good]
            s[sc][tool] = {
                "wall_s": B.median(walls),
                "wall_min": min(walls) if walls else float("nan"),
                "wall_max": max(walls) if walls else float("nan"),
                "cpu_s": B.median([r["cpu_s"] for r in good]),
                "maxrss_kib": B.median([r["maxrss_kib"] for r in good]),
                "ok": len(good), "n": len(runs),
                "rewritten": max((r["extra"].get("rewritten", 0) for r in good), default=0),
                "markers": max((r["extra"].get("markers", 0) for r in good), default=0),
                "failures": [r["note"][:300] for r in runs if not r["ok"]][:2],
                "proxy_cpu_s": B.median([r["extra"].get("proxy_cpu_s", float("nan"))
                                         for r in good]),
            }
    return s


def _ratio(a: float | None, b: float | None) -> float:
    if a is None or b is None or a != a or b != b or not b:
        return float("nan")
    return a / b


TITLES = {
    "down_small": "Download 2,000 x 16 KiB into an empty folder",
    "up_small": "Upload 2,000 x 16 KiB to a fresh prefix",
    "noop": "No-op resync of 10,000 x 4 KiB (everything already local)",
    "down_large": "Download one {size} object",
    "up_large": "Upload one {size} object",
}


def render(d: dict[str, Any]) -> str:
    m = d["machine"]
    size = f"{d['large_size'] / 2**20:.0f} MiB"
    lines = [
        (f"### Throughput through a {d['wan_ms']:.0f} ms latency proxy (wan) — {m['date']}"
         if d.get("wan_ms") else f"### Throughput — {m['date']}"),
        "",
        f"Machine: {m['nproc']} cores ({m['cpu']}), {m['free_g']}, Python {m['python']}, "
        f"load average at start / end {' '.join(m['loadavg'].split()[:3])} / "
        f"{' '.join(m.get('loadavg_end', '').split()[:3])} (other jobs share the machine); "
        f"pos3lite {d['versions'].get('pos3lite')} "
        f"from {m.get('pos3lite_source')} at {m.get('commit', '')[:10]} "
        f"(+{m.get('dirty_files')} modified tracked files); {d['workers']} workers for every "
        f"tool; medians of {d['runs']} interleaved whole-process runs; the server (SeaweedFS) "
        "shares the 2 cores.",
        "",
        "Ratios are pos3lite ÷ peer (below 1.00x: pos3lite is faster / uses less). "
        "Wall range is min–max of the verified runs.",
    ]
    for sc in d["scenarios"]:
        rows = d["summary"].get(sc, {})
        base = rows.get("pos3lite", {})
        lines += ["", f"**{TITLES[sc].format(size=size)}**", "",
                  "| tool | wall | range | pos3lite ÷ tool | CPU | pos3lite ÷ tool (CPU) "
                  "| peak RSS | pos3lite ÷ tool (RSS) | verified runs |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for tool, v in rows.items():
            status = f"{v['ok']}/{v['n']}"
            if v["ok"] < v["n"]:
                status += " **FAILED**: " + (v["failures"][0][:160] if v["failures"] else "")
            if v.get("markers"):
                status += f"; +{v['markers']} directory-marker objects"
            if sc == "noop" and v["ok"]:
                status += f"; rewrote {v['rewritten']} files" if v["rewritten"] else \
                    "; rewrote 0 files"
            lines.append(
                f"| {tool} | {B.fmt_s(v['wall_s'])} | {B.fmt_s(v['wall_min'])}–"
                f"{B.fmt_s(v['wall_max'])} | {B.fmt_ratio(_ratio(base.get('wall_s'), v['wall_s']))}"
                f" | {B.fmt_s(v['cpu_s'])} | {B.fmt_ratio(_ratio(base.get('cpu_s'), v['cpu_s']))}"
                f" | {B.fmt_mib(v['maxrss_kib'])} | "
                f"{B.fmt_ratio(_ratio(base.get('maxrss_kib'), v['maxrss_kib']))} | {status} |")
        for tool, note in d["notes"].get(sc, {}).items():
            lines.append(f"| {tool} | n/a | | | | | | | {note[:200]} |")
        if d.get("wan_ms"):
            lines += ["", "Latency proxy's own CPU per run (median): " + ", ".join(
                f"{tool} {B.fmt_s(v.get('proxy_cpu_s', float('nan')))}"
                for tool, v in rows.items())]
    if d["unavailable"]:
        lines += ["", "Unavailable: " + "; ".join(f"{k}: {v[:200]}"
                                                  for k, v in d["unavailable"].items())]
    lines += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in d["versions"].items() if v)]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
