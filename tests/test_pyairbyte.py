"""PyAirbyte, Airbyte's own Python runner, drives the installed wheel's `source-polyai`.

PyAirbyte (its own venv, like the targets') runs the connector with
`get_source(..., local_executable=...)` against the emulator and reads into its default DuckDB
cache (tests/pyairbyte_driver.py). The cached rows are checked against the emulator's truth
and against the Singer path's warehouse (tap-polyai | target-duckdb) on the same data: after a
first read, after a second read from PyAirbyte's stored state (new, late and finished
conversations), and after a read killed mid-way and run again.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import typing as t
from pathlib import Path

import psycopg
import pytest
from airbyte_support import configured_catalog, discover_catalog, run_source
from conftest import (
    ACCOUNT,
    DATA_START,
    KEYS,
    NOW,
    PROJECTS,
    iso,
    live_conversations,
    make_emulator,
    tap_config,
)
from pipeline_support import (
    PYAIRBYTE,
    ROOT,
    build_wheel,
    installed_source,
    postgres_target_config,
    postgres_url,
    require_venv,
    run_pipeline,
    untyped_turns_catalog,
)
from psycopg.rows import dict_row
from tap_runner import TAP_COMMAND, discover, parse_messages

from tap_polyai.emulator import Emulator, generate_conversations, parse_ts
from tap_polyai.tap import TapPolyAI

pytestmark = [pytest.mark.pipeline, pytest.mark.postgres]

DRIVER = Path(__file__).parent / "pyairbyte_driver.py"
# Every stream the tap has; PyAirbyte selects them all (conversation_details included).
PRIMARY_KEYS = {
    "conversations": ("id",),
    "conversation_turns": ("conversation_id", "turn_index"),
    "conversation_details": ("conversation_id",),
}


@pytest.fixture(scope="module")
def pyairbyte() -> Path:
    return require_venv("pyairbyte", PYAIRBYTE, timeout=1800) / "bin" / "python"


@pytest.fixture(scope="module")
def source_polyai(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Path]:
    yield from installed_source(build_wheel(tmp_path_factory.mktemp("wheel")))


class PyAirbyte:
    """The driver script in PyAirbyte's venv, with its project (and cache) in `home`."""

    def __init__(self, python: Path, source: Path, home: Path) -> None:
        self.python, self.source, self.home = python, source, home

    def run(self, command: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "DO_NOT_TRACK": "1",  # no usage reports
            "AIRBYTE_OFFLINE_MODE": "1",  # no connector registry download
            "AIRBYTE_PROJECT_DIR": str(self.home),
        }
        return subprocess.run(
            [str(self.python), str(DRIVER), command, *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=self.home,
            timeout=600,
            check=False,
        )

    def ok(self, command: str, config: dict[str, t.Any], source: Path | None = None) -> t.Any:
        path = self.home / "config.json"
        path.write_text(json.dumps(config))
        done = self.run(command, str(source or self.source), str(path))
        assert done.returncode == 0, done.stderr[-4000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    def rows(self, *database: str) -> dict[str, list[dict[str, t.Any]]]:
        done = self.run("rows", *database)
        assert done.returncode == 0, done.stderr[-4000:]
        return t.cast(dict[str, list[dict[str, t.Any]]], json.loads(done.stdout))


def _timestamp(value: str | dt.datetime) -> str:
    parsed = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:  # DuckDB TIMESTAMP: UTC without a zone
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc).isoformat()


def normalize(row: dict[str, t.Any], schema: dict[str, t.Any]) -> dict[str, t.Any]:
    """A row or record as comparable values, by the stream's schema: timestamps in UTC, numbers
    as floats, JSON text parsed; loader columns (`_airbyte_*`, `_sdc_*`) and nulls left out."""
    out: dict[str, t.Any] = {}
    for name, raw in row.items():
        if raw is None or name.startswith(("_airbyte_", "_sdc_")):
            continue
        prop = schema["properties"][name]
        types = prop.get("type") or []
        types = set([types] if isinstance(types, str) else types)
        value = raw
        if isinstance(raw, str) and {"object", "array"} & types:
            value = json.loads(raw)
        elif isinstance(raw, (str, dt.datetime)) and prop.get("format") == "date-time":
            value = _timestamp(raw)
        elif {"number", "integer"} & types and not isinstance(raw, bool):
            value = float(raw)
        out[name] = value
    return out


def table(
    rows: dict[str, list[dict[str, t.Any]]], stream: str, schemas: dict[str, dict[str, t.Any]]
) -> dict[tuple[t.Any, ...], dict[str, t.Any]]:
    """One stream's rows by primary key; a duplicate key fails (the upserts must dedupe)."""
    keyed = {
        tuple(r[k] for k in PRIMARY_KEYS[stream]): normalize(r, schemas[stream])
        for r in rows[stream]
    }
    assert len(keyed) == len(rows[stream]), f"{stream}: duplicate primary keys"
    return keyed


def singer_warehouse(
    config: dict[str, t.Any],
    target: Path,
    database: str,
    workdir: Path,
    state: dict[str, t.Any] | None = None,
) -> tuple[dict[str, list[dict[str, t.Any]]], dict[str, t.Any] | None]:
    """tap-polyai | target-postgres into `database` (schema polyai), as meltano.yml loads it:
    every table's rows, and the target's last STATE."""
    final_state = run_pipeline(
        TAP_COMMAND,
        config,
        target,
        postgres_target_config(database, "polyai"),
        workdir,
        state=state,
        catalog=untyped_turns_catalog(discover(config)),
    )
    with psycopg.connect(postgres_url(database), row_factory=dict_row) as db:
        rows = {
            stream: db.execute(f'SELECT * FROM polyai."{stream}"').fetchall()
            for stream in PRIMARY_KEYS
        }
    return rows, final_state


def add_new_late_and_finished(emulator: Emulator) -> dt.datetime:
    """Seven hours on: every running call has ended, late ones arrived, new ones happened."""
    later = NOW + dt.timedelta(hours=7)
    for seed, project in enumerate(PROJECTS, start=10):
        emulator.add_conversations(
            ACCOUNT,
            project,
            generate_conversations(ACCOUNT, project, count=40, start=NOW, end=later, seed=seed),
        )
    emulator.clock.set(later)
    return later


def assert_same_warehouse(
    pyairbyte_rows: dict[str, list[dict[str, t.Any]]],
    singer_rows: dict[str, list[dict[str, t.Any]]],
    emulator: Emulator,
    schemas: dict[str, dict[str, t.Any]],
) -> None:
    truth = live_conversations(emulator)
    for stream in PRIMARY_KEYS:
        mine = table(pyairbyte_rows, stream, schemas)
        assert mine == table(singer_rows, stream, schemas), stream
    conversations = table(pyairbyte_rows, "conversations", schemas)
    assert set(conversations) == {(i,) for i in truth}
    assert {k: r["in_progress"] for k, r in conversations.items()} == {
        (i,): r["in_progress"] for i, r in truth.items()
    }
    turns = table(pyairbyte_rows, "conversation_turns", schemas)
    assert len(turns) == sum(len(r.get("turns") or ()) for r in truth.values())


def _starts(emulator: Emulator, project: str) -> list[dt.datetime]:
    return [
        parse_ts(r["params"]["start_time"][0])
        for r in emulator.requests
        if r["project_id"] == project and "start_time" in r["params"]  # list, not detail
    ]


def test_pyairbyte_reads_all_then_only_what_changed(
    pyairbyte: Path, source_polyai: Path, target_postgres: Path, database: str, tmp_path: Path
) -> None:
    airbyte = PyAirbyte(pyairbyte, source_polyai, tmp_path)
    with make_emulator() as emulator:
        config = tap_config(emulator)
        schemas = {name: s.schema for name, s in TapPolyAI(config=config).streams.items()}
        assert airbyte.ok("check", config) == {"check": "ok"}
        first = airbyte.ok("read", config)
        assert set(first["streams"]) >= set(PRIMARY_KEYS)
        singer, singer_state = singer_warehouse(config, target_postgres, database, tmp_path / "1")
        assert_same_warehouse(airbyte.rows(), singer, emulator, schemas)
        held = {
            p["context"]["project_id"]: p["replication_key_value"]
            for p in t.cast(dict, singer_state)["bookmarks"]["conversations"]["partitions"]
        }

        later = add_new_late_and_finished(emulator)
        emulator.reset_stats()
        config = tap_config(emulator, end_date=iso(later))
        second = airbyte.ok("read", config)  # from the state PyAirbyte stored in its cache
        # Only the held / lookback range is read again: never the history.
        for project in PROJECTS:
            assert min(_starts(emulator, project)) == parse_ts(held[project]) - dt.timedelta(
                minutes=60
            )
        assert 0 < second["processed"] < first["processed"] / 2
        singer, _ = singer_warehouse(
            config, target_postgres, database, tmp_path / "2", state=singer_state
        )
        assert_same_warehouse(airbyte.rows(), singer, emulator, schemas)


KILLER = """#!{python}
# source-polyai, SIGKILLed (and this wrapper with it) after {states} STATE messages of a read;
# what it wrote is kept in {tee}.
import os, signal, subprocess, sys
child = subprocess.Popen([{source!r}, *sys.argv[1:]], stdout=subprocess.PIPE)
seen = 0
with open({tee!r}, "ab") as tee:
    for line in child.stdout:
        sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()
        tee.write(line)
        tee.flush()
        seen += line.startswith(b'{{"type":"STATE"')
        if sys.argv[1] == "read" and seen == {states}:
            child.kill()
            child.wait()
            os.kill(os.getpid(), signal.SIGKILL)
sys.exit(child.wait())
"""


def _bookmarks(stream_state: dict[str, t.Any]) -> dict[str, dt.datetime]:
    return {
        p["context"]["project_id"]: parse_ts(p["replication_key_value"])
        for p in stream_state["partitions"]
        if p.get("replication_key_value")
    }


def test_a_read_killed_mid_way_resumes_without_loss(
    pyairbyte: Path, source_polyai: Path, target_postgres: Path, database: str, tmp_path: Path
) -> None:
    """PyAirbyte commits a read's rows and state only when the read ends well: after a kill,
    the next read starts again from the previous read's state and loses nothing. The platform
    commits each STATE as it comes: the killed run's last STATE resumes at its checkpoint."""
    airbyte = PyAirbyte(pyairbyte, source_polyai, tmp_path)
    tee = tmp_path / "killed.jsonl"
    killer = tmp_path / "source-polyai-killed"
    killer.write_text(
        KILLER.format(python=sys.executable, source=str(source_polyai), states=8, tee=str(tee))
    )
    killer.chmod(0o755)
    with make_emulator() as emulator:
        config = tap_config(emulator)
        schemas = {name: s.schema for name, s in TapPolyAI(config=config).streams.items()}
        airbyte.ok("read", config)
        config = tap_config(emulator, end_date=iso(add_new_late_and_finished(emulator)))
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config))
        killed = airbyte.run("read", str(killer), str(path))
        assert killed.returncode != 0
        assert "Exit Code: -9" in killed.stderr, killed.stderr[-3000:]
        written = parse_messages(tee.read_bytes())
        states = [
            m["state"]["stream"]["stream_state"]
            for m in written
            if m["type"] == "STATE"
            and m["state"]["stream"]["stream_descriptor"]["name"] == "conversations"
        ]
        stored, checkpoint = _bookmarks(states[0]), _bookmarks(states[-1])  # given, then reached
        assert checkpoint != stored

        emulator.reset_stats()
        airbyte.ok("read", config)
        for project in PROJECTS:  # from the state of the last read that ended well
            assert min(_starts(emulator, project)) == stored[project] - dt.timedelta(minutes=60)
        singer, _ = singer_warehouse(config, target_postgres, database, tmp_path / "singer")
        assert_same_warehouse(airbyte.rows(), singer, emulator, schemas)

        # As the platform would: resume from the killed run's own last STATE per stream.
        last = {
            m["state"]["stream"]["stream_descriptor"]["name"]: m["state"]
            for m in written
            if m["type"] == "STATE"
        }
        emulator.reset_stats()
        catalog = configured_catalog(discover_catalog(config, tmp_path))
        resumed = run_source(
            "read",
            tmp_path,
            config=config,
            catalog=catalog,
            state=list(last.values()),
            executable=source_polyai,
        )
        assert resumed.returncode == 0, resumed.logs
        project, mark = next(iter(checkpoint.items()))
        assert min(_starts(emulator, project)) == mark - dt.timedelta(minutes=60)
        delivered = {
            m["record"]["data"]["id"]
            for m in written
            if m["type"] == "RECORD" and m["record"]["stream"] == "conversations"
        }
        delivered |= {r["id"] for r in resumed.records()}
        due = {  # everything the killed run was to read: from its state's bookmarks on
            i
            for i, r in live_conversations(emulator).items()
            if parse_ts(r["started_at"]) >= stored[r["project_id"]] - dt.timedelta(minutes=60)
        }
        assert due
        assert delivered >= due


def test_the_docs_example_runs_as_printed(
    pyairbyte: Path, source_polyai: Path, tmp_path: Path
) -> None:
    """docs/airbyte.md's Python block, with only what a reader replaces filled in (as
    tests/test_docs_commands.py fills the Quickstart's): PyAirbyte finds `source-polyai` on
    PATH, and the example sets DO_NOT_TRACK and AIRBYTE_OFFLINE_MODE itself."""
    (example,) = re.findall(
        r"```python\n(.*?)```", (ROOT / "docs" / "airbyte.md").read_text(), re.S
    )
    with make_emulator() as emulator:
        for placeholder, value in (
            ("YOUR-API-KEY", KEYS["PROJECT-alpha"]),
            ("ws-XXXXXXXX", ACCOUNT),
            ("PROJECT-XXXXXXXX", "PROJECT-alpha"),
            ('"region": "uk-1"', f'"api_url": "{emulator.base_url}"'),
            ("2026-01-01T00:00:00Z", iso(DATA_START)),
        ):
            assert placeholder in example, placeholder
            example = example.replace(placeholder, value)
        (tmp_path / "example.py").write_text(example)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRBYTE_", "DO_NOT"))}
        env["PATH"] = f"{source_polyai.parent}{os.pathsep}{env['PATH']}"
        done = subprocess.run(
            [str(pyairbyte), "example.py"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-4000:]
        alpha = [
            r for r in live_conversations(emulator).values() if r["project_id"] == "PROJECT-alpha"
        ]
    turns = sum(len(r.get("turns") or ()) for r in alpha)
    assert done.stdout.splitlines()[-2:] == [
        f"conversation_turns {turns}",
        f"conversations {len(alpha)}",
    ]
    assert (tmp_path / ".cache" / "default_cache" / "default_cache.duckdb").exists()
