"""Malformed answers are treated like truncated ones (retried, then a named error) and numeric
settings have maximums; the emulator's phone numbers are fictional."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hostile_server import Answer, HostileServer, Seen, conversations, hostile_config, page
from tap_runner import run_cli

from tap_polyai.emulator import generate_conversations
from tap_polyai.settings import CONFIG_SCHEMA, SDK_BUILTIN_SETTINGS, parse_datetime

GOOD = conversations(3)


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        ((200, {}, {"conversations": GOOD, "next_offset": "ten"}), "next_offset"),
        ((200, {}, {"conversations": GOOD, "next_offset": 2.5}), "next_offset"),
        ((200, {}, {"conversations": GOOD, "cursor": {"a": 1}}), "cursor"),
        ((200, {"Content-Length": "many"}, b""), "Content-Length"),
        ((200, {}, [GOOD]), "not the documented page"),
        ((200, {}, "null"), "not the documented page"),
    ],
    ids=["offset-text", "offset-float", "cursor-object", "content-length", "array", "null"],
)
def test_a_malformed_answer_is_retried_then_a_named_error(
    tmp_path: Path, answer: Answer, words: str
) -> None:
    def respond(seen: Seen) -> Answer:
        return answer

    with HostileServer(respond) as api:
        run = run_cli(hostile_config(api.base_url, max_retries=2), tmp_path)
        asked = len(api.requests)
    assert run.returncode == 1, run.stderr[-2000:]
    errors = [line for line in run.stderr.splitlines() if "| ERROR" in line]
    assert len(errors) == 1, errors
    assert "giving up after 3 attempts" in errors[0]
    assert words in errors[0]
    assert "Traceback" not in run.stderr
    assert asked == 3


def test_a_page_that_heals_on_retry_is_delivered(tmp_path: Path) -> None:
    def respond(seen: Seen) -> Answer:
        if len(api.requests) == 1:
            return 200, {}, {"conversations": GOOD, "next_offset": "x"}
        return 200, {}, page(GOOD)

    with HostileServer(respond) as api:
        run = run_cli(hostile_config(api.base_url), tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert {r["id"] for r in run.records()} == {c["id"] for c in GOOD}


NUMERIC = [
    name
    for name, prop in CONFIG_SCHEMA["properties"].items()
    if {"integer", "number"} & set(prop.get("type", [])) and name not in SDK_BUILTIN_SETTINGS
]


@pytest.mark.parametrize("name", NUMERIC)
def test_every_numeric_setting_has_a_maximum_and_beyond_it_is_a_named_error(
    tmp_path: Path, name: str
) -> None:
    maximum = CONFIG_SCHEMA["properties"][name].get("maximum")
    assert maximum is not None, f"{name} has no maximum"
    run = run_cli(hostile_config("http://127.0.0.1:9", **{name: 10**12}), tmp_path)
    assert run.returncode == 1
    assert f"Setting '{name}' must be at most {maximum}" in run.stderr
    assert "Traceback" not in run.stderr


UK_FICTION = re.compile(r"\+447700900\d{3}")
US_FICTION = re.compile(r"\+1[2-9]\d\d55501\d\d")


def test_emulator_phone_numbers_are_only_from_ranges_reserved_for_fiction() -> None:
    convs = generate_conversations(
        "ws-a",
        "P",
        count=400,
        start=parse_datetime("2026-01-01T00:00:00Z"),
        end=parse_datetime("2026-01-02T00:00:00Z"),
    )
    numbers = {c.record[f] for c in convs for f in ("from_number", "to_number")} - {None, ""}
    assert len(numbers) > 50
    for number in numbers:
        assert UK_FICTION.fullmatch(number) or US_FICTION.fullmatch(number), number
    assert any(UK_FICTION.fullmatch(n) for n in numbers)
    assert any(US_FICTION.fullmatch(n) for n in numbers)
