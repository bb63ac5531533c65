"""Stale turn rows (issue #10): a transcript PolyAI hides after it was loaded.

With `delete_stale_turns`, a re-read finished conversation whose `turns` are fewer than its
`num_turns` gets a tombstone row per missing turn index (`_sdc_deleted_at` set, turn fields
null). Loaded for real: target-duckdb with `hard_delete` deletes the stale rows;
meltanolabs-target-postgres (which applies `hard_delete` only to ACTIVATE_VERSION) marks them
with `_sdc_deleted_at` and blanks their text.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import typing as t
from pathlib import Path

import psycopg
import pytest

from tap_polyai.emulator import Clock, Emulator, StoredConversation, generate_conversations
from tests.conftest import ACCOUNT, DATA_START, KEYS, NOW, tap_config
from tests.pipeline_support import (
    TARGET_DUCKDB,
    postgres_target_config,
    postgres_url,
    require_venv,
    run_pipeline,
    untyped_turns_catalog,
)
from tests.tap_runner import TAP_COMMAND, assert_records_match_announced_schemas, discover, run_tap

PROJECT = "PROJECT-alpha"
SCHEMA = "polyai"


def emulator_with(conversations: list[StoredConversation]) -> Emulator:
    emulator = Emulator(clock=Clock(NOW), api_keys={(ACCOUNT, PROJECT): KEYS[PROJECT]})
    emulator.add_conversations(ACCOUNT, PROJECT, conversations)
    return emulator


def generated() -> list[StoredConversation]:
    return generate_conversations(
        ACCOUNT, PROJECT, count=60, start=DATA_START, end=NOW, seed=7, in_progress=2
    )


def hide_transcripts(emulator: Emulator, stored: list[StoredConversation]) -> set[str]:
    """PolyAI hides the transcripts of some finished conversations: `turns` [], `num_turns` kept."""
    hidden = [
        c
        for c in stored
        if c.record["turns"] and c.record["environment"] == "live" and not c.is_in_progress(NOW)
    ][::5]
    emulator.add_conversations(
        ACCOUNT,
        PROJECT,
        [dataclasses.replace(c, record={**c.record, "turns": []}) for c in hidden],
    )
    return {c.id for c in hidden}


def config_for(emulator: Emulator, **overrides: t.Any) -> dict[str, t.Any]:
    return tap_config(
        emulator,
        projects=[{"account_id": ACCOUNT, "project_id": PROJECT}],
        api_key=KEYS[PROJECT],
        **overrides,
    )


def test_tombstones_for_turns_that_no_longer_exist() -> None:
    stored = generated()
    with emulator_with(stored) as emulator:
        hidden = hide_transcripts(emulator, stored)
        assert hidden
        run = run_tap(config_for(emulator, delete_stale_turns=True))
        assert_records_match_announced_schemas(run)
        conversations = {r["id"]: r for r in run.records()}
        rows = run.records("conversation_turns")
        tombstones = [r for r in rows if r.get("_sdc_deleted_at")]
        expected = {
            (cid, i)
            for cid, c in conversations.items()
            if not c["in_progress"]
            for i in range(len(c["turns"] or []), c["num_turns"] or 0)
        }
        assert {(r["conversation_id"], r["turn_index"]) for r in tombstones} == expected
        assert {cid for cid, _ in expected} >= hidden
        assert all(
            set(r)
            == {
                "conversation_id",
                "turn_index",
                "account_id",
                "project_id",
                "started_at",
                "_sdc_deleted_at",
            }
            for r in tombstones
        )
        # Off (the default): no tombstone at all.
        plain = run_tap(config_for(emulator))
        assert not [r for r in plain.records("conversation_turns") if "_sdc_deleted_at" in r]


def _load_twice(
    target: Path, target_config: dict[str, t.Any], tmp_path: Path
) -> tuple[dict[str, dict[str, t.Any]], set[str]]:
    """Load everything, hide some transcripts, load again: (the API's truth, hidden ids)."""
    stored = generated()
    with emulator_with(stored) as emulator:
        config = config_for(emulator, delete_stale_turns=True)
        catalog = untyped_turns_catalog(discover(config))
        run_pipeline(TAP_COMMAND, config, target, target_config, tmp_path / "run1", catalog=catalog)
        hidden = hide_transcripts(emulator, stored)
        assert hidden
        run_pipeline(TAP_COMMAND, config, target, target_config, tmp_path / "run2", catalog=catalog)
        truth = {
            c["id"]: c for c in emulator.visible(ACCOUNT, PROJECT) if c["environment"] == "live"
        }
    return truth, hidden


@pytest.mark.postgres
@pytest.mark.pipeline
def test_postgres_marks_stale_turn_rows_deleted(
    target_postgres: Path, database: str, tmp_path: Path
) -> None:
    target_config = postgres_target_config(
        database,
        SCHEMA,
        hard_delete=True,  # applies to ACTIVATE_VERSION only: rows are marked
    )
    truth, hidden = _load_twice(target_postgres, target_config, tmp_path)
    with psycopg.connect(postgres_url(database)) as db:
        rows = db.execute(
            f"select conversation_id, turn_index, user_input, _sdc_deleted_at "
            f"from {SCHEMA}.conversation_turns"
        ).fetchall()
    live_rows = {(r[0], r[1]) for r in rows if r[3] is None}
    deleted = {(r[0], r[1]) for r in rows if r[3] is not None}
    assert live_rows == {(cid, i) for cid, c in truth.items() for i in range(len(c["turns"]))}
    # Marked: every turn index a finished conversation counts but no longer shows (including
    # transcripts that were never visible: those rows carry nothing but the marker).
    assert deleted == {
        (cid, i)
        for cid, c in truth.items()
        if not c["in_progress"]
        for i in range(len(c["turns"]), c["num_turns"])
    }
    assert hidden <= {cid for cid, _ in deleted}
    assert all(r[2] is None for r in rows if r[3] is not None), "hidden text is gone"


_DUMP = """
import json, sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print(json.dumps(con.execute(
    "select conversation_id, turn_index from polyai.conversation_turns").fetchall()))
"""


@pytest.mark.pipeline
def test_duckdb_hard_delete_removes_stale_turn_rows(tmp_path: Path) -> None:
    venv = require_venv("target-duckdb", TARGET_DUCKDB)
    path = tmp_path / "stale.duckdb"
    target_config = {"filepath": str(path), "default_target_schema": SCHEMA, "hard_delete": True}
    truth, hidden = _load_twice(venv / "bin" / "target-duckdb", target_config, tmp_path)
    dump = subprocess.run(
        [str(venv / "bin" / "python"), "-c", _DUMP, str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert dump.returncode == 0, dump.stderr[-2000:]
    rows = {(cid, index) for cid, index in json.loads(dump.stdout)}
    expected = {(cid, i) for cid, c in truth.items() for i in range(len(c["turns"]))}
    assert rows == expected
    assert not {cid for cid, _ in rows} & hidden
