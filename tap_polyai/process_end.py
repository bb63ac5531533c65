"""End the process of a command-line run without the interpreter's teardown.

After a run, CPython tears down every module it loaded (about 470 for the tap: singer-sdk,
jsonschema, click, requests, msgspec): about 50 ms of CPU with no system call, a sixth of a
small incremental run (benchmarks/RESULTS.md, start-up) and nothing any of it needs. `end`
does what the teardown would do that matters, then leaves with `os._exit`:
- exit handlers run (`atexit`): the Singer writer's last bytes (output.py), logging's flush;
- stdout and stderr are flushed; if that fails (a reader that went away) the exit code is
  120, as Python's own exit gives;
- while a thread that is not a daemon still runs (a details pool not yet shut down, after an
  error), the normal exit is taken instead: it waits for the thread, as it always did.
Only the console scripts end this way (`tap-polyai`, `source-polyai`): code that calls
`TapPolyAI.cli()` in its own process gets the normal `SystemExit`.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import typing as t

# Python's own exit code when flushing stdout or stderr fails at exit
FLUSH_FAILED = 120


def exit_code(code: str | int | None) -> int:
    """The process exit code `sys.exit(code)` gives (a message is printed to stderr)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def end(code: str | int | None = 0) -> t.NoReturn:
    """Exit with `code` as `sys.exit` would, minus the teardown of the modules."""
    others = [
        thread
        for thread in threading.enumerate()
        if thread is not threading.main_thread() and not thread.daemon and thread.is_alive()
    ]
    if others:
        sys.exit(code)
    status = exit_code(code)
    atexit._run_exitfuncs()  # what the interpreter calls at exit
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            status = status or FLUSH_FAILED
    os._exit(status)


def run(command: t.Callable[[], object]) -> t.NoReturn:
    """Run a command-line entry point (which ends by `sys.exit`, or returns) and `end`."""
    try:
        command()
    except SystemExit as exc:
        end(exc.code)
    end(0)
