"""Scenario tests of a full sync and of incremental state, against the emulator's truth."""

from __future__ import annotations

import datetime as dt
import logging
import re
import typing as t

import pytest
from conftest import ACCOUNT, NOW, PROJECTS, iso, make_emulator, tap_config
from tap_runner import bookmark, run_cli_until_killed, run_tap

from tap_polyai.client import PolyAIClient
from tap_polyai.emulator import Emulator, generate_conversations, parse_ts
from tap_polyai.records import RecordConformer
from tap_polyai.settings import load_settings
from tap_polyai.windows import Window


def truth(emulator: Emulator, project_id: str) -> dict[str, dict[str, t.Any]]:
    """What a complete sync of `project_id` must deliver now (client_env=live)."""
    conformer = RecordConformer(__import__("logging").getLogger("truth"))
    return {
        c["id"]: conformer.conform(c, project_id)
        for c in emulator.visible(ACCOUNT, project_id)
        if c["environment"] == "live"
    }


def by_id(records: list[dict[str, t.Any]], project_id: str) -> dict[str, dict[str, t.Any]]:
    return {r["id"]: r for r in records if r["project_id"] == project_id}


def test_full_sync_delivers_exactly_the_truth_for_each_project(emulator: Emulator) -> None:
    run = run_tap(tap_config(emulator))
    for project in PROJECTS:
        expected = truth(emulator, project)
        got = by_id(run.records(), project)
        assert len(expected) > 150
        assert got == expected, project
    assert [m["stream"] for m in run.of_type("SCHEMA")] == ["conversations", "conversation_turns"]


def test_each_project_pages_in_its_own_style(emulator: Emulator) -> None:
    # beta pages by offset (no cursor in its responses), alpha by cursor. The tap sizes windows
    # to about a page, so read the whole range as one window to page through it for sure.
    settings = load_settings(tap_config(emulator))
    client = PolyAIClient(settings, logging.getLogger("test"))
    window = Window(settings.start_date, t.cast(dt.datetime, settings.end_date))
    for project in settings.projects:
        ids = [c.id for c in client.conversations(project, window)]
        assert sorted(ids) == sorted(truth(emulator, project.project_id))
    beta_params = [r["params"] for r in emulator.requests if r["project_id"] == "PROJECT-beta"]
    assert any("offset" in p for p in beta_params)
    assert not any("cursor" in p for p in beta_params)
    alpha_params = [r["params"] for r in emulator.requests if r["project_id"] == "PROJECT-alpha"]
    assert any("cursor" in p for p in alpha_params)


def test_every_page_of_a_window_keeps_the_same_filters(emulator: Emulator) -> None:
    run_tap(tap_config(emulator, channels=["VOICE-SIP", "WEBCHAT"], variant_name="Main"))
    for request in emulator.requests:
        params = request["params"]
        assert params["channel"] == ["VOICE-SIP", "WEBCHAT"]
        assert params["variant_name"] == ["Main"]
        assert params["client_env"] == ["live"]
        assert params["limit"] == ["20"]
        assert params["include_latency"] == ["true"]


def test_state_is_checkpointed_per_window_and_has_no_progress_markers(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    config = tap_config(emulator)
    caplog.set_level(logging.INFO)
    run = run_tap(config)
    pattern = re.compile(r"Project \S+/(\S+): window \d+ \[(\S+), (\S+)\) done")
    done = [m.groups() for m in map(pattern.match, caplog.messages) if m]
    for project in PROJECTS:
        # The windows written (a split window is one: its parts end together) tile the range.
        spans = [(start, end) for p, start, end in done if p == project]
        assert len(spans) >= 2
        assert all(spans[i][1] == spans[i + 1][0] for i in range(len(spans) - 1))
    assert len(run.states) >= len(done)  # one checkpoint per window per project
    for state in run.states:
        for partition in state["bookmarks"]["conversations"].get("partitions", []):
            assert "progress_markers" not in partition
            assert set(partition["context"]) == {"account_id", "project_id"}
    # Bookmarks only move forward within a run, window by window.
    alpha = [bookmark(s, "PROJECT-alpha") for s in run.states if bookmark(s, "PROJECT-alpha")]
    assert alpha == sorted(alpha)


def test_bookmark_is_held_at_the_earliest_in_progress_conversation(emulator: Emulator) -> None:
    run = run_tap(tap_config(emulator))
    for project in PROJECTS:
        running = [r for r in by_id(run.records(), project).values() if r["in_progress"]]
        assert running, "the fixture has in-progress conversations"
        earliest = min(parse_ts(r["started_at"]) for r in running)
        assert parse_ts(t.cast(str, bookmark(run.final_state, project))) == earliest


def test_second_run_catches_new_late_and_finished_without_rereading_history(
    emulator: Emulator,
) -> None:
    first = run_tap(tap_config(emulator))
    first_ids = {r["id"] for r in first.records()}
    was_running = {r["id"] for r in first.records() if r["in_progress"]}

    later = NOW + dt.timedelta(hours=7)  # every running call has ended, late ones arrived
    for seed, project in enumerate(PROJECTS, start=10):
        emulator.add_conversations(
            ACCOUNT,
            project,
            generate_conversations(ACCOUNT, project, count=40, start=NOW, end=later, seed=seed),
        )
    emulator.clock.set(later)
    emulator.reset_stats()

    second = run_tap(tap_config(emulator, end_date=iso(later)), state=first.final_state)
    second_records = {r["id"]: r for r in second.records()}
    for project in PROJECTS:
        expected = truth(emulator, project)
        delivered = first_ids | set(by_id(second.records(), project))
        assert set(expected) <= delivered, project
        # Finished versions replace the in-progress ones.
        for conversation_id in was_running & set(expected):
            assert second_records[conversation_id]["in_progress"] is False
            assert second_records[conversation_id] == expected[conversation_id]
        # Late arrivals were invisible in the first run and are caught now.
        late = (
            set(expected)
            - first_ids
            - {i for i, r in expected.items() if parse_ts(r["started_at"]) >= NOW}
        )
        assert late, "the fixture has late-arriving conversations"
        assert late <= set(second_records)
        # Only the held / lookback range is read again, never the history.
        held = parse_ts(t.cast(str, bookmark(first.final_state, project)))
        starts = [
            parse_ts(r["params"]["start_time"][0])
            for r in emulator.requests
            if r["project_id"] == project
        ]
        assert min(starts) == held - dt.timedelta(minutes=60)
    assert len(second_records) < len(first_ids) / 3


def test_a_sync_killed_with_sigkill_resumes_at_its_last_checkpoint(tmp_path: t.Any) -> None:
    with make_emulator(latency_ms=15) as emulator:
        config = tap_config(emulator, max_concurrency=1)
        killed = run_cli_until_killed(config, tmp_path, states=4)
        checkpoint = next(m["value"] for m in reversed(killed) if m["type"] == "STATE")
        resumed_at = bookmark(checkpoint, "PROJECT-alpha")
        assert resumed_at is not None
        emulator.reset_stats()

        resumed = run_tap(config, state=checkpoint)
        delivered = {
            m["record"]["id"]
            for m in killed
            if m["type"] == "RECORD" and m["stream"] == "conversations"
        }
        delivered |= {r["id"] for r in resumed.records()}
        for project in PROJECTS:
            assert set(truth(emulator, project)) <= delivered, project
        alpha_starts = [
            parse_ts(r["params"]["start_time"][0])
            for r in emulator.requests
            if r["project_id"] == "PROJECT-alpha"
        ]
        assert min(alpha_starts) == parse_ts(resumed_at) - dt.timedelta(minutes=60)


def test_chunked_pages_are_streamed_to_the_same_records() -> None:
    with make_emulator(chunked=True) as emulator:
        run = run_tap(tap_config(emulator, page_size=100))
        for project in PROJECTS:
            assert by_id(run.records(), project) == truth(emulator, project)
