"""Runs inside PyAirbyte's own virtualenv (tests/test_pyairbyte.py): PyAirbyte drives
`source-polyai` as a local executable and reads into its default DuckDB cache.

    python pyairbyte_driver.py check|read SOURCE_EXECUTABLE CONFIG_JSON
    python pyairbyte_driver.py rows [DUCKDB_FILE SCHEMA]

`check` and `read` print one JSON line with the outcome; `rows` prints every row of each
stream's table (JSON columns parsed): in PyAirbyte's default cache, or in another DuckDB
file. Run with AIRBYTE_PROJECT_DIR set to the test's temporary directory: the default cache
lives there.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# Without these PyAirbyte reports usage and fetches Airbyte's connector registry over the network.
assert os.environ.get("DO_NOT_TRACK")
assert os.environ.get("AIRBYTE_OFFLINE_MODE")

import airbyte  # noqa: E402
import duckdb  # noqa: E402
from airbyte.constants import DEFAULT_CACHE_ROOT  # noqa: E402


def main() -> None:
    command, *args = sys.argv[1:]
    if command == "rows":  # [DUCKDB_FILE SCHEMA]: by default PyAirbyte's default cache
        database, schema = args or (
            DEFAULT_CACHE_ROOT / "default_cache" / "default_cache.duckdb",
            "main",
        )
        print(json.dumps(_rows(Path(database), schema), default=str))
        return
    executable, config_path = args
    config = json.loads(Path(config_path).read_text())
    source = airbyte.get_source("source-polyai", config=config, local_executable=executable)
    if command == "check":
        source.check()
        print(json.dumps({"check": "ok"}))
    elif command == "read":
        source.select_all_streams()
        result = source.read()  # the default cache: .cache/default_cache/*.duckdb
        print(
            json.dumps({"processed": result.processed_records, "streams": sorted(result.streams)})
        )
    else:
        raise SystemExit(f"unknown command {command}")


def _rows(database: Path, schema: str) -> dict[str, list[dict[str, object]]]:
    """Every row of each stream's table in a DuckDB file, JSON columns parsed (PyAirbyte's own
    tables, `_airbyte_*`, left out)."""
    tables = {}
    with duckdb.connect(str(database)) as db:
        names = db.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [schema]
        ).fetchall()
        for (stream,) in names:
            if stream.startswith("_airbyte"):
                continue
            kinds = dict(
                db.execute(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = ? AND table_name = ?",
                    [schema, stream],
                ).fetchall()
            )
            cursor = db.execute(f'SELECT * FROM "{schema}"."{stream}"')
            columns = [d[0] for d in cursor.description]
            tables[stream] = [
                {
                    name: json.loads(value)
                    if kinds[name] == "JSON" and isinstance(value, str)
                    else value
                    for name, value in zip(columns, row, strict=True)
                }
                for row in cursor.fetchall()
            ]
    return tables


if __name__ == "__main__":
    main()
