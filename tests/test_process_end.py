"""`process_end.end`: the exit a console script takes, without the interpreter's teardown.

Each case runs in a fresh interpreter: what reaches its stdout and its exit code are what a
target or an orchestrator would see.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# A module-level object whose finaliser prints: it runs only if the interpreter tears down.
PROLOGUE = (
    "import atexit, sys, threading\n"
    "from tap_polyai import process_end\n"
    "class Teardown:\n"
    "    def __del__(self):\n"
    "        sys.stdout.write('teardown\\n')\n"
    "keep = Teardown()\n"
    "atexit.register(lambda: sys.stdout.write('atexit\\n'))\n"
)


# stdout block-buffered, as a console script's behind a pipe (this machine sets the variable)
BUFFERED = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROLOGUE + code],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env=BUFFERED,
    )


@pytest.mark.parametrize(
    ("code", "status", "stderr"),
    [("0", 0, ""), ("3", 3, ""), ("None", 0, ""), ("'bad setting'", 1, "bad setting\n")],
)
def test_end_runs_exit_handlers_flushes_and_skips_the_teardown(
    code: str, status: int, stderr: str
) -> None:
    # the last bytes are still in stdout's buffer (a pipe: block-buffered) when `end` runs
    done = _run(f"sys.stdout.write('last record')\nprocess_end.end({code})\n")
    assert done.returncode == status
    assert done.stdout == "last recordatexit\n"  # no "teardown": the modules were left alone
    assert done.stderr == stderr


def test_run_ends_with_the_commands_exit_code() -> None:
    done = _run("def command():\n    print('out')\n    sys.exit(2)\nprocess_end.run(command)\n")
    assert (done.returncode, done.stdout) == (2, "out\natexit\n")
    done = _run("process_end.run(lambda: print('out'))\n")
    assert (done.returncode, done.stdout) == (0, "out\natexit\n")


def test_a_running_thread_that_is_not_a_daemon_gets_the_normal_exit() -> None:
    """The normal exit waits for it: the thread goes on only once `end` chose that exit."""
    done = _run(
        "go = threading.Event()\n"
        "def work():\n"
        "    go.wait(30)\n"
        "    sys.stdout.write('thread done\\n')\n"
        "threading.Thread(target=work).start()\n"
        "sys.stdout.write('ending\\n')\n"
        "try:\n"
        "    process_end.end(4)\n"
        "except SystemExit:\n"
        "    go.set()\n"
        "    raise\n"
    )
    assert done.returncode == 4
    assert done.stdout.splitlines()[:3] == ["ending", "thread done", "atexit"]
    assert "teardown" in done.stdout


def test_a_reader_that_went_away_gives_python_s_exit_code() -> None:
    """stdout closed by its reader while the last bytes wait in its buffer: 120, as Python's
    own exit gives (the child holds them until the test has closed its end of the pipe)."""
    code = PROLOGUE + "sys.stdout.write('x' * 100)\nsys.stdin.read()\nprocess_end.end(0)\n"
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=BUFFERED,
    )
    assert proc.stdout is not None
    assert proc.stdin is not None
    proc.stdout.close()
    proc.stdin.close()
    assert proc.wait(60) == 120
