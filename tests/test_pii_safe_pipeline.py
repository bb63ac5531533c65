"""Switching an existing raw pipeline to the PII-safe job, as meltano.yml ships it.

A target never drops columns: loading PII-safe records into the raw job's tables kept every
transcript and phone number there. The PII-safe job therefore loads into its own schema. This
test loads raw data into PostgreSQL first, then runs the PII-safe configuration read from
meltano.yml (its stream maps and its loader's schema; only the salt comes from "the
environment"), and scans every text and JSON column of every table in the PII-safe schema
for every phone number and transcript string the emulator holds. The same scan of the raw
schema must find them, so the scan itself is proven to work.
"""

from __future__ import annotations

import typing as t
from pathlib import Path

import psycopg
import pytest
import yaml
from singer_sdk.exceptions import ConfigValidationError

from tap_polyai.emulator import Emulator
from tap_polyai.tap import TapPolyAI
from tests.conftest import ACCOUNT, PROJECTS, make_emulator, tap_config
from tests.pipeline_support import (
    ROOT,
    postgres_target_config,
    postgres_url,
    run_pipeline,
    untyped_turns_catalog,
)
from tests.tap_runner import TAP_COMMAND, discover

pytestmark = [pytest.mark.postgres, pytest.mark.pipeline]

JOB = "polyai-pii-safe-to-postgres"
TEXT_TYPES = ("text", "character varying", "jsonb", "json", "ARRAY")
TURN_TEXT = (
    "user_input",
    "user_input_dtmf",
    "translated_user_input",
    "agent_response",
    "english_agent_response",
)


def _plugin(project: dict[str, t.Any], kind: str, name: str) -> dict[str, t.Any]:
    return next(p for p in project["plugins"][kind] if p["name"] == name)


def _env_config(project: dict[str, t.Any], env: str, kind: str, name: str) -> dict[str, t.Any]:
    environment = next(e for e in project["environments"] if e["name"] == env)
    plugins = environment.get("config", {}).get("plugins", {}).get(kind, [])
    return next((p.get("config", {}) for p in plugins if p["name"] == name), {})


def shipped_pii_job() -> tuple[dict[str, t.Any], str, str]:
    """(extractor config, raw schema, PII-safe schema) of the prod environment in meltano.yml."""
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    job = next(j for j in project["jobs"] if j["name"] == JOB)
    extractor, loader = job["tasks"][0].split()
    tap = _plugin(project, "extractors", extractor)
    assert tap["inherit_from"] == "tap-polyai"
    target = _plugin(project, "loaders", loader)

    def schema(name: str, plugin: dict[str, t.Any]) -> str:
        prod = _env_config(project, "prod", "loaders", name)
        base = plugin.get("config", {}).get("default_target_schema")
        setting = next(
            (
                s.get("value")
                for s in plugin.get("settings", [])
                if s["name"] == "default_target_schema"
            ),
            None,
        )
        return str(prod.get("default_target_schema") or base or setting)

    raw_schema = schema("target-postgres", _plugin(project, "loaders", "target-postgres"))
    return tap["config"], raw_schema, schema(loader, target)


def secrets(emulator: Emulator) -> set[str]:
    """Every phone number and transcript string the API holds, in any environment."""
    found: set[str] = set()
    for project in PROJECTS:
        for conversation in emulator.visible(ACCOUNT, project):
            found.update(conversation.get(f) or "" for f in ("from_number", "to_number"))
            state = conversation.get("state") or {}
            found.update(str(state.get(k) or "") for k in ("from_", "caller_name"))
            for turn in conversation.get("turns") or []:
                found.update(turn.get(f) or "" for f in TURN_TEXT)
    found.discard("")
    return found


def _leaves(value: t.Any) -> t.Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)


def scan(db: psycopg.Connection[t.Any], schema: str, wanted: set[str]) -> tuple[set[str], int]:
    """Which of `wanted` occur in any text or JSON value in `schema`; and how many rows."""
    columns = db.execute(
        "select table_name, column_name from information_schema.columns "
        "where table_schema = %s and data_type = any(%s) order by 1, 2",
        (schema, list(TEXT_TYPES)),
    ).fetchall()
    assert columns, f"no text or JSON column in schema {schema}"
    leaves: set[str] = set()
    for table, column in columns:
        for (value,) in db.execute(f'select "{column}" from "{schema}"."{table}"'):
            leaves.update(_leaves(value))
    blob = "\n".join(leaves)
    # Short values (a DTMF digit) could occur by chance inside a hash: match them exactly.
    hits = {s for s in wanted if (s in blob if len(s) >= 8 else s in leaves)}
    tables = {table for table, _ in columns}
    rows = sum(
        db.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[0]  # type: ignore[index]
        for table in tables
    )
    return hits, rows


def test_meltano_yml_ships_a_placeholder_salt_that_the_tap_refuses() -> None:
    extractor_config, raw_schema, pii_schema = shipped_pii_job()
    assert pii_schema != raw_schema
    with make_emulator() as emulator:
        config = tap_config(emulator, **extractor_config)
        with pytest.raises(ConfigValidationError) as failure:
            TapPolyAI(config=config)
        assert "stream_map_config.salt" in " ".join(failure.value.errors)
        assert emulator.requests == []


def test_switching_to_the_pii_safe_job_leaves_no_phone_number_or_transcript(
    target_postgres: Path, database: str, tmp_path: Path
) -> None:
    extractor_config, raw_schema, pii_schema = shipped_pii_job()
    url = postgres_url(database)

    def target(schema: str) -> dict[str, t.Any]:
        return postgres_target_config(database, schema)

    with make_emulator() as emulator, psycopg.connect(url, autocommit=True) as db:
        raw_config = tap_config(emulator)
        catalog = untyped_turns_catalog(discover(raw_config))  # meltano.yml's `schema` extra
        run_pipeline(
            TAP_COMMAND,
            raw_config,
            target_postgres,
            target(raw_schema),
            tmp_path / "raw",
            catalog=catalog,
        )
        # The switch: the same project, the extractor and loader of the PII-safe job.
        map_config = {**extractor_config["stream_map_config"], "salt": "from-the-environment"}
        pii_config = {**raw_config, **extractor_config, "stream_map_config": map_config}
        run_pipeline(
            TAP_COMMAND,
            pii_config,
            target_postgres,
            target(pii_schema),
            tmp_path / "pii",
            catalog=catalog,
        )

        wanted = secrets(emulator)
        assert len(wanted) > 100
        raw_hits, _ = scan(db, raw_schema, wanted)
        assert len(raw_hits) > len(wanted) // 2, "the scan finds what the raw load holds"

        hits, rows = scan(db, pii_schema, wanted)
        live = sum(
            1 for p in PROJECTS for c in emulator.visible(ACCOUNT, p) if c["environment"] == "live"
        )
        assert rows > live, "conversations and turn rows were loaded"
        assert hits == set(), f"{len(hits)} raw value(s) in {pii_schema}"
