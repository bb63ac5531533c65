"""Run the shipped Dagster job in-process (multiprocess executor), for test_orchestration.py.

Runs in the Dagster virtualenv, not in the tap's: `python orchestration_dagster_run.py
RUN_CONFIG_JSON OUTPUT_JSON`, with orchestration/dagster and the checkout on PYTHONPATH.
"""

import json
import sys
import tempfile

import polyai_shards
from dagster import DagsterInstance, execute_job, reconstructable


def main() -> None:
    run_config, output = json.loads(sys.argv[1]), sys.argv[2]
    with (
        tempfile.TemporaryDirectory() as home,
        DagsterInstance.local_temp(home) as instance,
        execute_job(
            reconstructable(polyai_shards.polyai_shards), instance=instance, run_config=run_config
        ) as result,
    ):
        events = result.all_events
        summary = {
            "success": result.success,
            "retried_steps": sorted(
                {e.step_key for e in events if e.event_type_value == "STEP_UP_FOR_RETRY"}
            ),
            "succeeded_steps": sorted(
                {e.step_key for e in events if e.event_type_value == "STEP_SUCCESS"}
            ),
            "failed_steps": sorted(
                {e.step_key for e in events if e.event_type_value == "STEP_FAILURE"}
            ),
        }
    with open(output, "w") as out:
        json.dump(summary, out)


if __name__ == "__main__":
    main()
