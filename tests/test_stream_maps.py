"""The PII recipe of README.md ("PII"): the SDK's built-in stream maps, no tap code.

Phone numbers are replaced by a salted SHA-256 (md5() works the same way, unsalted hashes of
phone numbers are easy to reverse by brute force), the transcript is dropped from
`conversations` (`"turns": "__NULL__"`), and the text fields of `conversation_turns` are
dropped while its timings stay. meltano.yml's `tap-polyai--pii-safe` uses the same maps.
"""

from __future__ import annotations

import hashlib
import typing as t

from tap_polyai.emulator import Emulator
from tests.conftest import ACCOUNT, PROJECTS, tap_config
from tests.tap_runner import run_tap

SALT = "test-salt-not-a-secret"
PII_STATE_KEYS = ["from_", "call_sid"]
TEXT_FIELDS = (
    "user_input",
    "user_input_dtmf",
    "translated_user_input",
    "agent_response",
    "english_agent_response",
    "entities",
)

# Exactly what README.md ("PII") shows (there the salt comes from the environment).
PII_STREAM_MAPS: dict[str, t.Any] = {
    "conversations": {
        "from_number": "sha256(config['salt'] + from_number) if from_number else from_number",
        "to_number": "sha256(config['salt'] + to_number) if to_number else to_number",
        # `state` is the agent's own variables: drop the keys that hold caller data.
        "state": "{k: v for k, v in state.items() if k not in config['pii_state_keys']}"
        " if state else state",
        "turns": "__NULL__",
    },
    "conversation_turns": dict.fromkeys(TEXT_FIELDS, "__NULL__"),
}


def _hash(value: str) -> str:
    return hashlib.sha256((SALT + value).encode()).hexdigest()


def test_pii_stream_maps(emulator: Emulator) -> None:
    truth = {
        rec["id"]: rec
        for project in PROJECTS
        for rec in emulator.visible(ACCOUNT, project)
        if rec.get("environment") == "live"
    }
    config = tap_config(
        emulator,
        stream_maps=PII_STREAM_MAPS,
        stream_map_config={"salt": SALT, "pii_state_keys": PII_STATE_KEYS},
    )
    run = run_tap(config)

    records = run.records("conversations")
    assert len(records) == len(truth) > 0
    hashed = 0
    for rec in records:
        original = truth[rec["id"]]
        assert "turns" not in rec
        for field in ("from_number", "to_number"):
            if original.get(field):
                assert rec[field] == _hash(original[field])
                assert original[field] not in str(rec)
                hashed += 1
            else:
                assert rec.get(field) == original.get(field)
        # Everything else passes through untouched.
        assert (rec["channel"], rec["num_turns"]) == (original["channel"], original["num_turns"])
        if original["state"]:
            assert rec["state"] == {
                k: v for k, v in original["state"].items() if k not in PII_STATE_KEYS
            }
        else:
            assert rec["state"] == original["state"]
    assert hashed > 0

    # The SCHEMA message no longer announces the dropped column.
    schema = run.of_type("SCHEMA", "conversations")[-1]["schema"]
    assert "turns" not in schema["properties"]
    assert "from_number" in schema["properties"]

    # If the tap has the turns stream: its rows keep timings and flags, never text.
    if run.of_type("SCHEMA", "conversation_turns"):
        turn_schema = run.of_type("SCHEMA", "conversation_turns")[-1]["schema"]
        turns = run.records("conversation_turns")
        assert turns
        expected = sum(len(truth[cid].get("turns") or []) for cid in {r["id"] for r in records})
        assert len(turns) == expected
        for field in TEXT_FIELDS:
            assert field not in turn_schema["properties"]
            assert all(field not in turn for turn in turns)
        assert any(turn.get("latency") is not None for turn in turns)
