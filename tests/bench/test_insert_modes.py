"""Bench line 1, insert modes: partiql against conditional PutItem on ministack — each run copies with the
mode it claims (partiql only when auto's probe chose it), counts its requests, and is compared item by item;
the rows judge the ratio and never call a short or different copy exact."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from bench.common import Timed
from bench.insert_modes import TARGET_LEAD, copy_with, rows_of
from bench.table_source import bench_item, seed
from ferry.spec import INSERT_PARTIQL, INSERT_PUT
from ferry_dev.workload import create_workload_table


def _timed(rates: list[float], items: int, exact: bool = True, requests: int = 4) -> Timed:
    run = {"items": items, "exact": exact, "partiql_requests": requests}
    return Timed(samples=rates, extra=[dict(run) for _ in rates])


@pytest.mark.unit
def test_the_rows_report_the_median_ratio_against_the_target_and_exactness_of_every_run() -> None:
    results = {INSERT_PARTIQL: _timed([900.0, 700.0, 800.0], 100), INSERT_PUT: _timed([300.0, 400.0, 350.0], 100)}
    speed, exact = rows_of(results, 100)
    assert speed.lead == pytest.approx(800 / 350) and TARGET_LEAD < 2.28 and speed.met is True
    assert speed.ferry == "800 items/s" and speed.other_value == "350 items/s"
    assert exact.met is True and exact.ferry == "yes"
    # a lead below the target is not met
    slow = {INSERT_PARTIQL: _timed([400.0], 100), INSERT_PUT: _timed([350.0], 100)}
    assert rows_of(slow, 100)[0].met is False


@pytest.mark.unit
@pytest.mark.parametrize(("exact", "items"), [(False, 100), (True, 99)])
def test_a_run_that_differs_or_copied_fewer_items_is_never_reported_exact(exact: bool, items: int) -> None:
    results = {INSERT_PARTIQL: _timed([800.0], 100), INSERT_PUT: _timed([300.0], items, exact=exact)}
    assert rows_of(results, 100)[1].met is False


@contextmanager
def _source(ddb: Any, unique: str, items: int) -> Iterator[str]:
    """A seeded source, deleted afterwards (the session's emulator is shared: other tests list its tables)."""
    source = f"bench-im-{unique}"
    create_workload_table(ddb, source)
    try:
        seed(ddb, source, (bench_item(i) for i in range(items)))
        yield source
    finally:
        ddb.delete_table(TableName=source)


@pytest.mark.functional
@pytest.mark.emulators("ministack", reason="the line compares the modes where auto picks partiql")
def test_each_mode_copies_exactly_with_its_own_requests(ddb, emulator, unique) -> None:
    with _source(ddb, unique, 120) as source:
        rate, partiql = copy_with(emulator.endpoint_url, ddb, source, INSERT_PARTIQL, 0)
        _, put = copy_with(emulator.endpoint_url, ddb, source, INSERT_PUT, 0)
    assert rate > 0 and partiql["mode"] == INSERT_PARTIQL and partiql["exact"] and partiql["items"] == 120
    assert partiql["put_requests"] == 0 and 120 / 25 <= partiql["partiql_requests"] < 120 / 5
    assert put["exact"] and put["items"] == 120 and put["put_requests"] == 120 and put["partiql_requests"] == 0
    assert partiql["write_units_by_size"] == put["write_units_by_size"] == 120  # the same WCU, fewer requests


@pytest.mark.functional
@pytest.mark.emulators("moto", reason="moto's INSERT overwrites: auto keeps PutItem there")
def test_the_line_refuses_to_compare_where_auto_does_not_pick_partiql(ddb, emulator, unique) -> None:
    with _source(ddb, unique, 10) as source, pytest.raises(RuntimeError, match="chose put, not partiql"):
        copy_with(emulator.endpoint_url, ddb, source, INSERT_PARTIQL, 0)
    assert not [t for t in ddb.list_tables()["TableNames"] if t.startswith(f"bench-im-{unique}")]
