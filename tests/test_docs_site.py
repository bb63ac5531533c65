"""The docs site builds with `mkdocs build --strict`: no broken link, missing anchor or page
left out of the navigation (CI runs only `make test`, so the build runs here)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.docs_support import ROOT


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).parent / "mkdocs"
    assert mkdocs.exists() or shutil.which("mkdocs"), "mkdocs-material is in the dev group"
    build = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, build.stderr[-4000:]
    site = tmp_path / "site"
    for page in ("quickstart", "configuration", "postgres", "troubleshooting", "changelog"):
        assert (site / page / "index.html").exists(), page
    # The changelog page includes CHANGELOG.md itself (pymdownx.snippets).
    assert "Keep a Changelog" in (site / "changelog" / "index.html").read_text()
