"""How meltanolabs-target-snowflake types the tap's columns, decided offline.

This checks the target's own JSON-schema to SQL type mapping (`SnowflakeConnector.to_sql_type`,
no connection made), fed with the SCHEMA the tap announces in its discovered catalog, and the
DDL type it compiles to. The load itself (sink, PUT, DDL, MERGE, read back) is
`test_snowflake_load.py`, on fakesnow. The target runs in its own venv
(`.venv-targets/target-snowflake`), built once; without PyPI the test skips (fails in CI).
"""

from __future__ import annotations

import json
import subprocess
import textwrap
import typing as t
from pathlib import Path

import pytest

from tests.pipeline_support import (
    TARGET_SNOWFLAKE,
    VenvUnavailableError,
    target_venv,
    unavailable,
)
from tests.tap_runner import discover

pytestmark = pytest.mark.pipeline

# Runs inside the target's venv: prints {stream: {column: type}}, where a type is the
# target's SQLAlchemy type class name followed by its compiled Snowflake DDL, e.g.
# "NUMBER DECIMAL" (Snowflake's NUMBER compiles as its synonym DECIMAL, i.e. NUMBER(38,0)).
MAPPING_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from snowflake.sqlalchemy.snowdialect import SnowflakeDialect
    from target_snowflake.connector import SnowflakeConnector

    streams = json.load(open(sys.argv[1]))
    connector = SnowflakeConnector(
        config={"account": "offline", "user": "offline", "password": "offline",
                "database": "POLYAI", "default_target_schema": "POLYAI"}
    )
    dialect = SnowflakeDialect()
    out = {}
    for stream, schema in streams.items():
        out[stream] = {
            name: f"{type(sql_type).__name__} {sql_type.compile(dialect=dialect)}"
            for name, prop in schema["properties"].items()
            for sql_type in [connector.to_sql_type(prop)]
        }
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def snowflake_python() -> Path:
    try:
        venv = target_venv("target-snowflake", TARGET_SNOWFLAKE)
    except VenvUnavailableError as exc:
        unavailable(f"cannot build the target-snowflake venv (needs PyPI): {exc}")
    return venv / "bin" / "python"


def _discovered_schemas() -> dict[str, dict[str, t.Any]]:
    config = {
        "api_key": "offline",
        "account_id": "ws-offline",
        "project_id": "PROJECT-offline",
        "start_date": "2024-01-01T00:00:00Z",
    }
    return {s["tap_stream_id"]: s["schema"] for s in discover(config)["streams"]}


@pytest.fixture(scope="module")
def snowflake_types(
    snowflake_python: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, str]]:
    tmp_path = tmp_path_factory.mktemp("snowflake")
    (tmp_path / "schemas.json").write_text(json.dumps(_discovered_schemas()))
    (tmp_path / "mapping.py").write_text(MAPPING_SCRIPT)
    proc = subprocess.run(
        [str(snowflake_python), str(tmp_path / "mapping.py"), str(tmp_path / "schemas.json")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return t.cast(dict[str, dict[str, str]], json.loads(proc.stdout.splitlines()[-1]))


def test_conversations_column_types(snowflake_types: dict[str, dict[str, str]]) -> None:
    types = snowflake_types["conversations"]
    for column in ("state", "metrics", "turns"):
        assert types[column].startswith("VARIANT"), (column, types[column])
    assert types["started_at"].startswith("TIMESTAMP"), types["started_at"]
    for column in ("in_progress", "handoff"):
        assert types[column].startswith("BOOLEAN"), (column, types[column])
    # Counts and durations are declared `number` (schema.py: they may arrive fractional).
    for column in ("num_turns", "num_silences", "num_ood", "total_duration", "polyai_duration"):
        assert types[column].split()[-1] in {"FLOAT", "DOUBLE"}, (column, types[column])
    for column in ("id", "channel", "from_number", "to_number", "handoff_reason"):
        assert types[column].startswith("VARCHAR"), (column, types[column])


def test_conversation_turns_column_types(snowflake_types: dict[str, dict[str, str]]) -> None:
    types = snowflake_types["conversation_turns"]
    assert types["conversation_id"].startswith("VARCHAR")
    assert types["turn_index"].startswith("NUMBER")
    assert types["started_at"].startswith("TIMESTAMP")
    assert types["latency"].split()[-1] in {"FLOAT", "DOUBLE", "REAL", "DECIMAL", "NUMBER"}, types[
        "latency"
    ]
    for column in ("intents", "entities"):
        assert types[column].startswith("VARIANT"), (column, types[column])
    for column in ("is_ood", "is_silence", "barge_in"):
        assert types[column].startswith("BOOLEAN"), (column, types[column])
