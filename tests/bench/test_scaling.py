"""Bench line 7: the process-tree sampler sees every process of the tree (and only it), the flat
items have the promised size, and the verdicts compare what they say they compare."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from bench.scaling import (
    ITEM_BYTES,
    TreeSampler,
    flat_item,
    marginal_ms_per_item,
    rows_for,
    rss_bytes,
    tree,
)
from ferry.wire import item_size

pytestmark = pytest.mark.unit

# A child that holds ~64 MB and has a child of its own: a tree of two processes.
_HOLDER = "import subprocess, sys, time; b = bytearray(64 << 20); b[::4096] = b'x' * len(b[::4096]); " + (
    "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
)


def _wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)


def test_flat_items_have_the_promised_size() -> None:
    assert {item_size(flat_item(i)) for i in (0, 9, 12_345, 999_999)} == {ITEM_BYTES}


def test_the_sampler_sums_the_rss_of_every_process_in_the_tree_and_nothing_else() -> None:
    # GIVEN a child holding ~64 MB with a grandchild of its own
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER])
    try:
        _wait_for(lambda: len(tree(holder.pid)) == 2 and rss_bytes(holder.pid) > 64 << 20)
        # WHEN the tree is sampled
        sampler = TreeSampler()
        sampler.sample(holder.pid)
        # THEN both processes are summed: at least the 64 MB held, and more than the child alone
        assert sampler.peak_processes == 2
        assert sampler.peak_rss > rss_bytes(holder.pid) > 64 << 20
        assert len(sampler.cpu) == 2
        # AND the sampler's own process (not part of the tree) is not counted
        assert os.getpid() not in tree(holder.pid)
    finally:
        for pid in reversed(tree(holder.pid)):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        holder.wait(timeout=10)
    # negative control: a process that is gone has no tree and no RSS
    assert rss_bytes(holder.pid) == 0
    assert tree(holder.pid) == [holder.pid]


def test_the_peak_is_kept_when_the_tree_shrinks() -> None:
    sampler = TreeSampler()
    sampler.sample(os.getpid())
    peak = sampler.peak_rss
    sampler.sample(2**22 + 12_345)  # no such process: the tree's RSS is 0 now
    assert sampler.peak_rss == peak > 0


def test_marginal_cost_cancels_the_constant_start_up() -> None:
    start_up, per_item = 12.0, 0.0015
    runs = [{"items": n, "ferry_cpu_seconds": start_up + n * per_item} for n in (1_000, 4_000, 16_000)]
    assert marginal_ms_per_item(runs[0], runs[1]) == pytest.approx(1.5)
    assert marginal_ms_per_item(runs[1], runs[2]) == pytest.approx(1.5)
    # negative control: CPU per item including the start-up would call the smallest size the costliest
    assert runs[0]["ferry_cpu_seconds"] / 1_000 > 5 * runs[2]["ferry_cpu_seconds"] / 16_000


def _result(items: int, steady: float, rss: float, cpu: float) -> dict[str, float]:
    return {
        "items": items,
        "seconds": items / steady + 6,
        "steady_items_per_second": steady,
        "peak_rss_bytes": rss,
        "ferry_cpu_seconds": cpu,
        "emulator_cpu_ms_per_item": 2.0,
    }


def test_verdicts_pass_linear_flat_runs_and_fail_slowing_or_growing_ones() -> None:
    good = [_result(1_000, 400, 600e6, 11.5), _result(4_000, 390, 610e6, 16.0), _result(16_000, 380, 640e6, 34.0)]
    assert [r.met for r in rows_for(good)] == [True, None, True]
    # negative controls: the largest size at 60 % of the middle one's speed, memory that grows with size
    bad = [_result(1_000, 400, 600e6, 11.5), _result(4_000, 400, 900e6, 16.0), _result(16_000, 240, 2.4e9, 80.0)]
    assert [r.met for r in rows_for(bad)] == [False, None, False]
    # the speed verdict compares the largest with the middle size, not with the start-up-bound smallest
    slow_start = [_result(1_000, 100, 600e6, 11.5), _result(4_000, 400, 610e6, 16.0), _result(16_000, 300, 640e6, 34.0)]
    assert rows_for(slow_start)[0].met is False
