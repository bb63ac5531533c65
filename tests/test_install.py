"""The package as users get it: the wheel, installed alone in a fresh virtualenv.

`make bootstrap` installs the dev group, which once hid that the emulator imported a dev-only
package. Here the wheel is built from this checkout and installed with nothing else (pip
resolves only its declared dependencies) on each supported Python, then `tap-polyai --about`,
`polyai-emulator` and the "your own CI" recipe of docs/emulator.md run from that virtualenv. The
recipe is read from the page, so the test checks what the docs print; only its `pip install`
line is pointed at the local wheel, and `your-target` is a shell function that keeps the tap's
output.

Pythons come from PATH (`python3.X`) or pyenv; `TAP_POLYAI_INSTALL_PYTHONS` (e.g. "3.12")
overrides the default list. A missing one skips on a laptop and fails in CI.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import shutil
import signal
import subprocess
import time
import typing as t
from pathlib import Path

import pytest
from pipeline_support import build_wheel, unavailable
from tap_runner import parse_messages

from tests.docs_support import block_after

pytestmark = pytest.mark.pipeline

RECIPE_MARKER = (
    "<!-- not run by test_docs_commands: tests/test_install.py runs it in fresh virtualenvs -->"
)
PYTHONS = os.environ.get("TAP_POLYAI_INSTALL_PYTHONS", "3.10 3.11 3.13").split()
RECIPE_PIP_LINE = re.compile(r'^pip install "tap-polyai @ [^"]*".*$', re.MULTILINE)


def _find_python(version: str) -> str | None:
    """pyenv's build of `version`, else `python3.X` on PATH (pyenv shims may not run it)."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [str(p) for p in sorted(root.glob(f"{version}.*/bin/python{version}"))]
    candidates += [p for p in [shutil.which(f"python{version}")] if p]
    for candidate in candidates:
        probe = subprocess.run([candidate, "-c", "pass"], capture_output=True, check=False)
        if probe.returncode == 0:
            return candidate
    return None


def _run(command: list[str], **kwargs: t.Any) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("timeout", 600)
    proc = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    assert proc.returncode == 0, f"{command} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this checkout, built by pip through the project's own build backend."""
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def _recipe() -> str:
    """The bash block of docs/emulator.md's "your own CI" section, as printed."""
    return block_after("emulator.md", RECIPE_MARKER)


def _install(version: str, wheel: Path, base: Path) -> tuple[str, Path, str]:
    """A fresh venv on Python `version`, with the wheel installed by the docs' recipe."""
    python = _find_python(version)
    if python is None:
        return version, base, "missing"
    venv = base / f"venv-{version}"
    _run([python, "-m", "venv", str(venv)], timeout=120)
    recipe = RECIPE_PIP_LINE.sub(f'pip install "{wheel}"', _recipe(), count=1)
    assert f'pip install "{wheel}"' in recipe, "the recipe's pip install line changed"
    script = base / f"recipe-{version}.sh"
    # The stand-in target is defined before the docs' block, which runs unchanged.
    out = base / f"target-{version}.jsonl"
    script.write_text(f'your-target() {{ cat > "{out}"; }}\n{recipe}')
    env = {
        **os.environ,
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        # Byte-compiling every dependency is CPU this test does not need to spend.
        "PIP_NO_COMPILE": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    proc = subprocess.run(
        ["bash", str(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
        cwd=base,
    )
    return (
        version,
        venv,
        f"rc={proc.returncode}\nstdout:{proc.stdout[-2000:]}\nstderr:{proc.stderr[-4000:]}",
    )


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Python version -> venv, each built (in parallel) by running the docs' recipe."""
    base = tmp_path_factory.mktemp("install")
    results: dict[str, Path] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(PYTHONS)) as pool:
        futures = [pool.submit(_install, v, wheel, base) for v in PYTHONS]
        outcomes = [f.result() for f in futures]
    missing = [v for v, _, log in outcomes if log == "missing"]
    if missing:
        unavailable(f"Python {', '.join(missing)} not found on PATH or in pyenv")
    for version, venv, log in outcomes:
        assert log.startswith("rc=0\n"), f"the recipe failed on Python {version}:\n{log}"
        out = venv.parent / f"target-{version}.jsonl"
        messages = parse_messages(out.read_text())
        streams = {m["stream"] for m in messages if m["type"] == "RECORD"}
        assert streams == {"conversations", "conversation_turns"}, (version, streams)
        # The recipe's last line printed the emulator's counters.
        assert '"served_ids"' in log, log
        results[version] = venv
    return results


@pytest.mark.parametrize("version", PYTHONS)
def test_about_from_a_clean_install(installed: dict[str, Path], version: str) -> None:
    venv = installed[version]
    proc = _run([str(venv / "bin" / "tap-polyai"), "--about", "--format", "json"], timeout=120)
    about = json.loads(proc.stdout)
    assert about["name"] == "tap-polyai"
    assert "api_key" in about["settings"]["properties"]
    # Nothing but the wheel's declared dependencies is there.
    pip = _run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format", "json"])
    names = {p["name"].lower() for p in json.loads(pip.stdout)}
    assert not names & {"orjson", "pytest", "hypothesis", "ruff", "mypy"}, names
    assert f"python{version}" in os.listdir(venv / "lib"), os.listdir(venv / "lib")


@pytest.mark.parametrize("version", PYTHONS)
def test_emulator_from_a_clean_install(
    installed: dict[str, Path], version: str, tmp_path: Path
) -> None:
    venv = installed[version]
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [
            str(venv / "bin" / "polyai-emulator"),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--conversations",
            "20",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            assert proc.poll() is None, f"polyai-emulator exited: {proc.communicate()[1][-2000:]}"
            assert time.monotonic() < deadline, "polyai-emulator wrote no port file in 60 s"
            time.sleep(0.05)
        port = int(port_file.read_text())
        health = _run(
            ["curl", "-sf", f"http://127.0.0.1:{port}/_emulator/health"], timeout=30
        ).stdout
        assert json.loads(health)["ok"] is True
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_recipe_stops_when_the_emulator_cannot_start(
    installed: dict[str, Path], tmp_path: Path
) -> None:
    """A dead emulator ends the docs' recipe with an error, not an endless wait."""
    venv = next(iter(installed.values()))
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "polyai-emulator").write_text("#!/bin/sh\necho 'address already in use' >&2\nexit 1\n")
    (fake / "polyai-emulator").chmod(0o755)
    script = tmp_path / "recipe.sh"
    script.write_text(f"your-target() {{ cat > /dev/null; }}\n{_recipe()}")
    env = {
        **os.environ,
        "PATH": f"{fake}{os.pathsep}{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
    }
    # The recipe's pip line points at a fork; make pip a no-op here, nothing else changes.
    (fake / "pip").write_text("#!/bin/sh\nexit 0\n")
    (fake / "pip").chmod(0o755)
    proc = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert proc.returncode != 0
    assert "polyai-emulator exited before it started" in proc.stderr, proc.stderr[-2000:]
