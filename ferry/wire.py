"""DynamoDB wire format (``{"S": "x"}``, ``{"N": "1"}`` …): decoding, comparison and sizing.

Items stay in wire format from scan or stream to write. Two facts shape this module:
- In a Lambda stream event every binary is a base64 string: ``B``, each member of ``BS``, and
  binaries nested at any depth inside ``M`` and ``L``. The low-level client wants bytes.
  :func:`decode_stream_image` is the one place that converts them.
- Equality is DynamoDB's: sets are unordered, numbers are decimals (``1.0 == 1``), binaries bytes.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from decimal import Context, Decimal
from typing import Any

Item = dict[str, dict[str, Any]]

# DynamoDB numbers have at most 38 significant digits; 40 leaves room and never rounds them.
_DECIMAL = Context(prec=40)
TYPE_TAGS = frozenset({"S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL"})


def _b64(value: str | bytes) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return base64.b64decode(value, validate=True)


def decode_stream_value(value: Mapping[str, Any]) -> dict[str, Any]:
    """One attribute value of a Lambda stream event → the low-level client's form (bytes for binaries)."""
    ((tag, inner),) = value.items()
    if tag == "B":
        return {"B": _b64(inner)}
    if tag == "BS":
        return {"BS": [_b64(member) for member in inner]}
    if tag == "M":
        return {"M": {name: decode_stream_value(v) for name, v in inner.items()}}
    if tag == "L":
        return {"L": [decode_stream_value(v) for v in inner]}
    if tag not in TYPE_TAGS:
        raise ValueError(f"unknown DynamoDB type tag {tag!r}")
    return {tag: inner}


def decode_stream_image(image: Mapping[str, Mapping[str, Any]]) -> Item:
    """A whole stream image (NewImage, OldImage or Keys) with every binary decoded, at every depth."""
    return {name: decode_stream_value(value) for name, value in image.items()}


def encode_lambda_value(value: Any) -> Any:
    """The inverse, as the Lambda service does it: bytes → base64 text, recursively (for local pollers)."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {k: encode_lambda_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_lambda_value(v) for v in value]
    return value


def _number(text: str) -> Decimal:
    return _DECIMAL.create_decimal(text).normalize(_DECIMAL)


def canonical(value: Mapping[str, Any]) -> Any:
    """A hashable form of one attribute value in which DynamoDB-equal values are equal."""
    ((tag, inner),) = value.items()
    if tag == "N":
        return ("N", _number(inner))
    if tag == "B":
        return ("B", _b64(inner))
    if tag == "SS":
        return ("SS", frozenset(inner))
    if tag == "NS":
        return ("NS", frozenset(_number(v) for v in inner))
    if tag == "BS":
        return ("BS", frozenset(_b64(v) for v in inner))
    if tag == "M":
        return ("M", frozenset((k, canonical(v)) for k, v in inner.items()))
    if tag == "L":
        return ("L", tuple(canonical(v) for v in inner))
    if tag in ("S", "BOOL", "NULL"):
        return (tag, inner)
    raise ValueError(f"unknown DynamoDB type tag {tag!r}")


def values_equal(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return bool(canonical(a) == canonical(b))


def differing_attributes(source: Item, target: Item) -> list[str]:
    """Names of the attributes whose presence or value differ (names only: never payloads)."""
    names = sorted(set(source) | set(target))
    return [
        name
        for name in names
        if name not in source or name not in target or not values_equal(source[name], target[name])
    ]


def items_equal(source: Item, target: Item) -> bool:
    return not differing_attributes(source, target)


def key_of(item: Mapping[str, Any], key_names: Sequence[str]) -> Item:
    return {name: dict(item[name]) for name in key_names}


def key_text(key: Mapping[str, Mapping[str, Any]]) -> str:
    """A stable, printable, JSON form of a key for logs and reports (binaries as base64)."""
    return json.dumps(encode_lambda_value(dict(key)), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def key_from_text(text: str, key_types: Mapping[str, str]) -> Item:
    """Inverse of :func:`key_text` given each key attribute's type (S, N or B)."""
    raw = json.loads(text)
    return {name: ({"B": _b64(v["B"])} if key_types.get(name) == "B" else dict(v)) for name, v in raw.items()}


def _number_size(text: str) -> int:
    digits = text.lstrip("-").replace(".", "").lower().split("e")[0].strip("0") or "0"
    return (len(digits) + 1) // 2 + 1


def value_size(value: Mapping[str, Any]) -> int:
    """Approximate stored size in bytes of one value, by DynamoDB's published sizing rules."""
    ((tag, inner),) = value.items()
    if tag == "S":
        return len(inner.encode("utf-8"))
    if tag == "N":
        return _number_size(inner)
    if tag == "B":
        return len(_b64(inner))
    if tag == "SS":
        return sum(len(s.encode("utf-8")) for s in inner)
    if tag == "NS":
        return sum(_number_size(n) for n in inner)
    if tag == "BS":
        return sum(len(_b64(b)) for b in inner)
    if tag in ("BOOL", "NULL"):
        return 1
    if tag == "M":
        return 3 + sum(len(k.encode("utf-8")) + value_size(v) + 1 for k, v in inner.items())
    if tag == "L":
        return 3 + sum(value_size(v) + 1 for v in inner)
    raise ValueError(f"unknown DynamoDB type tag {tag!r}")


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """Approximate item size in bytes (attribute names + values), the basis of capacity units."""
    return sum(len(name.encode("utf-8")) + value_size(v) for name, v in item.items())
