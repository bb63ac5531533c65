"""`source-polyai`, the Airbyte face: every message checked with Airbyte's protocol models, the
data and bookmarks checked against the Singer path on the same emulator data.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import typing as t
from pathlib import Path

import pytest
from airbyte_support import (
    SOURCE,
    SourceRun,
    assert_protocol_messages,
    configured_catalog,
    discover_catalog,
    run_source,
)
from conftest import (
    ACCOUNT,
    KEYS,
    NOW,
    PROJECTS,
    iso,
    live_conversations,
    make_emulator,
    tap_config,
)
from tap_runner import parse_messages, run_tap

from tap_polyai.emulator import Emulator, generate_conversations
from tap_polyai.settings import CONFIG_SCHEMA, SDK_BUILTIN_SETTINGS, load_settings
from tap_polyai.state import InvalidStateError, check_state
from tap_polyai.tap import TapPolyAI

# What the Singer path selects by default (conversation_details is off unless selected).
STREAMS = ("conversations", "conversation_turns")


def by_key(records: list[dict[str, t.Any]], *keys: str) -> dict[tuple, dict[str, t.Any]]:
    return {tuple(r[k] for k in keys): r for r in records}


def marks(stream_state: dict[str, t.Any]) -> dict[str, t.Any]:
    """A stream state without the SDK's signpost (the sync's start time, differs per run)."""
    return {k: v for k, v in stream_state.items() if k != "replication_key_signpost"}


def read(
    emulator: Emulator, tmp_path: Path, *, state: t.Any = None, **overrides: t.Any
) -> SourceRun:
    config = tap_config(emulator, **overrides)
    catalog = configured_catalog(discover_catalog(config, tmp_path), STREAMS)
    run = run_source("read", tmp_path, config=config, catalog=catalog, state=state)
    assert run.returncode == 0, run.stderr + run.logs
    return run


def test_spec_is_the_tap_settings_with_secrets_marked(tmp_path: Path) -> None:
    run = run_source("spec", tmp_path)
    assert run.returncode == 0
    (message,) = run.messages
    connection = message["spec"]["connectionSpecification"]
    own = [p for p in CONFIG_SCHEMA["properties"] if p not in SDK_BUILTIN_SETTINGS]
    assert list(connection["properties"]) == own
    assert "api_url" in own
    assert connection["required"] == ["start_date"]
    assert connection["properties"]["api_key"]["airbyte_secret"] is True
    project = connection["properties"]["projects"]["items"]["properties"]
    assert project["api_key"]["airbyte_secret"] is True
    assert "airbyte_secret" not in project["account_id"]
    assert "airbyte_secret" not in connection["properties"]["start_date"]


def test_discover_lists_every_tap_stream_with_keys_and_cursor(
    emulator: Emulator, tmp_path: Path
) -> None:
    config = tap_config(emulator)
    catalog = discover_catalog(config, tmp_path)
    tap_streams = TapPolyAI(config=config).streams
    assert {s["name"] for s in catalog["streams"]} == set(tap_streams)
    for stream in catalog["streams"]:
        tap_stream = tap_streams[stream["name"]]
        assert stream["json_schema"] == tap_stream.schema
        assert stream["supported_sync_modes"] == ["full_refresh", "incremental"]
        assert stream["source_defined_cursor"] is True
        assert stream["default_cursor_field"] == ["started_at"]
        assert stream["source_defined_primary_key"] == [[k] for k in tap_stream.primary_keys]
    keys = {s["name"]: s["source_defined_primary_key"] for s in catalog["streams"]}
    assert keys["conversations"] == [["id"]]
    assert keys["conversation_turns"] == [["conversation_id"], ["turn_index"]]
    assert keys["conversation_details"] == [["conversation_id"]]  # off by default in Singer


def test_read_delivers_the_singer_path_records_with_per_stream_state(
    emulator: Emulator, tmp_path: Path
) -> None:
    singer = run_tap(tap_config(emulator))
    run = read(emulator, tmp_path)
    conversations = by_key(run.records(), "id")
    assert conversations == by_key(singer.records(), "id")
    assert set(conversations) == {(i,) for i in live_conversations(emulator)}
    turn_key = ("conversation_id", "turn_index")
    turns = by_key(run.records("conversation_turns"), *turn_key)
    assert len(turns) > len(conversations)
    assert turns == by_key(singer.records("conversation_turns"), *turn_key)
    # A STATE per stream at each checkpoint (window sizes, so their number, depend on timing),
    # each carrying the tap's per-project bookmarks; the last one is the Singer path's.
    states = run.states("conversations")
    assert len(states) > 2 * len(PROJECTS)
    assert run.states("conversation_turns") == states
    assert marks(states[-1]) == marks(singer.final_state["bookmarks"]["conversations"])
    for stream in STREAMS:
        assert run.statuses(stream) == ["STARTED", "RUNNING", "COMPLETE"]
    # emitted_at is in milliseconds, now-ish.
    emitted = run.of_type("RECORD")[0]["record"]["emitted_at"]
    assert abs(emitted / 1000 - dt.datetime.now(dt.timezone.utc).timestamp()) < 600
    # sourceStats counts the records of each stream between two of its STATE messages.
    for stream in STREAMS:
        counted = sum(
            m["state"]["sourceStats"]["recordCount"]
            for m in run.of_type("STATE")
            if m["state"]["stream"]["stream_descriptor"]["name"] == stream
        )
        assert counted == len(run.records(stream))


def test_state_resumes_as_the_singer_state_does(emulator: Emulator, tmp_path: Path) -> None:
    first = read(emulator, tmp_path)
    singer_first = run_tap(tap_config(emulator))
    later = NOW + dt.timedelta(hours=7)  # running calls ended, late and new ones arrived
    for seed, project in enumerate(PROJECTS, start=10):
        emulator.add_conversations(
            ACCOUNT,
            project,
            generate_conversations(ACCOUNT, project, count=40, start=NOW, end=later, seed=seed),
        )
    emulator.clock.set(later)
    config = tap_config(emulator, end_date=iso(later))
    singer = run_tap(config, state=singer_first.final_state)
    catalog = configured_catalog(discover_catalog(config, tmp_path), STREAMS)
    second = run_source(
        "read", tmp_path, config=config, catalog=catalog, state=first.state_messages
    )
    assert second.returncode == 0, second.logs
    assert by_key(second.records(), "id") == by_key(singer.records(), "id")
    assert 0 < len(second.records()) < len(first.records()) / 2
    was_running = {r["id"] for r in first.records() if r["in_progress"]}
    assert was_running
    assert was_running <= {r["id"] for r in second.records() if not r["in_progress"]}
    assert marks(second.states()[-1]) == marks(singer.final_state["bookmarks"]["conversations"])


def test_a_stream_without_state_makes_its_owner_read_from_start(
    emulator: Emulator, tmp_path: Path
) -> None:
    """conversation_turns added to a connection later: its history is read, not skipped."""
    config = tap_config(emulator)
    discovered = discover_catalog(config, tmp_path)
    first = run_source(
        "read", tmp_path, config=config, catalog=configured_catalog(discovered, ["conversations"])
    )
    assert first.returncode == 0
    assert not first.records("conversation_turns")
    both = configured_catalog(discovered)
    second = run_source("read", tmp_path, config=config, catalog=both, state=first.state_messages)
    assert second.returncode == 0
    assert len(second.records()) == len(first.records())
    # full_refresh ignores the stored state the same way.
    full = run_source(
        "read",
        tmp_path,
        config=config,
        catalog=configured_catalog(discovered, mode="full_refresh"),
        state=second.state_messages,
    )
    assert len(full.records()) == len(first.records())


def _error(run: SourceRun) -> dict[str, t.Any]:
    assert run.returncode == 1
    (error,) = run.errors
    return error


def test_legacy_global_and_foreign_state_are_refused(emulator: Emulator, tmp_path: Path) -> None:
    first = read(emulator, tmp_path)
    legacy = {"conversations": {"partitions": []}}
    error = _error(read_failing(emulator, tmp_path, state=legacy))
    assert error["failure_type"] == "config_error"
    assert "legacy" in error["message"]
    shared = {"type": "GLOBAL", "global": {"shared_state": {}, "stream_states": []}}
    error = _error(read_failing(emulator, tmp_path, state=[shared]))
    assert error["failure_type"] == "config_error"
    assert "GLOBAL" in error["message"]
    # Another shard's state (another start_date): the tap's own refusal, word for word.
    other_start = iso(NOW - dt.timedelta(days=1))
    run = read_failing(emulator, tmp_path, state=first.state_messages, start_date=other_start)
    error = _error(run)
    assert error["failure_type"] == "config_error"
    config = tap_config(emulator, start_date=other_start)
    singer_state = {"bookmarks": {"conversations": first.states()[-1]}}
    with pytest.raises(InvalidStateError) as refused:
        check_state(singer_state, load_settings(config), dt.datetime.now(dt.timezone.utc))
    assert error["message"] == str(refused.value)
    assert not run.of_type("RECORD")
    assert not run.of_type("STATE")


def read_failing(
    emulator: Emulator, tmp_path: Path, *, state: t.Any = None, **overrides: t.Any
) -> SourceRun:
    config = tap_config(emulator, **overrides)
    catalog = configured_catalog(discover_catalog(tap_config(emulator), tmp_path))
    return run_source("read", tmp_path, config=config, catalog=catalog, state=state)


def test_failures_carry_their_failure_type_and_the_tap_message(
    emulator: Emulator, tmp_path: Path
) -> None:
    bad = _error(read_failing(emulator, tmp_path, page_size=0))
    assert bad["failure_type"] == "config_error"
    assert "page_size" in bad["message"]
    wrong_key = _error(read_failing(emulator, tmp_path, api_key="wrong-key-123"))
    assert wrong_key["failure_type"] == "config_error"
    assert "HTTP 401" in wrong_key["message"]
    assert "PROJECT-alpha" in wrong_key["message"]
    emulator.faults.add("server_error", times=50, status=503)
    run = read_failing(emulator, tmp_path, max_retries=1)
    exhausted = _error(run)
    assert exhausted["failure_type"] == "transient_error"
    assert "giving up after 2 attempts" in exhausted["message"]
    assert "INCOMPLETE" in run.statuses("conversations")
    for error in (bad, wrong_key, exhausted):
        assert "wrong-key-123" not in str(error)
        assert KEYS["PROJECT-alpha"] not in str(error)
    for message in run.messages:
        assert KEYS["PROJECT-alpha"] not in str(message)


def test_check_answers_succeeded_or_failed_with_the_reason(
    emulator: Emulator, tmp_path: Path
) -> None:
    run = run_source("check", tmp_path, config=tap_config(emulator))
    assert run.returncode == 0
    assert run.of_type("CONNECTION_STATUS")[0]["connectionStatus"] == {"status": "SUCCEEDED"}
    assert len(emulator.requests) == len(PROJECTS)  # one pre-flight request per project
    projects = [
        {"account_id": ACCOUNT, "project_id": "PROJECT-alpha"},
        {"account_id": ACCOUNT, "project_id": "PROJECT-beta", "api_key": "wrong-key-123"},
    ]
    run = run_source("check", tmp_path, config=tap_config(emulator, projects=projects))
    status = run.of_type("CONNECTION_STATUS")[0]["connectionStatus"]
    assert status["status"] == "FAILED"
    assert "PROJECT-beta" in status["message"]
    assert "HTTP 401" in status["message"]
    assert "wrong-key-123" not in str(run.messages)
    run = run_source("check", tmp_path, config=tap_config(emulator, page_size=0))
    status = run.of_type("CONNECTION_STATUS")[0]["connectionStatus"]
    assert status["status"] == "FAILED"
    assert "page_size" in status["message"]


def test_sigterm_writes_each_stream_state_marks_them_incomplete_and_exits_143(
    tmp_path: Path,
) -> None:
    with make_emulator(latency_ms=40) as emulator:
        config = tap_config(emulator, window_hours=2, max_concurrency=1)
        catalog = configured_catalog(discover_catalog(config, tmp_path), STREAMS)
        (tmp_path / "config.json").write_text(json.dumps(config))
        (tmp_path / "catalog.json").write_text(json.dumps(catalog))
        command = [str(SOURCE), "read", "--config", str(tmp_path / "config.json")]
        # Unbuffered: `communicate` reads the pipe's descriptor directly, so lines a buffered
        # reader had already taken in (the rest of this checkpoint's STATEs) would be lost.
        proc = subprocess.Popen(
            [*command, "--catalog", str(tmp_path / "catalog.json")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        assert proc.stdout is not None
        lines: list[bytes] = []
        for line in proc.stdout:  # read until the first checkpoint, then interrupt
            lines.append(line)
            if json.loads(line)["type"] == "STATE":
                proc.send_signal(signal.SIGTERM)
                break
        rest, _ = proc.communicate(timeout=60)
        run = SourceRun(parse_messages(b"".join(lines) + rest), proc.returncode, "")
        assert_protocol_messages(run.messages)
        assert run.returncode == 143
        for stream in STREAMS:
            assert run.statuses(stream)[-1] == "INCOMPLETE"
        (error,) = run.errors
        assert error["failure_type"] == "transient_error"
        assert "Interrupted by SIGTERM" in run.logs
        # The final STATE of each stream comes after every record: resume from it.
        last_record = max(i for i, m in enumerate(run.messages) if m["type"] == "RECORD")
        final = {
            m["state"]["stream"]["stream_descriptor"]["name"]: (i, m["state"])
            for i, m in enumerate(run.messages)
            if m["type"] == "STATE"
        }
        assert set(final) == set(STREAMS)
        assert all(i > last_record for i, _ in final.values())
        emulator.faults.latency_ms = 0
        second = run_source(
            "read",
            tmp_path,
            config=config,
            catalog=catalog,
            state=[state for _, state in final.values()],
        )
        truth = set(live_conversations(emulator))
        first = {r["id"] for r in run.records()}
        assert truth - first, "the first read was really interrupted"
        assert truth <= first | {r["id"] for r in second.records()}
