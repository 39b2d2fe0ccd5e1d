"""What ships, defined once: the core package ``ferry/`` and nothing else, in both artifacts.

- The Glue zip (``build/ferry.zip``, the jobs' ``--extra-py-files``): the ``ferry`` package.
- The Lambda bundle: ``chalice package`` of ``chalice_app/`` (app.py, chalicelib/) with ``vendor/``
  holding the ``ferry`` package, plus Powertools from ``chalice_app/requirements.txt``.

Dev tooling (``ferry_dev``: emulator, pollers, fault proxy, workloads), the CLI, the jobs' scripts
(uploaded on their own) and the tests never ship. ``make vendor`` / ``make glue-zip`` run
``python -m ferry_cli.artifacts vendor|glue-zip``; ``ferry wire`` and the rehearsal build the same.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORE = "ferry"
_NOT_SHIPPED = shutil.ignore_patterns("__pycache__", "*.pyc")


def core_files(repo: Path = REPO) -> list[str]:
    """The core's files as they appear in an artifact (``ferry/…``), sorted."""
    root = repo / CORE
    return sorted(
        str(path.relative_to(repo))
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    )


def build_glue_zip(destination: Path, repo: Path = REPO) -> Path:
    """The core as a zip for Glue's ``--extra-py-files`` (importable as ``ferry``)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = destination.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in core_files(repo):
            archive.write(repo / name, name)
    tmp.replace(destination)
    return destination


def vendor_core(app_dir: Path, repo: Path = REPO) -> Path:
    """``app_dir/vendor/`` holding exactly the core (Chalice puts vendor/'s content in the bundle)."""
    vendor = app_dir / "vendor"
    shutil.rmtree(vendor, ignore_errors=True)
    shutil.copytree(repo / CORE, vendor / CORE, ignore=_NOT_SHIPPED)
    return vendor


def copy_app(destination: Path, repo: Path = REPO) -> Path:
    """A copy of the Chalice app, its core vendored, outside the repo (so a rehearsal or a test never
    leaves a stage, a policy file or a deployment record in the committed app)."""
    app = destination / "chalice_app"
    ignore = shutil.ignore_patterns("__pycache__", "vendor", "deployed", "deployments", "policy-*.json")
    shutil.copytree(repo / "chalice_app", app, ignore=ignore)
    vendor_core(app, repo)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ferry_cli.artifacts", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    vendor = commands.add_parser("vendor", help="copy the core into <app-dir>/vendor/")
    vendor.add_argument("--app-dir", type=Path, default=REPO / "chalice_app")
    glue_zip = commands.add_parser("glue-zip", help="build the Glue zip")
    glue_zip.add_argument("--out", type=Path, default=REPO / "build" / "ferry.zip")
    app = commands.add_parser("copy-app", help="copy the Chalice app with its core vendored into --out")
    app.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args(argv)
    if args.command == "vendor":
        print(vendor_core(args.app_dir))
    elif args.command == "glue-zip":
        print(build_glue_zip(args.out))
    else:
        print(copy_app(args.out))


if __name__ == "__main__":
    main()
