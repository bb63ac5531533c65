"""Settings an operator gets wrong: a malformed `api_url`, a typo in a key, a date without a
time zone, a stream map whose salt is missing. Each is named before any request."""

from __future__ import annotations

import logging
import typing as t

import pytest
from conftest import tap_config
from tap_runner import run_tap
from test_settings import errors_for

from tap_polyai.emulator import Emulator
from tap_polyai.tap import TapPolyAI


@pytest.mark.parametrize(
    ("api_url", "words"),
    [
        ("api.uk-1.platform.polyai.app", ["'api_url'", "https://"]),
        ("localhost:8765", ["'api_url'", "https://"]),
        ("ftp://api.uk-1.platform.polyai.app", ["'api_url'", "https://"]),
        ("http://", ["'api_url'", "no host"]),
        ("https:///v3", ["'api_url'", "no host"]),
        ("https://api.uk-1.platform.polyai.app?region=uk", ["'api_url'", "query"]),
        ("https://user:secret@api.uk-1.platform.polyai.app", ["'api_url'", "credentials"]),
        ("http://127.0.0.1:99999", ["'api_url'", "port"]),
    ],
)
def test_a_malformed_api_url_is_named_before_any_request(
    emulator: Emulator, api_url: str, words: list[str]
) -> None:
    message = errors_for(tap_config(emulator, api_url=api_url))
    for word in words:
        assert word in message
    assert "secret" not in message
    assert emulator.requests == []


def test_a_trailing_version_in_api_url_is_dropped_with_a_warning(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    config = tap_config(emulator, api_url=emulator.base_url + "/v3/")
    with caplog.at_level(logging.WARNING):
        run = run_tap(config)
    assert run.records(), "the sync ran against the right URL"
    assert {r["status"] for r in emulator.requests} == {200}
    assert any(
        "'api_url' ends in '/v3'" in r.getMessage() and emulator.base_url in r.getMessage()
        for r in caplog.records
    )


def test_a_version_in_api_url_that_contradicts_api_version_is_an_error(
    emulator: Emulator,
) -> None:
    message = errors_for(tap_config(emulator, api_url=emulator.base_url + "/v2"))
    assert "'api_url' ends in '/v2'" in message
    assert "'api_version'" in message


def test_a_path_prefix_in_api_url_is_kept_for_proxies(emulator: Emulator) -> None:
    tap = TapPolyAI(config=tap_config(emulator, api_url="https://proxy.internal/polyai/"))
    assert tap.settings.base_url == "https://proxy.internal/polyai"


def test_an_unknown_setting_warns_with_the_closest_known_one(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    config = tap_config(emulator, page_sise=100, _meltano_private=1, zzz_qqq=1)
    config["stream_map_config"] = {}  # an SDK setting: known, no warning
    with caplog.at_level(logging.INFO):
        tap = TapPolyAI(config=config)  # not an error
    assert tap.settings.page_size == 20
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "Unknown setting 'page_sise' is ignored; did you mean 'page_size'?" in warnings
    assert "Unknown setting 'zzz_qqq' is ignored." in warnings
    assert not any("_meltano_private" in w or "stream_map_config" in w for w in warnings)


def test_a_date_without_time_zone_is_utc_and_says_so(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        tap = TapPolyAI(config=tap_config(emulator, start_date="2024-03-01T06:00:00"))
    assert tap.settings.start_date.isoformat() == "2024-03-01T06:00:00+00:00"
    notes = [r.getMessage() for r in caplog.records if "no time zone" in r.getMessage()]
    assert notes == ["Setting 'start_date' has no time zone: read as UTC (2024-03-01T06:00:00Z)."]


SALTED_MAPS = {"conversations": {"from_number": "sha256(config['salt'] + from_number)"}}


@pytest.mark.parametrize(
    ("map_config", "words"),
    [
        (None, ["'stream_map_config.salt'", "missing"]),
        ({}, ["'stream_map_config.salt'", "missing"]),
        ({"salt": "  "}, ["'stream_map_config.salt'", "empty"]),
        ({"salt": "change-me-in-the-environment"}, ["'stream_map_config.salt'", "placeholder"]),
    ],
)
def test_stream_maps_refuse_a_missing_or_placeholder_salt(
    emulator: Emulator, map_config: dict[str, t.Any] | None, words: list[str]
) -> None:
    config = tap_config(emulator, stream_maps=SALTED_MAPS)
    if map_config is not None:
        config["stream_map_config"] = map_config
    message = errors_for(config)
    for word in words:
        assert word in message
    assert emulator.requests == []


def test_stream_maps_with_a_real_salt_run(emulator: Emulator) -> None:
    config = tap_config(
        emulator, stream_maps=SALTED_MAPS, stream_map_config={"salt": "a-real-secret"}
    )
    TapPolyAI(config=config)  # valid
