"""Splink explainability charts, written as HTML under `config.run_reports_dir(run_id)` (`<reports>/runs/<run_id>/`).

The model charts (match weights, m/u parameters) hold no personal data. The comparison viewer and
the waterfall chart show the compared values of sample pairs: they hold PII and stay local files
(never metadata values). Charts are written with their JavaScript libraries inlined so they open
offline; the comparison viewer dashboard is Splink's own template (its libraries are bundled too).
"""

from __future__ import annotations

import logging
from pathlib import Path

from satudata_pipeline import config
from satudata_pipeline.warehouse import scalar

log = logging.getLogger(__name__)


def run_report_dir(run_id: str) -> Path:
    return config.run_reports_dir(run_id)


def report_metadata(charts: dict[str, Path]) -> dict:
    """Metadata for written charts: where each file is (relative to the state folder) and the link
    that opens it from the UI (`<name>_url`, served by `satudata ui` or the reverse proxy)."""
    import dagster as dg

    md: dict = {}
    for name, path in charts.items():
        md[name] = dg.MetadataValue.path(config.shown_path(path))
        url = config.report_url(path)
        if url:
            md[f"{name}_url"] = dg.MetadataValue.url(url)
    return md


def _save_chart(chart, path: Path) -> Path:
    try:
        path.write_text(chart.to_html(inline=True), encoding="utf-8")
    except Exception:  # fall back to the CDN version (needs network to view)
        log.warning("inline chart failed, writing CDN version", exc_info=True)
        path.write_text(chart.to_html(inline=False), encoding="utf-8")
    return path


def write_model_charts(linker, out_dir: Path) -> dict[str, Path]:
    """Match weights chart and m/u parameters chart of the model (no PII)."""
    out: dict[str, Path] = {}
    for name, make in (
        ("match_weights_chart", linker.visualisations.match_weights_chart),
        ("m_u_parameters_chart", linker.visualisations.m_u_parameters_chart),
    ):
        try:
            out[name] = _save_chart(make(), out_dir / f"{name}.html")
        except Exception:
            log.warning("could not write %s", name, exc_info=True)
    return out


def write_pair_reports(
    linker, db_api, predictions_table: str, threshold: float, out_dir: Path, sample_size: int = 50
) -> dict[str, Path]:
    """Comparison viewer and waterfall chart for the pairs nearest the threshold (PII: local only)."""
    out: dict[str, Path] = {}
    conn = db_api.duckdb_con
    try:
        conn.execute(f"""
            CREATE OR REPLACE TABLE splink_work.near_threshold AS
            SELECT * FROM {predictions_table}
            ORDER BY abs(match_probability - {float(threshold)}), unique_id_l, unique_id_r
            LIMIT {int(sample_size)}
        """)
        n = scalar(conn, "SELECT count(*) FROM splink_work.near_threshold")
        if n == 0:
            return out
        # the comparison viewer SQL refers to its input by the templated name __splink__df_predict
        sdf = db_api.register("near_threshold", table_name="__splink__df_predict")
        path = out_dir / "comparison_viewer.html"
        linker.visualisations.comparison_viewer_dashboard(
            sdf, str(path), overwrite=True, num_example_rows=2
        )
        out["comparison_viewer"] = path
        records = sdf.as_record_list(limit=sample_size)
        chart = linker.visualisations.waterfall_chart(records, filter_nulls=False)
        out["waterfall_chart"] = _save_chart(chart, out_dir / "waterfall_near_threshold.html")
    except Exception:
        log.warning("could not write pair reports", exc_info=True)
    return out


def write_histogram(linker, df_predict, out_dir: Path) -> dict[str, Path]:
    try:
        chart = linker.visualisations.match_weights_histogram(df_predict)
        return {
            "match_weights_histogram": _save_chart(chart, out_dir / "match_weights_histogram.html")
        }
    except Exception:
        log.warning("could not write histogram", exc_info=True)
        return {}
