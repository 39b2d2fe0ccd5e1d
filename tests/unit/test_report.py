"""ferry_cli.report: the series a report plots (rates per window, lag windows, the backlog curve), the
verify summary of either shape, plan estimates, and the HTML it renders (no I/O: data built here)."""

from __future__ import annotations

import json
import re

import pytest

from ferry.runlog import CopySample, LagSample
from ferry.spec import parse_spec
from ferry.tables.state import CopyRun
from ferry_cli.report import (
    RatePoint,
    ReportData,
    SourceReport,
    backlog_curve,
    bin_width,
    binned_rates,
    external_references,
    lag_windows,
    parse_verify,
    plan_estimates,
    rates_by_split,
    render,
    run_path,
    throttles_per_window,
    weighted_percentile,
)

pytestmark = pytest.mark.unit

T0 = 1_000.0


def sample(split: int, start: float, end: float, items: int, *, bytes: int = 0, throttled: int = 0) -> CopySample:
    return CopySample(
        split, T0 + start, T0 + end, items, bytes, read_units=items / 2, write_units=items, throttled=throttled
    )


def lag(at: float, records: int, p50: float, p99: float, failed: int = 0) -> LagSample:
    return LagSample(T0 + at, records, p50, p99, max(p99, p50), failed)


# rates per window -----------------------------------------------------------------------------
def test_a_sample_is_spread_over_the_windows_it_spans():
    # GIVEN 400 items written over 4 s WHEN binned in 2 s windows THEN 100 items/s in each
    assert binned_rates([sample(0, 0, 4, 400)], lambda s: s.items, origin=T0, width=2) == [
        RatePoint(0, 100.0),
        RatePoint(2, 100.0),
    ]


def test_a_sample_straddling_windows_is_split_by_time_and_idle_windows_are_zero():
    # GIVEN 300 items over [1, 4) and 50 items over [8, 9)
    rates = binned_rates([sample(0, 1, 4, 300), sample(0, 8, 9, 50)], lambda s: s.items, origin=T0, width=2)
    # THEN window [0,2) got a third (100 items = 50/s), [2,4) two thirds, [4,8) nothing, [8,10) 50 items
    assert rates == [RatePoint(0, 50.0), RatePoint(2, 100.0), RatePoint(4, 0.0), RatePoint(6, 0.0), RatePoint(8, 25.0)]


def test_a_sample_without_length_counts_whole_in_its_window():
    assert binned_rates([sample(0, 3, 3, 10)], lambda s: s.items, origin=T0, width=2) == [RatePoint(2, 5.0)]


def test_splits_are_kept_apart_and_add_up_in_the_total():
    samples = [sample(0, 0, 2, 100), sample(1, 0, 2, 300), sample(1, 2, 4, 60)]
    per_split = rates_by_split(samples, lambda s: s.items, origin=T0, width=2)
    assert per_split == {0: [RatePoint(0, 50.0)], 1: [RatePoint(0, 150.0), RatePoint(2, 30.0)]}
    assert binned_rates(samples, lambda s: s.items, origin=T0, width=2) == [RatePoint(0, 200.0), RatePoint(2, 30.0)]


def test_no_samples_no_rates_and_throttles_are_counts_per_window():
    assert binned_rates([], lambda s: s.items, origin=T0, width=2) == []
    counted = throttles_per_window(
        [sample(0, 0, 2, 10, throttled=3), sample(1, 0, 2, 10, throttled=1)], origin=T0, width=2
    )
    assert counted == [RatePoint(0, 4.0)]


def test_the_window_grows_with_the_span_to_at_most_max_bins():
    assert bin_width(10) == 2.0
    assert bin_width(0) == 2.0
    assert bin_width(3_000, max_bins=150) == 20.0


# lag and backlog ------------------------------------------------------------------------------
def test_weighted_percentile_weights_by_records():
    assert weighted_percentile([(1.0, 9), (10.0, 1)], 0.5) == 1.0
    assert weighted_percentile([(1.0, 9), (10.0, 1)], 0.99) == 10.0
    assert weighted_percentile([(1.0, 0)], 0.5) == 0.0
    assert weighted_percentile([], 0.5) == 0.0


def test_lag_windows_weight_invocations_by_records_and_skip_windows_without_one():
    # GIVEN a large fast batch and a small slow one in [0, 2), nothing in [2, 4), one batch in [4, 6)
    windows = lag_windows(
        [lag(0.5, 90, 0.2, 0.5), lag(1.5, 10, 3.0, 4.0), lag(5, 5, 1.0, 2.0, failed=1)], origin=T0, width=2
    )
    # THEN the first window's p50 is the big batch's, its p99 the slow batch's; no window at 2
    assert [w.at for w in windows] == [0, 4]
    first, last = windows
    assert (first.records, first.p50, first.p99, first.max) == (100, 0.2, 4.0, 4.0)
    assert (last.records, last.failed, last.p50) == (5, 1, 1.0)


def test_the_backlog_drains_from_the_held_count_by_the_records_applied_after_the_release():
    samples = [lag(5, 50, 0, 0), lag(11, 40, 0, 0), lag(12, 30, 0, 0, failed=10), lag(13, 500, 0, 0)]
    # GIVEN 100 held at the release at t=10 (the batch at t=5 came before it and does not count)
    curve = backlog_curve(100, T0 + 10, samples, origin=T0)
    # THEN 100, then 60, then 40 (failed records are still held), then 0 (never below)
    assert curve == [RatePoint(10, 100.0), RatePoint(11, 60.0), RatePoint(12, 40.0), RatePoint(13, 0.0)]


# verify and plan ------------------------------------------------------------------------------
def test_verify_summary_of_the_older_shape_is_the_counts_alone():
    view = parse_verify(json.dumps({"missing": 2, "extra": 0}), 2, T0)
    assert (view.passed, view.counts, view.samples, view.source_items) == (False, {"missing": 2, "extra": 0}, {}, None)


def test_verify_summary_of_the_newer_shape_has_samples_and_item_counts():
    summary = {"counts": {"missing": 1}, "samples": {"missing": ["k1"]}, "source_items": 10, "target_items": 9}
    view = parse_verify(json.dumps(summary), 1, T0)
    assert (view.counts, view.samples, view.source_items, view.target_items) == (
        {"missing": 1},
        {"missing": ["k1"]},
        10,
        9,
    )
    assert parse_verify("not json", 0, T0).passed and parse_verify("[1]", 0, T0).counts == {}


def test_plan_estimates_are_the_paths_of_the_source_of_its_kind():
    row = {"path": "insert-only", "duration": "40 s", "seconds": 40.0, "formula": "f", "available": True, "x": 1}
    plan = {"tables": [{"source": "orders", "paths": [row]}, {"source": "other"}], "buckets": [{"source": "orders"}]}
    assert plan_estimates(plan, "orders") == [
        {k: row[k] for k in ("path", "duration", "seconds", "formula", "available")}
    ]
    assert plan_estimates(plan, "orders", "bucket") == []
    assert plan_estimates(plan, "missing") == [] and plan_estimates([1], "orders") == []


def test_run_path_names_the_plan_path_a_copy_took():
    assert run_path(CopyRun(protocol="replay", read="export", write="batch")) == "replay export+batch"
    assert run_path(CopyRun(protocol="insert-only", read="scan", write="batch")) == "insert-only"
    assert run_path(CopyRun(protocol="replay"), "bucket") == "replay" and run_path(None) == ""


def test_external_references_find_fetches_but_not_text():
    assert external_references('<img src="https://cdn.example/x.png"><link href=//cdn/x.css>') == [
        'src="https://',
        "href=//",
    ]
    assert external_references("<p>see https://example.com</p><a href='#x'>x</a>") == []


# rendering ------------------------------------------------------------------------------------
def _data(with_samples: bool) -> ReportData:
    spec = parse_spec({"region": "us-east-1", "tables": [{"source": "orders", "target": "orders-v2"}]})
    run = CopyRun(protocol="replay", read="scan", write="batch", status="done", started_at=T0, finished_at=T0 + 8)
    src = SourceReport("table", "orders", "orders-v2", "replay", "live", run, released_at=T0 + 8, held=30)
    if with_samples:
        src.copy_samples = [
            sample(k, i, i + 2, 100 + k, bytes=50_000, throttled=int(i == 2)) for i in (0, 2, 4, 6) for k in (0, 1)
        ]
        src.lag_samples = [lag(8 + i, 10, 0.1 * i, 0.2 * i) for i in range(5)]
        src.verify = parse_verify('{"missing": 1}', 1, T0 + 20)
    return ReportData(spec, T0 + 30, [src])


def _figures(document: str) -> dict[str, str]:
    return dict(re.findall(r'<figure class="plot" data-plot="([^"]+)"[^>]*>(.*?)</figure>', document, re.S))


def test_every_plot_of_a_recorded_run_has_its_series_and_nothing_is_fetched():
    document = render(_data(with_samples=True))
    figures = _figures(document)
    assert set(figures) == {"throughput-count", "throughput-mb", "capacity", "lag", "backlog"}
    for name, svg in figures.items():
        assert re.search(r'<g id="series-table-orders-', svg), name  # matplotlib wrote the series' gid
    assert 'id="series-table-orders-capacity-throttled-requests"' in figures["capacity"]
    assert 'id="series-table-orders-throughput-count-total"' in figures["throughput-count"]
    assert external_references(document) == [] and "<script" not in document
    assert "verify FAILED: 1 differences" in document and "20.0 s" not in document  # measured 8 s
    assert "8.0 s" in document


def test_a_run_with_nothing_recorded_shows_notes_not_empty_axes():
    document = render(_data(with_samples=False))
    assert _figures(document) == {}  # negative control of the test above: no plot without data
    for note in (
        "no copy throughput recorded",
        "no consumed capacity recorded",
        "no lag recorded",
        "no verify recorded",
    ):
        assert note in document
