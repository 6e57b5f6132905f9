"""Incremental linkage: next month's delivery scored against the warehouse's previous linkage.

Most rows of a monthly full extract are the same as last month. A record whose cleaned linkage
fields are unchanged (the same fingerprint) keeps its candidate pairs: they are carried over from
the previous run with their comparison levels and scored by Splink's prediction SQL with this
month's name frequencies (no blocking, no string comparison), exactly as a full run scores them. New and changed records are scored with the
saved model against the unchanged records (Splink `predict_between`) and among themselves
(`predict_within`). The deterministic NIK pass, the post-model rules (veto, two people's NIKs) and
clustering then run over the union, exactly as in a full run. docs/linkage.md, "Incremental
linkage", says why this gives the same links as a full run.

State (schema link_state), written in one transaction at the end of match_pairs:
- link_state.records: per record the fingerprint of its linkage fields and the frequency of its
  name when its pairs were last found by blocking (`ref_tf_nama`);
- link_state.pairs: the candidate pairs found by blocking at or above CARRY probability (ids and
  comparison levels);
- link_state.meta: what the state was computed under (model, settings, cleaning rules, blocking).
The state is a cache keyed by content (record fingerprints + configuration), not a copy of the
publication: a run that fails after writing it leaves a state that is still true of those records.

Why the name frequency guard: the model's exact-name level (and, downwards only, its "one name
contained in the other") is adjusted by the name's frequency in the delivery. A pair of unchanged records that scored below CARRY last time is not stored; it can
only reach the match threshold this month if the frequency of its (shared) name fell by more than
2^CARRY_MARGIN_BITS. Records whose name frequency fell that much since their pairs were found are
re-scored like changed records, so no pair that a full run would keep is missed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass, field

import duckdb

from satudata_pipeline.clean.fingerprint import cleaning_rules_fingerprint
from satudata_pipeline.link import matching
from satudata_pipeline.link import splink_settings as ss

log = logging.getLogger(__name__)

STATE_SCHEMA = "link_state"
STATE_VERSION = "2"
# Pairs are stored down to this many bits (match weight) below the match threshold: 2 bits = a name
# four times rarer than when the pair was scored before a stored pair could be missed (guarded).
CARRY_MARGIN_BITS = 2.0


def carry_threshold(match_threshold: float, margin_bits: float = CARRY_MARGIN_BITS) -> float:
    """The match probability CARRY_MARGIN_BITS of match weight below `match_threshold`."""
    p = min(max(float(match_threshold), 1e-12), 1 - 1e-12)
    odds = p / (1 - p) / (2.0**margin_bits)
    return odds / (1 + odds)


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def blocking_sql(model_settings: dict, extra_rules) -> list[str]:
    """The prediction blocking rules as SQL: the saved model's, then the delivery's extra rules."""
    rules = [
        r["blocking_rule"] if isinstance(r, dict) else str(r)
        for r in model_settings.get("blocking_rules_to_generate_predictions", [])
    ]
    rules += [r.get_blocking_rule("duckdb").blocking_rule_sql for r in extra_rules]
    return rules


def configuration(
    model_settings: dict, extra_rules, match_threshold: float, name_jw: float
) -> dict:
    """What a previous linkage must have been computed under to be reused, by component (a change in
    any one forces a full relink; the component's name is the reason)."""
    model_only = {
        k: v for k, v in model_settings.items() if k != "blocking_rules_to_generate_predictions"
    }
    return {
        "state_version": STATE_VERSION,
        "model": _sha(model_only),
        "model_specification": ss.settings_fingerprint(),
        "blocking": _sha(
            [blocking_sql(model_settings, extra_rules), ss.BLOCK_CAP, ss.CAPPED_BLOCKS]
        ),
        "match_settings": _sha(
            {
                "match_threshold": float(match_threshold),
                "name_jw": float(name_jw),
                "carry_margin_bits": CARRY_MARGIN_BITS,
                "deterministic": matching.deterministic_pairs_sql(name_jw),
                "veto": matching.VETO_SQL,
                "two_people": matching.TWO_PEOPLE_NIKS_SQL,
            }
        ),
        "cleaning_rules": cleaning_rules_fingerprint(),
    }


def linkage_columns(
    conn: duckdb.DuckDBPyConnection, model_settings: dict, extra_rules, name_jw: float
) -> list[str]:
    """Columns of link.person_records that scoring reads: every column named by the model (its
    comparisons, blocking rules, retained columns), the extra blocking rules or the post-model SQL."""
    text = " ".join(
        [
            json.dumps(model_settings),
            " ".join(blocking_sql(model_settings, extra_rules)),
            matching.deterministic_pairs_sql(name_jw),
            matching.VETO_SQL,
            matching.TWO_PEOPLE_NIKS_SQL,
        ]
    )
    cols = [r[0] for r in conn.execute("DESCRIBE link.person_records").fetchall()]
    return [
        c for c in cols if c != "unique_id" and re.search(rf"\b{re.escape(c)}(?:_[lr])?\b", text)
    ]


@dataclass
class Plan:
    mode: str  # "full" or "incremental"
    reason: str
    configuration: dict
    counts: dict = field(default_factory=dict)


def _state_exists(conn) -> bool:
    n = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? "
        "AND table_name IN ('meta', 'records', 'pairs')",
        [STATE_SCHEMA],
    ).fetchall()[0][0]
    return n == 3


def previous_configuration(conn) -> dict | None:
    if not _state_exists(conn):
        return None
    rows = conn.execute(f"SELECT configuration FROM {STATE_SCHEMA}.meta").fetchall()
    return json.loads(rows[0][0]) if rows else None


def choose_mode(conn, current: dict, full_requested: bool) -> Plan:
    """Full when asked, when there is no previous state, or when any configuration component
    changed (named in the reason); else incremental."""
    if full_requested:
        return Plan(
            "full",
            "full relink requested (--full, SATUDATA_FULL_RELINK=1 or the full_relink option)",
            current,
        )
    previous = previous_configuration(conn)
    if previous is None:
        return Plan("full", "no previous linkage state in the warehouse", current)
    changed = [k for k in current if previous.get(k) != current[k]]
    if changed:
        return Plan("full", "changed since the previous linkage: " + ", ".join(changed), current)
    return Plan(
        "incremental",
        "previous linkage state computed under the same model, settings, "
        "cleaning rules and blocking",
        current,
    )


def _fingerprints(conn, columns: list[str]) -> None:
    """TEMP _link_fp(unique_id, fp, tf_nama): fingerprint of each record's linkage fields and the
    current frequency of its name (Splink's term frequency formula)."""
    struct = ", ".join(f"'{c}': \"{c}\"" for c in columns)
    conn.execute(f"""
        CREATE OR REPLACE TEMP TABLE _link_fp AS
        WITH tf AS (
            SELECT nama, count(*)::DOUBLE / (SELECT count(nama) FROM link.person_records) AS tf
            FROM link.person_records WHERE nama IS NOT NULL GROUP BY nama)
        SELECT p.unique_id, md5(to_json({{{struct}}})::VARCHAR) AS fp, tf.tf AS tf_nama
        FROM link.person_records p LEFT JOIN tf USING (nama)
    """)


def classify(conn, columns: list[str]) -> dict:
    """TEMP _link_class(unique_id, status, fp, ref_tf_nama) for the current records (status: new,
    changed, name_frequency (unchanged fields, name now much rarer), unchanged) and the counts,
    with records gone since the previous state."""
    _fingerprints(conn, columns)
    factor = 2.0**CARRY_MARGIN_BITS
    conn.execute(f"""
        CREATE OR REPLACE TEMP TABLE _link_class AS
        SELECT f.unique_id, f.fp,
               CASE WHEN s.unique_id IS NULL THEN 'new'
                    WHEN s.fp <> f.fp THEN 'changed'
                    WHEN s.ref_tf_nama IS NOT NULL AND f.tf_nama IS NOT NULL
                         AND f.tf_nama * {factor} < s.ref_tf_nama THEN 'name_frequency'
                    ELSE 'unchanged' END AS status,
               f.tf_nama, s.ref_tf_nama AS old_ref_tf_nama
        FROM _link_fp f LEFT JOIN {STATE_SCHEMA}.records s USING (unique_id)
    """)
    counts = dict(conn.execute("SELECT status, count(*) FROM _link_class GROUP BY 1").fetchall())
    gone = conn.execute(
        f"SELECT count(*) FROM {STATE_SCHEMA}.records s ANTI JOIN _link_fp f USING (unique_id)"
    ).fetchall()[0][0]
    return {
        "records_new": int(counts.get("new", 0)),
        "records_changed": int(counts.get("changed", 0)),
        "records_unchanged": int(counts.get("unchanged", 0) + counts.get("name_frequency", 0)),
        "records_rescored_name_rarer": int(counts.get("name_frequency", 0)),
        "records_gone": int(gone),
    }


def _register(db_api, name: str):
    return db_api.register(name, table_name=name)


def _union_predictions(conn, tables: list[str], out: str) -> None:
    if not tables:
        conn.execute(f"""CREATE OR REPLACE TABLE {out} AS SELECT NULL::VARCHAR unique_id_l,
            NULL::VARCHAR unique_id_r, NULL::DOUBLE match_probability, NULL::DOUBLE match_weight
            WHERE false""")
        return
    union = " UNION ALL BY NAME ".join(f"SELECT * FROM {t}" for t in tables)
    conn.execute(f"CREATE OR REPLACE VIEW {out} AS {union}")


@dataclass
class Scored:
    predictions_table: str  # splink_work table: every scored pair at or above CARRY
    linker: object
    pairs_scored: int  # pairs found by blocking and scored this run (>= CARRY)
    pairs_carried: int  # pairs of unchanged records carried over (re-scored as pairs)
    seconds: float
    phases: dict = field(default_factory=dict)  # seconds per part of the scoring


def _gamma_columns(conn, table: str) -> list[str]:
    return [
        r[0] for r in conn.execute(f"DESCRIBE {table}").fetchall() if r[0].startswith("gamma_")
    ] + ["match_key"]


def _keep_new_pairs(conn, table: str) -> None:
    """TEMP _link_new_pairs: the pairs of `table` (ids in order, their comparison levels)."""
    gammas = ", ".join(_gamma_columns(conn, table))
    conn.execute(f"""CREATE OR REPLACE TEMP TABLE _link_new_pairs AS
        SELECT least(unique_id_l, unique_id_r) AS unique_id_l,
               greatest(unique_id_l, unique_id_r) AS unique_id_r, {gammas}
        FROM {table}""")


def score_full(
    db_api, model_settings: dict, match_threshold: float, extra_rules, spark=None
) -> Scored:
    """Every candidate pair of link.person_records (Splink predict), kept down to CARRY; on Spark
    when `spark` (a spark_engine.SparkLinkage) is given."""
    t0 = time.time()
    conn = db_api.duckdb_con
    W = matching.SPLINK_SCHEMA
    if spark is None:
        linker, df_pred = matching.predict(
            db_api, model_settings, carry_threshold(match_threshold), extra_rules
        )
        physical = df_pred.physical_name
    else:
        linker, physical, _n = matching.predict_on_spark(
            spark, db_api, model_settings, carry_threshold(match_threshold), extra_rules
        )
    conn.execute(f"CREATE OR REPLACE VIEW {W}.sd_predictions AS SELECT * FROM {physical}")
    n = conn.execute(f"SELECT count(*) FROM {W}.sd_predictions").fetchall()[0][0]
    _keep_new_pairs(conn, f"{W}.sd_predictions")
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE _link_carried AS SELECT * FROM _link_new_pairs WHERE false"
    )
    return Scored(
        f"{W}.sd_predictions",
        linker,
        int(n),
        0,
        time.time() - t0,
        {"all_pairs": round(time.time() - t0, 2)},
    )


def score_carried(db_api, linker, tf_table: str, out: str) -> int:
    """Score the stored pairs of two unchanged records (TEMP _link_carried: ids and comparison
    levels) with this delivery's name frequencies: their comparison levels cannot have changed (the
    records' linkage fields and the model are the same), so Splink's own prediction SQL runs on the
    stored levels, the records' values and the current frequencies, without comparing strings again:
    the same numbers a full run computes."""
    from splink.internals.pipeline import CTEPipeline
    from splink.internals.predict import predict_from_comparison_vectors_sqls_using_settings

    conn = db_api.duckdb_con
    W = matching.SPLINK_SCHEMA
    sqls = predict_from_comparison_vectors_sqls_using_settings(linker._settings_obj)
    text = " ".join(q["sql"] for q in sqls)
    # the records' values the prediction SQL keeps (matching and retained columns), nothing more
    cols = [
        r[0]
        for r in conn.execute(f"DESCRIBE {W}.sd_person_records").fetchall()
        if r[0] != "nama" and re.search(rf"\b{re.escape(r[0])}_l\b", text)
    ] + ["nama"]
    values = ", ".join(f'l."{c}" AS "{c}_l", r."{c}" AS "{c}_r"' for c in cols)
    levels = ", ".join(f"c.{g}" for g in _gamma_columns(conn, "_link_carried"))
    conn.execute(f"""CREATE OR REPLACE TABLE {W}.sd_carried_vectors AS
        SELECT {levels}, {values}, tl.tf_nama AS tf_nama_l, tr.tf_nama AS tf_nama_r
        FROM _link_carried c
        JOIN {W}.sd_person_records l ON l.unique_id = c.unique_id_l
        JOIN {W}.sd_person_records r ON r.unique_id = c.unique_id_r
        LEFT JOIN {tf_table} tl ON tl.nama = l.nama
        LEFT JOIN {tf_table} tr ON tr.nama = r.nama""")
    vectors = db_api.table_to_splink_dataframe(
        "__splink__df_comparison_vectors", f"{W}.sd_carried_vectors"
    )
    pipeline = CTEPipeline([vectors])
    pipeline.enqueue_list_of_sqls(sqls)
    scored = db_api.sql_pipeline_to_splink_dataframe(pipeline)
    conn.execute(f"CREATE OR REPLACE VIEW {out} AS SELECT * FROM {scored.physical_name}")
    return conn.execute(f"SELECT count(*) FROM {out}").fetchall()[0][0]


def score_incremental(
    db_api, model_settings: dict, match_threshold: float, extra_rules, spark=None
) -> Scored:
    """New/changed records against the others (predict_between) and among themselves
    (predict_within), with the name frequencies of the whole delivery; the stored pairs of unchanged
    records scored from their stored comparison levels (score_carried). Needs TEMP _link_class.
    With `spark` (a spark_engine.SparkLinkage) predict_within / predict_between run on Spark and
    their pairs come back into the warehouse; the carried pairs are scored on the warehouse."""
    from splink import Linker

    t0 = time.time()
    phases: dict = {}
    conn = db_api.duckdb_con
    W = matching.SPLINK_SCHEMA
    carry = carry_threshold(match_threshold)

    def lap(name: str) -> None:
        phases[name] = round(time.time() - t0 - sum(phases.values()), 2)

    model_settings = matching.with_extra_blocking(model_settings, extra_rules)
    sdf_all = matching.register_person_records(db_api, model_settings=model_settings)
    linker = Linker(sdf_all, model_settings, log_level=logging.WARNING)
    # this delivery's name frequencies, as predict() computes them
    tf_table = linker.table_management.compute_tf_table("nama").physical_name
    lap("records_and_name_frequencies")
    conn.execute(f"""CREATE OR REPLACE TABLE {W}.sd_rescore AS SELECT p.* FROM {W}.sd_person_records p
        SEMI JOIN (SELECT unique_id FROM _link_class WHERE status <> 'unchanged') c USING (unique_id)
        ORDER BY unique_id""")
    n_rescore = conn.execute(f"SELECT count(*) FROM {W}.sd_rescore").fetchall()[0][0]
    # the unchanged records: a view (a copy of almost every record costs more than the scoring)
    conn.execute(f"""CREATE OR REPLACE VIEW {W}.sd_keep AS SELECT p.* FROM {W}.sd_person_records p
        ANTI JOIN {W}.sd_rescore r USING (unique_id)""")
    parts = []
    if n_rescore and spark is not None:
        spark_linker = spark.linker(spark.records(), model_settings)
        rescore = spark.records(f"SELECT * FROM {W}.sd_rescore", "sd_rescore")
        within = spark_linker.inference.predict_within(
            rescore, threshold_match_probability=carry, warning_mode="never"
        )
        spark.to_warehouse(within, f"{W}.sd_spark_within")
        parts.append(f"{W}.sd_spark_within")
        if n_rescore < conn.execute(f"SELECT count(*) FROM {W}.sd_person_records").fetchall()[0][0]:
            between = spark_linker.inference.predict_between(
                rescore,
                spark.records(f"SELECT * FROM {W}.sd_keep", "sd_keep"),
                threshold_match_probability=carry,
                warning_mode="never",
            )
            spark.to_warehouse(between, f"{W}.sd_spark_between")
            parts.append(f"{W}.sd_spark_between")
    elif n_rescore:
        sdf_rescore = _register(db_api, "sd_rescore")
        within = linker.inference.predict_within(
            sdf_rescore, threshold_match_probability=carry, warning_mode="never"
        )
        parts.append(within.physical_name)
        if n_rescore < conn.execute(f"SELECT count(*) FROM {W}.sd_person_records").fetchall()[0][0]:
            between = linker.inference.predict_between(
                sdf_rescore,
                _register(db_api, "sd_keep"),
                threshold_match_probability=carry,
                warning_mode="never",
            )
            parts.append(between.physical_name)
    _union_predictions(conn, parts, f"{W}.sd_scored")
    scored = conn.execute(f"SELECT count(*) FROM {W}.sd_scored").fetchall()[0][0]
    lap("new_and_changed_records")
    # the stored pairs whose two records are unchanged
    levels = ", ".join(f"s.{g}" for g in _gamma_columns(conn, f"{STATE_SCHEMA}.pairs"))
    conn.execute(f"""CREATE OR REPLACE TEMP TABLE _link_carried AS
        SELECT s.unique_id_l, s.unique_id_r, {levels}
        FROM {STATE_SCHEMA}.pairs s
        JOIN _link_class a ON a.unique_id = s.unique_id_l AND a.status = 'unchanged'
        JOIN _link_class b ON b.unique_id = s.unique_id_r AND b.status = 'unchanged'""")
    carried = conn.execute("SELECT count(*) FROM _link_carried").fetchall()[0][0]
    if carried:
        score_carried(db_api, linker, tf_table, f"{W}.sd_carried")
    lap("carried_pairs")
    _union_predictions(
        conn, [f"{W}.sd_scored"] + [f"{W}.sd_carried"] * bool(carried), f"{W}.sd_predictions"
    )
    if scored:
        _keep_new_pairs(conn, f"{W}.sd_scored")
    else:
        conn.execute(
            "CREATE OR REPLACE TEMP TABLE _link_new_pairs AS "
            "SELECT * FROM _link_carried WHERE false"
        )
    return Scored(
        f"{W}.sd_predictions", linker, int(scored), int(carried), time.time() - t0, phases
    )


def write_state(conn, plan: Plan, run_id: str | None) -> dict:
    """Replace link_state in one transaction: records (fingerprint, reference name frequency),
    pairs (carried + newly found at or above CARRY), meta (configuration, mode). Needs TEMP
    _link_class (incremental) or _link_fp (full), _link_new_pairs and _link_carried."""
    if plan.mode == "full":
        records_sql = "SELECT unique_id, fp, tf_nama AS ref_tf_nama FROM _link_fp"
    else:
        # the reference frequency moves only for records whose pairs were found by blocking now
        records_sql = """SELECT unique_id, fp,
            CASE WHEN status = 'unchanged' THEN old_ref_tf_nama ELSE tf_nama END AS ref_tf_nama
            FROM _link_class"""
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {STATE_SCHEMA}")
        conn.execute(
            f"CREATE OR REPLACE TABLE {STATE_SCHEMA}.records AS {records_sql} ORDER BY unique_id"
        )
        conn.execute(f"""CREATE OR REPLACE TABLE {STATE_SCHEMA}.pairs AS
            SELECT * FROM (SELECT * FROM _link_new_pairs UNION ALL BY NAME SELECT * FROM _link_carried)
            ORDER BY unique_id_l, unique_id_r""")
        conn.execute(f"""CREATE OR REPLACE TABLE {STATE_SCHEMA}.meta (
            configuration VARCHAR, mode VARCHAR, reason VARCHAR, counts VARCHAR, run_id VARCHAR,
            written_at TIMESTAMP)""")
        conn.execute(
            f"INSERT INTO {STATE_SCHEMA}.meta VALUES (?, ?, ?, ?, ?, now())",
            [
                json.dumps(plan.configuration, sort_keys=True),
                plan.mode,
                plan.reason,
                json.dumps(plan.counts, sort_keys=True),
                run_id,
            ],
        )
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    n_rec, n_pairs = conn.execute(
        f"SELECT (SELECT count(*) FROM {STATE_SCHEMA}.records), "
        f"(SELECT count(*) FROM {STATE_SCHEMA}.pairs)"
    ).fetchall()[0]
    for t in ("_link_fp", "_link_class", "_link_new_pairs", "_link_carried"):
        conn.execute(f"DROP TABLE IF EXISTS {t}")
    return {"state_records": int(n_rec), "state_pairs": int(n_pairs)}


def score(
    db_api,
    model_settings: dict,
    match_threshold: float,
    name_jw: float,
    extra_rules,
    full_requested: bool,
    spark=None,
) -> tuple[Plan, Scored]:
    """Choose the mode (choose_mode), classify the records and score the pairs: the plan (mode,
    reason, counts) and the scored pairs (a table in the Splink session's scratch schema). With
    `spark` (a spark_engine.SparkLinkage) Splink's predictions run on Spark (docs/spark.md)."""
    conn = db_api.duckdb_con
    current = configuration(model_settings, extra_rules, match_threshold, name_jw)
    plan = choose_mode(conn, current, full_requested)
    columns = linkage_columns(conn, model_settings, extra_rules, name_jw)
    if plan.mode == "incremental":
        plan.counts = classify(conn, columns)
        scored = score_incremental(db_api, model_settings, match_threshold, extra_rules, spark)
    else:
        if _state_exists(conn):  # what changed since the previous linkage (for the metadata)
            plan.counts = classify(conn, columns)
        else:
            _fingerprints(conn, columns)
            n = conn.execute("SELECT count(*) FROM _link_fp").fetchall()[0][0]
            plan.counts = {
                "records_new": int(n),
                "records_changed": 0,
                "records_unchanged": 0,
                "records_rescored_name_rarer": 0,
                "records_gone": 0,
            }
        scored = score_full(db_api, model_settings, match_threshold, extra_rules, spark)
    plan.counts.update({"pairs_scored": scored.pairs_scored, "pairs_carried": scored.pairs_carried})
    return plan, scored
