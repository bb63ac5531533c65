"""Read-ahead, adaptive windows and the adaptive pool, end to end against the emulator.

Speed itself is measured in benchmarks/; these tests prove that the machinery behind it keeps
every record exactly (no loss, no duplicate) and costs few requests where time is empty.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import typing as t

import pytest
from conftest import ACCOUNT, KEYS, NOW, PROJECTS, iso, make_emulator, tap_config
from tap_runner import bookmark, run_cli_until_killed, run_tap
from test_sync import by_id, truth

from tap_polyai.emulator import Clock, Emulator, generate_conversations
from tap_polyai.emulator.data import format_ts

ALPHA = "PROJECT-alpha"


def one_project(emulator: Emulator, **overrides: t.Any) -> dict[str, t.Any]:
    return tap_config(
        emulator, projects=[{"account_id": ACCOUNT, "project_id": ALPHA}], **overrides
    )


def alpha_emulator(conversations: list[t.Any]) -> Emulator:
    emulator = Emulator(clock=Clock(NOW), api_keys={(ACCOUNT, ALPHA): KEYS[ALPHA]})
    emulator.add_conversations(ACCOUNT, ALPHA, conversations)
    return emulator


def assert_exact(emulator: Emulator, records: list[dict[str, t.Any]]) -> None:
    ids = [r["id"] for r in records if r["project_id"] == ALPHA]
    assert len(ids) == len(set(ids)), "a conversation was written twice"
    assert by_id(records, ALPHA) == truth(emulator, ALPHA)


def test_three_empty_years_cost_a_handful_of_requests() -> None:
    data = generate_conversations(
        ACCOUNT, ALPHA, count=200, start=NOW - dt.timedelta(days=2), end=NOW, seed=3
    )
    with alpha_emulator(data) as emulator:
        config = one_project(
            emulator, start_date=iso(NOW - dt.timedelta(days=3 * 365)), window_hours=24
        )
        run = run_tap(config)
        assert_exact(emulator, run.records())
        pages = -(-len(truth(emulator, ALPHA)) // config["page_size"])
        # One window a day cost 1,095 requests here before windows followed the data.
        assert len(emulator.requests) <= pages + 30, (len(emulator.requests), pages)


def test_the_same_data_and_settings_ask_the_same_windows() -> None:
    data = generate_conversations(
        ACCOUNT, ALPHA, count=1200, start=NOW - dt.timedelta(days=4), end=NOW, seed=11
    )
    asked = []
    with alpha_emulator(data) as emulator:
        config = one_project(emulator, start_date=iso(NOW - dt.timedelta(days=4)), page_size=50)
        for _ in range(2):
            emulator.reset_stats()
            run = run_tap(config)
            assert_exact(emulator, run.records())
            asked.append(
                sorted(
                    (r["params"]["start_time"][0], r["params"]["end_time"][0])
                    for r in emulator.requests
                    if "cursor" not in r["params"]
                )
            )
    assert len(asked[0]) > 8  # the first window was split, then windows were sized to the data
    assert asked[0] == asked[1]


def test_a_split_on_identical_timestamps_loses_and_repeats_nothing() -> None:
    tie = NOW - dt.timedelta(hours=12)
    data = generate_conversations(
        ACCOUNT, ALPHA, count=200, start=NOW - dt.timedelta(days=1), end=NOW, seed=5
    )
    # 80 conversations start at the very same microsecond: split points fall on them.
    for i in range(0, 160, 2):
        record = {**data[i].record, "started_at": format_ts(tie)}
        data[i] = dataclasses.replace(data[i], record=record, started_at=tie)
    with alpha_emulator(data) as emulator:
        # One blind window over everything: its first page says more follow, so it is split
        # after that page, at quantiles of the page's started_at values.
        config = one_project(
            emulator,
            start_date=iso(NOW - dt.timedelta(days=2)),
            window_hours=72,
            max_concurrency=4,
        )
        run = run_tap(config)
        assert_exact(emulator, run.records())
        starts = [r["params"]["start_time"][0] for r in emulator.requests]
        ends = [r["params"]["end_time"][0] for r in emulator.requests]
        assert len(set(starts)) > 2, "the window was split"
        tie_param = tie.isoformat().replace("+00:00", "Z")
        assert tie_param in starts, "a split point sits on the tie"
        assert tie_param in ends
        # The split window's cursor was dropped after its first page: the parts page afresh.
        first = emulator.requests[0]["params"]
        assert "cursor" not in first
        split_window = (first["start_time"], first["end_time"])
        assert not [
            r
            for r in emulator.requests
            if "cursor" in r["params"]
            and (r["params"]["start_time"], r["params"]["end_time"]) == split_window
        ]


def test_a_scheduled_run_sizes_its_first_windows_from_the_last_checkpoint() -> None:
    data = generate_conversations(
        ACCOUNT, ALPHA, count=1500, start=NOW - dt.timedelta(days=3), end=NOW, seed=17
    )
    with alpha_emulator(data) as emulator:
        config = one_project(emulator, start_date=iso(NOW - dt.timedelta(days=3)), page_size=50)
        first = run_tap({**config, "end_date": iso(NOW - dt.timedelta(days=1))})
        state = first.states[-1]
        (partition,) = state["bookmarks"]["conversations"]["partitions"]
        rate = partition["recent_conversations_per_hour"]
        assert isinstance(rate, str)  # a string: targets pass it on (not as a Decimal)
        assert float(rate) > 0
        emulator.reset_stats()
        second = run_tap(config, state=state)
        ids = [r["id"] for r in second.records()]
        assert len(ids) == len(set(ids)), "a conversation was written twice in one run"
        # Both runs together hold every conversation (the lookback re-reads an hour: upserts).
        assert by_id(first.records() + second.records(), ALPHA) == truth(emulator, ALPHA)
        asked = [r["params"] for r in emulator.requests]
        pages = -(-len(second.records()) // 50)
        # Planned from the rate: no blind first window whose first page is read again.
        assert len(asked) <= pages + 3, (len(asked), pages)
        fresh = [(p["start_time"][0], p["end_time"][0]) for p in asked if "cursor" not in p]
        assert len(fresh) == len(set(fresh)) >= 2  # several windows, none asked twice


def test_429_halves_the_pool_and_successes_grow_it_back(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.faults.add("rate_limit", retry_after="0", project_id=ALPHA)
    with caplog.at_level(logging.INFO):
        run = run_tap(tap_config(emulator, max_concurrency=4, page_size=5, window_hours=3))
    for project in PROJECTS:
        assert by_id(run.records(), project) == truth(emulator, project)
    messages = [r.getMessage() for r in caplog.records]
    lowered = messages.index("Concurrency lowered to 2 after HTTP 429")
    raised = [i for i, m in enumerate(messages) if m.startswith("Concurrency raised to 3")]
    assert raised
    assert raised[0] > lowered
    assert any(m.startswith("Concurrency raised to 4") for m in messages)
    assert not any(m.startswith("Concurrency raised to 5") for m in messages)  # the cap
    # The progress line says how many requests run at once.
    assert any(m.endswith("request(s) at once") for m in messages)


def test_a_sync_killed_during_read_ahead_resumes_and_loses_nothing(tmp_path: t.Any) -> None:
    with make_emulator(latency_ms=10) as emulator:
        config = tap_config(emulator, page_size=10, window_hours=2, max_buffer_mb=1)
        killed = run_cli_until_killed(config, tmp_path, states=6)
        checkpoint = next(m["value"] for m in reversed(killed) if m["type"] == "STATE")
        assert bookmark(checkpoint, ALPHA) is not None
        first_run = [
            m["record"] for m in killed if m["type"] == "RECORD" and m["stream"] == "conversations"
        ]
        resumed = run_tap(config, state=checkpoint)
        for project in PROJECTS:
            # Later versions win, as in the target's upsert on id.
            loaded = {**by_id(first_run, project), **by_id(resumed.records(), project)}
            assert loaded == truth(emulator, project), project
