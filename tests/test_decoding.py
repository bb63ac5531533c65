"""The one-pass record path (decoding.py, pages.py): bytes as received become RECORD lines.

A conversation the strict typed decode accepts is written from its own bytes; whatever could
make those bytes wrong on a JSONL line or against the schema is tested here: newlines
between tokens, escapes, U+2028/U+0085 inside strings, "" turn timestamps, a conversation
without its partition keys, and every case that must leave the fast path (unknown or
mistyped fields to the conformer; stream maps, flattening and deselected properties to the
SDK's own path).
"""

from __future__ import annotations

import datetime as dt
import gzip
import itertools
import json
import logging
import typing as t

import msgspec
import pytest
from conftest import ACCOUNT, NOW, PROJECTS, iso, make_emulator, tap_config
from hypothesis import given, settings
from hypothesis import strategies as st
from tap_runner import discover, run_cli, run_tap
from test_sync import by_id, truth

from tap_polyai.decoding import ConversationPayload, RecordDecoder, SplicedRecord
from tap_polyai.emulator import Clock, Emulator, StoredConversation
from tap_polyai.pages import BrokenBodyError, _StreamedPage
from tap_polyai.records import RecordConformer

_IDS = (f"CAdec{i:028x}" for i in itertools.count(1))


def _turn(**fields: t.Any) -> dict[str, t.Any]:
    return {
        "user_input": "Hi",
        "user_input_datetime": iso(NOW - dt.timedelta(hours=3)),
        "agent_response": "Hello!",
        "agent_response_datetime": iso(NOW - dt.timedelta(hours=3) + dt.timedelta(seconds=1)),
        "latency": 0.5,
        "intents": ["greet"],
        "entities": [{"name": "Zoë"}, None],
        **fields,
    }


def _conversation(**fields: t.Any) -> dict[str, t.Any]:
    return {
        "id": next(_IDS),
        "account_id": ACCOUNT,
        "project_id": "PROJECT-dec",
        "started_at": iso(NOW - dt.timedelta(hours=3)),
        "environment": "live",
        "in_progress": False,
        "num_turns": 2,
        "metrics": {"csat": "5", "steps": ["a", "b"]},
        "state": {"booking": {"party_size": 4, "notes": None}, "score": 0.25},
        "turns": [_turn(), _turn(user_input="")],
        **fields,
    }


def _sync(
    conversations: list[dict[str, t.Any]],
    *,
    catalog: dict | None = None,
    emulator_options: dict[str, t.Any] | None = None,
    **settings: t.Any,
) -> tuple[t.Any, dict[str, t.Any]]:
    """Serve `conversations` (`emulator_options` such as pretty/chunked) and sync them with
    the tap's `settings`."""
    started = NOW - dt.timedelta(hours=3)
    emulator = Emulator(
        api_keys={(ACCOUNT, "PROJECT-dec"): "key-dec"},
        clock=Clock(NOW),
        **(emulator_options or {}),
    )
    emulator.add_conversations(
        ACCOUNT,
        "PROJECT-dec",
        [StoredConversation(dict(c), started, started, started) for c in conversations],
    )
    with emulator:
        config = tap_config(
            emulator,
            projects=[{"account_id": ACCOUNT, "project_id": "PROJECT-dec"}],
            api_key="key-dec",
            **settings,
        )
        return run_tap(config, catalog=catalog), config


def _expected(conversation: dict[str, t.Any]) -> dict[str, t.Any]:
    """The record: the conversation with "" turn timestamps as null."""
    record = dict(conversation)
    if record.get("turns"):
        record["turns"] = [
            {k: None if k.endswith("_datetime") and v == "" else v for k, v in turn.items()}
            for turn in record["turns"]
        ]
    return record


AWKWARD_TEXT = 'line\u2028separator\u0085next\u2029para \\ " } ] , \n\r\t ü 字 🙂 \x00'


@pytest.mark.parametrize(
    "options",
    [{}, {"pretty": True}, {"pretty": True, "chunked": True}, {"chunked": True}],
    ids=["compact", "pretty", "pretty-chunked", "chunked"],
)
def test_bytes_as_received_become_exact_records(options: dict[str, t.Any]) -> None:
    """Pretty pages put newlines between tokens, escape every non-ASCII character and send the
    cursor before the conversations; the records are the same either way, one per line."""
    conversations = [
        _conversation(
            variant_name=AWKWARD_TEXT,
            state={"note": AWKWARD_TEXT, AWKWARD_TEXT: [AWKWARD_TEXT]},
            turns=[_turn(user_input=AWKWARD_TEXT, entities=[{AWKWARD_TEXT: [AWKWARD_TEXT]}])],
        ),
        *(_conversation() for _ in range(45)),  # several pages of 20
        _conversation(turns=[]),
        _conversation(turns=None, metrics=None, state=None),
        _conversation(turns=[{}]),
    ]
    run, _ = _sync(conversations, emulator_options=options)
    records = by_id(run.records(), "PROJECT-dec")
    assert records == {c["id"]: _expected(c) for c in conversations}
    rows = {(r["conversation_id"], r["turn_index"]): r for r in run.records("conversation_turns")}
    for c in conversations:
        for index, turn in enumerate(_expected(c)["turns"] or ()):
            head = {k: c[k] for k in ("account_id", "project_id", "started_at")}
            assert rows.pop((c["id"], index)) == {
                "conversation_id": c["id"],
                "turn_index": index,
                **head,
                **turn,
            }
    assert not rows


def test_blank_turn_timestamps_become_null_in_both_streams() -> None:
    blank = _conversation(
        turns=[_turn(user_input_datetime=""), _turn(agent_response_datetime="", latency=None)]
    )
    run, _ = _sync([blank, _conversation()])
    (record,) = (r for r in run.records() if r["id"] == blank["id"])
    assert record["turns"][0]["user_input_datetime"] is None
    assert record["turns"][1]["agent_response_datetime"] is None
    assert record == _expected(blank)
    rows = [r for r in run.records("conversation_turns") if r["conversation_id"] == blank["id"]]
    assert rows[0]["user_input_datetime"] is None
    assert rows[1]["agent_response_datetime"] is None
    assert rows[1]["user_input_datetime"] == blank["turns"][1]["user_input_datetime"]


def test_partition_keys_the_conversation_lacks_are_added_in_front() -> None:
    """The SDK adds the partition's keys to a record without them, as it does for dicts."""
    bare = _conversation()
    del bare["account_id"], bare["project_id"]
    run, _ = _sync([bare])
    (record,) = run.records()
    assert record == {**_expected(bare), "account_id": ACCOUNT, "project_id": "PROJECT-dec"}


class _RecordingConformer(RecordConformer):
    def __init__(self) -> None:
        super().__init__(logging.getLogger("test"))
        self.seen: list[str] = []

    def conform(self, raw: dict[str, t.Any], project_label: str) -> dict[str, t.Any]:
        self.seen.append(raw["id"])
        return super().conform(raw, project_label)


@pytest.mark.parametrize(
    "drift",
    [
        {"brand_new_field": {"x": 1}},
        {"turns": [_turn(brand_new_turn_field=True)]},
        {"handoff": {"reason": "x"}},  # counts are `number` (schema.py): 2.5 fits
        {"num_turns": "2.5"},
        {"num_turns": "3"},
        {"in_progress": "false"},
        {"turns": [_turn(latency="0.53")]},
        {"metrics": {"csat": 5}},
        {"id": 42},
    ],
    ids=repr,
)
def test_what_the_strict_decode_rejects_goes_to_the_conformer(drift: dict[str, t.Any]) -> None:
    raw = msgspec.json.encode(_conversation(**drift))
    conformer = _RecordingConformer()
    payload = ConversationPayload(raw)
    assert payload.typed is None
    try:
        record = RecordDecoder(conformer, spliced=True).record(payload, "ws/p")
    except Exception:  # noqa: BLE001 - what the conformer makes of drift is issue #10's
        record = None
    assert conformer.seen == [msgspec.json.decode(raw)["id"]]
    assert not isinstance(record, SplicedRecord)


def test_a_documented_conversation_is_spliced_without_the_conformer() -> None:
    conversation = _conversation(
        num_turns=None, turns=[_turn(latency=1, entities=None, intents=None)]
    )
    raw = msgspec.json.encode(conversation)
    conformer = _RecordingConformer()
    record = RecordDecoder(conformer, spliced=True).record(ConversationPayload(raw), "ws/p")
    assert conformer.seen == []
    assert isinstance(record, SplicedRecord)
    assert bytes(record.body()) == raw  # no re-encoding
    plain = RecordDecoder(conformer, spliced=False).record(ConversationPayload(raw), "ws/p")
    assert type(plain) is dict
    assert plain == conversation


def test_the_sdk_path_still_runs_with_maps_flattening_and_deselected_properties() -> None:
    blank = _conversation(turns=[_turn(user_input_datetime="")])
    run, config = _sync([blank])
    catalog = discover(config)
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if entry["tap_stream_id"] == "conversations" and item["breadcrumb"] == [
                "properties",
                "metrics",
            ]:
                item["metadata"]["selected"] = False
    deselected, _ = _sync([blank], catalog=catalog)
    (record,) = deselected.records()
    assert "metrics" not in record
    assert record == {k: v for k, v in _expected(blank).items() if k != "metrics"}
    assert deselected.records("conversation_turns") == run.records("conversation_turns")

    mapped, _ = _sync(
        [blank], stream_maps={"conversations": {"state": "__NULL__", "turns_count": "num_turns"}}
    )
    (record,) = mapped.records()
    assert "state" not in record
    assert record["turns_count"] == blank["num_turns"]
    assert record["turns"][0]["user_input_datetime"] is None

    flat, _ = _sync([blank], flattening_enabled=True, flattening_max_depth=1)
    (record,) = flat.records()  # one level flattened; deeper values become JSON text
    assert record["state__score"] == blank["state"]["score"]
    assert json.loads(record["state__booking"]) == blank["state"]["booking"]
    assert json.loads(record["turns"]) == _expected(blank)["turns"]


def test_turn_rows_take_the_sdk_path_while_conversations_are_spliced() -> None:
    """A property deselected in `conversation_turns` only: its rows come from the turn structs
    as dicts through the SDK (which drops the property); conversations stay spliced."""
    blank = _conversation(turns=[_turn(user_input_datetime=""), {}])
    full, config = _sync([blank])
    catalog = discover(config)
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if entry["tap_stream_id"] == "conversation_turns" and item["breadcrumb"] == [
                "properties",
                "user_input",
            ]:
                item["metadata"]["selected"] = False
    run, _ = _sync([blank], catalog=catalog)
    assert run.records() == full.records() == [_expected(blank)]
    rows = run.records("conversation_turns")
    assert rows == [
        {k: v for k, v in row.items() if k != "user_input"}
        for row in full.records("conversation_turns")
    ]
    assert rows[0]["user_input_datetime"] is None
    assert "user_input" not in rows[0]
    assert rows[1] == {
        "conversation_id": blank["id"],
        "turn_index": 1,
        **{k: blank[k] for k in ("account_id", "project_id", "started_at")},
    }


def test_batch_messages_carry_whole_records(tmp_path: t.Any) -> None:
    """BATCH mode serialises what `get_records` yields: plain dicts, never spliced records."""
    blank = _conversation(turns=[_turn(user_input_datetime="")])
    batch_config = {
        "encoding": {"format": "jsonl", "compression": "gzip"},
        "storage": {"root": f"file://{tmp_path}"},
    }
    run, _ = _sync([blank, _conversation()], batch_config=batch_config)
    (batch,) = run.of_type("BATCH", "conversations")
    records = []
    for url in batch["manifest"]:
        with gzip.open(url.removeprefix("file://")) as lines:
            records += [json.loads(line) for line in lines]
    assert {r["id"]: r for r in records}[blank["id"]] == _expected(blank)
    assert len(records) == 2


def test_connection_test_still_runs(tmp_path: t.Any) -> None:
    with make_emulator() as emulator:
        run = run_cli(tap_config(emulator), tmp_path, "--test")
    assert run.returncode == 0, run.stderr[-2000:]


def test_pretty_chunked_pages_of_the_standard_data_match_the_truth() -> None:
    with make_emulator(pretty=True, chunked=True) as emulator:
        run = run_tap(tap_config(emulator, page_size=100))
        for project in PROJECTS:
            assert by_id(run.records(), project) == truth(emulator, project)


# -- the streamed-page splitter ----------------------------------------------------------------

_PAGE_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(), inner)),
    max_leaves=8,
)


def _split(body: bytes, cuts: list[int]) -> t.Iterator[bytes]:
    points = sorted({c % (len(body) + 1) for c in cuts})
    for start, end in itertools.pairwise([0, *points, len(body)]):
        yield body[start:end]


@settings(max_examples=150, deadline=None)
@given(
    conversations=st.lists(st.dictionaries(st.text(max_size=5), _PAGE_VALUES), max_size=4),
    extra=st.dictionaries(st.sampled_from(["cursor", "next_offset", "other"]), _PAGE_VALUES),
    conversations_first=st.booleans(),
    indent=st.sampled_from([None, 0, 2]),
    cuts=st.lists(st.integers(0, 10_000), max_size=30),
)
def test_streamed_splitter_gives_each_value_whatever_the_chunks(
    conversations: list[dict[str, t.Any]],
    extra: dict[str, t.Any],
    conversations_first: bool,
    indent: int | None,
    cuts: list[int],
) -> None:
    page = (
        {"conversations": conversations, **extra}
        if conversations_first
        else {**extra, "conversations": conversations}
    )
    body = json.dumps(page, indent=indent, ensure_ascii=False).encode()
    splitter = _StreamedPage(_split(body, cuts))
    got = [json.loads(raw) for raw in splitter.conversations()]
    assert got == conversations
    assert splitter.top_level == extra


def test_one_huge_value_over_many_chunks_is_read_in_linear_time() -> None:
    conversation = {"id": "x", "turns": [{"agent_response": '字 } ] " ' * 50} for _ in range(4000)]}
    body = json.dumps({"conversations": [conversation, conversation], "cursor": None}).encode()
    chunks = [body[i : i + 4096] for i in range(0, len(body), 4096)]
    scanned = 0
    real = _StreamedPage._read_more

    def counting(self: _StreamedPage, need: int) -> bool:
        nonlocal scanned
        grew = real(self, need)
        scanned += len(self._buf)
        return grew

    splitter = _StreamedPage(iter(chunks))
    t.cast(t.Any, splitter)._read_more = counting.__get__(splitter)
    assert [json.loads(raw) for raw in splitter.conversations()] == [conversation] * 2
    assert scanned < 8 * len(body)  # buffered at least doubling: a bounded number of rescans


@pytest.mark.parametrize(
    "body",
    [
        b'{"conversations": [{"id": "a"}, {"id": "b"',  # cut short
        b'{"conversations": [{"id": "a"}], "cursor": nul',  # cut short in a scalar
        b'{"conversations": [{"id": "a"}]} {"more": 1}',  # data after the page
        b'{"conversations": [{"id": "a"} {"id": "b"}]}',  # missing comma
        b'{"cursor": "abc"}',  # no conversations
        b'{"conversations": [{"id": "a\nb"}]}',  # raw control character in a string
        b'["conversations"]',
        b"",
    ],
)
def test_streamed_splitter_rejects_broken_bodies(body: bytes) -> None:
    splitter = _StreamedPage(iter([body[:7], body[7:]]))
    with pytest.raises((BrokenBodyError, msgspec.DecodeError)):
        list(splitter.conversations())
