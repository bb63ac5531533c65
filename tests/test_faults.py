"""Each fault the API can throw: the sync retries what is transient and still delivers
exactly the truth; what is not transient fails at once with an actionable message."""

from __future__ import annotations

import datetime as dt
import typing as t

import pytest
import requests
from conftest import ACCOUNT, KEYS, tap_config
from tap_runner import run_tap
from test_sync import truth

from tap_polyai.emulator import Emulator
from tap_polyai.errors import PolyAIError, classify_response
from tap_polyai.settings import Project


def assert_complete(emulator: Emulator, records: list[dict[str, t.Any]]) -> None:
    delivered = {r["id"] for r in records}
    for project in ("PROJECT-alpha", "PROJECT-beta"):
        assert set(truth(emulator, project)) <= delivered


def statuses(emulator: Emulator) -> list[int]:
    return [r["status"] for r in emulator.requests]


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("server_error", {"status": 500}),
        ("server_error", {"status": 503}),
        ("truncate", {}),
        ("truncate", {"chunked": True}),
        ("reset", {}),
        ("invalid_json", {}),
    ],
)
def test_transient_faults_are_retried_and_lose_nothing(
    emulator: Emulator, kind: str, options: dict[str, t.Any]
) -> None:
    emulator.faults.add(kind, times=2, project_id="PROJECT-alpha", **options)
    run = run_tap(tap_config(emulator))
    assert_complete(emulator, run.records())
    assert len(emulator.faults) == 0, "both faults were hit"
    # No conversation is handed out twice, even when a page broke halfway through.
    ids = [r["id"] for r in run.records()]
    assert len(ids) == len(set(ids))


def test_a_slow_response_times_out_and_is_retried(emulator: Emulator) -> None:
    emulator.faults.add("latency", seconds=2.5, project_id="PROJECT-alpha")
    run = run_tap(tap_config(emulator, request_timeout_seconds=1))
    assert_complete(emulator, run.records())


@pytest.mark.parametrize("retry_after", ["1", dt.timedelta(seconds=2)], ids=["seconds", "date"])
def test_429_waits_what_retry_after_says(emulator: Emulator, retry_after: t.Any) -> None:
    emulator.faults.add("rate_limit", retry_after=retry_after, project_id="PROJECT-alpha")
    run = run_tap(tap_config(emulator, max_concurrency=1))
    assert_complete(emulator, run.records())
    log = emulator.requests
    limited = next(i for i, r in enumerate(log) if r["status"] == 429)
    # An HTTP date has one-second resolution: 2 s from now means at least 1 s.
    assert log[limited + 1]["time"] - log[limited]["time"] >= 0.95


def test_429_pauses_every_worker_not_just_one(emulator: Emulator) -> None:
    emulator.faults.add("rate_limit", retry_after="2", project_id="PROJECT-alpha")
    run_tap(tap_config(emulator, max_concurrency=4, window_hours=3))
    log = emulator.requests
    limited_at = next(r["time"] for r in log if r["status"] == 429)
    # Requests already on the wire may land just after the 429; then silence until it expires.
    quiet = [r for r in log if limited_at + 0.3 < r["time"] < limited_at + 1.8]
    assert quiet == []
    assert any(r["time"] >= limited_at + 1.9 for r in log)


def test_retries_are_bounded_and_the_failure_is_clear(emulator: Emulator) -> None:
    emulator.faults.add("server_error", times=50, status=502, project_id="PROJECT-alpha")
    with pytest.raises(PolyAIError) as failure:
        run_tap(tap_config(emulator, max_retries=2, max_concurrency=1))
    message = str(failure.value)
    assert "ws-acme/PROJECT-alpha" in message
    assert "'max_retries' = 2" in message
    assert "HTTP 502" in message
    assert statuses(emulator).count(502) == 3


@pytest.mark.parametrize(
    ("project_entry", "status", "words"),
    [
        (
            {"project_id": "PROJECT-alpha", "api_key": "wrong-key-123"},
            401,
            ["key was rejected", "region"],
        ),
        ({"project_id": "PROJECT-beta", "api_key": KEYS["PROJECT-alpha"]}, 403, ["not allowed"]),
        ({"project_id": "PROJECT-missing"}, 404, ["'PROJECT-missing' not", "127.0.0.1"]),
    ],
)
def test_auth_and_not_found_fail_at_once_naming_the_project(
    emulator: Emulator, project_entry: dict[str, str], status: int, words: list[str]
) -> None:
    config = tap_config(
        emulator, projects=[{"account_id": ACCOUNT, **project_entry}], max_concurrency=1
    )
    with pytest.raises(PolyAIError) as failure:
        run_tap(config)
    message = str(failure.value)
    assert f"HTTP {status}" in message
    assert f"{ACCOUNT}/{project_entry['project_id']}" in message
    assert "error_code=" in message
    assert "error_id=" in message
    for word in words:
        assert word in message
    for key in (*KEYS.values(), "wrong-key-123"):
        assert key not in message
    assert statuses(emulator) == [status], "no retry of a fatal status"


def test_other_4xx_show_polyais_error_code_message_and_id(emulator: Emulator) -> None:
    response = requests.get(
        emulator.url(ACCOUNT, "PROJECT-alpha"),
        params={"limit": 5000},
        headers={"x-api-key": KEYS["PROJECT-alpha"]},
        timeout=10,
    )
    project = Project(ACCOUNT, "PROJECT-alpha", KEYS["PROJECT-alpha"])
    with pytest.raises(PolyAIError) as failure:
        classify_response(response, project)
    message = str(failure.value)
    assert "HTTP 400" in message
    assert "error_code=INVALID_PARAMETER" in message
    assert f"error_id={response.headers['X-PolyAI-Correlation-Id']}" in message
    assert "error_message=" in message
