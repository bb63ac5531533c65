"""Time compression for test_orchestration.py: the SDK target confirms STATE every ~second.

Singer SDK targets (target-postgres 0.8.1) write the STATE they received only after draining
every sink: at the end, or when the oldest buffered record is 5 minutes old. So a shard killed
within 5 minutes has no checkpoint in Meltano, and the test would need minutes per shard to see
one. The test installs this module (and a .pth file importing it) into the loader's venv for its
own duration; it acts only when POLYAI_TEST_TARGET_DRAIN_MINUTES is set. Nothing else changes.
"""

import os

if os.environ.get("POLYAI_TEST_TARGET_DRAIN_MINUTES"):
    from singer_sdk.target_base import Target

    Target._MAX_RECORD_AGE_IN_MINUTES = float(os.environ["POLYAI_TEST_TARGET_DRAIN_MINUTES"])
