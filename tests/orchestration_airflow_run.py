"""Parse the shipped Airflow DAG and `dag.test()` it, for test_orchestration.py.

Runs in the Airflow virtualenv: `python orchestration_airflow_run.py DAG_FOLDER RUN_CONF_JSON
OUTPUT_JSON` with AIRFLOW_HOME set to a scratch directory.
"""

import json
import subprocess
import sys
import warnings


def main() -> None:
    folder, run_conf, output = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    import airflow  # noqa: F401  (its own start-up warnings are not the DAG's)
    from airflow.dag_processing.dagbag import DagBag

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bag = DagBag(dag_folder=folder)
    summary: dict = {
        "import_errors": {k: str(v) for k, v in bag.import_errors.items()},
        "captured_warnings": {k: list(v) for k, v in bag.captured_warnings.items()},
        "warnings": [
            f"{w.category.__name__}: {w.message}" for w in caught if folder in str(w.filename)
        ],
        "dags": sorted(bag.dags),
    }
    if run_conf is not None and "polyai_shards" in bag.dags:
        subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True
        )
        dag = bag.dags["polyai_shards"]
        dag_run = dag.test(run_conf=run_conf)
        summary["state"] = str(dag_run.state)
        summary["tasks"] = sorted(
            (ti.task_id, ti.map_index, str(ti.state)) for ti in dag_run.get_task_instances()
        )
    with open(output, "w") as out:
        json.dump(summary, out)


if __name__ == "__main__":
    main()
