"""A delivery in shapes we did not develop against still runs by editing only its sources.yaml.

The generator writes one fixed shape per source; `synthetic.reshape` re-writes the same rows as
another provider could have sent them (other column names and order, junk and duplicated headers,
csv/parquet/xlsx, encodings, delimiters, date formats, native date cells, value codes with `values:`
maps). For two reshape seeds the full job must succeed, clean every source exactly as it cleans the
original shape, and link and decide as accurately as on the original.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from satudata_pipeline.synthetic import generate
from satudata_pipeline.synthetic.reshape import reshape

PERSONS, SEED = 800, 15  # not the sample's 20261101
RESHAPE_SEEDS = (101, 202)
FULL_JOB = "satudata_full_determination"


def _run(data_dir: Path, work: Path, *, clean_only: bool = False) -> tuple[bool, Path]:
    """Run the job (or only raw + clean) in-process on its own warehouse and state folder."""
    from satudata_pipeline.contract.sources import load_delivery
    from satudata_pipeline.definitions import build_defs

    work.mkdir(parents=True, exist_ok=True)
    warehouse = work / "w.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SATUDATA_STATE_DIR", str(work / "state"))
        mp.delenv("SATUDATA_WAREHOUSE", raising=False)
        mp.delenv("SATUDATA_RETRAIN", raising=False)
        delivery = load_delivery(data_dir)
        defs = build_defs(delivery, warehouse=str(warehouse))
        selection = None
        if clean_only:
            selection = [
                dg.AssetKey(f"{stage}_{s.name}")
                for s in delivery.sources
                for stage in ("raw", "clean")
            ]
            selection.append(dg.AssetKey("quarantine"))
        result = defs.resolve_job_def(FULL_JOB).execute_in_process(
            raise_on_error=False, asset_selection=selection
        )
    return result.success, warehouse


def _clean_tables(warehouse: Path) -> dict[str, pd.DataFrame]:
    """Every clean table without `nik_raw` (the NIK as delivered: its representation is the point)."""
    conn = duckdb.connect(str(warehouse), read_only=True)
    try:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'clean' "
                "AND table_name NOT LIKE '%__quarantine' AND table_name <> 'quarantine' ORDER BY 1"
            ).fetchall()
        ]
        out = {}
        for name in names:
            df = conn.execute(
                f'SELECT * EXCLUDE (nik_raw) FROM clean."{name}" ORDER BY row_number'
            ).df()
            df["quality_flags"] = df["quality_flags"].map(lambda v: tuple(sorted(v)))
            out[name] = df
        out["quarantine"] = conn.execute(
            "SELECT source, record_id, row_number, reason FROM clean.quarantine ORDER BY source, row_number"
        ).df()
        return out
    finally:
        conn.close()


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    base = tmp_path_factory.mktemp("foreign")
    src = base / "original"
    generate(PERSONS, SEED, src)
    ok, warehouse = _run(src, base / "run_original", clean_only=True)
    assert ok, "the original shape does not clean"
    return {"dir": src, "base": base, "clean": _clean_tables(warehouse)}


@pytest.fixture(scope="module", params=RESHAPE_SEEDS, ids=lambda s: f"reshape{s}")
def foreign(request, original):
    seed = request.param
    dst = original["base"] / f"reshaped_{seed}"
    shapes = reshape(original["dir"], dst, seed)
    ok, warehouse = _run(dst, original["base"] / f"run_{seed}")
    return {"dir": dst, "seed": seed, "shapes": shapes, "success": ok, "warehouse": warehouse}


def test_reshape_is_deterministic_and_really_changes_the_shape(original, tmp_path):
    def digest(d: Path) -> dict[str, str]:
        return {
            str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*"))
            if p.is_file()
        }

    a = reshape(original["dir"], tmp_path / "a", 7)
    b = reshape(original["dir"], tmp_path / "b", 7)
    assert a == b and digest(tmp_path / "a") == digest(tmp_path / "b")

    from satudata_pipeline.contract.sources import load_delivery

    before, after = load_delivery(original["dir"]), load_delivery(tmp_path / "a")
    assert {s.name for s in before.sources} == {s.name for s in after.sources}
    for s in before.sources:
        t = after.source(s.name)
        assert set(t.columns) == set(s.columns)
        assert any(t.columns[f] != s.columns[f] for f in s.columns), s.name
    # the truth came along
    assert (tmp_path / "a" / "truth" / "records.csv").read_bytes() == (
        original["dir"] / "truth" / "records.csv"
    ).read_bytes()


def test_full_run_succeeds(foreign):
    assert foreign["success"], foreign["shapes"]


def test_cleaned_tables_equal_the_original_shape(original, foreign):
    assert foreign["success"]
    got = _clean_tables(foreign["warehouse"])
    assert set(got) == set(original["clean"])
    for name, want in original["clean"].items():
        have = got[name]
        assert list(have.columns) == list(want.columns), name
        assert len(have) == len(want), name
        for col in want.columns:
            same = have[col].astype(str) == want[col].astype(str)
            assert same.all(), (
                f"{name}.{col}: {int((~same).sum())} of {len(want)} rows differ from the original shape; "
                f"shape: {foreign['shapes']['sources'].get(name)}"
            )


def test_linkage_and_verdicts_hold(foreign):
    from satudata_pipeline.link.evaluation import pairwise_scores
    from satudata_pipeline.programs.evaluation import verdict_accuracy

    assert foreign["success"]
    truth_dir = foreign["dir"] / "truth"
    records = pd.read_csv(truth_dir / "records.csv", dtype=str, keep_default_na=False)
    records = records[records.person_key != ""]
    verdicts = pd.read_csv(truth_dir / "verdicts.csv", dtype=str, keep_default_na=False)
    conn = duckdb.connect(str(foreign["warehouse"]), read_only=True)
    try:
        link = pairwise_scores(conn, records)
        scores = verdict_accuracy(conn, verdicts)
    finally:
        conn.close()
    assert link["f1"] >= 0.99, link
    assert scores["n_missing"] == 0, scores
    assert scores["accuracy"] >= 0.97, {k: scores[k] for k in ("accuracy", "confusion")}
    for reason in ("deceased", "moved_out"):
        r = scores["per_reason"][reason]
        assert r["support"] > 0, reason
        assert r["recall"] == 1.0, (reason, r)
