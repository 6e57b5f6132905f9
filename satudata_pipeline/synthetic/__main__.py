"""python -m satudata_pipeline.synthetic --persons N --seed S --out DIR [--snapshot-date YYYY-MM-DD] [--reshape SEED] [--chunk-persons N]
python -m satudata_pipeline.synthetic --next-month FROM_DIR --out DIR [--seed S]"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
from pathlib import Path

from .generate import CHUNK_PERSONS, generate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m satudata_pipeline.synthetic",
        description="Generate a synthetic satudata data directory with ground truth.",
    )
    ap.add_argument(
        "--persons", type=int, default=4000, help="number of persons in DKI (default 4000)"
    )
    ap.add_argument(
        "--seed",
        type=int,
        default=None,
        help="random seed (default 20261101; with --next-month: derived from the delivery's)",
    )
    ap.add_argument("--out", type=Path, required=True, help="output data directory")
    ap.add_argument(
        "--next-month",
        type=Path,
        default=None,
        metavar="FROM_DIR",
        help="write the delivery one month after the generated delivery in FROM_DIR "
        "(see docs/synthetic-data.md)",
    )
    ap.add_argument(
        "--snapshot-date",
        type=dt.date.fromisoformat,
        default=dt.date(2026, 11, 1),
        help="delivery snapshot date (default 2026-11-01)",
    )
    ap.add_argument(
        "--reshape",
        type=int,
        default=None,
        metavar="SEED",
        help="write the delivery in another provider's shape (column names, file types, "
        "encodings, date formats, codes) chosen with this seed; see docs/synthetic-data.md",
    )
    ap.add_argument(
        "--chunk-persons",
        type=int,
        default=CHUNK_PERSONS,
        help="above this many persons the population is built and written a group of kecamatan "
        f"of about this size at a time (default {CHUNK_PERSONS}; see docs/synthetic-data.md)",
    )
    args = ap.parse_args(argv)
    if args.next_month is not None:
        from .next_month import next_month

        print(json.dumps(next_month(args.next_month, args.out, args.seed), indent=2, default=str))
        return 0
    if args.seed is None:
        args.seed = 20261101
    if args.reshape is None:
        summary = generate(
            args.persons, args.seed, args.out, args.snapshot_date, args.chunk_persons
        )
    else:
        from .reshape import reshape

        with tempfile.TemporaryDirectory(prefix="satudata-synthetic-") as tmp:
            summary = generate(
                args.persons, args.seed, Path(tmp), args.snapshot_date, args.chunk_persons
            )
            summary["reshape"] = reshape(Path(tmp), args.out, args.reshape)
    print(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
