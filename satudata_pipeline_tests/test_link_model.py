"""Training adapts to the delivery: no NIK, no family card, no kelurahan code, one source; levels
training could not estimate get a bounded floor, never a veto."""

from __future__ import annotations

import math

import duckdb
import pytest
from fixtures import linkage
from fixtures.clean_tables import write_clean_table

from satudata_pipeline.link import clusters, evaluation, matching, model
from satudata_pipeline.link import splink_settings as ss

DROP_IDS = {
    "nik": None,
    "nik_raw": None,
    "nik_valid": False,
    "nik_reason": "missing",
    "nik_dki": False,
    "no_kk": None,
    "kode_kelurahan": None,
    "kode_kecamatan": None,
    "kode_kota": None,
}


def _train(tmp_path, monkeypatch, frames):
    monkeypatch.setenv("SATUDATA_STATE_DIR", str(tmp_path / "state"))
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    linkage.load_clean_tables(conn, frames)
    matching.build_person_records(conn, list(frames))
    return conn, model.train_model(conn)


def _weights(settings: dict) -> dict[tuple[str, str], float]:
    return {
        (r["comparison"], r["level"]): r["match_weight"] for r in model.parameters_table(settings)
    }


def test_delivery_without_nik_family_card_or_kelurahan_code_trains_and_links(tmp_path, monkeypatch):
    frames, truth = linkage.generate(300, seed=23)
    for df in frames.values():
        for col, value in DROP_IDS.items():
            df[col] = value
    conn, summary = _train(tmp_path, monkeypatch, frames)

    pairs = summary.training_pairs
    assert pairs["em: nik (skipped: fewer than 100 pairs)"] == 0
    assert pairs["em: no_kk (skipped: fewer than 100 pairs)"] == 0
    # fallbacks train names (blocked on birth date) and birth dates (blocked on name)
    assert pairs["em: tanggal_lahir"] > 100 and pairs["em: nama_sorted"] > 100
    untrained = {r["comparison"]: r for r in summary.not_trained}
    assert untrained["nik"]["records_with_value"] == 0
    assert untrained["nik"]["reason"] == "no values in the delivery"
    assert "nama" not in untrained and "tanggal_lahir" not in untrained
    # every weight is finite and none is a veto
    weights = _weights(summary.settings)
    assert all(w is not None and w > -15 for w in weights.values()), weights
    assert all(w == 0 for (c, _), w in weights.items() if c == "nik")

    with matching.splink_session(conn) as db_api:
        _linker, pred = matching.predict(db_api, summary.settings, 0.5)
        matching.write_match_pairs(conn, pred.physical_name, 0.5)
    clusters.build_person_clusters(conn, 0.95, 30)
    scores = evaluation.pairwise_scores(conn, truth)
    assert scores["f1"] > 0.9 and scores["precision"] > 0.95, scores


def test_one_source_delivery_trains(tmp_path, monkeypatch):
    frames, _truth = linkage.generate(300, seed=29)
    conn, summary = _train(tmp_path, monkeypatch, {"dukcapil": frames["dukcapil"]})
    assert summary.probability_two_random_records_match > 0
    assert any(k.startswith("em: ") and "skipped" not in k for k in summary.training_pairs)
    weights = _weights(summary.settings)
    assert all(w is None or w > -15 for w in weights.values()), weights


def _settings(levels: list[dict]) -> dict:
    return {
        "comparisons": [
            {
                "output_column_name": "c",
                "comparison_levels": [
                    {"sql_condition": "x IS NULL", "is_null_level": True},
                    *levels,
                ],
            }
        ]
    }


@pytest.mark.parametrize(
    "m, u, seen, matches, want_m, reason",
    [
        # observed, ordinary: untouched
        (0.2, 0.01, 500.0, 5000.0, 0.2, None),
        # EM pushed m to ~0 (seen less than one pair): floored at M_FLOOR_PRIOR
        (1e-22, 0.5, 5e-19, 5000.0, 1e-3, "estimated from less than one expected matching pair"),
        # not observed at all (Splink's text marker)
        (
            "level not observed in training dataset",
            0.5,
            0.0,
            5000.0,
            1e-3,
            "not observed in training",
        ),
        # few matches: the rule-of-three bound 3/matches is the larger floor
        (1e-9, 0.5, 6e-7, 600.0, 3 / 600, "estimated from less than one expected matching pair"),
        # the floor never makes an unseen level positive evidence: capped at u (weight 0)
        (1e-9, 1e-5, 5e-6, 5000.0, 1e-5, "estimated from less than one expected matching pair"),
        # a small m that rests on real pairs is evidence, kept
        (7e-6, 0.9, 3.5, 500000.0, 7e-6, None),
        # m of 1 lowered to 1 - floor
        (1.0, 0.3, 5000.0, 5000.0, 1 - 1e-3, "m of 1 (every matching pair in this level)"),
    ],
)
def test_floor_of_unobserved_or_degenerate_levels(m, u, seen, matches, want_m, reason):
    settings = _settings(
        [{"sql_condition": "a", "label_for_charts": "L", "m_probability": m, "u_probability": u}]
    )
    changes = model.floor_m(settings, {"c": {0: seen}}, {"c": matches})
    level = settings["comparisons"][0]["comparison_levels"][1]
    assert level["m_probability"] == pytest.approx(want_m)
    assert [c["reason"] for c in changes] == ([reason] if reason else [])
    weight = math.log2(level["m_probability"] / u)
    # bounded: never below log2(M_FLOOR_PRIOR / u), never above 0 when floored
    assert weight >= math.log2(min(ss.M_FLOOR_PRIOR, u) / u) - 1e-9 or reason is None
    if reason and reason.startswith(("not", "estimated")):
        assert weight <= 1e-9


def test_floor_leaves_fixed_levels_and_untrained_comparisons_alone():
    settings = _settings(
        [
            {
                "sql_condition": "a",
                "label_for_charts": "fixed",
                "m_probability": 0.5,
                "u_probability": 0.5,
                "fix_m_probability": True,
            }
        ]
    )
    assert model.floor_m(settings, {}, {"c": 100.0}) == []
    settings = _settings(
        [
            {
                "sql_condition": "a",
                "label_for_charts": "L",
                "m_probability": 1e-20,
                "u_probability": 0.5,
            }
        ]
    )
    assert model.floor_m(settings, {}, {}) == []  # no pass trained "c": reported elsewhere


def test_degenerate_u_is_bounded_from_both_sides():
    settings = _settings(
        [
            {"sql_condition": "a", "label_for_charts": "zero", "u_probability": 0.0},
            {"sql_condition": "b", "label_for_charts": "one", "u_probability": 1.0},
            {"sql_condition": "c", "label_for_charts": "fine", "u_probability": 0.3},
        ]
    )
    assert model.bound_unobserved_u(settings, 3e6) == ["c: zero", "c: one"]
    us = [lv.get("u_probability") for lv in settings["comparisons"][0]["comparison_levels"][1:]]
    assert us == [pytest.approx(1e-6), pytest.approx(1 - 1e-6), 0.3]


def test_extra_blocking_only_without_nik_and_only_selective_rules(tmp_path, monkeypatch):
    """A delivery with NIKs keeps the standard blocking rules; one without NIK gets the extra rules
    on cheap keys, each only while it makes at most SPARSE_ID_MAX_PAIRS_PER_RECORD pairs per
    record, and they find pairs the standard rules miss."""
    frames, truth = linkage.generate(300, seed=29)
    conn = duckdb.connect(str(tmp_path / "a.duckdb"))
    linkage.load_clean_tables(conn, frames)
    n = matching.build_person_records(conn, list(frames))
    rules, info = matching.sparse_id_blocking(conn)
    assert rules == [] and info["rules_added"] == 0 and info["share_with_valid_nik"] >= 0.5

    for df in frames.values():
        for col, value in DROP_IDS.items():
            df[col] = value
    conn, summary = _train(tmp_path, monkeypatch, frames)
    n = conn.execute("SELECT count(*) FROM link.person_records").fetchall()[0][0]
    rules, info = matching.sparse_id_blocking(conn)
    assert info["share_with_valid_nik"] == 0.0
    assert len(info["rules"]) == len(ss.SPARSE_ID_BLOCKING_COLUMNS)
    assert info["rules_added"] == len(rules) == sum(r["used"] for r in info["rules"]) > 0
    for r in info["rules"]:
        assert r["used"] is (r["pairs"] <= ss.SPARSE_ID_MAX_PAIRS_PER_RECORD * n)
    # the pair count by GROUP BY is the self-join count
    assert ss.SPARSE_ID_BLOCKING_COLUMNS[0] == ("tanggal_lahir", ss.ALAMAT_NOMOR_KEY)
    joined = conn.execute(
        "SELECT count(*) FROM link.person_records l JOIN link.person_records r "
        "ON l.unique_id < r.unique_id AND l.tanggal_lahir = r.tanggal_lahir "
        "AND nullif(l.alamat_nomor, '') = nullif(r.alamat_nomor, '')"
    ).fetchall()[0][0]
    assert info["rules"][0]["pairs"] == joined

    found = {}
    for label, extra in (("standard", []), ("extra", rules)):
        with matching.splink_session(conn) as db_api:
            _linker, pred = matching.predict(db_api, summary.settings, 0.001, extra)
            found[label] = conn.execute(f"SELECT count(*) FROM {pred.physical_name}").fetchall()[0][
                0
            ]
    assert found["extra"] > found["standard"]

    used_before = len(rules)
    monkeypatch.setattr(ss, "SPARSE_ID_MAX_PAIRS_PER_RECORD", 1e-9)
    rules, info = matching.sparse_id_blocking(conn)
    assert len(rules) < used_before  # only rules that make no pair at all remain
    assert all(r["used"] is (r["pairs"] == 0) for r in info["rules"])


@pytest.mark.parametrize(
    "a, b, want",
    [
        (
            "101 MCCULLOCH STREET SARAJI MINE",
            "101 SARAJI IMNE MCCULLOCH STREET",
            True,
        ),  # lines swapped
        ("JL MAWAR NO 5 PERUM GRIYA ASRI", "PERUM GRIYA ASRI JL MAWAR NO 5", True),
        ("12 WOLFF CRESCENT MT DERRIWONG", "12 WOLFF CRSCENT", True),  # a line missing, a typo
        ("JL MAWAR NO 5", "JL MELATI NO 5", False),  # another street, same number
        ("JL MAWAR NO 5", "GG MAWAR NO 5", False),  # a lane (gang) is not the road (jalan)
        ("JL MAWAR NO 5 PERUM GRIYA", "PERUM GRIYA JL MAWAR NO 15", False),  # another house
        (
            "JL MAWAR PERUM GRIYA",
            "PERUM GRIYA JL MAWAR",
            False,
        ),  # no house number: a street, not a home
        ("6 WEOWNER", "6 MADIGAN STREET WEOWNER", False),  # one word in common is too little
    ],
)
def test_address_words_in_another_order(a, b, want):
    conn = duckdb.connect()
    write_clean_table(conn, "a", [dict(record_id="l", alamat=a), dict(record_id="r", alamat=b)])
    matching.build_person_records(conn, ["a"])
    got = conn.execute(f"""SELECT {ss.as_join_sql(ss.ADDRESS_WORDS_AGREE)}
        FROM link.person_records l, link.person_records r
        WHERE l.record_id = 'l' AND r.record_id = 'r'""").fetchall()[0][0]
    assert bool(got) is want


@pytest.mark.parametrize(
    "kel_l, kode_l, kel_r, kode_r, want",
    [
        ("ULVERSTONE", None, "ULVERTSONE", None, True),  # uncoded names one typo apart
        ("ELERMORE VALE", None, "ELERMOR E VALE", None, True),
        ("RYDE", None, "RYDD", None, False),  # short names: exact only
        ("ULVERSTONE", None, "ULVERSTON EAST", None, False),
        # coded kelurahan are compared by code only, however alike their names
        ("CEMPAKA PUTIH TIMUR", "3171050001", "CEMPAKA PUTIH TIMUK", "3171050002", False),
        ("CEMPAKA PUTIH TIMUR", "3171050001", "CEMPAKA PUTIH TIMUK", None, False),
    ],
)
def test_same_kelurahan_by_code_else_by_name_one_typo(kel_l, kode_l, kel_r, kode_r, want):
    got = (
        duckdb.connect()
        .execute(
            f"""SELECT {ss.SAME_KELURAHAN} FROM (SELECT
        ?::VARCHAR kelurahan_l, ?::VARCHAR kode_kelurahan_l, ?::VARCHAR kelurahan_r,
        ?::VARCHAR kode_kelurahan_r)""",
            [kel_l, kode_l, kel_r, kode_r],
        )
        .fetchall()[0][0]
    )
    assert bool(got) is want


# Name frequencies (issue 14): 100 records; SITI is 20 of them, SITI AMINAH 2, the others 1 each.
# The model's exact-name u is U_EXACT_NAME (the chance that two random records carry one name).
U_EXACT_NAME = 0.05
NAMES = (
    ["SITI"] * 20
    + ["SITI AMINAH"] * 2
    + ["ZULAIKHA", "ZULAIKHA RAHMAN"]
    + [f"ORANG {i:03d} LAIN" for i in range(76)]
)
CONTAINED = 3  # gamma of "Words of one name contained in the other" (levels counted from Else)
EXACT = 6


@pytest.fixture(scope="module")
def name_pairs() -> dict[tuple[str, str], tuple[int, float]]:
    """(name_l, name_r) -> (nama comparison level, its name frequency adjustment in bits) for the
    pairs of NAMES, scored by Splink with fixed m / u (no training) and the cap of link/model.py."""
    from splink import Linker, block_on

    conn = duckdb.connect()
    rows = [dict(record_id=str(i), nama=n, tanggal_lahir="1990-01-01") for i, n in enumerate(NAMES)]
    write_clean_table(conn, "a", rows)
    matching.build_person_records(conn, ["a"])
    settings = ss.settings_creator().create_settings_dict("duckdb")
    settings["blocking_rules_to_generate_predictions"] = [
        block_on("tanggal_lahir").get_blocking_rule("duckdb").as_dict()
    ]
    for comp in settings["comparisons"]:
        for level in comp["comparison_levels"]:
            if not level.get("is_null_level") and not level.get("fix_m_probability"):
                level["m_probability"], level["u_probability"] = 0.5, 0.05
    settings["comparisons"][0]["comparison_levels"][1]["u_probability"] = U_EXACT_NAME
    assert model.cap_name_frequency_adjustments(settings) == [
        "nama: Words of one name contained in the other"
    ]
    with matching.splink_session(conn) as db_api:
        linker = Linker(matching.register_person_records(db_api), settings)
        pred = linker.inference.predict().as_pandas_dataframe()
    out = {}
    for r in pred.itertuples():
        out[(r.nama_l, r.nama_r)] = out[(r.nama_r, r.nama_l)] = (
            int(r.gamma_nama),
            float(r.mw_tf_adj_nama),
        )
    return out


@pytest.mark.parametrize(
    "a, b, level, adjustment",
    [
        # a common one-word name inside a longer one weighs less: log2(u_exact / tf(SITI)) = -2
        ("SITI", "SITI AMINAH", CONTAINED, math.log2(U_EXACT_NAME / 0.20)),
        # a rare one weighs what the level weighs, never more (uncapped: log2(0.05 / 0.01) > 0)
        ("ZULAIKHA", "ZULAIKHA RAHMAN", CONTAINED, 0.0),
        # the exact level keeps Splink's adjustment both ways (a rare name weighs more)
        ("SITI", "SITI", EXACT, math.log2(U_EXACT_NAME / 0.20)),
        ("SITI AMINAH", "SITI AMINAH", EXACT, math.log2(U_EXACT_NAME / 0.02)),
        ("SITI", "ZULAIKHA", 0, 0.0),  # other levels: no adjustment
    ],
)
def test_contained_name_weighs_less_when_the_name_is_common(name_pairs, a, b, level, adjustment):
    assert name_pairs[(a, b)][0] == level
    assert name_pairs[(a, b)][1] == pytest.approx(adjustment)
