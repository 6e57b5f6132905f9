"""Train, save and load the Splink model (versioned JSON files under config.model_dir())."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from satudata_pipeline import config
from satudata_pipeline.link import splink_settings as ss
from satudata_pipeline.link.matching import register_person_records, splink_session

log = logging.getLogger(__name__)

MODEL_PREFIX = "splink_model"


@dataclass
class TrainingSummary:
    settings: dict
    training_pairs: dict[str, int] = field(default_factory=dict)
    probability_two_random_records_match: float | None = None


def retrain_requested_by_env() -> bool:
    return os.environ.get("SATUDATA_RETRAIN", "").strip().lower() in {"1", "true", "yes", "y"}


def train_model(conn: duckdb.DuckDBPyConnection, *, u_max_pairs: float | None = None,
                seed: int | None = None) -> TrainingSummary:
    """Estimate the model on `link.person_records`: prior from near-certain rules, u by random
    sampling (fixed seed), m by expectation maximisation over a few blocking rules."""
    from splink import Linker

    n = conn.execute("SELECT count(*) FROM link.person_records").fetchall()[0][0]
    with splink_session(conn) as db_api:
        sdf = register_person_records(db_api)
        linker = Linker(sdf, ss.settings_creator(), log_level=logging.WARNING)
        try:
            linker.training.estimate_probability_two_random_records_match(
                ss.DETERMINISTIC_RULES_FOR_PRIOR, recall=ss.PRIOR_RECALL
            )
        except Exception:  # too few records for the estimate: keep the default prior
            log.warning("prior estimate failed; keeping the default", exc_info=True)
        max_pairs = u_max_pairs or min(ss.U_SAMPLING_MAX_PAIRS, max(1e4, n * (n - 1) / 2))
        linker.training.estimate_u_using_random_sampling(
            max_pairs=max_pairs, seed=seed if seed is not None else ss.U_SAMPLING_SEED
        )
        training_pairs: dict[str, int] = {"u_random_sampling_max_pairs": int(max_pairs)}
        for rule in ss.EM_BLOCKING_RULES:
            sql = rule.get_blocking_rule("duckdb").blocking_rule_sql
            cnt = conn.execute(
                f"SELECT count(*) FROM link.person_records l JOIN link.person_records r "
                f"ON {sql} AND l.unique_id < r.unique_id"
            ).fetchall()[0][0]
            training_pairs[f"em: {sql}"] = int(cnt)
            linker.training.estimate_parameters_using_expectation_maximisation(
                rule, estimate_without_term_frequencies=True
            )
        settings = linker.misc.save_model_to_json()
        prior = settings.get("probability_two_random_records_match")
    return TrainingSummary(settings, training_pairs, prior)


def save_model(summary: TrainingSummary, run_id: str | None = None,
               model_dir: Path | None = None) -> Path:
    """Write the model as `splink_model_<fingerprint>_<timestamp>.json`, never overwriting."""
    model_dir = model_dir or config.model_dir()
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    path = model_dir / f"{MODEL_PREFIX}_{ss.settings_fingerprint()}_{stamp}.json"
    payload = {
        "satudata": {
            "settings_version": ss.SETTINGS_VERSION,
            "fingerprint": ss.settings_fingerprint(),
            "trained_at": stamp,
            "run_id": run_id,
            "training_pairs": summary.training_pairs,
        },
        **summary.settings,
    }
    path.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    return path


def latest_model_path(model_dir: Path | None = None) -> Path | None:
    """Newest saved model trained under the current specification, or None."""
    model_dir = model_dir or config.model_dir()
    files = sorted(model_dir.glob(f"{MODEL_PREFIX}_{ss.settings_fingerprint()}_*.json"))
    return files[-1] if files else None


def load_model(path: Path) -> tuple[dict, dict]:
    """(Splink settings dict, satudata metadata) from a saved model file."""
    payload = json.loads(Path(path).read_text(encoding="utf-8"))
    meta = payload.pop("satudata", {})
    return payload, meta


def parameters_table(settings: dict) -> list[dict]:
    """m and u per comparison level, with the resulting match weight (for metadata/docs)."""
    import math

    rows = []
    for comp in settings.get("comparisons", []):
        name = comp.get("output_column_name")
        for level in comp.get("comparison_levels", []):
            if level.get("is_null_level"):
                continue
            m, u = level.get("m_probability"), level.get("u_probability")
            weight = math.log2(m / u) if m and u else None
            rows.append({
                "comparison": name,
                "level": level.get("label_for_charts") or level.get("sql_condition"),
                "m": None if m is None else round(m, 6),
                "u": None if u is None else round(u, 8),
                "match_weight": None if weight is None else round(weight, 2),
            })
    return rows
