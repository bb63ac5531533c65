# ruff: noqa: S608  (the only interpolated name is the schema, checked to be an identifier)
"""Print the demo's report from the DuckDB file that target-duckdb wrote, and check it.

Runs with the target-duckdb plugin's own interpreter (it has `duckdb`), so the project's
venv needs no duckdb:  .meltano/loaders/target-duckdb/venv/bin/python scripts/demo_report.py
    output/demo.duckdb --schema polyai --expect-conversations N
Exit status 1 when the loaded row count differs from N (the emulator's served_ids).
"""

from __future__ import annotations

import argparse
import sys

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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("database")
    parser.add_argument("--schema", default="polyai")
    parser.add_argument("--expect-conversations", type=int, required=True)
    args = parser.parse_args()

    con = duckdb.connect(args.database, read_only=True)
    s = args.schema
    if not s.isidentifier():
        parser.error(f"not a plain schema name: {s!r}")
    conv = f"{s}.conversations"
    tables = {
        r[0]
        for r in con.execute(
            "select table_name from information_schema.tables where table_schema = ?", [s]
        ).fetchall()
    }

    table(
        con,
        "Conversations per day and channel",
        f"""with per_day as (
                pivot (select started_at::date as day, channel from {conv})
                on channel using count(*) group by day
            )
            select *, (select count(*) from {conv} c where c.started_at::date = per_day.day)
                   as total
            from per_day order by day""",
    )
    table(
        con,
        "Handoff rate",
        f"""select count(*) as conversations,
                   count(*) filter (where handoff) as handoffs,
                   round(100.0 * count(*) filter (where handoff) / count(*), 1) as handoff_pct
            from {conv}""",
    )
    table(
        con,
        "Top handoff reasons",
        f"""select coalesce(nullif(handoff_reason, ''), '(none given)') as reason,
                   count(*) as handoffs
            from {conv} where handoff group by all order by handoffs desc, reason limit 5""",
    )
    table(
        con,
        "Turns per conversation",
        f"""select round(avg(num_turns), 2) as avg_turns, min(num_turns) as min_turns,
                   median(num_turns) as median_turns, max(num_turns) as max_turns,
                   round(avg(json_array_length(turns)), 2) as avg_turns_in_array
            from {conv}""",
    )
    table(
        con,
        "In progress at extraction time",
        f"select count(*) filter (where in_progress) as in_progress from {conv}",
    )
    if "conversation_turns" in tables:
        table(
            con,
            "Average agent latency per day (conversation_turns)",
            f"""select started_at::date as day, count(*) as turns,
                       round(avg(latency), 3) as avg_latency
                from {s}.conversation_turns where latency is not null
                group by all order by day""",
        )

    loaded, distinct = con.execute(f"select count(*), count(distinct id) from {conv}").fetchone()
    print()
    if loaded == distinct == args.expect_conversations:
        print(
            f"OK: {loaded} conversation rows loaded = {args.expect_conversations} distinct "
            "conversations served by the emulator (no loss, no duplicates)."
        )
        return 0
    print(
        f"MISMATCH: {loaded} rows ({distinct} distinct ids) loaded, but the emulator served "
        f"{args.expect_conversations} distinct conversations.",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
