"""Read a spec file (YAML) into the core's frozen Spec. Every failure is a SpecError on --spec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ferry.errors import SpecError
from ferry.spec import Spec, parse_spec


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicated keys: PyYAML would keep the last one silently, and a
    second ``tables:`` would quietly drop the first list."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the parser below reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {str(key)[:60]!r}", key_node.start_mark
                )
        return super().construct_mapping(node, deep)


def load_spec(path: str | Path) -> Spec:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError("--spec", f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise SpecError("--spec", f"{path} is not UTF-8 text (byte {exc.start})") from None
    try:
        raw = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or ""
        raise SpecError("--spec", f"{path} is not valid YAML{where}{': ' + problem if problem else ''}") from None
    except (ValueError, RecursionError) as exc:  # huge integer literals, absurd nesting
        raise SpecError("--spec", f"{path} cannot be read as a spec: {type(exc).__name__}") from None
    return parse_spec(raw)
