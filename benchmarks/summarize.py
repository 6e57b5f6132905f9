"""Summarise benchmarks/results/*.json into results/SUMMARY.md, with an estimate for bigger sizes.

    .venv/bin/python benchmarks/summarize.py [--estimate 3000000 11000000]

The estimate fits, per step of the pipeline (and for the baseline and the peak memory), a power law
t = c * persons^k through the two largest measured sizes (the newest run per size), and
extrapolates; k is shown, so a step that grows faster than linearly stands out. Steps whose time is
under 1 s at the largest size are lumped together and scaled linearly. It is an estimate from two
points on a shared 2-core machine: treat it as an order of magnitude (check the "others' CPU" column:
if the two runs saw different load, the exponents are skewed).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_benchmark import removals_row  # noqa: E402


def _fit(x1, y1, x2, y2):
    if not (y1 and y2) or y1 <= 0 or y2 <= 0:
        return None, None
    k = math.log(y2 / y1) / math.log(x2 / x1)
    return k, y2 / x2**k


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--estimate", type=int, nargs="*", default=[3_000_000, 11_000_000])
    args = parser.parse_args()
    runs = {}
    loaded = []
    for path in RESULTS.glob("*.json"):
        r = json.loads(path.read_text())
        if "scores" not in r:
            continue  # not an end-to-end run (e.g. the incremental benchmark's results)
        r["_file"] = path.with_suffix(".md").name
        loaded.append(r)
    for r in sorted(loaded, key=lambda r: (r["date"], r.get("started_utc") or "")):
        runs[r["persons"]] = r  # the newest run per size wins
    if not runs:
        print("no results yet")
        return 1
    sizes = sorted(runs)
    lines = [
        "# Benchmark summary",
        "",
        "Newest run per size (details in each result file). Goals at 1M: end to end <= 1.5x bare Splink "
        "at equal or better F1; peak memory <= 8 GB.",
        "",
        "| persons | seed | date | commit | pipeline s | peak GB | bare Splink s | ratio | F1 satudata | F1 Splink | "
        "F1 no-NIK satudata | F1 no-NIK Splink | verdict accuracy | others' CPU | result |",
        "|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for n in sizes:
        r = runs[n]
        s, b = r["scores"]["linkage"], r["scores"].get("baseline_linkage") or {}
        f = lambda v, d=4: "n/a" if v is None else f"{v:.{d}f}"  # noqa: E731
        name = r["_file"]
        lines.append(
            f"| {n:,} | {r['seed']} | {r['date']} | `{r['commit']}` | {r['pipeline']['seconds']:.0f} | "
            f"{r['pipeline']['peak_mb'] / 1024:.2f} | {f(r['baseline'].get('seconds'), 0)} | {f(r.get('ratio'), 2)} | "
            f"{f(s['f1'])} | {f(b.get('f1'))} | {f(s['f1_no_valid_nik'])} | {f(b.get('f1_no_valid_nik'))} | "
            f"{f(r['scores']['verdicts']['accuracy'])} | {r['pipeline'].get('cpu', {}).get('other_cores', 'n/a')} | "
            f"[{name}]({name}) |"
        )
    lines += [
        "",
        "## Removals by population (issue 14)",
        "",
        "Newest run per generator and size. A wrongful removal is a living, eligible person removed (true "
        "verdict not remove). Generator 1 (results without a `generator` field) made unique NIKs "
        "without namesakes; generator 2 makes NIKs the way Dukcapil does, at the real density of "
        "same-day births per kecamatan, with twins and dead or departed namesakes "
        "(docs/synthetic-data.md), so only its rows show the collisions of a real province.",
        "",
        "| persons | seed | generator | commit | removals | living, eligible people removed | by reason given | "
        "true removals missed | by true reason | `deceased` precision | `identity_unresolved` precision | result |",
        "|---:|---:|---:|---|---:|---:|---|---:|---|---:|---:|---|",
    ]
    newest = {}
    for r in sorted(loaded, key=lambda r: (r["date"], r.get("started_utc") or "")):
        newest[(r.get("generator", 1), r["persons"])] = r
    for _, r in sorted(newest.items()):
        lines.append(
            f"| {r['persons']:,} | {r['seed']} | {r.get('generator', 1)} | `{r['commit']}` "
            f"{removals_row(r['scores']['verdicts'])} [{r['_file']}]({r['_file']}) |"
        )
    if len(sizes) >= 2 and args.estimate:
        x1, x2 = sizes[-2], sizes[-1]
        r1, r2 = runs[x1], runs[x2]
        lines += [
            "",
            f"## Estimate for bigger sizes (power law through {x1:,} and {x2:,} persons)",
            "",
            "| quantity | k (growth exponent) | "
            + " | ".join(f"{e:,}" for e in args.estimate)
            + " |",
            "|---|---:|" + "---:|" * len(args.estimate),
        ]

        def row(label, y1, y2, unit, scale=1.0):
            k, c = _fit(x1, y1, x2, y2)
            if k is None:
                return
            lines.append(
                f"| {label} | {k:.2f} | "
                + " | ".join(f"{c * e**k * scale:,.0f} {unit}" for e in args.estimate)
                + " |"
            )

        row("pipeline end to end", r1["pipeline"]["seconds"], r2["pipeline"]["seconds"], "s")
        row(
            "pipeline peak RSS",
            r1["pipeline"]["peak_mb"],
            r2["pipeline"]["peak_mb"],
            "GB",
            1 / 1024,
        )
        row("bare Splink", r1["baseline"].get("seconds"), r2["baseline"].get("seconds"), "s")
        row(
            "bare Splink peak RSS",
            r1["baseline"].get("peak_mb"),
            r2["baseline"].get("peak_mb"),
            "GB",
            1 / 1024,
        )
        small1 = small2 = 0.0
        per_step = []
        for step, s2 in r2["pipeline"]["steps"].items():
            t2 = s2.get("seconds") or 0
            t1 = (r1["pipeline"]["steps"].get(step) or {}).get("seconds") or 0
            if t2 < 1.0:
                small1, small2 = small1 + t1, small2 + t2
            else:
                per_step.append((t2, step, t1))
        sums = [small2 * e / x2 for e in args.estimate]
        for t2, _step, t1 in per_step:
            k, c = _fit(x1, t1, x2, t2)
            for i, e in enumerate(args.estimate):
                sums[i] += c * e**k if k is not None else t2 * e / x2
        lines.append(
            "| **pipeline: sum of the per-step estimates below** (the better estimate when steps grow "
            "at different rates) | | "
            + " | ".join(f"**{v:,.0f} s ({v / 3600:.1f} h)**" for v in sums)
            + " |"
        )
        for t2, step, t1 in sorted(per_step, reverse=True):
            row(f"step `{step}`", t1, t2, "s")
        lines.append(
            f"| {sum(1 for s in r2['pipeline']['steps'].values() if (s.get('seconds') or 0) < 1.0)} steps under 1 s "
            f"(checks, small sources; linear) | 1.00 | "
            + " | ".join(f"{small2 * e / x2:,.0f} s" for e in args.estimate)
            + " |"
        )
        gen1, gen2 = r1["generate"].get("seconds"), r2["generate"].get("seconds")
        if gen1 and gen2:
            row("generate (synthetic)", gen1, gen2, "s")
            row(
                "generate peak RSS",
                r1["generate"]["peak_mb"],
                r2["generate"]["peak_mb"],
                "GB",
                1 / 1024,
            )
    notes = sorted(RESULTS.glob("FINDINGS-*.md"))
    if notes:
        lines += ["", "## Findings (by hand, per benchmark session)", ""]
        lines += [f"- [{n.name}]({n.name})" for n in reversed(notes)]
    out = RESULTS / "SUMMARY.md"
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
