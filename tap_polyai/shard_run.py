"""Run one shard as its own Meltano run, isolated from every other shard running at once.

Why each rule (measured with Meltano 4.4.1, see docs/scheduling.md, "Large backfills in parallel"):
- Concurrent `meltano run`s in one project directory share `.meltano/run/<plugin>/` (the
  catalog, rewritten by every run, and `state.json`): shards failed, or read each other's state.
  So each shard gets its own Meltano system directory (`MELTANO_SYS_DIR_ROOT`), with the
  installed plugins (`extractors/`, `loaders/`) linked from the project's `.meltano`, so nothing
  is installed twice.
- Its state must still be found by the next run of the same shard, on whichever worker: the
  system database (state) is one shared PostgreSQL database, `MELTANO_DATABASE_URI`. SQLite in
  a per-shard directory would lose the state with the directory; SQLite shared between workers
  does not work.
- Each shard has its own state ID: `meltano run --state-id-suffix <shard name>`.
- `--force`: a shard killed mid-run (SIGKILL, a lost worker) leaves its Meltano job marked
  running, and Meltano refuses a new run of that state ID until the job's heartbeat goes stale
  (minutes), so the orchestrator's retry would fail. A shard runs once at a time by
  construction (one plan run at a time: Airflow `max_active_runs=1`, one Dagster run per plan).

`python -m tap_polyai.shard_run SHARD_JSON` is the same for any orchestrator (the Airflow DAG
uses it). Pure standard library.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from tap_polyai.shards import Shard

PLUGIN_DIRS = ("extractors", "loaders")


@dataclass(frozen=True)
class MeltanoProject:
    """Where the Meltano project is and how shards of it run."""

    project_dir: Path
    meltano: Path  # the meltano executable (e.g. .venv-meltano/bin/meltano)
    environment: str = "prod"
    extractor: str = "tap-polyai"
    loader: str = "target-postgres"
    run_root: Path | None = None  # per-shard system dirs; default <project>/.meltano/shards
    extra_args: tuple[str, ...] = field(default=())

    @classmethod
    def from_env(cls, environ: t.Mapping[str, str] = os.environ) -> MeltanoProject:
        """From POLYAI_MELTANO_PROJECT_DIR, POLYAI_MELTANO, POLYAI_MELTANO_ENVIRONMENT, ..."""
        project_dir = Path(environ.get("POLYAI_MELTANO_PROJECT_DIR") or Path.cwd())
        meltano = environ.get("POLYAI_MELTANO") or project_dir / ".venv-meltano" / "bin" / "meltano"
        run_root = environ.get("POLYAI_SHARD_RUN_ROOT")
        return cls(
            project_dir=project_dir,
            meltano=Path(meltano),
            environment=environ.get("POLYAI_MELTANO_ENVIRONMENT", "prod"),
            extractor=environ.get("POLYAI_EXTRACTOR", "tap-polyai"),
            loader=environ.get("POLYAI_LOADER", "target-postgres"),
            run_root=Path(run_root) if run_root else None,
        )

    @property
    def base_sys_dir(self) -> Path:
        return self.project_dir / ".meltano"

    def shard_dir(self, shard: Shard) -> Path:
        return (self.run_root or self.base_sys_dir / "shards") / shard.name

    def command(self, *args: str) -> list[str]:
        return [str(self.meltano), "--environment", self.environment, *args]

    def shared_env(self, environ: t.Mapping[str, str]) -> dict[str, str]:
        uri = environ.get("MELTANO_DATABASE_URI", "")
        if not uri.startswith("postgresql"):
            raise RuntimeError(
                "MELTANO_DATABASE_URI must name the shared PostgreSQL system database "
                "(postgresql+psycopg://...): every shard's state lives there."
            )
        return {**environ, "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false"}

    def prepare(self, environ: t.Mapping[str, str] = os.environ) -> None:
        """Once, before shards start: install the plugins, create the system database tables.

        Done serially so that shards never install plugins or migrate the database at once.
        """
        env = self.shared_env(environ)
        env.pop("MELTANO_SYS_DIR_ROOT", None)
        for args in (
            ("install", "--plugin-type", "extractors", self.extractor),
            ("install", "--plugin-type", "loaders", self.loader),
            ("state", "list"),  # runs the system database migrations
        ):
            subprocess.run(self.command(*args), cwd=self.project_dir, env=env, check=True)

    def shard_env(self, shard: Shard, environ: t.Mapping[str, str]) -> dict[str, str]:
        """The environment of one shard's run; creates its isolated system directory.

        The run root and the shard's directory are made here, mode 0700, and must be real
        directories (not symlinks); the plugin links must be the ones this runner makes.
        Anything planted there by someone else is refused, never written through.
        """
        sys_dir = self.shard_dir(shard)
        _own_directory(sys_dir.parent)
        _own_directory(sys_dir)
        for name in PLUGIN_DIRS:
            link, target = sys_dir / name, self.base_sys_dir / name
            if not target.is_dir():
                raise RuntimeError(f"{target} is missing: run the prepare step first")
            if link.is_symlink():
                if os.readlink(link) != str(target):
                    raise RuntimeError(f"{link} is a symlink this runner did not make: remove it")
            elif link.exists():
                raise RuntimeError(f"{link} exists and is not this runner's link: remove it")
            else:
                link.symlink_to(target, target_is_directory=True)
        return {
            **self.shared_env(environ),
            **shard.env(environ),
            "MELTANO_SYS_DIR_ROOT": str(sys_dir),
        }

    def run_command(self, shard: Shard) -> list[str]:
        return self.command(
            "run",
            "--state-id-suffix",
            shard.name,
            "--force",
            *self.extra_args,
            self.extractor,
            self.loader,
        )

    def run(self, shard: Shard, environ: t.Mapping[str, str] = os.environ) -> None:
        """One shard's `meltano run`; raises CalledProcessError when it fails.

        Its own session (process group), so that stopping the shard stops the tap and the
        target too; the pid is written to `<shard dir>/meltano.pid` for operators.
        """
        env = self.shard_env(shard, environ)
        with subprocess.Popen(
            self.run_command(shard), cwd=self.project_dir, env=env, start_new_session=True
        ) as proc:
            _write_new(self.shard_dir(shard) / "meltano.pid", str(proc.pid))
            try:
                returncode = proc.wait()
            except BaseException:
                proc.kill()
                raise
        if returncode != 0:
            raise subprocess.CalledProcessError(returncode, self.run_command(shard))


def _own_directory(path: Path) -> None:
    """Create `path` (and its parents) with mode 0700, or check it is a real directory."""
    if path.is_symlink():
        raise RuntimeError(f"{path} is a symlink this runner did not make: remove it")
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.is_symlink() or not path.is_dir():
        raise RuntimeError(f"{path} is not a directory this runner made: remove it")


def _write_new(path: Path, text: str) -> None:
    """Write `path` as a regular file of ours; never follow a symlink planted in its place."""
    if path.is_symlink():
        path.unlink()  # planted: removed, not followed (the runner owns this directory)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)


def main(argv: t.Sequence[str] = sys.argv[1:]) -> int:
    """`python -m tap_polyai.shard_run '<shard json>'` or `... --prepare`."""
    project = MeltanoProject.from_env()
    if list(argv) == ["--prepare"]:
        project.prepare()
        return 0
    if len(argv) != 1:
        print("usage: python -m tap_polyai.shard_run (--prepare | SHARD_JSON)", file=sys.stderr)
        return 2
    shard = Shard.from_dict(json.loads(argv[0]))
    try:
        project.run(shard)
    except subprocess.CalledProcessError as exc:
        print(f"shard {shard.name}: meltano exited {exc.returncode}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
