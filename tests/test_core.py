"""singer-sdk's standard tap tests, run against the bundled emulator."""

from __future__ import annotations

import atexit

from conftest import make_emulator, tap_config
from singer_sdk.testing import get_tap_test_class
from tap_runner import discover, selecting

from tap_polyai.tap import TapPolyAI

# The SDK builds its test class at import time from a config, so the emulator it points at
# has to be running by then; it lives for the test session.
_EMULATOR = make_emulator()
_EMULATOR.start()
atexit.register(_EMULATOR.stop)

# Every stream selected, `conversation_details` (off by default) too, so the suite covers it.
_CONFIG = tap_config(_EMULATOR)
TestTapPolyAI = get_tap_test_class(
    tap_class=TapPolyAI,
    config=_CONFIG,
    catalog=selecting(discover(_CONFIG), "conversation_details"),
)
