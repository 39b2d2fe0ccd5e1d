"""The core package ``ferry`` imports only the standard library and boto3/botocore.

Glue ships it as a zip, the Lambdas vendor it and the CLI wraps it: none of Spark, Glue,
Chalice, Powertools, click, rich or YAML may be needed to import any of its modules.
Each check runs in a fresh interpreter so that nothing already imported by pytest hides a
dependency.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
BLOCKED = ("pyspark", "awsglue", "chalice", "aws_lambda_powertools", "click", "rich", "yaml")

_IMPORT_ALL = r"""
import importlib, json, pkgutil, sys

BLOCKED = set(json.loads(sys.argv[1]))
already = sorted(BLOCKED & {name.split(".")[0] for name in sys.modules})
assert not already, f"imported before the check started: {already}"


class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"ferry's core must not import {name!r}")
        return None


sys.meta_path.insert(0, Blocker())
baseline = {name.split(".")[0] for name in sys.modules}
import boto3, botocore.config, botocore.exceptions  # the one allowed third-party dependency
allowed = {name.split(".")[0] for name in sys.modules}

import ferry

def fail(name):
    raise SystemExit(f"cannot import package {name}")

names = ["ferry"] + [m.name for m in pkgutil.walk_packages(ferry.__path__, "ferry.", onerror=fail)]
for name in names:
    importlib.import_module(name)

loaded = {name.split(".")[0] for name in sys.modules}
foreign = sorted(
    name for name in loaded - allowed - baseline
    if name != "ferry" and name not in sys.stdlib_module_names
    and not name.startswith("_sysconfigdata")  # stdlib's generated module, not in stdlib_module_names
)
print(json.dumps({"modules": names, "foreign": foreign, "ferry_file": ferry.__file__}))
"""


def _run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "PYTHONNOUSERSITE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_core_module_imports_without_the_optional_stacks() -> None:
    result = _run(_IMPORT_ALL, json.dumps(BLOCKED))
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(report["ferry_file"]).resolve().is_relative_to(ROOT / "ferry")  # this checkout, not a copy
    modules = set(report["modules"])
    for expected in ("ferry.wire", "ferry.spec", "ferry.ratelimit", "ferry.errors", "ferry.tables.protocol"):
        assert expected in modules
    assert report["foreign"] == [], f"third-party modules beyond boto3/botocore: {report['foreign']}"


def test_the_blocker_really_blocks() -> None:
    """Control: the same harness fails when a module does import a blocked package."""
    code = _IMPORT_ALL.replace("import ferry\n", "import ferry\nimport yaml\n", 1)
    result = _run(code, json.dumps(BLOCKED))
    assert result.returncode != 0
    assert "must not import 'yaml'" in result.stderr
