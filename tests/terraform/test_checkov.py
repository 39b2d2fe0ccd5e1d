"""checkov over terraform/ (the one root and its modules, once per stage) through
scripts/checkov.sh: zero failed checks, and per stage at least MIN_CHECKS checks run (the script
counts the JSON report, because checkov can check nothing, or drop checks, and still exit 0)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.terraform

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "checkov.sh"
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
STAGES = sorted(p.name.removesuffix(".tfvars") for p in (ROOT / "terraform" / "stages").glob("*.tfvars"))
SUMMARY = re.compile(r"stage=([a-z0-9-]+): passed=(\d+) failed=(\d+) skipped=(\d+) .* checks=(\d+)")


def _can_create_venv() -> bool:
    probe = subprocess.run(
        ["python3", "-c", "import ensurepip, venv"], capture_output=True, text=True, timeout=60, check=False
    )
    return probe.returncode == 0


def _run(**env: str) -> tuple[int, str]:
    if not CHECKOV.exists() and not _can_create_venv():
        pytest.skip("checkov is not installed and `python3 -m venv` is unavailable to install it")
    result = subprocess.run(
        ["bash", str(SCRIPT)],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def test_checkov_finds_no_failed_check_in_any_stage() -> None:
    assert STAGES == ["dev", "prod"]
    status, output = _run()
    assert status == 0, f"scripts/checkov.sh failed:\n{output}"
    summaries = {m.group(1): [int(n) for n in m.groups()[1:]] for m in SUMMARY.finditer(output)}
    assert sorted(summaries) == STAGES, f"expected one summary line per stage in:\n{output}"
    for stage, (passed, failed, skipped, checks) in summaries.items():
        assert failed == 0 and passed > 0 and checks == passed + failed + skipped, (stage, output)
    sys.stdout.write(output)  # visible with -s / in the report of a failure elsewhere


def test_checkov_script_fails_when_fewer_checks_ran() -> None:
    """Negative control: a run with fewer checks than MIN_CHECKS fails (here by raising the floor)."""
    status, output = _run(CHECKOV_MIN_CHECKS="100000")
    assert status != 0, output
    assert "expected at least 100000 (MIN_CHECKS)" in output
