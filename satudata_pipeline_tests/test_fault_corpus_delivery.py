"""Fault corpus, deliveries: every broken or hostile delivery ends in a clear message, or is published
correctly; none publishes a list that misses a source's rows without the operator having said so.

The shipped sample is published once (session fixture) into a temporary state folder; each case copies
that state (warehouse + trained model), breaks a copy of the sample delivery, runs the real CLI
in-process (`satudata run` / `satudata validate`) and asserts the exit code, the message and that the
previous publication is byte-identical (a hash of every published table, rows in a fixed order).
Cases refused at validation never start a run; cases refused by the completeness gate stop right after
the raw stage. docs/reliability.md ("Fault corpus: deliveries") lists the cases with their results.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import shutil
import time
import tracemalloc
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster_duckdb import DuckDBResource
from publish_helpers import connect

from satudata_pipeline import cli, config
from satudata_pipeline.contract.sources import load_delivery
from satudata_pipeline.sources.assets import build_source_assets

SAMPLE = config.PROJECT_DIR / "data"


def _data_rows(file: str, column: str | None = None) -> int:
    """Data rows of a sample csv (or its rows with a non-empty `column`): the corpus follows the sample."""
    with open(SAMPLE / file, encoding="utf-8-sig", newline="") as fh:
        head = fh.readline()
        fh.seek(0)
        rows = list(csv.DictReader(fh, delimiter=max(",;|\t", key=head.count)))
    return sum(1 for r in rows if column is None or (r[column] or "").strip())


KJP_ROWS = _data_rows("roster_kjp.csv")
KJP_HALF = KJP_ROWS // 2
DEATH_ROWS = _data_rows("dukcapil_kematian.csv")
PUBLISHED_TABLES = (
    "main.golden_person",
    "main.person_source_link",
    "main.beneficiary_review",
    "programs.eligible_not_enrolled",
    "programs.program_summary",
    "main.publication_log",
    "golden.person_id_registry",
    "golden.person_id_members",
)


def published_hash(warehouse: Path) -> str:
    """sha256 over every published table's rows (ORDER BY ALL: independent of storage order)."""
    digest = hashlib.sha256()
    with connect(warehouse) as conn:
        for table in PUBLISHED_TABLES:
            digest.update(table.encode())
            for row in conn.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall():
                digest.update(repr(row).encode())
    return digest.hexdigest()


SHM = Path("/dev/shm")


@pytest.fixture(scope="session")
def fast_root(tmp_path_factory):
    """Where the corpus keeps its state folders and Dagster instances: in memory when the machine has
    /dev/shm (the Dagster instance's sqlite commits, not satudata, dominate a refused run's time)."""
    if SHM.is_dir() and os.access(SHM, os.W_OK):
        import tempfile

        root = Path(tempfile.mkdtemp(prefix="satudata-corpus-", dir=SHM))
        yield root
        shutil.rmtree(root, ignore_errors=True)
    else:
        yield tmp_path_factory.mktemp("corpus")


@pytest.fixture(scope="session")
def sample_publication(fast_root):
    """The sample delivery published once by `satudata run`: its state folder and the published hash."""
    root = fast_root / "base"
    env = {"SATUDATA_STATE_DIR": str(root / "state"), "DAGSTER_HOME": str(root / "dagster_home")}
    saved = {k: os.environ.get(k) for k in (*env, "SATUDATA_DATA_DIR", "SATUDATA_WAREHOUSE")}
    os.environ.update(env)
    os.environ.pop("SATUDATA_WAREHOUSE", None)
    try:
        code = cli.main(["run", "--data-dir", str(SAMPLE), "--log-level", "ERROR"])
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert code == 0
    state = root / "state"
    with connect(state / "warehouse.duckdb") as conn:
        sources = conn.execute(
            "SELECT source, rows, accepted FROM main.publication_sources ORDER BY source"
        ).fetchall()
    assert ("kjp_plus", KJP_ROWS, False) in sources and len(
        sources
    ) == 10  # first publication: every source recorded
    return {"state": state, "hash": published_hash(state / "warehouse.duckdb")}


class Case:
    """A copy of the published state and of the sample delivery, and the CLI run on them."""

    def __init__(self, base: dict, root: Path, tmp_path: Path, monkeypatch, capsys):
        self.base, self.capsys = base, capsys
        self.state = root / "state"
        shutil.copytree(
            base["state"], self.state, ignore=shutil.ignore_patterns("dagster_home", "exports")
        )
        self.warehouse = self.state / "warehouse.duckdb"
        self.data = tmp_path / "delivery"
        shutil.copytree(SAMPLE, self.data, ignore=shutil.ignore_patterns("truth"))
        monkeypatch.setenv("SATUDATA_STATE_DIR", str(self.state))
        monkeypatch.setenv("DAGSTER_HOME", str(root / "dagster_home"))
        monkeypatch.setenv(
            "SATUDATA_DATA_DIR", str(self.data)
        )  # restored after the test (cmd_run sets it)
        monkeypatch.delenv("SATUDATA_WAREHOUSE", raising=False)

    # -- editing the delivery
    def doc(self) -> dict:
        return yaml.safe_load((self.data / "sources.yaml").read_text())

    def write_doc(self, doc: dict) -> None:
        (self.data / "sources.yaml").write_text(
            yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
        )

    def edit_source(self, name: str, **changes) -> None:
        doc = self.doc()
        for s in doc["sources"]:
            if s["name"] == name:
                s.update(changes)
        self.write_doc(doc)

    def keep_lines(self, file: str, n_data_lines: int) -> None:
        """The header and the first n data lines of a csv (cut at a row boundary)."""
        lines = (self.data / file).read_bytes().splitlines(keepends=True)
        (self.data / file).write_bytes(b"".join(lines[: 1 + n_data_lines]))

    # -- running
    def run(self, *args: str) -> tuple[int, str]:
        self.capsys.readouterr()
        code = cli.main(["run", "--data-dir", str(self.data), "--log-level", "ERROR", *args])
        out = self.capsys.readouterr()
        return code, out.out + out.err

    def validate(self) -> tuple[int, str]:
        self.capsys.readouterr()
        code = cli.main(["validate", "--data-dir", str(self.data)])
        out = self.capsys.readouterr()
        return code, out.out + out.err

    def assert_previous_publication_intact(self) -> None:
        assert published_hash(self.warehouse) == self.base["hash"]


@pytest.fixture
def case(sample_publication, fast_root, tmp_path, monkeypatch, capsys):
    root = fast_root / tmp_path.name
    yield Case(sample_publication, root, tmp_path, monkeypatch, capsys)
    shutil.rmtree(root, ignore_errors=True)


def assert_no_personal_data(text: str, *values: str) -> None:
    for value in values:
        assert value not in text


# ---- the completeness gate ---------------------------------------------------------------------
def test_death_file_reduced_to_its_header_blocks(case):
    case.keep_lines("dukcapil_kematian.csv", 0)
    code, out = case.run()
    assert code == 1
    assert "delivery_completeness:delivery_is_complete" in out
    assert (
        "dukcapil_kematian (dukcapil_kematian.csv): holds no rows (only a header); the last publication had "
        f"{DEATH_ROWS}"
    ) in out
    assert "no death registry rows" in out and "every dead recipient is kept and paid" in out
    case.assert_previous_publication_intact()


def test_death_source_deleted_from_sources_yaml_blocks(case):
    doc = case.doc()
    doc["sources"] = [s for s in doc["sources"] if s["name"] != "dukcapil_kematian"]
    case.write_doc(doc)
    code, out = case.run()
    assert code == 1
    assert (
        f"dukcapil_kematian: was in the last publication ({DEATH_ROWS} rows) but is not in this delivery"
        in out
    )
    assert "no death_registry source" in out
    # the kind rule cannot be accepted away: accepting the missing source still publishes nothing
    code, out = case.run("--accept", "dukcapil_kematian")
    assert code == 1 and "this cannot be accepted" in out
    case.assert_previous_publication_intact()


def test_roster_reduced_to_its_header_blocks(case):
    case.keep_lines("roster_kjp.csv", 0)
    code, out = case.run()
    assert code == 1
    assert (
        f"kjp_plus (roster_kjp.csv): holds no rows (only a header); the last publication had {KJP_ROWS}"
        in out
    )
    assert "satudata run --accept kjp_plus" in out
    case.assert_previous_publication_intact()


def test_roster_truncated_at_a_row_boundary_blocks(case):
    case.keep_lines("roster_kjp.csv", KJP_HALF)
    code, out = case.run()
    assert code == 1
    assert (
        f"kjp_plus (roster_kjp.csv): {KJP_HALF} rows, the last publication had {KJP_ROWS} "
        f"({(KJP_ROWS - KJP_HALF) / KJP_ROWS:.0%} fewer; more than 20%"
    ) in out
    case.assert_previous_publication_intact()


def test_truncated_roster_accepted_by_the_operator_publishes_and_records_the_acceptance(case):
    case.keep_lines("roster_kjp.csv", KJP_HALF)
    code, out = case.run("--accept", "kjp_plus")
    assert code == 0, out
    with connect(case.warehouse) as conn:
        run_id = conn.execute(
            "SELECT run_id FROM main.publication_log ORDER BY published_at DESC LIMIT 1"
        ).fetchall()[0][0]
        recorded = conn.execute(
            "SELECT source, rows, previous_rows, finding, accepted FROM main.publication_sources WHERE run_id = ? "
            "ORDER BY source",
            [run_id],
        ).fetchall()
        kjp_rows = conn.execute(
            "SELECT count(*) FROM main.beneficiary_review WHERE program = 'KJP'"
        ).fetchall()[0][0]
    assert ("kjp_plus", KJP_HALF, KJP_ROWS, "dropped", True) in recorded
    assert [r for r in recorded if r[4]] == [
        ("kjp_plus", KJP_HALF, KJP_ROWS, "dropped", True)
    ]  # only what was accepted
    assert len(recorded) == 10 and kjp_rows == KJP_HALF
    assert published_hash(case.warehouse) != case.base["hash"]


def test_retrain_and_full_are_the_runs_asset_config_not_environment_writes(case):
    """`satudata run --retrain --full` reaches the assets as this run's config (visible in the UI's
    run config), and leaves the process environment as it found it."""
    import dagster as dg

    code, out = case.run("--retrain", "--full")
    assert code == 0, out
    assert "SATUDATA_RETRAIN" not in os.environ and "SATUDATA_FULL_RELINK" not in os.environ
    with dg.DagsterInstance.get() as instance:

        def latest(asset: str) -> dict:
            event = instance.get_latest_materialization_event(dg.AssetKey(asset))
            assert event is not None and event.asset_materialization is not None
            return {k: v.value for k, v in event.asset_materialization.metadata.items()}

        model_meta, pairs_meta = latest("linkage_model"), latest("match_pairs")
        run = instance.get_runs(limit=1)[0]  # the run just made
    assert model_meta["trained_this_run"] is True
    assert pairs_meta["linkage_mode"] == "full"
    assert run.run_config["ops"]["linkage_model"] == {"config": {"retrain": True}}
    assert run.run_config["ops"]["match_pairs"] == {"config": {"full_relink": True}}


def test_stray_quote_merging_rows_blocks_naming_the_row_and_line(case):
    path = case.data / "roster_kjp.csv"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    fields = lines[50].split(",")
    fields[2] = '"' + fields[2]  # an opening quote at the start of the name field of data row 50
    lines[50] = ",".join(fields)
    path.write_text("".join(lines), encoding="utf-8")
    code, out = case.run()
    assert code == 1
    assert (
        f"kjp_plus (roster_kjp.csv): row 50, starting on line 51, spans {KJP_ROWS - 49} lines (at most 2 allowed)"
        in out
    )
    assert "stray or missing quote" in out
    assert_no_personal_data(out, fields[2][1:])
    case.assert_previous_publication_intact()


def test_row_cut_in_the_middle_blocks(case):
    path = case.data / "roster_kjp.csv"
    data = path.read_bytes().rstrip(b"\r\n")
    path.write_bytes(
        data[: data.rfind(b",", 0, len(data) - 40)]
    )  # the last row loses its tail, no newline
    code, out = case.run()
    assert code == 1
    assert (
        f"kjp_plus (roster_kjp.csv): the file ends in the middle of row {KJP_ROWS} (line {KJP_ROWS + 1})"
        in out
    )
    case.assert_previous_publication_intact()


# ---- unreadable mapped columns ------------------------------------------------------------------
@pytest.mark.parametrize(
    "source, wrong_format, expected",
    [
        (
            "dukcapil_kematian",
            "%d-%m-%Y",
            "dukcapil_kematian (dukcapil_kematian.csv), column 'TGL_MATI' (tanggal_meninggal): N of N non-empty "
            "values (100%) cannot be read as date_format '%d-%m-%Y', the first at row 1",
        ),
        (
            "dukcapil_penduduk",
            "%Y-%m-%d",
            "dukcapil_penduduk (dukcapil_penduduk.csv), column 'TGL_LHR' (tanggal_lahir): N of N non-empty "
            "values (100%) cannot be read as date_format '%Y-%m-%d', the first at row 1",
        ),
    ],
    ids=["deaths", "births"],
)
def test_wrong_date_format_blocks(case, source, wrong_format, expected):
    case.edit_source(source, date_format=wrong_format)
    code, out = case.run()
    assert code == 1
    assert f"clean_{source}:mapped_values_parse" in out
    # N: the rows left after quarantine (the sample's count, whatever it is): every one unreadable
    pattern = re.escape(expected).replace("N\\ of\\ N", r"(\d+)\ of\ \1")
    assert re.search(pattern, out), expected
    case.assert_previous_publication_intact()


# ---- files stay inside the delivery -------------------------------------------------------------
def _outside_file(case) -> Path:
    outside = case.data.parent / "outside.csv"
    shutil.copy(case.data / "dukcapil_kematian.csv", outside)
    return outside


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("absolute", "path must be relative to the data directory"),
        ("dotdot", "path must stay inside the data directory (no '..')"),
        ("symlink_out", "the file lies outside the data directory"),
        ("fifo", "not a regular file (a folder, pipe or device)"),
        ("directory", "not a regular file (a folder, pipe or device)"),
    ],
)
def test_paths_that_leave_the_delivery_are_refused(case, kind, expected):
    if kind == "absolute":
        path = str(_outside_file(case))
    elif kind == "dotdot":
        _outside_file(case)
        path = "../outside.csv"
    elif kind == "symlink_out":
        (case.data / "link.csv").symlink_to(_outside_file(case))
        path = "link.csv"
    elif kind == "fifo":
        os.mkfifo(case.data / "pipe.csv")
        path = "pipe.csv"
    else:
        (case.data / "folder.csv").mkdir()
        path = "folder.csv"
    case.edit_source("dukcapil_kematian", path=path)
    code, out = case.validate()
    assert code == 2 and "source 'dukcapil_kematian'" in out and expected in out
    code, out = case.run()
    assert code == 2 and expected in out
    case.assert_previous_publication_intact()


def test_symlink_inside_the_delivery_is_accepted(case):
    (case.data / "kematian_link.csv").symlink_to(case.data / "dukcapil_kematian.csv")
    case.edit_source("dukcapil_kematian", path="kematian_link.csv")
    code, out = case.validate()
    assert code == 0, out


# ---- freshness belongs to the operator ----------------------------------------------------------
def test_delivery_cannot_switch_off_freshness_of_an_old_death_registry(case):
    case.edit_source("dukcapil_kematian", extracted_at="2026-04-15", freshness_days=100000)
    code, out = case.validate()
    assert code == 0
    assert "dukcapil_kematian" in out and "200 days old (STALE, limit 35)" in out
    code, out = case.run()
    assert code == 1
    assert "raw_dukcapil_kematian:extract_is_fresh" in out
    assert "extracted 200 days before the snapshot; limit 35 days (the operator's ceiling" in out
    case.assert_previous_publication_intact()


def test_extracted_at_after_the_snapshot_is_refused(case):
    case.edit_source("dukcapil_kematian", extracted_at="2027-06-01")
    code, out = case.validate()
    assert code == 2
    assert "source 'dukcapil_kematian', file 'dukcapil_kematian.csv', column 'extracted_at'" in out
    assert "extracted_at is 212 days after the snapshot_date" in out
    code, _ = case.run()
    assert code == 2
    case.assert_previous_publication_intact()


def test_stale_roster_is_reported_as_a_warning(case):
    case.edit_source("kaj", extracted_at="2026-08-01")
    code, out = case.validate()
    assert code == 0 and "92 days old (STALE, limit 35)" in out
    # the run publishes with this warning (printed in the CLI summary); here: the check result itself
    assets, checks = build_source_assets(load_delivery(case.data))
    raw_kaj = [a for a in assets if a.key == dg.AssetKey("raw_kaj")]
    fresh = [c for c in checks if any(k.asset_key == dg.AssetKey("raw_kaj") for k in c.check_keys)]
    result = dg.materialize(
        [*raw_kaj, *fresh],
        resources={"warehouse": DuckDBResource(database=str(case.state / "scratch.duckdb"))},
        raise_on_error=False,
    )
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.passed is False and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert "kaj was extracted 92 days before the snapshot; limit 35 days" in evaluation.description


# ---- hostile sources.yaml -----------------------------------------------------------------------
def test_yaml_alias_bomb_is_refused_quickly_with_a_short_message(case):
    bomb = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        bomb.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    text = (case.data / "sources.yaml").read_text()
    text = text.replace("kind: civil_registry", "kind: *i", 1)
    (case.data / "sources.yaml").write_text("\n".join(bomb) + "\n" + text)
    tracemalloc.start()
    started = time.monotonic()
    code, out = case.validate()
    seconds = time.monotonic() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert code == 2
    assert "sources.yaml uses a YAML anchor or alias (& or *) at line 1" in out
    assert len(out) < 1000 and "lol" not in out
    assert seconds < 5 and peak < 20 * 2**20
    case.assert_previous_publication_intact()


def test_oversized_sources_yaml_is_refused_before_parsing(case):
    with open(case.data / "sources.yaml", "a") as fh:
        fh.write("# " + "x" * 300_000 + "\n")
    code, out = case.validate()
    assert code == 2 and "sources.yaml is larger than 262144 bytes" in out and len(out) < 1000


def test_unknown_kind_is_named_not_echoed(case):
    case.edit_source("dukcapil_kematian", kind="x" * 5000)
    code, out = case.validate()
    assert code == 2
    assert "source 'dukcapil_kematian', field 'kind': unknown kind; expected one of" in out
    assert "xxxx" not in out and len(out) < 1000


# ---- hostile values -----------------------------------------------------------------------------
def test_nul_byte_and_ten_megabyte_name_are_quarantined_and_never_reach_linkage(case):
    path = case.data / "roster_kjp.csv"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    ids = []
    for index, value in ((10, None), (20, "x" * 10_000_000)):
        fields = lines[index].split(",")
        ids.append(fields[0])
        fields[2] = fields[2][:3] + "\x00" + fields[2][3:] if value is None else value
        lines[index] = ",".join(fields)
    path.write_text("".join(lines), encoding="utf-8")
    code, out = case.run()
    assert code == 0, out
    with connect(case.warehouse) as conn:
        reasons = dict(
            conn.execute(
                "SELECT record_id, reason FROM clean.quarantine WHERE source = 'kjp_plus' AND record_id IN (?, ?)",
                ids,
            ).fetchall()
        )
        longest = conn.execute("SELECT max(length(raw_values)) FROM clean.quarantine").fetchall()[
            0
        ][0]
        verdicts = conn.execute(
            "SELECT record_id, verdict FROM main.beneficiary_review WHERE source = 'kjp_plus' AND record_id IN (?, ?)",
            ids,
        ).fetchall()
        in_linkage = conn.execute(
            "SELECT count(*) FROM link.person_records WHERE source = 'kjp_plus' AND record_id IN (?, ?)",
            ids,
        ).fetchall()[0][0]
        odd_names = conn.execute(
            "SELECT count(*) FROM main.golden_person WHERE length(nama) > 1000 OR contains(nama, chr(0))"
        ).fetchall()[0][0]
    assert reasons == {ids[0]: "control_character", ids[1]: "field_too_long"}
    assert longest < 5000  # the quarantine keeps the start of a 10 MB value, not all of it
    assert in_linkage == 0 and odd_names == 0
    assert sorted(v for _, v in verdicts) == ["review", "review"]  # never kept or removed blind
    assert "xxxxxxxxxx" not in out


# ---- the gate's rules on their own (no run) -----------------------------------------------------
def _gate_delivery(tmp_path: Path, kinds: list[str]):
    from conftest import TINY_CSV, TINY_YAML

    doc = yaml.safe_load(TINY_YAML)
    base = doc["sources"][0]
    doc["sources"] = []
    for i, kind in enumerate(kinds):
        entry = {**yaml.safe_load(yaml.safe_dump(base)), "name": f"s{i}_{kind}", "kind": kind}
        if kind == "death_registry":
            entry["columns"]["tanggal_meninggal"] = "TGL_LHR"
        if kind == "migration_registry":
            entry["columns"].update(tanggal_pindah="TGL_LHR", kode_wilayah_tujuan="KEL")
        if kind == "program_roster":
            entry["program"] = "KJP"
        doc["sources"].append(entry)
    data = tmp_path / "gate"
    data.mkdir(parents=True)
    (data / "sources.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (data / "penduduk.csv").write_text(TINY_CSV)
    from satudata_pipeline.contract.sources import parse_delivery

    return parse_delivery(data, {"KJP"})


def _assess(delivery, rows: dict[str, int], previous: dict[str, int] | None = None, accept=()):
    import duckdb

    from satudata_pipeline.sources.assets import record_file_stats
    from satudata_pipeline.sources.completeness import assess
    from satudata_pipeline.sources.readers import ReadStats

    conn = duckdb.connect()
    for s in delivery.sources:
        record_file_stats(
            conn,
            s,
            "hash",
            ReadStats(rows=rows.get(s.name, 5), physical_records=rows.get(s.name, 5)),
        )
    if previous is not None:
        conn.execute("CREATE TABLE main.publication_log (run_id VARCHAR, published_at TIMESTAMP)")
        conn.execute("INSERT INTO main.publication_log VALUES ('r1', now())")
        conn.execute(
            "CREATE TABLE main.publication_sources (run_id VARCHAR, source VARCHAR, kind VARCHAR, "
            "rows BIGINT, finding VARCHAR)"
        )
        for name, n in previous.items():
            conn.execute(
                "INSERT INTO main.publication_sources VALUES ('r1', ?, 'civil_registry', ?, NULL)",
                [name, n],
            )
    frame = assess(conn, delivery, set(accept))
    return {
        (r.source, r.kind): (r.finding, bool(r.blocks)) for r in frame.itertuples() if r.finding
    }


def test_gate_linkage_only_delivery_needs_no_registries(tmp_path):
    delivery = _gate_delivery(tmp_path, ["civil_registry"])
    assert _assess(delivery, {}) == {}


def test_gate_rosters_need_every_kind_a_verdict_depends_on(tmp_path):
    delivery = _gate_delivery(tmp_path, ["civil_registry", "death_registry", "program_roster"])
    assert _assess(delivery, {}) == {
        (None, "migration_registry"): ("kind_missing", True),
        (None, "welfare_registry"): ("kind_missing", True),
    }
    full = _gate_delivery(
        tmp_path / "full",
        [
            "civil_registry",
            "death_registry",
            "migration_registry",
            "welfare_registry",
            "program_roster",
        ],
    )
    assert _assess(full, {}) == {}
    # an empty death registry: its own (acceptable) finding and the kind rule (not acceptable)
    found = _assess(full, {"s1_death_registry": 0}, accept=["s1_death_registry"])
    assert found == {
        ("s1_death_registry", "death_registry"): ("empty", False),
        (None, "death_registry"): ("kind_missing", True),
    }


def test_gate_drop_needs_both_the_share_and_the_minimum_rows(tmp_path):
    delivery = _gate_delivery(tmp_path, ["civil_registry"])
    name = delivery.sources[0].name
    assert _assess(delivery, {name: 32}, {name: 40}) == {}  # 20% but only 8 rows fewer
    assert _assess(delivery, {name: 81}, {name: 100}) == {}  # 19 fewer, 19%
    assert _assess(delivery, {name: 79}, {name: 100}) == {
        (name, "civil_registry"): ("dropped", True)
    }
    assert _assess(delivery, {name: 79}, {name: 100}, accept=[name]) == {
        (name, "civil_registry"): ("dropped", False)
    }
    assert _assess(delivery, {name: 500}, {name: 100, "gone": 7}) == {
        ("gone", "civil_registry"): ("missing", True)
    }
