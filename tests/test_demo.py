"""`make demo` end to end (scripts/demo.sh), and its HTML report rendered by headless Chromium.

The demo loads the emulator's data through Meltano into DuckDB, builds the dbt models, checks
the rows against the emulator's truth and writes output/demo-report.html. Chromium opens that
file with no network (the Vega JavaScript is inlined), and the test reads the rendered SVG: one
point per day, one bar per handoff reason and per variant and percentile, each labelled with the
numbers of the models' rows.

The demo selects conversation_details too: the PolyScore, language/direction and tag sections of
the report and their charts must equal the emulator's own details (written by
scripts/demo_truth.py while the emulator ran, from `GET /_emulator/details`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import typing as t
from pathlib import Path

import pytest

from tests.docs_support import ROOT
from tests.pipeline_support import require_venv, unavailable

pytestmark = pytest.mark.pipeline

MELTANO = "meltano[postgres]==4.4.1"  # the venv tests/test_orchestration.py uses too


@pytest.fixture(scope="module")
def demo() -> subprocess.CompletedProcess[str]:
    meltano_venv = require_venv("meltano", MELTANO, timeout=1800)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TAP_POLYAI_", "DBT_"))},
        "MELTANO_VENV": str(meltano_venv),
        "DEMO_PORT": "0",  # a free port: never a clash with another run
    }
    proc = subprocess.run(
        ["bash", "scripts/demo.sh"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    unavailable("no headless Chromium (apt-get install chromium; .ci/run installs it)")


def rendered_dom(html: Path, profile: Path) -> str:
    """The page's DOM after Chromium ran its scripts (virtual time: no wall-clock wait)."""
    proc = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            html.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def section(stdout: str, title: str) -> list[dict[str, str]]:
    """The rows of one table of the text report, by column (cut at the dashes' columns)."""
    lines = stdout[stdout.index(f"## {title}") :].splitlines()
    header, dashes = lines[1], lines[2]
    spans = [(m.start(), m.end()) for m in re.finditer(r"-+", dashes)]
    names = [header[a:b].strip() for a, b in spans]
    rows = []
    for line in lines[3:]:
        if not line.strip():
            break
        cells = [
            line[a : (b if i < len(spans) - 1 else None)].strip() for i, (a, b) in enumerate(spans)
        ]
        rows.append(dict(zip(names, cells, strict=True)))
    return rows


@pytest.fixture(scope="module")
def details_truth(demo: subprocess.CompletedProcess[str]) -> dict[str, t.Any]:
    truth: dict[str, t.Any] = json.loads((ROOT / "output" / "demo-truth-details.json").read_text())
    # Not vacuous: details loaded, several variants, both directions, tags.
    assert truth["details"] > 300
    assert len(truth["poly_score"]) >= 3
    assert {key.split("/")[1] for key in truth["language_direction"]} == {"inbound", "outbound"}
    assert len(truth["tags"]) >= 5
    return truth


def test_the_demo_loads_exactly_the_emulators_truth(demo: subprocess.CompletedProcess[str]) -> None:
    assert re.search(r"OK: (\d+) conversation rows loaded = \1 live conversations", demo.stdout)
    assert (
        "install tap-polyai target-duckdb dbt-duckdb" in (ROOT / "scripts" / "demo.sh").read_text()
    )


def test_the_demo_report_renders_its_charts_with_data(
    demo: subprocess.CompletedProcess[str], tmp_path: Path
) -> None:
    html = ROOT / "output" / "demo-report.html"
    assert f"report: {html}" in demo.stdout, "the demo prints the report's path"
    page = html.read_text()
    assert "<script src" not in page, "the JavaScript is inlined: nothing from a network"
    assert "cdn.jsdelivr" not in page
    data: dict[str, list[dict[str, t.Any]]] = json.loads(
        (ROOT / "output" / "demo-charts.json").read_text()
    )
    dom = rendered_dom(html, tmp_path / "chromium")
    assert 'aria-roledescription="visualization"' in dom, "Vega rendered no SVG"

    points = re.findall(r'aria-label="([^"]*)"[^>]*aria-roledescription="point"', dom)
    score_points = [p for p in points if "avg_poly_score" in p]
    assert len(points) - len(score_points) == len(data["containment_per_day"]) > 0
    assert len(score_points) == len(data["poly_score_per_day"]) > 0
    bars = re.findall(r'aria-label="([^"]*)"[^>]*aria-roledescription="bar"', dom)
    assert len(bars) == sum(
        len(data[key])
        for key in ("handoffs_by_reason", "latency_per_variant", "language_direction", "tags")
    )
    for row in data["handoffs_by_reason"]:
        assert f"handoffs: {row['handoffs']}; reason: {row['reason']}" in bars
    for title in (
        "Containment per day",
        "Handoffs by reason",
        "Agent latency percentiles",
        "PolyScore per day",
        "Conversations by language and direction",
        "Conversations by tag",
    ):
        assert title in dom


def test_the_detail_sections_equal_the_emulators_details(
    demo: subprocess.CompletedProcess[str], details_truth: dict[str, t.Any]
) -> None:
    """The report's PolyScore, language/direction and tag tables, read as printed."""
    truth = details_truth
    assert (
        f"OK: {truth['details']} conversation_details rows = the emulator's settled details"
        in demo.stdout
    )
    loaded = f'Loading {truth["details"]} rows into \'"demo"."polyai"."conversation_details"\''
    assert loaded in demo.stdout  # what target-duckdb says it loaded
    scores = section(demo.stdout, "PolyScore per variant")
    assert {r["variant_id"]: int(r["scored"]) for r in scores} == {
        v: s["scored"] for v, s in truth["poly_score"].items()
    }
    for row in scores:
        want = truth["poly_score"][row["variant_id"]]
        for key in ("avg", "min", "max"):
            assert float(row[f"{key}_poly_score"]) == pytest.approx(want[key], abs=0.005)
    splits = section(demo.stdout, "Language and direction")
    assert {f"{r['language']}/{r['direction']}": int(r["conversations"]) for r in splits} == (
        truth["language_direction"]
    )
    total = sum(truth["language_direction"].values())
    for row in splits:
        share = 100 * truth["language_direction"][f"{row['language']}/{row['direction']}"] / total
        assert float(row["share_pct"]) == pytest.approx(share, abs=0.05)
    tags = section(demo.stdout, "Tags")
    assert {r["tag"]: int(r["conversations"]) for r in tags} == truth["tags"]


def test_the_detail_charts_draw_the_emulators_details(
    demo: subprocess.CompletedProcess[str], details_truth: dict[str, t.Any], tmp_path: Path
) -> None:
    """Each detail chart's marks, as Chromium rendered them, carry the emulator's figures."""
    dom = rendered_dom(ROOT / "output" / "demo-report.html", tmp_path / "chromium")
    labels = re.findall(r'aria-label="([^"]*)"[^>]*aria-roledescription="(?:bar|point)"', dom)

    def fields(label: str) -> dict[str, str]:
        return dict(part.split(": ", 1) for part in label.split("; "))

    marks = [fields(label) for label in labels]
    tags = {m["tag"]: int(m["conversations"]) for m in marks if "tag" in m}
    assert tags == details_truth["tags"]
    splits = {
        f"{m['language']}/{m['direction']}": int(m["conversations"])
        for m in marks
        if "language" in m
    }
    assert splits == details_truth["language_direction"]
    days = [m for m in marks if "avg_poly_score" in m]
    per_day = details_truth["poly_score_per_day"]
    assert len(days) == len(per_day)
    assert sorted(int(m["scored"]) for m in days) == sorted(d["scored"] for d in per_day.values())
    averages = sorted(float(m["avg_poly_score"]) for m in days)
    assert averages == pytest.approx(sorted(d["avg"] for d in per_day.values()), abs=1e-9)
