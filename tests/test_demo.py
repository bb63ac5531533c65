"""`make demo` end to end (scripts/demo.sh), and its HTML report rendered by headless Chromium.

The demo loads the emulator's data through Meltano into DuckDB, builds the dbt models, checks
the rows against the emulator's truth and writes output/demo-report.html. Chromium opens that
file with no network (the Vega JavaScript is inlined), and the test reads the rendered SVG: one
point per day, one bar per handoff reason and per variant and percentile, each labelled with the
numbers of the models' rows.
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
    assert len(points) == len(data["containment_per_day"]) > 0
    bars = re.findall(r'aria-label="([^"]*)"[^>]*aria-roledescription="bar"', dom)
    assert len(bars) == len(data["handoffs_by_reason"]) + len(data["latency_per_variant"])
    for row in data["handoffs_by_reason"]:
        assert f"handoffs: {row['handoffs']}; reason: {row['reason']}" in bars
    for title in ("Containment per day", "Handoffs by reason", "Agent latency percentiles"):
        assert title in dom
