"""`tap-polyai --test` is a pre-flight check: one request per project, a clear verdict each."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
from conftest import ACCOUNT, KEYS, tap_config
from tap_runner import run_cli

from tap_polyai.emulator import Emulator


def test_preflight_checks_each_project_with_one_request(emulator: Emulator, tmp_path: Path) -> None:
    # From 2020, the SDK's --test walked every empty day before its first record.
    config = tap_config(emulator, start_date="2020-01-01T00:00:00Z")
    run = run_cli(config, tmp_path, "--test")
    assert run.returncode == 0, run.stderr
    assert run.messages == [], "--test writes no Singer message a target could load"
    assert len(emulator.requests) == 2
    assert {(r["params"]["limit"][0]) for r in emulator.requests} == {"1"}
    for project in ("PROJECT-alpha", "PROJECT-beta"):
        assert f"Pre-flight OK: project {ACCOUNT}/{project}: key accepted" in run.stderr
    assert "Pre-flight check passed for 2 project(s)." in run.stderr
    assert "ERROR" not in run.stderr
    assert "unhandled error" not in run.stderr


@pytest.mark.parametrize(
    ("entry", "status"),
    [
        ({"project_id": "PROJECT-beta", "api_key": "wrong-key-123"}, 401),
        ({"project_id": "PROJECT-beta", "api_key": KEYS["PROJECT-alpha"]}, 403),
        ({"project_id": "PROJECT-missing"}, 404),
    ],
)
def test_preflight_fails_clearly_and_still_checks_the_others(
    emulator: Emulator, tmp_path: Path, entry: dict[str, t.Any], status: int
) -> None:
    config = tap_config(
        emulator,
        start_date="2020-01-01T00:00:00Z",
        projects=[
            {"account_id": ACCOUNT, "project_id": "PROJECT-alpha"},
            {"account_id": ACCOUNT, **entry},
        ],
    )
    run = run_cli(config, tmp_path, "--test")
    assert run.returncode == 1
    assert run.messages == []
    assert len(emulator.requests) == 2, "no retry of a fatal status"
    assert f"Pre-flight OK: project {ACCOUNT}/PROJECT-alpha" in run.stderr
    failed = [line for line in run.stderr.splitlines() if "Pre-flight FAILED" in line]
    assert len(failed) == 1
    assert f"{ACCOUNT}/{entry['project_id']}" in failed[0]
    assert f"HTTP {status}" in failed[0]
    assert "Pre-flight check failed for 1 of 2 project(s)." in run.stderr
    assert "Traceback" not in run.stderr
    assert "wrong-key-123" not in run.stderr
    assert KEYS["PROJECT-alpha"] not in run.stderr


def test_preflight_names_an_unreachable_host(emulator: Emulator, tmp_path: Path) -> None:
    config = tap_config(
        emulator,
        api_url="http://nonexistent.invalid",
        allow_insecure_http=True,
        max_retries=0,
        retry_base_seconds=0.01,
    )
    run = run_cli(config, tmp_path, "--test")
    assert run.returncode == 1
    assert "DNS lookup of nonexistent.invalid failed" in run.stderr
    assert "Traceback" not in run.stderr


def test_test_schema_still_prints_the_schemas(emulator: Emulator, tmp_path: Path) -> None:
    run = run_cli(tap_config(emulator), tmp_path, "--test=schema")
    assert run.returncode == 0, run.stderr
    # Every stream's, as the SDK does (whether selected or not).
    streams = {m["stream"] for m in run.of_type("SCHEMA")}
    assert streams == {"conversations", "conversation_turns", "conversation_details"}
    assert emulator.requests == []
