"""What ships is the core and nothing else: both artifacts are built the way `make package` builds
them and their file lists are checked, and nothing in the shipped core imports the dev tooling.

GIVEN this checkout, WHEN the Glue zip (ferry_cli.artifacts) and the Lambda bundle (`chalice
package` of the app with its core vendored) are built, THEN the zip holds exactly the core's files,
the bundle holds the core, the app and Powertools with its dependencies only, and no shipped core
module imports moto, ferry_dev (emulator, pollers, fault proxy, workloads), the CLI or the jobs.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ferry_cli.artifacts import REPO, build_glue_zip, copy_app, core_files

pytestmark = pytest.mark.deploy

# Never in a shipped core module: the dev tooling, the test-only emulator, the adapters.
FORBIDDEN_IMPORTS = ("moto", "ferry_dev", "ferry_cli", "glue_jobs", "chalicelib", "tests", "bench")
# ferry_dev's pollers and fault proxy by module name too, should a copy of them ever move into the core.
FORBIDDEN_MODULE_NAMES = ("stream_poller", "sqs_poller", "faults", "emulator", "workload")
# The Lambda bundle's top level: the app, its wiring, the core, Chalice's runtime, Powertools and its dependencies.
BUNDLE_TOP_LEVEL = {
    "app.py",
    "chalicelib",
    "ferry",
    "chalice",
    "aws_lambda_powertools",
    "jmespath",
    "typing_extensions.py",
}


def forbidden_imports(files: dict[str, bytes], allowed: tuple[str, ...] = ()) -> list[str]:
    """``path: module`` for every import of the dev tooling in ``files`` (name → Python source);
    ``allowed``: top-level packages a file of this part may import after all (the app: chalicelib)."""
    found = []
    for name, source in sorted(files.items()):
        for node in ast.walk(ast.parse(source, filename=name)):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            else:
                continue
            for module in modules:
                parts = module.split(".")
                if (parts[0] in FORBIDDEN_IMPORTS and parts[0] not in allowed) or any(
                    part in FORBIDDEN_MODULE_NAMES for part in parts[1:]
                ):
                    found.append(f"{name}: {module}")
    return found


def _python_sources(archive: zipfile.ZipFile, prefix: str) -> dict[str, bytes]:
    return {n: archive.read(n) for n in archive.namelist() if n.startswith(prefix) and n.endswith(".py")}


@pytest.fixture(scope="module")
def glue_zip(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    return zipfile.ZipFile(build_glue_zip(tmp_path_factory.mktemp("glue") / "ferry.zip"))


@pytest.fixture(scope="module")
def lambda_bundle(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    work = tmp_path_factory.mktemp("lambda")
    app = copy_app(work)
    chalice = Path(sys.executable).parent / "chalice"
    result = subprocess.run(
        [str(chalice), "package", "--stage", "package", str(work / "out")],
        cwd=app,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return zipfile.ZipFile(work / "out" / "deployment.zip")


def test_the_core_is_the_ferry_package_and_nothing_of_the_dev_tooling() -> None:
    files = core_files()
    assert "ferry/aws.py" in files and "ferry/tables/replicate.py" in files
    assert all(name.startswith("ferry/") and not name.endswith(".pyc") for name in files)
    assert not [name for name in files if Path(name).stem in FORBIDDEN_MODULE_NAMES]


def test_the_glue_zip_holds_exactly_the_core(glue_zip: zipfile.ZipFile) -> None:
    assert sorted(glue_zip.namelist()) == core_files()
    assert forbidden_imports(_python_sources(glue_zip, "ferry/")) == []


def test_the_lambda_bundle_holds_the_core_the_app_and_powertools_only(lambda_bundle: zipfile.ZipFile) -> None:
    names = [n for n in lambda_bundle.namelist() if not n.endswith("/")]
    ours = sorted(n for n in names if n.startswith("ferry/"))
    assert ours == core_files()
    app = sorted(n for n in names if n == "app.py" or n.startswith("chalicelib/"))
    assert app == [
        "app.py",
        *sorted(f"chalicelib/{p.name}" for p in (REPO / "chalice_app" / "chalicelib").glob("*.py")),
    ]
    top_level = {n.split("/", 1)[0] for n in names} - {n.split("/", 1)[0] for n in names if ".dist-info" in n}
    top_level -= {n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".data")}
    assert top_level == BUNDLE_TOP_LEVEL, f"unexpected in the bundle: {sorted(top_level - BUNDLE_TOP_LEVEL)}"
    assert forbidden_imports(_python_sources(lambda_bundle, "ferry/")) == []
    app_sources = {**_python_sources(lambda_bundle, "chalicelib/"), "app.py": lambda_bundle.read("app.py")}
    assert forbidden_imports(app_sources, allowed=("chalicelib",)) == []


def test_the_import_check_finds_dev_tooling_in_a_shipped_file() -> None:
    """Negative control: the same check on sources that do import the dev tooling."""
    bad = {
        "ferry/a.py": b"import moto\n",
        "ferry/b.py": b"from ferry_dev.stream_poller import StreamPoller\n",
        "ferry/c.py": b"from ferry_dev import faults\n",
        "ferry/d.py": b"from ferry.local.sqs_poller import SqsPoller\n",
        "ferry/e.py": b"def f():\n    from ferry_dev.emulator import Emulator\n",
        "ferry/ok.py": b"import json\nfrom ferry.wire import Item\nfrom . import faults_ok\n",
    }
    found = forbidden_imports(bad)
    assert {entry.split(":")[0] for entry in found} == {
        "ferry/a.py",
        "ferry/b.py",
        "ferry/c.py",
        "ferry/d.py",
        "ferry/e.py",
    }
