"""The Splink model specification, as plain readable configuration (no I/O here).

What the model compares for every candidate pair of person records (columns of
`link.person_records`, see docs/linkage.md):

| comparison      | levels (most to least similar)                                                 |
|-----------------|--------------------------------------------------------------------------------|
| nama            | exact (term-frequency adjusted) / same words reordered / Jaro-Winkler >= 0.94 / |
|                 | one name's words contained in the other / JW >= 0.85 / shares a word / else    |
| tanggal_lahir   | exact / one typed digit (Damerau-Levenshtein 1) / day-month swapped /          |
|                 | same year / else                                                               |
| jenis_kelamin   | exact / else                                                                   |
| nik             | exact but contradicted (borrowed NIK: names AND birth dates disagree; weight  |
|                 | fixed at 0) / exact / one typo (only where names do not disagree) / else      |
| no_kk           | exact / else                                                                   |
| alamat          | exact / Jaro-Winkler >= 0.90 / else                                            |
| kode_kelurahan  | exact / same kecamatan / else                                                  |

The NIK is the strongest single piece of evidence, but the registries hold NIKs borrowed from a
family member (same family card, different name and birth date) and mistyped NIKs. Both NIK levels
below therefore carry a guard in their SQL: an identical NIK whose names and birth dates both disagree
falls into a neutral level (weight 0, not trained) and a NIK one keystroke away only counts when the
names do not disagree. Names and birth dates then decide, as they should.
"""

from __future__ import annotations

import hashlib
import json

import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import SettingsCreator, block_on

SETTINGS_VERSION = "v1"

# Names "disagree" when they share no word and are not close as strings.
NAMES_DISAGREE = (
    "(len(list_intersect(nama_tokens_l, nama_tokens_r)) = 0 "
    "AND jaro_winkler_similarity(nama_l, nama_r) < 0.85)"
)
BIRTH_DATES_DISAGREE = (
    "(tanggal_lahir_l IS NOT NULL AND tanggal_lahir_r IS NOT NULL "
    "AND tanggal_lahir_l <> tanggal_lahir_r)"
)


def name_comparison() -> cl.CustomComparison:
    return cl.CustomComparison(
        output_column_name="nama",
        comparison_description="Normalised full name",
        comparison_levels=[
            cll.NullLevel("nama"),
            cll.ExactMatchLevel("nama").configure(tf_adjustment_column="nama"),
            cll.CustomLevel(
                "nama_sorted_l = nama_sorted_r", label_for_charts="Same words, other order"
            ),
            cll.CustomLevel(
                "jaro_winkler_similarity(nama_l, nama_r) >= 0.94",
                label_for_charts="Jaro-Winkler >= 0.94",
            ),
            cll.CustomLevel(
                "len(list_intersect(nama_tokens_l, nama_tokens_r)) "
                "= least(len(nama_tokens_l), len(nama_tokens_r))",
                label_for_charts="Words of one name contained in the other",
            ),
            cll.CustomLevel(
                "jaro_winkler_similarity(nama_l, nama_r) >= 0.85",
                label_for_charts="Jaro-Winkler >= 0.85",
            ),
            cll.CustomLevel(
                "len(list_intersect(nama_tokens_l, nama_tokens_r)) >= 1",
                label_for_charts="Shares at least one word",
            ),
            cll.ElseLevel(),
        ],
    )


def birth_date_comparison() -> cl.CustomComparison:
    return cl.CustomComparison(
        output_column_name="tanggal_lahir",
        comparison_description="Date of birth",
        comparison_levels=[
            cll.NullLevel("tanggal_lahir"),
            cll.ExactMatchLevel("tanggal_lahir").configure(
                label_for_charts="Exact date of birth"
            ),
            cll.CustomLevel(
                "damerau_levenshtein(CAST(tanggal_lahir_l AS VARCHAR), "
                "CAST(tanggal_lahir_r AS VARCHAR)) <= 1",
                label_for_charts="One digit typed differently",
            ),
            cll.CustomLevel(
                "month(tanggal_lahir_l) = day(tanggal_lahir_r) "
                "AND day(tanggal_lahir_l) = month(tanggal_lahir_r) "
                "AND year(tanggal_lahir_l) = year(tanggal_lahir_r)",
                label_for_charts="Day and month swapped",
            ),
            cll.CustomLevel(
                "year(tanggal_lahir_l) = year(tanggal_lahir_r)",
                label_for_charts="Same birth year",
            ),
            cll.ElseLevel(),
        ],
    )


def nik_comparison() -> cl.CustomComparison:
    return cl.CustomComparison(
        output_column_name="nik",
        comparison_description="NIK (16 digits after cleaning)",
        comparison_levels=[
            cll.NullLevel("nik"),
            cll.CustomLevel(
                f"nik_l = nik_r AND {NAMES_DISAGREE} AND {BIRTH_DATES_DISAGREE}",
                label_for_charts="Same NIK, but names and birth dates disagree (borrowed)",
            ).configure(
                m_probability=0.5, u_probability=0.5,
                fix_m_probability=True, fix_u_probability=True,
            ),
            cll.ExactMatchLevel("nik").configure(label_for_charts="Exact NIK"),
            cll.CustomLevel(
                f"damerau_levenshtein(nik_l, nik_r) <= 1 AND NOT {NAMES_DISAGREE}",
                label_for_charts="NIK one typo apart (names agree)",
            ),
            cll.ElseLevel(),
        ],
    )


def settings_creator(probability_two_random_records_match: float = 1e-5) -> SettingsCreator:
    """The Splink settings: dedupe over the union of all sources (within and between them)."""
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        probability_two_random_records_match=probability_two_random_records_match,
        comparisons=[
            name_comparison(),
            birth_date_comparison(),
            cl.ExactMatch("jenis_kelamin"),
            nik_comparison(),
            cl.ExactMatch("no_kk"),
            cl.CustomComparison(
                output_column_name="alamat",
                comparison_description="Street address line",
                comparison_levels=[
                    cll.NullLevel("alamat"),
                    cll.ExactMatchLevel("alamat"),
                    cll.JaroWinklerLevel("alamat", 0.90),
                    cll.ElseLevel(),
                ],
            ),
            cl.CustomComparison(
                output_column_name="kode_kelurahan",
                comparison_description="Kelurahan code",
                comparison_levels=[
                    cll.NullLevel("kode_kelurahan"),
                    cll.ExactMatchLevel("kode_kelurahan"),
                    cll.ExactMatchLevel("kode_kecamatan").configure(
                        label_for_charts="Same kecamatan"
                    ),
                    cll.ElseLevel(),
                ],
            ),
        ],
        blocking_rules_to_generate_predictions=PREDICTION_BLOCKING_RULES,
        retain_matching_columns=True,
        retain_intermediate_calculation_columns=True,
        additional_columns_to_retain=["source"],
        max_iterations=20,
        em_convergence=0.0001,
    )


# Candidate pairs scored by the model: a pair is scored when it agrees on any one of these.
PREDICTION_BLOCKING_RULES = [
    block_on("nik"),
    block_on("nama", "tanggal_lahir"),
    block_on("nama_sorted", "tahun_lahir"),
    block_on("tanggal_lahir", "kode_kelurahan"),
    block_on("tanggal_lahir", "nama_depan"),
    block_on("tanggal_lahir", "nama_belakang"),
    block_on("nama_depan", "nama_belakang", "kode_kecamatan"),
    block_on("nama_depan", "nama_belakang", "tahun_lahir"),
    block_on("no_kk", "nama_depan"),
    block_on("nik_dob", "nama_depan"),
    block_on("alamat", "nama_depan"),
]

# Expectation-maximisation passes (each estimates every comparison not in its rule).
EM_BLOCKING_RULES = [
    block_on("nik"),
    block_on("tanggal_lahir", "nama_depan"),
    block_on("nama_sorted", "kode_kecamatan"),
]

# Rules that admit almost no false positives: used to estimate the prior match probability.
DETERMINISTIC_RULES_FOR_PRIOR = [
    "l.nik = r.nik AND l.nama = r.nama AND l.tanggal_lahir = r.tanggal_lahir",
    "l.nama = r.nama AND l.tanggal_lahir = r.tanggal_lahir AND l.alamat = r.alamat",
]
PRIOR_RECALL = 0.7

U_SAMPLING_MAX_PAIRS = 2e6
U_SAMPLING_SEED = 20260101


def settings_fingerprint() -> str:
    """Hash of the model specification (without trained values): a saved model trained under
    another specification is not reused."""
    spec = settings_creator().create_settings_dict("duckdb")
    spec.pop("probability_two_random_records_match", None)
    for comparison in spec.get("comparisons", []):
        for level in comparison.get("comparison_levels", []):
            if not level.get("fix_m_probability"):
                level.pop("m_probability", None)
            if not level.get("fix_u_probability"):
                level.pop("u_probability", None)
    payload = json.dumps(
        {"version": SETTINGS_VERSION, "spec": spec, "em": [r.get_blocking_rule("duckdb").blocking_rule_sql for r in EM_BLOCKING_RULES]},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:12]
