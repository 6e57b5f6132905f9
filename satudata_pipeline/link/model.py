"""Train, save and load the Splink model (versioned JSON files under config.model_dir())."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from satudata_pipeline import config
from satudata_pipeline.link import splink_settings as ss
from satudata_pipeline.link.matching import register_person_records, splink_session
from satudata_pipeline.warehouse import one_row, scalar

log = logging.getLogger(__name__)

MODEL_PREFIX = "splink_model"


@dataclass
class TrainingSummary:
    settings: dict
    training_pairs: dict[str, int] = field(default_factory=dict)
    probability_two_random_records_match: float | None = None
    # what training could not estimate, and the levels given a floor (counts only, no values)
    not_trained: list[dict] = field(default_factory=list)
    floored: list[dict] = field(default_factory=list)
    u_rule_of_three: list[str] = field(default_factory=list)  # levels random pairs never reached


def _pairs_sql(cols: tuple[str, ...], where: str = "") -> str:
    """Pairs a block_on(cols) rule makes on link.person_records: sum of n(n-1)/2 over its blocks
    (a GROUP BY, not a self-join)."""
    keys = ", ".join(f'"{c}"' for c in cols)
    not_null = " AND ".join(f'"{c}" IS NOT NULL' for c in cols)
    return (
        f"SELECT coalesce(sum(n * (n - 1) / 2), 0)::BIGINT FROM (SELECT count(*) AS n "
        f"FROM link.person_records WHERE {not_null} {where} GROUP BY {keys})"
    )


def em_rule(conn: duckdb.DuckDBPyConnection, cols: tuple[str, ...]) -> tuple[object, int, int, int]:
    """The EM blocking rule for `cols`, sampled when it makes more than EM_MAX_PAIRS pairs.
    Returns (rule, pairs of the full rule, sampling modulus, pairs used)."""
    from splink import block_on

    pairs = scalar(conn, _pairs_sql(cols))
    modulus = max(1, -(-pairs // int(ss.EM_MAX_PAIRS)))
    if modulus == 1:
        return block_on(*cols), pairs, 1, pairs

    def in_sample(prefix: str) -> str:  # whole blocks: the key's hash picks one block in `modulus`
        return f"hash({' || '.join(f'{prefix}{c}::VARCHAR' for c in cols)}) % {modulus} = 0"

    used = scalar(conn, _pairs_sql(cols, "AND " + in_sample("")))
    sql = " AND ".join(f'l."{c}" = r."{c}"' for c in cols) + f" AND {in_sample('l.')}"
    return sql, pairs, modulus, used


def bound_unobserved_u(settings: dict, sampled_pairs: float) -> list[str]:
    """Give every level that random sampling never observed the rule-of-three upper bound
    u = 3 / pairs sampled (95% bound for an event seen 0 times) instead of Splink's default
    (which, for a middle level such as "NIK one typo apart", is a weight near 0): a level no random
    pair reaches is strong evidence, and the bound is still a conservative weight. A degenerate u
    (0, or 1: every random pair in one level) is bounded the same way from either side."""
    bound = 3.0 / float(sampled_pairs)
    changed = []
    for comp in settings.get("comparisons", []):
        for level in comp.get("comparison_levels", []):
            if level.get("is_null_level") or level.get("fix_u_probability"):
                continue
            u = level.get("u_probability")
            if u is None or isinstance(u, str) or u <= 0:
                level["u_probability"] = bound
            elif u >= 1:
                level["u_probability"] = 1.0 - bound
            else:
                continue
            changed.append(f"{comp.get('output_column_name')}: {level.get('label_for_charts')}")
    return changed


def _weight(m, u) -> float | None:
    if isinstance(m, (int, float)) and isinstance(u, (int, float)) and m > 0 and u > 0:
        return round(math.log2(m / u), 2)
    return None


def floor_m(
    settings: dict, observed: dict[str, dict[int, float]], matches: dict[str, float]
) -> list[dict]:
    """Bound the m of levels that EM could not estimate (see splink_settings.M_FLOOR_PRIOR).

    observed: comparison -> {level index (non-null levels, in order): most expected matching pairs
    any pass put in the level}; matches: comparison -> most expected matching pairs of a pass
    that trained it. Only comparisons in `matches` are touched. A level not observed, or observed
    at less than one expected pair, gets m = max(3 / matches, M_FLOOR_PRIOR), capped at its u (a
    floor stops a veto; it never makes an unseen level positive evidence: weight at most 0), when
    that is larger than its m; an m above 1 - M_FLOOR_PRIOR is lowered to it. One record per
    change (comparison, level, reason, expected pairs, weight before and after)."""
    out = []
    for comp in settings.get("comparisons", []):
        name = comp.get("output_column_name")
        if name not in matches:
            continue
        floor = max(3.0 / max(matches[name], 1.0), ss.M_FLOOR_PRIOR)
        levels = [lv for lv in comp.get("comparison_levels", []) if not lv.get("is_null_level")]
        for i, level in enumerate(levels):
            if level.get("fix_m_probability"):
                continue
            m, u = level.get("m_probability"), level.get("u_probability")
            seen = observed.get(name, {}).get(i, 0.0)
            numeric = isinstance(m, (int, float))
            if not numeric or seen < 1.0:
                target = min(floor, u) if isinstance(u, (int, float)) and u > 0 else floor
                if numeric and m >= target:
                    continue
                reason = (
                    "not observed in training"
                    if not numeric or seen == 0
                    else ("estimated from less than one expected matching pair")
                )
                new = target
            elif m > 1.0 - ss.M_FLOOR_PRIOR:
                reason, new = "m of 1 (every matching pair in this level)", 1.0 - ss.M_FLOOR_PRIOR
            else:
                continue
            level["m_probability"] = new
            out.append(
                {
                    "comparison": name,
                    "level": level.get("label_for_charts"),
                    "reason": reason,
                    "expected_matching_pairs": round(seen, 2),
                    "weight_before": _weight(m if numeric else 1e-6, u),
                    "weight_after": _weight(new, u),
                }
            )
    return out


def cap_name_frequency_adjustments(settings: dict) -> list[str]:
    """Levels of splink_settings.NAME_TF_CAPPED_LEVELS: their term-frequency adjustment may only
    lower the weight. Splink adds log2(u_exact / max(tf_l, tf_r, tf_minimum_u_value)) (u_exact: the
    u of the exact level on the same column); tf_minimum_u_value = u_exact makes that at most 0, so
    a name commoner than the average match weighs less and a rare one no more than the level.
    Returns the levels capped (labels)."""
    capped = []
    for comp in settings.get("comparisons", []):
        levels = comp.get("comparison_levels", [])
        for level in levels:
            col = level.get("tf_adjustment_column")
            if not col or level.get("label_for_charts") not in ss.NAME_TF_CAPPED_LEVELS:
                continue
            exact = [
                lv.get("u_probability")
                for lv in levels
                if lv.get("tf_adjustment_column") == col
                and lv.get("sql_condition", "").replace('"', "") == f"{col}_l = {col}_r"
            ]
            if exact and isinstance(exact[0], (int, float)) and exact[0] > 0:
                level["tf_minimum_u_value"] = float(exact[0])
                capped.append(f"{comp.get('output_column_name')}: {level.get('label_for_charts')}")
    return capped


def neutralise(settings: dict, comparisons: set[str]) -> None:
    """Comparisons the delivery holds no values for: every level m = u (weight 0), so the saved
    model has no untrained (Splink default) values; such pairs all fall in the null level anyway."""
    for comp in settings.get("comparisons", []):
        if comp.get("output_column_name") not in comparisons:
            continue
        for level in comp.get("comparison_levels", []):
            if level.get("is_null_level") or level.get("fix_m_probability"):
                continue
            u = level.get("u_probability")
            if isinstance(u, (int, float)) and 0 < u < 1:
                level["m_probability"] = u


def model_implied_recall(settings: dict, with_values: dict[str, int], n: int) -> float:
    """Recall of splink_settings.PRIOR_RULE among true matches, from the trained model: m of the
    first (exact) level of nama and of tanggal_lahir, times the share of pairs where both records
    hold a birth date; bounded to PRIOR_RECALL_BOUNDS."""

    def exact_m(name: str) -> float:
        for comp in settings.get("comparisons", []):
            if comp.get("output_column_name") == name:
                for level in comp.get("comparison_levels", []):
                    if not level.get("is_null_level"):
                        m = level.get("m_probability")
                        return float(m) if isinstance(m, (int, float)) else 0.0
        return 0.0

    share_dob = with_values.get("tanggal_lahir", 0) / n if n else 0.0
    recall = exact_m("nama") * exact_m("tanggal_lahir") * share_dob**2
    lo, hi = ss.PRIOR_RECALL_BOUNDS
    return min(max(recall, lo), hi)


def _comparison_columns(linker) -> dict[str, set[str]]:
    """comparison -> the input columns its levels read (Splink's own view, which decides what an
    EM pass can estimate: a pass estimates the comparisons that read none of its rule's columns)."""
    return {
        cc.output_column_name: {
            c.input_name.strip('`"') for c in cc._input_columns_used_by_case_statement
        }
        for cc in linker._settings_obj.comparisons
    }


def _records_with_values(conn: duckdb.DuckDBPyConnection) -> dict[str, int]:
    cols = ", ".join(f'count({sql}) AS "{name}"' for name, sql in ss.COMPARISON_VALUES.items())
    row = one_row(conn, f"SELECT {cols} FROM link.person_records")
    return dict(zip(ss.COMPARISON_VALUES, (int(v) for v in row)))


def plan_em_passes(
    conn: duckdb.DuckDBPyConnection, comp_cols: dict[str, set[str]], with_values: dict[str, int]
) -> tuple[list[tuple], list[dict]]:
    """The EM passes this delivery supports: every rule of EM_BLOCKING_COLUMNS that makes at least
    EM_MIN_PAIRS pairs, then fallbacks for comparisons with data that none of those estimates.
    Returns ([(cols, rule, pairs, modulus, used)], [skipped rule records])."""

    def trains(cols):
        return {c for c, used in comp_cols.items() if not set(cols) & used}

    passes, skipped = [], []
    covered: set[str] = set()
    needed = {c for c, n in with_values.items() if n >= 2}
    for fallback, candidates in ((False, ss.EM_BLOCKING_COLUMNS), (True, ss.EM_FALLBACK_COLUMNS)):
        for cols in candidates:
            if fallback and not (trains(cols) & (needed - covered)):
                continue
            rule, pairs, modulus, used = em_rule(conn, cols)
            if used < ss.EM_MIN_PAIRS:
                skipped.append(
                    {
                        "em_rule": " + ".join(cols),
                        "pairs": int(pairs),
                        "reason": f"fewer than {ss.EM_MIN_PAIRS} pairs",
                    }
                )
                continue
            passes.append((cols, rule, pairs, modulus, used))
            covered |= trains(cols)
    return passes, skipped


def train_model(
    conn: duckdb.DuckDBPyConnection,
    *,
    u_max_pairs: float | None = None,
    seed: int | None = None,
    spark=None,
) -> TrainingSummary:
    """Estimate the model on `link.person_records`: prior from near-certain rules, u by random
    sampling (fixed seed; levels never seen get the rule-of-three bound), m by expectation
    maximisation over the blocking rules this delivery supports (plan_em_passes; each capped at
    EM_MAX_PAIRS pairs by sampling blocks); levels EM could not estimate get a floor (floor_m).
    What could not be trained, and why, is in the summary (counts only).
    `spark` (a spark_engine.SparkLinkage): Splink's training runs on Spark, the planning counts
    (GROUP BY on link.person_records) on the warehouse; the model is returned in DuckDB SQL."""
    from splink import Linker
    from splink.internals.exceptions import EMTrainingException

    n = scalar(conn, "SELECT count(*) FROM link.person_records")
    with_values = _records_with_values(conn)
    not_trained: list[dict] = []
    with splink_session(conn) as db_api:
        if spark is None:
            sdf = register_person_records(db_api)

            def new_linker(settings):
                return Linker(sdf, settings, log_level=logging.WARNING)

            def saved(linker) -> dict:
                return linker.misc.save_model_to_json()

            def rule(r):
                return r
        else:
            from satudata_pipeline.link.spark_engine import rule_for_spark

            spark_sdf = spark.records()

            def new_linker(settings):
                return spark.linker(spark_sdf, settings)

            saved = spark.saved
            rule = rule_for_spark

        linker = new_linker(ss.settings_creator())
        try:
            linker.training.estimate_probability_two_random_records_match(
                [rule(r) for r in ss.DETERMINISTIC_RULES_FOR_PRIOR], recall=ss.PRIOR_RECALL
            )
        except Exception:  # no pair meets the rules (or too few records): keep the default prior
            log.warning("prior estimate failed; keeping the default", exc_info=True)
            not_trained.append(
                {
                    "comparison": "(prior)",
                    "level": None,
                    "records_with_value": None,
                    "reason": "no pair meets the deterministic rules: default kept",
                }
            )
        max_pairs = u_max_pairs or min(ss.U_SAMPLING_MAX_PAIRS, max(1e4, n * (n - 1) / 2))
        linker.training.estimate_u_using_random_sampling(
            max_pairs=max_pairs, seed=seed if seed is not None else ss.U_SAMPLING_SEED
        )
        settings = saved(linker)
        u_bounded = bound_unobserved_u(settings, max_pairs)
        linker = new_linker(settings)
        comp_cols = _comparison_columns(linker)
        passes, skipped = plan_em_passes(conn, comp_cols, with_values)
        training_pairs: dict[str, int] = {"u_random_sampling_max_pairs": int(max_pairs)}
        for rec in skipped:
            training_pairs[f"em: {rec['em_rule']} (skipped: {rec['reason']})"] = rec["pairs"]
        observed: dict[str, dict[int, float]] = {}
        matches: dict[str, float] = {}
        for cols, em, pairs, modulus, used in passes:
            name = "em: " + " + ".join(cols)
            training_pairs[name] = int(pairs)
            if modulus > 1:
                training_pairs[f"{name} (1 block in {modulus} used)"] = int(used)
            try:
                session = linker.training.estimate_parameters_using_expectation_maximisation(
                    rule(em), estimate_without_term_frequencies=True
                )
            except (EMTrainingException, ValueError):
                # ValueError: Splink refuses an m or u that EM drove below 1e-300 (a level that only
                # a handful of the pass's pairs reach, on a small delivery). The pass is dropped; its
                # levels keep the estimates of the other passes or get the floor like any unobserved one.
                log.warning("EM pass %s failed", name, exc_info=True)
                training_pairs[f"{name} (failed)"] = int(used)
                continue
            final = session._core_model_settings_history[-1]
            n_match = float(final.probability_two_random_records_match or 0.0) * used
            for cc in final.comparisons:
                c = cc.output_column_name
                matches[c] = max(matches.get(c, 0.0), n_match)
                for i, cl in enumerate(cc._comparison_levels_excluding_null):
                    m = cl._m_probability
                    seen = m * n_match if isinstance(m, (int, float)) else 0.0
                    observed.setdefault(c, {})[i] = max(observed.get(c, {}).get(i, 0.0), seen)
        settings = saved(linker)
        prior_recall = model_implied_recall(settings, with_values, n)
        linker = new_linker(settings)
        try:
            linker.training.estimate_probability_two_random_records_match(
                [rule(ss.PRIOR_RULE)], recall=prior_recall
            )
            settings = saved(linker)
            training_pairs["prior_rule_recall_per_mille"] = int(round(prior_recall * 1000))
        except Exception:  # no pair with the same name and birth date: keep the first estimate
            log.warning("prior re-estimate failed; keeping the first estimate", exc_info=True)
        no_values = {c for c, count in with_values.items() if count < 2}
        floored = [
            f for f in floor_m(settings, observed, matches) if f["comparison"] not in no_values
        ]
        neutralise(settings, no_values)
        cap_name_frequency_adjustments(settings)
        for c, count in with_values.items():
            if c in matches and c not in no_values:
                continue
            reason = (
                "no values in the delivery"
                if c in no_values
                else "no EM pass could estimate it (every candidate rule reads its columns or "
                f"makes fewer than {ss.EM_MIN_PAIRS} pairs): Splink's starting values kept"
            )
            not_trained.append(
                {"comparison": c, "level": None, "records_with_value": count, "reason": reason}
            )
        if u_bounded:
            log.info(
                "u not observed in random sampling, bounded at 3/%d: %s", int(max_pairs), u_bounded
            )
        prior = settings.get("probability_two_random_records_match")
    u_bounded = [x for x in u_bounded if x.split(": ", 1)[0] not in no_values]
    return TrainingSummary(settings, training_pairs, prior, not_trained, floored, u_bounded)


def save_model(
    summary: TrainingSummary, run_id: str | None = None, model_dir: Path | None = None
) -> Path:
    """Write the model as `splink_model_<fingerprint>_<timestamp>.json`, never overwriting."""
    model_dir = model_dir or config.model_dir()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = model_dir / f"{MODEL_PREFIX}_{ss.settings_fingerprint()}_{stamp}.json"
    payload = {
        "satudata": {
            "settings_version": ss.SETTINGS_VERSION,
            "fingerprint": ss.settings_fingerprint(),
            "trained_at": stamp,
            "run_id": run_id,
            "training_pairs": summary.training_pairs,
            "not_trained": summary.not_trained,
            "floored_levels": summary.floored,
            "u_rule_of_three_levels": summary.u_rule_of_three,
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
    rows = []
    for comp in settings.get("comparisons", []):
        name = comp.get("output_column_name")
        for level in comp.get("comparison_levels", []):
            if level.get("is_null_level"):
                continue
            m, u = level.get("m_probability"), level.get("u_probability")
            m = m if isinstance(m, (int, float)) else None
            u = u if isinstance(u, (int, float)) else None
            weight = math.log2(m / u) if m and u else None
            rows.append(
                {
                    "comparison": name,
                    "level": level.get("label_for_charts") or level.get("sql_condition"),
                    "m": None if m is None else round(m, 6),
                    "u": None if u is None else round(u, 8),
                    "match_weight": None if weight is None else round(weight, 2),
                }
            )
    return rows
