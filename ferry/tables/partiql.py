"""Insert-only writes as PartiQL (``backfill.insert_mode``, docs/adr/0001): the statements and what each
statement's answer means. No I/O here; :mod:`ferry.aws` sends them, :mod:`ferry.tables.backfill` uses them.

An item becomes ``INSERT INTO "table" VALUE {'name': ?, …}`` with one typed parameter per top-level
attribute: the values travel as wire-format AttributeValues, never as PartiQL literals, so every type
(SS/NS/BS/M/L/B, 38-digit N) arrives exactly as scanned. Attribute names are PartiQL string literals
(a quote is written twice); the table name is a quoted identifier. DynamoDB's INSERT fails with
``DuplicateItem`` when the key exists (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/
ql-reference.insert.html), which is what ``attribute_not_exists`` gives a PutItem: the key is "already present".
A statement is at most 8,192 characters (BatchStatementRequest.Statement, https://docs.aws.amazon.com/
amazondynamodb/latest/APIReference/API_BatchStatementRequest.html): an item whose statement would be longer
(many or long attribute names) is written with the conditional PutItem instead.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from ferry.aws import STATEMENT_RESEND_CODES
from ferry.wire import Item

STATEMENT_LIMIT: Final = 8192  # characters of one PartiQL statement (counted here as UTF-8 bytes: never more)
BATCH_STATEMENTS: Final = 25  # statements per BatchExecuteStatement
DUPLICATE: Final = "DuplicateItem"
# Per-statement errors that say "not now": sent again after a backoff, never dropped.
RESEND_CODES: Final = STATEMENT_RESEND_CODES
WRITTEN, PRESENT, RESEND, FAILED = "written", "present", "resend", "failed"


def quoted_name(name: str) -> str:
    """An attribute name as a PartiQL string literal: in single quotes, a quote inside written twice."""
    return "'" + name.replace("'", "''") + "'"


def quoted_table(table: str) -> str:
    """A table name as a PartiQL quoted identifier (DynamoDB's names hold no quote; doubled if one did)."""
    return '"' + table.replace('"', '""') + '"'


def insert_statement(table: str, item: Item) -> dict[str, Any] | None:
    """The BatchStatementRequest that inserts ``item`` into ``table``, or None when its statement would be
    longer than DynamoDB accepts (the caller then uses a conditional PutItem)."""
    names = list(item)
    statement = f"INSERT INTO {quoted_table(table)} VALUE {{{', '.join(f'{quoted_name(n)}: ?' for n in names)}}}"
    if len(statement.encode("utf-8")) > STATEMENT_LIMIT:
        return None
    return {"Statement": statement, "Parameters": [item[name] for name in names]}


def outcome_of(code: str) -> str:
    """What one statement's answer means for the copy: WRITTEN (no error), PRESENT (the key exists: a live
    write or a tombstone won, like a failed ``attribute_not_exists``), RESEND (throttled or transient), FAILED."""
    if not code:
        return WRITTEN
    if code == DUPLICATE:
        return PRESENT
    return RESEND if code in RESEND_CODES else FAILED


def probe_item() -> Item:
    """A fresh key in the state table (``pk``/``sk``) that nothing else uses, for the insert-mode probe."""
    return {"pk": {"S": f"probe#insert-mode#{uuid.uuid4().hex}"}, "sk": {"S": "probe"}}
