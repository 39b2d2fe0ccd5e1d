#!/usr/bin/env bash
# Static security scan of terraform/ (the root, terraform/*.tf, and every module under it) with
# checkov, once per stage: each run loads that stage's committed sizing (--var-file
# terraform/stages/<stage>.tfvars), as `make plan` does. Without a value for the root's required
# variables checkov cannot evaluate some graph checks and silently drops them (CKV2_AWS_56 on every
# role), so a stage's variables are always passed.
#
# checkov lives in its own virtual environment (.venv-checkov at the repository root): it depends
# on bc-python-hcl2, which installs the same `hcl2` import name as python-hcl2 with an older API.
# Exits non-zero unless, for every stage, checkov ran at least MIN_CHECKS checks and none failed:
# checkov can silently check nothing (e.g. a file it cannot parse) or drop checks it cannot
# evaluate and still exit 0, so the JSON report is counted, not trusted.
# Checks that do not apply are suppressed in place (#checkov:skip=<id>:<reason>) in the resource.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CHECKOV_VENV:-$ROOT/.venv-checkov}"
CHECKOV_VERSION="3.3.30"
# passed + failed + skipped of one stage's run when this was last changed (261 + 0 + 19, with the
# export bucket): fewer means checks stopped running. Raise it when checks are added; lower it only
# on purpose.
MIN_CHECKS="${CHECKOV_MIN_CHECKS:-280}"

if ! "$VENV/bin/checkov" --version 2>/dev/null | grep -qx "$CHECKOV_VERSION"; then
  echo "checkov.sh: installing checkov==$CHECKOV_VERSION into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet "checkov==$CHECKOV_VERSION"
fi

REPORT_DIR="$(mktemp -d)"
trap 'rm -rf "$REPORT_DIR"' EXIT

STAGES=()
for tfvars in "$ROOT"/terraform/stages/*.tfvars; do
  [ -f "$tfvars" ] && STAGES+=("$(basename "$tfvars" .tfvars)")
done
if [ "${#STAGES[@]}" -eq 0 ]; then
  echo "checkov.sh: FAILED: no stage (terraform/stages/<stage>.tfvars)" >&2
  exit 1
fi

status=0
for stage in "${STAGES[@]}"; do
  # The full JSON report (passed, failed and skipped checks; --quiet would drop all but the
  # failed) goes to a file and is summarised below. checkov's own exit code only says "some check
  # failed"; the verdict is taken from the report.
  mkdir -p "$REPORT_DIR/$stage"
  set +e
  "$VENV/bin/checkov" \
    --directory "$ROOT/terraform" \
    --var-file "$ROOT/terraform/stages/$stage.tfvars" \
    --framework terraform \
    --skip-download \
    --compact \
    --output json \
    --output-file-path "$REPORT_DIR/$stage" >/dev/null
  checkov_status=$?
  set -e

  REPORT="$REPORT_DIR/$stage/results_json.json"
  if [ ! -s "$REPORT" ]; then
    echo "checkov.sh: FAILED: stage $stage: no JSON report (checkov exit $checkov_status)" >&2
    status=1
    continue
  fi
  "$VENV/bin/python" - "$REPORT" "$stage" "$MIN_CHECKS" <<'PY' || status=1
import json
import sys

stage, min_checks = sys.argv[2], int(sys.argv[3])
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
# A module's resources are checked as called from the root (through modules/ferry) and, for the
# checks that can be evaluated without the caller's values, on their own.
checks = totals["passed"] + totals["failed"] + totals["skipped"]
print(
    "checkov {} stage={}: passed={passed} failed={failed} skipped={skipped} parsing_errors={parsing_errors} "
    "resources={resource_count} checks={}".format(
        reports[0].get("summary", {}).get("checkov_version", "?"), stage, checks, **totals
    )
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
if checks < min_checks:
    problems.append(f"only {checks} check(s) ran, expected at least {min_checks} (MIN_CHECKS)")
if totals["parsing_errors"]:
    problems.append(f"{totals['parsing_errors']} file(s) checkov could not parse")
if problems:
    print(f"checkov.sh: stage {stage}: FAILED: " + "; ".join(problems), file=sys.stderr)
    sys.exit(1)
PY
done

if [ "$status" -ne 0 ]; then
  echo "checkov.sh: FAILED" >&2
  exit 1
fi
echo "checkov.sh: OK (stages: ${STAGES[*]})"
