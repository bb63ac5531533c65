"""Schema drift (issue #10): the sync never blocks and never drops a value.

Driven through real HTTP by the emulator's drift mode (`tap_polyai/emulator/drift.py`):
fractional durations and counts, numeric strings, "true"/"false", integral floats, an object
where a boolean is declared, a new top-level object field and a new turn field.
"""

from __future__ import annotations

import logging
import re
import typing as t

import pytest
from conftest import ACCOUNT, PROJECTS, drift_emulator, tap_config
from singer_sdk.helpers._typing import conform_record_data_types
from singer_sdk.helpers.conform import TypeConformanceLevel
from tap_runner import assert_records_match_announced_schemas, run_tap

from tap_polyai.drift import InvalidConversationError
from tap_polyai.emulator import Emulator
from tap_polyai.emulator.drift import NEW_FIELD, NEW_TURN_FIELD
from tap_polyai.records import RecordConformer

COUNTS = ("num_turns", "num_silences", "num_ood")
TURN_BOOLEANS = ("is_ood", "is_silence", "barge_in")


@pytest.fixture
def drifting() -> t.Iterator[Emulator]:
    with drift_emulator(count=120) as emulator:
        yield emulator


def expected_counts(raw: list[dict[str, t.Any]]) -> tuple[int, int, int]:
    """(coerced, widened, nulled), counted independently from the API's raw values."""
    coerced = widened = nulled = 0
    for conv in raw:
        # Counts and durations are declared `number`: floats fit, strings are coerced.
        coerced += sum(isinstance(conv.get(name), str) for name in COUNTS)
        if isinstance(conv.get("handoff"), dict):
            nulled += 1
        for turn in conv.get("turns") or ():
            coerced += isinstance(turn.get("latency"), str)
            coerced += sum(isinstance(turn.get(name), str) for name in TURN_BOOLEANS)
    return coerced, widened, nulled


def live(emulator: Emulator, project: str) -> dict[str, dict[str, t.Any]]:
    return {c["id"]: c for c in emulator.visible(ACCOUNT, project) if c["environment"] == "live"}


def test_drift_is_delivered_whole_and_counted(
    drifting: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    run = run_tap(tap_config(drifting))
    assert_records_match_announced_schemas(run)

    records = {r["id"]: r for r in run.records()}
    turn_rows = {
        (r["conversation_id"], r["turn_index"]): r for r in run.records("conversation_turns")
    }
    for project in PROJECTS:
        raw = live(drifting, project)
        assert raw.keys() <= records.keys(), "every conversation is delivered"
        assert sum(1 for r in records.values() if r["project_id"] == project) == len(raw)
        for conversation_id, conv in raw.items():
            record = records[conversation_id]
            for name in COUNTS:
                assert record[name] == float(conv[name])
                assert not isinstance(record[name], str)
            assert record["total_duration"] == conv["total_duration"]
            assert record["polyai_duration"] == conv["polyai_duration"]
            handoff = conv["handoff"]
            assert record["handoff"] == (None if isinstance(handoff, dict) else handoff)
            assert record.get(NEW_FIELD) == conv.get(NEW_FIELD)
            assert len(record["turns"]) == len(conv["turns"])
            for index, (got, sent) in enumerate(zip(record["turns"], conv["turns"], strict=True)):
                assert got["latency"] == float(sent["latency"])
                for name in TURN_BOOLEANS:
                    expected = sent[name] if isinstance(sent[name], bool) else sent[name] == "true"
                    assert got[name] is expected
                assert got.get(NEW_TURN_FIELD) == sent.get(NEW_TURN_FIELD)
                row = turn_rows[(conversation_id, index)]
                assert row.get(NEW_TURN_FIELD) == sent.get(NEW_TURN_FIELD)
                assert row["latency"] == float(sent["latency"])
        assert any(NEW_FIELD in c for c in raw.values())
        assert any(isinstance(c["handoff"], dict) for c in raw.values())

        coerced, widened, nulled = expected_counts(list(raw.values()))
        assert coerced
        assert widened == 0  # nothing the tap declares is `integer` (schema.py)
        assert nulled
        summary = (
            f"Project {ACCOUNT}/{project}: schema drift: {coerced} value(s) coerced, "
            f"{widened} widened, {nulled} nulled; new fields: "
        )
        (line,) = [m for m in caplog.messages if m.startswith(summary)]
        assert set(line[len(summary) :].split(", ")) == {NEW_FIELD, f"turns[].{NEW_TURN_FIELD}"}
    assert len(turn_rows) == sum(len(r["turns"]) for r in records.values())


def test_new_fields_and_widened_types_are_announced_before_use(drifting: Emulator) -> None:
    run = run_tap(tap_config(drifting))
    first_schema = run.of_type("SCHEMA", "conversations")[0]["schema"]
    assert NEW_FIELD not in first_schema["properties"]
    final = {m["stream"]: m["schema"] for m in run.of_type("SCHEMA")}
    conversation = final["conversations"]["properties"]
    assert conversation[NEW_FIELD]["type"][0] == "object"
    assert conversation["turns"]["items"]["properties"][NEW_TURN_FIELD]["type"][0] == "number"
    assert final["conversation_turns"]["properties"][NEW_TURN_FIELD]["type"][0] == "number"
    # Each stream is announced again only when its schema changes: a handful of times.
    assert len(run.of_type("SCHEMA", "conversations")) <= 4
    assert len(run.of_type("SCHEMA", "conversation_turns")) <= 3
    # The first record carrying each new field follows a SCHEMA that declares it.
    seen: dict[str, set[str]] = {}
    for message in run.messages:
        if message["type"] == "SCHEMA":
            seen[message["stream"]] = set(message["schema"]["properties"])
        elif message["type"] == "RECORD":
            assert message["record"].keys() <= seen[message["stream"]]


def test_mismatch_warnings_name_conversation_and_path_never_the_value(
    drifting: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    run_tap(tap_config(drifting))
    nulled = [m for m in caplog.messages if "delivered as null" in m]
    raw = live(drifting, PROJECTS[0]) | live(drifting, PROJECTS[1])
    objects = {cid for cid, c in raw.items() if isinstance(c["handoff"], dict)}
    named = {re.search(r"conversation (\S+):", m).group(1) for m in nulled}  # type: ignore[union-attr]
    assert named == objects
    assert all("`handoff` is not boolean" in m for m in nulled)
    for conversation_id in objects:
        reason = raw[conversation_id]["handoff"]["reason"]
        assert not any(reason in m for m in caplog.messages if conversation_id in m)


def test_fail_mode_stops_with_the_conversation_and_the_path(drifting: Emulator) -> None:
    with pytest.raises(InvalidConversationError) as error:
        run_tap(tap_config(drifting, on_schema_mismatch="fail"))
    message = str(error.value)
    assert re.search(r"conversation CA\w+ does not match the schema: `handoff`", message)
    assert "on_schema_mismatch" in message


def conform(raw: dict[str, t.Any], conformer: RecordConformer | None = None) -> dict[str, t.Any]:
    conformer = conformer or RecordConformer(logging.getLogger("test"))
    return conformer.conform({"id": "CA1", "started_at": "2026-01-01T00:00:00Z", **raw}, "p")


def test_lossless_coercions() -> None:
    conformer = RecordConformer(logging.getLogger("test"))
    record = conform(
        {
            "num_turns": "12",
            "num_ood": 3.0,
            "handoff": "TRUE",
            "channel": 5,
            "metrics": {"csat": 4, "steps": ["a", 1]},
            "turns": [{"latency": "1e-2", "is_ood": "false", "intents": ["x", 2.5]}],
        },
        conformer,
    )
    assert record["num_turns"] == 12
    assert type(record["num_turns"]) is int
    assert record["num_ood"] == 3.0  # a float fits `number`: nothing to coerce
    assert record["handoff"] is True
    assert record["channel"] == "5"
    assert record["metrics"] == {"csat": "4", "steps": ["a", "1"]}
    assert record["turns"] == [{"latency": 0.01, "is_ood": False, "intents": ["x", "2.5"]}]
    counts = conformer.drift.counts("p")
    assert (counts.coerced, counts.widened, counts.nulled) == (8, 0, 0)


def test_what_cannot_be_represented_becomes_null() -> None:
    conformer = RecordConformer(logging.getLogger("test"))
    record = conform(
        {
            "handoff": {"x": 1},
            "num_turns": "many",
            "channel": ["a"],
            "state": [1, 2],
            "turns": [{"intents": ["ok", {"x": 1}]}, "not a turn", {"is_silence": "yes"}],
        },
        conformer,
    )
    assert record["handoff"] is None
    assert record["num_turns"] is None
    assert record["channel"] is None
    assert record["state"] is None
    # A turn that is not an object stays as an empty turn: the next turn keeps its index.
    assert record["turns"] == [{"intents": None}, {}, {"is_silence": None}]
    assert conformer.drift.counts("p").nulled == 7


def test_a_new_field_keeps_the_type_of_its_first_value() -> None:
    conformer = RecordConformer(logging.getLogger("test"))
    assert conform({"score": 3}, conformer)["score"] == 3  # declared `number`, not integer
    assert conform({"score": "4"}, conformer)["score"] == 4  # coerced
    assert conform({"score": 4.5}, conformer)["score"] == 4.5
    assert conform({"score": {"a": 1}}, conformer)["score"] is None  # cannot be represented
    assert "score" not in conform({"later": None}, conformer)
    assert "later" not in conform({"later": None}, conformer)  # not declared: nothing to say
    counts = conformer.drift.counts("p")
    assert (counts.coerced, counts.widened, counts.nulled) == (1, 0, 1)
    assert counts.new_fields == ["score"]
    schema = conformer.drift.conversation_schema["properties"]["score"]
    assert schema == {"type": ["number", "null"]}


def test_an_id_that_cannot_be_a_key_stops_the_sync() -> None:
    conformer = RecordConformer(logging.getLogger("test"))
    with pytest.raises(InvalidConversationError, match="no string `id`"):
        conformer.conform({"id": {"x": 1}, "started_at": "2026-01-01T00:00:00Z"}, "p")
    assert conformer.conform({"id": 42, "started_at": "2026-01-01T00:00:00Z"}, "p")["id"] == "42"


def test_an_integer_declared_by_a_catalog_is_widened_and_announced() -> None:
    conformer = RecordConformer(logging.getLogger("test"))
    changes: list[set[str]] = []
    schema = {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "started_at": {"type": "string"},
            "calls": {"type": ["integer", "null"]},
        },
    }
    conformer.bind(schema, None, on_schema_mismatch="warn", on_schema_change=changes.append)
    assert conform({"calls": 2.0}, conformer)["calls"] == 2  # coerced, no change
    assert changes == []
    assert conform({"calls": 2.5}, conformer)["calls"] == 2.5
    assert changes == [{"conversations"}]
    assert conformer.drift.conversation_schema["properties"]["calls"]["type"] == ["number", "null"]
    assert conform({"calls": "3.5"}, conformer)["calls"] == 3.5
    counts = conformer.drift.counts("p")
    assert (counts.coerced, counts.widened, counts.nulled) == (2, 2, 0)
    assert schema["properties"]["calls"]["type"] == ["integer", "null"]  # the caller's: a copy
    strict = RecordConformer(logging.getLogger("test"))
    strict.bind(schema, None, on_schema_mismatch="fail", on_schema_change=changes.append)
    with pytest.raises(InvalidConversationError, match="`calls` is a fractional number"):
        conform({"calls": 2.5}, strict)


def test_drifted_records_survive_sdk_target_conformance(
    drifting: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """SDK-based loaders conform every record against the latest SCHEMA (recursively): new
    fields and coerced values must pass unchanged, nothing dropped as unknown."""
    run = run_tap(tap_config(drifting))
    logger = logging.getLogger("target-conformance")
    schemas: dict[str, dict[str, t.Any]] = {}
    checked = 0
    with caplog.at_level(logging.WARNING, logger="target-conformance"):
        for message in run.messages:
            if message["type"] == "SCHEMA":
                schemas[message["stream"]] = message["schema"]
            elif message["type"] == "RECORD":
                record = message["record"]
                conformed = conform_record_data_types(
                    stream_name=message["stream"],
                    record=record,
                    schema=schemas[message["stream"]],
                    level=TypeConformanceLevel.RECURSIVE,
                    logger=logger,
                )
                assert conformed == record, (message["stream"], record.get("id"))
                checked += 1
    assert not [r.getMessage() for r in caplog.records if r.name == "target-conformance"]
    assert checked > 1000
