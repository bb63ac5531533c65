# ruff: noqa: S608  (the only interpolated name is the schema, checked to be an identifier)
"""Print the demo's report from the dbt models (transform/) in the demo's DuckDB file, and
check the load.

Runs with the target-duckdb plugin's own interpreter (it has `duckdb`), so the project's
venv needs no duckdb:  .meltano/loaders/target-duckdb/venv/bin/python scripts/demo_report.py
    output/demo.duckdb --schema polyai --expect-conversations N
Exit status 1 when the loaded row count differs from N (the emulator's truth), or, with
`--expect-details FILE` (scripts/demo_truth.py's `--details-out`), when the conversation_details
models' PolyScore, language/direction and tag figures differ from the emulator's details.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import typing as t
from pathlib import Path

import duckdb


def table(con: duckdb.DuckDBPyConnection, title: str, sql: str) -> None:
    rel = con.sql(sql)
    rows = rel.fetchall()
    names = rel.columns
    widths = [
        max(len(str(n)), *(len(fmt(r[i])) for r in rows)) if rows else len(str(n))
        for i, n in enumerate(names)
    ]
    print(f"\n## {title}")
    print("  ".join(str(n).ljust(w) for n, w in zip(names, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(fmt(v).ljust(w) for v, w in zip(row, widths, strict=True)))


def fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return "" if value is None else str(value)


def report_from_models(con: duckdb.DuckDBPyConnection, m: str) -> None:
    """The report, read from the dbt models in schema `m` (transform/, built by `dbt build`).

    Per-day rows add up polyai_daily's counts over channels and variants (sums of counts stay
    exact; the rate is recomputed from them); percentiles come from the per-variant model,
    which computes them over the whole period.
    """
    table(
        con,
        "Per day (polyai_daily, all channels and variants)",
        f"""select day, sum(conversations) as conversations, sum(finished) as finished,
                   sum(contained) as contained, sum(handoffs) as handoffs,
                   round(100.0 * sum(contained) / nullif(sum(finished), 0), 1)
                       as containment_pct
            from {m}.polyai_daily group by day order by day""",
    )
    table(
        con,
        "Per channel (polyai_daily)",
        f"""select channel, sum(conversations) as conversations, sum(finished) as finished,
                   round(100.0 * sum(contained) / nullif(sum(finished), 0), 1)
                       as containment_pct
            from {m}.polyai_daily group by channel order by conversations desc""",
    )
    table(
        con,
        "Variants side by side (polyai_variant_comparison; diff = vs the busiest variant)",
        f"""select coalesce(variant_name, variant_id, '(none)') as variant, conversations,
                   finished, round(100 * containment_rate, 1) as containment_pct,
                   round(100 * containment_rate_vs_busiest, 1) as containment_diff_pts,
                   median_duration_seconds as median_s, p90_duration_seconds as p90_s,
                   avg_turns, round(100 * silence_rate, 1) as silence_pct,
                   round(100 * ood_rate, 1) as ood_pct,
                   p50_latency_seconds as p50_latency_s, p90_latency_seconds as p90_latency_s,
                   p95_latency_seconds as p95_latency_s,
                   p95_latency_seconds_vs_busiest as p95_latency_diff_s
            from {m}.polyai_variant_comparison
            order by project_id, is_busiest_variant desc, conversations desc""",
    )
    table(
        con,
        "Top handoff reasons (polyai_handoff_reasons, whole period)",
        f"""select handoff_reason, handoff_destination, sum(handoffs) as handoffs
            from {m}.polyai_handoff_reasons
            group by handoff_reason, handoff_destination
            order by handoffs desc, handoff_reason limit 5""",
    )


# conversation_details models (built with var polyai_conversation_details), whole period.
POLY_SCORE_PER_VARIANT = """
    select coalesce(variant_id, '(none)') as variant_id, max(variant_name) as variant_name,
           sum(conversations) as conversations, sum(scored) as scored,
           sum(avg_poly_score * scored) / nullif(sum(scored), 0) as avg_poly_score,
           min(min_poly_score) as min_poly_score, max(max_poly_score) as max_poly_score
    from {m}.polyai_poly_score group by 1 order by conversations desc, variant_id"""
LANGUAGE_DIRECTION = """
    select language, direction, sum(conversations) as conversations,
           round(100.0 * sum(conversations) / sum(sum(conversations)) over (), 1) as share_pct
    from {m}.polyai_language_direction group by 1, 2 order by conversations desc, 1, 2"""
TAGS = """
    select tag, sum(conversations) as conversations
    from {m}.polyai_tags group by 1 order by conversations desc, tag"""


def report_details(con: duckdb.DuckDBPyConnection, m: str) -> None:
    """PolyScore, language/direction and tags, from the conversation_details models."""
    table(
        con,
        "PolyScore per variant (polyai_poly_score, whole period; avg weighted by scored)",
        POLY_SCORE_PER_VARIANT.format(m=m),
    )
    table(
        con,
        "Language and direction (polyai_language_direction, whole period)",
        LANGUAGE_DIRECTION.format(m=m),
    )
    table(con, "Tags (polyai_tags, whole period)", TAGS.format(m=m))


def details_mismatches(
    con: duckdb.DuckDBPyConnection, m: str, truth: dict[str, t.Any]
) -> list[str]:
    """Where the conversation_details models differ from the emulator's details (empty: none)."""
    problems = []
    ((rows,),) = con.sql(f"select count(*) from {m}.stg_polyai__conversation_details").fetchall()
    if rows != truth["details"]:
        problems.append(f"{rows} detail rows, the emulator has {truth['details']} settled")
    rel = con.sql(POLY_SCORE_PER_VARIANT.format(m=m))
    got = {r[0]: dict(zip(rel.columns, r, strict=True)) for r in rel.fetchall()}
    scored = {v: g for v, g in got.items() if g["scored"]}
    if scored.keys() != truth["poly_score"].keys():
        problems.append(f"PolyScore variants {sorted(scored)} != {sorted(truth['poly_score'])}")
    for variant, want in truth["poly_score"].items():
        have = scored.get(variant)
        if have is None:
            continue
        for key in ("scored", "avg", "min", "max"):
            value = have[key if key == "scored" else f"{key}_poly_score"]
            if not math.isclose(float(value), want[key], rel_tol=1e-9):
                problems.append(f"PolyScore {key} of {variant}: {value} != {want[key]}")
    splits = {
        f"{language}/{direction}": n
        for language, direction, n, _ in con.sql(LANGUAGE_DIRECTION.format(m=m)).fetchall()
    }
    if splits != truth["language_direction"]:
        problems.append(f"language/direction {splits} != {truth['language_direction']}")
    tags = dict(con.sql(TAGS.format(m=m)).fetchall())
    if tags != truth["tags"]:
        problems.append(f"tags {tags} != {truth['tags']}")
    return problems


# What scripts/demo_charts.py draws, one query per chart, read from the dbt models in `{m}`.
CHART_QUERIES = {
    "containment_per_day": """
        select strftime(day, '%Y-%m-%d') as day, sum(conversations) as conversations,
               sum(finished) as finished,
               sum(contained) / nullif(sum(finished), 0) as containment_rate
        from {m}.polyai_daily group by day order by day""",
    "handoffs_by_reason": """
        select coalesce(nullif(handoff_reason, ''), '(none given)') as reason,
               sum(handoffs) as handoffs
        from {m}.polyai_handoff_reasons group by 1 order by handoffs desc, reason""",
    "latency_per_variant": """
        select coalesce(variant_name, variant_id, '(none)') as variant, p.percentile,
               case p.percentile when 'p50' then p50_latency_seconds
                                 when 'p90' then p90_latency_seconds
                                 else p95_latency_seconds end as seconds
        from {m}.polyai_variant_comparison,
             (values ('p50'), ('p90'), ('p95')) as p(percentile)
        order by variant, p.percentile""",
    "poly_score_per_day": """
        select strftime(day, '%Y-%m-%d') as day, sum(scored) as scored,
               sum(avg_poly_score * scored) / nullif(sum(scored), 0) as avg_poly_score,
               min(min_poly_score) as min_poly_score, max(max_poly_score) as max_poly_score
        from {m}.polyai_poly_score group by day having sum(scored) > 0 order by day""",
    "language_direction": """
        select language, direction, sum(conversations) as conversations
        from {m}.polyai_language_direction group by 1, 2 order by 1, 2""",
    "tags": """
        select tag, sum(conversations) as conversations
        from {m}.polyai_tags group by 1 order by conversations desc, tag""",
}
DETAIL_CHARTS = ("poly_score_per_day", "language_direction", "tags")


def chart_data(
    con: duckdb.DuckDBPyConnection, m: str, *, details: bool
) -> dict[str, list[dict[str, object]]]:
    """The rows each chart of the HTML report shows, as JSON-ready dicts (the detail charts
    only with `details`: the models exist only when built with polyai_conversation_details)."""
    out = {}
    for name, sql in CHART_QUERIES.items():
        if name in DETAIL_CHARTS and not details:
            continue
        rel = con.sql(sql.format(m=m))
        out[name] = [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("database")
    parser.add_argument("--schema", default="polyai")
    parser.add_argument("--models-schema", default="analytics", help="where dbt built the models")
    parser.add_argument("--expect-conversations", type=int, required=True)
    parser.add_argument("--chart-data", type=Path, help="write the charts' rows here (JSON)")
    parser.add_argument(
        "--expect-details",
        type=Path,
        help="the emulator's detail figures (demo_truth.py --details-out): report the "
        "conversation_details models and check them against it",
    )
    args = parser.parse_args()

    con = duckdb.connect(args.database, read_only=True)
    s = args.schema
    if not s.isidentifier() or not args.models_schema.isidentifier():
        parser.error(f"not a plain schema name: {s!r} / {args.models_schema!r}")
    conv = f"{s}.conversations"
    report_from_models(con, args.models_schema)
    truth = json.loads(args.expect_details.read_text()) if args.expect_details else None
    if truth is not None:
        report_details(con, args.models_schema)
    if args.chart_data:
        data = chart_data(con, args.models_schema, details=truth is not None)
        args.chart_data.write_text(json.dumps(data, default=float, indent=1))

    loaded, distinct = con.execute(f"select count(*), count(distinct id) from {conv}").fetchone()
    print()
    status = 0
    if loaded == distinct == args.expect_conversations:
        print(
            f"OK: {loaded} conversation rows loaded = {args.expect_conversations} live "
            "conversations in the emulator's truth (no loss, no duplicates)."
        )
    else:
        print(
            f"MISMATCH: {loaded} rows ({distinct} distinct ids) loaded, but the emulator's "
            f"truth holds {args.expect_conversations} live conversations.",
            file=sys.stderr,
        )
        status = 1
    if truth is not None:
        problems = details_mismatches(con, args.models_schema, truth)
        if problems:
            for problem in problems:
                print(f"MISMATCH (conversation_details): {problem}", file=sys.stderr)
            status = 1
        else:
            print(
                f"OK: {truth['details']} conversation_details rows = the emulator's settled "
                f"details; PolyScore of {len(truth['poly_score'])} variant(s), "
                f"{len(truth['language_direction'])} language/direction split(s) and "
                f"{len(truth['tags'])} tag(s) equal the emulator's."
            )
    return status


if __name__ == "__main__":
    sys.exit(main())
