"""``ferry report`` of a real migration (the demo's phases, small, on the session's emulator), rendered
in headless Chromium: every plot has drawn data, nothing is fetched at view time. Negative controls: the
same checker finds no data in an empty axis, and a report whose run log was emptied draws no plot."""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from ferry.clients import make_client
from ferry.runlog import COPY_LOG, LAG_LOG, RunLog
from ferry_cli.plan import PlanOptions, build_plan
from ferry_cli.report import Plot, Series, external_references, plot_svg, write_report
from ferry_dev.demo import demo_spec, migrate

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("spark")]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# After load: for each figure.plot, how many of its data series (id "series-…") have a rendered box of
# non-zero width or height; written into the DOM for --dump-dom to carry out.
CHECKER = """<script>
window.addEventListener('load', function () {
  var lines = [];
  document.querySelectorAll('figure.plot').forEach(function (figure) {
    var drawn = 0;
    figure.querySelectorAll('[id^="series-"]').forEach(function (series) {
      var box = series.getBoundingClientRect();
      if (box.width > 0 || box.height > 0) { drawn += 1; }
    });
    lines.push(figure.dataset.source + ' ' + figure.dataset.plot + ' ' + (drawn > 0 ? 'data' : 'no-data'));
  });
  var out = document.createElement('pre');
  out.id = 'plot-check';
  out.textContent = lines.join('\\n');
  document.body.appendChild(out);
});
</script>"""


def forget(runlog: RunLog, source: str, kind: str, log_name: str) -> None:
    """Delete one log of ``source`` (ferry itself never deletes a sample)."""
    for item in runlog._query(source, kind, log_name):
        runlog.ddb.delete_item(TableName=runlog.table_name, Key={"pk": item["pk"], "sk": item["sk"]})


def chromium() -> str:
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing (Debian's chromium package): the report cannot be rendered")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    return CHROMIUM


def render_check(report: Path, workdir: Path) -> dict[str, str]:
    """``{"<source> <plot>": "data" | "no-data"}`` for every figure.plot of ``report`` as Chromium draws
    it, and a screenshot next to it (``<name>.png``)."""
    checked = workdir / f"{report.stem}-checked.html"
    checked.write_text(report.read_text(encoding="utf-8").replace("</body>", CHECKER + "</body>"), encoding="utf-8")
    flags = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={workdir / 'chromium-profile'}"]
    dom = subprocess.run(
        [*flags, "--dump-dom", checked.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    screenshot = workdir / f"{report.stem}.png"
    subprocess.run(
        [*flags, f"--screenshot={screenshot}", "--window-size=1200,4000", report.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert screenshot.stat().st_size > 10_000  # a page was drawn
    found = re.search(r'<pre id="plot-check">(.*?)</pre>', dom, re.S)
    assert found is not None, "the checker did not run"
    lines = [line.rsplit(" ", 1) for line in found.group(1).splitlines() if line.strip()]
    return {name: verdict for name, verdict in lines}


def test_report_of_a_real_migration_draws_data_in_every_plot(emulator, emulator_kind, tmp_path):
    chromium()
    # GIVEN a replay migration of a live table and bucket, the demo's phases, on the emulator
    suffix = f"-r{uuid.uuid4().hex[:6]}"
    spec = demo_spec(emulator.endpoint_url, 2, with_bucket=True, suffix=suffix)
    result = migrate(spec, items=300, objects=60, seed=11, traffic_rate=30, object_traffic_rate=10, say=lambda _: None)
    assert result.ok
    table, bucket = spec.tables[0].source, spec.buckets[0].source
    runlog = RunLog(make_client("dynamodb", spec.home_where()), spec.state_table)
    # AND ferry plan's JSON for the same spec (read-only, after the fact)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(build_plan(spec, PlanOptions())), encoding="utf-8")
    # WHEN the report is made from the state table alone (and the plan) and Chromium renders it
    report = write_report(spec, tmp_path / "report.html", plan_path=plan)
    document = report.read_text(encoding="utf-8")
    verdicts = render_check(report, tmp_path)
    # THEN it is self-contained, and every plot of both sources has drawn data
    assert external_references(document) == []
    assert "<script" not in document
    expected = {f"{k}-{s} {p}" for k, s in (("table", table), ("bucket", bucket)) for p in ("throughput-count", "lag")}
    expected |= {f"table-{table} capacity", f"table-{table} backlog", f"bucket-{bucket} backlog"}
    assert expected <= set(verdicts), verdicts
    assert verdicts and all(v == "data" for v in verdicts.values()), verdicts
    assert 'data-passed="true"' in document  # the verify recorded for the table passed
    # AND the plan's estimate of every path stands next to the measured copy, on the path the copy took
    assert "plan: replay scan+batch (taken)" in document and "plan: replay export+import" in document
    assert "plan: replay (taken)" in document  # the bucket
    # negative control: once the run log is emptied, the same state makes notes, not plots
    for kind, source in (("table", table), ("bucket", bucket)):
        for log_name in (COPY_LOG, LAG_LOG):
            forget(runlog, source, kind, log_name)
    emptied = write_report(spec, tmp_path / "emptied.html")
    emptied_verdicts = render_check(emptied, tmp_path)
    assert not any(name.endswith((" throughput-count", " lag", " capacity")) for name in emptied_verdicts)
    assert "no lag recorded" in emptied.read_text(encoding="utf-8")


def test_the_checker_finds_no_data_in_an_empty_axis(tmp_path):
    chromium()
    # GIVEN a page with one plot that has a series and one whose series has no points (an empty axis)
    drawn = Plot("lag", "drawn", "s", "s", [Series("p50", [(0.0, 1.0), (2.0, 3.0)])])
    empty = Plot("lag", "empty", "s", "s", [Series("p50", [])])
    page = tmp_path / "axes.html"
    page.write_text(
        "<!DOCTYPE html><html><body>"
        f'<figure class="plot" data-plot="lag" data-source="drawn">{plot_svg(drawn, "drawn")}</figure>'
        f'<figure class="plot" data-plot="lag" data-source="empty">{plot_svg(empty, "empty")}</figure>'
        "</body></html>",
        encoding="utf-8",
    )
    # WHEN Chromium renders it THEN the checker tells them apart
    assert render_check(page, tmp_path) == {"drawn lag": "data", "empty lag": "no-data"}
