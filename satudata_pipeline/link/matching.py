"""Person records, the deterministic NIK pass and Splink's probabilistic pairs (DuckDB SQL)."""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import duckdb

from satudata_pipeline import config
from satudata_pipeline.contract.schema import LINKED_COLUMNS, column_type
from satudata_pipeline.link import splink_settings as ss

if TYPE_CHECKING:
    from splink import DuckDBAPI
from satudata_pipeline.warehouse import columns, one_row, scalar

log = logging.getLogger(__name__)

# Columns of `link.person_records` taken from `clean.<source>`.
CLEAN_COLUMNS: list[tuple[str, str]] = [(c, column_type(c)) for c in LINKED_COLUMNS]

_NAME_RE = re.compile(r"^[a-z0-9_]+$")

# House, block and unit numbers of a street line: two addresses on one street are one home only
# when these agree (JL BERINGIN NO 134 and JL BERINGIN NO 52 are two houses).
ALAMAT_NOMOR_SQL = "array_to_string(regexp_extract_all(upper(coalesce(alamat, '')), '[0-9]+'), ' ')"


def build_person_records(conn: duckdb.DuckDBPyConnection, source_names: list[str]) -> int:
    """(Re)create `link.person_records`: every row of every `clean.<source>`, one schema,
    `unique_id = source || ':' || record_id`, plus the derived columns the model compares."""
    if not source_names:
        raise ValueError("person_records needs at least one clean source")
    selects = []
    for name in source_names:
        if not _NAME_RE.match(name):
            raise ValueError(f"invalid source name {name!r}")
        present = set(columns(conn, f"clean.{name}"))
        if not present:
            raise ValueError(f"table clean.{name} does not exist (source {name!r})")
        missing = [col for col, _ in CLEAN_COLUMNS if col not in present]
        if missing:  # every clean table is created from contract/schema.py: another shape is a bug
            raise ValueError(
                f"table clean.{name} lacks column(s) of the clean schema: {', '.join(missing)}"
            )
        cols = []
        for col, typ in CLEAN_COLUMNS:
            if col == "source":
                cols.append(f"'{name}'::VARCHAR AS source")
            else:
                cols.append(f'TRY_CAST("{col}" AS {typ}) AS "{col}"')
        selects.append(f'SELECT {", ".join(cols)} FROM clean."{name}"')
    union = "\nUNION ALL\n".join(selects)
    conn.execute("CREATE SCHEMA IF NOT EXISTS link")
    conn.execute(
        f"""
        CREATE OR REPLACE TABLE link.person_records AS
        WITH u AS ({union}),
        n AS (
            SELECT *,
                NULLIF(trim(regexp_replace(upper(coalesce(nama, '')), '\\s+', ' ', 'g')), '')
                    AS nama_norm
            FROM u
        ),
        -- MATERIALIZED: the block-size CTEs read b five times more; inlined, DuckDB would split
        -- names and run the regexes six times over (1M persons: 20 s -> 16 s, same rows, same order)
        b AS MATERIALIZED (
        SELECT
            source || ':' || record_id AS unique_id,
            * EXCLUDE (nama, nama_norm, nik, no_kk, nik_valid, jenis_kelamin, alamat),
            nama_norm AS nama,
            CASE WHEN regexp_full_match(nik, '[0-9]{{16}}') THEN nik END AS nik,
            coalesce(nik_valid, false) AND regexp_full_match(coalesce(nik, ''), '[0-9]{{16}}')
                AS nik_valid,
            CASE WHEN regexp_full_match(no_kk, '[0-9]{{16}}') THEN no_kk END AS no_kk,
            CASE WHEN jenis_kelamin IN ('L', 'P') THEN jenis_kelamin END AS jenis_kelamin,
            NULLIF(trim(upper(alamat)), '') AS alamat,
            list_sort(list_distinct(string_split(nama_norm, ' '))) AS nama_tokens,
            array_to_string(list_sort(list_distinct(string_split(nama_norm, ' '))), ' ')
                AS nama_sorted,
            string_split(nama_norm, ' ')[1] AS nama_depan,
            CASE WHEN len(string_split(nama_norm, ' ')) > 1
                 THEN string_split(nama_norm, ' ')[-1] END AS nama_belakang,
            {ALAMAT_NOMOR_SQL} AS alamat_nomor,
            year(tanggal_lahir) AS tahun_lahir,
            CASE WHEN regexp_full_match(nik, '[0-9]{{16}}') THEN substr(nik, 7, 6) END AS nik_dob
        FROM n
        ), {block_sizes_sql("b")}
        ORDER BY unique_id
        """
    )
    return scalar(conn, "SELECT count(*) FROM link.person_records")


def block_sizes_sql(records: str) -> str:
    """CTEs and the final SELECT adding to `records` (a CTE named before) one column per capped
    blocking rule (splink_settings.CAPPED_BLOCKS): whether the record's block holds at most
    BLOCK_CAP records (block sizes by GROUP BY); NULL when a key is NULL (in no block of that
    rule). A flag, not the size: a record's linkage fingerprint (link/incremental.py) changes only
    when its block crosses the cap, not with every record that joins it."""
    ctes, cols, joins = [], [], []
    for i, (name, keys) in enumerate(ss.CAPPED_BLOCKS.items()):
        key_cols = ", ".join(f"{k} AS k{j}" for j, k in enumerate(keys))
        not_null = " AND ".join(f"({k}) IS NOT NULL" for k in keys)
        ctes.append(
            f"s{i} AS (SELECT {key_cols}, count(*)::INTEGER AS n FROM {records} "
            f"WHERE {not_null} GROUP BY ALL)"
        )
        on = " AND ".join(f"s{i}.k{j} = {_qualify(k, records)}" for j, k in enumerate(keys))
        joins.append(f"LEFT JOIN s{i} ON {on}")
        cols.append(f"s{i}.n <= {ss.BLOCK_CAP} AS {ss.block_cap_column(name)}")
    if not ctes:
        return f"SELECT * FROM {records}"
    return (
        ", ".join(ctes)
        + f" SELECT {records}.*, {', '.join(cols)} FROM {records} "
        + " ".join(joins)
    )


def _qualify(expr: str, alias: str) -> str:
    """Prefix the column names of a key expression with `alias.` (SQL function names stay)."""
    return re.sub(r"\b([a-z_]+)\b(?!\s*\()", rf"{alias}.\1", expr)


# --------------------------------------------------------------------------------------------
# Deterministic pass

NAMES_AGREE_SQL = (
    """(
    jaro_winkler_similarity(l.nama, r.nama) >= {jw}
    OR """
    + ss.one_name_sql("l.nama", "r.nama")
    + """
    OR l.nama_sorted = r.nama_sorted
    OR len(list_intersect(l.nama_tokens, r.nama_tokens))
       = least(len(l.nama_tokens), len(r.nama_tokens))
)"""
)


# A name with more words than the other (MUHAMMAD / MUHAMMAD RIZKY, FARHAN / FARHAN RAMADHAN)
# agrees only as "contained": weak evidence, and none at all for the commonest single names. Such
# a pair living in two known kelurahan is how a NIK copied from a namesake born the same day looks
# (the NIK is the namesake's, the name and address the record's own person's), not one person: it
# is not conclusive and is left to the model, which weighs the NIK against the address (and a
# cluster holding two residents' NIKs is then split at its weakest links, link/clusters.py).
WORDS_AND_PLACE_DIFFER_SQL = (
    "(len(l.nama_tokens) <> len(r.nama_tokens) "
    "AND coalesce(l.kode_kelurahan <> r.kode_kelurahan, false))"
)


def deterministic_pairs_sql(name_jw: float = 0.9) -> str:
    """Conclusive evidence: the same valid NIK, the same birth date and agreeing names
    (Jaro-Winkler >= name_jw, the same words reordered, or one name's words within the other),
    unless the names differ in their number of words and the records live in two kelurahan
    (WORDS_AND_PLACE_DIFFER_SQL). A NIK borrowed by a family member or copied from a namesake fails
    these conditions and is left to Splink."""
    return f"""
        SELECT l.unique_id AS unique_id_l, r.unique_id AS unique_id_r
        FROM link.person_records l
        JOIN link.person_records r ON l.nik = r.nik AND l.unique_id < r.unique_id
        WHERE l.nik_valid AND r.nik_valid
          AND l.tanggal_lahir = r.tanggal_lahir
          AND {NAMES_AGREE_SQL.format(jw=name_jw)}
          AND NOT {WORDS_AND_PLACE_DIFFER_SQL}
    """


VETO_SQL = ss.as_join_sql(ss.VETO)


def _kecamatan_digits(alias: str) -> str:
    return f"regexp_replace(coalesce({alias}.kode_kecamatan, ''), '[^0-9]', '', 'g')"


# Two valid NIKs that differ the way two people's NIKs differ (docs/linkage.md, "Two people's NIKs":
# a NIK is region + DDMMYY(+40) + a serial restarting per kecamatan and birth date):
# - only the region digits (3-6) differ and each record lives in its own NIK's kecamatan: two people
#   born the same day in two kecamatan, not a typo that happens to land on the record's own address;
# - only the serial differs and both serials are among the first ten of their day and kecamatan
#   (0001 / 0002: two people born the same day in one kecamatan, twins included).
# Validity already means each NIK fits its own record's birth date and sex (clean/nik.py). For such
# a pair the NIK's similarity is no evidence, and the difference is evidence of two people: the pair
# is weighed like two different valid NIKs at the model's floor (TWO_PEOPLE_NIK_WEIGHT, the
# rule-of-three floor of link/model.py: log2(1/1000)), so a common name and a birth date alone
# (MUHAMMAD, born 2011-07-18) no longer make one person of two.
TWO_PEOPLE_NIK_WEIGHT = math.log2(1 / 1000)
TWO_PEOPLE_NIKS_SQL = f"""(
    l.nik_valid AND r.nik_valid AND l.nik <> r.nik AND (
        (left(l.nik, 2) = left(r.nik, 2) AND substr(l.nik, 7) = substr(r.nik, 7)
         AND {_kecamatan_digits("l")} = left(l.nik, 6) AND {_kecamatan_digits("r")} = left(r.nik, 6))
        OR (left(l.nik, 12) = left(r.nik, 12)
            AND right(l.nik, 4) < '0010' AND right(r.nik, 4) < '0010')
    )
)"""


def probability_sql(weight: str) -> str:
    """Splink's match probability for a match weight (log2 odds, prior included)."""
    return f"(1.0 / (1.0 + pow(2.0, -({weight}))))"


# --------------------------------------------------------------------------------------------
# Splink on the warehouse connection

SPLINK_SCHEMA = "splink_work"


@contextmanager
def splink_session(conn: duckdb.DuckDBPyConnection) -> Iterator[DuckDBAPI]:
    """A DuckDBAPI on the warehouse connection whose scratch tables live in schema splink_work,
    dropped afterwards (the connection's default schema is restored to main)."""
    from splink import DuckDBAPI

    conn.execute(f"DROP SCHEMA IF EXISTS {SPLINK_SCHEMA} CASCADE")
    db_api = DuckDBAPI(connection=conn, output_schema=SPLINK_SCHEMA)
    try:
        yield db_api
    finally:
        try:
            conn.execute("SET schema = 'main'")
            conn.execute(f"DROP SCHEMA IF EXISTS {SPLINK_SCHEMA} CASCADE")
        except Exception:  # pragma: no cover - best effort cleanup
            log.exception("could not drop splink scratch schema")


@dataclass
class PredictionResult:
    n_deterministic: int
    n_probabilistic: int
    n_vetoed: int
    predictions_table: str | None  # table with Splink's full output (inside the session)


def write_match_pairs(
    conn: duckdb.DuckDBPyConnection,
    predictions_table: str | None,
    match_threshold: float,
    name_jw: float = 0.9,
) -> PredictionResult:
    """(Re)create `link.match_pairs` from the deterministic pass and a Splink prediction table.

    Probabilistic pairs whose names AND birth dates both disagree are vetoed (a record linked by
    address and family card alone is a family member, not the same person). Pairs of two people's
    NIKs (`TWO_PEOPLE_NIKS_SQL`) are scored without the NIK comparison's positive weight and with
    `TWO_PEOPLE_NIK_WEIGHT` (a cannot-link unless the rest of the evidence outweighs two different
    NIKs).
    `match_probability_without_nik` is every pair's probability without the NIK's positive weight:
    how strongly the pair stands without a NIK (the removal rule's evidence, link/clusters.py)."""
    conn.execute("CREATE SCHEMA IF NOT EXISTS link")
    conn.execute(f"CREATE OR REPLACE TEMP TABLE _det_pairs AS {deterministic_pairs_sql(name_jw)}")
    if predictions_table is None:
        prob_sql = """SELECT NULL::VARCHAR unique_id_l, NULL::VARCHAR unique_id_r,
                      NULL::DOUBLE match_probability, NULL::DOUBLE match_weight,
                      NULL::DOUBLE match_probability_without_nik,
                      NULL::BOOLEAN vetoed WHERE false"""
    else:
        pred_cols = {r[0] for r in conn.execute(f"DESCRIBE {predictions_table}").fetchall()}
        # The NIK comparison's match weight: Splink 5 keeps it as mw_nik (log2 of its Bayes factor)
        # with retain_intermediate_calculation_columns. Only its positive part is taken out: a NIK
        # that disagrees keeps weighing against the pair. Without the column the probability
        # "without the NIK" would silently equal the full one, and the removal rules that require a
        # link to hold without the NIK would accept a link made by the NIK alone: fail instead.
        if "mw_nik" not in pred_cols:
            raise RuntimeError(
                "Splink's predictions carry no mw_nik column (the NIK comparison's "
                "match weight): the probability without the NIK cannot be computed"
            )
        nik_w = "greatest(coalesce(p.mw_nik, 0), 0)"
        prob_sql = f"""
            SELECT unique_id_l, unique_id_r,
                   CASE WHEN two_people THEN p_two_people ELSE match_probability END
                       AS match_probability,
                   CASE WHEN two_people THEN w_without_nik + {TWO_PEOPLE_NIK_WEIGHT}
                        ELSE match_weight END AS match_weight,
                   CASE WHEN two_people THEN p_two_people ELSE p_without_nik END
                       AS match_probability_without_nik, vetoed
            FROM (SELECT *,
                         {probability_sql(f"w_without_nik + {TWO_PEOPLE_NIK_WEIGHT}")} AS p_two_people
                  FROM (
                SELECT least(p.unique_id_l, p.unique_id_r) AS unique_id_l,
                       greatest(p.unique_id_l, p.unique_id_r) AS unique_id_r,
                       p.match_probability, p.match_weight,
                       p.match_weight - ({nik_w}) AS w_without_nik,
                       {probability_sql(f"p.match_weight - ({nik_w})")} AS p_without_nik,
                       coalesce({TWO_PEOPLE_NIKS_SQL}, false) AS two_people,
                       ({VETO_SQL}) AS vetoed
                FROM {predictions_table} p
                JOIN link.person_records l ON l.unique_id = p.unique_id_l
                JOIN link.person_records r ON r.unique_id = p.unique_id_r
                WHERE p.match_probability >= {float(match_threshold)}
            ))
            WHERE (CASE WHEN two_people THEN p_two_people ELSE match_probability END)
                  >= {float(match_threshold)}
        """
    conn.execute(f"CREATE OR REPLACE TEMP TABLE _prob_pairs AS {prob_sql}")
    conn.execute(
        """
        CREATE OR REPLACE TABLE link.match_pairs AS
        SELECT d.unique_id_l, d.unique_id_r,
               coalesce(p.match_probability, 1.0) AS match_probability,
               p.match_weight,
               'exact_nik' AS link_method,
               p.match_probability_without_nik
        FROM _det_pairs d
        LEFT JOIN _prob_pairs p USING (unique_id_l, unique_id_r)
        UNION ALL
        SELECT p.unique_id_l, p.unique_id_r, p.match_probability, p.match_weight,
               'probabilistic' AS link_method, p.match_probability_without_nik
        FROM _prob_pairs p
        ANTI JOIN _det_pairs d USING (unique_id_l, unique_id_r)
        WHERE NOT p.vetoed
        ORDER BY unique_id_l, unique_id_r
        """
    )
    n_det = scalar(conn, "SELECT count(*) FROM _det_pairs")
    n_prob = scalar(
        conn, "SELECT count(*) FROM link.match_pairs WHERE link_method = 'probabilistic'"
    )
    n_veto = scalar(
        conn,
        "SELECT count(*) FROM _prob_pairs p ANTI JOIN _det_pairs d USING (unique_id_l, unique_id_r)"
        " WHERE p.vetoed",
    )
    conn.execute("DROP TABLE IF EXISTS _det_pairs")
    conn.execute("DROP TABLE IF EXISTS _prob_pairs")
    return PredictionResult(n_det, n_prob, n_veto, predictions_table)


def scoring_columns(conn: duckdb.DuckDBPyConnection, model_settings: dict) -> list[str]:
    """The columns of `link.person_records` a prediction with `model_settings` reads: the id and
    every column its comparisons, blocking rules or retained columns name (`x`, `x_l`, `x_r`)."""
    text = json.dumps(model_settings)
    cols = [r[0] for r in conn.execute("DESCRIBE link.person_records").fetchall()]
    return ["unique_id"] + [
        c for c in cols if c != "unique_id" and re.search(rf"\b{re.escape(c)}(?:_[lr])?\b", text)
    ]


def register_person_records(
    db_api,
    name: str = "sd_person_records",
    limit: int | None = None,
    model_settings: dict | None = None,
):
    """Copy `link.person_records` into the scratch schema and register it with Splink (Splink
    looks columns up by unqualified table name). With `model_settings` only the columns a
    prediction reads (scoring_columns): Splink joins every compared pair to both its records and
    carries what the table holds, so the 26 of 50 columns it never reads cost a third of the
    scoring time (1M persons, 2 GB, one part: 53 -> 37 s; benchmarks/results/FINDINGS-2026-12-04.md).
    `limit`: a few rows are enough for a linker that only draws the model's charts."""
    conn = db_api.duckdb_con
    tail = f" LIMIT {int(limit)}" if limit is not None else ""
    select = (
        "*"
        if model_settings is None
        else ", ".join(f'"{c}"' for c in scoring_columns(conn, model_settings))
    )
    conn.execute(
        f"CREATE OR REPLACE TABLE {SPLINK_SCHEMA}.{name} AS "
        f"SELECT {select} FROM link.person_records{tail}"
    )
    return db_api.register(name, table_name=name)


def block_pairs(conn: duckdb.DuckDBPyConnection, keys: tuple[str, ...]) -> int:
    """Pairs a rule on `keys` (columns or SQL expressions of link.person_records) makes: the sum
    of n(n-1)/2 over its blocks, by GROUP BY (no join)."""
    not_null = " AND ".join(f"({k}) IS NOT NULL" for k in keys)
    return scalar(
        conn,
        f"SELECT coalesce(sum(n * (n - 1) / 2), 0)::BIGINT FROM (SELECT count(*) AS n "
        f"FROM link.person_records WHERE {not_null} GROUP BY {', '.join(keys)})",
    )


def valid_nik_share(conn: duckdb.DuckDBPyConnection) -> float:
    """The share of `link.person_records` with a valid NIK (1.0 for no records): below
    `ss.SPARSE_ID_NIK_SHARE` the delivery is one without a strong identifier."""
    n, with_nik = one_row(
        conn, "SELECT count(*), count(*) FILTER (WHERE nik_valid) FROM link.person_records"
    )
    return with_nik / n if n else 1.0


def sparse_id_blocking(conn: duckdb.DuckDBPyConnection) -> tuple[list, dict]:
    """The extra prediction rules for a delivery without a strong identifier
    (splink_settings.SPARSE_ID_BLOCKING_COLUMNS): none when at least SPARSE_ID_NIK_SHARE of the
    records carry a valid NIK; else each rule that makes at most SPARSE_ID_MAX_PAIRS_PER_RECORD
    pairs per record. Returns (Splink rules, summary: counts only, for the asset metadata)."""
    from splink import block_on

    share = valid_nik_share(conn)
    summary: dict = {"share_with_valid_nik": round(share, 4), "rules_added": 0, "rules": []}
    if share >= ss.SPARSE_ID_NIK_SHARE:
        return [], summary
    n = scalar(conn, "SELECT count(*) FROM link.person_records")
    budget = ss.SPARSE_ID_MAX_PAIRS_PER_RECORD * n
    rules = []
    for i, keys in enumerate(ss.SPARSE_ID_BLOCKING_COLUMNS):
        pairs = block_pairs(conn, keys)
        used = pairs <= budget
        if used:
            rules.append(block_on(*keys))
        summary["rules"].append({"rule": i, "pairs": int(pairs), "used": used})
    summary["rules_added"] = len(rules)
    return rules, summary


# Splink predict in parts. The candidate pairs of all blocking rules are made once (ids only:
# Splink's compute_blocked_pairs_for_predict), then scored k x k parts at a time, each part the
# pairs whose hash falls in one k^2-th (register_blocked_pairs_for_predict + predict): a part
# compares about 1/k^2 of the pairs, so the memory of the comparisons follows the budget. The
# pairs grow with the records (capped blocks: a bounded number per record), so k^2 follows
# records / budget: k is the smallest with at most PREDICT_RECORDS_PER_GB records per GB of the
# memory budget (config.memory_gb()) per k^2 parts, and memory follows SATUDATA_MEMORY_GB, not the
# population. Every pair falls in exactly one part, so the union is the one-part prediction.
# History: until 2026-12-03 k grew with the records (6 x 6 at 3M, 2 GB: 697 s); then Splink's
# num_chunks_left/right with k^2 following the records (3 x 3 at 3M: 432 s, the same 4,198,782
# pairs). Those chunks re-ran every blocking join over each chunk's records (the join inputs are
# the records of one chunk per side, k^2 times: 2Nk record scans), so blocking cost grew with k;
# blocking once costs one pass (1M persons, 2 x 2: 182 s -> 149 s for the same 1,384,423 pairs,
# on a shared machine; benchmarks/results/FINDINGS-2026-12-03-session2.md). Then (2026-12-04) the
# records Splink joins carry only the columns scoring reads (register_person_records), and one part
# proved the fastest at the same peak: DuckDB keeps the joins within its memory limit by spilling,
# while each part re-reads the records it touches (1M persons, 2 GB, 10.2M candidate pairs: one
# part 37 s, four parts 53-68 s, peak RSS 2.1 GB both; benchmarks/results/FINDINGS-2026-12-04.md).
# But what DuckDB spills grows with the pairs of a part, whatever the memory limit: the province in
# one part (20.1M records, ~110M candidate pairs, 8 GB) filled a disk with 59 GB free after 12
# minutes of scoring (2026-12-04, seed 607). So a part holds at most 1,000,000 records per GB of
# budget on average (about 5.6M candidate pairs per GB): 1M persons at 2 GB stay in one part, 3M
# at 2 GB and the province at 8 GB are scored in 2 x 2 parts (~28M pairs each at 11M, what one part
# of the 3M delivery held when it ran in one part at 2 GB), so the spill follows the budget too.
PREDICT_RECORDS_PER_GB = 1_000_000


def predict_chunks(n_records: int, memory_gb: float) -> int:
    """Chunks per side for Splink's predict: 1 while the records fit the memory budget, then the
    square root of how many times they exceed it (rounded up)."""
    per_chunk = max(1, int(PREDICT_RECORDS_PER_GB * memory_gb))
    return max(1, math.ceil(math.sqrt(n_records / per_chunk)))


def predict(
    db_api,
    model_settings: dict,
    match_threshold: float,
    extra_blocking_rules=(),
    chunks: int | None = None,
):
    """Score candidate pairs of `link.person_records` with the trained model (its prediction
    blocking rules, plus `extra_blocking_rules`: see sparse_id_blocking), blocked once and scored
    in `chunks` x `chunks` parts (default: predict_chunks for the records and config.memory_gb()).
    Returns (linker, SplinkDataFrame of predictions above `match_threshold`)."""
    from splink import Linker

    model_settings = with_extra_blocking(model_settings, extra_blocking_rules)
    sdf = register_person_records(db_api, model_settings=model_settings)
    if chunks is None:
        n = scalar(db_api.duckdb_con, f"SELECT count(*) FROM {SPLINK_SCHEMA}.sd_person_records")
        chunks = predict_chunks(n, config.memory_gb())
    linker = Linker(sdf, model_settings, log_level=logging.WARNING)
    if chunks <= 1:
        df_pred = linker.inference.predict(
            threshold_match_probability=match_threshold, warning_mode="never"
        )
        return linker, df_pred
    return linker, _predict_in_parts(db_api, linker, match_threshold, chunks * chunks)


_RULE_COLUMN = re.compile(r'\b[lr]\."?([A-Za-z_][A-Za-z0-9_]*)"?')


def compute_blocked_pairs(db_api, linker, records: str = f"{SPLINK_SCHEMA}.sd_person_records"):
    """The candidate pairs Splink's `compute_blocked_pairs_for_predict` yields (the same pairs,
    each with the first rule that makes it: `match_key`), computed rule by rule on narrow tables.

    Splink joins the whole records table once per rule and drops the pairs an earlier rule made
    inside the join (`NOT (rule 0 OR rule 1 ...)`), so every rule's join carries the columns of
    every earlier rule: at 11M persons (20M records) that blocking alone spilled 26 GB and took 18
    minutes. Here each rule joins only its own columns and a 4-byte surrogate of `unique_id` (its
    rank, so `l.unique_id < r.unique_id` keeps its meaning), the pairs of all rules are reduced
    to the first rule of each pair (min match_key), and the surrogates are turned back into ids.
    Dedupe only (the model's link type); exploding rules are not used by the model."""
    conn = db_api.duckdb_con
    settings = linker._settings_obj
    if settings._link_type != "dedupe_only":
        raise ValueError(f"compute_blocked_pairs handles dedupe_only, not {settings._link_type}")
    rules = settings._blocking_rules_to_generate_predictions
    cols_of = [
        sorted(set(_RULE_COLUMN.findall(r.blocking_rule_sql))) or ["unique_id"] for r in rules
    ]
    wanted = sorted({c for cs in cols_of for c in cs} - {"unique_id"})
    W = SPLINK_SCHEMA
    select = "".join(f', "{c}"' for c in wanted)
    conn.execute(f"""CREATE OR REPLACE TABLE {W}.sd_block_records AS
        SELECT (row_number() OVER (ORDER BY unique_id))::INTEGER AS _i, unique_id{select}
        FROM {records}""")
    conn.execute(
        f"CREATE OR REPLACE TABLE {W}.sd_block_pairs (match_key UTINYINT, il INTEGER, ir INTEGER)"
    )
    for rule, cols in zip(rules, cols_of, strict=True):
        side = ", ".join(["_i", *(f'"{c}"' for c in cols if c != "unique_id")])
        conn.execute(f"""INSERT INTO {W}.sd_block_pairs
            SELECT {int(rule.match_key)}, l._i, r._i
            FROM (SELECT {side} FROM {W}.sd_block_records) AS l
            JOIN (SELECT {side} FROM {W}.sd_block_records) AS r
              ON ({rule.blocking_rule_sql})
            WHERE l._i < r._i""")
    out = f"{W}.sd_blocked_pairs"
    conn.execute(f"""CREATE OR REPLACE TABLE {out} AS
        WITH first_rule AS (
            SELECT min(match_key) AS match_key, il, ir FROM {W}.sd_block_pairs GROUP BY il, ir)
        SELECT f.match_key::VARCHAR AS match_key, a.unique_id AS join_key_l,
               b.unique_id AS join_key_r
        FROM first_rule f
        JOIN {W}.sd_block_records a ON a._i = f.il
        JOIN {W}.sd_block_records b ON b._i = f.ir""")
    conn.execute(f"DROP TABLE {W}.sd_block_pairs")
    conn.execute(f"DROP TABLE {W}.sd_block_records")
    return db_api.table_to_splink_dataframe("__splink__blocked_pairs_narrow", out)


def _predict_in_parts(db_api, linker, match_threshold: float, parts: int):
    """Block once (compute_blocked_pairs), score the blocked pairs `parts` at a time (by the hash
    of the pair's ids); the predictions of all parts in one scratch table, as a SplinkDataFrame."""
    conn = db_api.duckdb_con
    blocked = compute_blocked_pairs(db_api, linker)
    part = f"{SPLINK_SCHEMA}.sd_blocked_part"
    out = f"{SPLINK_SCHEMA}.sd_predictions_in_parts"
    conn.execute(f"DROP TABLE IF EXISTS {out}")
    for i in range(parts):
        conn.execute(
            f"CREATE OR REPLACE TABLE {part} AS SELECT * FROM {blocked.physical_name} "
            f"WHERE hash(join_key_l, join_key_r) % {parts} = {i}"
        )
        linker.table_management.register_blocked_pairs_for_predict(
            db_api.table_to_splink_dataframe("__splink__blocked_part", part)
        )
        df = linker.inference.predict(
            threshold_match_probability=match_threshold, warning_mode="never"
        )
        if i == 0:
            conn.execute(f"CREATE TABLE {out} AS SELECT * FROM {df.physical_name}")
        else:
            conn.execute(f"INSERT INTO {out} SELECT * FROM {df.physical_name}")
        df.drop_table_from_database_and_remove_from_cache()
    conn.execute(f"DROP TABLE IF EXISTS {part}")
    blocked.drop_table_from_database_and_remove_from_cache(force_non_splink_table=True)
    return db_api.table_to_splink_dataframe("__splink__df_predict_in_parts", out)


def with_extra_blocking(model_settings: dict, extra_blocking_rules=()) -> dict:
    """The model's settings with the delivery's extra prediction rules (DuckDB SQL) appended."""
    if not extra_blocking_rules:
        return model_settings
    model_settings = dict(model_settings)
    model_settings["blocking_rules_to_generate_predictions"] = list(
        model_settings.get("blocking_rules_to_generate_predictions", [])
    ) + [r.get_blocking_rule("duckdb").as_dict() for r in extra_blocking_rules]
    return model_settings


def predict_on_spark(
    spark, db_api, model_settings: dict, match_threshold: float, extra_blocking_rules=()
):
    """predict() on Spark (`spark`: a spark_engine.SparkLinkage): the records go to Spark as Parquet,
    every candidate pair at or above `match_threshold` comes back into the warehouse table
    `splink_work.sd_spark_predictions` (Spark needs no chunks: it spills what does not fit).
    Returns (a DuckDB linker on the same settings, for the reports; the table; its rows)."""
    from splink import Linker

    model_settings = with_extra_blocking(model_settings, extra_blocking_rules)
    linker = spark.linker(spark.records(), model_settings)
    df_pred = linker.inference.predict(
        threshold_match_probability=match_threshold, warning_mode="never"
    )
    table = f"{SPLINK_SCHEMA}.sd_spark_predictions"
    n = spark.to_warehouse(df_pred, table)
    duck = Linker(
        register_person_records(db_api, model_settings=model_settings),
        model_settings,
        log_level=logging.WARNING,
    )
    return duck, table, n
