"""`satudata`: generate a synthetic delivery, validate a delivery, run the determination, open the UI."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from satudata_pipeline import config

DAGSTER_YAML = """\
# Written by `satudata`. One run at a time: the DuckDB warehouse allows a single writer, so a
# scheduled run, a sensor run and a run launched from the UI queue behind each other.
concurrency:
  runs:
    max_concurrent_runs: 1
telemetry:
  enabled: false
"""


def dagster_home() -> Path:
    """A persistent Dagster instance in the state folder, so runs from the CLI show in the UI."""
    home = Path(os.environ.get("DAGSTER_HOME") or config.state_dir() / "dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    yaml_path = home / "dagster.yaml"
    if not yaml_path.exists():
        yaml_path.write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def cmd_generate(args: argparse.Namespace) -> int:
    from satudata_pipeline.synthetic import generate

    summary = generate(args.persons, seed=args.seed, out=Path(args.out))
    print(f"wrote a delivery of {args.persons} persons (seed {args.seed}) to {args.out}")
    for key, value in summary.items():
        print(f"  {key}: {value}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from satudata_pipeline.contract.sources import ContractError, load_delivery

    try:
        delivery = load_delivery(Path(args.data_dir) if args.data_dir else None)
    except ContractError as exc:
        print(f"invalid delivery: {exc}", file=sys.stderr)
        return 2
    print(f"{delivery.data_dir}: {len(delivery.sources)} sources, snapshot {delivery.snapshot_date}: valid")
    for s in delivery.sources:
        age, limit = delivery.days_old(s), delivery.freshness_limit(s)
        state = "fresh" if age <= limit else "STALE"
        print(f"  {s.name:<28} {s.kind:<20} {s.file_format:<8} {age:>4} days old ({state}, limit {limit})")
    return 0


def failed_error_checks(result) -> list[str]:
    """Names of checks that failed with ERROR severity in a run (blocking or not)."""
    import dagster as dg

    failed = []
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            evaluation = getattr(data, "asset_check_evaluation", data)
            if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR:
                failed.append(f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}")
    return failed


def blocking_explanations(result) -> list[str]:
    """What the failed ERROR checks say (the completeness gate, unreadable columns): source, file,
    column and row, never a value."""
    import dagster as dg

    out = []
    for evaluation in result.get_asset_check_evaluations():
        if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR and evaluation.description:
            out.append(evaluation.description)
    return out


def cmd_run(args: argparse.Namespace) -> int:
    if args.data_dir:
        os.environ["SATUDATA_DATA_DIR"] = str(Path(args.data_dir).resolve())
    if args.retrain:
        os.environ["SATUDATA_RETRAIN"] = "1"
    dagster_home()
    import dagster as dg

    from satudata_pipeline.automation import FULL_JOB
    from satudata_pipeline.contract.sources import ContractError

    try:
        from satudata_pipeline.contract.sources import load_delivery
        from satudata_pipeline.definitions import build_defs

        # built for this data directory (the module's `defs` is built once per process)
        defs = build_defs(load_delivery())
    except ContractError as exc:
        print(f"invalid delivery: {exc}", file=sys.stderr)
        return 2
    run_config: dict = {"loggers": {"console": {"config": {"log_level": args.log_level}}}}
    if args.accept:
        # the operator accepts, for this run only, a missing / empty / shrunken source (recorded with
        # the publication in main.publication_sources)
        run_config["ops"] = {"delivery_completeness": {"config": {"accept": sorted(set(args.accept))}}}
    started = time.monotonic()
    with dg.DagsterInstance.get() as instance:
        result = defs.resolve_job_def(FULL_JOB).execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config=run_config,
        )
    seconds = time.monotonic() - started
    failed = failed_error_checks(result)
    print()
    print(f"run {result.run_id}: {'succeeded' if result.success else 'FAILED'} in {seconds:.1f} s")
    if failed:
        print("checks failed with ERROR severity: " + ", ".join(failed))
        for text in blocking_explanations(result):
            print(text)
    print(f"warehouse (DuckDB): {config.warehouse_path()}")
    print("  published tables: main.golden_person, main.person_source_link, main.beneficiary_review,")
    print("    programs.eligible_not_enrolled, programs.program_summary (each publication logged in main.publication_log)")
    query = "SELECT program, verdict, count(*) AS n FROM beneficiary_review GROUP BY ALL ORDER BY ALL"
    print(f"  e.g. .venv/bin/python -c \"import duckdb; duckdb.connect('{config.warehouse_path()}', read_only=True).sql('{query}').show()\"")
    print(f"exports per program: {config.exports_dir()}")
    print(f"reports (linkage charts, run summary): {config.reports_dir()}")
    print("open the UI (lineage, runs, checks): ./scripts/ui.sh  ->  http://127.0.0.1:3000")
    return 0 if result.success and not failed else 1


def cmd_ui(args: argparse.Namespace) -> int:
    dagster_home()
    workspace = config.PROJECT_DIR / "workspace.yaml"
    cmd = [sys.executable, "-m", "dagster", "dev", "-w", str(workspace), "-h", args.host, "-p", str(args.port)]
    return subprocess.call(cmd, cwd=config.PROJECT_DIR)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="satudata", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", help="write a synthetic delivery with ground truth")
    p.add_argument("--persons", type=int, default=4000)
    p.add_argument("--seed", type=int, default=20261101)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("validate", help="check a data directory against the data contract")
    p.add_argument("--data-dir", help="default: SATUDATA_DATA_DIR or the shipped sample")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("run", help="materialize every asset (the full determination) with its checks")
    p.add_argument("--data-dir", help="default: SATUDATA_DATA_DIR or the shipped sample")
    p.add_argument("--retrain", action="store_true", help="retrain the linkage model")
    p.add_argument("--accept", action="append", default=[], metavar="SOURCE",
                   help="accept, for this run, that SOURCE is missing, empty or shrank beyond the limit since "
                        "the last publication (repeatable; recorded in main.publication_sources)")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("ui", help="start the Dagster UI (binds to 127.0.0.1)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.set_defaults(func=cmd_ui)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
