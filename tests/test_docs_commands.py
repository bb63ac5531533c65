"""The command blocks of README.md and the docs pages users copy from, run as printed.

Every ```bash block of README.md, docs/quickstart.md, docs/duckdb.md, docs/postgres.md and
docs/meltano-project.md runs in order in one `bash -euo pipefail`, unless the line above it says
`<!-- not run: why -->`. Only the placeholders a reader replaces are filled (FILLS below): the
API key, Workspace ID, Agent ID and region become the bundled emulator's; the database name
`warehouse` becomes a fresh random one; the `pip_url` git tag becomes the wheel built from this
checkout. Then the test checks what landed against the emulator's truth.

Where the commands run, as a user would run them:
- the tap is installed (this checkout's `.venv/bin` is on PATH; tests/test_install.py proves the
  `pip install` itself in fresh virtualenvs), Meltano 4.4.1 is on PATH;
- `~` is a fresh home directory, so `~/.venvs/...` are built by the blocks themselves;
- the pages that say "in a clone" run in a copy of this checkout (its tracked and untracked,
  not ignored files); "your own Meltano project" runs in an empty directory outside it.
"""

from __future__ import annotations

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

from tap_polyai.emulator import Emulator
from tests.conftest import ACCOUNT, DATA_START, KEYS, iso, make_emulator
from tests.docs_support import ROOT, bash_blocks
from tests.pipeline_support import require_postgres, require_venv, unavailable

pytestmark = pytest.mark.pipeline

PROJECT = "PROJECT-alpha"
MELTANO = "meltano[postgres]==4.4.1"  # the same venv tests/test_orchestration.py uses
# Run with a target-duckdb venv's Python (duckdb<1.3 closes a connection nobody holds).
COUNT_DUCKDB = (
    "import duckdb; con = duckdb.connect('conversations.duckdb', read_only=True); "
    "print(con.sql('select count(*), count(distinct id) from polyai.conversations').fetchone())"
)
GIT_TAG_URL = "git+https://github.com/YOUR-ORG/tap-polyai.git@v0.2.0"


def fills(emulator: Emulator, database: str = "") -> list[tuple[str, str]]:
    """What a reader replaces, and what the test puts there."""
    return [
        ("YOUR-API-KEY", KEYS[PROJECT]),
        ("ws-XXXXXXXX", ACCOUNT),
        ("PROJECT-XXXXXXXX", PROJECT),
        ('"region": "uk-1"', f'"api_url": "{emulator.base_url}"'),
        ("TAP_POLYAI_REGION=uk-1", f"TAP_POLYAI_API_URL={emulator.base_url}"),
        ("2026-01-01T00:00:00Z", iso(DATA_START)),
        *([("warehouse", database)] if database else []),
    ]


def script(pages: list[str], replacements: list[tuple[str, str]]) -> str:
    """The runnable blocks of `pages`, in order, with the placeholders filled."""
    blocks = [b.body for page in pages for b in bash_blocks(page) if b.runs]
    assert blocks, pages
    text = "\n".join(blocks)
    for placeholder, value in replacements:
        text = text.replace(placeholder, value)
    for placeholder in ("YOUR-API-KEY", "ws-XXXXXXXX", "PROJECT-XXXXXXXX", "YOUR-ORG"):
        assert placeholder not in text, f"{placeholder} left unfilled"
    return "set -euo pipefail\n" + text + "\n"


def truth(emulator: Emulator) -> set[str]:
    return {c["id"] for c in emulator.visible(ACCOUNT, PROJECT) if c["environment"] == "live"}


def meltano_bin() -> Path:
    return require_venv("meltano", MELTANO, timeout=1800) / "bin"


def run(text: str, cwd: Path, home: Path, *path: Path) -> subprocess.CompletedProcess[str]:
    """`text` in bash, as a user with the tap (and `path`) installed would run it."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TAP_POLYAI_", "TARGET_", "MELTANO_", "DBT_", "VIRTUAL_ENV", "PIP_"))
        and k not in {"PYTHONPATH", "HOME"}
    }
    env = {
        **inherited,
        "HOME": str(home),
        "PATH": os.pathsep.join(
            [str(Path(sys.executable).parent), *map(str, path), os.environ["PATH"]]
        ),
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DO_NOT_TRACK": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_COMPILE": "1",
    }
    (cwd / "docs-commands.sh").write_text(text)
    proc = subprocess.run(
        ["bash", "docs-commands.sh"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    (cwd / "docs-commands.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    assert proc.returncode == 0, (
        f"rc={proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    )
    return proc


def clone(into: Path) -> Path:
    """A copy of this checkout as `git clone` would give it (plus uncommitted work)."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        source = ROOT / name
        if source.is_file():
            target = into / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return into


def records(path: Path, stream: str) -> list[dict[str, t.Any]]:
    out = []
    for line in path.read_text().splitlines():
        message = json.loads(line)
        if message.get("type") == "RECORD" and message["stream"] == stream:
            out.append(message["record"])
    return out


@pytest.fixture
def scratch(tmp_path: Path) -> tuple[Path, Path]:
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    return work, home


@pytest.fixture
def warehouse() -> t.Iterator[str]:
    """A database name for the pages' `warehouse` (they create it), dropped afterwards."""
    admin_url = require_postgres()
    if "@127.0.0.1:5432/" not in admin_url or not admin_url.startswith("postgresql://postgres"):
        unavailable(f"the docs use postgres@127.0.0.1:5432; this server is {admin_url}")
    name = f"docs_{uuid.uuid4().hex[:10]}"
    try:
        yield name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _loaded(database: str) -> tuple[int, int]:
    url = require_postgres().rpartition("/")[0] + f"/{database}"
    with psycopg.connect(url) as db:
        row = db.execute("select count(*), count(distinct id) from polyai.conversations").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def test_quickstart(scratch: tuple[Path, Path]) -> None:
    work, home = scratch
    with make_emulator() as emulator:
        proc = run(script(["quickstart.md"], fills(emulator)), work, home)
        expected = truth(emulator)
    assert "Pre-flight OK" in proc.stderr
    loaded = {r["id"] for r in records(work / "out.jsonl", "conversations")}
    assert loaded == expected
    # The page's own count (grep -c) printed the same number.
    assert proc.stdout.split()[-1] == str(len(records(work / "out.jsonl", "conversations")))


def test_duckdb_page(scratch: tuple[Path, Path]) -> None:
    work, home = scratch
    with make_emulator() as emulator:
        proc = run(script(["quickstart.md", "duckdb.md"], fills(emulator)), work, home)
        expected = truth(emulator)
    python = home / ".venvs" / "target-duckdb" / "bin" / "python"
    count = subprocess.run(
        [
            str(python),
            "-c",
            COUNT_DUCKDB,
        ],
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert count.strip() == f"({len(expected)}, {len(expected)})"
    assert '"bookmarks"' in (work / "state.out").read_text().splitlines()[-1]
    assert "turns" in proc.stdout  # the page's query printed its result


def test_postgres_page_pipe_and_prod_environment(
    scratch: tuple[Path, Path], warehouse: str
) -> None:
    """The plain pipe, then this repository's `prod` environment with only variables set."""
    work, home = scratch
    checkout = clone(work / "tap-polyai")
    meltano = meltano_bin()
    with make_emulator() as emulator:
        text = script(["quickstart.md", "postgres.md"], fills(emulator, warehouse))
        assert "meltano --environment prod run polyai-to-postgres" in text
        proc = run(text, checkout, home, meltano)
        expected = truth(emulator)
    assert _loaded(warehouse) == (len(expected), len(expected))
    # Meltano ran the job and saved its state (`meltano state list` printed the state ID).
    assert "prod:tap-polyai-to-target-postgres" in proc.stdout
    assert "Incremental state has been updated" in proc.stderr


def test_readme_first_sync_and_postgres_load(scratch: tuple[Path, Path], warehouse: str) -> None:
    work, home = scratch
    with make_emulator() as emulator:
        run(script(["README.md"], fills(emulator, warehouse)), work, home)
        expected = truth(emulator)
    assert _loaded(warehouse) == (len(expected), len(expected))
    assert {r["id"] for r in records(work / "out.jsonl", "conversations")} == expected


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if build.returncode != 0:
        unavailable(f"cannot build the wheel: {build.stderr[-2000:]}")
    (built,) = out.glob("tap_polyai-*.whl")
    return built


def test_your_own_meltano_project(scratch: tuple[Path, Path], wheel: Path) -> None:
    """Outside this checkout: the tap as a custom plugin from a wheel, into DuckDB, scheduled."""
    work, home = scratch
    assert not work.is_relative_to(ROOT)
    meltano = meltano_bin()
    with make_emulator() as emulator:
        text = script(["meltano-project.md"], [(GIT_TAG_URL, str(wheel)), *fills(emulator)])
        proc = run(text, work, home, meltano)
        expected = truth(emulator)
    project = work / "polyai-pipeline"
    output = proc.stdout + proc.stderr
    assert "[@hourly] job polyai-hourly: polyai-to-duckdb" in output
    # The tap Meltano installed is the wheel's, not an editable install of this checkout.
    tap_venv = project / ".meltano" / "extractors" / "tap-polyai" / "venv"
    show = subprocess.run(
        [str(tap_venv / "bin" / "python"), "-m", "pip", "show", "-f", "tap-polyai"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    if not show:  # uv-built venvs may lack pip: read the installed metadata instead
        metadata = tap_venv.glob("lib/python*/site-packages/tap_polyai-*.dist-info/METADATA")
        show = "".join(p.read_text() for p in metadata)
    assert "0.2.0" in show
    assert not list(tap_venv.glob("lib/python*/site-packages/__editable__*tap_polyai*"))
    duckdb_python = project / ".meltano" / "loaders" / "target-duckdb" / "venv" / "bin" / "python"
    count = subprocess.run(
        [
            str(duckdb_python),
            "-c",
            COUNT_DUCKDB,
        ],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert count.strip() == f"({len(expected)}, {len(expected)})"
    # `meltano state get` printed the bookmark of the first run; the scheduled run went on.
    assert '"replication_key_value"' in output
    assert output.count("Incremental state has been updated") >= 2
