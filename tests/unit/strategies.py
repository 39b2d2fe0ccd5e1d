"""Hypothesis strategies for DynamoDB wire-format values, as the low-level client holds them.

- Numbers are strings (never floats): up to 38 significant digits, magnitudes from 1E-130 to
  9.99…E+125, negatives, several spellings of one value (``"1.50"``, ``"1.5E+0"``, ``"15E-1"``).
- Sets are non-empty and their members distinct *by DynamoDB semantics* (NS members as decimals).
- Binaries are ``bytes`` (the client form); :func:`lambda_items` adds the Lambda event form,
  where every binary at every depth is base64 text (``ferry.wire.encode_lambda_value``).

Also helpers to mutate one leaf of an item (so that it is no longer DynamoDB-equal) and to
re-spell an item without changing its meaning (shuffled sets, re-ordered maps, other number
spellings, base64 binaries).
"""

from __future__ import annotations

import copy
import functools
import random
from decimal import Context, Decimal
from typing import Any

from hypothesis import strategies as st

from ferry.wire import Item, encode_lambda_value

MAX_DIGITS = 38
MIN_ADJUSTED_EXPONENT = -130  # 1E-130
MAX_ADJUSTED_EXPONENT = 125  # 9.99…E+125

# Wide enough that no DynamoDB number is ever rounded (the default context keeps only 28 digits).
WIDE = Context(prec=200)

LARGEST = "9." + "9" * (MAX_DIGITS - 1) + "E+125"
SMALLEST = "1E-130"
EDGE_NUMBERS = (
    "0",
    "0.0",
    "-0.5",
    "1",
    "1.0",
    "1.50",
    "100",
    "1E+2",
    "12345678901234567890123456789012345678",  # 38 digits
    "-1234567890.1234567890123456789012345678",  # 38 digits with a fraction
    "1." + "0" * (MAX_DIGITS - 2) + "1",  # 38 digits: 1 + 1E-37
    SMALLEST,
    "-" + SMALLEST,
    "1.5E-129",
    LARGEST,
    "-" + LARGEST,
    "9.99E+125",
)


# --------------------------------------------------------------------------------------------
# numbers


def _fixed(sign: str, digits: str, k: int, extra_zeros: int) -> str:
    """``sign`` + ``digits`` × 10^k written without an exponent, plus ``extra_zeros`` trailing zeros."""
    if k >= 0:
        text = digits + "0" * k
        return sign + (text + "." + "0" * extra_zeros if extra_zeros else text)
    padded = digits.rjust(-k + 1, "0")
    whole, frac = padded[:k], padded[k:]
    return f"{sign}{whole}.{frac}{'0' * extra_zeros}"


def _scientific(sign: str, digits: str, adjusted: int, e: str, plus: bool) -> str:
    mantissa = digits if len(digits) == 1 else f"{digits[0]}.{digits[1:]}"
    exp = f"+{adjusted}" if plus and adjusted >= 0 else str(adjusted)
    return f"{sign}{mantissa}{e}{exp}"


@st.composite
def _generated_number(draw: Any) -> str:
    n = draw(st.integers(1, MAX_DIGITS))
    first = draw(st.sampled_from("123456789"))
    rest = draw(st.text(alphabet="0123456789", min_size=n - 1, max_size=n - 1))
    digits = first + rest
    adjusted = draw(st.integers(MIN_ADJUSTED_EXPONENT, MAX_ADJUSTED_EXPONENT))
    k = adjusted - (n - 1)  # value = int(digits) * 10**k
    sign = draw(st.sampled_from(["", "-"]))
    style = draw(st.sampled_from(["sci", "fixed", "str"]))
    if style == "fixed" and k >= -60 and adjusted <= 60:
        return _fixed(sign, digits, k, draw(st.integers(0, 3)))
    if style == "str":
        return str(Decimal(f"{sign}{digits}E{k}"))
    return _scientific(sign, digits, adjusted, draw(st.sampled_from("Ee")), draw(st.booleans()))


@functools.cache
def numbers() -> st.SearchStrategy[str]:
    """DynamoDB number texts: 38 significant digits at most, within 1E-130 … 9.99…E+125."""
    return st.one_of(st.sampled_from(EDGE_NUMBERS), _generated_number())


def number_spellings(text: str) -> list[str]:
    """Other texts of the same decimal value (DynamoDB-equal to ``text``)."""
    d = Decimal(text)
    fixed = format(d, "f")
    spellings = [str(d), str(d.normalize(WIDE)), format(d, "E"), fixed, fixed + ("0" if "." in fixed else ".00")]
    sign, digits, exp = d.as_tuple()
    assert isinstance(exp, int)
    # shift the exponent: 15E-1 style (integer mantissa)
    mantissa = "".join(map(str, digits)) + "0"
    spellings.append(f"{'-' if sign else ''}{mantissa}E{exp - 1}")
    return spellings


# --------------------------------------------------------------------------------------------
# scalars, sets, nested values

# Unicode text, including the empty string (allowed for non-key attributes) and astral characters.
strings = st.text(max_size=12)
binaries = st.binary(max_size=12)
attribute_names = st.text(min_size=1, max_size=8)


def _sets(members: st.SearchStrategy[Any], unique_by: Any = None) -> st.SearchStrategy[list[Any]]:
    return st.lists(members, min_size=1, max_size=4, unique_by=unique_by)


@functools.cache
def scalar_values() -> st.SearchStrategy[dict[str, Any]]:
    """Every non-container type: S, N, B, BOOL, NULL, SS, NS, BS."""
    return st.one_of(
        st.builds(lambda v: {"S": v}, strings),
        st.builds(lambda v: {"N": v}, numbers()),
        st.builds(lambda v: {"B": v}, binaries),
        st.builds(lambda v: {"BOOL": v}, st.booleans()),
        st.just({"NULL": True}),
        st.builds(lambda v: {"SS": v}, _sets(strings, unique_by=lambda s: s)),
        # distinct as decimals: "1" and "1.0" are the same member and cannot both be in one set
        st.builds(lambda v: {"NS": v}, _sets(numbers(), unique_by=lambda n: Decimal(n))),
        st.builds(lambda v: {"BS": v}, _sets(binaries, unique_by=lambda b: b)),
    )


@functools.cache
def attribute_values(depth: int = 3) -> st.SearchStrategy[dict[str, Any]]:
    """Any of the ten types; M and L nest other values down to ``depth`` levels."""
    if depth <= 0:
        return scalar_values()
    inner = attribute_values(depth - 1)
    return st.one_of(
        scalar_values(),
        st.builds(lambda v: {"M": v}, st.dictionaries(attribute_names, inner, max_size=3)),
        st.builds(lambda v: {"L": v}, st.lists(inner, max_size=3)),
    )


@functools.cache
def items(depth: int = 3, min_size: int = 0, max_size: int = 5) -> st.SearchStrategy[Item]:
    """Whole items: attribute name → wire-format value (client form, binaries as bytes)."""
    return st.dictionaries(attribute_names, attribute_values(depth), min_size=min_size, max_size=max_size)


@functools.cache
def lambda_event_images(depth: int = 3) -> st.SearchStrategy[dict[str, Any]]:
    """Items in the Lambda event form: every binary (B, BS members, nested) as base64 text."""
    return items(depth).map(encode_lambda_value)


@functools.cache
def lambda_items(depth: int = 3) -> st.SearchStrategy[tuple[Item, dict[str, Any]]]:
    """(client form, Lambda event form) pairs of the same item."""
    return items(depth).map(lambda item: (item, encode_lambda_value(item)))


KEY_TYPES = ("S", "N", "B")


def _key_value(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    if kind == "S":
        return st.builds(lambda v: {"S": v}, st.text(min_size=1, max_size=12))
    if kind == "N":
        return st.builds(lambda v: {"N": v}, numbers())
    return st.builds(lambda v: {"B": v}, st.binary(min_size=1, max_size=12))


@st.composite
def keys(draw: Any) -> tuple[Item, dict[str, str]]:
    """A primary key (hash, optionally range) of S/N/B attributes, with its attribute types."""
    names = draw(st.lists(attribute_names, min_size=1, max_size=2, unique=True))
    types = {name: draw(st.sampled_from(KEY_TYPES)) for name in names}
    return {name: draw(_key_value(kind)) for name, kind in types.items()}, types


# --------------------------------------------------------------------------------------------
# leaves and mutations

Path = tuple[Any, ...]  # a top-level name, then ("M", name) / ("L", index) steps


def leaf_paths(item: Item) -> list[Path]:
    """Paths of every leaf: scalars, sets, and empty M/L."""
    out: list[Path] = []

    def walk(value: dict[str, Any], path: Path) -> None:
        ((tag, inner),) = value.items()
        if tag == "M" and inner:
            for name, v in inner.items():
                walk(v, (*path, ("M", name)))
        elif tag == "L" and inner:
            for i, v in enumerate(inner):
                walk(v, (*path, ("L", i)))
        else:
            out.append(path)

    for name, value in item.items():
        walk(value, (name,))
    return out


def _get(item: Item, path: Path) -> dict[str, Any]:
    value = item[path[0]]
    for tag, step in path[1:]:
        value = value[tag][step]
    return value


def _negate(number: str) -> str:
    if Decimal(number) == 0:
        return "1"
    return number[1:] if number.startswith("-") else "-" + number


def changed_value(value: dict[str, Any]) -> dict[str, Any]:
    """A value of the same type that is not DynamoDB-equal to ``value`` (NULL has none: retyped)."""
    ((tag, inner),) = value.items()
    if tag == "S":
        return {"S": inner + "x"}
    if tag == "N":
        return {"N": _negate(inner)}
    if tag == "B":
        return {"B": bytes(inner) + b"\x00"}
    if tag == "BOOL":
        return {"BOOL": not inner}
    if tag == "NULL":
        return {"BOOL": False}
    if tag in ("SS", "NS", "BS") and len(inner) > 1:
        return {tag: list(inner[1:])}  # members are distinct: dropping one changes the set
    if tag == "SS":
        return {"SS": [inner[0] + "x"]}
    if tag == "NS":
        return {"NS": [_negate(inner[0])]}
    if tag == "BS":
        return {"BS": [bytes(inner[0]) + b"\x00"]}
    if tag == "M":
        return {"M": {**inner, "x": {"NULL": True}}} if not inner else {"M": {}}
    if tag == "L":
        return {"L": [*inner, {"NULL": True}]}
    raise AssertionError(tag)


def retyped_value(value: dict[str, Any]) -> dict[str, Any]:
    """A value of another type (never DynamoDB-equal, whatever the content)."""
    ((tag, _),) = value.items()
    return {"BOOL": True} if tag == "NULL" else {"NULL": True}


@st.composite
def mutated_items(draw: Any) -> tuple[Item, Item, str]:
    """(item, the item with exactly one leaf changed, removed or retyped, the top-level name)."""
    item = draw(items(min_size=1))
    path = draw(st.sampled_from(leaf_paths(item)))
    kind = draw(st.sampled_from(["change", "retype", "drop"]))
    mutated = copy.deepcopy(item)
    if kind == "drop" and len(path) > 1:
        parent = _get(mutated, path[:-1])
        tag, step = path[-1]
        del parent[tag][step]  # a map entry or a list element disappears
    else:
        new = changed_value(_get(item, path)) if kind == "change" else retyped_value(_get(item, path))
        if len(path) == 1:
            mutated[path[0]] = new
        else:
            parent = _get(mutated, path[:-1])
            tag, step = path[-1]
            parent[tag][step] = new
    return item, mutated, path[0]


def respelled(value: Any, rnd: random.Random) -> Any:
    """The same DynamoDB value written differently: shuffled sets, reordered maps, other number
    spellings, binaries as base64 text. ``values_equal`` must not see a difference."""
    ((tag, inner),) = value.items()
    if tag == "N":
        return {"N": rnd.choice(number_spellings(inner))}
    if tag == "NS":
        members = [rnd.choice(number_spellings(n)) for n in inner]
        rnd.shuffle(members)
        return {"NS": members}
    if tag in ("SS", "BS"):
        members = list(inner)
        rnd.shuffle(members)
        return encode_lambda_value({tag: members}) if tag == "BS" and rnd.random() < 0.5 else {tag: members}
    if tag == "B":
        return encode_lambda_value(value) if rnd.random() < 0.5 else value
    if tag == "M":
        names = list(inner)
        rnd.shuffle(names)
        return {"M": {name: respelled(inner[name], rnd) for name in names}}
    if tag == "L":
        return {"L": [respelled(v, rnd) for v in inner]}
    return copy.deepcopy(value)


def respelled_item(item: Item, rnd: random.Random) -> Item:
    names = list(item)
    rnd.shuffle(names)
    return {name: respelled(item[name], rnd) for name in names}
