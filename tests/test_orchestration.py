"""The shipped scale-out recipes, run as users run them (`make test-orchestration`).

Dagster: the job in orchestration/dagster runs in-process (multiprocess executor, 4 shards at
once) through Meltano 4.4.1 into PostgreSQL (target-postgres 0.8.1), against the emulator with
429s injected; one shard is killed with SIGKILL mid-run and Dagster's retry resumes it. Then:
every conversation loaded exactly once, one state ID per shard, the killed shard resumed from its
own checkpoint. target-postgres confirms STATE only every 5 minutes mid-run; the test compresses
that to about a second (tests/orchestration_support/polyai_test_drain.py) so that a checkpoint
exists before the kill. Airflow: the DAG parses under Airflow 3 without a deprecation warning and
`dag.test()` runs one mapped shard.

Heavy: builds Meltano, Dagster and Airflow virtualenvs under $TAP_POLYAI_TARGETS_DIR once, and
installs the project's plugins into `.meltano/`. Marked `orchestration`: `make test` leaves it out,
`make test-orchestration` (run by .ci/run) runs it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import typing as t
from pathlib import Path

import psycopg
import pytest
from conftest import (
    ACCOUNT,
    DATA_START,
    KEYS,
    NOW,
    PROJECTS,
    iso,
    live_conversations,
    make_emulator,
)

from tap_polyai.emulator import Emulator
from tap_polyai.shards import Shard, plan_shards
from tests.pipeline_support import (
    ROOT,
    TARGET_POSTGRES,
    postgres_url,
    require_venv,
)

pytestmark = [pytest.mark.orchestration, pytest.mark.postgres, pytest.mark.pipeline]

MELTANO = "meltano[postgres]==4.4.1"  # postgres: the shared system database
DAGSTER = "dagster==1.13.28"
AIRFLOW = "apache-airflow==3.3.2 apache-airflow-providers-standard==1.21.0"
assert "0.8.1" in TARGET_POSTGRES  # meltano.yml pins the same loader
SCHEMA = "polyai"
STATE_ID = "prod:tap-polyai-to-target-postgres"
START = DATA_START - dt.timedelta(hours=1)


def _venv(name: str, requirement: str) -> Path:
    return require_venv(name, requirement, timeout=1800)


@pytest.fixture(scope="module")
def meltano(admin_url: str) -> Path:
    return _venv("meltano", MELTANO) / "bin" / "meltano"


def _environment(
    emulator: Emulator, database: str, meltano: Path, run_root: Path
) -> dict[str, str]:
    """A worker's environment: the recipe's variables, the tap's and the loader's settings."""
    sqlalchemy_url = postgres_url(database).replace("postgresql://", "postgresql+psycopg://", 1)
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TAP_POLYAI_", "TARGET_", "MELTANO_", "POLYAI_", "DAGSTER_"))
        or k == "TAP_POLYAI_TARGETS_DIR"
    }
    projects = [{"account_id": ACCOUNT, "project_id": p, "api_key": KEYS[p]} for p in PROJECTS]
    return {
        **inherited,
        "POLYAI_MELTANO_PROJECT_DIR": str(ROOT),
        "POLYAI_MELTANO": str(meltano),
        "POLYAI_MELTANO_ENVIRONMENT": "prod",
        "POLYAI_SHARD_RUN_ROOT": str(run_root),
        "POLYAI_SHARDS_AT_ONCE": "4",
        "MELTANO_DATABASE_URI": sqlalchemy_url,
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "TAP_POLYAI_API_URL": emulator.base_url,
        "TAP_POLYAI_PROJECTS": json.dumps(projects),
        "TAP_POLYAI_WINDOW_HOURS": "2",
        "TAP_POLYAI_PAGE_SIZE": "20",
        "TAP_POLYAI_MAX_CONCURRENCY": "1",
        "TARGET_POSTGRES_SQLALCHEMY_URL": sqlalchemy_url,
        "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": SCHEMA,
        "TARGET_POSTGRES_BATCH_SIZE_ROWS": "10",  # checkpoints reach Meltano often
        # The target confirms STATE every ~1 s instead of every 5 minutes (_drain_often).
        "POLYAI_TEST_TARGET_DRAIN_MINUTES": "0.02",
        "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'orchestration' / 'dagster'}",
    }


def _states(db: psycopg.Connection) -> dict[str, dict[str, t.Any]]:
    """Meltano's stored state per state ID (completed, with any partial state merged over it)."""
    states = {}
    for state_id, partial, completed in db.execute(
        "select state_id, partial_state, completed_state from state"
    ).fetchall():
        merged: dict[str, t.Any] = {}
        for part in (completed, partial):
            value = json.loads(part) if isinstance(part, str) else part
            if value and value.get("singer_state"):
                merged = value["singer_state"]
        states[state_id] = merged
    return states


def _partition(singer_state: dict[str, t.Any], project_id: str) -> dict[str, t.Any] | None:
    for entry in singer_state.get("bookmarks", {}).get("conversations", {}).get("partitions", []):
        if entry["context"]["project_id"] == project_id:
            return t.cast(dict[str, t.Any], entry)
    return None


@contextlib.contextmanager
def _drain_often(env: dict[str, str]) -> t.Iterator[None]:
    """Prepare the project once (as the recipe's first step does), then compress the target's
    5-minute STATE cadence for the duration of the test (see polyai_test_drain.py)."""
    subprocess.run(
        [sys.executable, "-m", "tap_polyai.shard_run", "--prepare"],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=900,
    )
    site = next(
        (ROOT / ".meltano" / "loaders" / "target-postgres" / "venv").glob(
            "lib/python*/site-packages"
        )
    )
    module = ROOT / "tests" / "orchestration_support" / "polyai_test_drain.py"
    shutil.copy(module, site / module.name)
    (site / "polyai_test_drain.pth").write_text("import polyai_test_drain\n")
    try:
        yield
    finally:
        (site / "polyai_test_drain.pth").unlink()
        (site / module.name).unlink()


class _Killer(threading.Thread):
    """Kills one shard's Meltano run (SIGKILL, whole process group) after its first checkpoint."""

    def __init__(self, database: str, shard: Shard, run_root: Path, emulator: Emulator) -> None:
        super().__init__(daemon=True)
        self._url = postgres_url(database)
        self._shard = shard
        self._pid_file = run_root / shard.name / "meltano.pid"
        self._emulator = emulator
        self.checkpoint: str | None = None
        self.requests_before_kill = 0
        self.done = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + 600
        state_id = f"{STATE_ID}:{self._shard.name}"
        try:
            with psycopg.connect(self._url, autocommit=True) as db:
                while time.monotonic() < deadline:
                    try:
                        partition = _partition(
                            _states(db).get(state_id, {}), t.cast(str, self._shard.project_id)
                        )
                    except psycopg.errors.UndefinedTable:
                        partition = None
                    mark = partition and partition.get("replication_key_value")
                    end = iso(t.cast(dt.datetime, self._shard.end))
                    if mark and iso(self._shard.start) < mark < end:
                        self.requests_before_kill = len(self._emulator.requests)
                        os.killpg(int(self._pid_file.read_text()), signal.SIGKILL)
                        self.checkpoint = mark
                        return
                    time.sleep(0.05)  # polling a condition, bounded by the deadline
        finally:
            self.done.set()


def test_dagster_shards_in_parallel_load_everything_exactly_once(
    meltano: Path, database: str, tmp_path: Path
) -> None:
    dagster = _venv("dagster", DAGSTER)
    run_root = tmp_path / "runs"
    shards = plan_shards(
        START, NOW, every=dt.timedelta(days=1), projects=[(ACCOUNT, p) for p in PROJECTS]
    )
    assert len(shards) == 8
    victim = next(s for s in shards if s.project_id == "PROJECT-alpha" and s.start > START)

    with make_emulator() as emulator:
        # 429s for whichever shards ask first; alpha slowed so its shards are caught mid-run.
        emulator.faults.add("rate_limit", times=12, retry_after="1")
        emulator.faults.add("latency", times=400, project_id="PROJECT-alpha", seconds=0.15)
        env = _environment(emulator, database, meltano, run_root)
        killer = _Killer(database, victim, run_root, emulator)
        killer.start()
        run_config = {
            "ops": {
                "plan": {
                    "config": {
                        "start_date": iso(START),
                        "end_date": iso(NOW),
                        "every_days": 1,
                        "by_project": True,
                    }
                }
            }
        }
        summary_file = tmp_path / "dagster.json"
        started = time.monotonic()
        with _drain_often(env), (tmp_path / "dagster.log").open("w") as log:
            proc = subprocess.run(
                [
                    str(dagster / "bin" / "python"),
                    str(ROOT / "tests" / "orchestration_dagster_run.py"),
                    json.dumps(run_config),
                    str(summary_file),
                ],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=1500,
                check=False,
            )
        elapsed = time.monotonic() - started
        killer.done.wait(timeout=10)
        log_tail = (tmp_path / "dagster.log").read_text()[-6000:]
        assert proc.returncode == 0, log_tail
        summary = json.loads(summary_file.read_text())
        assert summary["success"], (summary, log_tail)
        requests = list(emulator.requests)
        truth = set(live_conversations(emulator))

    # Real concurrency and real faults.
    assert killer.checkpoint is not None, "the victim shard finished before it could be killed"
    # The victim was retried; others may be too: shards creating the same schema or table at
    # once race in target-postgres on a first load, and the retry handles it.
    assert f"run_shard[{victim.name}]" in summary["retried_steps"], summary
    assert summary["failed_steps"] == [], summary
    assert len(summary["succeeded_steps"]) == 2 + len(shards)
    rate_limited = sum(1 for r in requests if r.get("status") == 429)
    assert rate_limited == 12

    with psycopg.connect(postgres_url(database), autocommit=True) as db:
        rows, distinct = db.execute(
            f"select count(*), count(distinct id) from {SCHEMA}.conversations"
        ).fetchone()
        loaded = {row[0] for row in db.execute(f"select id from {SCHEMA}.conversations")}
        assert rows == distinct == len(truth)
        assert loaded == truth  # every conversation exactly once, nothing lost

        # One state ID per shard, each holding only its own range.
        states = _states(db)
        assert set(states) == {f"{STATE_ID}:{s.name}" for s in shards}
        for shard in shards:
            partition = _partition(
                states[f"{STATE_ID}:{shard.name}"], t.cast(str, shard.project_id)
            )
            assert partition is not None, shard.name
            assert partition["start_date"] == iso(shard.start)  # the range survived Meltano
            assert partition["end_date"] == iso(t.cast(dt.datetime, shard.end))
            assert partition["replication_key_value"] <= iso(t.cast(dt.datetime, shard.end))

    # The killed shard's retry read from its own checkpoint (less the lookback), not its start.
    retry_starts = [
        r["params"]["start_time"][0]
        for r in requests[killer.requests_before_kill :]
        if r["project_id"] == "PROJECT-alpha"
        and "start_time" in r.get("params", {})
        and iso(victim.start) <= r["params"]["start_time"][0] < iso(t.cast(dt.datetime, victim.end))
    ]
    mark = dt.datetime.fromisoformat(killer.checkpoint.replace("Z", "+00:00"))
    assert retry_starts, "the victim shard was not retried"
    assert min(retry_starts) >= iso(mark - dt.timedelta(minutes=60))
    assert min(retry_starts) > iso(victim.start)
    print(
        f"\n{len(shards)} shards, 4 at once, {len(truth)} conversations, {rate_limited} x 429, "
        f"victim {victim.name} killed at {killer.checkpoint}, {elapsed:.0f} s",
        file=sys.stderr,
    )


def test_airflow_dag_parses_without_deprecations_and_runs_one_mapped_shard(
    meltano: Path, database: str, tmp_path: Path
) -> None:
    airflow = _venv("airflow", AIRFLOW)
    start = NOW - dt.timedelta(hours=12)
    with make_emulator() as emulator:
        env = {
            **_environment(emulator, database, meltano, tmp_path / "runs"),
            "AIRFLOW_HOME": str(tmp_path / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "orchestration" / "airflow"),
            "POLYAI_PYTHON": sys.executable,
        }
        summary_file = tmp_path / "airflow.json"
        run_conf = {"start_date": iso(start), "end_date": iso(NOW), "by_project": True}
        env["TAP_POLYAI_PROJECTS"] = json.dumps(json.loads(env["TAP_POLYAI_PROJECTS"])[:1])
        with (tmp_path / "airflow.log").open("w") as log:
            proc = subprocess.run(
                [
                    str(airflow / "bin" / "python"),
                    str(ROOT / "tests" / "orchestration_airflow_run.py"),
                    str(ROOT / "orchestration" / "airflow"),
                    json.dumps(run_conf),
                    str(summary_file),
                ],
                env=env,
                cwd=tmp_path,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=1200,
                check=False,
            )
        log_tail = (tmp_path / "airflow.log").read_text()[-6000:]
        assert proc.returncode == 0, log_tail
        summary = json.loads(summary_file.read_text())
        expected = {
            c["id"]
            for c in emulator.visible(ACCOUNT, PROJECTS[0])
            if c["environment"] == "live" and c["started_at"] >= iso(start)
        }

    assert summary["import_errors"] == {}
    assert summary["captured_warnings"] == {}
    assert summary["warnings"] == []
    assert summary["dags"] == ["polyai_shards"]
    assert summary["state"].endswith("success"), (summary, log_tail)
    shard = plan_shards(start, NOW, projects=[(ACCOUNT, PROJECTS[0])])[0]
    assert [task[:2] for task in summary["tasks"]] == [
        ["plan", -1],
        ["prepare_meltano", -1],
        ["run_shard", 0],  # the one mapped shard
    ]
    assert all(task[2].endswith("success") for task in summary["tasks"]), summary["tasks"]
    with psycopg.connect(postgres_url(database), autocommit=True) as db:
        loaded = {row[0] for row in db.execute(f"select id from {SCHEMA}.conversations")}
        assert loaded == expected
        assert set(_states(db)) == {f"{STATE_ID}:{shard.name}"}
