"""Line 1 and 3's replay rows: the import's counts read from the job's summary, the check that tells the
emulator's ImportTable escapes from a real difference (with negative controls), the verdicts (the best
path must be 3× the naive copy, every path exact and released), the cost rows — and one short replay copy
under the load end to end through the real Glue script and the held pollers. (The load itself:
test_table_source.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.common import Timed, bench_emulator
from bench.replay_copy import (
    PATHS,
    best_path,
    copy,
    cost_rows,
    escapes_explain,
    exactness,
    imported_counts,
    json_escaped,
    speed_rows,
)
from bench.table_backfill import Bench
from bench.table_source import bench_item
from ferry_dev.emulator import Emulator, use_dummy_credentials

# --- the job's summary and the emulator's import --------------------------------------------


@pytest.mark.unit
def test_the_imports_counts_are_read_from_the_summary_and_a_batch_copy_has_none() -> None:
    line = "src -> dst: imported 2002 of 2004 items, 2 errors (arn:aws:dynamodb:…/import/x), 9.1s\n"
    assert imported_counts(line) == {"imported": 2002, "processed": 2004, "errors": 2}
    assert imported_counts("src -> dst: 8 segments, 10 items read, 10 written, 0 already present, 0 failed") is None


@pytest.mark.unit
def test_strings_escaped_the_way_the_emulators_import_leaves_them_are_told_from_real_differences() -> None:
    source = bench_item(3)  # "naïve 日本語" in a set, "Zürich 🚢" in a map
    escaped = {name: json_escaped(value) for name, value in source.items()}
    assert escaped["tags"]["SS"][0] == "na\\u00efve \\u65e5\\u672c\\u8a9e"
    assert escaped["profile"]["M"]["city"]["S"] == "Z\\u00fcrich \\ud83d\\udea2"
    assert escaped["blob"] == source["blob"] and escaped["exact"] == source["exact"]  # only strings change
    assert escapes_explain(source, escaped)
    # negative controls: an exact copy needs no explanation; a changed number, a lost attribute and a
    # missing item are real differences
    assert not escapes_explain(source, dict(source))
    assert not escapes_explain(source, {**escaped, "exact": {"N": "1"}})
    assert not escapes_explain(source, {k: v for k, v in escaped.items() if k != "blob"})
    assert not escapes_explain(source, None)


# --- verdicts ---------------------------------------------------------------------------------


def _run(**extra: Any) -> dict[str, Any]:
    return {
        "differences": 0,
        "verified_items": 100,
        "released": True,
        "copy_seconds": 5.0,
        "replay_seconds": 1.0,
        "load_writes": 100,
        "load_rate": 20.0,
        "replayed_records": 100,
        "emulator_cpu_ms_per_item": 1.0,
        "steady_seconds": 1.0,
        **extra,
    }


@pytest.mark.unit
def test_a_replay_copy_is_exact_only_with_no_difference_and_a_release() -> None:
    assert exactness(Timed([1.0], [_run()]))[0]
    assert not exactness(Timed([1.0, 1.0], [_run(), _run(differences=2)]))[0]
    assert not exactness(Timed([1.0], [_run(released=False)]))[0]
    assert not exactness(Timed([], []))[0]
    explained = _run(differences=5, explained={"read": 5, "explained_by_import_escapes": 5})
    exact, text = exactness(Timed([1.0], [explained]))
    assert not exact and "ImportTable" in text  # explained is still not exact
    partly = _run(differences=5, explained={"read": 5, "explained_by_import_escapes": 4})
    assert "ImportTable" not in exactness(Timed([1.0], [partly]))[1]


def _results(naive: float, paths: dict[str, float], batch_steady: float = 1.0) -> dict[str, Timed]:
    results = {
        "naive": Timed([naive], [_run()]),
        "batch_writer": Timed([naive * 2], [_run(steady_seconds=batch_steady)]),
    }
    for path in PATHS:
        results[path] = Timed([paths.get(path, 1.0)], [_run()])
    return results


@pytest.mark.unit
def test_the_best_path_is_judged_against_three_times_the_naive_copy() -> None:
    results = _results(100.0, {"replay_scan_batch": 250.0, "replay_export_batch": 290.0, "replay_export_import": 120.0})
    assert best_path(results) == "replay_export_batch"
    (judged,) = [r for r in speed_rows(results, 100, "one round") if r.target.startswith("≥ 3")]
    assert judged.met is False  # 2.9× is not 3×
    results["replay_export_import"] = Timed([300.0], [_run()])
    (best,) = [r for r in speed_rows(results, 100, "one round") if r.target.startswith("≥ 3")]
    assert best.met is True and "export+import" in best.ferry


@pytest.mark.unit
def test_the_steady_state_of_scan_batch_must_reach_batch_writers() -> None:
    results = _results(100.0, {}, batch_steady=0.9)  # batch_writer 100 items in 0.9 s, replay in 1.0 s
    (steady,) = [r for r in speed_rows(results, 100, "one round") if r.target == "≥ 1×"]
    assert steady.met is False and steady.lead == pytest.approx(0.9)
    results = _results(100.0, {}, batch_steady=1.0)
    (steady,) = [r for r in speed_rows(results, 100, "one round") if r.target == "≥ 1×"]
    assert steady.met is True


@pytest.mark.unit
def test_replay_costs_are_units_per_million_items_by_dynamodbs_rules() -> None:
    runs = {
        "replay_scan_batch": _run(read_units_by_size=61.0, write_units_by_size=500.0, checkpoint_writes=4,
                                  scan_requests=4, batch_requests=20, file_requests=0),
        "replay_export_batch": _run(read_units_by_size=0.0, write_units_by_size=500.0, checkpoint_writes=1,
                                    scan_requests=0, batch_requests=20, file_requests=1),
        "replay_export_import": _run(read_units_by_size=0.0, write_units_by_size=0.0, checkpoint_writes=0,
                                     scan_requests=0, batch_requests=0, file_requests=0),
    }  # fmt: skip
    results = {path: Timed([1.0], [run]) for path, run in runs.items()}
    rows, details = cost_rows(results, 500, {"RCU": 62_000.0, "WCU": 1_000_000.0})
    assert details["replay_scan_batch"]["rcu_per_million"] == pytest.approx(122_000)
    assert details["replay_scan_batch"]["wcu_per_million"] == pytest.approx(1_008_000)  # checkpoints included
    assert details["replay_export_batch"]["rcu_per_million"] == 0
    assert details["replay_export_import"]["wcu_per_million"] == 0
    assert len(rows) == 6 and all(r.line == "3" for r in rows)
    assert [r.lead for r in rows if r.ferry.startswith("0 ")] == [None, None, None]  # no ratio against 0 units


# --- end to end -------------------------------------------------------------------------------


@pytest.mark.spark
def test_a_short_replay_copy_under_load_ends_exact_with_every_change_replayed(tmp_path: Path) -> None:
    # GIVEN a fresh emulator (initialize creates the failure queue under its default name)
    use_dummy_credentials()
    with Emulator(kind=bench_emulator()) as emu:
        from ferry.clients import AwsTarget, make_client

        ddb = make_client("dynamodb", AwsTarget("us-east-1", emu.endpoint_url))
        # WHEN scan+batch copies 200 items while the load writes, and the pollers drain
        _, details = copy(Bench(emu, ddb, 200, tmp_path), "replay_scan_batch")
        tables = ddb.list_tables()["TableNames"]
    # THEN it was released, the load's changes were replayed, and verify finds the target exact
    assert details["released"] and details["differences"] == 0
    assert details["load_writes"] > 0 and details["load_errors"] == []
    # (a delete of an absent key makes no stream record; the emulator's upsert by UpdateItem makes two)
    assert details["replayed_records"] > 0 and details["dead_lettered"] == 0
    assert details["verified_items"] == details["target_items"] > 0
    assert details["touched_keys"] > 0 and details["seed_seconds"] >= 0
    assert details["copy_seconds"] < details["seconds"]  # the replay comes after the copy's summary
    assert details["batch_requests"] > 0 and details["scan_requests"] > 0
    # AND the run left no table of its own behind
    assert not [t for t in tables if t.startswith("bench-")]
