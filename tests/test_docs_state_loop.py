"""The state loop without Meltano (docs/incremental.md), run as printed, twice, into a target.

The old recipe (`… | tail -1 > state.json`) emptied the state before the tap read it. The
block is taken from the docs page, so the test breaks if the page drifts from what works.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import typing as t
from pathlib import Path

import psycopg

from tests import test_pipeline_postgres as _postgres
from tests.conftest import PROJECTS, live_conversations, make_emulator, tap_config
from tests.docs_support import block_after
from tests.pipeline_support import postgres_url
from tests.tap_runner import bookmark

pytestmark = _postgres.pytestmark  # the same needs: PostgreSQL and the target's venv

MARKER = "<!-- not run by test_docs_commands: tests/test_docs_state_loop.py runs it twice -->"


def test_the_docs_state_loop_keeps_and_advances_the_state(
    target_postgres: Path, database: str, tmp_path: Path
) -> None:
    script = block_after("incremental.md", MARKER)
    assert "> state.json\n" not in script.replace("'{}' > state.json", "")
    url = postgres_url(database)
    (tmp_path / "target.json").write_text(
        json.dumps(
            {
                "sqlalchemy_url": url.replace("postgresql://", "postgresql+psycopg://", 1),
                "default_target_schema": "polyai",
            }
        )
    )
    # `tap-polyai` from this venv, `target-postgres` from its own: as a user's PATH has them.
    env = {
        **os.environ,
        "PATH": os.pathsep.join(
            [str(Path(sys.executable).parent), str(target_postgres.parent), os.environ["PATH"]]
        ),
    }

    def run(config: dict[str, t.Any]) -> subprocess.CompletedProcess[str]:
        (tmp_path / "tap.json").write_text(json.dumps(config))
        return subprocess.run(
            ["bash", "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def state() -> dict[str, t.Any]:
        text = (tmp_path / "state.json").read_text()
        assert text.strip(), "state.json is never empty"
        return t.cast(dict[str, t.Any], json.loads(text))

    with make_emulator() as emulator, psycopg.connect(url, autocommit=True) as db:
        config = tap_config(emulator)
        first = run(config)
        assert first.returncode == 0, first.stderr[-3000:]
        state1 = state()
        marks1 = {p: bookmark(state1, p) for p in PROJECTS}
        assert all(marks1.values()), state1

        # A failed run (a revoked key) exits non-zero and leaves the bookmarks as they were.
        failed = run({**config, "api_key": "revoked-key", "projects": config["projects"][:1]})
        assert failed.returncode != 0
        assert {p: bookmark(state(), p) for p in PROJECTS} == marks1

        # Time passes: the second run starts from the saved state and moves it on.
        emulator.clock.advance(dt.timedelta(hours=7))
        emulator.reset_stats()
        second = run({**config, "end_date": tap_config(emulator)["end_date"]})
        assert second.returncode == 0, second.stderr[-3000:]
        state2 = state()
        for project in PROJECTS:
            later = bookmark(state2, project)
            assert later is not None
            assert later > t.cast(str, marks1[project])
        starts = [r["params"]["start_time"][0] for r in emulator.requests if r.get("params")]
        # From the bookmark less `lookback_minutes` (60 by default), not from start_date. (A
        # date-prefix comparison failed whenever that hour crossed midnight UTC.)
        earliest = dt.datetime.fromisoformat(min(starts).replace("Z", "+00:00"))
        first_mark = min(t.cast(str, m) for m in marks1.values())
        lookback = dt.timedelta(minutes=60)
        assert (
            earliest >= dt.datetime.fromisoformat(first_mark.replace("Z", "+00:00")) - lookback
        ), "the second run read from the bookmark, not from start_date"
        rows = db.execute("select count(*), count(distinct id) from polyai.conversations")
        assert rows.fetchone() == (len(live_conversations(emulator)),) * 2
