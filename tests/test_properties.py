"""Property-based: whatever documented-shape payload the API sends — nulls, empty strings,
unicode, fields the schema does not know, very long transcripts — every conversation comes
out, matches the SCHEMA announced before it, and carries the API's values unchanged (new
fields included: they are declared on the fly, see drift.py)."""

from __future__ import annotations

import atexit
import datetime as dt
import itertools
import typing as t

from conftest import ACCOUNT, DATA_START, NOW, iso, make_emulator, tap_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tap_runner import assert_records_match_announced_schemas, run_tap

from tap_polyai.emulator import StoredConversation
from tap_polyai.records import CONVERSATION_FIELDS, TURN_FIELDS

_EMULATOR = make_emulator()
_EMULATOR.start()
atexit.register(_EMULATOR.stop)
_PROJECT_IDS = (f"PROJECT-prop-{i}" for i in itertools.count())
_CONVERSATION_IDS = (f"CA{i:032x}" for i in itertools.count(1))

text = st.text(max_size=40)
maybe_text = st.one_of(st.none(), st.just(""), text)
maybe_int = st.one_of(st.none(), st.integers(0, 10**9))
maybe_bool = st.one_of(st.none(), st.booleans())
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**53), 2**53),
        text,
        st.floats(allow_nan=False, allow_infinity=False),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)),
    max_leaves=12,
)
string_or_strings = st.one_of(text, st.lists(text, min_size=2, max_size=3))
timestamps = st.datetimes(
    min_value=DATA_START.replace(tzinfo=None),
    max_value=(NOW - dt.timedelta(hours=1)).replace(tzinfo=None),
).map(lambda d: d.replace(tzinfo=dt.timezone.utc))
_UNIQUE = itertools.count()
# Each new field name occurs once, so its value is the one that types it (values that do not
# fit a new field's first type are drift's business: tests/test_drift.py).
unknown_fields = st.dictionaries(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=3, max_size=12).filter(
        lambda k: k not in CONVERSATION_FIELDS and k not in TURN_FIELDS
    ),
    json_values,
    max_size=2,
).map(lambda fields: {f"{k}_{next(_UNIQUE)}": v for k, v in fields.items()})


@st.composite
def turns(draw: st.DrawFn) -> dict[str, t.Any]:
    turn: dict[str, t.Any] = {
        "user_input": draw(maybe_text),
        "user_input_dtmf": draw(maybe_text),
        "user_input_datetime": draw(st.one_of(st.none(), st.just(""), timestamps.map(iso))),
        "agent_response": draw(maybe_text),
        "agent_response_datetime": draw(st.one_of(st.none(), st.just(""), timestamps.map(iso))),
        "latency": draw(st.one_of(st.none(), st.floats(0, 60), st.integers(0, 60))),
        "translated_user_input": draw(maybe_text),
        "english_agent_response": draw(maybe_text),
        "intents": draw(st.one_of(st.none(), st.lists(text, max_size=3))),
        "entities": draw(
            st.one_of(
                st.none(),
                st.lists(st.dictionaries(text, string_or_strings, max_size=2), max_size=2),
            )
        ),
        "is_ood": draw(maybe_bool),
        "is_silence": draw(maybe_bool),
        "barge_in": draw(maybe_bool),
    }
    absent = draw(st.sets(st.sampled_from(sorted(turn))))
    return {**{k: v for k, v in turn.items() if k not in absent}, **draw(unknown_fields)}


@st.composite
def conversations(draw: st.DrawFn) -> tuple[dict[str, t.Any], dt.datetime]:
    started = draw(timestamps)
    conversation: dict[str, t.Any] = {
        "id": next(_CONVERSATION_IDS),
        "started_at": iso(started),
        "environment": "live",
        "in_progress": False,
        **{
            name: draw(maybe_text)
            for name in (
                "variant_id",
                "variant_name",
                "channel",
                "from_number",
                "to_number",
                "handoff_reason",
                "handoff_destination",
            )
        },
        **{
            name: draw(maybe_int)
            for name in (
                "num_turns",
                "total_duration",
                "polyai_duration",
                "num_silences",
                "num_ood",
            )
        },
        "handoff": draw(maybe_bool),
        "metrics": draw(st.one_of(st.none(), st.dictionaries(text, string_or_strings, max_size=3))),
        "state": draw(st.one_of(st.none(), st.dictionaries(text, json_values, max_size=4))),
        "turns": draw(st.one_of(st.none(), st.lists(turns(), max_size=5))),
    }
    return {**conversation, **draw(unknown_fields)}, started


def expected_record(payload: dict[str, t.Any], project_id: str) -> dict[str, t.Any]:
    """The payload as delivered: new fields kept, unless null (nothing to deliver yet)."""
    record = {k: v for k, v in payload.items() if k in CONVERSATION_FIELDS or v is not None}
    record["account_id"], record["project_id"] = ACCOUNT, project_id
    if record.get("turns"):
        record["turns"] = [
            {
                k: (
                    None
                    if k.endswith("_datetime") and v == ""
                    else float(v)
                    if k == "latency" and v is not None
                    else v
                )
                for k, v in turn.items()
                if k in TURN_FIELDS or v is not None
            }
            for turn in record["turns"]
        ]
    return record


def sync(payloads: list[tuple[dict[str, t.Any], dt.datetime]]) -> tuple[str, t.Any]:
    project_id = next(_PROJECT_IDS)
    stored = []
    for payload, started in payloads:
        payload.update(account_id=ACCOUNT, project_id=project_id)
        stored.append(StoredConversation(payload, started, started, started))
    _EMULATOR.add_conversations(ACCOUNT, project_id, stored)
    config = tap_config(
        _EMULATOR, projects=[{"account_id": ACCOUNT, "project_id": project_id}], api_key="test-key"
    )
    return project_id, run_tap(config)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(conversations(), min_size=1, max_size=6))
def test_any_documented_payload_comes_out_matching_the_schema(
    payloads: list[tuple[dict[str, t.Any], dt.datetime]],
) -> None:
    project_id, run = sync(payloads)
    records = {r["id"]: r for r in run.records()}
    assert records == {p["id"]: expected_record(p, project_id) for p, _ in payloads}
    assert_records_match_announced_schemas(run)
    assert len(run.records("conversation_turns")) == sum(
        len(r.get("turns") or []) for r in records.values()
    )


def test_very_long_transcripts_come_out_whole() -> None:
    started = NOW - dt.timedelta(hours=5)
    long_turn = {"user_input": "ü" * 20_000, "agent_response": "字" * 50_000, "latency": 0.5}
    payload = {
        "id": next(_CONVERSATION_IDS),
        "started_at": iso(started),
        "environment": "live",
        "in_progress": False,
        "num_turns": 400,
        "turns": [dict(long_turn) for _ in range(400)],
    }
    project_id, run = sync([(payload, started)])
    (record,) = run.records()
    assert record == expected_record(payload, project_id)
    assert len(run.records("conversation_turns")) == 400
