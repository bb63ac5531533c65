"""The real pipeline into PostgreSQL: emulator -> tap-polyai | meltanolabs-target-postgres, and
the same into pipelinewise-target-postgres (the other loader in use), every stream row for row.

Needs a server (POSTGRES_URL or PG* variables, default postgres@127.0.0.1:5432) and, the first
time, PyPI to build `.venv-targets/target-postgres`. Without either the test skips, unless
TAP_POLYAI_REQUIRE_POSTGRES=1 (CI), where it fails.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from pathlib import Path

import psycopg
import pytest

from tests import dbt_support
from tests.conftest import (
    PROJECTS,
    assert_loaded_details,
    live_conversations,
    live_details,
    make_emulator,
    tap_config,
)
from tests.pipeline_support import (
    pipelinewise_target_config,
    pipelinewise_target_postgres_executable,
    postgres_fields,
    postgres_target_config,
    postgres_url,
    run_pipeline,
    untyped_turns_catalog,
)
from tests.tap_runner import TAP_COMMAND, bookmark, discover

pytestmark = [pytest.mark.postgres, pytest.mark.pipeline]

SCHEMA = "polyai"


@pytest.fixture(scope="module")
def dbt_postgres(admin_url: str) -> Path:
    """The dbt-postgres venv (transform/ runs on what the pipeline loaded)."""
    return dbt_support.dbt_venv("postgres")


def _catalog(config: dict[str, t.Any]) -> dict[str, t.Any]:
    return untyped_turns_catalog(discover(config))


def _iso(value: dt.datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def test_pipeline_into_postgres(
    target_postgres: Path, dbt_postgres: Path, database: str, tmp_path: Path
) -> None:
    url = postgres_url(database)
    target_config = postgres_target_config(database, SCHEMA)
    with make_emulator() as emulator, psycopg.connect(url, autocommit=True) as db:
        config = tap_config(emulator)
        catalog = _catalog(config)

        # --- run 1: everything since start_date --------------------------------------------
        state1 = run_pipeline(
            TAP_COMMAND, config, target_postgres, target_config, tmp_path / "run1", catalog=catalog
        )
        assert state1 is not None, "target-postgres emitted no STATE"
        served1 = emulator.stats()
        visible1 = live_conversations(emulator)

        def count(sql: str, *params: object) -> int:
            row = db.execute(sql, params).fetchone()
            assert row is not None
            return int(row[0])

        rows, distinct = db.execute(
            f"select count(*), count(distinct id) from {SCHEMA}.conversations"
        ).fetchone()
        assert rows == distinct == served1["served_ids"] == len(visible1)
        in_progress1 = count(f"select count(*) from {SCHEMA}.conversations where in_progress")
        assert in_progress1 == 3 * len(PROJECTS)

        # JSON columns are jsonb and can be queried as such.
        types = dict(
            db.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = %s and table_name = 'conversations'",
                (SCHEMA,),
            ).fetchall()
        )
        for column in ("state", "metrics", "turns"):
            assert types[column] == "jsonb", (column, types[column])
        assert types["started_at"].startswith("timestamp")
        assert types["handoff"] == "boolean"
        party = count(
            f"select count(*) from {SCHEMA}.conversations "
            "where (state->'booking'->>'party_size')::int > 0"
        )
        expected_party = sum(
            1
            for rec in visible1.values()
            if isinstance(rec.get("state"), dict)
            and isinstance(rec["state"].get("booking"), dict)
            and isinstance(rec["state"]["booking"].get("party_size"), int)
            and rec["state"]["booking"]["party_size"] > 0
        )
        assert party == expected_party > 0
        assert count(
            f"select count(*) from {SCHEMA}.conversations where jsonb_typeof(turns) = 'array'"
        ) == len(visible1)

        # --- run 2: the clock moves on; in-progress conversations finish, late ones arrive --
        emulator.clock.advance(dt.timedelta(hours=7))
        emulator.reset_stats()
        config2 = {**config, "end_date": _iso(emulator.clock.now())}
        state2 = run_pipeline(
            TAP_COMMAND,
            config2,
            target_postgres,
            target_config,
            tmp_path / "run2",
            state=state1,
            catalog=catalog,
        )
        assert state2 is not None
        served2 = emulator.stats()
        visible2 = live_conversations(emulator)

        # Incremental: only a small range around the bookmark is read again.
        assert 0 < served2["served_records"] <= len(visible1) // 4, (served1, served2)
        earliest = min(
            e["params"]["start_time"][0]
            for e in emulator.requests
            if e.get("params", {}).get("start_time")
        )
        for project in PROJECTS:
            mark = bookmark(state1, project)
            assert mark is not None
            mark_dt = dt.datetime.fromisoformat(mark.replace("Z", "+00:00"))
            # lookback (60 min) and the in-progress hold; never back to start_date.
            assert dt.datetime.fromisoformat(earliest.replace("Z", "+00:00")) >= (
                mark_dt - dt.timedelta(hours=2)
            )
            assert bookmark(state2, project) is not None
            assert bookmark(state2, project) >= mark

        # Every conversation exactly once (upsert on id), none in progress any more.
        rows, distinct = db.execute(
            f"select count(*), count(distinct id) from {SCHEMA}.conversations"
        ).fetchone()
        assert rows == distinct == len(visible2)
        assert len(visible2) > len(visible1)  # the late ones arrived
        assert count(f"select count(*) from {SCHEMA}.conversations where in_progress") == 0
        for conv_id, rec in visible2.items():
            if visible1.get(conv_id, {}).get("in_progress"):
                assert not rec["in_progress"]
        finished = count(
            f"select count(*) from {SCHEMA}.conversations where id = any(%s) and not in_progress",
            [i for i, r in visible1.items() if r["in_progress"]],
        )
        assert finished == in_progress1

        # conversation_turns: one row per element of `turns` (finished calls replaced the
        # partial ones), i.e. the sum of num_turns where the transcript is visible.
        turn_rows = count(f"select count(*) from {SCHEMA}.conversation_turns")
        expected_turns = count(
            f"select coalesce(sum(jsonb_array_length(turns)), 0) from {SCHEMA}.conversations"
        )
        assert turn_rows == expected_turns > 0
        assert expected_turns == count(
            f"select coalesce(sum(num_turns), 0) from {SCHEMA}.conversations "
            "where jsonb_array_length(turns) > 0"
        )

        # conversation_details (the catalog selects every stream): after both runs, one row per
        # finished conversation, equal to the API's detail now (summaries included); the calls
        # in progress at run 1 got theirs in run 2.
        details = live_details(emulator)
        cursor = db.execute(f"select * from {SCHEMA}.conversation_details")
        names = [d.name for d in cursor.description or ()]
        assert_loaded_details([dict(zip(names, r, strict=True)) for r in cursor], details)
        assert {i for i, r in visible1.items() if r["in_progress"]} <= set(details)
        detail_types = dict(
            db.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = %s and table_name = 'conversation_details'",
                (SCHEMA,),
            ).fetchall()
        )
        assert detail_types["function_events"] == "jsonb"
        assert detail_types["finished_at"].startswith("timestamp")
        assert detail_types["poly_score"] == "numeric"

        # The analytics project on what was loaded: every model and data test, metrics equal
        # to what Python computes from the API's records.
        _check_dbt_build(dbt_postgres, database, db, list(visible2.values()), tmp_path / "dbt")
        _check_dbt_details(dbt_postgres, database, db, details, tmp_path / "dbt-details")


def test_pipeline_into_pipelinewise_target_postgres(
    admin_url: str, dbt_postgres: Path, database: str, tmp_path: Path
) -> None:
    """pipelinewise-target-postgres 2.1.2: every stream, conversation_details included, row for
    row against the emulator after two runs (the second finishes the calls in progress and
    upserts their details), then the detail models on its layout (`jsonb` tags, no `_sdc_*`
    columns)."""
    target = pipelinewise_target_postgres_executable()
    target_config = pipelinewise_target_config(database, SCHEMA)
    with make_emulator() as emulator, psycopg.connect(postgres_url(database)) as db:
        config = tap_config(emulator)
        catalog = _catalog(config)
        state = run_pipeline(
            TAP_COMMAND, config, target, target_config, tmp_path / "run1", catalog=catalog
        )
        assert state is not None, "pipelinewise-target-postgres emitted no STATE"
        running = {i for i, r in live_conversations(emulator).items() if r["in_progress"]}
        assert running

        def details_loaded() -> list[dict[str, t.Any]]:
            cursor = db.execute(f"select * from {SCHEMA}.conversation_details")
            names = [d.name for d in cursor.description or ()]
            return [dict(zip(names, r, strict=True)) for r in cursor]

        assert_loaded_details(details_loaded(), live_details(emulator))
        assert not running & {r["conversation_id"] for r in details_loaded()}

        emulator.clock.advance(dt.timedelta(hours=7))
        config2 = {**config, "end_date": _iso(emulator.clock.now())}
        state2 = run_pipeline(
            TAP_COMMAND,
            config2,
            target,
            target_config,
            tmp_path / "run2",
            state=state,
            catalog=catalog,
        )
        assert state2 is not None
        details = live_details(emulator)
        assert_loaded_details(details_loaded(), details)  # upserted: one row per conversation
        assert running <= set(details)

        visible = live_conversations(emulator)
        rows, distinct = db.execute(
            f"select count(*), count(distinct id) from {SCHEMA}.conversations"
        ).fetchone()
        assert rows == distinct == len(visible)
        ((turns,),) = db.execute(f"select count(*) from {SCHEMA}.conversation_turns").fetchall()
        assert turns == sum(len(r.get("turns") or []) for r in visible.values()) > 0
        types = dict(
            db.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = %s and table_name = 'conversation_details'",
                (SCHEMA,),
            ).fetchall()
        )
        assert types["tags"] == types["function_events"] == "jsonb"
        assert types["poly_score"] == "double precision"
        assert types["finished_at"] == "timestamp without time zone"
        db.commit()
        _check_dbt_details(dbt_postgres, database, db, details, tmp_path / "dbt-details")


def _dbt_env(database: str, schema: str) -> dict[str, str]:
    host, port, user, password = postgres_fields(database)
    return {
        "DBT_TARGET": "postgres",
        "DBT_POSTGRES_HOST": host,
        "DBT_POSTGRES_PORT": str(port),
        "DBT_POSTGRES_USER": user,
        "DBT_POSTGRES_PASSWORD": password,
        "DBT_POSTGRES_DBNAME": database,
        "DBT_SCHEMA": schema,
        "POLYAI_SOURCE_SCHEMA": SCHEMA,
    }


def _check_dbt_details(
    dbt: Path,
    database: str,
    db: psycopg.Connection[t.Any],
    details: dict[str, dict[str, t.Any]],
    workdir: Path,
) -> None:
    """The conversation_details models on PostgreSQL (jsonb tags): PolyScore and tag counts."""
    env = _dbt_env(database, "analytics_details")
    args = ["build", "--vars", "{polyai_conversation_details: true}"]
    done = dbt_support.run_dbt(dbt, args, env, workdir)
    summary = dbt_support.build_summary(done.stdout)
    assert summary["ERROR"] == summary["SKIP"] == summary["WARN"] == 0, done.stdout[-3000:]
    tags: dict[tuple[str, str], int] = {}
    for detail in details.values():
        for tag in detail["tags"]:
            tags[(detail["project_id"], tag)] = tags.get((detail["project_id"], tag), 0) + 1
    got = db.execute(
        "select project_id, tag, sum(conversations)::int from analytics_details.polyai_tags "
        "group by 1, 2"
    ).fetchall()
    assert {(p, tag): n for p, tag, n in got} == tags
    ((scored, average),) = db.execute(
        "select sum(scored)::int, sum(avg_poly_score * scored) / sum(scored) "
        "from analytics_details.polyai_poly_score"
    ).fetchall()
    scores = [d["poly_score"] for d in details.values()]
    assert scored == len(scores)
    assert float(average) == pytest.approx(sum(scores) / len(scores))


def _check_dbt_build(
    dbt: Path,
    database: str,
    db: psycopg.Connection[t.Any],
    truth: list[dict[str, t.Any]],
    workdir: Path,
) -> None:
    env = _dbt_env(database, "analytics")
    # A tombstone as a loader leaves it for a turn that no longer exists: the staging model
    # must drop it (or the turn-count data test fails).
    victim = db.execute(
        f"select id, num_turns from {SCHEMA}.conversations "
        "where jsonb_array_length(turns) > 0 order by id limit 1"
    ).fetchone()
    assert victim is not None
    db.execute(
        f"insert into {SCHEMA}.conversation_turns (conversation_id, turn_index, project_id, "
        "_sdc_deleted_at) values (%s, %s, 'PROJECT-alpha', now())",
        (victim[0], victim[1]),
    )
    done = dbt_support.run_dbt(dbt, ["build"], env, workdir)
    summary = dbt_support.build_summary(done.stdout)
    assert summary["ERROR"] == summary["SKIP"] == summary["WARN"] == 0, done.stdout[-3000:]
    assert summary["PASS"] >= len(dbt_support.MODELS) + 25

    def rows(sql: str) -> list[tuple[t.Any, ...]]:
        return db.execute(sql).fetchall()

    tables = {
        r[0]
        for r in rows(
            "select table_name from information_schema.tables where table_schema = 'analytics'"
        )
    }
    assert tables == set(dbt_support.MODELS)
    turns = sum(len(rec.get("turns") or []) for rec in truth)
    assert rows("select count(*) from analytics.stg_polyai__turns") == [(turns,)]
    assert rows(f"select count(*) from {SCHEMA}.conversation_turns") == [(turns + 1,)]

    per_day = rows(
        "select project_id, day::text, sum(conversations)::int from analytics.polyai_daily "
        "group by 1, 2"
    )
    assert {(p, d): n for p, d, n in per_day} == dbt_support.conversations_per_day(truth)
    expected = dbt_support.containment(truth)
    for project, finished, contained in rows(
        "select project_id, sum(finished)::int, sum(contained)::int from analytics.polyai_daily "
        "group by 1"
    ):
        assert (finished, contained) == expected[project][:2]
    for project, variant, finished, contained, rate in rows(
        "select project_id, variant_id, finished, contained, containment_rate "
        "from analytics.polyai_variant_comparison"
    ):
        assert rate == pytest.approx(contained / finished), (project, variant)
    variants = dbt_support.variant_metrics(truth)
    got = rows(
        "select project_id, variant_id, median_duration_seconds, p95_latency_seconds "
        "from analytics.polyai_variant_comparison"
    )
    assert {(p, v) for p, v, _, _ in got} == set(variants)
    for project, variant, median, p95 in got:
        want = variants[(project, variant)]
        assert median == pytest.approx(want["median_duration_seconds"], abs=1e-9)
        assert p95 == pytest.approx(want["p95_latency_seconds"], abs=1e-9)
