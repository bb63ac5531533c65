"""Start-up: what singer-sdk would import for features a tap run never uses stays unloaded.

Speed is measured in benchmarks/ (the `incremental` and `startup` scenarios); these tests check
the mechanism (`tap_polyai.deferred_imports`): the modules are not loaded by importing the tap,
and a deferred name still works when something does call it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import typing as t


def _in_fresh_interpreter(code: str) -> t.Any:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_the_tap_loads_none_of_the_deferred_modules() -> None:
    loaded = _in_fresh_interpreter(
        "import json, sys, types\n"
        "import tap_polyai.tap\n"
        "from tap_polyai.deferred_imports import DEFERRED\n"
        "real = [m for m in DEFERRED if not type(sys.modules.get(m)).__name__.startswith('_Def')]\n"
        "print(json.dumps(real + [m for m in ('fsspec', 'asyncio') if m in sys.modules]))"
    )
    assert loaded == []


def test_a_deferred_name_imports_its_module_when_called() -> None:
    result = _in_fresh_interpreter(
        "import json, sys\n"
        "import tap_polyai.tap\n"
        "from singer_sdk.helpers import _batch\n"
        "path = _batch.UPath('/tmp/x')\n"
        "import upath, backoff\n"
        "print(json.dumps([type(path).__module__.split('.')[0], upath.UPath.__name__,"
        " callable(backoff.expo), 'fsspec' in sys.modules]))"
    )
    assert result == ["upath", "UPath", True, True]
