"""Read a spec file (YAML) into the core's frozen Spec."""

from __future__ import annotations

from pathlib import Path

import yaml

from ferry.errors import SpecError
from ferry.spec import Spec, parse_spec


def load_spec(path: str | Path) -> Spec:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError("--spec", f"cannot read {path}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError("--spec", f"{path} is not valid YAML{where}") from None
    return parse_spec(raw)
