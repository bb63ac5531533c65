"""Helpers for the analytics tests: run the dbt project (transform/) and compute, straight from
the emulator's records, the metrics its models must show.

dbt runs from its own virtualenv per adapter (built once under .venv-targets, like the Singer
targets), with its target and log directories in the test's tmp dir so that concurrent tests
never share dbt's partial-parse state.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import typing as t
from collections import defaultdict
from pathlib import Path

from tests.pipeline_support import (
    ROOT,
    VenvUnavailableError,
    python_at_least,
    target_venv,
    unavailable,
)

PROJECT_DIR = ROOT / "transform"
PROFILES_DIR = PROJECT_DIR / "profiles"

# dbt-core 1.12.0: 1.12.1+ depend on a dbt-core-experimental-parser that downloads its wheel
# from GitHub at install time; 1.12.0 accepts the parser wheel PyPI has. meltano.yml pins the
# same requirements (without fakesnow).
_DBT_CORE = "dbt-core==1.12.0 dbt-core-experimental-parser==2.0.0a4"
DBT_REQUIREMENTS = {
    "duckdb": f"{_DBT_CORE} dbt-duckdb==1.11.1 duckdb<1.3",
    "postgres": f"{_DBT_CORE} dbt-postgres==1.11.0",
    # fakesnow: the tests run dbt-snowflake against it (no Snowflake account here).
    "snowflake": f"{_DBT_CORE} dbt-snowflake==1.12.4 fakesnow==0.12.1",
}

MODELS = (
    "stg_polyai__conversations",
    "stg_polyai__turns",
    "polyai_daily",
    "polyai_handoff_reasons",
    "polyai_variant_comparison",
)


def dbt_venv(adapter: str) -> Path:
    """The dbt-<adapter> virtualenv, built on first use (fails in CI when it cannot be)."""
    # fakesnow 0.12.1 needs Python >= 3.11 (the CI matrix also runs 3.10).
    python = python_at_least(11) if "fakesnow" in DBT_REQUIREMENTS[adapter] else sys.executable
    if python is None:
        unavailable(f"dbt-{adapter}: fakesnow 0.12.1 needs Python >= 3.11, none on PATH")
    try:
        return target_venv(f"dbt-{adapter}", DBT_REQUIREMENTS[adapter], python=python)
    except VenvUnavailableError as exc:
        unavailable(f"cannot build the dbt-{adapter} venv: {exc}")


def run_dbt(
    venv: Path,
    args: list[str],
    env: dict[str, str],
    workdir: Path,
    *,
    check: bool = True,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """`dbt ARGS` on transform/ with the profile's variables in `env`; output kept in workdir."""
    workdir.mkdir(parents=True, exist_ok=True)
    full_env = {
        **os.environ,
        "DBT_PROFILES_DIR": str(PROFILES_DIR),
        "DBT_PROJECT_DIR": str(PROJECT_DIR),
        "DBT_TARGET_PATH": str(workdir / "target"),
        "DBT_LOG_PATH": str(workdir / "logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_THREADS": "2",
        **env,
    }
    done = subprocess.run(
        [str(venv / "bin" / "dbt"), *args],
        env=full_env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    (workdir / f"dbt-{args[0]}.log").write_text(done.stdout + done.stderr)
    if check and done.returncode != 0:
        command = " ".join(args)
        raise AssertionError(f"dbt {command} exited {done.returncode}:\n{done.stdout[-6000:]}")
    return done


def build_summary(output: str) -> dict[str, int]:
    """PASS/WARN/ERROR/SKIP counts of dbt's final `Done.` line."""
    line = next(x for x in reversed(output.splitlines()) if "Done. PASS=" in x)
    return {
        key: int(value)
        for key, value in (part.split("=") for part in line.split("Done. ", 1)[1].split())
    }


# -- expected values, computed from the records the API showed --------------------------------


def _day(record: dict[str, t.Any]) -> dt.date:
    started = dt.datetime.fromisoformat(str(record["started_at"]).replace("Z", "+00:00"))
    return started.astimezone(dt.timezone.utc).date()


def percentile_cont(values: list[float], fraction: float) -> float | None:
    """SQL's percentile_cont: linear interpolation between the closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def conversations_per_day(records: t.Iterable[dict[str, t.Any]]) -> dict[tuple[str, str], int]:
    """(project_id, ISO day) -> conversations started that UTC day."""
    out: dict[tuple[str, str], int] = defaultdict(int)
    for rec in records:
        out[(rec["project_id"], _day(rec).isoformat())] += 1
    return dict(out)


def containment(records: t.Iterable[dict[str, t.Any]]) -> dict[str, tuple[int, int, float]]:
    """project_id -> (finished, contained, containment rate), as docs/analytics.md defines them."""
    finished: dict[str, int] = defaultdict(int)
    contained: dict[str, int] = defaultdict(int)
    for rec in records:
        if not rec["in_progress"]:
            finished[rec["project_id"]] += 1
            if not rec["handoff"]:
                contained[rec["project_id"]] += 1
    return {p: (n, contained[p], contained[p] / n) for p, n in finished.items()}


def variant_metrics(
    records: t.Iterable[dict[str, t.Any]],
) -> dict[tuple[str, str | None], dict[str, float | None]]:
    """(project_id, variant_id) -> median duration of finished calls and p95 turn latency."""
    durations: dict[tuple[str, str | None], list[float]] = defaultdict(list)
    latencies: dict[tuple[str, str | None], list[float]] = defaultdict(list)
    keys = set()
    for rec in records:
        key = (rec["project_id"], rec.get("variant_id") or None)
        keys.add(key)
        if not rec["in_progress"] and rec.get("total_duration") is not None:
            durations[key].append(float(rec["total_duration"]))
        for turn in rec.get("turns") or []:
            if turn.get("latency") is not None:
                latencies[key].append(float(turn["latency"]))
    return {
        key: {
            "median_duration_seconds": percentile_cont(durations[key], 0.5),
            "p95_latency_seconds": percentile_cont(latencies[key], 0.95),
        }
        for key in keys
    }


def handoffs_by_reason(records: t.Iterable[dict[str, t.Any]]) -> dict[tuple[str, str], int]:
    """(reason, destination) -> finished conversations handed off ('(none given)' if empty)."""
    out: dict[tuple[str, str], int] = defaultdict(int)
    for rec in records:
        if rec["handoff"] and not rec["in_progress"]:
            reason = rec.get("handoff_reason") or "(none given)"
            destination = rec.get("handoff_destination") or "(none given)"
            out[(reason, destination)] += 1
    return dict(out)
