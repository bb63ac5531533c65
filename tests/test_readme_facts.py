"""Facts the README and meltano.yml state, checked where a test can check them."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tap_polyai.emulator import Emulator
from tests.conftest import ACCOUNT
from tests.pipeline_support import ROOT

README = (ROOT / "README.md").read_text()
PATH = re.compile(
    r"(?<![\w$/.-])((?:tests|scripts|tap_polyai|transform|benchmarks|orchestration)/[\w./-]*\w)"
)


def _ignored(path: str) -> bool:
    """Generated output (git-ignored, such as dbt's target/) need not exist in a clone."""
    check = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, check=False)
    return check.returncode == 0


@pytest.mark.parametrize("name", ["README.md", "meltano.yml"])
def test_every_repository_path_mentioned_exists(name: str) -> None:
    text = (ROOT / name).read_text()
    mentioned = set(PATH.findall(text))
    missing = sorted(p for p in mentioned if not (ROOT / p).exists() and not _ignored(p))
    assert missing == [], f"{name} mentions files that do not exist"
    assert "README.pipelines.md" not in text


def test_files_the_readme_writes_into_the_repository_are_git_ignored() -> None:
    for name in ("out.jsonl", "catalog.json", "state.json", "state.out", ".env"):
        assert _ignored(name), f"{name} is not git-ignored"
    assert "> out.jsonl" in README


def test_meltano_state_clear_in_the_readme_always_has_force() -> None:
    clears = re.findall(r"meltano[^\n`]*state clear[^\n`]*", README)
    assert clears
    assert all("--force" in line for line in clears), clears


def test_the_env_example_points_dev_at_the_emulator() -> None:
    env_block = README[README.index("# .env (git-ignored)") :].split("```")[0]
    assert "TAP_POLYAI_API_URL=http://127.0.0.1:8765" in env_block


def test_the_readme_says_how_to_reload_into_a_new_database() -> None:
    assert "not the database or schema" in README
    assert "--full-refresh" in README
    assert "--state-id-suffix" in README


def test_the_demo_checks_rows_against_the_emulators_truth(emulator: Emulator) -> None:
    demo = (ROOT / "scripts" / "demo.sh").read_text()
    assert "scripts/demo_truth.py" in demo
    assert '--expect-conversations "$EXPECTED"' in demo
    assert "served_ids" not in demo

    script = str(ROOT / "scripts" / "demo_truth.py")
    proc = subprocess.run(
        [sys.executable, script, emulator.base_url, ACCOUNT, "PROJECT-alpha", "--client-env=live"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    visible = emulator.visible(ACCOUNT, "PROJECT-alpha")
    live = {c["id"] for c in visible if c["environment"] == "live"}
    assert 0 < len(live) < len({c["id"] for c in visible}), "the data has non-live conversations"
    assert int(proc.stdout) == len(live)
    assert f"{len(visible)} conversations, {len(live)} live" in proc.stderr
    assert [r for r in emulator.requests if "/conversations" in r.get("path", "")] == []
