"""Airflow 3: tap-polyai shards in parallel, each an isolated Meltano run (see docs/scheduling.md).

    prepare_meltano -> plan -> run_shard (dynamically mapped, one task instance per shard)

- `prepare_meltano` installs the plugins and migrates the shared system database once, so
  shards never do it at the same time.
- `plan` calls `tap_polyai.shards.plan_shards` with the DAG params: no gap, no overlap, one
  state ID per shard.
- `run_shard` runs `python -m tap_polyai.shard_run <shard>`: `meltano run --state-id-suffix
  <shard>` in the shard's own `MELTANO_SYS_DIR_ROOT`; a retry resumes from its checkpoint.
- At most `POLYAI_SHARDS_AT_ONCE` shards run at once: a key sees at most
  POLYAI_SHARDS_AT_ONCE x `max_concurrency` requests at a time.

Worker environment: the same variables as the Dagster recipe (POLYAI_MELTANO_PROJECT_DIR,
POLYAI_MELTANO, MELTANO_DATABASE_URI = the shared PostgreSQL, TAP_POLYAI_PROJECTS, the
loader's settings, ...). `tap_polyai.shards`/`shard_run` are standard library only; the tasks
put the checkout on PYTHONPATH themselves.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import sys

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import Param, dag, get_current_context, task

PROJECT_DIR = os.environ.get("POLYAI_MELTANO_PROJECT_DIR", "/opt/tap-polyai")
PYTHON = os.environ.get("POLYAI_PYTHON", sys.executable)  # any python3 will do
SHARDS_AT_ONCE = int(os.environ.get("POLYAI_SHARDS_AT_ONCE", "4"))
SHARD_RUN = f"{shlex.quote(PYTHON)} -m tap_polyai.shard_run"


@dag(
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_tasks=SHARDS_AT_ONCE,
    max_active_runs=1,  # a shard never runs twice at once (shard_run uses meltano --force)
    params={
        "start_date": Param("2024-01-01T00:00:00Z", type="string"),
        "end_date": Param(None, type=["null", "string"]),
        "every_days": Param(None, type=["null", "integer"], minimum=1),
        "by_project": Param(False, type="boolean"),
    },
    tags=["tap-polyai"],
)
def polyai_shards() -> None:
    prepare = BashOperator(
        task_id="prepare_meltano",
        bash_command=f"{SHARD_RUN} --prepare",
        cwd=PROJECT_DIR,
        env={"PYTHONPATH": PROJECT_DIR},
        append_env=True,
    )

    @task
    def plan() -> list[dict[str, str]]:
        """One environment per shard: the shard as JSON, and where `tap_polyai` is."""
        if PROJECT_DIR not in sys.path:
            sys.path.append(PROJECT_DIR)
        from tap_polyai.shards import plan_shards, projects_of

        params = get_current_context()["params"]
        every = dt.timedelta(days=params["every_days"]) if params["every_days"] else None
        projects = projects_of(os.environ) if params["by_project"] else None
        shards = plan_shards(
            params["start_date"], params["end_date"], every=every, projects=projects
        )
        return [{"SHARD": json.dumps(s.to_dict()), "PYTHONPATH": PROJECT_DIR} for s in shards]

    shards = plan()
    prepare >> shards
    BashOperator.partial(
        task_id="run_shard",
        bash_command=f'{SHARD_RUN} "$SHARD"',
        cwd=PROJECT_DIR,
        append_env=True,
        retries=2,
        retry_delay=dt.timedelta(seconds=30),
        max_active_tis_per_dagrun=SHARDS_AT_ONCE,
    ).expand(env=shards)


polyai_shards()
