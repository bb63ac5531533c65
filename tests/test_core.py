"""singer-sdk's standard tap tests, run against the bundled emulator."""

from __future__ import annotations

import atexit

from conftest import make_emulator, tap_config
from singer_sdk.testing import SuiteConfig, get_tap_test_class
from tap_runner import discover, selecting

from tap_polyai.tap import TapPolyAI

# The SDK builds its test class at import time from a config, so the emulator it points at
# has to be running by then; it lives for the test session.
_EMULATOR = make_emulator()
_EMULATOR.start()
atexit.register(_EMULATOR.stop)

# Every stream selected, `conversation_details` (off by default) too, so the suite covers it.
# The whole sync, not the SDK's first 150 records: details are written once their window's
# requests are answered, so a sync cut after 150 conversations may hold none yet.
_CONFIG = tap_config(_EMULATOR)
TestTapPolyAI = get_tap_test_class(
    tap_class=TapPolyAI,
    config=_CONFIG,
    suite_config=SuiteConfig(max_records_limit=None),
    catalog=selecting(discover(_CONFIG), "conversation_details"),
)
