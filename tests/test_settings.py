"""Bad settings fail before any request, with a message that names the setting."""

from __future__ import annotations

import datetime as dt
import typing as t

import pytest
from conftest import ACCOUNT, tap_config
from singer_sdk.exceptions import ConfigValidationError
from tap_runner import run_cli

from tap_polyai.emulator import Emulator
from tap_polyai.tap import TapPolyAI


def errors_for(config: dict[str, t.Any]) -> str:
    with pytest.raises(ConfigValidationError) as failure:
        TapPolyAI(config=config)
    return " | ".join([str(failure.value), *failure.value.errors])


@pytest.mark.parametrize(
    ("change", "setting"),
    [
        ({"api_key": None}, "api_key"),
        ({"start_date": "last tuesday"}, "start_date"),
        ({"start_date": None}, "start_date"),
        ({"end_date": "2026-13-45"}, "end_date"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": 1001}, "page_size"),
        ({"variant_id": "v1", "variant_name": "Main"}, "variant_name"),
        ({"region": "eu-2"}, "region"),
        ({"api_version": "v9"}, "api_version"),
        ({"client_env": "staging"}, "client_env"),
        ({"projects": [], "account_id": ACCOUNT}, "project_id"),
    ],
)
def test_each_bad_setting_is_named(
    emulator: Emulator, change: dict[str, t.Any], setting: str
) -> None:
    config = tap_config(emulator)
    config["projects"] = [{"account_id": ACCOUNT, "project_id": "PROJECT-alpha"}]
    for key, value in change.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    assert setting in errors_for(config)
    assert emulator.requests == [], "no request before the settings are valid"


def test_the_cli_exits_non_zero_naming_the_setting(emulator: Emulator, tmp_path: t.Any) -> None:
    run = run_cli(tap_config(emulator, page_size=5000), tmp_path)
    assert run.returncode != 0
    assert "page_size" in run.stderr
    assert run.messages == []


def test_a_project_key_overrides_the_top_level_key(emulator: Emulator) -> None:
    config = tap_config(emulator)
    config.pop("api_key")
    config["projects"] = [{"account_id": ACCOUNT, "project_id": "PROJECT-beta", "api_key": "k"}]
    TapPolyAI(config=config)  # valid: every project has a key
    config["projects"].append({"account_id": ACCOUNT, "project_id": "PROJECT-alpha"})
    assert "PROJECT-alpha" in errors_for(config)


def test_region_selects_the_host_and_api_url_wins(emulator: Emulator) -> None:
    config = tap_config(emulator, region="euw-1")
    assert TapPolyAI(config=config).settings.base_url == emulator.base_url
    config.pop("api_url")
    assert TapPolyAI(config=config).settings.base_url == "https://api.euw-1.platform.polyai.app"


@pytest.mark.parametrize(
    ("text", "micros"),
    [
        ("2026-01-01T00:00:00.5Z", 500000),
        ("2026-01-01T00:00:00.12345Z", 123450),
        ("2026-01-01T00:00:00.1234567+00:00", 123456),
        ("2026-01-01T00:00:00Z", 0),
    ],
)
def test_timestamps_with_any_fraction_parse_on_every_python(text: str, micros: int) -> None:
    """Python 3.10's fromisoformat takes only 3 or 6 fraction digits; ours takes any."""
    from tap_polyai.settings import parse_datetime

    parsed = parse_datetime(text)
    assert (parsed.year, parsed.microsecond, parsed.utcoffset()) == (2026, micros, dt.timedelta(0))
