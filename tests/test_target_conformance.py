"""Every record of a realistic sync survives the SDK's target-side conformance.

SDK-based loaders (meltanolabs-target-snowflake calls it per record in `bulk_insert_records`)
run `conform_record_data_types` at RECURSIVE level against the SCHEMA the tap announced. Any
schema shape the SDK cannot walk (an object schema without `properties` raised `KeyError`)
crashes the load; this runs the same function in-process on every record of both streams,
against the announced SCHEMA messages (not a copy), so a future schema change fails here first.
"""

from __future__ import annotations

import logging
import typing as t

import pytest
from conftest import tap_config
from singer_sdk.helpers._typing import conform_record_data_types
from singer_sdk.helpers.conform import TypeConformanceLevel
from tap_runner import discover, run_tap, selecting

from tap_polyai.emulator import Emulator


def _object_schemas(schema: t.Any, path: str = "") -> t.Iterator[tuple[str, dict[str, t.Any]]]:
    """Every (path, sub-schema) that describes an object, at any depth."""
    if isinstance(schema, dict):
        types = schema.get("type", [])
        if "object" in (types if isinstance(types, list) else [types]):
            yield path, schema
        for key, value in schema.items():
            yield from _object_schemas(value, f"{path}/{key}")
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            yield from _object_schemas(value, f"{path}[{i}]")


def test_every_record_survives_recursive_conformance(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    config = tap_config(emulator)
    run = run_tap(config, catalog=selecting(discover(config), "conversation_details"))
    schemas = {m["stream"]: m["schema"] for m in run.of_type("SCHEMA")}
    assert set(schemas) == {"conversations", "conversation_turns", "conversation_details"}
    conversations = run.records()
    turns = run.records("conversation_turns")
    details = run.records("conversation_details")
    assert any(r["function_events"] for r in details)
    # The sync carries the shapes that matter: entities, nested state, hidden transcripts,
    # in-progress conversations.
    assert len(conversations) > 400
    assert any(e for r in turns for e in r["entities"])
    assert any(isinstance(r["state"].get("booking"), dict) for r in conversations)
    assert any(not r["turns"] and r["num_turns"] for r in conversations)
    assert any(r["in_progress"] for r in conversations)

    logger = logging.getLogger("target-conformance")
    checked = 0
    with caplog.at_level(logging.WARNING, logger="target-conformance"):
        for stream, records in (
            ("conversations", conversations),
            ("conversation_turns", turns),
            ("conversation_details", details),
        ):
            for record in records:
                conformed = conform_record_data_types(
                    stream_name=stream,
                    record=record,
                    schema=schemas[stream],
                    level=TypeConformanceLevel.RECURSIVE,
                    logger=logger,
                )
                assert conformed == record, (stream, record.get("id"))
                checked += 1
    # Nothing was dropped as "not found in catalog schema".
    dropped = [r.getMessage() for r in caplog.records if r.name == "target-conformance"]
    assert not dropped
    assert checked == len(conversations) + len(turns) + len(details) > 3000


def test_every_announced_object_schema_declares_properties(emulator: Emulator) -> None:
    """The shape rule behind the test above, for branches a dataset might not reach."""
    schemas = {s["tap_stream_id"]: s["schema"] for s in discover(tap_config(emulator))["streams"]}
    assert set(schemas) == {"conversations", "conversation_turns", "conversation_details"}
    for stream, schema in schemas.items():
        for path, sub in _object_schemas(schema):
            assert "properties" in sub, f"{stream}{path} has no 'properties'"
