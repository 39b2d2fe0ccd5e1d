"""ferry.tables.partiql: the INSERT statements of insert_mode partiql — every value a typed parameter (so
every type stays exact), every attribute name quoted so that it reads back as itself, the 8,192-character
limit, and what each per-statement answer means for the copy."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ferry.tables.partiql import (
    FAILED,
    PRESENT,
    RESEND,
    STATEMENT_LIMIT,
    WRITTEN,
    insert_statement,
    outcome_of,
    quoted_name,
)
from tests.unit.strategies import items

pytestmark = pytest.mark.unit
PREFIX = 'INSERT INTO "orders-v2" VALUE {'


def read_names(statement: str, prefix: str = PREFIX) -> list[str]:
    """The attribute names of an INSERT statement as PartiQL reads them: each a '…' literal in which ''
    is one quote, followed by ': ?'. Fails on anything else (a name that broke out of its quotes)."""
    assert statement.startswith(prefix) and statement.endswith("}")
    body, names, at = statement[len(prefix) : -1], [], 0
    while at < len(body):
        assert body[at] == "'", body[at:]
        at, name = at + 1, []
        while True:
            if body[at] == "'" and body[at + 1 : at + 2] == "'":
                name.append("'")
                at += 2
            elif body[at] == "'":
                at += 1
                break
            else:
                name.append(body[at])
                at += 1
        names.append("".join(name))
        assert body[at : at + 3] == ": ?", body[at:]
        at += 3
        if at < len(body):
            assert body[at : at + 2] == ", "
            at += 2
    return names


@settings(max_examples=300, deadline=None)
@given(items(min_size=1, max_size=6))
def test_every_attribute_is_a_quoted_name_and_a_typed_parameter_carrying_the_value_unchanged(item: Any) -> None:
    before = copy.deepcopy(item)
    request = insert_statement("orders-v2", item)
    assert request is not None
    # the names read back exactly, in the parameters' order, and the parameters are the wire values themselves
    assert read_names(request["Statement"]) == list(item)
    assert request["Parameters"] == [item[name] for name in item] == [before[name] for name in before]
    assert all(p is item[n] for p, n in zip(request["Parameters"], item, strict=True))  # not re-encoded
    assert request["Statement"].count("?") - sum(n.count("?") for n in item) == len(item)


ODD_NAMES = ["it's", "''", "'", "a\\'b", 'q"q', "?", "{x}", ": ?, 'y", "é✓😀", "new\nline", "--c", "/*c*/"]


@pytest.mark.parametrize("name", ODD_NAMES)
def test_an_odd_attribute_name_cannot_break_out_of_its_quotes(name: str) -> None:
    request = insert_statement("orders-v2", {"pk": {"S": "k"}, name: {"N": "1"}})
    assert request is not None
    assert read_names(request["Statement"]) == ["pk", name]
    assert quoted_name("it's") == "'it''s'"


def test_the_table_name_is_a_quoted_identifier() -> None:
    request = insert_statement("a.b-c_d", {"pk": {"S": "k"}})
    assert request == {"Statement": "INSERT INTO \"a.b-c_d\" VALUE {'pk': ?}", "Parameters": [{"S": "k"}]}


def _with_statement_length(length: int) -> dict[str, Any]:
    """An item whose INSERT statement into orders-v2 is exactly ``length`` characters long."""
    base = len(f"{PREFIX}'pk': ?, '': ?}}")
    return {"pk": {"S": "k"}, "x" * (length - base): {"S": "v"}}


def test_a_statement_of_8192_characters_is_sent_and_one_longer_falls_back() -> None:
    fits, over = _with_statement_length(STATEMENT_LIMIT), _with_statement_length(STATEMENT_LIMIT + 1)
    request = insert_statement("orders-v2", fits)
    assert request is not None and len(request["Statement"]) == STATEMENT_LIMIT == 8192
    assert len(f"{PREFIX}'pk': ?, '{'x' * (len(list(over)[1]))}': ?}}") == STATEMENT_LIMIT + 1
    assert insert_statement("orders-v2", over) is None  # the caller writes it with the conditional PutItem


def test_the_limit_counts_bytes_so_a_multibyte_name_falls_back_before_any_endpoint_could_refuse_it() -> None:
    # 4-byte characters: 2,048 of them are 8,192 bytes on their own, fewer than 8,192 characters in all
    item = {"pk": {"S": "k"}, "😀" * 2048: {"S": "v"}}
    assert insert_statement("orders-v2", item) is None


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=300), min_size=1, max_size=60, unique=True))
def test_a_statement_is_built_exactly_when_it_fits(names: list[str]) -> None:
    item = {name: {"S": "v"} for name in names}
    request = insert_statement("orders-v2", item)
    pieces = ", ".join(f"{quoted_name(n)}: ?" for n in names)
    length = len(f"{PREFIX}{pieces}}}".encode())
    assert (request is not None) == (length <= STATEMENT_LIMIT)


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        ("", WRITTEN),
        ("DuplicateItem", PRESENT),  # the key is there: a live write or a tombstone won
        ("ProvisionedThroughputExceeded", RESEND),
        ("ThrottlingError", RESEND),
        ("RequestLimitExceeded", RESEND),
        ("InternalServerError", RESEND),
        ("TransactionConflict", RESEND),
        ("ValidationError", FAILED),
        ("ConditionalCheckFailed", FAILED),  # an INSERT has no condition: not "present"
        ("AccessDenied", FAILED),
        ("ResourceNotFound", FAILED),
        ("ItemCollectionSizeLimitExceeded", FAILED),
        ("SomethingNew", FAILED),
    ],
)
def test_what_each_per_statement_answer_means(code: str, outcome: str) -> None:
    assert outcome_of(code) == outcome


@pytest.mark.parametrize("mode", ["put", "partiql"])
def test_an_asked_insert_mode_is_taken_without_probing_the_endpoint(mode: str) -> None:
    from ferry.tables.backfill import insert_mode_for

    def no_client() -> Any:
        raise AssertionError("only auto probes: no client is made for an insert mode the spec names")

    assert insert_mode_for(mode, no_client, "ferry-state", "orders") == mode
