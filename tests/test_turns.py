"""The conversation_turns stream: one row per turn, from the pages conversations fetched."""

from __future__ import annotations

import datetime as dt
import typing as t

from conftest import NOW, PROJECTS, iso, tap_config
from tap_runner import discover, run_cli, run_tap

from tap_polyai.emulator import Emulator


def catalog(config: dict[str, t.Any], deselect: list[tuple[str, tuple[str, ...]]]) -> dict:
    """The discovered catalog, everything selected except `(stream, breadcrumb)` pairs (and
    `conversation_details`, off by default)."""
    discovered = discover(config)
    for entry in discovered["streams"]:
        for item in entry["metadata"]:
            crumb = tuple(item["breadcrumb"])
            item["metadata"]["selected"] = (entry["tap_stream_id"], crumb) not in deselect and (
                entry["tap_stream_id"] != "conversation_details"
            )
    return discovered


def test_one_row_per_turn_with_its_conversation_keys(emulator: Emulator) -> None:
    run = run_tap(tap_config(emulator))
    conversations = run.records()
    turns = run.records("conversation_turns")
    expected = {
        (c["id"], i): {**turn, "started_at": c["started_at"], "project_id": c["project_id"]}
        for c in conversations
        for i, turn in enumerate(c["turns"])
    }
    got = {(r["conversation_id"], r["turn_index"]): r for r in turns}
    assert len(turns) == len(got) == len(expected) > 1000
    for key, row in got.items():
        assert {k: row[k] for k in expected[key]} == expected[key]
        assert row["account_id"] == "ws-acme"
    # Turns of conversations whose transcript is hidden (turns=[] while num_turns>0): no rows.
    hidden = [c["id"] for c in conversations if not c["turns"] and c["num_turns"]]
    assert hidden
    assert not {r["conversation_id"] for r in turns} & set(hidden)


def test_one_schema_per_stream_and_no_state_per_conversation(emulator: Emulator) -> None:
    # One worker: windows are sized from results as they come in, so only a sequential fetch
    # cuts both runs into the same windows (one checkpoint each).
    config = tap_config(emulator, max_concurrency=1)
    with_turns = run_tap(config)
    without = run_tap(config, catalog=catalog(config, [("conversation_turns", ())]))
    schemas = [m["stream"] for m in with_turns.of_type("SCHEMA")]
    assert sorted(schemas) == ["conversation_turns", "conversations"]
    # At most the one closing STATE that names the turns stream; never one per conversation.
    assert len(without.states) <= len(with_turns.states) <= len(without.states) + 1
    assert without.records("conversation_turns") == []
    assert [m["stream"] for m in without.of_type("SCHEMA")] == ["conversations"]


def test_turns_alone_still_fetch_and_checkpoint(emulator: Emulator) -> None:
    config = tap_config(emulator)
    run = run_tap(config, catalog=catalog(config, [("conversations", ())]))
    assert run.records() == []
    assert len(run.records("conversation_turns")) > 1000
    assert [m["stream"] for m in run.of_type("SCHEMA")] == ["conversation_turns"]
    final = run.final_state["bookmarks"]["conversations"]["partitions"]
    assert {p["context"]["project_id"] for p in final} == set(PROJECTS)


def test_deselecting_the_nested_turns_keeps_parent_rows_lean(emulator: Emulator) -> None:
    config = tap_config(emulator)
    run = run_tap(config, catalog=catalog(config, [("conversations", ("properties", "turns"))]))
    assert run.records()
    assert all("turns" not in r for r in run.records())
    assert len(run.records("conversation_turns")) > 1000


def test_turns_of_a_finished_call_replace_the_partial_ones(emulator: Emulator) -> None:
    first = run_tap(tap_config(emulator))
    running = {r["id"]: r["num_turns"] for r in first.records() if r["in_progress"]}
    later = NOW + dt.timedelta(hours=7)
    emulator.clock.set(later)
    second = run_tap(tap_config(emulator, end_date=iso(later)), state=first.final_state)
    finished = {r["id"]: r for r in second.records() if r["id"] in running}
    assert finished
    for conversation_id, conversation in finished.items():
        rows = [
            r
            for r in second.records("conversation_turns")
            if r["conversation_id"] == conversation_id
        ]
        assert len(rows) == len(conversation["turns"]) >= running[conversation_id]
        assert sorted(r["turn_index"] for r in rows) == list(range(len(rows)))


def test_no_transcript_text_reaches_the_logs(emulator: Emulator, tmp_path: t.Any) -> None:
    run = run_cli(tap_config(emulator), tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    texts = {
        turn[field]
        for c in run.records()
        for turn in c["turns"]
        for field in ("user_input", "agent_response")
        if len(turn[field] or "") > 12
    }
    assert texts
    assert not [text for text in texts if text in run.stderr]
