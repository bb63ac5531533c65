"""The PII recipe of docs/pii.md: the SDK's built-in stream maps, no tap code.

The maps are read from meltano.yml's `tap-polyai--pii-safe` (docs/pii.md shows the same block).
They are an allowlist: every kept property is listed (as itself, or hashed), and
`__else__: __NULL__` drops everything else. Phone numbers are replaced by a salted SHA-256
(unsalted hashes of phone numbers are easy to reverse by brute force); the transcript
(`turns`, the text fields of `conversation_turns`) and `state` are not listed, so they are
dropped, and so is any field PolyAI adds later, although schema drift delivers it to the raw
extractor (tap_polyai/drift.py).
"""

from __future__ import annotations

import hashlib
import re
import typing as t

import pytest
import yaml

from tap_polyai.emulator import Clock, Emulator, apply_drift, generate_conversations
from tap_polyai.emulator.details import NEW_DETAIL_FIELD
from tap_polyai.emulator.drift import NEW_FIELD, NEW_TURN_FIELD
from tests.conftest import ACCOUNT, DATA_START, KEYS, NOW, PROJECTS, tap_config
from tests.pipeline_support import ROOT
from tests.tap_runner import TapRun, discover, run_tap, selecting

SALT = "test-salt-not-a-secret"
TEXT_FIELDS = (
    "user_input",
    "user_input_dtmf",
    "translated_user_input",
    "agent_response",
    "english_agent_response",
    "entities",
)
EXTRACTOR = "tap-polyai--pii-safe"


def shipped_extractor_config() -> dict[str, t.Any]:
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    plugin = next(p for p in project["plugins"]["extractors"] if p["name"] == EXTRACTOR)
    return dict(plugin["config"])


PII_STREAM_MAPS: dict[str, t.Any] = shipped_extractor_config()["stream_maps"]


def pii_config(emulator: Emulator) -> dict[str, t.Any]:
    return tap_config(emulator, stream_maps=PII_STREAM_MAPS, stream_map_config={"salt": SALT})


def _hash(value: str) -> str:
    return hashlib.sha256((SALT + value).encode()).hexdigest()


def test_the_docs_show_the_maps_meltano_yml_ships() -> None:
    page = (ROOT / "docs" / "pii.md").read_text()
    block = re.search(rf"```yaml\n(    - name: {EXTRACTOR}\n.*?)```", page, re.DOTALL)
    assert block, "docs/pii.md shows the PII-safe extractor"
    (shown,) = yaml.safe_load(block.group(1))
    assert shown["config"] == shipped_extractor_config()


@pytest.mark.parametrize("stream", ["conversations", "conversation_turns", "conversation_details"])
def test_the_maps_are_an_allowlist(stream: str) -> None:
    assert PII_STREAM_MAPS[stream]["__else__"] == "__NULL__"


def test_pii_stream_maps(emulator: Emulator) -> None:
    truth = {
        rec["id"]: rec
        for project in PROJECTS
        for rec in emulator.visible(ACCOUNT, project)
        if rec.get("environment") == "live"
    }
    run = run_tap(pii_config(emulator))

    records = run.records("conversations")
    assert len(records) == len(truth) > 0
    hashed = 0
    for rec in records:
        original = truth[rec["id"]]
        assert "turns" not in rec
        assert "state" not in rec
        for field in ("from_number", "to_number"):
            if original.get(field):
                assert rec[field] == _hash(original[field])
                assert original[field] not in str(rec)
                hashed += 1
            else:
                assert rec.get(field) == original.get(field)
        # Listed properties pass through untouched.
        assert (rec["channel"], rec["num_turns"]) == (original["channel"], original["num_turns"])
        assert rec["started_at"] == original["started_at"]
    assert hashed > 0

    # The SCHEMA message announces only the allowlist, with the raw types, key and bookmark.
    schema_message = run.of_type("SCHEMA", "conversations")[-1]
    properties = schema_message["schema"]["properties"]
    assert set(properties) == set(PII_STREAM_MAPS["conversations"]) - {"__else__"}
    assert properties["metrics"]["type"][0] == "object"
    assert schema_message["key_properties"] == ["id"]
    assert schema_message["bookmark_properties"] == ["started_at"]

    # The turn rows keep timings and flags, never text.
    turn_message = run.of_type("SCHEMA", "conversation_turns")[-1]
    assert turn_message["key_properties"] == ["conversation_id", "turn_index"]
    turns = run.records("conversation_turns")
    expected = sum(len(truth[cid].get("turns") or []) for cid in {r["id"] for r in records})
    assert len(turns) == expected > 0
    for field in TEXT_FIELDS:
        assert field not in turn_message["schema"]["properties"]
        assert all(field not in turn for turn in turns)
    assert any(turn.get("latency") is not None for turn in turns)


@pytest.fixture
def drifting() -> t.Iterator[Emulator]:
    """PolyAI adding a top-level field and a turn field (tap_polyai/emulator/drift.py)."""
    emulator = Emulator(clock=Clock(NOW), api_keys={(ACCOUNT, p): KEYS[p] for p in PROJECTS})
    for seed, project in enumerate(PROJECTS):
        convs = generate_conversations(
            ACCOUNT, project, count=60, start=DATA_START, end=NOW, seed=seed, in_progress=2
        )
        apply_drift(convs)
        emulator.add_conversations(ACCOUNT, project, convs)
    with emulator:
        yield emulator


def _keys_seen(run: TapRun, stream: str) -> set[str]:
    """Every property any SCHEMA announced, or any RECORD carried, for `stream`."""
    seen: set[str] = set()
    for message in run.messages:
        if message.get("stream") != stream:
            continue
        if message["type"] == "SCHEMA":
            seen.update(message["schema"]["properties"])
        elif message["type"] == "RECORD":
            seen.update(message["record"])
    return seen


def test_a_field_polyai_adds_later_is_dropped_until_listed(drifting: Emulator) -> None:
    raw = run_tap(tap_config(drifting))
    assert NEW_FIELD in _keys_seen(raw, "conversations"), "drift delivers it to the raw tap"
    assert NEW_TURN_FIELD in _keys_seen(raw, "conversation_turns")
    # The raw tap re-announced its SCHEMA with the new field: the maps saw a grown schema.
    assert NEW_FIELD not in raw.of_type("SCHEMA", "conversations")[0]["schema"]["properties"]

    pii = run_tap(pii_config(drifting))
    assert len(pii.of_type("SCHEMA", "conversations")) > 1, "the re-announce went through"
    assert len(pii.records()) == len(raw.records()) > 0
    assert len(pii.records("conversation_turns")) == len(raw.records("conversation_turns"))
    for stream in ("conversations", "conversation_turns"):
        allowed = set(PII_STREAM_MAPS[stream]) - {"__else__"}
        assert _keys_seen(pii, stream) == allowed
        last = pii.of_type("SCHEMA", stream)[-1]
        assert last["key_properties"] == raw.of_type("SCHEMA", stream)[-1]["key_properties"]
        assert last["bookmark_properties"] == ["started_at"]


DETAIL_PII = ("short_summary", "note", "audio_url")


def test_details_lose_summary_note_and_recording_url_even_as_drift_adds_fields() -> None:
    emulator = Emulator(
        clock=Clock(NOW), api_keys={(ACCOUNT, p): KEYS[p] for p in PROJECTS}, detail_drift=True
    )
    for seed, project in enumerate(PROJECTS):
        convs = generate_conversations(
            ACCOUNT, project, count=60, start=DATA_START, end=NOW, seed=seed, in_progress=2
        )
        emulator.add_conversations(ACCOUNT, project, convs)
    with emulator:
        config = pii_config(emulator)
        catalog = selecting(discover(config), "conversation_details")
        raw = run_tap(tap_config(emulator), catalog=catalog)
        pii = run_tap(config, catalog=catalog)
    raw_rows = raw.records("conversation_details")
    assert any(all(r.get(f) for f in ("short_summary", "audio_url")) for r in raw_rows)
    assert any(r.get("note") for r in raw_rows)
    assert "call_outcome" in _keys_seen(raw, "conversation_details"), NEW_DETAIL_FIELD
    rows = pii.records("conversation_details")
    assert len(rows) == len(raw_rows) > 0
    allowed = set(PII_STREAM_MAPS["conversation_details"]) - {"__else__"}
    assert _keys_seen(pii, "conversation_details") == allowed
    assert not set(DETAIL_PII) & allowed
    summaries = {r["short_summary"] for r in raw_rows if r.get("short_summary")}
    assert not any(text in str(rows) for text in summaries)
    assert {r["poly_score"] for r in rows} == {r["poly_score"] for r in raw_rows}
