"""``ferry report``: one self-contained HTML file made after the fact from the state table alone (and,
when given, ``ferry plan --json``'s file): copy throughput per split, consumed capacity against the
budget, replication lag, the held backlog draining after a replay release, the verify result and the
plan's estimate next to what was measured. docs/adr/0007-report.md says why matplotlib, inline SVG.

Three layers, so the arithmetic is tested without I/O or plotting:

- series (pure): samples -> per-second rates per window, lag windows (p50/p99), the backlog curve,
  the verify summary of either shape;
- :func:`collect`: reads the state table into :class:`SourceReport` values;
- :func:`render`: the HTML, each plot an inline ``<svg>`` in ``<figure class="plot" data-plot=...>``
  whose data series carry a ``series-`` id. A plot with nothing recorded is an explicit note, never an
  empty axis.
"""

from __future__ import annotations

import html
import io
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferry.runlog import CLOCK_SKEW_SECONDS, CopySample, LagSample, RunLog
from ferry.spec import PROTOCOL_INSERT_ONLY, READ_EXPORT, READ_SCAN, WRITE_BATCH, WRITE_IMPORT, Spec
from ferry.tables.estimate import PATH_EXPORT_BATCH, PATH_EXPORT_IMPORT, PATH_INSERT_ONLY, PATH_SCAN_BATCH
from ferry.tables.state import BUCKET, TABLE, StateStore

MB = 1_000_000
SERIES_PREFIX = "series-"  # the id prefix of every drawn data series (a test finds them by it)
MAX_BINS = 150  # a plot's x axis is cut into at most this many windows


# series (pure) --------------------------------------------------------------------------------
@dataclass(frozen=True)
class RatePoint:
    at: float  # seconds since the report's origin: the window's start
    rate: float  # per second over the window


def bin_width(span: float, minimum: float = 2.0, max_bins: int = MAX_BINS) -> float:
    """A window width: at least ``minimum`` seconds, and no more than ``max_bins`` windows over ``span``."""
    return float(max(minimum, math.ceil(span / max_bins))) if span > 0 else minimum


def binned_rates(
    samples: Iterable[CopySample], value: Callable[[CopySample], float], *, origin: float, width: float
) -> list[RatePoint]:
    """Per-second rates per window of ``width`` seconds from ``origin``: each sample's ``value`` is
    spread evenly over its own [started, ended] (all of it in one window when it has no length), so
    samples that straddle windows or overlap (several splits) add up correctly. Windows between the
    first and the last sample are all present, at 0 when nothing was done in them."""
    totals: dict[int, float] = {}
    for s in samples:
        amount = float(value(s))
        start, end = s.started - origin, max(s.ended, s.started) - origin
        if end - start <= 1e-9:
            index = math.floor(start / width)
            totals[index] = totals.get(index, 0.0) + amount
            continue
        index = math.floor(start / width)
        while index * width < end:
            lo, hi = max(start, index * width), min(end, (index + 1) * width)
            if hi > lo:
                totals[index] = totals.get(index, 0.0) + amount * (hi - lo) / (end - start)
            index += 1
    if not totals:
        return []
    return [RatePoint(i * width, totals.get(i, 0.0) / width) for i in range(min(totals), max(totals) + 1)]


def rates_by_split(
    samples: Sequence[CopySample], value: Callable[[CopySample], float], *, origin: float, width: float
) -> dict[int, list[RatePoint]]:
    splits = sorted({s.split for s in samples})
    return {
        split: binned_rates([s for s in samples if s.split == split], value, origin=origin, width=width)
        for split in splits
    }


def throttles_per_window(samples: Iterable[CopySample], *, origin: float, width: float) -> list[RatePoint]:
    """Throttled requests counted per window (``rate`` is a count here, not per second)."""
    return [
        RatePoint(p.at, p.rate * width)
        for p in binned_rates(samples, lambda s: s.throttled, origin=origin, width=width)
    ]


def weighted_percentile(pairs: Iterable[tuple[float, int]], q: float) -> float:
    """The ``q`` (0..1) percentile of values weighted by counts (nearest rank); 0.0 for none."""
    ordered = sorted((v, w) for v, w in pairs if w > 0)
    total = sum(w for _, w in ordered)
    if not total:
        return 0.0
    rank, seen = max(1, math.ceil(q * total)), 0
    for value, weight in ordered:
        seen += weight
        if seen >= rank:
            return value
    return ordered[-1][0]


@dataclass(frozen=True)
class LagWindow:
    at: float  # seconds since the origin: the window's start
    records: int
    p50: float
    p99: float
    max: float
    failed: int


def lag_windows(samples: Iterable[LagSample], *, origin: float, width: float) -> list[LagWindow]:
    """Handler invocations grouped by window: p50 and p99 weighted by each invocation's records (an
    invocation reports its own percentiles, not its lags, so this is the record-weighted percentile of
    them: exact for one invocation per window, close otherwise), max the largest. Windows without an
    invocation are left out (no lag was measured then, which is not a lag of 0)."""
    groups: dict[int, list[LagSample]] = {}
    for s in samples:
        groups.setdefault(math.floor((s.at - origin) / width), []).append(s)
    out = []
    for index in sorted(groups):
        group = groups[index]
        applied = [(s, max(s.records - s.failed, 0)) for s in group]
        weights = [(s.p50, n) for s, n in applied]
        out.append(
            LagWindow(
                at=index * width,
                records=sum(s.records for s in group),
                p50=weighted_percentile(weights, 0.5),
                p99=weighted_percentile([(s.p99, n) for s, n in applied], 0.99),
                max=max(s.max for s in group),
                failed=sum(s.failed for s in group),
            )
        )
    return out


def backlog_curve(held: int, released_at: float, samples: Iterable[LagSample], *, origin: float) -> list[RatePoint]:
    """The held backlog draining after a replay release: ``held`` at the release, then after each
    invocation ``held`` minus the records applied since (never below 0). ``rate`` is a count here."""
    points = [RatePoint(released_at - origin, float(held))]
    applied = 0
    for s in sorted(samples, key=lambda s: s.at):
        if s.at < released_at:
            continue
        applied += max(s.records - s.failed, 0)
        points.append(RatePoint(s.at - origin, float(max(held - applied, 0))))
    return points


@dataclass(frozen=True)
class VerifyView:
    passed: bool
    differences: int
    updated_at: float
    counts: dict[str, int]
    samples: dict[str, list[str]]
    source_items: int | None = None
    target_items: int | None = None


def parse_verify(summary_json: str, differences: int, updated_at: float) -> VerifyView:
    """The state table's verify summary, either shape: the counts dict alone (older), or
    ``{"counts": ..., "samples": ..., "source_items": n, "target_items": n}``."""
    try:
        data = json.loads(summary_json)
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    nested = isinstance(data.get("counts"), dict)
    counts_raw = data["counts"] if nested else {k: v for k, v in data.items() if isinstance(v, int)}
    counts = {str(k): int(v) for k, v in counts_raw.items() if isinstance(v, int | float)}
    samples_raw = data.get("samples") if nested else None
    samples = (
        {str(k): [str(key) for key in v] for k, v in samples_raw.items() if isinstance(v, list)}
        if isinstance(samples_raw, dict)
        else {}
    )

    def number(name: str) -> int | None:
        value = data.get(name) if nested else None
        return int(value) if isinstance(value, int | float) else None

    return VerifyView(
        passed=differences == 0,
        differences=differences,
        updated_at=updated_at,
        counts=counts,
        samples=samples,
        source_items=number("source_items"),
        target_items=number("target_items"),
    )


def plan_estimates(plan: Any, source: str, kind: str = TABLE) -> list[dict[str, Any]]:
    """The per-path rows of a ``ferry plan --json`` document for ``source`` (its ``tables`` or
    ``buckets`` entry): path, duration as shown, seconds, formula; [] when the plan has no such entry."""
    entries = plan.get("tables" if kind == TABLE else "buckets", []) if isinstance(plan, dict) else []
    for entry in entries:
        if isinstance(entry, dict) and entry.get("source") == source:
            return [
                {name: row.get(name) for name in ("path", "duration", "seconds", "formula", "available")}
                for row in entry.get("paths", [])
                if isinstance(row, dict)
            ]
    return []


def run_path(run: Any, kind: str = TABLE) -> str:
    """The plan's name of the path a copy run took (``replay export+batch``, ``insert-only``, ``replay``)."""
    if run is None or not getattr(run, "protocol", ""):
        return ""
    if run.protocol == PROTOCOL_INSERT_ONLY:
        return PATH_INSERT_ONLY
    if kind != TABLE:
        return "replay"
    paths = {(READ_SCAN, WRITE_BATCH): PATH_SCAN_BATCH, (READ_EXPORT, WRITE_BATCH): PATH_EXPORT_BATCH}
    return paths.get((run.read, run.write), PATH_EXPORT_IMPORT if run.write == WRITE_IMPORT else "")


_EXTERNAL = re.compile(r"""\b(?:src|href|xlink:href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


def external_references(document: str) -> list[str]:
    """Every ``src``/``href`` that would fetch something at view time (a self-contained report has none)."""
    return [m.group(0) for m in _EXTERNAL.finditer(document)]


# collecting (reads the state table) ------------------------------------------------------------
@dataclass
class SourceReport:
    kind: str  # "table" or "bucket"
    source: str
    target: str
    protocol: str
    phase: str | None = None
    run: Any = None  # the CopyRun, or None
    copy_samples: list[CopySample] = field(default_factory=list)
    lag_samples: list[LagSample] = field(default_factory=list)
    released_at: float | None = None
    held: int | None = None
    verify: VerifyView | None = None
    plan: list[dict[str, Any]] = field(default_factory=list)

    @property
    def replay(self) -> bool:
        return self.protocol == "replay"

    @property
    def origin(self) -> float:
        """Time 0 of the plots: the copy's start, else the first sample."""
        started = float(getattr(self.run, "started_at", 0.0) or 0.0)
        if started:
            return started
        stamps = [s.started for s in self.copy_samples] + [s.at for s in self.lag_samples]
        return min(stamps) if stamps else 0.0


@dataclass
class ReportData:
    spec: Spec
    generated_at: float
    sources: list[SourceReport]
    plan_path: str | None = None


def collect(spec: Spec, ddb: Any, *, plan: Any = None, plan_path: str | None = None) -> ReportData:
    """Everything the report shows, read from ``spec``'s state table through ``ddb``."""
    store, runlog = StateStore(ddb, spec.state_table), RunLog(ddb, spec.state_table)
    mappings = [(TABLE, t.source, t.target, t.protocol) for t in spec.tables]
    mappings += [(BUCKET, b.source, b.target, b.protocol) for b in spec.buckets]
    sources = []
    for kind, source, target, protocol in mappings:
        verify, run = store.load_verify(source, kind), store.load_copy(source, kind)
        since = run.started_at - CLOCK_SKEW_SECONDS if run is not None and run.started_at else 0.0
        sources.append(
            SourceReport(
                kind=kind,
                source=source,
                target=target,
                protocol=protocol,
                phase=store.phase_or_none(source, kind),
                run=run,
                copy_samples=runlog.copy_samples(source, kind, since=since),  # this run's, not an older one's
                lag_samples=runlog.lag_samples(source, kind),
                released_at=store.released_at(source, kind),
                held=store.held_at_release(source, kind),
                verify=parse_verify(*verify) if verify else None,
                plan=plan_estimates(plan, source, kind) if plan is not None else [],
            )
        )
    return ReportData(spec, time.time(), sources, plan_path)


# rendering ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Series:
    label: str
    points: Sequence[tuple[float, float]]
    color: str | None = None
    step: bool = False  # a count per window, drawn as steps
    markers: bool = False
    axis: int = 0  # 0: left axis, 1: right axis


@dataclass(frozen=True)
class Plot:
    name: str  # data-plot
    title: str
    xlabel: str
    ylabel: str
    series: Sequence[Series]
    ylabel_right: str = ""
    budgets: Sequence[tuple[str, float]] = ()  # horizontal lines: (label, value)
    caption: str = ""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def plot_svg(plot: Plot, gid_scope: str) -> str:
    """One plot as an inline ``<svg>`` element (matplotlib's SVG backend, text kept as text). Every
    series is a group with id ``series-<scope>-<plot>-<label>``; budget lines ``budget-...``."""
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    with rc_context({"svg.fonttype": "none", "font.size": 9}):
        fig = Figure(figsize=(7.5, 3.0))
        ax = fig.add_subplot()
        right = ax.twinx() if any(s.axis == 1 for s in plot.series) else None
        handles = []
        for series in plot.series:
            target = right if series.axis == 1 and right is not None else ax
            xs, ys = [p[0] for p in series.points], [p[1] for p in series.points]
            gid = f"{SERIES_PREFIX}{gid_scope}-{plot.name}-{_slug(series.label)}"
            (line,) = target.plot(
                xs,
                ys,
                drawstyle="steps-post" if series.step else "default",
                color=series.color,
                alpha=0.7 if series.axis == 1 else 1.0,
                marker="o" if series.markers or len(xs) < 4 else None,
                markersize=3,
                label=series.label,
            )
            line.set_gid(gid)
            handles.append(line)
        for label, value in plot.budgets:
            budget = ax.axhline(value, color="black", linestyle="--", linewidth=1, label=label)
            budget.set_gid(f"budget-{gid_scope}-{plot.name}-{_slug(label)}")
            handles.append(budget)
        ax.set_ylim(bottom=0)
        ax.set_title(plot.title)
        ax.set_xlabel(plot.xlabel)
        ax.set_ylabel(plot.ylabel)
        if right is not None:
            right.set_ylabel(plot.ylabel_right)
            right.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        if handles:
            ax.legend(handles=handles, labels=[h.get_label() for h in handles], fontsize=7, loc="best")
        fig.tight_layout()
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]  # inline: no XML declaration or DOCTYPE


def _figure(plot: Plot, scope: str) -> str:
    caption = f"<figcaption>{html.escape(plot.title)}"
    caption += f" — {html.escape(plot.caption)}" if plot.caption else ""
    return (
        f'<figure class="plot" data-plot="{html.escape(plot.name)}" data-source="{html.escape(scope)}">'
        f"{plot_svg(plot, _slug(scope))}{caption}</figcaption></figure>"
    )


def _note(name: str, text: str) -> str:
    return f'<p class="no-data" data-plot="{html.escape(name)}">{html.escape(text)}</p>'


def _points(rates: Sequence[RatePoint], scale: float = 1.0, width: float = 0.0) -> list[tuple[float, float]]:
    """Plot points of per-window values; with ``width``, the last window's end too (drawn as steps,
    a window's value holds over the whole window)."""
    points = [(p.at, p.rate / scale) for p in rates]
    if width and points:
        points.append((points[-1][0] + width, points[-1][1]))
    return points


def _stamp(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) if epoch else "n/a"


def _secs(value: float | None) -> str:
    return "n/a" if not value else f"{value:,.1f} s"


def throughput_plots(src: SourceReport) -> list[Plot | str]:
    """Copy throughput per split and in total: items/s (objects/s) and MB/s."""
    samples, unit = src.copy_samples, "items" if src.kind == TABLE else "objects"
    part = "segment" if src.kind == TABLE else "partition"
    if not samples:
        return [
            _note("throughput", f"no copy throughput recorded: no copy of {src.source} ran, or it recorded nothing")
        ]
    origin = src.origin
    width = bin_width(max(s.ended for s in samples) - origin, minimum=1.0)
    out: list[Plot | str] = []
    for name, label, value, scale in (
        ("throughput-count", f"{unit}/s", lambda s: s.items, 1.0),
        ("throughput-mb", "MB/s", lambda s: s.bytes, MB),
    ):
        per_split = rates_by_split(samples, value, origin=origin, width=width)
        series = [Series(f"{part} {k}", _points(v, scale, width), step=True) for k, v in per_split.items()]
        if len(per_split) > 1:
            total = binned_rates(samples, value, origin=origin, width=width)
            series.append(Series("total", _points(total, scale, width), "black", step=True))
        out.append(
            Plot(
                name,
                f"{src.source}: copy throughput ({label}) per {part}",
                "seconds since the copy started",
                label,
                series,
                caption=f"{len(samples)} samples, {width:.0f} s windows",
            )
        )
    return out


def _read_units(s: CopySample) -> float:
    return s.read_units


def _write_units(s: CopySample) -> float:
    return s.write_units


def capacity_plot(src: SourceReport) -> Plot | str:
    """Consumed read and write units per second against the budget; throttled requests per window."""
    if src.kind != TABLE:
        return _note("capacity", "a bucket copy consumes no DynamoDB capacity")
    samples = src.copy_samples
    if not samples or not any(s.read_units or s.write_units for s in samples):
        return _note("capacity", f"no consumed capacity recorded for {src.source}")
    origin = src.origin
    width = bin_width(max(s.ended for s in samples) - origin, minimum=1.0)
    series = [
        Series(
            f"{name} consumed", _points(binned_rates(samples, value, origin=origin, width=width), 1.0, width), step=True
        )
        for name, value in (("RCU/s", _read_units), ("WCU/s", _write_units))
    ]
    throttled = sum(s.throttled for s in samples)
    if throttled:
        throttles = throttles_per_window(samples, origin=origin, width=width)
        series.append(Series("throttled requests", _points(throttles, 1.0, width), "tab:red", step=True, axis=1))
    budgets = [
        (f"{name} budget", float(value))
        for name, value in (
            ("RCU/s", getattr(src.run, "read_budget", 0) or 0),
            ("WCU/s", getattr(src.run, "write_budget", 0) or 0),
        )
        if value
    ]
    caption = f"{throttled} throttled requests" if throttled else "no throttles recorded"
    span = max(s.ended for s in samples) - min(s.started for s in samples)
    for name, total, budget in (
        ("reads", sum(s.read_units for s in samples), float(getattr(src.run, "read_budget", 0) or 0)),
        ("writes", sum(s.write_units for s in samples), float(getattr(src.run, "write_budget", 0) or 0)),
    ):
        if total and span > 0:
            caption += f"; {name} {total / span:,.1f} units/s on average over the copy's {span:.1f} s" + (
                f" = {total / span / budget:.0%} of the budget" if budget else ""
            )
    if budgets:
        caption += (
            "; a window may pass the budget by up to one second's worth: each split's token bucket allows a"
            " 1 s burst, as DynamoDB's burst capacity does"
        )
    if not budgets:
        caption += "; no budget recorded"
    return Plot(
        "capacity",
        f"{src.source}: consumed capacity against the budget",
        "seconds since the copy started",
        "capacity units per second",
        series,
        ylabel_right="throttled requests per window" if throttled else "",
        budgets=budgets,
        caption=caption,
    )


def lag_plot(src: SourceReport) -> Plot | str:
    if not src.lag_samples:
        return _note("lag", f"no lag recorded for {src.source}: no handler ran")
    origin = src.origin
    span = max(s.at for s in src.lag_samples) - min(s.at for s in src.lag_samples)
    width = bin_width(span, minimum=2.0, max_bins=60)
    windows = lag_windows(src.lag_samples, origin=origin, width=width)
    records, failed = sum(w.records for w in windows), sum(w.failed for w in windows)
    return Plot(
        "lag",
        f"{src.source}: replication lag per {width:.0f} s window",
        "seconds since the copy started",
        "seconds from change to apply",
        [Series("p50", [(w.at, w.p50) for w in windows]), Series("p99", [(w.at, w.p99) for w in windows])],
        caption=f"{records:,} records in {len(src.lag_samples)} handler invocations, {failed} failed",
    )


def backlog_plot(src: SourceReport) -> Plot | str | None:
    if not src.replay:
        return None
    if src.released_at is None:
        return _note("backlog", f"no backlog to drain: {src.source}'s copy was not released")
    if src.held is None:
        return _note("backlog", "the held backlog was not counted at the release")
    origin = src.origin
    curve = backlog_curve(src.held, src.released_at, src.lag_samples, origin=origin)
    unit = "records" if src.kind == TABLE else "events"
    if len(curve) < 2:
        return _note("backlog", f"{src.held:,} {unit} held at the release; no handler applied any since")
    return Plot(
        "backlog",
        f"{src.source}: held backlog draining since the release",
        "seconds since the copy started",
        f"{unit} still held",
        [Series(f"held {unit}", [(p.at, p.rate) for p in curve], markers=True)],
        caption=f"{src.held:,} {unit} held at the release ({_stamp(src.released_at)})",
    )


def _verify_html(src: SourceReport) -> str:
    v = src.verify
    if v is None:
        return _note("verify", f"no verify recorded for {src.source}")
    verdict = "passed: no differences" if v.passed else f"FAILED: {v.differences:,} differences"
    rows = "".join(
        f"<tr><td>{html.escape(kind)}</td><td>{n:,}</td><td>{html.escape(', '.join(v.samples.get(kind, [])))}</td></tr>"
        for kind, n in v.counts.items()
    )
    items = ""
    if v.source_items is not None or v.target_items is not None:
        items = f"<p>source {v.source_items or 0:,}, target {v.target_items or 0:,}</p>"
    css = "passed" if v.passed else "failed"
    return (
        f'<div class="verify" data-passed="{str(v.passed).lower()}"><p class="{css}">verify {verdict} '
        f"(at {_stamp(v.updated_at)})</p>{items}"
        f"<table><tr><th>kind</th><th>count</th><th>sample keys</th></tr>{rows}</table></div>"
    )


def _estimate_html(src: SourceReport) -> str:
    run = src.run
    measured = None
    if run is not None and run.finished_at and run.started_at and run.finished_at > run.started_at:
        measured = run.finished_at - run.started_at
    estimated = float(getattr(run, "estimated_seconds", 0) or 0) if run is not None else 0.0
    recorded = (
        _secs(estimated)
        if estimated
        else ("not estimated (see ferry plan)" if src.kind == TABLE else "not recorded (ferry plan: a lower bound)")
    )
    rows = [("copy run (recorded at its start)", recorded, _secs(measured))]
    taken = run_path(run, src.kind)
    for entry in src.plan:  # ferry plan --json, one row per path; the measured time on the path taken
        name = str(entry.get("path") or "")
        shown = str(entry.get("duration") or _secs(entry.get("seconds")))
        if entry.get("formula"):
            shown += f" ({entry['formula']})"
        rows.append(
            (f"plan: {name}" + (" (taken)" if name == taken else ""), shown, _secs(measured) if name == taken else "")
        )
    body = "".join(
        f"<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td><td>{html.escape(c)}</td></tr>" for a, b, c in rows
    )
    how = f"{run.read} + {run.write}, {run.items:,} items, {run.status}" if run is not None and run.read else ""
    return f'<table class="estimate"><tr><th></th><th>estimated</th><th>measured</th></tr>{body}</table>' + (
        f"<p>copy: {html.escape(how)}; measured = the copy run's start to its end, the job's start-up included</p>"
        if how
        else ""
    )


def _section(src: SourceReport) -> str:
    scope = f"{src.kind}-{src.source}"
    parts: list[str] = []
    backlog = backlog_plot(src)
    for item in [*throughput_plots(src), capacity_plot(src), lag_plot(src), *([backlog] if backlog else [])]:
        parts.append(_figure(item, scope) if isinstance(item, Plot) else item)
    title = f"{src.kind} {src.source} → {src.target}"
    meta = f"protocol {src.protocol}, phase {src.phase or 'n/a'}"
    return (
        f'<section class="source" data-kind="{src.kind}" data-source="{html.escape(src.source)}">'
        f"<h2>{html.escape(title)}</h2><p>{html.escape(meta)}</p>"
        f"{''.join(parts)}<h3>Verify</h3>{_verify_html(src)}"
        f"<h3>Estimate and measured</h3>{_estimate_html(src)}</section>"
    )


_STYLE = """
body { font-family: sans-serif; max-width: 60rem; margin: 1rem auto; color: #222; }
figure.plot { margin: 1rem 0; } figure.plot svg { width: 100%; height: auto; }
figcaption { font-size: 0.85rem; color: #555; }
p.no-data { font-style: italic; color: #a60; border-left: 3px solid #a60; padding-left: 0.5rem; }
table { border-collapse: collapse; font-size: 0.9rem; } td, th { border: 1px solid #ccc; padding: 0.2rem 0.5rem; }
.passed { color: #070; } .failed { color: #b00; font-weight: bold; }
"""


def render(data: ReportData) -> str:
    """The report as one HTML document: inline SVG and CSS, no script, nothing fetched at view time."""
    spec = data.spec
    phases = "".join(
        f"<li>{html.escape(s.kind)} {html.escape(s.source)}: {html.escape(s.phase or 'n/a')}</li>" for s in data.sources
    )
    header = (
        f"<h1>ferry report</h1><p>generated {_stamp(data.generated_at)}; region {html.escape(spec.region)}, "
        f"state table {html.escape(spec.state_table)}"
        + (f", plan {html.escape(data.plan_path)}" if data.plan_path else "")
        + f"</p><ul class='phases'>{phases}</ul>"
    )
    body = "".join(_section(s) for s in data.sources) or "<p>the spec names no table or bucket</p>"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>ferry report</title>'
        f"<style>{_STYLE}</style></head><body>{header}{body}</body></html>\n"
    )


def build_report(spec: Spec, *, ddb: Any = None, plan_path: str | Path | None = None) -> str:
    """The HTML report of ``spec``'s run, from its state table (``ddb``: a DynamoDB client of ferry's
    home, built when not given) and, when given, ``ferry plan --json``'s file."""
    from ferry.clients import make_client

    plan = json.loads(Path(plan_path).read_text(encoding="utf-8")) if plan_path else None
    client = ddb if ddb is not None else make_client("dynamodb", spec.home_where())
    return render(collect(spec, client, plan=plan, plan_path=str(plan_path) if plan_path else None))


def write_report(spec: Spec, out_path: str | Path, plan_path: str | Path | None = None, *, ddb: Any = None) -> Path:
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_report(spec, ddb=ddb, plan_path=plan_path), encoding="utf-8")
    return path
