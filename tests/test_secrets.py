"""The API key, phone numbers and transcript text never reach stderr, at any log level."""

from __future__ import annotations

import typing as t

import pytest
from conftest import KEYS, tap_config
from tap_runner import run_cli

from tap_polyai.emulator import Emulator


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_no_key_phone_number_or_transcript_in_stderr(
    emulator: Emulator, tmp_path: t.Any, monkeypatch: pytest.MonkeyPatch, level: str
) -> None:
    monkeypatch.setenv("LOGLEVEL", level)
    emulator.faults.add("server_error", project_id="PROJECT-alpha")
    emulator.faults.add("truncate", project_id="PROJECT-beta")
    run = run_cli(tap_config(emulator), tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "retry 1/" in run.stderr  # the faults were hit and logged
    conversations = run.records()
    phones = {c[f] for c in conversations for f in ("from_number", "to_number") if c[f]}
    texts = {
        turn[f]
        for c in conversations
        for turn in c["turns"]
        for f in ("user_input", "agent_response")
        if len(turn[f] or "") > 12
    }
    assert phones
    assert texts
    for secret in (*KEYS.values(), *phones, *texts):
        assert secret not in run.stderr


def test_a_rejected_key_is_not_echoed(emulator: Emulator, tmp_path: t.Any) -> None:
    config = tap_config(emulator, api_key="sk-live-DO-NOT-LEAK-1234")
    config["projects"] = [config["projects"][0]]
    run = run_cli(config, tmp_path)
    assert run.returncode != 0
    assert "HTTP 401" in run.stderr
    assert "sk-live-DO-NOT-LEAK-1234" not in run.stderr
