"""Schema drift end to end: a drifting API, the tap, and real loaders (issue #10).

The emulator's drift mode (fractional durations and counts, numeric strings, "true"/"false",
an object where a boolean is declared, a new top-level object field and a new turn field) is
loaded by meltanolabs-target-postgres and by target-duckdb, as Meltano runs them (the catalog
types `conversations.turns` as one JSON column, like meltano.yml). Every conversation and turn
arrives, new fields land in their own columns (and inside the nested `turns` JSON), and values
are the API's.
"""

from __future__ import annotations

import json
import subprocess
import typing as t
from pathlib import Path

import psycopg
import pytest

from tap_polyai.emulator.drift import NEW_FIELD, NEW_TURN_FIELD
from tests.conftest import drift_emulator, live_conversations, tap_config
from tests.pipeline_support import (
    TARGET_DUCKDB,
    postgres_target_config,
    postgres_url,
    require_venv,
    run_pipeline,
    untyped_turns_catalog,
)
from tests.tap_runner import TAP_COMMAND, discover

pytestmark = [pytest.mark.pipeline]

SCHEMA = "polyai"


def as_bool(value: t.Any) -> bool | None:
    return (
        value if isinstance(value, bool) else (value == "true" if isinstance(value, str) else None)
    )


def check_loaded(
    truth: dict[str, dict[str, t.Any]],
    conversations: dict[str, dict[str, t.Any]],
    turn_rows: dict[tuple[str, int], dict[str, t.Any]],
) -> None:
    """Rows as loaded (column -> Python value, JSON columns parsed) against the API's values."""
    assert conversations.keys() == truth.keys()
    assert len(turn_rows) == sum(len(c["turns"]) for c in truth.values())
    assert sum(1 for c in truth.values() if NEW_FIELD in c) > 10
    for conversation_id, sent in truth.items():
        row = conversations[conversation_id]
        assert row[NEW_FIELD] == sent.get(NEW_FIELD), conversation_id
        assert row["handoff"] == (None if isinstance(sent["handoff"], dict) else sent["handoff"])
        for name in ("total_duration", "polyai_duration", "num_turns", "num_silences", "num_ood"):
            assert float(row[name]) == float(sent[name]), (conversation_id, name)
        nested = row["turns"]
        assert len(nested) == len(sent["turns"])
        for index, turn in enumerate(sent["turns"]):
            assert nested[index].get(NEW_TURN_FIELD) == turn.get(NEW_TURN_FIELD)
            assert nested[index]["latency"] == float(turn["latency"])
            assert nested[index]["is_silence"] is as_bool(turn["is_silence"])
            loaded = turn_rows[(conversation_id, index)]
            expected = turn.get(NEW_TURN_FIELD)
            assert (None if loaded[NEW_TURN_FIELD] is None else float(loaded[NEW_TURN_FIELD])) == (
                expected
            )
            assert float(loaded["latency"]) == float(turn["latency"])
            assert loaded["barge_in"] is as_bool(turn["barge_in"])


# --- PostgreSQL ---------------------------------------------------------------------------


@pytest.mark.postgres
def test_drift_lands_in_postgres(target_postgres: Path, database: str, tmp_path: Path) -> None:
    target = target_postgres
    url = postgres_url(database)
    target_config = postgres_target_config(database, SCHEMA)
    with drift_emulator(count=150) as emulator, psycopg.connect(url) as db:
        config = tap_config(emulator)
        run_pipeline(
            TAP_COMMAND,
            config,
            target,
            target_config,
            tmp_path / "run",
            catalog=untyped_turns_catalog(discover(config)),
        )
        truth = live_conversations(emulator)
        types = dict(
            db.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = %s and table_name = 'conversations'",
                (SCHEMA,),
            ).fetchall()
        )
        assert types[NEW_FIELD] == "jsonb"
        assert types["num_silences"] == "numeric"  # declared `number`: 1.5 is not rounded
        assert types["total_duration"] == "numeric"
        rows, distinct = db.execute(
            f"select count(*), count(distinct id) from {SCHEMA}.conversations"
        ).fetchone() or (0, 0)
        assert rows == distinct == len(truth)
        columns = [c for c in types if not c.startswith("_sdc")]
        cursor = db.execute(f"select {', '.join(columns)} from {SCHEMA}.conversations")
        loaded = [dict(zip(columns, row, strict=True)) for row in cursor]
        conversations = {row["id"]: row for row in loaded}
        cursor = db.execute(
            f"select conversation_id, turn_index, {NEW_TURN_FIELD}, latency, barge_in "
            f"from {SCHEMA}.conversation_turns"
        )
        turn_rows = {
            (row[0], row[1]): dict(
                zip(("c", "i", NEW_TURN_FIELD, "latency", "barge_in"), row, strict=True)
            )
            for row in cursor
        }
        check_loaded(truth, conversations, turn_rows)


# --- DuckDB -------------------------------------------------------------------------------

_DUMP = """
import json, sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
def rows(sql):
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]
conversations = rows("select * exclude (started_at) from polyai.conversations")
turns = rows("select conversation_id, turn_index, {turn_field}, latency, barge_in "
             "from polyai.conversation_turns")
types = dict(con.execute("select column_name, data_type from information_schema.columns "
                         "where table_name = 'conversations'").fetchall())
print(json.dumps({{"conversations": conversations, "turns": turns, "types": types}},
                 default=str))
"""


def test_drift_lands_in_duckdb(tmp_path: Path) -> None:
    venv = require_venv("target-duckdb", TARGET_DUCKDB)
    path = tmp_path / "drift.duckdb"
    target_config = {"filepath": str(path), "default_target_schema": SCHEMA}
    with drift_emulator(count=150) as emulator:
        config = tap_config(emulator)
        run_pipeline(
            TAP_COMMAND,
            config,
            venv / "bin" / "target-duckdb",
            target_config,
            tmp_path / "run",
            catalog=untyped_turns_catalog(discover(config)),
        )
        truth = live_conversations(emulator)
    dump = subprocess.run(
        [str(venv / "bin" / "python"), "-c", _DUMP.format(turn_field=NEW_TURN_FIELD), str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert dump.returncode == 0, dump.stderr[-2000:]
    loaded = json.loads(dump.stdout)
    assert loaded["types"][NEW_FIELD] == "JSON"
    assert len(loaded["conversations"]) == len({r["id"] for r in loaded["conversations"]})
    conversations = {}
    for row in loaded["conversations"]:
        for name in (NEW_FIELD, "turns"):
            row[name] = json.loads(row[name]) if row[name] is not None else None
        conversations[row["id"]] = row
    turn_rows = {(r["conversation_id"], r["turn_index"]): r for r in loaded["turns"]}
    check_loaded(truth, conversations, turn_rows)
