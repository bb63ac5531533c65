"""Run the tap against the emulator and collect its Singer messages.

In-process runs are fast and let a test read every message; `run_cli` runs the real console
entry point in a subprocess, for what only a process shows (stderr, exit codes, SIGKILL).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import signal
import subprocess
import sys
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema

from tap_polyai.tap import TapPolyAI

TAP_COMMAND = [sys.executable, "-c", "from tap_polyai.tap import main; main()"]


@dataclass
class TapRun:
    messages: list[dict[str, t.Any]]
    stderr: str = ""
    returncode: int = 0
    extra: dict[str, t.Any] = field(default_factory=dict)

    def of_type(self, kind: str, stream: str | None = None) -> list[dict[str, t.Any]]:
        return [
            m
            for m in self.messages
            if m["type"] == kind and (stream is None or m.get("stream") == stream)
        ]

    def records(self, stream: str = "conversations") -> list[dict[str, t.Any]]:
        return [m["record"] for m in self.of_type("RECORD", stream)]

    @property
    def states(self) -> list[dict[str, t.Any]]:
        return [m["value"] for m in self.of_type("STATE")]

    @property
    def final_state(self) -> dict[str, t.Any]:
        return self.states[-1]


def assert_records_match_announced_schemas(run: TapRun) -> None:
    """Every RECORD validates against the latest SCHEMA of its stream written before it."""
    latest: dict[str, jsonschema.Draft7Validator] = {}
    for message in run.messages:
        if message["type"] == "SCHEMA":
            latest[message["stream"]] = jsonschema.Draft7Validator(message["schema"])
        elif message["type"] == "RECORD":
            validator = latest[message["stream"]]  # KeyError: a RECORD before any SCHEMA
            errors = sorted(validator.iter_errors(message["record"]), key=str)
            assert not errors, (message["stream"], [e.message[:200] for e in errors])


def discover(config: dict[str, t.Any]) -> dict[str, t.Any]:
    """The catalog `tap-polyai --discover` prints, everything selected by default."""
    return t.cast(dict[str, t.Any], TapPolyAI(config=config).catalog_dict)


def selecting(catalog: dict[str, t.Any], *streams: str) -> dict[str, t.Any]:
    """`catalog` (a copy) with `streams` selected too, e.g. `conversation_details`, which is
    off by default."""
    catalog = copy.deepcopy(catalog)
    for entry in catalog["streams"]:
        if entry["tap_stream_id"] in streams:
            for item in entry["metadata"]:
                if not item["breadcrumb"]:
                    item["metadata"]["selected"] = True
    return catalog


def parse_messages(stdout: bytes | str) -> list[dict[str, t.Any]]:
    text = stdout.decode() if isinstance(stdout, bytes) else stdout
    # Split on "\n" only, as Singer targets do: str.splitlines() would also split on U+0085 and
    # U+2028, which JSON carries unescaped inside strings.
    return [json.loads(line) for line in text.split("\n") if line.strip()]


def run_tap(
    config: dict[str, t.Any],
    state: dict[str, t.Any] | None = None,
    catalog: dict[str, t.Any] | None = None,
) -> TapRun:
    buffer = io.BytesIO()
    out = io.TextIOWrapper(buffer, encoding="utf-8")
    # The SDK updates the state it is given in place; keep the caller's copy intact.
    tap = TapPolyAI(config=config, state=copy.deepcopy(state), catalog=catalog)
    with contextlib.redirect_stdout(out):
        tap.sync_all()
        out.flush()
    return TapRun(parse_messages(buffer.getvalue()))


def run_cli(
    config: dict[str, t.Any],
    tmp_path: Path,
    *args: str,
    state: dict[str, t.Any] | None = None,
    timeout: float = 120,
) -> TapRun:
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config))
    command = [*TAP_COMMAND, "--config", str(config_file), *args]
    if state is not None:
        state_file = tmp_path / "state.json"
        state_file.write_text(json.dumps(state))
        command += ["--state", str(state_file)]
    proc = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    return TapRun(parse_messages(proc.stdout), proc.stderr.decode(), proc.returncode)


def run_cli_until_killed(
    config: dict[str, t.Any],
    tmp_path: Path,
    *,
    states: int,
    catalog: dict[str, t.Any] | None = None,
) -> list[dict[str, t.Any]]:
    """Run the CLI and SIGKILL it once it has written `states` STATE messages: what a crashed
    run left on its stdout, parsed."""
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config))
    extra: list[str] = []
    if catalog is not None:
        catalog_file = tmp_path / "catalog.json"
        catalog_file.write_text(json.dumps(catalog))
        extra = ["--catalog", str(catalog_file)]
    proc = subprocess.Popen(
        [*TAP_COMMAND, "--config", str(config_file), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    lines: list[bytes] = []
    seen = 0
    for line in proc.stdout:
        lines.append(line)
        seen += b'"type":"STATE"' in line.replace(b" ", b"")
        if seen == states:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return parse_messages(b"".join(lines))


def bookmark(state: dict[str, t.Any], project_id: str) -> str | None:
    """The bookmark of one project's partition in a tap state."""
    partitions = state["bookmarks"]["conversations"].get("partitions", [])
    for partition in partitions:
        if partition["context"]["project_id"] == project_id:
            return t.cast(str | None, partition.get("replication_key_value"))
    return None
