"""Reshape while moving (docs/adr/0010): one pure function of a wire-format item, the same for the backfill,
the stream handler, replay, verify and redrive.

A table mapping's **shape** is an optional transform (``rename``, then ``drop``, then a Python ``function``
on wire format that returns an item or None to drop it) followed by **routes**: the transformed item goes to
the first route whose ``when`` it matches (``attribute`` ``equals`` a value or ``begins_with`` a prefix; a
route without ``when`` takes every item). An item that matches no route is **unrouted**: counted and
reported, and a failure when ``unrouted: error``.

A target key is the transformed item's key attributes: the source key names with ``rename`` applied. The
rule that keeps deletes and moves exact (checked by :func:`check_sample`, ``ferry init`` refuses a shape that
breaks it): the route and the target key depend only on the source item's key attributes and the attributes
the routes read, and applying the shape twice gives the same result.

A change (a stream record's old and new image) becomes at most one delete and one put (:func:`plan_change`):
a change that moves the item to another route, or to another target key, deletes it where the old image was
placed and puts it where the new one goes.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ferry.wire import Item, canonical, items_equal, key_of

UNROUTED_ERROR = "error"
UNROUTED_SKIP = "skip"
UNROUTED_CHOICES = (UNROUTED_ERROR, UNROUTED_SKIP)

Hook = Callable[[Item], Item | None]


@dataclass(frozen=True)
class When:
    """``attribute`` equals ``equals`` (a string attribute as text, a number attribute as a number), or its
    string value begins with ``begins_with``."""

    attribute: str
    equals: str | None = None
    begins_with: str | None = None

    def matches(self, item: Mapping[str, Any]) -> bool:
        value = item.get(self.attribute)
        if not value:
            return False
        ((tag, inner),) = value.items()
        if self.equals is not None:
            if tag == "N":
                try:
                    return bool(canonical(value) == canonical({"N": self.equals}))
                except ArithmeticError:  # decimal.InvalidOperation: the value to match is not a number
                    return False
            return tag == "S" and inner == self.equals
        return tag == "S" and self.begins_with is not None and str(inner).startswith(self.begins_with)


@dataclass(frozen=True)
class Route:
    table: str
    when: When | None = None  # None: every item


@dataclass(frozen=True)
class Transform:
    rename: tuple[tuple[str, str], ...] = ()  # (old name, new name)
    drop: tuple[str, ...] = ()
    function: str = ""  # "package.module:callable"; empty: none

    @property
    def empty(self) -> bool:
        return not (self.rename or self.drop or self.function)


@dataclass(frozen=True)
class Placed:
    """Where one item goes: ``table`` and ``item`` (transformed), or why it goes nowhere (``dropped`` by the
    function, ``unrouted``: no route matched)."""

    table: str | None
    item: Item | None
    dropped: bool = False

    @property
    def unrouted(self) -> bool:
        return self.table is None and not self.dropped


@dataclass(frozen=True)
class Put:
    table: str
    item: Item


@dataclass(frozen=True)
class Delete:
    table: str
    key: Item


Write = Put | Delete


class ShapeError(ValueError):
    """A shape that cannot be applied to an item (its function raised or returned something else)."""


@dataclass(frozen=True)
class Shape:
    routes: tuple[Route, ...]
    transform: Transform = field(default_factory=Transform)
    unrouted: str = UNROUTED_ERROR

    @property
    def routing_attributes(self) -> tuple[str, ...]:
        """The attributes the routes read (names after the transform)."""
        return tuple(sorted({r.when.attribute for r in self.routes if r.when is not None}))

    def target_key_names(self, source_key_names: Sequence[str]) -> tuple[str, ...]:
        renamed = dict(self.transform.rename)
        return tuple(renamed.get(name, name) for name in source_key_names)

    def source_names(self, names: Sequence[str]) -> tuple[str, ...]:
        """Names after the transform, as the source item calls them (``rename`` undone)."""
        back = {new: old for old, new in self.transform.rename}
        return tuple(back.get(name, name) for name in names)


def load_hook(function: str) -> Hook:
    """The transform's Python hook ``package.module:callable``; ShapeError naming what is missing."""
    module_name, _, attribute = function.partition(":")
    if not module_name or not attribute:
        raise ShapeError(f"transform.function {function!r} must be 'package.module:callable'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ShapeError(f"transform.function {function!r}: cannot import {module_name!r} ({exc})") from exc
    hook = getattr(module, attribute, None)
    if not callable(hook):
        raise ShapeError(f"transform.function {function!r}: {module_name} has no callable {attribute!r}")
    return hook


class Shaper:
    """A shape ready to apply: its hook loaded once."""

    def __init__(self, shape: Shape, hook: Hook | None = None) -> None:
        self.shape = shape
        self.hook = hook if hook is not None or not shape.transform.function else load_hook(shape.transform.function)

    def transform(self, item: Item) -> Item | None:
        transform = self.shape.transform
        out = dict(item)
        for old, new in transform.rename:
            if old in out:
                out[new] = out.pop(old)
        for name in transform.drop:
            out.pop(name, None)
        if self.hook is None:
            return out
        try:
            shaped = self.hook(copy.deepcopy(out))
        except Exception as exc:
            raise ShapeError(f"transform.function {transform.function!r} raised {type(exc).__name__}: {exc}") from exc
        if shaped is not None and not isinstance(shaped, dict):
            raise ShapeError(
                f"transform.function {transform.function!r} returned {type(shaped).__name__}, not an item or None"
            )
        return shaped

    def place(self, item: Item) -> Placed:
        shaped = self.transform(item)
        if shaped is None:
            return Placed(None, None, dropped=True)
        for route in self.shape.routes:
            if route.when is None or route.when.matches(shaped):
                return Placed(route.table, shaped)
        return Placed(None, shaped)

    def plan_change(self, old: Item | None, new: Item | None, source_key_names: Sequence[str]) -> list[Write]:
        """The writes one change makes (:meth:`plan`)."""
        return self.plan(old, new, source_key_names)[0]

    def plan(
        self, old: Item | None, new: Item | None, source_key_names: Sequence[str]
    ) -> tuple[list[Write], Placed | None]:
        """The writes one change makes — the new image put where it goes, and the old image's placement deleted
        when the change moved it (another route or target key) or sent it nowhere (deleted, dropped, unrouted)
        — and the new image's placement (None: no new image), for the caller to count and report unrouted."""
        key_names = self.shape.target_key_names(source_key_names)
        before = self.place(old) if old is not None else None
        after = self.place(new) if new is not None else None
        writes: list[Write] = []
        if before is not None and before.table is not None and before.item is not None:
            old_key = key_of(before.item, key_names)
            stays = (
                after is not None
                and after.table == before.table
                and after.item is not None
                and items_equal(key_of(after.item, key_names), old_key)
            )
            if not stays:
                writes.append(Delete(before.table, old_key))
        if after is not None and after.table is not None and after.item is not None:
            writes.append(Put(after.table, after.item))
        return writes, after


@dataclass(frozen=True)
class SampleProblem:
    """Why a shape breaks the rule on one sample item (``ferry init`` exits 2 on any)."""

    key: str
    problem: str


def _perturbed(value: Mapping[str, Any]) -> dict[str, Any]:
    """Another value of the same type (for the key rule: changing it must not move the item)."""
    ((tag, inner),) = value.items()
    if tag == "S":
        return {"S": f"{inner}~"}
    if tag == "N":
        return {"N": str(Decimal(inner) + 1)}
    if tag == "B":
        return {"B": bytes(inner) + b"~"}
    if tag == "BOOL":
        return {"BOOL": not inner}
    if tag in ("SS", "NS", "BS"):
        one, other = {"SS": ("~", "~~"), "NS": ("0.5", "1.5"), "BS": (b"~", b"~~")}[tag]
        return {tag: [other] if list(inner) == [one] else [one]}
    if tag == "L":
        return {"L": [*inner, {"NULL": True}]}
    if tag == "M":
        return {"M": {**inner, "~": {"NULL": True}}}
    return {"S": "~"}


def check_sample(shaper: Shaper, item: Item, source_key_names: Sequence[str]) -> list[SampleProblem]:
    """The rule of the module docstring on one source item: deterministic, the target key attributes present,
    and neither the route nor the target key changed by any attribute other than the source key and the
    attributes the routes read."""
    from ferry.wire import key_text

    label = key_text(key_of(item, source_key_names))
    try:
        first, second = shaper.place(copy.deepcopy(item)), shaper.place(copy.deepcopy(item))
    except ShapeError as exc:
        return [SampleProblem(label, str(exc))]
    if (first.table, first.dropped) != (second.table, second.dropped) or not (
        (first.item is None and second.item is None)
        or (first.item is not None and second.item is not None and items_equal(first.item, second.item))
    ):
        return [SampleProblem(label, "not deterministic: two applications to the same item differ")]
    if first.item is None or first.table is None:
        return []  # dropped or unrouted: nothing is written, nothing to delete later
    key_names = shaper.shape.target_key_names(source_key_names)
    missing = [name for name in key_names if name not in first.item]
    if missing:
        return [SampleProblem(label, f"the shaped item lacks the target key attribute(s) {', '.join(missing)}")]
    key = key_of(first.item, key_names)
    fixed = set(source_key_names) | set(shaper.shape.source_names(shaper.shape.routing_attributes))
    problems = []
    for name in sorted(set(item) - fixed):
        varied = {**copy.deepcopy(item), name: _perturbed(item[name])}
        try:
            other = shaper.place(varied)
        except ShapeError as exc:
            problems.append(SampleProblem(label, f"changing attribute {name!r}: {exc}"))
            continue
        if other.table != first.table or other.item is None:
            problems.append(
                SampleProblem(label, f"changing attribute {name!r} moves the item (its route depends on it)")
            )
        elif not items_equal(key_of(other.item, key_names), key):
            problems.append(SampleProblem(label, f"changing attribute {name!r} changes the target key"))
    return problems
