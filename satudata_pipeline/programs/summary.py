"""Money at stake and the run summary report.

`programs.program_summary`: for the remove and review rows of `main.beneficiary_review`, the number
of rows and the monthly and annual rupiah per program, kota, kecamatan, verdict and reason. A row
with two reasons counts under both reasons; the rows with `reason = 'ALL'` count every roster row
once (use them for totals).

`write_run_summary` writes `<reports>/programs/run_summary.html` (totals and one inline-SVG chart
per program of verdicts by reason, no dependency on matplotlib) and `run_summary.md`. Neither
contains a NIK, a name or a welfare attribute.
"""

from __future__ import annotations

import html
from datetime import datetime
from pathlib import Path

import duckdb

from satudata_pipeline.programs.verdicts import REASON_CODES, REMOVE_REASONS, REVIEW_TABLE

SUMMARY_TABLE = "programs.program_summary"
ALL_REASONS = "ALL"

SUMMARY_COLUMNS: dict[str, str] = {
    "program": "VARCHAR",
    "kode_kota": "VARCHAR",
    "nama_kota": "VARCHAR",
    "kode_kecamatan": "VARCHAR",
    "nama_kecamatan": "VARCHAR",
    "verdict": "VARCHAR",
    "reason": "VARCHAR",
    "n_rows": "BIGINT",
    "nominal_bulanan": "BIGINT",
    "nominal_tahunan": "BIGINT",
}


def load_wilayah(conn: duckdb.DuckDBPyConnection) -> None:
    """Temp table `_wilayah(kode, tingkat, nama)` from the shipped Kemendagri reference."""
    from satudata_pipeline.config import REFERENCE_WILAYAH

    conn.execute(
        "CREATE OR REPLACE TEMP TABLE _wilayah AS SELECT CAST(kode AS VARCHAR) AS kode, tingkat, nama "
        "FROM read_csv(?, header = true, all_varchar = true)",
        [str(REFERENCE_WILAYAH)],
    )


def build_program_summary(conn: duckdb.DuckDBPyConnection, review: str = REVIEW_TABLE,
                          target: str = SUMMARY_TABLE) -> int:
    """(Re)write `target` (default `programs.program_summary`) from the review table `review`."""
    load_wilayah(conn)
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {target.split('.')[0]}")
    cols = ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in SUMMARY_COLUMNS.items())
    conn.execute(
        f"""CREATE OR REPLACE TABLE {target} AS
        WITH rows AS (
            SELECT program, kode_kota, kode_kecamatan, verdict, coalesce(nominal_bulanan, 0) AS nominal, reasons
            FROM {review} WHERE verdict IN ('remove', 'review')
        ),
        by_reason AS (
            SELECT program, kode_kota, kode_kecamatan, verdict, unnest(reasons) AS reason, nominal FROM rows
            UNION ALL
            SELECT program, kode_kota, kode_kecamatan, verdict, '{ALL_REASONS}' AS reason, nominal FROM rows
        ),
        agg AS (
            SELECT program, kode_kota, kode_kecamatan, verdict, reason, count(*) AS n_rows,
                   sum(nominal) AS nominal_bulanan, sum(nominal) * 12 AS nominal_tahunan
            FROM by_reason GROUP BY ALL
        )
        SELECT {cols} FROM (
            SELECT a.*, k.nama AS nama_kota, kc.nama AS nama_kecamatan
            FROM agg a
            LEFT JOIN _wilayah k ON k.kode = a.kode_kota
            LEFT JOIN _wilayah kc ON kc.kode = a.kode_kecamatan
        ) ORDER BY program, kode_kota NULLS LAST, kode_kecamatan NULLS LAST, verdict, reason"""
    )
    return conn.execute(f"SELECT count(*) FROM {target}").fetchall()[0][0]


def money_at_stake(conn: duckdb.DuckDBPyConnection, table: str = SUMMARY_TABLE) -> dict[str, dict[str, int]]:
    """Per program: monthly and annual rupiah of remove and review rows (each row counted once)."""
    rows = conn.execute(
        f"""SELECT program, verdict, sum(n_rows), sum(nominal_bulanan), sum(nominal_tahunan)
            FROM {table} WHERE reason = '{ALL_REASONS}' GROUP BY 1, 2 ORDER BY 1, 2"""
    ).fetchall()
    out: dict[str, dict[str, int]] = {}
    for program, verdict, n, monthly, annual in rows:
        d = out.setdefault(program, {})
        d[f"{verdict}_rows"] = int(n)
        d[f"{verdict}_monthly_rupiah"] = int(monthly)
        d[f"{verdict}_annual_rupiah"] = int(annual)
    return out


def rupiah(value: int | float | None) -> str:
    return "Rp" + f"{int(value or 0):,}".replace(",", ".")


_COLORS = {"remove": "#c0392b", "review": "#e67e22", "keep": "#27ae60"}


def _svg_chart(program: str, counts: dict[str, dict[str, int]], keep: int) -> str:
    """Horizontal bars: one bar per reason (rows, coloured by verdict) plus the keep rows."""
    bars = [(reason, counts.get(reason, {})) for reason in REASON_CODES if counts.get(reason)]
    bars.append(("keep (no reason)", {"keep": keep}))
    width, label_w, bar_h, gap = 640, 190, 18, 6
    height = (bar_h + gap) * len(bars) + 30
    biggest = max([sum(v.values()) for _, v in bars] + [1])
    scale = (width - label_w - 60) / biggest
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{html.escape(program)}: roster rows by reason and verdict" font-family="sans-serif" font-size="12">'
    ]
    for i, (label, by_verdict) in enumerate(bars):
        y = 5 + i * (bar_h + gap)
        parts.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">{html.escape(label)}</text>')
        x = label_w
        for verdict in ("remove", "review", "keep"):
            n = by_verdict.get(verdict, 0)
            if n:
                w = max(n * scale, 1)
                parts.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{_COLORS[verdict]}">'
                    f"<title>{verdict}: {n}</title></rect>"
                )
                x += w
        parts.append(f'<text x="{x + 4:.1f}" y="{y + 13}">{sum(by_verdict.values())}</text>')
    ly = height - 10
    for j, verdict in enumerate(("remove", "review", "keep")):
        lx = label_w + j * 90
        parts.append(f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{_COLORS[verdict]}"/>')
        parts.append(f'<text x="{lx + 14}" y="{ly}">{verdict}</text>')
    parts.append("</svg>")
    return "".join(parts)


def write_run_summary(conn: duckdb.DuckDBPyConnection, out_dir: Path, eligible_counts: dict | None = None,
                      review: str = REVIEW_TABLE) -> dict:
    """Write run_summary.html and run_summary.md under `out_dir`; returns their paths and the markdown."""
    out_dir.mkdir(parents=True, exist_ok=True)
    totals = conn.execute(
        f"""SELECT program, verdict, count(*), coalesce(sum(nominal_bulanan), 0), any_value(snapshot_date)
            FROM {review} GROUP BY 1, 2 ORDER BY 1, 2"""
    ).fetchall()
    reason_rows = conn.execute(
        f"""SELECT program, reason, verdict, count(*) FROM
            (SELECT program, verdict, unnest(reasons) AS reason FROM {review}) GROUP BY ALL ORDER BY ALL"""
    ).fetchall()
    snapshot = next((t[4] for t in totals if t[4] is not None), None)
    programs = sorted({t[0] for t in totals})
    table: dict[str, dict[str, tuple[int, int]]] = {p: {} for p in programs}
    for program, verdict, n, money, _ in totals:
        table[program][verdict] = (int(n), int(money))
    reasons: dict[str, dict[str, dict[str, int]]] = {p: {} for p in programs}
    for program, reason, verdict, n in reason_rows:
        reasons[program].setdefault(reason, {})[verdict] = int(n)

    md = [f"# Program review - run summary", "", f"Snapshot date: {snapshot}  ", f"Generated: {datetime.now():%Y-%m-%d %H:%M}", ""]
    md += [
        "| program | rows | keep | remove | review | remove Rp/month | review Rp/month | at stake Rp/year |"
        + (" eligible, not enrolled |" if eligible_counts is not None else ""),
        "|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if eligible_counts is not None else ""),
    ]
    body = []
    for p in programs:
        t = table[p]
        n_all = sum(v[0] for v in t.values())
        rm, rv, kp = t.get("remove", (0, 0)), t.get("review", (0, 0)), t.get("keep", (0, 0))
        line = (
            f"| {p} | {n_all} | {kp[0]} | {rm[0]} | {rv[0]} | {rupiah(rm[1])} | {rupiah(rv[1])} | "
            f"{rupiah((rm[1] + rv[1]) * 12)} |"
        )
        if eligible_counts is not None:
            line += f" {eligible_counts.get(p, 0)} |"
        md.append(line)
        chart_rows = "".join(
            f"<tr><td>{html.escape(r)}</td><td>{'remove' if r in REMOVE_REASONS else 'review'}</td>"
            f"<td>{sum(v.values())}</td></tr>"
            for r, v in sorted(reasons[p].items())
        )
        body.append(
            f"<section><h2>{html.escape(p)}</h2>"
            f"<p>{n_all} roster rows: {kp[0]} keep, {rm[0]} remove ({rupiah(rm[1])}/month), "
            f"{rv[0]} review ({rupiah(rv[1])}/month).</p>"
            f"{_svg_chart(p, reasons[p], kp[0])}"
            f"<table><tr><th>reason</th><th>kind</th><th>rows</th></tr>{chart_rows}</table></section>"
        )
    md += ["", "Rows by reason (a row with several reasons counts under each):", ""]
    md += ["| program | reason | remove | review |", "|---|---|---:|---:|"]
    for p in programs:
        for r, v in sorted(reasons[p].items()):
            md.append(f"| {p} | {r} | {v.get('remove', 0)} | {v.get('review', 0)} |")
    markdown = "\n".join(md) + "\n"
    md_table = "\n".join(md[5 : 7 + len(programs)])
    doc = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Program review - run summary</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}} table{{border-collapse:collapse;margin:.5em 0}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}} td:first-child{{text-align:left}}</style></head><body>
<h1>Program review - run summary</h1><p>Snapshot date: {snapshot}. Totals per program (money at stake = remove + review rows).</p>
<pre>{html.escape(md_table)}</pre>
{''.join(body)}
<p>Reason codes are explained in docs/verdict-rules.md; lists per kota are in the exports folder.</p></body></html>"""
    html_path = out_dir / "run_summary.html"
    md_path = out_dir / "run_summary.md"
    html_path.write_text(doc, encoding="utf-8")
    md_path.write_text(markdown, encoding="utf-8")
    return {"html": html_path, "markdown_path": md_path, "markdown": markdown}
