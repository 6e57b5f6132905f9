"""Link review: the uncertain links that change who someone is, explained, for a person to decide.

    <exports>/tinjauan_tautan.xlsx            sheets "Petunjuk", "Pasangan" (one row per pair)
    <exports>/tinjauan_tautan.sources.yaml    the mapping that makes the returned file a
                                              `link_decision` source (data contract section 4)
(files in the exports root, beside the program folders: the link review is not any one program's)

Which pairs (docs/review-loop.md, "Which links are reviewed"): probabilistic links of link.match_pairs
in the band [LOWER, UPPER) around the clustering threshold (0.95), and only those whose decision
would change a person:
- *gabung?* (join?): LOWER <= p < threshold and the two records are in different clusters: a
  `same_person: true` would merge two persons;
- *pisah?* (split?): threshold <= p < UPPER, same cluster, and the link is a bridge of the cluster
  (its other links at or above the threshold, and NIK links, do not hold the two records together
  without it): a `same_person: false` would split the person.
Links at or above UPPER are left alone (one in a hundred wrong at most, and a bridge that strong is
rarely the weak point), links below LOWER are mostly namesakes; exact NIK links are never offered.
Pairs a person already answered (decisions.link_in_force) are not asked again. At most MAX_PAIRS
pairs, nearest the threshold first.

The explanation of each pair is Splink's waterfall in words: the prior (two random records are the
same person), then per comparison the level the pair falls in and its Bayes factor m/u from the
trained model (link.linkage_model), and the resulting probability. Term-frequency adjustments and
the two-NIK rule of link/matching.py are applied on top of these by the model: the probability the
pipeline used is shown next to it. Splink's own waterfall chart (run reports) shows raw values,
NIK included, so it stays a local report; this workbook shows NIKs masked.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import defaultdict
from pathlib import Path

import duckdb
import xlsxwriter
import yaml

from satudata_pipeline.programs.exports import MASKED_NIK, ExportPrivacyError, _formats, _Sheet
from satudata_pipeline.programs.verdicts import mask_nik_sql
from satudata_pipeline.warehouse import insert_rows

LOWER = 0.80
UPPER = 0.999
CLUSTER_THRESHOLD = 0.95  # link/assets.py PersonClustersConfig.cluster_threshold (default)
MAX_PAIRS = 2000
WORKBOOK = "tinjauan_tautan.xlsx"
MAPPING = "tinjauan_tautan.sources.yaml"
SHEET = "Pasangan"
COVER = "Petunjuk"
SAME_PERSON_WORDS = {"ya": "true", "tidak": "false"}
KIND_LABELS = {"join": "gabung? (saat ini dua orang)", "split": "pisah? (saat ini satu orang)"}
SIDE_COLUMNS = ["sumber", "id", "nik_disamarkan", "nama", "tanggal_lahir", "kelurahan"]
LOCKED = (
    ["no", "usulan", "peluang_model"]
    + [f"{c}_a" for c in SIDE_COLUMNS]
    + [f"{c}_b" for c in SIDE_COLUMNS]
    + ["penjelasan"]
)
INPUT = ["orang_sama", "petugas", "tanggal", "catatan"]
COLUMNS = LOCKED + INPUT
LINK_MAPPING = {
    "source_a": "sumber_a",
    "record_id_a": "id_a",
    "source_b": "sumber_b",
    "record_id_b": "id_b",
    "same_person": "orang_sama",
    "decided_by": "petugas",
    "decided_at": "tanggal",
    "note": "catatan",
}
COMPARISON_NAMES = {
    "nama": "nama",
    "tanggal_lahir": "tanggal lahir",
    "jenis_kelamin": "jenis kelamin",
    "nik": "NIK",
    "rumah_tangga": "KK/alamat/kelurahan",
}


def _bridges(
    edges: list[tuple[str, str]], candidates: list[tuple[str, str]]
) -> set[tuple[str, str]]:
    """The candidate edges whose removal disconnects their two ends (graphs of one cluster: small)."""
    adj: dict[str, list[str]] = defaultdict(list)
    for a, b in edges:
        adj[a].append(b)
        adj[b].append(a)
    out = set()
    for a, b in candidates:
        seen, stack = {a}, [a]
        while stack:
            x = stack.pop()
            for y in adj[x]:
                if (x, y) in ((a, b), (b, a)) or y in seen:
                    continue
                seen.add(y)
                stack.append(y)
        if b not in seen:
            out.add((a, b))
    return out


LINK_IN_FORCE = (
    "decisions.link_in_force"  # written by satudata_pipeline.decisions (docs/decisions.md)
)


def _decided_pairs(conn: duckdb.DuckDBPyConnection) -> set[tuple[str, str]]:
    """Pairs a person has already answered (a link decision in force): not asked again."""
    n = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'decisions' "
        "AND table_name = 'link_in_force'"
    ).fetchall()[0][0]
    if not n:
        return set()
    return {
        (min(a, b), max(a, b))
        for a, b in conn.execute(f"SELECT unique_id_a, unique_id_b FROM {LINK_IN_FORCE}").fetchall()
    }


def select_pairs(
    conn: duckdb.DuckDBPyConnection,
    threshold: float = CLUSTER_THRESHOLD,
    lower: float = LOWER,
    upper: float = UPPER,
    limit: int = MAX_PAIRS,
) -> list[tuple[str, str, float, str]]:
    """(unique_id_l, unique_id_r, match_probability, 'join'|'split') of the pairs to review."""
    joins = conn.execute(
        """
        SELECT p.unique_id_l, p.unique_id_r, p.match_probability, 'join'
        FROM link.match_pairs p
        JOIN link.person_clusters a ON a.unique_id = p.unique_id_l
        JOIN link.person_clusters b ON b.unique_id = p.unique_id_r
        WHERE p.link_method = 'probabilistic' AND p.match_probability >= ? AND p.match_probability < ?
          AND a.cluster_id <> b.cluster_id""",
        [lower, threshold],
    ).fetchall()
    splits = conn.execute(
        """
        SELECT p.unique_id_l, p.unique_id_r, p.match_probability, a.cluster_id
        FROM link.match_pairs p
        JOIN link.person_clusters a ON a.unique_id = p.unique_id_l
        JOIN link.person_clusters b ON b.unique_id = p.unique_id_r
        WHERE p.link_method = 'probabilistic' AND p.match_probability >= ? AND p.match_probability < ?
          AND a.cluster_id = b.cluster_id""",
        [threshold, upper],
    ).fetchall()
    split_rows = []
    if splits:
        clusters = sorted({c for *_, c in splits})
        conn.execute("CREATE OR REPLACE TEMP TABLE _rp_clusters (cluster_id VARCHAR)")
        insert_rows(conn, "_rp_clusters", [[c] for c in clusters])
        edges = conn.execute(
            """
            SELECT a.cluster_id, p.unique_id_l, p.unique_id_r
            FROM link.match_pairs p
            JOIN link.person_clusters a ON a.unique_id = p.unique_id_l
            JOIN link.person_clusters b ON b.unique_id = p.unique_id_r AND b.cluster_id = a.cluster_id
            SEMI JOIN _rp_clusters c ON c.cluster_id = a.cluster_id
            WHERE p.link_method = 'exact_nik' OR p.match_probability >= ?""",
            [threshold],
        ).fetchall()
        by_cluster: dict[str, list] = defaultdict(list)
        for c, a, b in edges:
            by_cluster[c].append((a, b))
        cands: dict[str, list] = defaultdict(list)
        for a, b, p, c in splits:
            cands[c].append((a, b, p))
        for c, items in cands.items():
            bridges = _bridges(by_cluster[c], [(a, b) for a, b, _ in items])
            split_rows += [(a, b, p, "split") for a, b, p in items if (a, b) in bridges]
    rows = joins + split_rows
    decided = _decided_pairs(conn)
    rows = [r for r in rows if (r[0], r[1]) not in decided]
    rows.sort(key=lambda r: (abs(r[2] - threshold), r[0], r[1]))
    return rows[:limit]


def _model(conn: duckdb.DuckDBPyConnection) -> dict:
    rows = conn.execute(
        "SELECT model_json FROM link.linkage_model ORDER BY loaded_at DESC LIMIT 1"
    ).fetchall()
    if not rows:
        raise RuntimeError(
            "link review: link.linkage_model is empty (materialize linkage_model first)"
        )
    return json.loads(rows[0][0])


def _levels_sql(settings: dict) -> tuple[str, list[tuple[str, list[dict]]]]:
    """SELECT expressions giving, per comparison, the index of the first level the pair meets."""
    exprs, comps = [], []
    for i, comp in enumerate(settings.get("comparisons", [])):
        name = comp.get("output_column_name") or comp.get("comparison_description") or f"c{i}"
        levels = comp.get("comparison_levels", [])
        whens = " ".join(f"WHEN ({_condition(lvl)}) THEN {j}" for j, lvl in enumerate(levels))
        exprs.append(f"CASE {whens} ELSE NULL END AS lvl_{i}")
        comps.append((name, levels))
    return ", ".join(exprs), comps


def _condition(level: dict) -> str:
    sql = str(level.get("sql_condition", "FALSE")).strip()
    return "TRUE" if sql.upper() == "ELSE" else sql


def _bf(level: dict) -> float | None:
    if level.get("is_null_level"):
        return None
    m, u = level.get("m_probability"), level.get("u_probability")
    if m is None or u is None or u <= 0 or m <= 0:
        return None
    return m / u


def _num(x: float) -> str:
    """An Indonesian number: 1.234,5 (factors below 1 with their significant digits)."""
    text = f"{x:,.1f}" if x >= 10 else f"{x:.3g}"
    return text.replace(",", "_").replace(".", ",").replace("_", ".")


def explain(
    conn: duckdb.DuckDBPyConnection,
    pairs: list[tuple[str, str, float, str]],
    settings: dict | None = None,
) -> dict[tuple[str, str], tuple[str, float]]:
    """Per pair: (the waterfall in words, the model's probability from these factors alone)."""
    if not pairs:
        return {}
    settings = settings or _model(conn)
    stored = {(a, b): p for a, b, p, *_ in pairs}
    exprs, comps = _levels_sql(settings)
    cols = [r[0] for r in conn.execute("DESCRIBE link.person_records").fetchall()]
    side = ", ".join(f'l."{c}" AS "{c}_l", r."{c}" AS "{c}_r"' for c in cols)
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE _rp_pairs (unique_id_l VARCHAR, unique_id_r VARCHAR)"
    )
    insert_rows(conn, "_rp_pairs", [[a, b] for a, b, *_ in pairs])
    # the inner query names every column as Splink's comparison SQL does (`nama_l`, `nama_r`, ...)
    rows = conn.execute(f"""
        SELECT unique_id_l, unique_id_r, {exprs}
        FROM (SELECT {side} FROM _rp_pairs p
              JOIN link.person_records l ON l.unique_id = p.unique_id_l
              JOIN link.person_records r ON r.unique_id = p.unique_id_r)
    """).fetchall()
    prior = float(settings.get("probability_two_random_records_match") or 1e-6)
    out = {}
    for a, b, *lvls in rows:
        weight = math.log2(prior / (1 - prior))
        parts = [
            f"awal: dua catatan acak orang yang sama 1 banding {_num(round((1 - prior) / prior))} "
            f"(bobot {weight:+.1f})"
        ]
        for (name, levels), j in zip(comps, lvls):
            label = COMPARISON_NAMES.get(name, name)
            if j is None:
                parts.append(f"{label}: tidak dinilai")
                continue
            level = levels[j]
            bf = _bf(level)
            text = level.get("label_for_charts") or f"level {j}"
            if bf is None:
                parts.append(f"{label}: {text} (kosong, tidak berpengaruh)")
                continue
            weight += math.log2(bf)
            parts.append(f"{label}: {text} -> x{_num(bf)} (bobot {math.log2(bf):+.1f})")
        p = 2**weight / (1 + 2**weight)
        parts.append(f"total bobot {weight:+.1f} -> peluang {p:.3f} dari faktor ini saja")
        used = stored.get((a, b))
        if used is not None and abs(used - p) >= 0.0005:
            parts.append(
                f"peluang yang dipakai {used:.3f}: model juga menimbang frekuensi nama dan, untuk dua "
                "NIK sah yang berbeda, menghitung tanpa bobot NIK (docs/linkage.md)"
            )
        out[(a, b)] = ("; ".join(parts), p)
    return out


def write_link_review(
    conn: duckdb.DuckDBPyConnection,
    out_root: Path,
    snapshot: str | None = None,
    threshold: float = CLUSTER_THRESHOLD,
    limit: int = MAX_PAIRS,
) -> dict:
    """Write `<out_root>/tinjauan_tautan.xlsx` and its mapping; returns counts by kind."""
    pairs = select_pairs(conn, threshold, limit=limit)
    words = explain(conn, pairs)
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE _rp_order (n INTEGER, unique_id_l VARCHAR, unique_id_r VARCHAR, "
        "p DOUBLE, kind VARCHAR)"
    )
    insert_rows(
        conn, "_rp_order", [[i, a, b, p, k] for i, (a, b, p, k) in enumerate(pairs, start=1)]
    )
    select = f"""
        SELECT o.n, o.kind, o.p, o.unique_id_l, o.unique_id_r,
               l.source AS source_a, l.record_id AS record_id_a, {mask_nik_sql("l.nik")} AS nik_a, l.nama AS nama_a,
               l.tanggal_lahir AS lahir_a, coalesce(l.kelurahan, l.kode_kelurahan) AS kel_a,
               r.source AS source_b, r.record_id AS record_id_b, {mask_nik_sql("r.nik")} AS nik_b, r.nama AS nama_b,
               r.tanggal_lahir AS lahir_b, coalesce(r.kelurahan, r.kode_kelurahan) AS kel_b
        FROM _rp_order o JOIN link.person_records l ON l.unique_id = o.unique_id_l
        JOIN link.person_records r ON r.unique_id = o.unique_id_r"""
    unmasked = conn.execute(
        f"SELECT count(*) FROM ({select}) WHERE NOT regexp_full_match(coalesce(nik_a, '*'), "
        f"'{MASKED_NIK}') OR NOT regexp_full_match(coalesce(nik_b, '*'), '{MASKED_NIK}')"
    ).fetchall()[0][0]
    if unmasked:
        raise ExportPrivacyError(f"link review: refused, {unmasked} pair(s) with an unmasked NIK")
    folder = out_root
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{WORKBOOK}.tmp"
    wb = xlsxwriter.Workbook(
        str(tmp),
        {
            "constant_memory": True,
            "strings_to_numbers": False,
            "strings_to_formulas": False,
            "strings_to_urls": False,
        },
    )
    formats = _formats(wb)
    formats["input"] = wb.add_format({"locked": False, "bg_color": "#FFF2CC"})
    formats["inputdate"] = wb.add_format(
        {"locked": False, "bg_color": "#FFF2CC", "num_format": "yyyy-mm-dd"}
    )
    formats["boldinput"] = wb.add_format({"bold": True, "bg_color": "#FFE699"})
    formats["prob"] = wb.add_format({"num_format": "0.000"})
    counts = {
        "join": sum(1 for *_, k in pairs if k == "join"),
        "split": sum(1 for *_, k in pairs if k == "split"),
    }
    c = _Sheet(wb, COVER, formats)
    c.text(0, 0, "Tinjauan tautan: apakah dua catatan ini orang yang sama?", "bold")
    for i, line in enumerate(
        [
            f"Tanggal data: {snapshot or '-'}. Pasangan: {len(pairs)} ({counts['join']} gabung?, {counts['split']} pisah?).",
            f"Pasangan dipilih: peluang model antara {LOWER} dan {UPPER} di sekitar ambang {threshold}, dan hanya "
            "bila keputusan Anda mengubah siapa orangnya (menggabungkan dua orang atau memisahkan satu orang).",
            "Kolom penjelasan: bobot tiap perbandingan dari model (Splink), dari peluang awal sampai peluang akhir.",
            "Isi orang_sama (ya/tidak), petugas (ID, bukan nama), tanggal (YYYY-MM-DD), catatan. Kolom lain terkunci.",
            "NIK disamarkan. File ini memuat nama dan tanggal lahir: simpan dan kirim hanya lewat jalur resmi.",
            "Kirim kembali ke tim data: 'satudata decisions add tinjauan_tautan.xlsx --data-dir <kiriman>'.",
        ],
        start=2,
    ):
        c.text(i, 0, line)
    c.fit_columns({0: 110})
    s = _Sheet(wb, SHEET, formats)
    for j, h in enumerate(COLUMNS):
        s.text(0, j, h, "boldinput" if h in INPUT else "bold")
    s.ws.freeze_panes(1, 3)
    col = {h: j for j, h in enumerate(COLUMNS)}
    r = 0
    for n, kind, p, a, b, sa, ra, na, ma, la, ka, sb, rb, nb, mb, lb, kb in conn.execute(
        f"SELECT * FROM ({select}) ORDER BY n"
    ).fetchall():
        r += 1
        s.number(r, col["no"], n, "count")
        s.text(r, col["usulan"], KIND_LABELS[kind])
        s.ws.write_number(r, col["peluang_model"], round(p, 4), formats["prob"])
        for suffix, vals in (("a", (sa, ra, na, ma, la, ka)), ("b", (sb, rb, nb, mb, lb, kb))):
            for name, v in zip(SIDE_COLUMNS, vals):
                if v is None:
                    continue
                if isinstance(v, dt.date):
                    s.date(r, col[f"{name}_{suffix}"], v)
                else:
                    s.text(r, col[f"{name}_{suffix}"], str(v))
        s.text(r, col["penjelasan"], words.get((a, b), ("", None))[0])
        for h in INPUT:
            s.ws.write_blank(r, col[h], None, formats["inputdate" if h == "tanggal" else "input"])
    last = max(r, 1)
    s.ws.data_validation(
        1,
        col["orang_sama"],
        last,
        col["orang_sama"],
        {
            "validate": "list",
            "source": list(SAME_PERSON_WORDS),
            "error_message": "Pilih ya atau tidak.",
        },
    )
    s.ws.data_validation(
        1,
        col["petugas"],
        last,
        col["petugas"],
        {
            "validate": "length",
            "criteria": "between",
            "minimum": 1,
            "maximum": 64,
            "error_message": "ID petugas, 1-64 karakter.",
        },
    )
    s.ws.data_validation(
        1,
        col["tanggal"],
        last,
        col["tanggal"],
        {
            "validate": "date",
            "criteria": "between",
            "minimum": dt.datetime(2020, 1, 1),
            "maximum": dt.datetime(2099, 12, 31),
            "error_message": "Isi tanggal yang sah (YYYY-MM-DD).",
        },
    )
    s.ws.autofilter(0, 0, last, len(COLUMNS) - 1)
    s.fit_columns({col["penjelasan"]: 80})
    s.ws.protect(
        "",
        {
            "autofilter": True,
            "format_columns": True,
            "format_rows": True,
            "select_locked_cells": True,
            "select_unlocked_cells": True,
        },
    )
    wb.close()
    tmp.replace(folder / WORKBOOK)
    write_link_mapping(folder / MAPPING, snapshot)
    return {"xlsx": folder / WORKBOOK, "mapping": folder / MAPPING, "pairs": len(pairs), **counts}


def link_mapping(snapshot: str | None) -> dict:
    return {
        "name": f"tautan_{(snapshot or '').replace('-', '')}".rstrip("_"),
        "kind": "link_decision",
        "path": WORKBOOK,
        "format": "xlsx",
        "sheet": SHEET,
        "extracted_at": dt.date.fromisoformat(snapshot) if snapshot else dt.date.today(),
        "freshness_days": 366,
        "date_format": "%Y-%m-%d",
        "description": f"keputusan tinjauan tautan, determinasi {snapshot or '-'}",
        "columns": dict(LINK_MAPPING),
        "values": {"same_person": dict(SAME_PERSON_WORDS)},
    }


def write_link_mapping(path: Path, snapshot: str | None) -> Path:
    head = (
        f"# Mapping of {WORKBOOK} when it comes back filled in: a link_decision source (data contract\n"
        f"# section 4). Register it with: satudata decisions add {WORKBOOK} --data-dir <delivery>\n"
    )
    path.write_text(
        head
        + yaml.safe_dump(
            {"sources": [link_mapping(snapshot)]}, sort_keys=False, allow_unicode=True
        ),
        encoding="utf-8",
    )
    return path


__all__ = [
    "COLUMNS",
    "INPUT",
    "LINK_MAPPING",
    "LOWER",
    "MAPPING",
    "SHEET",
    "UPPER",
    "WORKBOOK",
    "explain",
    "link_mapping",
    "select_pairs",
    "write_link_review",
]
