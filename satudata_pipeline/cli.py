"""`satudata`: generate a synthetic delivery, validate a delivery, run the determination, show a roster row's
history, open the UI.

Exit codes of `satudata run`: 0 published with no check failing at ERROR; 1 the run failed or a
check failed at ERROR; 2 the delivery or a setting is invalid; 3 another run holds the warehouse
(after waiting `SATUDATA_LOCK_WAIT_SECONDS`). Every command works with umask 077 (owner-only files).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from satudata_pipeline import config

EXIT_FAILED, EXIT_INVALID, EXIT_BUSY = 1, 2, 3

DAGSTER_YAML = """\
# Written by `satudata`. One run at a time: the DuckDB warehouse allows a single writer, so a
# scheduled run, a sensor run and a run launched from the UI queue behind each other. (Every run
# also holds the warehouse lock, <warehouse>.lock, which keeps `satudata run` out as well.)
concurrency:
  runs:
    max_concurrent_runs: 1
telemetry:
  enabled: false
# Splink's own messages (training passes, warnings) and satudata's progress logs go into each run's
# log in the UI, not only to the terminal. Neither logs a NIK or a name (docs/privacy.md).
python_logs:
  python_log_level: INFO
  managed_python_loggers:
    - satudata_pipeline
    - splink
"""


def dagster_home() -> Path:
    """A persistent Dagster instance in the state folder, so runs from the CLI show in the UI."""
    home = Path(os.environ.get("DAGSTER_HOME") or config.state_dir() / "dagster_home")
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    yaml_path = home / "dagster.yaml"
    # an instance file satudata wrote earlier is brought up to date; one an operator wrote is theirs
    if not yaml_path.exists() or (
        yaml_path.read_text().startswith("# Written by `satudata`")
        and yaml_path.read_text() != DAGSTER_YAML
    ):
        yaml_path.write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def cmd_generate(args: argparse.Namespace) -> int:
    from satudata_pipeline.synthetic import generate

    if args.next_month:
        from satudata_pipeline.synthetic.next_month import next_month

        try:
            summary = next_month(Path(args.next_month), Path(args.out), seed=args.seed)
        except ValueError as exc:
            print(f"cannot write next month: {exc}", file=sys.stderr)
            return 2
        print(f"wrote next month's delivery of {args.next_month} to {args.out}")
        for key, value in summary.items():
            print(f"  {key}: {value}")
        return 0
    seed = 20261101 if args.seed is None else args.seed
    summary = generate(args.persons, seed=seed, out=Path(args.out))
    print(f"wrote a delivery of {args.persons} persons (seed {seed}) to {args.out}")
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
    print(
        f"{delivery.data_dir}: {len(delivery.sources)} sources, snapshot {delivery.snapshot_date}: valid"
    )
    for s in delivery.sources:
        age, limit = delivery.days_old(s), delivery.freshness_limit(s)
        state = "fresh" if age <= limit else "STALE"
        print(
            f"  {s.name:<28} {s.kind:<20} {s.file_format:<8} {age:>4} days old ({state}, limit {limit})"
        )
    return 0


def failed_checks(result, severity: str = "ERROR") -> list[str]:
    """Names of checks that failed with this severity ("ERROR" or "WARN") in a run (blocking or not)."""
    failed = []
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            evaluation = getattr(data, "asset_check_evaluation", data)
            if not evaluation.passed and evaluation.severity.value == severity:
                failed.append(f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}")
    return failed


def blocking_explanations(result) -> list[str]:
    """What the failed ERROR checks say (the completeness gate, unreadable columns): source, file,
    column and row, never a value."""
    import dagster as dg

    out = []
    for evaluation in result.get_asset_check_evaluations():
        if (
            not evaluation.passed
            and evaluation.severity == dg.AssetCheckSeverity.ERROR
            and evaluation.description
        ):
            out.append(evaluation.description)
    return out


def failed_error_checks(result) -> list[str]:
    """Names of checks that failed with ERROR severity in a run (blocking or not)."""
    return failed_checks(result, "ERROR")


def warehouse_busy_message(result) -> str | None:
    """The message of `WarehouseBusy` if the run failed because another run holds the warehouse."""
    for event in result.all_events:
        error = getattr(event.event_specific_data, "error", None)
        seen = 0
        while error is not None and seen < 10:
            if error.cls_name == "WarehouseBusy":
                return error.message.split("WarehouseBusy: ", 1)[-1].strip()
            error = error.cause or error.context
            seen += 1
    return None


CODE_LOCATION = "satudata"  # workspace.yaml's location_name
DEFINITIONS_MODULE = "satudata_pipeline.definitions"


def full_determination_job():
    """The full job for the delivery in SATUDATA_DATA_DIR, built afresh (a module-level function, so
    Dagster can reconstruct it; the module's own `defs` is built once per process)."""
    from satudata_pipeline.automation import FULL_JOB
    from satudata_pipeline.contract.sources import load_delivery
    from satudata_pipeline.definitions import build_defs

    return build_defs(load_delivery()).resolve_job_def(FULL_JOB)


def launch_in_code_location(instance, run_config: dict, tags: dict):
    """Execute the full job in this process as a run *of the code location* `satudata`.

    The run carries the same origin as one launched from the UI (location `satudata`, repository
    `__repository__`, the same job snapshot), so the Overview timeline, the job's Runs tab and
    re-execution treat it like any other run; it still executes here, one step after another, so
    the warehouse lock, exit codes and a killed CLI behave as before (docs/reliability.md)."""
    import dagster as dg
    from dagster._core.definitions.reconstruct import ReconstructableJob
    from dagster._core.execution.api import execute_run
    from dagster._core.remote_origin import (
        ManagedGrpcPythonEnvCodeLocationOrigin,
        RemoteJobOrigin,
        RemoteRepositoryOrigin,
    )
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    from satudata_pipeline.automation import FULL_JOB

    # Dagster keeps the last reconstructed job per process; a second `run` in one process (tests, a
    # notebook) may name another delivery, so build it afresh
    ReconstructableJob.get_definition.cache_clear()
    ReconstructableJob.get_repository_definition.cache_clear()
    recon = dg.reconstructable(full_determination_job)
    job_def = recon.get_definition()
    target = LoadableTargetOrigin(
        executable_path=sys.executable,
        module_name=DEFINITIONS_MODULE,
        working_directory=str(config.PROJECT_DIR),
    )
    origin = RemoteJobOrigin(
        repository_origin=RemoteRepositoryOrigin(
            code_location_origin=ManagedGrpcPythonEnvCodeLocationOrigin(target, CODE_LOCATION),
            repository_name="__repository__",
        ),
        job_name=FULL_JOB,
    )
    run = instance.create_run_for_job(
        job_def=job_def,
        run_config=run_config,
        tags=tags,
        remote_job_origin=origin,
        job_code_origin=recon.get_python_origin(),
    )
    return execute_run(recon, run, instance)


def cmd_run(args: argparse.Namespace) -> int:
    if args.data_dir:
        # The one setting passed through the environment, because it is needed when the definitions
        # load, not when the run starts: the code location's assets are generated from the delivery's
        # sources.yaml, and the run is executed as a run of that code location, whose job Dagster
        # reconstructs here by loading it (`full_determination_job`, a function without arguments,
        # and the module `satudata_pipeline.definitions`). Everything else this run needs travels
        # as run config (--retrain, --full, --accept) or resource config (definitions.run_resources).
        os.environ["SATUDATA_DATA_DIR"] = str(Path(args.data_dir).resolve())
    config.owner_only()
    dagster_home()
    import dagster as dg

    from satudata_pipeline import warehouse_lock
    from satudata_pipeline.automation import month_tags
    from satudata_pipeline.contract.sources import ContractError

    try:
        warehouse_lock.lock_wait_seconds()
    except ValueError as exc:
        print(f"invalid setting: {exc}", file=sys.stderr)
        return EXIT_INVALID

    try:
        from satudata_pipeline.contract.sources import load_delivery
        from satudata_pipeline.definitions import build_defs

        # built for this data directory (the module's `defs` is built once per process)
        defs_delivery = load_delivery()
        build_defs(
            defs_delivery
        )  # a delivery the code location could not load fails here, not in the run
    except ContractError as exc:
        print(f"invalid delivery: {exc}", file=sys.stderr)
        return 2
    run_config: dict = {"loggers": {"console": {"config": {"log_level": args.log_level}}}}
    ops: dict = {}
    if args.accept:
        # the operator accepts, for this run only, a missing / empty / shrunken source (recorded with
        # the publication in main.publication_sources)
        ops["delivery_completeness"] = {"config": {"accept": sorted(set(args.accept))}}
    # --retrain / --full are this run's asset config (shown in the run's config in the UI); the
    # data directory alone travels as SATUDATA_DATA_DIR (see above)
    if args.retrain:
        ops["linkage_model"] = {"config": {"retrain": True}}
    if args.full:
        ops["match_pairs"] = {"config": {"full_relink": True}}
    if ops:
        run_config["ops"] = ops
    started = time.monotonic()
    with dg.DagsterInstance.get() as instance:
        result = launch_in_code_location(
            instance,
            run_config=run_config,
            # which warehouse this run writes and which process runs it: a later run that finds this
            # process gone while the run is still "started" reports it failed (warehouse_lock.py)
            tags={
                warehouse_lock.TAG_WAREHOUSE_FILE: str(config.warehouse_path()),
                warehouse_lock.TAG_PID: str(os.getpid()),
                # which month this run determines, at a glance in the Runs list (docs/monthly.md)
                **month_tags(defs_delivery),
            },
        )
    seconds = time.monotonic() - started
    busy = warehouse_busy_message(result)
    if busy:
        print(f"\nrun {result.run_id}: not started: {busy}", file=sys.stderr)
        return EXIT_BUSY
    failed = failed_checks(result, "ERROR")
    warned = failed_checks(result, "WARN")
    print()
    print(f"run {result.run_id}: {'succeeded' if result.success else 'FAILED'} in {seconds:.1f} s")
    if failed:
        print("checks failed with ERROR severity: " + ", ".join(failed))
        for text in blocking_explanations(result):
            print(text)
    if warned:
        print("checks failed with WARN severity (not blocking; look at them): " + ", ".join(warned))
    print(f"warehouse (DuckDB): {config.warehouse_path()}")
    print(
        "  published tables: main.golden_person, main.person_source_link, main.beneficiary_review,"
    )
    print(
        "    programs.eligible_not_enrolled, programs.program_summary (each publication logged in main.publication_log)"
    )
    query = (
        "SELECT program, verdict, count(*) AS n FROM beneficiary_review GROUP BY ALL ORDER BY ALL"
    )
    print(
        f"  e.g. .venv/bin/python -c \"import duckdb; duckdb.connect('{config.warehouse_path()}', read_only=True).sql('{query}').show()\""
    )
    print(f"exports per program: {config.exports_dir()}")
    print(
        f"reports of this run (linkage charts, run summary): {config.run_reports_dir(result.run_id)}"
    )
    print("open the UI (lineage, runs, checks): ./scripts/ui.sh  ->  http://127.0.0.1:3000")
    return 0 if result.success and not failed else EXIT_FAILED


def cmd_history(args: argparse.Namespace) -> int:
    """The determinations of one roster row or person over time (NIK masked, no name); without a row
    or person, the list of determinations. Reads the warehouse read-only."""
    import duckdb

    from satudata_pipeline.history import query

    path = config.warehouse_path()
    if not path.exists():
        print(f"no warehouse at {path}: nothing has been published yet", file=sys.stderr)
        return EXIT_INVALID
    if (args.program is None) != (args.record_id is None):
        print(
            "give --program and --record-id together (a roster row), or --person-id",
            file=sys.stderr,
        )
        return EXIT_INVALID
    try:
        conn = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        print(
            f"cannot read the warehouse {path} (a run may be writing it): {type(exc).__name__}",
            file=sys.stderr,
        )
        return EXIT_BUSY
    with conn:
        if args.person_id:
            earlier = query.earlier_ids(conn, args.person_id)
            rows, what = (
                query.person_history(conn, args.person_id),
                f"person {args.person_id}"
                + (f" (earlier ids: {', '.join(earlier)})" if earlier else ""),
            )
        elif args.program:
            rows, what = (
                query.row_history(conn, args.program, args.record_id),
                f"roster row {args.program} / {args.record_id}",
            )
        else:
            dets = query.determinations(conn)
            print(f"{len(dets)} determination(s) in {path}")
            for d in dets:
                print(
                    f"  #{d['determination_id']}  for {str(d['snapshot_date'])[:7]} (snapshot {d['snapshot_date']})"
                    f"  published {str(d['published_at'])[:16]}  run {(d['run_id'] or '')[:8]}"
                    f"  delivery {d['delivery_fingerprint']}  model {d['model_version']}"
                    f"  rules {d['rules_version']}  rows {d['review_rows']}"
                )
            return 0
    if not rows:
        print(f"{what}: not in any published determination")
        return EXIT_FAILED
    print(
        f"{what}: {len(rows)} row(s) over {len({r['determination_id'] for r in rows})} determination(s)"
    )
    print(query.format_rows(rows))
    return 0


UI_STOP_SECONDS = (
    30.0  # how long `dagster dev` gets to shut its services down before they are killed
)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, from /proc (Linux)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(stat.parent.name))
    return members


def _group_alive(pgid: int) -> bool:
    if Path("/proc/self/stat").exists():
        return bool(group_members(pgid))
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_process_group(pgid: int, grace: float = UI_STOP_SECONDS) -> None:
    """Terminate whatever is left of a process group (SIGTERM, then SIGKILL after `grace` seconds)."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        if not _group_alive(pgid):
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + wait
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)


def supervise(cmd: list[str], cwd: Path, grace: float = UI_STOP_SECONDS) -> int:
    """Run `cmd` in its own process group and take every process of that group down with us.

    SIGTERM, SIGINT or SIGHUP to `satudata ui` is passed on to `dagster dev` as SIGINT (its orderly
    shutdown of the webserver, the daemon and the code servers); whatever is still running after
    `grace` seconds, or after `dagster dev` exited, gets SIGTERM and then SIGKILL. Runs launched from
    the UI run in the same group and stop too (the next run recovers them, docs/reliability.md)."""
    proc = subprocess.Popen(cmd, cwd=cwd, start_new_session=True)
    received: list[int] = []

    def forward(signum, _frame):
        received.append(signum)
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGINT)

    handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous = {s: signal.signal(s, forward) for s in handled}
    rc = None
    try:
        stop_by = None
        while rc is None:
            try:
                rc = proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                if received and stop_by is None:
                    stop_by = time.monotonic() + grace
                if stop_by is not None and time.monotonic() > stop_by:
                    break  # dagster dev did not finish its shutdown in time: the group is stopped below
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        stop_process_group(proc.pid, grace=5.0)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    return 128 + received[0] if received else (rc if rc is not None else EXIT_FAILED)


def cmd_ui(args: argparse.Namespace) -> int:
    config.owner_only()
    if args.reports_port is None:
        args.reports_port = config.reports_port()
    dagster_home()
    workspace = config.PROJECT_DIR / "workspace.yaml"
    cmd = [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-w",
        str(workspace),
        "-h",
        args.host,
        "-p",
        str(args.port),
    ]
    server = None
    if args.reports_port:
        from satudata_pipeline import report_server

        # the charts and run summaries the assets link to (config.report_url), on loopback like
        # the webserver; behind a proxy set SATUDATA_REPORTS_URL (docs/privacy.md)
        server = report_server.start(config.reports_dir(), args.host, args.reports_port)
        print(
            f"run reports (linked from the assets' metadata): http://{args.host}:{args.reports_port}/"
        )
    try:
        return supervise(cmd, cwd=config.PROJECT_DIR)
    finally:
        if server is not None:
            server.shutdown()


def cmd_decisions(args: argparse.Namespace) -> int:
    """`decisions add`: register a returned worklist / link review file; `decisions officer`: the
    generator plays the officer (fills a run's worklists from the synthetic truth)."""
    from satudata_pipeline.programs.worklists import RegisterError, register_decision_file

    if args.action == "add":
        if not (args.data_dir or os.environ.get("SATUDATA_DATA_DIR")):
            print(
                "not added: name the delivery with --data-dir (or SATUDATA_DATA_DIR); the shipped sample "
                "is not changed",
                file=sys.stderr,
            )
            return EXIT_INVALID
        data_dir = Path(args.data_dir) if args.data_dir else config.data_dir()
        try:
            done = register_decision_file(
                Path(args.file), data_dir, args.mapping and Path(args.mapping), args.name
            )
        except RegisterError as exc:
            print(f"not added: {exc}", file=sys.stderr)
            return EXIT_INVALID
        print(
            f"added source '{done['name']}' ({done['kind']}, {done['path']}, extracted_at "
            f"{done['extracted_at']}) to {data_dir / 'sources.yaml'}"
        )
        return 0
    from satudata_pipeline.synthetic.officer import play_officer

    summary = play_officer(Path(args.exports), Path(args.truth), Path(args.out), seed=args.seed)
    for key, value in summary.items():
        print(f"  {key}: {value}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="satudata", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", help="write a synthetic delivery with ground truth")
    p.add_argument("--persons", type=int, default=4000)
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="random seed (default 20261101; with --next-month: derived from the delivery's)",
    )
    p.add_argument("--out", required=True)
    p.add_argument(
        "--next-month",
        metavar="FROM_DIR",
        help="write the delivery one month after the generated delivery in FROM_DIR "
        "(births, deaths, moves, enrollments, exits, corrections; truth/changes.csv)",
    )
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("validate", help="check a data directory against the data contract")
    p.add_argument("--data-dir", help="default: SATUDATA_DATA_DIR or the shipped sample")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser(
        "run", help="materialize every asset (the full determination) with its checks"
    )
    p.add_argument("--data-dir", help="default: SATUDATA_DATA_DIR or the shipped sample")
    p.add_argument("--retrain", action="store_true", help="retrain the linkage model")
    p.add_argument(
        "--full",
        action="store_true",
        help="relink every record in this run (not only new and changed ones; SATUDATA_FULL_RELINK=1 "
        "does it in every run)",
    )
    p.add_argument(
        "--accept",
        action="append",
        default=[],
        metavar="SOURCE",
        help="accept, for this run, that SOURCE is missing, empty or shrank beyond the limit since "
        "the last publication (repeatable; recorded in main.publication_sources)",
    )
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "history", help="the determinations of a roster row or person over time (NIK masked)"
    )
    p.add_argument("--program", help="program code of the roster row (with --record-id)")
    p.add_argument("--record-id", help="the roster row's record_id (with --program)")
    p.add_argument("--person-id", help="a golden person's stable person_id: all their roster rows")
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("ui", help="start the Dagster UI (binds to 127.0.0.1)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.add_argument(
        "--reports-port",
        type=int,
        default=None,
        help="port serving the run reports the UI links to (default SATUDATA_REPORTS_PORT or 3001; 0 = off)",
    )
    p.set_defaults(func=cmd_ui)

    p = sub.add_parser(
        "decisions", help="hand decisions back: register a returned worklist, or play the officer"
    )
    dsub = p.add_subparsers(dest="action", required=True)
    d = dsub.add_parser(
        "add", help="register a returned worklist / link review file in a delivery's sources.yaml"
    )
    d.add_argument("file", help="the returned .xlsx (its .sources.yaml mapping next to it)")
    d.add_argument(
        "--data-dir", help="the delivery (default: SATUDATA_DATA_DIR; never the shipped sample)"
    )
    d.add_argument(
        "--mapping", help="the mapping, if not <file stem>.sources.yaml next to the file"
    )
    d.add_argument(
        "--name", help="source name (default: the mapping's, one per program and determination)"
    )
    d = dsub.add_parser(
        "officer", help="synthetic: fill a run's worklists from the generator's truth"
    )
    d.add_argument("--exports", required=True, help="the exports folder of a run (<state>/exports)")
    d.add_argument("--truth", required=True, help="the generated delivery's truth/ folder")
    d.add_argument("--out", required=True, help="where the filled files (and officer_key.csv) go")
    d.add_argument("--seed", type=int, default=18)
    p.set_defaults(func=cmd_decisions)

    args = parser.parse_args(argv)
    os.umask(config.OWNER_ONLY_UMASK)  # everything satudata writes holds personal data: owner-only
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
