"""Start-up: what singer-sdk would import for features a tap run never uses stays unloaded.

Speed is measured in benchmarks/ (the `incremental` and `startup` scenarios); these tests check
the mechanism (`tap_polyai.deferred_imports`): the modules are not loaded by importing the tap
nor by a whole run, a deferred name still works when something does use it, and the versions
the tap names without importlib.metadata are the installed ones.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
import typing as t
from pathlib import Path

from tap_polyai.emulator import Emulator
from tests.conftest import tap_config

ROOT = Path(__file__).resolve().parent.parent

# What the deferred modules would have pulled in, and nothing else loads on a run.
NOT_LOADED = (
    "fsspec",  # upath
    "asyncio",  # backoff
    "jsonpath_ng.ext.parser",
    "logging.handlers",  # logging.config
    "email.policy",  # importlib.metadata reading a distribution's METADATA
    "zipp",
    "tap_polyai.details",  # only with `conversation_details` selected
    "concurrent.futures",  # details.py's thread pool
    "difflib",  # settings.py: only to suggest a name for an unknown key
)

# Prints which deferred modules are real (imported) and which of NOT_LOADED are loaded, at exit.
REPORT = (
    "import atexit, json, os, sys\n"
    "def _report():\n"
    "    from tap_polyai.deferred_imports import DEFERRED\n"
    "    real = [m for m in DEFERRED if not type(sys.modules.get(m)).__name__.startswith('_Def')]\n"
    f"    loaded = [m for m in {NOT_LOADED!r} if m in sys.modules]\n"
    "    os.write(1, ('\\n' + json.dumps(real + loaded) + '\\n').encode())\n"
    "atexit.register(_report)\n"
)


def _in_fresh_interpreter(code: str, *args: str) -> t.Any:
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_the_tap_loads_none_of_the_deferred_modules() -> None:
    assert _in_fresh_interpreter(REPORT + "import tap_polyai.tap\n") == []


def test_a_sync_and_discovery_load_none_of_them(emulator: Emulator, tmp_path: Path) -> None:
    """A whole incremental run (records, STATE) and `--discover` never use a deferred name."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps(tap_config(emulator)))
    state = tmp_path / "state.json"
    state.write_text("{}")
    cli = REPORT + "import sys\nfrom tap_polyai.tap import TapPolyAI\nTapPolyAI.cli()\n"
    done = subprocess.run(
        [sys.executable, "-c", cli, "--config", str(config), "--state", str(state)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    lines = done.stdout.strip().splitlines()
    assert sum('"type":"RECORD"' in line.replace(" ", "") for line in lines) > 100
    assert json.loads(lines[-1]) == []
    assert _in_fresh_interpreter(cli, "--config", str(config), "--discover") == []


def test_about_uses_what_it_needs_and_nothing_else() -> None:
    """`--about` reads the supported Python versions: packaging and importlib.metadata."""
    cli = REPORT + "from tap_polyai.tap import TapPolyAI\nTapPolyAI.cli()\n"
    done = subprocess.run(
        [sys.executable, "-c", cli, "--about", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    about_text, _, report = done.stdout.strip().rpartition("\n")
    about = json.loads(about_text)
    assert about["version"] == importlib.metadata.version("tap-polyai")
    assert about["sdk_version"] == importlib.metadata.version("singer-sdk")
    assert about["supported_python_versions"]
    assert sorted(json.loads(report)) == [
        "importlib.metadata",
        "packaging.specifiers",
        "packaging.version",
    ]


def test_the_versions_named_without_importlib_metadata_are_the_installed_ones() -> None:
    import tap_polyai
    from tap_polyai.tap import TapPolyAI

    found = re.search(r'^version = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(), re.M)
    pyproject = found.group(1) if found else None
    assert tap_polyai.__version__ == pyproject == importlib.metadata.version("tap-polyai")
    assert TapPolyAI.plugin_version == tap_polyai.__version__
    assert TapPolyAI.sdk_version == importlib.metadata.version("singer-sdk")


def test_a_deferred_name_imports_its_module_when_used() -> None:
    result = _in_fresh_interpreter(
        "import json, sys\n"
        "import tap_polyai.tap\n"
        "from singer_sdk.helpers import _batch, jsonpath\n"
        "from singer_sdk.configuration import _dict_config\n"
        "from singer_sdk import about\n"
        "path = _batch.UPath('/tmp/x')\n"
        "records = list(jsonpath.extract_jsonpath('$.items[*]', {'items': [{'a': 1}, {'b': 2}]}))\n"
        "found = _dict_config.find_dotenv('no-such-file.env')\n"
        "import logging.config, upath, backoff, importlib.metadata\n"
        "versions = about.python_versions(importlib.metadata.metadata('tap-polyai'))\n"
        "from importlib.metadata import PackageNotFoundError, version\n"
        "try:\n"
        "    version('no-such-distribution-x')\n"
        "    missing = False\n"
        "except PackageNotFoundError:\n"
        "    missing = True\n"
        "print(json.dumps([type(path).__module__.split('.')[0], upath.UPath.__name__,"
        " callable(backoff.expo), 'fsspec' in sys.modules, records, found, '3.11' in versions,"
        " callable(logging.config.dictConfig), missing,"
        " importlib.metadata.version('singer-sdk') == tap_polyai.tap.TapPolyAI.sdk_version]))"
    )
    assert result == [
        "upath",
        "UPath",
        True,
        True,
        [{"a": 1}, {"b": 2}],
        "",
        True,
        True,
        True,
        True,
    ]


def test_a_deferred_class_answers_isinstance() -> None:
    result = _in_fresh_interpreter(
        "import json\n"
        "import tap_polyai.tap\n"
        "from singer_sdk.helpers import jsonpath\n"
        "parsed = jsonpath._compile_jsonpath('$.items[1:]')\n"
        "print(json.dumps([isinstance(parsed, jsonpath.Child), isinstance(1, jsonpath.Child),"
        " isinstance(parsed.right, jsonpath.Slice), isinstance(parsed, jsonpath.Slice)]))"
    )
    assert result == [True, False, True, False]
