"""Dagster: tap-polyai shards in parallel, each an isolated Meltano run (see docs/scheduling.md).

    prepare_meltano -> plan (one dynamic output per shard) -> run_shard (mapped, in parallel)

- `prepare_meltano` installs the plugins and migrates the shared system database once, so
  shards never do it at the same time.
- `plan` calls `tap_polyai.shards.plan_shards`: no gap, no overlap, one state ID per shard.
- `run_shard` runs `meltano run --state-id-suffix <shard>` in the shard's own
  `MELTANO_SYS_DIR_ROOT`; a failed shard is retried and resumes from its own checkpoint.
- At most `POLYAI_SHARDS_AT_ONCE` shards run at once (multiprocess executor): a key sees at
  most POLYAI_SHARDS_AT_ONCE x `max_concurrency` requests at a time.

Environment of the Dagster code location (the worker):
  POLYAI_MELTANO_PROJECT_DIR  the checkout with meltano.yml (default: current directory)
  POLYAI_MELTANO              meltano executable (default: <project>/.venv-meltano/bin/meltano)
  POLYAI_MELTANO_ENVIRONMENT  default prod;  POLYAI_LOADER  default target-postgres
  MELTANO_DATABASE_URI        postgresql+psycopg://...  (required: shared state)
  POLYAI_SHARDS_AT_ONCE       default 4
  TAP_POLYAI_PROJECTS         [{account_id, project_id, api_key}, ...] (for by_project plans)
  plus the loader's settings (TARGET_POSTGRES_SQLALCHEMY_URL, ...).

`tap_polyai.shards` and `tap_polyai.shard_run` are standard library only: put the checkout on
PYTHONPATH (or `pip install --no-deps` it) in the Dagster environment.
"""

import datetime as dt
import os
import typing as t

from dagster import (
    Config,
    Definitions,
    DynamicOut,
    DynamicOutput,
    In,
    Nothing,
    OpExecutionContext,
    RetryPolicy,
    job,
    multiprocess_executor,
    op,
)

from tap_polyai.shard_run import MeltanoProject
from tap_polyai.shards import Shard, plan_shards, projects_of

SHARDS_AT_ONCE = int(os.environ.get("POLYAI_SHARDS_AT_ONCE", "4"))


class ShardPlan(Config):
    """What to cut: `[start_date, end_date)`, in pieces of `every_days`, per project or not."""

    start_date: str
    end_date: str | None = None  # None: one open-ended (incremental) shard per project
    every_days: int | None = None
    by_project: bool = False  # one shard per entry of TAP_POLYAI_PROJECTS


@op(description="Install the plugins and create the shared system database's tables, once.")
def prepare_meltano(context: OpExecutionContext) -> None:
    project = MeltanoProject.from_env()
    context.log.info(f"Preparing {project.project_dir} ({project.extractor}, {project.loader})")
    project.prepare()


@op(ins={"prepared": In(Nothing)}, out=DynamicOut(dict))
def plan(context: OpExecutionContext, config: ShardPlan) -> t.Iterator[DynamicOutput[dict]]:
    every = dt.timedelta(days=config.every_days) if config.every_days else None
    projects = projects_of(os.environ) if config.by_project else None
    shards = plan_shards(config.start_date, config.end_date, every=every, projects=projects)
    context.log.info(f"{len(shards)} shard(s), at most {SHARDS_AT_ONCE} at once")
    for shard in shards:
        yield DynamicOutput(shard.to_dict(), mapping_key=shard.name)


@op(retry_policy=RetryPolicy(max_retries=2, delay=5))
def run_shard(context: OpExecutionContext, shard: dict) -> dict:
    """One shard's `meltano run`; a retry resumes from the shard's last checkpoint."""
    context.log.info(f"Shard {shard['name']}: {shard}")
    MeltanoProject.from_env().run(Shard.from_dict(shard))
    return shard


# The tag lets the instance's run queue allow one run of the plan at a time
# (docs/scheduling.md): a shard must never run twice at once, since shard_run passes
# `meltano run --force`.
@job(
    executor_def=multiprocess_executor.configured({"max_concurrent": SHARDS_AT_ONCE}),
    tags={"tap-polyai/shards": "plan"},
)
def polyai_shards() -> None:
    plan(prepared=prepare_meltano()).map(run_shard)


defs = Definitions(jobs=[polyai_shards])
