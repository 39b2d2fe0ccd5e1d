"""ferry.wire: Lambda-event decoding, DynamoDB equality, keys as text, item sizes."""

from __future__ import annotations

import base64
import copy
import json
import random
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from ferry.wire import (
    Item,
    canonical,
    decode_stream_image,
    decode_stream_value,
    differing_attributes,
    encode_lambda_value,
    item_size,
    items_equal,
    key_from_text,
    key_text,
    value_size,
    values_equal,
)
from tests.unit.strategies import (
    LARGEST,
    SMALLEST,
    WIDE,
    attribute_names,
    attribute_values,
    items,
    keys,
    lambda_event_images,
    lambda_items,
    mutated_items,
    number_spellings,
    numbers,
    respelled,
    respelled_item,
)

pytestmark = pytest.mark.unit

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --------------------------------------------------------------------------------------------
# the strategies generate what the properties rely on


def _has_nested_binary(value: dict, depth: int = 0) -> bool:
    ((tag, inner),) = value.items()
    if tag in ("B", "BS"):
        return depth >= 2
    if tag == "M":
        return any(_has_nested_binary(v, depth + 1) for v in inner.values())
    if tag == "L":
        return any(_has_nested_binary(v, depth + 1) for v in inner)
    return False


def test_strategy_reaches_binaries_two_containers_deep() -> None:
    found = find(
        items(),
        lambda item: any(_has_nested_binary(v) for v in item.values()),
        settings=settings(max_examples=2000, database=None, deadline=None),
    )
    assert any(_has_nested_binary(v) for v in found.values())


@FAST
@given(items())
def test_strategy_sets_are_non_empty_and_distinct(item: dict) -> None:
    def check(value: dict) -> None:
        ((tag, inner),) = value.items()
        if tag in ("SS", "NS", "BS"):
            assert inner
            members = [Decimal(m) for m in inner] if tag == "NS" else inner
            assert len(set(members)) == len(members)
        if tag == "M":
            for v in inner.values():
                check(v)
        if tag == "L":
            for v in inner:
                check(v)

    for v in item.values():
        check(v)


@FAST
@given(numbers())
def test_strategy_numbers_are_valid_dynamodb_numbers(text: str) -> None:
    d = Decimal(text)
    assert d.is_finite()
    if d:
        digits = d.normalize(WIDE).as_tuple().digits
        assert len(digits) <= 38
        assert Decimal(SMALLEST) <= d.copy_abs() <= Decimal(LARGEST)


# --------------------------------------------------------------------------------------------
# decode_stream_image: base64 → bytes at every depth


@settings(max_examples=300, deadline=None)
@given(lambda_items())
def test_decode_inverts_lambda_encoding(pair: tuple[dict, dict]) -> None:
    item, event_form = pair
    before = copy.deepcopy(item)
    assert decode_stream_image(event_form) == item
    assert item == before  # neither direction mutates its input


@FAST
@given(items())
def test_decode_is_identity_on_client_form(item: dict) -> None:
    assert decode_stream_image(item) == item


@FAST
@given(lambda_event_images())
def test_event_form_has_no_bytes_left(image: dict) -> None:
    def no_bytes(value: object) -> bool:
        if isinstance(value, (bytes, bytearray)):
            return False
        if isinstance(value, dict):
            return all(no_bytes(v) for v in value.values())
        if isinstance(value, list):
            return all(no_bytes(v) for v in value)
        return True

    assert no_bytes(image)
    json.dumps(image)  # what the Lambda service hands over is JSON


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        pytest.param({"b": {"B": b64(b"\x00\xff")}}, {"b": {"B": b"\x00\xff"}}, id="B"),
        pytest.param({"b": {"B": ""}}, {"b": {"B": b""}}, id="B-empty"),
        pytest.param(
            {"bs": {"BS": [b64(b"\x01"), b64(b"\x02\x03")]}},
            {"bs": {"BS": [b"\x01", b"\x02\x03"]}},
            id="BS-each-member",
        ),
        pytest.param({"m": {"M": {"x": {"B": b64(b"xyz")}}}}, {"m": {"M": {"x": {"B": b"xyz"}}}}, id="B-in-M"),
        pytest.param({"l": {"L": [{"B": b64(b"\x10")}]}}, {"l": {"L": [{"B": b"\x10"}]}}, id="B-in-L"),
        pytest.param(
            {"m": {"M": {"l": {"L": [{"M": {"bs": {"BS": [b64(b"\x07")]}}}]}}}},
            {"m": {"M": {"l": {"L": [{"M": {"bs": {"BS": [b"\x07"]}}}]}}}},
            id="BS-in-M-in-L-in-M",
        ),
        pytest.param(
            {"s": {"S": "AQ=="}, "ss": {"SS": ["AQ=="]}, "n": {"N": "1.50"}, "ns": {"NS": ["1", "2"]}},
            {"s": {"S": "AQ=="}, "ss": {"SS": ["AQ=="]}, "n": {"N": "1.50"}, "ns": {"NS": ["1", "2"]}},
            id="S-and-N-untouched",
        ),
        pytest.param(
            {"t": {"BOOL": False}, "z": {"NULL": True}, "e": {"M": {}}, "f": {"L": []}},
            {"t": {"BOOL": False}, "z": {"NULL": True}, "e": {"M": {}}, "f": {"L": []}},
            id="BOOL-NULL-empty-containers",
        ),
    ],
)
def test_decode_examples(event: dict, expected: dict) -> None:
    decoded = decode_stream_image(event)
    assert decoded == expected
    assert encode_lambda_value(decoded) == event


@pytest.mark.parametrize(
    "value",
    [
        {"X": "1"},
        {"M": {"a": {"Q": 1}}},
        {"L": [{"SSS": ["a"]}]},
    ],
)
def test_unknown_type_tag_raises_value_error(value: dict) -> None:
    with pytest.raises(ValueError, match="type tag"):
        decode_stream_value(value)
    with pytest.raises(ValueError, match="type tag"):
        canonical(value)
    with pytest.raises(ValueError, match="type tag"):
        value_size(value)
    with pytest.raises(ValueError, match="type tag"):
        values_equal(value, value)


@pytest.mark.parametrize("value", [{}, {"S": "a", "N": "1"}])
def test_value_with_zero_or_two_tags_raises_value_error(value: dict) -> None:
    with pytest.raises(ValueError):
        decode_stream_value(value)
    with pytest.raises(ValueError):
        canonical(value)


def test_invalid_base64_in_event_raises_value_error() -> None:
    with pytest.raises(ValueError):
        decode_stream_value({"B": "not base64!"})
    with pytest.raises(ValueError):
        decode_stream_value({"M": {"x": {"BS": ["AQ==", "%%%"]}}})


# --------------------------------------------------------------------------------------------
# equality


@FAST
@given(attribute_values())
def test_values_equal_is_reflexive(value: dict) -> None:
    assert values_equal(value, value)
    assert values_equal(value, copy.deepcopy(value))


@FAST
@given(items(), st.randoms(use_true_random=False))
def test_respelling_keeps_items_equal(item: dict, rnd: random.Random) -> None:
    """Shuffled sets, reordered maps, other number spellings, base64 binaries: still equal."""
    other = respelled_item(item, rnd)
    assert items_equal(item, other)
    assert items_equal(other, item)
    assert differing_attributes(item, other) == []


@FAST
@given(lambda_items())
def test_lambda_form_equals_client_form(pair: tuple[dict, dict]) -> None:
    item, event_form = pair
    assert items_equal(item, event_form)


@FAST
@given(attribute_values(), attribute_values(), st.randoms(use_true_random=False))
def test_values_equal_is_symmetric(a: dict, b: dict, rnd: random.Random) -> None:
    for x, y in ((a, b), (a, respelled(a, rnd)), (b, respelled(a, rnd))):
        assert values_equal(x, y) == values_equal(y, x)


@settings(max_examples=300, deadline=None)
@given(mutated_items())
def test_any_leaf_mutation_is_detected_and_named(case: tuple[dict, dict, str]) -> None:
    item, mutated, name = case
    assert not items_equal(item, mutated)
    assert not items_equal(mutated, item)
    assert differing_attributes(item, mutated) == [name]
    assert differing_attributes(mutated, item) == [name]


@FAST
@given(items(), items())
def test_differing_attributes_covers_missing_names(a: dict, b: dict) -> None:
    differing = differing_attributes(a, b)
    assert differing == sorted(differing)
    for name in set(a) ^ set(b):
        assert name in differing
    for name in set(a) & set(b):
        assert (name in differing) == (not values_equal(a[name], b[name]))


@FAST
@given(numbers(), st.randoms(use_true_random=False))
def test_number_spellings_are_equal(text: str, rnd: random.Random) -> None:
    for other in number_spellings(text):
        assert values_equal({"N": text}, {"N": other}), other
        assert value_size({"N": text}) == value_size({"N": other}), other


@FAST
@given(numbers(), numbers())
def test_numbers_compare_as_exact_decimals(a: str, b: str) -> None:
    assert values_equal({"N": a}, {"N": b}) == (Decimal(a) == Decimal(b))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("1.0", "1"),
        ("1", "1E0"),
        ("1.0", "1E0"),
        ("1.50", "1.5"),
        ("100", "1E+2"),
        ("0.001", "1E-3"),
        ("-0.0", "0"),
        (SMALLEST, "0." + "0" * 129 + "1"),
        (LARGEST, "9" * 38 + "0" * 88),
    ],
)
def test_equal_numbers(a: str, b: str) -> None:
    assert values_equal({"N": a}, {"N": b})
    assert values_equal({"NS": [a, "7"]}, {"NS": ["7", b]})


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("1." + "0" * 36 + "1", "1"),  # 38 significant digits: not rounded away
        ("1.00000000000000000000000000000000000001", "1"),  # 39 digits, as the brief spells it
        ("12345678901234567890123456789012345678", "12345678901234567890123456789012345679"),
        (LARGEST, "9." + "9" * 36 + "8E+125"),
        ("1.000000000000000000000000000000000000001E-130", SMALLEST),
        ("-1", "1"),
        ("1E-130", "0"),
    ],
)
def test_unequal_numbers(a: str, b: str) -> None:
    assert not values_equal({"N": a}, {"N": b})
    assert not values_equal({"N": b}, {"N": a})


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param({"NS": ["1", "2"]}, {"L": [{"N": "1"}, {"N": "2"}]}, id="NS-vs-L-of-N"),
        pytest.param({"SS": ["a"]}, {"L": [{"S": "a"}]}, id="SS-vs-L-of-S"),
        pytest.param({"BS": [b"a"]}, {"L": [{"B": b"a"}]}, id="BS-vs-L-of-B"),
        pytest.param({"SS": ["1"]}, {"NS": ["1"]}, id="SS-vs-NS"),
        pytest.param({"S": "1"}, {"N": "1"}, id="S-vs-N"),
        pytest.param({"S": "AQ=="}, {"B": b"\x01"}, id="S-vs-B"),
        pytest.param({"BOOL": True}, {"NULL": True}, id="BOOL-vs-NULL"),
        pytest.param({"M": {}}, {"L": []}, id="empty-M-vs-empty-L"),
        pytest.param({"L": [{"N": "1"}, {"N": "2"}]}, {"L": [{"N": "2"}, {"N": "1"}]}, id="L-order-matters"),
        pytest.param({"M": {"a": {"N": "1"}}}, {"M": {"b": {"N": "1"}}}, id="M-names-matter"),
        pytest.param({"S": ""}, {"NULL": True}, id="empty-S-vs-NULL"),
    ],
)
def test_unequal_shapes(a: dict, b: dict) -> None:
    assert not values_equal(a, b)
    assert not values_equal(b, a)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param({"B": b"\x01\x02"}, {"B": b64(b"\x01\x02")}, id="B-bytes-vs-base64"),
        pytest.param(
            {"BS": [b"\x01", b"\x02"]}, {"BS": [b64(b"\x02"), b64(b"\x01")]}, id="BS-bytes-vs-base64-shuffled"
        ),
        pytest.param({"SS": ["a", "b", "c"]}, {"SS": ["c", "a", "b"]}, id="SS-order"),
        pytest.param({"NS": ["1", "2.50"]}, {"NS": ["2.5", "1.0"]}, id="NS-order-and-spelling"),
        pytest.param(
            {"M": {"x": {"L": [{"B": b"\xff"}]}, "y": {"N": "10"}}},
            {"M": {"y": {"N": "1E+1"}, "x": {"L": [{"B": b64(b"\xff")}]}}},
            id="nested",
        ),
    ],
)
def test_equal_shapes(a: dict, b: dict) -> None:
    assert values_equal(a, b)
    assert values_equal(b, a)


# --------------------------------------------------------------------------------------------
# keys as text


@FAST
@given(keys())
def test_key_text_round_trip(case: tuple[dict, dict]) -> None:
    key, types = case
    text = key_text(key)
    assert isinstance(text, str)
    assert json.loads(text)  # valid JSON
    assert key_from_text(text, types) == key  # exact: bytes back as bytes, number text unchanged
    assert key_text(encode_lambda_value(key)) == text  # the event form of a key prints the same
    assert key_text(dict(reversed(list(key.items())))) == text  # stable whatever the order


def test_key_text_examples() -> None:
    key: Item = {"pk": {"S": "user#1"}, "sk": {"N": "1.50"}, "bin": {"B": b"\x00\x01"}}
    text = key_text(key)
    assert text == '{"bin":{"B":"AAE="},"pk":{"S":"user#1"},"sk":{"N":"1.50"}}'
    assert key_from_text(text, {"pk": "S", "sk": "N", "bin": "B"}) == key
    assert key_text({"pk": {"S": "é"}}) == '{"pk":{"S":"é"}}'  # printable, not \u-escaped


# --------------------------------------------------------------------------------------------
# sizes


@pytest.mark.parametrize(
    ("item", "size"),
    [
        ({"a": {"S": "abc"}}, 4),  # name 1 + value 3
        ({"a": {"S": ""}}, 1),
        ({"é": {"S": "é"}}, 4),  # UTF-8 bytes, not characters
        ({"ab": {"B": b"\x00\x01\x02"}}, 5),
        ({"ab": {"B": b64(b"\x00\x01\x02")}}, 5),  # the event form: decoded length
        ({"a": {"BOOL": True}}, 2),
        ({"a": {"NULL": True}}, 2),
        ({"a": {"M": {}}}, 4),  # empty map: 3 bytes
        ({"a": {"L": []}}, 4),
        ({"a": {"L": [{"BOOL": True}]}}, 6),  # 3 + (1 + 1)
        ({"a": {"M": {"xy": {"S": "abc"}}}}, 10),  # 1 + 3 + (2 + 3 + 1)
        ({"a": {"M": {"é": {"S": ""}}}}, 7),  # nested names count in UTF-8 bytes too: 1 + 3 + (2 + 0 + 1)
        ({"a": {"SS": ["ab", "c"]}}, 4),
        ({"a": {"BS": [b"ab", b"c"]}}, 4),
        ({"a": {"S": "abc"}, "bb": {"N": "1"}}, 8),
    ],
)
def test_item_size_examples(item: dict, size: int) -> None:
    assert item_size(item) == size


@pytest.mark.parametrize(
    ("number", "size"),
    [
        # (significant digits + 1) // 2 + 1; leading and trailing zeros are not significant
        ("1", 2),
        ("12", 2),
        ("123", 3),
        ("-123", 3),
        ("1.50", 2),
        ("0.0012300", 3),
        ("100", 2),
        ("10.01", 3),
        ("1E+100", 2),
        ("1.2e-5", 2),
        ("0", 2),
        ("12345678901234567890123456789012345678", 20),
        (LARGEST, 20),
        (SMALLEST, 2),
    ],
)
def test_number_size(number: str, size: int) -> None:
    assert value_size({"N": number}) == size
    assert value_size({"NS": [number, "7"]}) == size + 2


@FAST
@given(numbers())
def test_number_size_follows_significant_digits(text: str) -> None:
    d = Decimal(text)
    significant = 1 if d == 0 else len(d.normalize(WIDE).as_tuple().digits)
    assert value_size({"N": text}) == (significant + 1) // 2 + 1


@FAST
@given(items(), attribute_names, attribute_values())
def test_item_size_grows_with_each_attribute(item: dict, name: str, value: dict) -> None:
    if name in item:
        return
    bigger = {**item, name: value}
    assert item_size(bigger) == item_size(item) + len(name.encode("utf-8")) + value_size(value)
    assert item_size(bigger) > item_size(item)


@FAST
@given(lambda_items(), st.randoms(use_true_random=False))
def test_item_size_ignores_spelling(pair: tuple[dict, dict], rnd: random.Random) -> None:
    item, event_form = pair
    assert item_size(event_form) == item_size(item)
    assert item_size(respelled_item(item, rnd)) == item_size(item)
