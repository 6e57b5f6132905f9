"""Money at stake and the run summary report.

`programs.program_summary`: for the remove and review rows of `main.beneficiary_review`, the number
of rows and the monthly and annual rupiah per program, kota, kecamatan, verdict and reason. A row
with two reasons counts under both reasons; the rows with `reason = 'ALL'` count every roster row
once (use them for totals).

`write_run_summary` writes `run_summary.html` (Indonesian; HTML tables of the totals and per program
one inline-SVG chart of verdicts by reason, no dependency on matplotlib) and `run_summary.md` into the
run's own report folder (`<reports>/runs/<run id>/`, kept with the run and pruned with it). Neither
contains a NIK, a name or a welfare attribute.
"""

from __future__ import annotations

import html
from datetime import datetime
from pathlib import Path

import duckdb

from satudata_pipeline.programs.verdicts import REASON_CODES, REVIEW_TABLE

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


def build_program_summary(
    conn: duckdb.DuckDBPyConnection, review: str = REVIEW_TABLE, target: str = SUMMARY_TABLE
) -> int:
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


def money_at_stake(
    conn: duckdb.DuckDBPyConnection, table: str = SUMMARY_TABLE
) -> dict[str, dict[str, int]]:
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


def verdicts_markdown(by_program: dict[str, dict[str, int]]) -> str:
    """Rows per program and verdict as a Markdown table for the UI."""
    lines = [
        "| program | tetap (keep) | hapus (remove) | tinjau (review) | jumlah |",
        "|---|---:|---:|---:|---:|",
    ]
    for program, d in sorted(by_program.items()):
        k, rm, rv = d.get("keep", 0), d.get("remove", 0), d.get("review", 0)
        lines.append(f"| {program} | {k:,} | {rm:,} | {rv:,} | {k + rm + rv:,} |".replace(",", "."))
    return "\n".join(lines)


def money_markdown(money: dict[str, dict[str, int]]) -> str:
    """`money_at_stake` as a Markdown table for the UI, amounts as Rp1.234.567."""
    lines = [
        "| program | hapus (baris) | hapus Rp/bulan | tinjau (baris) | tinjau Rp/bulan | dipertaruhkan Rp/tahun |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for program, d in sorted(money.items()):
        annual = d.get("remove_annual_rupiah", 0) + d.get("review_annual_rupiah", 0)
        lines.append(
            f"| {program} | {d.get('remove_rows', 0):,} | {rupiah(d.get('remove_monthly_rupiah'))} | "
            f"{d.get('review_rows', 0):,} | {rupiah(d.get('review_monthly_rupiah'))} | {rupiah(annual)} |".replace(
                ",", "."
            )
        )
    return "\n".join(lines)


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
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">{html.escape(label)}</text>'
        )
        x = float(label_w)
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
        parts.append(
            f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{_COLORS[verdict]}"/>'
        )
        parts.append(f'<text x="{lx + 14}" y="{ly}">{verdict}</text>')
    parts.append("</svg>")
    return "".join(parts)


_VERDICT_ID = {"keep": "tetap", "remove": "hapus", "review": "tinjau"}


def _table(headers: list[str], rows: list[list], numeric_from: int = 1) -> str:
    """An HTML table; cells escaped, columns from `numeric_from` right-aligned."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"n" if i >= numeric_from else "t"}">{html.escape(str(c))}</td>'
            for i, c in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _number(n: int) -> str:
    return f"{int(n):,}".replace(",", ".")


def write_run_summary(
    conn: duckdb.DuckDBPyConnection,
    out_dir: Path,
    eligible_counts: dict | None = None,
    review: str = REVIEW_TABLE,
    run_id: str | None = None,
    generated_at: datetime | None = None,
) -> dict:
    """Write run_summary.html (Indonesian, for people) and run_summary.md (the same totals, for the UI)
    under `out_dir`, the run's own report folder; returns their paths and the markdown."""
    from satudata_pipeline.programs.exports import REASON_LEGEND

    out_dir.mkdir(parents=True, exist_ok=True)
    generated_at = generated_at or datetime.now()
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

    md = [
        "# Program review - run summary",
        "",
        f"Snapshot date: {snapshot}  ",
        f"Generated: {generated_at:%Y-%m-%d %H:%M}" + (f"  \nRun: {run_id}" if run_id else ""),
        "",
    ]
    md += [
        "| program | rows | keep | remove | review | remove Rp/month | review Rp/month | at stake Rp/year |"
        + (" eligible, not enrolled |" if eligible_counts is not None else ""),
        "|---|---:|---:|---:|---:|---:|---:|---:|"
        + ("---:|" if eligible_counts is not None else ""),
    ]
    headline_rows, sections = [], []
    grand = [0, 0, 0, 0, 0, 0]
    for p in programs:
        t = table[p]
        n_all = sum(v[0] for v in t.values())
        rm, rv, kp = t.get("remove", (0, 0)), t.get("review", (0, 0)), t.get("keep", (0, 0))
        line = (
            f"| {p} | {n_all} | {kp[0]} | {rm[0]} | {rv[0]} | {rupiah(rm[1])} | {rupiah(rv[1])} | "
            f"{rupiah((rm[1] + rv[1]) * 12)} |"
        )
        row = [
            p,
            _number(n_all),
            _number(kp[0]),
            _number(rm[0]),
            _number(rv[0]),
            rupiah(rm[1]),
            rupiah(rv[1]),
            rupiah((rm[1] + rv[1]) * 12),
        ]
        for i, v in enumerate((n_all, kp[0], rm[0], rv[0], rm[1], rv[1])):
            grand[i] += v
        if eligible_counts is not None:
            line += f" {eligible_counts.get(p, 0)} |"
            row.append(_number(eligible_counts.get(p, 0)))
        md.append(line)
        headline_rows.append(row)
        reason_table = _table(
            ["Alasan", "Kode", "Hapus", "Tinjau"],
            [
                [
                    REASON_LEGEND[r][0] if r in REASON_LEGEND else r,
                    r,
                    _number(v.get("remove", 0)),
                    _number(v.get("review", 0)),
                ]
                for r, v in sorted(reasons[p].items())
            ],
            numeric_from=2,
        )
        sections.append(
            f"<section><h2>{html.escape(p)}</h2>"
            f"<p>{_number(n_all)} baris daftar penerima: {_number(kp[0])} tetap, {_number(rm[0])} hapus "
            f"({rupiah(rm[1])}/bulan), {_number(rv[0])} tinjau ({rupiah(rv[1])}/bulan).</p>"
            f"{_svg_chart(p, reasons[p], kp[0])}{reason_table}</section>"
        )
    total_row = [
        "Jumlah",
        _number(grand[0]),
        _number(grand[1]),
        _number(grand[2]),
        _number(grand[3]),
        rupiah(grand[4]),
        rupiah(grand[5]),
        rupiah((grand[4] + grand[5]) * 12),
    ]
    headers = [
        "Program",
        "Baris",
        "Tetap",
        "Hapus",
        "Tinjau",
        "Hapus Rp/bulan",
        "Tinjau Rp/bulan",
        "Dipertaruhkan Rp/tahun",
    ]
    if eligible_counts is not None:
        headers.append("Layak, belum terdaftar")
        total_row.append(_number(sum(eligible_counts.get(p, 0) for p in programs)))
    md += ["", "Rows by reason (a row with several reasons counts under each):", ""]
    md += ["| program | reason | remove | review |", "|---|---|---:|---:|"]
    for p in programs:
        for r, by_verdict in sorted(reasons[p].items()):
            md.append(
                f"| {p} | {r} | {by_verdict.get('remove', 0)} | {by_verdict.get('review', 0)} |"
            )
    markdown = "\n".join(md) + "\n"
    about = [
        ["Tanggal data (snapshot)", str(snapshot)],
        ["Dibuat", f"{generated_at:%Y-%m-%d %H:%M}"],
    ]
    if run_id:
        about.append(["Run", run_id])
    doc = f"""<!doctype html><html lang="id"><head><meta charset="utf-8">
<title>Ringkasan penetapan penerima bantuan - {html.escape(str(snapshot))}</title>
<style>body{{font-family:sans-serif;max-width:64em;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:.5em 0 1.5em}} th{{background:#f0f0f0}}
td,th{{border:1px solid #ccc;padding:3px 8px}} td.n{{text-align:right;font-variant-numeric:tabular-nums}}
tbody tr:last-child td{{font-weight:{"bold" if programs else "normal"}}}</style></head><body>
<h1>Ringkasan penetapan penerima bantuan</h1>
{_table(["", ""], about, numeric_from=2)}
<p>Jumlah per program. Dana yang dipertaruhkan = baris hapus + tinjau, per tahun (12 x nominal bulanan).</p>
{_table(headers, headline_rows + [total_row])}
{"".join(sections)}
<p>Arti setiap alasan ada di lembar <em>Keterangan</em> pada file ekspor tiap program dan di
docs/verdict-rules.md. Laporan ini tidak memuat NIK, nama, atau data kesejahteraan perorangan.</p>
</body></html>"""
    html_path = out_dir / "run_summary.html"
    md_path = out_dir / "run_summary.md"
    html_path.write_text(doc, encoding="utf-8")
    md_path.write_text(markdown, encoding="utf-8")
    return {"html": html_path, "markdown_path": md_path, "markdown": markdown}
