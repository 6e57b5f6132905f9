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


def _pairs_sql(cols: tuple[str, ...], where: str = "") -> str:
    """Pairs a block_on(cols) rule makes on link.person_records: sum of n(n-1)/2 over its blocks
    (a GROUP BY, not a self-join)."""
    keys = ", ".join(f'"{c}"' for c in cols)
    not_null = " AND ".join(f'"{c}" IS NOT NULL' for c in cols)
    return (f"SELECT coalesce(sum(n * (n - 1) / 2), 0)::BIGINT FROM (SELECT count(*) AS n "
            f"FROM link.person_records WHERE {not_null} {where} GROUP BY {keys})")


def em_rule(conn: duckdb.DuckDBPyConnection, cols: tuple[str, ...]) -> tuple[object, int, int, int]:
    """The EM blocking rule for `cols`, sampled when it makes more than EM_MAX_PAIRS pairs.
    Returns (rule, pairs of the full rule, sampling modulus, pairs used)."""
    from splink import block_on

    pairs = conn.execute(_pairs_sql(cols)).fetchall()[0][0]
    modulus = max(1, -(-pairs // int(ss.EM_MAX_PAIRS)))
    if modulus == 1:
        return block_on(*cols), pairs, 1, pairs

    def in_sample(prefix: str) -> str:  # whole blocks: the key's hash picks one block in `modulus`
        return f"hash({' || '.join(f'{prefix}{c}::VARCHAR' for c in cols)}) % {modulus} = 0"

    used = conn.execute(_pairs_sql(cols, "AND " + in_sample(""))).fetchall()[0][0]
    sql = " AND ".join(f'l."{c}" = r."{c}"' for c in cols) + f" AND {in_sample('l.')}"
    return sql, pairs, modulus, used


def bound_unobserved_u(settings: dict, sampled_pairs: float) -> list[str]:
    """Give every level that random sampling never observed the rule-of-three upper bound
    u = 3 / pairs sampled (95% bound for an event seen 0 times) instead of Splink's default
    (which, for a middle level such as "NIK one typo apart", is a weight near 0): a level no random
    pair reaches is strong evidence, and the bound is still a conservative weight."""
    bound = 3.0 / float(sampled_pairs)
    changed = []
    for comp in settings.get("comparisons", []):
        for level in comp.get("comparison_levels", []):
            if level.get("is_null_level") or level.get("fix_u_probability"):
                continue
            u = level.get("u_probability")
            if u is None or isinstance(u, str):
                level["u_probability"] = bound
                changed.append(f"{comp.get('output_column_name')}: {level.get('label_for_charts')}")
    return changed


def train_model(conn: duckdb.DuckDBPyConnection, *, u_max_pairs: float | None = None,
                seed: int | None = None) -> TrainingSummary:
    """Estimate the model on `link.person_records`: prior from near-certain rules, u by random
    sampling (fixed seed; levels never seen get the rule-of-three bound), m by expectation
    maximisation over a few blocking rules (each capped at EM_MAX_PAIRS pairs by sampling blocks)."""
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
        settings = linker.misc.save_model_to_json()
        unobserved = bound_unobserved_u(settings, max_pairs)
        linker = Linker(sdf, settings, log_level=logging.WARNING)
        training_pairs: dict[str, int] = {"u_random_sampling_max_pairs": int(max_pairs)}
        for cols in ss.EM_BLOCKING_COLUMNS:
            rule, pairs, modulus, used = em_rule(conn, cols)
            name = "em: " + " + ".join(cols)
            training_pairs[name] = int(pairs)
            if modulus > 1:
                training_pairs[f"{name} (1 block in {modulus} used)"] = int(used)
            linker.training.estimate_parameters_using_expectation_maximisation(
                rule, estimate_without_term_frequencies=True
            )
        settings = linker.misc.save_model_to_json()
        if unobserved:
            log.info("u not observed in random sampling, bounded at 3/%d: %s", int(max_pairs), unobserved)
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
