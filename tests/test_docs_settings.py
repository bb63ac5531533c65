"""docs/configuration.md's settings tables are the ones `tap-polyai --about` declares."""

from __future__ import annotations

import subprocess
import sys

from tests.docs_support import ROOT, text


def test_settings_tables_match_about() -> None:
    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "docs_settings.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr


def test_the_table_names_the_environment_variable_and_allowed_values() -> None:
    page = text("configuration.md")
    lines = [line for line in page.splitlines() if line.startswith("| `")]
    rows = {line.split("|")[1].strip(): line for line in lines}
    region = rows["`region`"]
    assert "`TAP_POLYAI_REGION`" in region
    assert "`us-1`, `uk-1`, `euw-1`" in region
    assert "1 to 1000" in rows["`page_size`"]
    assert "1 to 16" in rows["`max_concurrency`"]
    assert "**(required)**" in rows["`start_date` **(required)**"]
    # The SDK's settings are in their own table, after the tap's.
    tap_table = page.split("<!-- settings:begin -->")[1].split("<!-- settings:end -->")[0]
    sdk_table = page.split("<!-- sdk-settings:begin -->")[1].split("<!-- sdk-settings:end -->")[0]
    assert "`stream_maps`" not in tap_table
    assert "`stream_maps`" in sdk_table
    assert "`batch_config.encoding.format`" in sdk_table
