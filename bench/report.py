"""`python -m bench.report [results.json]`: the results as the Markdown table BENCHMARKS.md holds."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        f"Run {m['when']} on {m['cpus']} CPUs, {m['platform']}, Python {m['python']}; "
        f"{'--quick, ' if results['quick'] else ''}{results['repeats']} round(s) per side-by-side pair "
        f"(a line may run fewer to fit its budget: its note says so); "
        f"{results['details'].get('total_seconds', 0):.0f} s in all.",
        "",
        "| line | measure | ferry | compared with | its value | ferry's lead | target | met | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        lead = "" if r["lead"] is None else f"{r['lead']:.2f}×"
        met = "" if r["met"] is None else ("yes" if r["met"] else "**NO**")
        cells = [r["line"], r["measure"], r["ferry"], r["other"], r["other_value"], lead, r["target"], met, r["note"]]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0] if args else "build/bench/results.json")
    print(markdown(json.loads(path.read_text())), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
