"""The Splink model specification, as plain readable configuration (no I/O here).

What the model compares for every candidate pair of person records (columns of
`link.person_records`, see docs/linkage.md):

| comparison     | levels (most to least similar)                                                   |
|----------------|----------------------------------------------------------------------------------|
| nama           | exact (term-frequency adjusted) / same words reordered or in the other (old/new) |
|                | spelling / one typo or JW >= 0.94 (also on the words sorted) /                   |
|                | words of one name within the other (term-frequency adjusted, downwards only) /   |
|                | two typos or JW >= 0.85 / shares a word / else                                   |
| tanggal_lahir  | exact / one digit typed differently / day-month swapped / within a year / else  |
| jenis_kelamin  | exact / else                                                                     |
| nik            | same NIK but borrowed (born more than a year apart, or names not close AND      |
|                | birth dates not close: weight fixed at 0, not trained) / exact / one typo apart  |
|                | (only with close names) / two different valid NIKs / else                        |
| rumah_tangga   | family card (no_kk), street address and kelurahan as ONE comparison: same KK +   |
|                | address / same KK / same address in the same kelurahan / same address, another  |
|                | or unknown kelurahan / same house numbers, street words in another order or a  |
|                | line missing / same kelurahan / same kecamatan / else ("same address":          |
|                | street lines nearly identical and the same house and block numbers; "same       |
|                | kelurahan": the same code, or, where neither record has a code (a name outside  |
|                | the reference list), the same delivered name; likewise kecamatan)               |

Why household fields are one comparison: a family shares KK, address and kelurahan; scored as three
independent comparisons they add up and glue family members together.
Why the NIK levels carry guards: registries hold NIKs borrowed from a family member and mistyped NIKs;
an identical or one-typo NIK must not override names and birth dates that say "another person".

Training adapts to the delivery (link/model.py): expectation maximisation runs on the rules of
EM_BLOCKING_COLUMNS that make pairs, plus fallbacks (EM_FALLBACK_COLUMNS) for any comparison those
could not train (no NIK, no family card, no kelurahan code, one source); levels training never
observed, or estimated from less than one expected pair, get a bounded weight (M_FLOOR_PRIOR,
rule of three), never Splink's near-zero m that vetoes a real match.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import SettingsCreator, block_on
from splink.blocking_rule_library import CustomRule
from splink.internals.blocking_rule_creator import BlockingRuleCreator

SETTINGS_VERSION = "v5"


# Cheap necessary conditions put in front of the costly string distances, so DuckDB (which stops
# evaluating an AND / OR as soon as the outcome is known) skips most Damerau-Levenshtein calls.
# They never change a result: Damerau-Levenshtein <= k needs lengths within k; two 16-digit NIKs
# one substitution or adjacent swap apart agree on their first 7 or their last 7 digits; two dates
# one digit apart (as YYYY-MM-DD) agree on at least two of year, month, day.
def _dl_at_most(a: str, b: str, k: int) -> str:
    return f"(abs(length({a}) - length({b})) <= {k} AND damerau_levenshtein({a}, {b}) <= {k})"


NAME_DL1 = _dl_at_most("nama_l", "nama_r", 1)
NAME_DL2 = _dl_at_most("nama_l", "nama_r", 2)
# Names of at least this many characters may differ by two typing errors and stay one name;
# shorter ones by one (two edits turn NAURA into ZAHRA, RINA into DINI: another person's name).
TWO_TYPOS_MIN_LENGTH = 10


def one_name_sql(a: str, b: str, per_word: bool = True) -> str:
    """SQL: names `a` and `b` are one name as typed: equal, one edit apart, or two edits apart
    when both are long (TWO_TYPOS_MIN_LENGTH) and no word has more than one (MUHAMMAD RIZKY /
    MUHAMAD RIZKI; not FAUZAN RIZKY / FARHAN RIZKY, two names). Used where one name with one NIK
    is taken as identity (the deterministic pass, event evidence, a roster row's tie to its
    person, two enrollments). `per_word=False` drops the one-edit-per-word condition: for
    evidence that only stops a removal (a possible return), leniency is the safe side."""
    wa, wb = f"string_split({a}, ' ')", f"string_split({b}, ' ')"
    words = (
        f" AND (len({wa}) = len({wb}) AND list_bool_and(list_transform(range(1, len({wa}) + 1), "
        f"lambda i: damerau_levenshtein({wa}[i], {wb}[i]) <= 1)))"
        if per_word
        else ""
    )
    return (
        f"({a} = {b} OR {_dl_at_most(a, b, 1)} OR (least(length({a}), length({b})) "
        f">= {TWO_TYPOS_MIN_LENGTH} AND {_dl_at_most(a, b, 2)}{words}))"
    )


# One home: street lines nearly identical AND the same house / block numbers (Jaro-Winkler alone
# calls JL BERINGIN NO 134 and JL BERINGIN NO 52 the same address).
SAME_ADDRESS = (
    "(jaro_winkler_similarity(alamat_l, alamat_r) >= 0.9 AND alamat_nomor_l = alamat_nomor_r)"
)


# The same house numbers, and the street words agree as sets, each word of either line having a
# near twin (Jaro-Winkler >= 0.9) in the other, on at least two words: the address lines were
# delivered in another order, or one line is missing (101 MCCULLOCH STREET SARAJI MINE /
# 101 SARAJI MINE MCCULLOCH STREET; JL MAWAR NO 5 PERUM GRIYA / PERUM GRIYA JL MAWAR NO 5).
# (The words are taken from alamat when the pair is compared, not stored as a list column: a list
# column is copied into every candidate pair and made scoring 15% slower at 200k.)
def _address_words(col: str) -> str:
    return (
        "list_distinct(list_filter(regexp_split_to_array(" + col + ", '[^A-Z0-9]+'), "
        "lambda w: w <> '' AND NOT regexp_full_match(w, '[0-9]+')))"
    )


def _words_matched(a: str, b: str) -> str:
    return (
        f"len(list_filter({_address_words(a)}, lambda x: list_bool_or(list_transform("
        f"{_address_words(b)}, lambda y: jaro_winkler_similarity(x, y) >= 0.9))))"
    )


_FEWER_WORDS = f"least(len({_address_words('alamat_l')}), len({_address_words('alamat_r')}))"
ADDRESS_WORDS_AGREE = (
    "(alamat_nomor_l = alamat_nomor_r AND alamat_nomor_l <> '' "
    f"AND {_FEWER_WORDS} >= 2 "
    f"AND {_words_matched('alamat_l', 'alamat_r')} >= {_FEWER_WORDS} "
    f"AND {_words_matched('alamat_r', 'alamat_l')} >= {_FEWER_WORDS})"
)
NIK_ONE_TYPO = (
    "((left(nik_l, 7) = left(nik_r, 7) OR right(nik_l, 7) = right(nik_r, 7)) "
    "AND damerau_levenshtein(nik_l, nik_r) <= 1)"
)
BIRTH_DATE_ONE_DIGIT = (
    "((year(tanggal_lahir_l) = year(tanggal_lahir_r))::INT "
    "+ (month(tanggal_lahir_l) = month(tanggal_lahir_r))::INT "
    "+ (day(tanggal_lahir_l) = day(tanggal_lahir_r))::INT >= 2 "
    "AND damerau_levenshtein(CAST(tanggal_lahir_l AS VARCHAR), CAST(tanggal_lahir_r AS VARCHAR)) <= 1)"
)
BIRTH_DATES_SWAPPED = (
    "(month(tanggal_lahir_l) = day(tanggal_lahir_r) "
    "AND day(tanggal_lahir_l) = month(tanggal_lahir_r) "
    "AND year(tanggal_lahir_l) = year(tanggal_lahir_r))"
)

# The same kelurahan (kecamatan): the same reference code, or, when neither record has a code (a
# delivery outside the reference list, or names that did not resolve), the same delivered name; for
# a kelurahan name also one typo apart (ULVERSTONE / ULVERTSONE, a space slipped in), since no
# reference list corrected it. (Kecamatan stay exact: a delivery may carry a postcode there, and
# postcodes one digit apart are neighbouring areas.)
SAME_KELURAHAN = (
    "(kode_kelurahan_l = kode_kelurahan_r OR (kode_kelurahan_l IS NULL AND kode_kelurahan_r IS NULL "
    "AND (kelurahan_l = kelurahan_r OR (least(length(kelurahan_l), length(kelurahan_r)) >= 5 "
    f"AND {_dl_at_most('kelurahan_l', 'kelurahan_r', 1)}))))"
)
SAME_KECAMATAN = (
    "(kode_kecamatan_l = kode_kecamatan_r OR (kode_kecamatan_l IS NULL AND kode_kecamatan_r IS NULL "
    "AND kecamatan_l = kecamatan_r))"
)
KELURAHAN_UNKNOWN = (
    "((kode_kelurahan_l IS NULL AND kelurahan_l IS NULL) "
    "OR (kode_kelurahan_r IS NULL AND kelurahan_r IS NULL))"
)


# One name in the old spelling and the other in the new. Cleaning turns the unambiguous old
# spellings into EYD (DJ -> J, OE -> U, ...: clean/name_rules.yaml) but must leave J -> Y and guesses
# TJ -> C, so BAJOE PRASETJO is cleaned to BAJU PRASECO while its bearer writes BAYU PRASETYO. With
# Y read as J and then TJ as C, both spellings give one key (BAJU PRASECO; NJOMAN / NYOMAN ->
# NJOMAN; TJAHJO / CAHYO -> CAHJO): the same name, written in two spellings.
def spelling_key(col: str) -> str:
    return f"replace(replace({col}, 'Y', 'J'), 'TJ', 'C')"


SAME_NAME_OTHER_SPELLING = f"({spelling_key('nama_l')} = {spelling_key('nama_r')})"
# The words in another order with a typo (AMINH SYIFA / SYIFA AMINAH, PUTRI AISYA / AISYAH PUTRI):
# Jaro-Winkler on the words sorted.
SORTED_NAMES_JW = "jaro_winkler_similarity(nama_sorted_l, nama_sorted_r)"

# Names are "close" when nearly identical (also in the other spelling, or with the words in another
# order), reordered, or one is the other minus some words.
NAMES_CLOSE = (
    "(nama_sorted_l = nama_sorted_r "
    f"OR {SAME_NAME_OTHER_SPELLING} "
    "OR jaro_winkler_similarity(nama_l, nama_r) >= 0.92 "
    f"OR {SORTED_NAMES_JW} >= 0.92 "
    f"OR {NAME_DL1} "
    "OR len(list_intersect(nama_tokens_l, nama_tokens_r)) "
    "= least(len(nama_tokens_l), len(nama_tokens_r)) "
    "OR len(list_intersect(nama_tokens_l, nama_tokens_r)) >= 2)"
)
# Birth dates are "far" apart: both known and not equal, one typo, or day/month swapped.
BIRTH_DATES_FAR = (
    "(tanggal_lahir_l IS NOT NULL AND tanggal_lahir_r IS NOT NULL "
    f"AND tanggal_lahir_l <> tanggal_lahir_r AND NOT {BIRTH_DATE_ONE_DIGIT} "
    f"AND NOT {BIRTH_DATES_SWAPPED})"
)
# An identical NIK carried by someone else (typically a family member's NIK used on a roster).
BIRTH_DATES_CLOSE = (
    "(tanggal_lahir_l IS NOT NULL AND tanggal_lahir_r IS NOT NULL AND NOT " + BIRTH_DATES_FAR + ")"
)
# Also borrowed: the same NIK on two records born more than a year apart (and not a one-digit
# typo or a day/month swap), whatever the names say: a NIK is issued once, and a parent and a child
# of the same name share a family card, so the child's NIK turns up on the parent's roster row.
# (A birth year off by one is a common registration error, not another person.)
BIRTH_DATES_YEARS_APART = (
    f"({BIRTH_DATES_FAR} AND abs(date_diff('day', tanggal_lahir_l, tanggal_lahir_r)) > 366)"
)
BORROWED_NIK = f"(nik_l = nik_r AND ({BIRTH_DATES_YEARS_APART} OR (NOT {NAMES_CLOSE} AND NOT {BIRTH_DATES_CLOSE})))"
# Names at least similar (close, or Jaro-Winkler >= 0.85).
NAMES_SIMILAR = f"({NAMES_CLOSE} OR jaro_winkler_similarity(nama_l, nama_r) >= 0.85)"
# Post-model veto: neither similar names nor close birth dates -> another person, whatever the
# household fields say (family members share family card, address and often a surname).
VETO = f"(NOT {NAMES_SIMILAR} AND NOT {BIRTH_DATES_CLOSE})"


# Records that no link joined to a population-register row are assigned to their sole candidate
# resident, when there is exactly one (link/clusters.py; docs/linkage.md "Sole candidates"). The
# scores are computed against the whole city's prior (two random records match about once in a
# million); a record that must be somebody, with one plausible somebody, is that person.
#
# Event records (deaths, moves) come from the civil registry itself, so each is about one
# registered resident. Candidates by name: residents of the record's kelurahan with the same name
# (or one typo apart, or the same words reordered), no other sex, no NIK more than one typo away
# (valid or not), and a birth date that agrees when both are known. For a death the kelurahan is
# the deceased's own, so the birth date may carry a typo (one digit, day and month swapped); a move
# record's kelurahan is where the person lived before (the register may now show them elsewhere,
# and a namesake born close by can stay behind), so its birth date must be equal. A move with no
# origin kelurahan (a move into DKI) is looked for at its destination. Looser names (a name
# contained in a longer one) point at namesakes at city scale and are not used.
EVENT_KINDS = ("death_registry", "migration_registry")
_EVENT_NAME_SEX_NIK = (
    f"(nama_l = nama_r OR nama_sorted_l = nama_sorted_r OR {SAME_NAME_OTHER_SPELLING} OR {NAME_DL1}) "
    "AND (jenis_kelamin_l IS NULL OR jenis_kelamin_r IS NULL OR jenis_kelamin_l = jenis_kelamin_r) "
    f"AND (nik_l IS NULL OR nik_r IS NULL OR {NIK_ONE_TYPO})"
)
EVENT_CANDIDATE = {
    "death_registry": (
        f"({_EVENT_NAME_SEX_NIK} AND (tanggal_lahir_l IS NULL OR tanggal_lahir_r IS NULL "
        f"OR tanggal_lahir_l = tanggal_lahir_r OR {BIRTH_DATE_ONE_DIGIT} OR {BIRTH_DATES_SWAPPED}))"
    ),
    "migration_registry": (
        f"({_EVENT_NAME_SEX_NIK} AND (tanggal_lahir_l IS NULL OR tanggal_lahir_r IS NULL "
        "OR tanggal_lahir_l = tanggal_lahir_r))"
    ),
}
# Candidates by link (any kind; they outrank candidates by name): the residents a record has a
# stored link to (link.match_pairs, at or above match_threshold, not vetoed). A roster or welfare
# row may be a ghost using a real person's name and birth date at another address, so for those
# kinds the link must also join two records of one home (same address and numbers, same kelurahan).
SOLE_LINK_SAME_HOME_KINDS = ("program_roster", "welfare_registry")
# SAME_KELURAHAN: the codes, or where a delivery has none on either side, the delivered names
SAME_HOME = f"({SAME_ADDRESS} AND {SAME_KELURAHAN})"
# A lone group of roster and welfare rows linked to two residents of its home (twins, a father and
# son of one name; the suspect-cluster guard took the group apart because the links made one
# person of both) joins the one its links favour, without the NIK's positive weight (a twin's NIK
# on the row is borrowed), by at least this many bits (log2 of the odds),
# a thousand to one: the odds of the model's floor for an unseen level (M_FLOOR_PRIOR). It is
# placed, not identified: such a row is never removed on its tie alone (programs/verdicts.py).
DOMINANT_LINK_MARGIN = math.log2(1000)
# A lone roster or welfare row whose one stored link to a population-register record is also that
# resident's one link to the row's source, while the resident's person holds no row of that source
# yet (each register lists a person once), joins that resident although their homes differ: two
# records that are each other's only candidate (a delivery without NIK, a moved household, an
# address typed two ways). The link must stand at this probability without the NIK's positive
# weight: more likely one person than two, on names, birth date and address alone. It is placed,
# not identified (basis `only_link`): never removed on its tie alone (programs/verdicts.py), and a
# group holding a death or move record is never placed this way (a death would follow the row).
# Only in a delivery without NIK (fewer than SPARSE_ID_NIK_SHARE of its records with a valid one,
# as for the sparse-identifier blocking rules): where NIKs are the norm, a row without one that
# names a real resident of another home is as often a copy of that resident ("ghost") as the
# resident; on the project's 1M delivery (seed 601) 11 of 13 such placements were ghosts, on
# FEBRL4 (no NIK at all) 72 of 72 were right (benchmarks/results/FINDINGS-2026-12-04-only-link.md).
ONLY_LINK_MIN_PROBABILITY = 0.5
# Assignment bases (link.assignments, person_source_link.link_method) that place a row with a
# person without identifying it: a removal never rests on such a row's tie.
PLACED_NOT_IDENTIFIED = ("dominant_link", "only_link")
# A death record with two or more candidates is assigned to none; with at most this many, each is a
# possible death for a person to check (one in two or three is worth a visit; a single name such as
# BUDI without a birth date fits a hundred residents of a kelurahan and says nothing about any one).
POSSIBLE_DEATH_MAX_CANDIDATES = 3


def as_join_sql(sql: str) -> str:
    """`col_l` / `col_r` (Splink's pair naming) -> `l.col` / `r.col`, for plain SQL joins."""
    return re.sub(r"\b([a-z_]+?)_([lr])\b", r"\2.\1", sql)


# Name frequencies. The exact-name level is adjusted by how common the name is (Splink's term
# frequency: weight log2(m / tf) instead of log2(m / u)); so is "one name's words within the
# other", by the frequency of the commoner of the two names (in practice the shorter: SRI within
# SRI MARYATI, FATIMAH within FATIMAH YANTI): a common one-word name inside a longer one is what two
# namesakes look like, and at city scale the same birth date does not tell them apart. For that
# level the adjustment only ever lowers the weight (link/model.py, `cap_name_frequency_adjustments`:
# its tf_minimum_u_value is the exact level's u), so a rare name contained in another weighs what
# the level weighs, never more: no link, and no removal, becomes easier.
NAME_TF_WEIGHT = 1.0
# Levels whose frequency adjustment may only lower the weight (their labels).
NAME_TF_CAPPED_LEVELS = ("Words of one name contained in the other",)


def name_comparison() -> cl.CustomComparison:
    return cl.CustomComparison(
        output_column_name="nama",
        comparison_description="Normalised full name",
        comparison_levels=[
            cll.NullLevel("nama"),
            cll.ExactMatchLevel("nama").configure(tf_adjustment_column="nama"),
            cll.CustomLevel(
                f"nama_sorted_l = nama_sorted_r OR {SAME_NAME_OTHER_SPELLING}",
                label_for_charts="Same words, other order or other spelling",
            ),
            cll.CustomLevel(
                f"jaro_winkler_similarity(nama_l, nama_r) >= 0.94 OR {NAME_DL1} "
                f"OR {SORTED_NAMES_JW} >= 0.94",
                label_for_charts="One typo (Damerau-Levenshtein 1) or Jaro-Winkler >= 0.94 "
                "(also with the words sorted)",
            ),
            cll.CustomLevel(
                "len(list_intersect(nama_tokens_l, nama_tokens_r)) "
                "= least(len(nama_tokens_l), len(nama_tokens_r))",
                label_for_charts="Words of one name contained in the other",
            ).configure(tf_adjustment_column="nama", tf_adjustment_weight=NAME_TF_WEIGHT),
            cll.CustomLevel(
                f"jaro_winkler_similarity(nama_l, nama_r) >= 0.85 OR {NAME_DL2}",
                label_for_charts="Two typos or Jaro-Winkler >= 0.85",
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
            cll.ExactMatchLevel("tanggal_lahir").configure(label_for_charts="Exact date of birth"),
            cll.CustomLevel(BIRTH_DATE_ONE_DIGIT, label_for_charts="One digit typed differently"),
            cll.CustomLevel(BIRTH_DATES_SWAPPED, label_for_charts="Day and month swapped"),
            cll.CustomLevel(
                "abs(date_diff('day', tanggal_lahir_l, tanggal_lahir_r)) <= 366",
                label_for_charts="Within a year",
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
                BORROWED_NIK,
                label_for_charts=(
                    "Same NIK, but birth dates (or name and birth date) say another person (borrowed)"
                ),
            ).configure(
                m_probability=0.5,
                u_probability=0.5,
                fix_m_probability=True,
                fix_u_probability=True,
            ),
            cll.ExactMatchLevel("nik").configure(label_for_charts="Exact NIK"),
            cll.CustomLevel(
                f"{NIK_ONE_TYPO} AND {NAMES_CLOSE}",
                label_for_charts="NIK one typo apart (names close)",
            ),
            cll.CustomLevel(
                "nik_valid_l AND nik_valid_r",
                label_for_charts="Two different valid NIKs",
            ),
            cll.ElseLevel(),
        ],
    )


def household_comparison() -> cl.CustomComparison:
    """Family card, street address and kelurahan as ONE comparison: they are strongly correlated
    (a family shares all three), so adding them up as independent evidence would glue family
    members together."""
    return cl.CustomComparison(
        output_column_name="rumah_tangga",
        comparison_description="Household: no_kk, alamat, kelurahan",
        comparison_levels=[
            cll.CustomLevel(
                "(no_kk_l IS NULL OR no_kk_r IS NULL) AND (alamat_l IS NULL OR alamat_r IS NULL) "
                f"AND {KELURAHAN_UNKNOWN}",
                label_for_charts="Household unknown",
            ).configure(is_null_level=True),
            cll.CustomLevel(
                f"no_kk_l = no_kk_r AND {SAME_ADDRESS}",
                label_for_charts="Same family card and address",
            ),
            cll.CustomLevel("no_kk_l = no_kk_r", label_for_charts="Same family card"),
            cll.CustomLevel(
                f"{SAME_ADDRESS} AND {SAME_KELURAHAN}",
                label_for_charts="Same address in the same kelurahan",
            ),
            cll.CustomLevel(
                SAME_ADDRESS, label_for_charts="Same address, another or unknown kelurahan"
            ),
            cll.CustomLevel(
                ADDRESS_WORDS_AGREE,
                label_for_charts="Same house numbers, street words in another "
                "order or a line missing",
            ),
            cll.CustomLevel(SAME_KELURAHAN, label_for_charts="Same kelurahan"),
            cll.CustomLevel(SAME_KECAMATAN, label_for_charts="Same kecamatan"),
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
            household_comparison(),
        ],
        blocking_rules_to_generate_predictions=PREDICTION_BLOCKING_RULES,
        retain_matching_columns=True,
        retain_intermediate_calculation_columns=True,
        additional_columns_to_retain=["source"],
        max_iterations=20,
        em_convergence=0.0001,
    )


# Places in blocking rules: the reference code, else (no code on the record: a delivery outside the
# reference list) the delivered name, so such deliveries still block by place.
KELURAHAN_KEY = "coalesce(kode_kelurahan, kelurahan)"
KECAMATAN_KEY = "coalesce(kode_kecamatan, kecamatan)"
KOTA_KEY = "coalesce(kode_kota, kota)"

# Blocks that grow with the population. A rule on keys of fixed variety (a birth date, a first
# name, a kelurahan: Jakarta has 267 of them whatever its size) puts more records in each block as
# the population grows, so its pairs grow with the square of the population (at 1M persons the
# rules below made 16.7 pairs per record, 9.3 at 300k; docs/scale.md, "Linkage"). Two measures:
# - the rules that found almost no true pair the others miss are gone: first + last name + birth
#   year + kota (2 true pairs of 1.2M at 1M persons, the fastest-growing rule: 3.7 pairs per record)
#   and the NIK's birth-date digits + first name (5 true pairs);
# - the name rules only use blocks of at most BLOCK_CAP records: link.person_records carries per
#   capped rule a flag `blok_<name>` (the record's block holds at most BLOCK_CAP records; block
#   sizes by GROUP BY when the table is built). The records of a bigger block (every MUHAMMAD born
#   on one day, 150 SITI NURHALIZA in one kelurahan) are paired by the rules that carry a key
#   identifying a person or a home (NIK, family card, full name and birth date) or by the birth
#   date and kelurahan. A capped rule makes at most BLOCK_CAP - 1 pairs per record.
# At 1M persons (seed 151) both together cut the pairs from 16.7 to 10.2 per record and lose 11 of
# 1.2M true pairs (docs/scale.md, "Linkage").
BLOCK_CAP = 30
CAPPED_BLOCKS: dict[str, tuple[str, ...]] = {
    "nama_tahun_kec": ("nama_sorted", "tahun_lahir", KECAMATAN_KEY),
    "tgl_depan": ("tanggal_lahir", "nama_depan"),
    "tgl_belakang": ("tanggal_lahir", "nama_belakang"),
    "depan_belakang_kel": ("nama_depan", "nama_belakang", KELURAHAN_KEY),
    "alamat_depan": ("alamat", "nama_depan"),
}


def block_cap_column(name: str) -> str:
    return f"blok_{name}"


def capped_block_on(name: str) -> BlockingRuleCreator:
    """block_on(*CAPPED_BLOCKS[name]) on blocks of at most BLOCK_CAP records only (the flag is
    required of both records, so DuckDB drops the others before the join)."""
    col = block_cap_column(name)
    sql = block_on(*CAPPED_BLOCKS[name]).get_blocking_rule("duckdb").blocking_rule_sql
    return CustomRule(f"{sql} AND l.{col} AND r.{col}")


# Candidate pairs scored by the model: a pair is scored when it agrees on any one of these.
PREDICTION_BLOCKING_RULES: list[BlockingRuleCreator | dict[str, Any]] = [
    block_on("nik"),
    # (exact name + birth date is inside the next rule: equal names have equal sorted words)
    # name-only rules carry a place too: a common name in one birth year is tens of thousands of
    # people at city scale, and those blocks grew with the square of the population
    block_on("nama_sorted", "tanggal_lahir"),
    capped_block_on("nama_tahun_kec"),
    # birth date + kelurahan: the rule of records with a typo in the name AND the NIK (742 true
    # pairs no other rule finds at 1M persons); not capped
    block_on("tanggal_lahir", KELURAHAN_KEY),
    capped_block_on("tgl_depan"),
    capped_block_on("tgl_belakang"),
    capped_block_on("depan_belakang_kel"),
    block_on("no_kk", "nama_depan"),
    capped_block_on("alamat_depan"),
]

# Deliveries without a strong identifier. When fewer than SPARSE_ID_NIK_SHARE of the records carry
# a valid NIK (a delivery with no NIK column, e.g. FEBRL), the rules above lose their most useful
# key and a record with typos in its name AND its birth date (registries mis-key several fields of
# one row) agrees with its twin on none of them. Such deliveries get further rules on cheap keys
# that survive those typos: the house number with the birth date or the place, the birth day and
# month (year mistyped) with the place, name skeletons (first letter + consonants: SITI / SITY,
# HARYANTO / HARIYANTO) with the place. A rule is used only while it stays selective in the
# delivery at hand: at most SPARSE_ID_MAX_PAIRS_PER_RECORD pairs per record (counted by GROUP BY
# before prediction); a house number in a Jakarta kecamatan of 250,000 people is not. The
# NIK-bearing path (the project's registries: 98% of records with a valid NIK) is unchanged.
SPARSE_ID_NIK_SHARE = 0.5
SPARSE_ID_MAX_PAIRS_PER_RECORD = 1.0
ALAMAT_NOMOR_KEY = "nullif(alamat_nomor, '')"


def name_skeleton(col: str) -> str:
    """First letter + the consonants after it (vowels, H, W, Y dropped): a phonetic key that
    tolerates vowel typos and spelling variants; NULL for a NULL name."""
    return f"(left({col}, 1) || regexp_replace(substr({col}, 2), '[AEIOUHWY]', '', 'g'))"


# The street's own name: the first word of three or more letters of the street line once the words
# that name a kind of street or a place in it are set aside (JALAN MANGGA DUA -> MANGGA,
# 42 BARRITT STREET -> BARRITT); NULL when there is none. A key that survives a mistyped house
# number, a line missing or the other words reordered.
STREET_NAME_KEY = (
    "nullif(regexp_extract(regexp_replace(alamat, "
    "'\\b(JALAN|JLN|GANG|KOMPLEK|KOMP|PERUMAHAN|PERUM|BLOK|RAYA|NO|RT|RW)\\b', ' ', 'g'), "
    "'[A-Z]{3,}', 0), '')"
)

SPARSE_ID_BLOCKING_COLUMNS: list[tuple[str, ...]] = [
    ("tanggal_lahir", ALAMAT_NOMOR_KEY),
    (KELURAHAN_KEY, ALAMAT_NOMOR_KEY),
    (KECAMATAN_KEY, ALAMAT_NOMOR_KEY),
    ("nama_sorted", ALAMAT_NOMOR_KEY),
    (KELURAHAN_KEY, "month(tanggal_lahir)", "day(tanggal_lahir)"),
    (KECAMATAN_KEY, "month(tanggal_lahir)", "day(tanggal_lahir)"),
    (name_skeleton("nama_depan"), name_skeleton("nama_belakang"), KECAMATAN_KEY),
    (name_skeleton("nama_depan"), name_skeleton("nama_belakang"), "tahun_lahir"),
    ("nama_belakang", KECAMATAN_KEY),
    ("nama_depan", KECAMATAN_KEY),
    (STREET_NAME_KEY, KECAMATAN_KEY),
    (STREET_NAME_KEY, KELURAHAN_KEY),
    (STREET_NAME_KEY, ALAMAT_NOMOR_KEY),
    ("nama_belakang", KELURAHAN_KEY),
    ("nama_depan", KELURAHAN_KEY),
]

# Expectation-maximisation passes. Each estimates the comparisons that use none of its columns
# (the NIK comparison reads names and birth dates too, so only the family-card pass trains it).
# A pass runs when its rule makes at least EM_MIN_PAIRS pairs (a delivery without NIK or family
# card has none); a comparison that no pass could estimate, while the delivery holds its data, is
# trained by the first fallback that does not use its columns and makes enough pairs.
EM_BLOCKING_COLUMNS: list[tuple[str, ...]] = [
    ("nik",),
    ("no_kk",),
    ("nama_sorted", "kode_kelurahan"),
]
EM_FALLBACK_COLUMNS: list[tuple[str, ...]] = [
    ("tanggal_lahir",),
    ("nama_sorted",),
    ("alamat",),
]
EM_BLOCKING_RULES = [block_on(*cols) for cols in EM_BLOCKING_COLUMNS + EM_FALLBACK_COLUMNS]
EM_MIN_PAIRS = 100
# EM needs a few hundred thousand pairs, not tens of millions: a pass whose rule makes more pairs
# than this trains on a fixed hash-sample of its blocks (whole blocks, so families stay together).
EM_MAX_PAIRS = 1_500_000

# Floors for levels training could not estimate. A level that no EM pass observed among its
# matching pairs (or estimated at less than one expected matching pair) gets m = the larger of
# the rule-of-three bound 3 / (expected matching pairs of the pass) and M_FLOOR_PRIOR: registries
# mis-key every field, so no kind of disagreement is taken to be rarer than 1 in 1,000 true
# matches just because one delivery did not show it. m above 1 - M_FLOOR_PRIOR is lowered to it.
# u: a level random sampling never observed gets 3 / pairs sampled (rule of three); u of 0 or 1
# the same bound from the other side. Fixed levels (the borrowed NIK) are left alone.
M_FLOOR_PRIOR = 1e-3

# The values each comparison reads (a comparison none of whose values the delivery holds cannot be
# trained and is reported as such).
COMPARISON_VALUES = {
    "nama": "nama",
    "tanggal_lahir": "tanggal_lahir",
    "jenis_kelamin": "jenis_kelamin",
    "nik": "nik",
    "rumah_tangga": "coalesce(no_kk, alamat, kode_kelurahan, kelurahan)",
}

# Rules that admit almost no false positives: used to estimate the prior match probability
# (the second needs no NIK).
DETERMINISTIC_RULES_FOR_PRIOR: list[str | BlockingRuleCreator] = [
    "l.nik = r.nik AND l.nama = r.nama AND l.tanggal_lahir = r.tanggal_lahir",
    "l.nama = r.nama AND l.tanggal_lahir = r.tanggal_lahir AND l.alamat = r.alamat",
]
PRIOR_RECALL = 0.7  # a first guess, only the starting point of EM
# The prior the model is saved with: pairs meeting PRIOR_RULE (the same name and birth date) over
# all pairs, divided by the rule's recall among true matches as the trained model sees it:
# m(exact name) x m(exact birth date) x (share of records with a birth date)^2. A recall guessed
# once (0.7) fitted one generator; on FEBRL the true recall of the rules above is under 0.1, and
# the prior came out 9x too low. Bounded to PRIOR_RECALL_BOUNDS.
PRIOR_RULE = "l.nama = r.nama AND l.tanggal_lahir = r.tanggal_lahir"
PRIOR_RECALL_BOUNDS = (0.05, 1.0)

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
    em = [r.get_blocking_rule("duckdb").blocking_rule_sql for r in EM_BLOCKING_RULES]
    payload = json.dumps(
        {
            "version": SETTINGS_VERSION,
            "spec": spec,
            "em": em,
            "em_min_pairs": EM_MIN_PAIRS,
            "m_floor": M_FLOOR_PRIOR,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:12]
