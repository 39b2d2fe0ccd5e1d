"""`make bench` / `python -m bench [--quick] [--only 1,5] [--json FILE]`: every line measured in
this one run, side by side, printed as one table and written as JSON."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import Row, Settings, write_json

# line number -> the modules in bench/ exposing run(settings) -> (rows, details), run in this order
LINES = {
    # table_backfill also reports line 3 (cost per million items) from the same runs; insert_modes compares
    # insert-only's two write modes (partiql, conditional PutItem) on ministack
    "1": ("table_backfill", "insert_modes"),
    "2": ("capacity",),
    "4": ("overhead",),
    "5": ("bucket_copy",),
    "6": ("lag", "catch_up"),
    "7": ("scaling",),
}


def _table(rows: list[Row]) -> Any:
    from rich.table import Table

    table = Table(title="ferry bench: ferry against the naive approach and the usual tools (ratios are the claims)")
    for column in ("line", "measure", "ferry", "compared with", "its value", "ferry's lead", "target", "met"):
        table.add_column(column, overflow="fold")
    for r in rows:
        lead = "" if r.lead is None else f"{r.lead:.2f}×"
        met = "" if r.met is None else ("yes" if r.met else "NO")
        table.add_row(r.line, r.measure, r.ferry, r.other, r.other_value, lead, r.target, met)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one round: under 3 minutes")
    parser.add_argument("--only", default="", help="comma-separated line numbers (default: all)")
    parser.add_argument("--repeats", type=int, default=None, help="rounds per side-by-side pair")
    parser.add_argument("--json", default="build/bench/results.json", help="where to write the results")
    args = parser.parse_args(argv)
    settings = Settings(quick=args.quick, repeats=args.repeats or (1 if args.quick else 3))
    wanted = [n for n in LINES if not args.only or n in args.only.split(",")]
    rows: list[Row] = []
    details: dict[str, Any] = {}
    started, wall_started = time.monotonic(), time.time()
    for number in wanted:
        for name in LINES[number]:
            module = importlib.import_module(f"bench.{name}")
            t0 = time.monotonic()
            print(f"[bench] line {number}: {name} …", file=sys.stderr, flush=True)
            line_rows, line_details = module.run(settings)
            rows += line_rows
            details[name] = {**line_details, "seconds": round(time.monotonic() - t0, 1)}
    details["total_seconds"] = round(time.monotonic() - started, 1)
    from rich.console import Console

    console = Console(width=200) if not sys.stdout.isatty() else Console()
    console.print(_table(rows))
    judged = [r for r in rows if r.met is not None]
    console.print(
        f"targets met: {sum(1 for r in judged if r.met)} of {len(judged)}; "
        f"total {details['total_seconds']:.0f} s; JSON: {args.json}",
        markup=False,
    )
    write_json(Path(args.json), rows, details, settings)
    reports = sorted(str(p) for p in settings.workdir.rglob("report-*.html") if p.stat().st_mtime >= wall_started)
    if reports:  # ferry report of each replay run (bench/replay_copy.py), made from its state table
        console.print(f"reports: {', '.join(reports)}", markup=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
