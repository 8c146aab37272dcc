"""Draw benchmarks/ratios.png from out/footprint-latest.json and out/throughput-latest.json.

Each bar is pos3lite ÷ peer for one scenario (log scale; left of the 1.0 line pos3lite is
faster / smaller). Run by the harnesses at the end, or by hand:
``benchmarks/out/venvs/harness/bin/python benchmarks/plot_ratios.py`` (matplotlib lives in
the harness venv, it is not a dependency of pos3lite).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
PEERS = ["pos3", "boto3", "s3func", "awscli", "s5cmd", "rclone", "rclone-smt"]
COLORS = dict(zip(PEERS, ["#d62728", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#1f77b4",
                          "#17becf"], strict=True))


def _r(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or a != a or b != b or not b or not a:
        return None
    return a / b


def footprint_rows(d: dict) -> list[tuple[str, dict[str, float]]]:
    s = d["summary"]
    rows = []
    imp, fb, sz = s.get("import", {}), s.get("first_byte", {}), s.get("size", {})
    if "pos3lite" in imp:
        rows.append(("import cost\n(over python -c pass)",
                     {t: _r(imp["pos3lite"]["net_s"], v["net_s"]) for t, v in imp.items()}))
    if "pos3lite" in fb:
        b = fb["pos3lite"]
        rows.append(("time to first byte", {t: _r(b["wall_s"], v["wall_s"])
                                            for t, v in fb.items() if v["ok"]}))
        rows.append(("first-byte peak RSS", {t: _r(b["maxrss_kib"], v["maxrss_kib"])
                                             for t, v in fb.items() if v["ok"]}))
    if "pos3lite" in sz:
        rows.append(("installed size", {t: _r(sz["pos3lite"]["bytes"], v["bytes"])
                                        for t, v in sz.items()}))
    return rows


TP_TITLES = {"down_small": "download\n2,000 x 16 KiB", "up_small": "upload\n2,000 x 16 KiB",
             "noop": "no-op resync\n10,000 x 4 KiB", "down_large": "download\n1 x {size}",
             "up_large": "upload\n1 x {size}"}


def throughput_rows(d: dict, key: str) -> dict[str, tuple[str, dict[str, float]]]:
    rows = {}
    size = f"{d['large_size'] / 2**20:.0f} MiB"
    for sc in d["scenarios"]:
        by = d["summary"].get(sc, {})
        if "pos3lite" not in by or not by["pos3lite"]["ok"]:
            continue
        b = by["pos3lite"]
        rows[sc] = (TP_TITLES[sc].format(size=size),
                    {t: _r(b[key], v[key]) for t, v in by.items() if v["ok"]})
    return rows


def panel(ax, rows, title) -> None:  # type: ignore[no-untyped-def]
    peers = [p for p in PEERS if any(p in r and r[p] for _, r in rows)]
    h = 0.8 / max(len(peers), 1)
    vals = []
    for i, (_label, ratios) in enumerate(rows):
        for j, p in enumerate(peers):
            v = ratios.get(p)
            if not v:
                continue
            y = i - 0.4 + h * (j + 0.5)
            ax.barh(y, math.log10(v), height=h * 0.9, color=COLORS[p],
                    label=p if i == 0 or p not in [x.get_label() for x in ax.patches] else None)
            ax.text(math.log10(v) + (0.03 if v >= 1 else -0.03), y, f"{v:.2f}",
                    va="center", ha="left" if v >= 1 else "right", fontsize=7)
            vals.append(v)
    ax.axvline(0, color="black", lw=1)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([label for label, _ in rows], fontsize=9)
    ax.invert_yaxis()
    lo = min([math.log10(v) for v in vals] + [-0.3])
    hi = max([math.log10(v) for v in vals] + [0.3])
    ax.set_xlim(lo - 0.35, hi + 0.35)
    ticks = [t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 1000)
             if lo - 0.35 <= math.log10(t) <= hi + 0.35]
    ax.set_xticks([math.log10(t) for t in ticks])
    ax.set_xticklabels([f"{t:g}x" for t in ticks])
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    handles = [plt.Rectangle((0, 0), 1, 1, color=COLORS[p]) for p in peers]
    ax.legend(handles, peers, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              title="peer", title_fontsize=8)


def main() -> int:
    fp_path = OUT / "footprint-latest.json"
    panels = []
    if fp_path.exists():
        fp = json.loads(fp_path.read_text())
        panels.append((footprint_rows(fp),
                       f"Footprint (medians of {fp['runs']} runs, {fp['machine']['date'][:10]})"))
    # Each throughput scenario from the newest run that has it (a run may do a subset, e.g.
    # `--scenarios down_large,up_large`); the panel title lists the runs used.
    rows: dict[str, dict[str, tuple[str, dict[str, float]]]] = {"wall_s": {}, "maxrss_kib": {}}
    used = []
    for path in sorted(OUT.glob("throughput-2*.json"), reverse=True):
        tp = json.loads(path.read_text())
        new = [sc for sc in tp["scenarios"] if sc not in rows["wall_s"]]
        if not new:
            continue
        for key in rows:
            rows[key].update(throughput_rows(dict(tp, scenarios=new), key))
        used.append(f"{tp['machine']['date'][:16]}, {tp['runs']} runs")
    if rows["wall_s"]:
        when = "; ".join(used)
        for key, title in (("wall_s", f"Throughput: wall time (medians; {when})"),
                           ("maxrss_kib", "Throughput: peak RSS")):
            panels.append(([rows[key][sc] for sc in TP_TITLES if sc in rows[key]], title))
    panels = [p for p in panels if p[0]]
    if not panels:
        print("no results to plot", file=sys.stderr)
        return 1
    heights = [max(2.2, 0.35 * len(rows) * 4) for rows, _ in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(11.5, sum(heights) + 1.2),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, (rows, title) in zip(axes[:, 0], panels, strict=True):
        panel(ax, rows, title)
    fig.suptitle("pos3lite ÷ peer (log scale; left of 1x = pos3lite faster / smaller)",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    dst = BENCH / "ratios.png"
    fig.savefig(dst, dpi=110)
    print(f"wrote {dst}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
