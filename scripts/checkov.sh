#!/usr/bin/env bash
# Static security scan of terraform/ (every root and module) with checkov.
#
# checkov lives in its own virtual environment (.venv-checkov at the repository root): it depends
# on bc-python-hcl2, which installs the same `hcl2` import name as python-hcl2 with an older API.
# Exits non-zero unless checkov ran at least one check and none failed: checkov can silently check
# nothing (e.g. a file it cannot parse) and still exit 0, so the JSON report is counted, not trusted.
# Checks that do not apply are suppressed in place (#checkov:skip=<id>:<reason>) in the resource.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CHECKOV_VENV:-$ROOT/.venv-checkov}"
CHECKOV_VERSION="3.3.30"

if ! "$VENV/bin/checkov" --version 2>/dev/null | grep -qx "$CHECKOV_VERSION"; then
  echo "checkov.sh: installing checkov==$CHECKOV_VERSION into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet "checkov==$CHECKOV_VERSION"
fi

REPORT_DIR="$(mktemp -d)"
trap 'rm -rf "$REPORT_DIR"' EXIT

# The full JSON report (passed, failed and skipped checks; --quiet would drop all but the failed)
# goes to a file and is summarised below. checkov's own exit code only says "some check failed";
# the verdict is taken from the report.
set +e
"$VENV/bin/checkov" \
  --directory "$ROOT/terraform" \
  --framework terraform \
  --skip-download \
  --compact \
  --output json \
  --output-file-path "$REPORT_DIR" >/dev/null
checkov_status=$?
set -e

REPORT="$REPORT_DIR/results_json.json"
if [ ! -s "$REPORT" ]; then
  echo "checkov.sh: FAILED: no JSON report (checkov exit $checkov_status)" >&2
  exit 1
fi

"$VENV/bin/python" - "$REPORT" <<'PY'
import json
import sys

with open(sys.argv[1], encoding="utf-8") as f:
    data = json.load(f)
reports = data if isinstance(data, list) else [data]
totals = {"passed": 0, "failed": 0, "skipped": 0, "parsing_errors": 0, "resource_count": 0}
failed, skipped = set(), set()
for report in reports:
    summary = report.get("summary", {})
    for key in totals:
        totals[key] += int(summary.get(key, 0))
    results = report.get("results", {})
    for check in results.get("failed_checks", []):
        lines = "-".join(str(n) for n in check.get("file_line_range") or [])
        failed.add(
            f"  FAILED {check['check_id']} {check['check_name']}\n"
            f"    {check['resource']}  terraform{check['file_path']}:{lines}  {check.get('guideline') or ''}"
        )
    for check in results.get("skipped_checks", []):
        reason = (check.get("check_result") or {}).get("suppress_comment", "")
        skipped.add(f"  {check['check_id']} in terraform{check['file_path']}: {reason}")
    for path in results.get("parsing_errors", []):
        failed.add(f"  PARSING ERROR {path}")
# Modules are checked once per root that calls them (dev and prod): the counts include both.
print(
    "checkov {}: passed={passed} failed={failed} skipped={skipped} parsing_errors={parsing_errors} "
    "resources={resource_count}".format(reports[0].get("summary", {}).get("checkov_version", "?"), **totals)
)
if failed:
    print("\n".join(sorted(failed)))
if skipped:
    print("skipped in place (#checkov:skip), by check and file:")
    print("\n".join(sorted(skipped)))
problems = []
if totals["failed"]:
    problems.append(f"{totals['failed']} failed check(s)")
if totals["passed"] == 0:
    problems.append("no check passed: checkov checked nothing")
if totals["parsing_errors"]:
    problems.append(f"{totals['parsing_errors']} file(s) checkov could not parse")
if problems:
    print("checkov.sh: FAILED: " + "; ".join(problems), file=sys.stderr)
    sys.exit(1)
print("checkov.sh: OK")
PY
