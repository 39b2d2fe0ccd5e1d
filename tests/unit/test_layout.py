"""The import direction of the layout (README, "How it is built"), checked on every import statement,
the ones inside functions included:

    ferry_cli ──▶ ferry_dev ──▶ glue_jobs, chalicelib (their entry points) ──▶ ferry (the core)
    bench     ──▶ ferry_cli (what a command computes: the plan, the report), ferry_dev, glue_jobs (entry points), ferry

The core imports nothing of ours; an adapter imports the core and only the entry points of another
adapter (a job's run_backfill/main, a handler's handle/reset, the local Spark runner), never a
private name of another package. A negative control runs the checker on sources that break each rule.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
# Which of our packages each package may import (besides the standard library and third parties).
ALLOWED = {
    "ferry": {"ferry"},
    "glue_jobs": {"ferry", "glue_jobs"},
    "chalicelib": {"ferry", "chalicelib"},
    "app": {"chalicelib"},  # chalice_app/app.py: the Lambdas' wiring
    "ferry_dev": {"ferry", "ferry_dev", "glue_jobs", "chalicelib"},
    "ferry_cli": {"ferry", "ferry_cli", "ferry_dev", "glue_jobs"},
    "bench": {"bench", "ferry", "ferry_cli", "ferry_dev", "glue_jobs"},
}
OURS = {*ALLOWED, "tests"}
# The public entry points of an adapter that another package may call.
ENTRY_POINTS = {
    "glue_jobs": {"local_spark", "run_locally", "run_backfill", "main", "table_backfill", "bucket_backfill"},
    "chalicelib": {"table_stream", "bucket_events", "handle", "reset"},
}


def package_of(path: Path) -> str:
    relative = path.relative_to(ROOT)
    if relative.parts[0] == "chalice_app":
        return "app" if relative.name == "app.py" else "chalicelib"
    return relative.parts[0]


def _imports(tree: ast.AST) -> list[tuple[int, str, list[str]]]:
    """(line, module, imported names) of every absolute import in ``tree``."""
    out: list[tuple[int, str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.append((node.lineno, node.module, [alias.name for alias in node.names]))
    return out


def violations(package: str, name: str, source: str) -> list[str]:
    """Every import in ``source`` (a module of ``package`` named ``name``) that breaks the layout."""
    found = []
    for line, module, names in _imports(ast.parse(source, filename=name)):
        target = module.split(".")[0]
        if target not in OURS or target == package:
            continue
        where = f"{name}:{line} imports {module}"
        if target not in ALLOWED[package]:
            found.append(f"{where}: {package} may not import {target}")
            continue
        parts = module.split(".")[1:] + names
        if any(part.startswith("_") and not part.startswith("__") for part in parts):
            found.append(f"{where}: a private name of {target}")
        if target in ENTRY_POINTS and not set(parts) <= ENTRY_POINTS[target]:
            found.append(f"{where}: only {target}'s entry points ({', '.join(sorted(ENTRY_POINTS[target]))})")
    return found


def our_modules() -> list[Path]:
    paths = [
        p
        for package in ("ferry", "ferry_cli", "ferry_dev", "glue_jobs", "bench")
        for p in (ROOT / package).rglob("*.py")
    ]
    paths += [ROOT / "chalice_app" / "app.py", *(ROOT / "chalice_app" / "chalicelib").glob("*.py")]
    return sorted(p for p in paths if "__pycache__" not in p.parts)


def test_every_module_imports_in_the_direction_of_the_layout() -> None:
    modules = our_modules()
    assert len(modules) > 40
    found = [v for path in modules for v in violations(package_of(path), str(path.relative_to(ROOT)), path.read_text())]
    assert found == []


@pytest.mark.parametrize(
    ("package", "source", "expected"),
    [
        ("ferry", "from ferry_dev.emulator import Emulator\n", "ferry may not import ferry_dev"),
        ("ferry", "def f():\n    import ferry_cli.main\n", "ferry may not import ferry_cli"),
        ("glue_jobs", "from ferry_dev.workload import seed_table\n", "glue_jobs may not import ferry_dev"),
        ("chalicelib", "import glue_jobs.table_backfill\n", "chalicelib may not import glue_jobs"),
        ("ferry_dev", "from ferry_cli.deploy import wire\n", "ferry_dev may not import ferry_cli"),
        ("bench", "from ferry_dev.faults import _ProxyHandler\n", "a private name of ferry_dev"),
        ("ferry_dev", "from chalicelib.table_stream import _record_handler\n", "a private name of chalicelib"),
        ("ferry_cli", "from glue_jobs.table_backfill import plan\n", "only glue_jobs's entry points"),
    ],
)
def test_the_checker_finds_each_kind_of_wrong_import(package: str, source: str, expected: str) -> None:
    found = violations(package, "example.py", source)
    assert found and any(expected in entry for entry in found), found


def test_the_checker_lets_the_layout_through() -> None:
    fine = (
        "import json\nimport boto3\nfrom ferry.wire import Item\n"
        "from glue_jobs.local_spark import run_locally\nfrom chalicelib import table_stream\n"
    )
    assert violations("ferry_dev", "example.py", fine) == []
