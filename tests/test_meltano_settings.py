"""meltano.yml declares every tap setting with the tap's own default.

Meltano passes a setting's declared `value` to the tap, so a stale value there silently
overrides the tap's default for every Meltano user (it once kept `max_concurrency` at 2 after
the tap's default became 8), and a setting missing there cannot be set through Meltano's
environment variables.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import typing as t

import pytest
import yaml

from tap_polyai.settings import CONFIG_SCHEMA, SDK_BUILTIN_SETTINGS
from tests.pipeline_support import ROOT

KIND_OF_TYPE = {
    "integer": {"integer"},
    "number": {"decimal", "integer"},
    "boolean": {"boolean"},
    "array": {"array"},
    "object": {"object"},
}


def _extractor_settings() -> dict[str, dict[str, t.Any]]:
    meltano = yaml.safe_load((ROOT / "meltano.yml").read_text())
    (tap,) = [e for e in meltano["plugins"]["extractors"] if e["name"] == "tap-polyai"]
    return {s["name"]: s for s in tap["settings"]}


DECLARED = _extractor_settings()


# The tap's own settings. The SDK appends its built-ins (stream maps, flattening, batch) to the
# same dict when the tap class is first used, so which are present depends on test order.
OWN_SETTINGS = sorted(set(CONFIG_SCHEMA["properties"]) - SDK_BUILTIN_SETTINGS)


@pytest.mark.parametrize("name", OWN_SETTINGS)
def test_meltano_declares_the_setting_as_the_tap_does(name: str) -> None:
    prop = CONFIG_SCHEMA["properties"][name]
    assert name in DECLARED, f"meltano.yml does not declare the tap setting {name!r}"
    declared = DECLARED[name]
    default = prop.get("default")
    if "value" in declared or default is not None:
        value = declared.get("value")
        assert value is not None, (name, default)
        assert default is not None, (name, value)
        if isinstance(default, float) or isinstance(value, float):
            assert math.isclose(float(value), float(default)), (name, value, default)
        else:
            assert value == default, (name, value, default)
    if "enum" in prop:
        assert declared["kind"] == "options"
        assert [o["value"] for o in declared["options"]] == prop["enum"]
    types = {t_ for t_ in (prop.get("type") or []) if t_ != "null"}
    if isinstance(prop.get("type"), str):
        types = {prop["type"]}
    for type_ in types:
        if type_ in KIND_OF_TYPE:
            assert declared["kind"] in KIND_OF_TYPE[type_], (name, declared["kind"], type_)
    if prop.get("secret"):
        assert declared.get("kind") == "password" or declared.get("sensitive"), name


def _about() -> dict[str, t.Any]:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from tap_polyai.tap import TapPolyAI; TapPolyAI.cli()",
            "--about",
            "--format=json",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return t.cast(dict[str, t.Any], json.loads(out))


def test_meltano_declares_every_setting_about_reports() -> None:
    """The SDK's own settings too (`faker_config`, `batch_config`, …): Meltano passes only
    declared settings, so an undeclared one cannot be set from the environment."""
    about = set(_about()["settings"]["properties"])
    assert sorted(about - set(DECLARED)) == []
    assert sorted(set(DECLARED) - about) == []


def test_meltano_declares_the_capabilities_about_reports() -> None:
    meltano = yaml.safe_load((ROOT / "meltano.yml").read_text())
    (tap,) = [e for e in meltano["plugins"]["extractors"] if e["name"] == "tap-polyai"]
    assert sorted(tap["capabilities"]) == sorted(_about()["capabilities"])
