"""Write the demo's HTML report: Vega-Lite charts of the dbt models, one function per chart.

Reads the rows scripts/demo_report.py wrote (`--chart-data`), so this needs no duckdb, only
altair (the dev group). The Vega JavaScript is inlined (altair's `inline=True`, through
vl-convert-python): the file opens in a browser with no network.

    .venv/bin/python scripts/demo_charts.py output/demo-charts.json output/demo-report.html

To add a chart: write a function `rows -> alt.Chart`, and list it in CHARTS with the key of
its rows in the JSON (demo_report.py's CHART_QUERIES).
"""

from __future__ import annotations

import argparse
import json
import sys
import typing as t
from pathlib import Path

import altair as alt

Rows = list[dict[str, t.Any]]
WIDTH = 640


def containment_per_day(rows: Rows) -> alt.Chart:
    """Share of finished conversations the agent handled without a handoff, per UTC day."""
    return (
        alt.Chart(alt.Data(values=rows), title="Containment per day")
        .mark_line(point=True)
        .encode(
            x=alt.X("day:T", title="day (UTC)"),
            y=alt.Y("containment_rate:Q", title="containment", axis=alt.Axis(format="%")),
            tooltip=[
                "day:T",
                "conversations:Q",
                "finished:Q",
                alt.Tooltip("containment_rate:Q", format=".1%"),
            ],
        )
        .properties(width=WIDTH, height=220)
    )


def _bars_by_count(rows: Rows, title: str, count: str, label: str) -> alt.Chart:
    """Horizontal bars of `count` per `label`, largest first (handoff reasons, tags)."""
    return (
        alt.Chart(alt.Data(values=rows), title=title)
        .mark_bar()
        .encode(
            x=alt.X(f"{count}:Q", title=count),
            y=alt.Y(f"{label}:N", sort="-x", title=None),
            tooltip=[f"{label}:N", f"{count}:Q"],
        )
        .properties(width=WIDTH, height=alt.Step(22))
    )


def handoffs_by_reason(rows: Rows) -> alt.Chart:
    """Handoffs over the whole period, by the reason the agent gave."""
    return _bars_by_count(rows, "Handoffs by reason", "handoffs", "reason")


def latency_per_variant(rows: Rows) -> alt.Chart:
    """Agent response latency percentiles (seconds) of each variant."""
    return (
        alt.Chart(alt.Data(values=rows), title="Agent latency percentiles per variant")
        .mark_bar()
        .encode(
            x=alt.X("percentile:N", title=None),
            y=alt.Y("seconds:Q", title="seconds"),
            color=alt.Color("percentile:N", legend=None),
            column=alt.Column("variant:N", title="variant"),
            tooltip=["variant:N", "percentile:N", alt.Tooltip("seconds:Q", format=".2f")],
        )
        .properties(width=120, height=220)
    )


def poly_score_per_day(rows: Rows) -> alt.Chart:
    """PolyAI's PolyScore per UTC day: the average over scored conversations, and the range."""
    base = alt.Chart(alt.Data(values=rows), title="PolyScore per day").encode(
        x=alt.X("day:T", title="day (UTC)")
    )
    band = base.mark_area(opacity=0.2).encode(
        y=alt.Y("min_poly_score:Q", title="PolyScore"), y2="max_poly_score:Q"
    )
    line = base.mark_line(point=True).encode(
        y="avg_poly_score:Q",
        tooltip=[
            "day:T",
            "scored:Q",
            alt.Tooltip("avg_poly_score:Q", format=".3f"),
            "min_poly_score:Q",
            "max_poly_score:Q",
        ],
    )
    return (band + line).properties(width=WIDTH, height=220)


def language_direction(rows: Rows) -> alt.Chart:
    """Conversations per language, split inbound / outbound."""
    return (
        alt.Chart(alt.Data(values=rows), title="Conversations by language and direction")
        .mark_bar()
        .encode(
            x=alt.X("conversations:Q", title="conversations", stack="zero"),
            y=alt.Y("language:N", sort="-x", title=None),
            color=alt.Color("direction:N", title="direction", legend=alt.Legend(orient="bottom")),
            tooltip=["language:N", "direction:N", "conversations:Q"],
        )
        .properties(width=WIDTH, height=alt.Step(22))
    )


def tags(rows: Rows) -> alt.Chart:
    """Conversations carrying each tag (a conversation counts once per tag)."""
    return _bars_by_count(rows, "Conversations by tag", "conversations", "tag")


# Key of the rows in the JSON -> the function drawing them, in the order of the report.
CHARTS: dict[str, t.Callable[[Rows], alt.Chart | alt.LayerChart]] = {
    "containment_per_day": containment_per_day,
    "handoffs_by_reason": handoffs_by_reason,
    "latency_per_variant": latency_per_variant,
    # conversation_details models: drawn when demo_report.py wrote their rows.
    "poly_score_per_day": poly_score_per_day,
    "language_direction": language_direction,
    "tags": tags,
}
DETAIL_CHARTS = ("poly_score_per_day", "language_direction", "tags")


def report(data: dict[str, Rows]) -> alt.VConcatChart:
    missing = [
        key for key in CHARTS if not data.get(key) and (key in data or key not in DETAIL_CHARTS)
    ]
    if missing:
        raise SystemExit(f"no rows for chart(s): {', '.join(missing)}")
    charts = [draw(data[key]) for key, draw in CHARTS.items() if key in data]
    report = alt.vconcat(*charts, title="tap-polyai demo: the dbt models")
    # Each chart keeps its own colours and legend (below it, inside the page).
    return report.resolve_scale(color="independent").configure_view(stroke=None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("chart_data", type=Path)
    parser.add_argument("html", type=Path)
    args = parser.parse_args()
    data = json.loads(args.chart_data.read_text())
    report(data).save(str(args.html), inline=True)
    print(args.html)
    return 0


if __name__ == "__main__":
    sys.exit(main())
