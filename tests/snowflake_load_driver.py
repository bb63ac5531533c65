"""Load Singer output into "Snowflake" with meltanolabs-target-snowflake's own code, on fakesnow.

Runs inside the target's virtualenv (target-snowflake + fakesnow), not the tap's:

    python snowflake_load_driver.py JOB.json

JOB.json: {"target_config": {...}, "loads": [singer_file, ...], "out": result_file}.
Each file is fed to `TargetSnowflake.listen` (the sink, its batching, the JSONL batch files,
PUT, CREATE FILE FORMAT, DDL and MERGE), one target run after another against one in-memory
fakesnow database; then the tables are queried back and written to `out` as JSON.

fakesnow 0.12.1 lacks some of what the target sends. Each shim below names the gap it covers
and changes as little of the target's statement as it can; every statement the target sends is
logged in the result with what happened to it ("ran", "rewritten" or "skipped").
"""

from __future__ import annotations

import json
import re
import sys
import typing as t
from pathlib import Path

import fakesnow
import snowflake.connector
import sqlalchemy
from sqlalchemy import text

STAGE = "TAP_POLYAI_STAGE"  # a named stage in the target schema (see the PUT shim)
# fakesnow has no REMOVE, and no DROP FILE FORMAT: it answers these with success, unrun.
SKIPPED = [r"^\s*remove\s", r"^\s*drop\s+file\s+format\s"]

# "fate: KIND" -> how many; fate is ran (as the target sent it), rewritten (shimmed, see
# below), skipped (fakesnow's nop_regexes) or shim (sent by a shim, not by the target).
statements: dict[str, int] = {}
KINDS = [
    ("PUT", r"put\b"),
    ("CREATE FILE FORMAT", r"create (or replace )?file format\b"),
    ("DROP FILE FORMAT", r"drop file format\b"),
    ("REMOVE", r"remove\b"),
    ("MERGE", r"merge into\b"),
    ("COPY INTO", r"copy into\b"),
    ("CREATE TABLE", r"create (or replace )?table\b"),
    ("ALTER TABLE", r"alter table\b"),
    ("DROP TABLE", r"drop table\b"),
    ("CREATE SCHEMA", r"create schema\b"),
    ("SHOW/DESC (reflection)", r"(show|desc|describe)\b"),
    ("SELECT", r"select\b"),
]


def _log(sql: str, fate: str) -> None:
    text_ = " ".join(sql.split()).lower()
    kind = next((k for k, p in KINDS if re.match(p, text_)), text_.split(" ", 1)[0].upper())
    key = f"{fate}: {kind}"
    statements[key] = statements.get(key, 0) + 1


def install_shims(database: str, session_schema: str) -> None:
    from target_snowflake.connector import SnowflakeConnector as Connector

    stage = f"{database}.{session_schema}.{STAGE}"

    # Gap: fakesnow has no user stage `@~`, and takes a stage only unquoted. The target's PUT
    # runs as is, into a named stage instead: put :file_uri @DB.SCHEMA.STAGE/<sync_id>.
    original_put = Connector._get_put_statement

    def put_statement(self: t.Any, sync_id: str, file_uri: str) -> tuple[t.Any, dict]:
        statement, kwargs = original_put(self, sync_id, file_uri)
        sql = re.sub(r"'@~/target-snowflake/([^']*)'", rf"@{stage}/\1", statement.text)
        return text(sql), kwargs

    Connector._get_put_statement = put_statement

    # Gap: fakesnow's MERGE needs a session schema; the target's URL names only the database.
    original_connect_args = Connector.get_connect_args

    def connect_args(self: t.Any) -> dict[str, t.Any]:
        return {**original_connect_args(self), "schema": session_schema}

    Connector.get_connect_args = connect_args

    # Gaps: fakesnow cannot `SELECT ... FROM @stage (file_format => ...)`, fails on SEQ8() in a
    # window, and on QUALIFY inside a MERGE's USING subquery. So, before the target's MERGE,
    # the staged files are loaded with COPY INTO (from the named stage, through the target's
    # own file format) into a one-VARIANT-column table, and its last row per key is kept
    # (what the target's QUALIFY ... ORDER BY SEQ8() DESC keeps). The target's MERGE then runs
    # with only its source swapped: `$1:col::TYPE` casts, join, UPDATE and INSERT unchanged.
    original_merge_sql = Connector._get_merge_from_stage_statement
    source = re.compile(
        r"from '@~/target-snowflake/[^']*'\(file_format => [^)]*\) "
        r"QUALIFY ROW_NUMBER\(\) OVER \(PARTITION BY [^)]*ORDER BY SEQ8\(\) DESC\) = 1\) s "
    )

    def staged(sync_id: str) -> str:
        return f"{database}.{session_schema}.STAGED_" + re.sub(r"\W", "_", sync_id).upper()

    def merge_statement(  # noqa: PLR0917 - the target's signature
        self: t.Any,
        full_table_name: t.Any,
        schema: dict,
        sync_id: str,
        file_format: str,
        key_properties: t.Iterable[str],
    ) -> tuple[t.Any, dict]:
        statement, kwargs = original_merge_sql(
            self, full_table_name, schema, sync_id, file_format, key_properties
        )
        sql, count = source.subn(f"from {staged(sync_id)}_LAST) s ", statement.text)
        assert count == 1, f"the target's MERGE changed shape: {statement.text[:500]}"
        sql = sql.replace("$1:", "v:")  # the staged row is column v, not the file's $1
        _log(statement.text, "rewritten")
        return text(sql), kwargs

    Connector._get_merge_from_stage_statement = merge_statement

    original_merge = Connector.merge_from_stage

    def merge_from_stage(  # noqa: PLR0917 - the target's signature
        self: t.Any,
        full_table_name: t.Any,
        schema: dict,
        sync_id: str,
        file_format: str,
        key_properties: t.Sequence[str],
    ) -> t.Any:
        table = staged(sync_id)
        keys = ", ".join(f"v:{self.format_identifier(k, safe=True)}" for k in key_properties)
        shim = [
            f"create table {table} (v variant)",
            f"copy into {table} from @{stage}/{sync_id} "
            f"file_format = (format_name = '{file_format}')",
            f"create table {table}_LAST as select v from {table} "
            f"qualify row_number() over (partition by {keys} order by rowid desc) = 1",
        ]
        with self._connect() as conn, conn.begin():
            for sql in shim:
                conn.execute(text(sql))
        try:
            return original_merge(
                self, full_table_name, schema, sync_id, file_format, key_properties
            )
        finally:
            with self._connect() as conn, conn.begin():
                conn.execute(text(f"drop table {table}"))
                conn.execute(text(f"drop table {table}_LAST"))

    Connector.merge_from_stage = merge_from_stage


def _record_statements() -> None:
    """Log every statement the target's engine sends, and whether fakesnow skips it."""
    shim_prefixes = ("create table ", "copy into ", "drop table ")

    @sqlalchemy.event.listens_for(sqlalchemy.engine.Engine, "before_cursor_execute")
    def _before(conn: t.Any, cursor: t.Any, sql: str, *args: t.Any) -> None:
        lowered = " ".join(sql.split()).lower()
        if lowered.startswith(shim_prefixes) and "staged_" in lowered:
            _log(sql, "shim")
        elif any(re.match(p, sql, re.IGNORECASE) for p in SKIPPED):
            _log(sql, "skipped")
        elif lowered.startswith("merge into"):
            pass  # logged as "rewritten" where it was built
        else:
            _log(sql, "ran")


def _rows(cursor: t.Any, sql: str) -> list[dict[str, t.Any]]:
    cursor.execute(sql)
    names = [d[0].lower() for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def query_back(database: str, schema: str) -> dict[str, t.Any]:
    conn = snowflake.connector.connect(database=database, schema=schema)
    cur = conn.cursor()
    columns = _rows(
        cur,
        "select table_name, column_name, data_type from information_schema.columns "
        f"where table_schema = '{schema}' order by table_name, ordinal_position",
    )
    conversations = _rows(
        cur,
        "select id, started_at, in_progress, num_turns, handoff, state, metrics, turns, "
        "state:booking:party_size::int as party_size from conversations",
    )
    turns = _rows(
        cur,
        "select conversation_id, turn_index, started_at, latency, is_ood, intents, entities "
        "from conversation_turns",
    )
    details = _rows(cur, "select * from conversation_details")
    return {
        "columns": columns,
        "conversations": conversations,
        "conversation_turns": turns,
        "conversation_details": details,
    }


def _counts(database: str, schema: str) -> dict[str, list[int]]:
    conn = snowflake.connector.connect(database=database, schema=schema)
    cur = conn.cursor()
    out = {}
    for table, key in (
        ("conversations", "id"),
        ("conversation_turns", "conversation_id || '/' || turn_index"),
        ("conversation_details", "conversation_id"),
    ):
        cur.execute(f"select count(*), count(distinct {key}) from {table}")
        out[table] = [int(v) for v in cur.fetchone()]
    return out


def main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text())
    config = job["target_config"]
    database, schema = config["database"].upper(), config["schema"].upper()
    counts = []
    with fakesnow.patch(nop_regexes=SKIPPED):
        install_shims(database, schema)
        _record_statements()
        from target_snowflake.target import TargetSnowflake

        admin = snowflake.connector.connect(database=database, schema=schema)
        admin.cursor().execute(f"create stage {database}.{schema}.{STAGE}")
        for path in job["loads"]:
            target = TargetSnowflake(config=config)
            with open(path) as singer:
                target.listen(singer)
            counts.append(_counts(database, schema))
        result = {**query_back(database, schema), "counts": counts, "statements": statements}
    with open(job["out"], "w") as out:
        json.dump(result, out, default=str)


if __name__ == "__main__":
    main()
