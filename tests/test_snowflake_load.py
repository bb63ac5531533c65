"""A Snowflake load with meltanolabs-target-snowflake's own code, on fakesnow.

The tap syncs the emulator (480 conversations: entities, nested state, hidden transcripts,
in-progress and late ones), then syncs again a day later from its own state (in-progress
conversations finished, late ones arrived). Both outputs, as Singer message files, go through
target-snowflake 0.20.4 in its own venv (with fakesnow, built once under .venv-targets): its
sink, batching (500 rows), JSONL batch files, PUT, file format, DDL and MERGE, against one
in-memory fakesnow database. Loads: first sync, first sync again, second sync. Then the tables
are read back through fakesnow. `snowflake_load_driver.py` holds the shims for what fakesnow
lacks, each naming its gap, and counts every statement by what happened to it.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import typing as t
from pathlib import Path

import pytest
from conftest import assert_loaded_details, live_details, make_emulator, tap_config
from pipeline_support import (
    FAKESNOW,
    TARGET_SNOWFLAKE,
    VenvUnavailableError,
    python_at_least,
    target_venv,
    unavailable,
)
from tap_runner import TapRun, discover, run_tap, selecting

pytestmark = pytest.mark.pipeline

DRIVER = Path(__file__).with_name("snowflake_load_driver.py")
BATCH_ROWS = 500
KEYS = {
    "conversations": ("id",),
    "conversation_turns": ("conversation_id", "turn_index"),
    "conversation_details": ("conversation_id",),
}


def _write(run: TapRun, path: Path) -> Path:
    path.write_text("".join(json.dumps(m) + "\n" for m in run.messages))
    return path


def _latest(runs: list[TapRun], stream: str) -> dict[tuple[t.Any, ...], dict[str, t.Any]]:
    """Each key's last version across the loads, as an upsert keeps it."""
    rows: dict[tuple[t.Any, ...], dict[str, t.Any]] = {}
    for run in runs:
        for record in run.records(stream):
            rows[tuple(record[k] for k in KEYS[stream])] = record
    return rows


@pytest.fixture(scope="module")
def load(tmp_path_factory: pytest.TempPathFactory) -> dict[str, t.Any]:
    python = python_at_least(11)  # fakesnow 0.12.1 and duckdb 2.0 need Python >= 3.11
    if python is None:
        unavailable("fakesnow 0.12.1 needs Python >= 3.11 and none is on PATH")
    try:
        venv = target_venv(
            "target-snowflake-fakesnow", f"{TARGET_SNOWFLAKE} {FAKESNOW}", python=python
        )
    except VenvUnavailableError as exc:
        unavailable(f"cannot build the target-snowflake + fakesnow venv (needs PyPI): {exc}")
    tmp = tmp_path_factory.mktemp("snowflake")
    with make_emulator() as emulator:
        catalog = selecting(discover(tap_config(emulator)), "conversation_details")
        first = run_tap(tap_config(emulator), catalog=catalog)
        emulator.clock.advance(dt.timedelta(days=1))
        second = run_tap(tap_config(emulator), state=first.final_state, catalog=catalog)
        details = live_details(emulator)
    runs = [first, first, second]
    job = {
        "target_config": {
            "account": "fakesnow",
            "user": "loader",
            "password": "unused",
            # Not POLYAI.POLYAI: DuckDB cannot tell a database and a schema of one name apart.
            "database": "RAW",
            "schema": "POLYAI",
            "load_method": "upsert",
            "timestamp_type": "TIMESTAMP_TZ",
            "batch_size_rows": BATCH_ROWS,
        },
        "loads": [
            str(_write(first, tmp / "first.jsonl")),
            str(tmp / "first.jsonl"),
            str(_write(second, tmp / "second.jsonl")),
        ],
        "out": str(tmp / "result.json"),
    }
    (tmp / "job.json").write_text(json.dumps(job))
    proc = subprocess.run(
        [str(venv / "bin" / "python"), str(DRIVER), str(tmp / "job.json")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        cwd=tmp,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    result = json.loads((tmp / "result.json").read_text())
    return {"result": result, "runs": runs, "details": details}


def test_upserts_leave_one_row_per_key(load: dict[str, t.Any]) -> None:
    runs: list[TapRun] = load["runs"]
    counts = load["result"]["counts"]
    for i, after in enumerate(counts):
        for stream in KEYS:
            rows, distinct = after[stream]
            assert rows == distinct == len(_latest(runs[: i + 1], stream)), (i, stream, after)
    # Loading the same output twice changes nothing; the second sync adds the late arrivals.
    assert counts[0] == counts[1]
    assert counts[2]["conversations"][0] > counts[1]["conversations"][0]
    assert counts[2]["conversation_turns"][0] > counts[1]["conversation_turns"][0]


def _json(value: str | None) -> t.Any:
    return None if value is None else json.loads(value)


def _ts(value: str | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_conversations_read_back_equal_the_source(load: dict[str, t.Any]) -> None:
    expected = _latest(load["runs"], "conversations")
    rows = {(r["id"],): r for r in load["result"]["conversations"]}
    assert rows.keys() == expected.keys()
    finished_since = 0
    for key, row in rows.items():
        source = expected[key]
        assert _json(row["state"]) == source["state"], key
        assert _json(row["turns"]) == source["turns"], key
        assert _json(row["metrics"]) == source["metrics"], key
        assert _ts(row["started_at"]) == _ts(source["started_at"]), key
        assert row["in_progress"] is source["in_progress"], key
        assert row["num_turns"] == source["num_turns"], key
        booking = (source["state"] or {}).get("booking")
        party_size = booking.get("party_size") if isinstance(booking, dict) else None
        assert row["party_size"] == party_size, key  # state:booking:party_size::int
        first = {(r["id"],): r for r in load["runs"][0].records()}.get(key)
        finished_since += bool(first and first["in_progress"] and not row["in_progress"])
    # The second sync's versions replaced the first's: in-progress calls are now finished.
    assert finished_since > 0
    assert any(r["party_size"] is not None for r in rows.values())
    assert any(not _json(r["turns"]) and r["num_turns"] for r in rows.values())  # hidden


def test_turns_read_back_equal_the_source(load: dict[str, t.Any]) -> None:
    expected = _latest(load["runs"], "conversation_turns")
    rows = {
        (r["conversation_id"], r["turn_index"]): r for r in load["result"]["conversation_turns"]
    }
    assert rows.keys() == expected.keys()
    for key, row in rows.items():
        source = expected[key]
        assert _json(row["entities"]) == source["entities"], key
        assert _json(row["intents"]) == source["intents"], key
        assert row["latency"] == source["latency"], key
        assert row["is_ood"] is source["is_ood"], key
        assert _ts(row["started_at"]) == _ts(source["started_at"]), key
    assert any(_json(r["entities"]) for r in rows.values())


def test_details_read_back_equal_the_api(load: dict[str, t.Any]) -> None:
    """One row per finished conversation, equal to the emulator's detail after both syncs
    (in-progress calls of the first got theirs in the second)."""
    rows = load["result"]["conversation_details"]
    assert len(rows) > 300
    assert_loaded_details(rows, load["details"])


def _snowflake_type(prop: dict[str, t.Any]) -> str:
    """The column type target-snowflake should create for a property of the announced SCHEMA."""
    declared = prop.get("type", "object")
    types = {declared} if isinstance(declared, str) else set(declared)
    types -= {"null"}
    if types & {"object", "array"}:
        return "VARIANT"
    if prop.get("format") == "date-time":
        return "TIMESTAMP_TZ"  # timestamp_type: TIMESTAMP_TZ
    return {"boolean": "BOOLEAN", "integer": "NUMBER", "number": "FLOAT", "string": "TEXT"}[
        types.pop()
    ]


def test_column_types(load: dict[str, t.Any]) -> None:
    """Every column typed from the SCHEMA the tap announced (not a copy of it)."""
    types = {(c["table_name"], c["column_name"]): c["data_type"] for c in load["result"]["columns"]}
    schemas = {m["stream"]: m["schema"] for m in load["runs"][0].of_type("SCHEMA")}
    for stream, schema in schemas.items():
        table = stream.upper()
        expected = {k.upper(): _snowflake_type(p) for k, p in schema["properties"].items()}
        got = {column: types.get((table, column)) for column in expected}
        assert got == expected, table
    # The columns a warehouse user queries, whatever the schema says today.
    assert types[("CONVERSATIONS", "STATE")] == "VARIANT"
    assert types[("CONVERSATIONS", "TURNS")] == "VARIANT"
    assert types[("CONVERSATION_TURNS", "ENTITIES")] == "VARIANT"
    assert types[("CONVERSATIONS", "STARTED_AT")] == "TIMESTAMP_TZ"
    assert types[("CONVERSATIONS", "IN_PROGRESS")] == "BOOLEAN"
    assert types[("CONVERSATION_TURNS", "TURN_INDEX")] == "NUMBER"


def test_the_targets_own_statements_ran(load: dict[str, t.Any]) -> None:
    """What ran as the target sent it, what a shim rewrote, what fakesnow skipped."""
    statements = load["result"]["statements"]
    batches = sum(
        -(-len(run.records(stream)) // BATCH_ROWS) for run in load["runs"] for stream in KEYS
    )
    assert statements["ran: CREATE TABLE"] == len(KEYS)
    assert statements["ran: PUT"] == batches
    assert statements["ran: CREATE FILE FORMAT"] == len(KEYS) * len(load["runs"])
    assert statements["rewritten: MERGE"] == batches
    assert statements["shim: COPY INTO"] == batches
    assert statements["skipped: REMOVE"] == batches
    assert statements["skipped: DROP FILE FORMAT"] == len(KEYS) * len(load["runs"])
    allowed = {"ran", "rewritten", "skipped", "shim"}
    assert {key.split(":")[0] for key in statements} <= allowed, statements
    # Nothing else was rewritten or skipped.
    assert {k for k in statements if k.startswith(("rewritten", "skipped"))} == {
        "rewritten: MERGE",
        "skipped: REMOVE",
        "skipped: DROP FILE FORMAT",
    }
