"""Run `source-polyai` (the installed console script) and check its output with Airbyte's own
protocol models (`airbyte-protocol-models-pdv2`, the pydantic models of airbyte_protocol.yaml).
"""

from __future__ import annotations

import json
import subprocess
import sys
import typing as t
from dataclasses import dataclass
from pathlib import Path

from airbyte_protocol.models import AirbyteMessage, AirbyteStateBlob
from pydantic import BaseModel
from tap_runner import parse_messages

SOURCE = Path(sys.executable).parent / "source-polyai"


@dataclass
class SourceRun:
    messages: list[dict[str, t.Any]]
    returncode: int
    stderr: str

    def of_type(self, kind: str) -> list[dict[str, t.Any]]:
        return [m for m in self.messages if m["type"] == kind]

    def records(self, stream: str = "conversations") -> list[dict[str, t.Any]]:
        return [
            m["record"]["data"] for m in self.of_type("RECORD") if m["record"]["stream"] == stream
        ]

    def states(self, stream: str = "conversations") -> list[dict[str, t.Any]]:
        """`stream_state` of each STATE message for `stream`, in order."""
        return [
            m["state"]["stream"]["stream_state"]
            for m in self.of_type("STATE")
            if m["state"]["stream"]["stream_descriptor"]["name"] == stream
        ]

    @property
    def state_messages(self) -> list[dict[str, t.Any]]:
        """The last STATE of each stream: what the platform stores and passes to `--state`."""
        last: dict[str, dict[str, t.Any]] = {}
        for message in self.of_type("STATE"):
            last[message["state"]["stream"]["stream_descriptor"]["name"]] = message["state"]
        return list(last.values())

    def statuses(self, stream: str) -> list[str]:
        return [
            m["trace"]["stream_status"]["status"]
            for m in self.of_type("TRACE")
            if m["trace"]["type"] == "STREAM_STATUS"
            and m["trace"]["stream_status"]["stream_descriptor"]["name"] == stream
        ]

    @property
    def errors(self) -> list[dict[str, t.Any]]:
        return [m["trace"]["error"] for m in self.of_type("TRACE") if m["trace"]["type"] == "ERROR"]

    @property
    def logs(self) -> str:
        return "\n".join(m["log"]["message"] for m in self.of_type("LOG"))


def configured_catalog(
    catalog: dict[str, t.Any], streams: t.Iterable[str] | None = None, mode: str = "incremental"
) -> dict[str, t.Any]:
    """A ConfiguredAirbyteCatalog for `streams` (default: all) of a discovered catalog."""
    wanted = None if streams is None else set(streams)
    return {
        "streams": [
            {
                "stream": stream,
                "sync_mode": mode,
                "destination_sync_mode": "append_dedup" if mode == "incremental" else "overwrite",
                "cursor_field": stream.get("default_cursor_field", []),
                "primary_key": stream["source_defined_primary_key"],
            }
            for stream in catalog["streams"]
            if wanted is None or stream["name"] in wanted
        ]
    }


def run_source(
    command: str,
    tmp_path: Path,
    *,
    config: dict[str, t.Any] | None = None,
    catalog: dict[str, t.Any] | None = None,
    state: t.Any = None,
    timeout: float = 180,
    executable: Path = SOURCE,
) -> SourceRun:
    """`source-polyai COMMAND` with its files written to `tmp_path`; every message validated."""
    args = [str(executable), command]
    for option, value in (("config", config), ("catalog", catalog), ("state", state)):
        if value is not None:
            path = tmp_path / f"{option}.json"
            path.write_text(json.dumps(value))
            args += [f"--{option}", str(path)]
    proc = subprocess.run(args, capture_output=True, timeout=timeout, check=False)
    run = SourceRun(parse_messages(proc.stdout), proc.returncode, proc.stderr.decode())
    assert_protocol_messages(run.messages)
    return run


def discover_catalog(config: dict[str, t.Any], tmp_path: Path) -> dict[str, t.Any]:
    run = run_source("discover", tmp_path, config=config)
    assert run.returncode == 0, run.stderr + run.logs
    return t.cast(dict[str, t.Any], run.of_type("CATALOG")[0]["catalog"])


def _extras(value: t.Any, path: str) -> list[str]:
    """Fields the protocol does not declare (the models allow extras; the protocol does not)."""
    found: list[str] = []
    if isinstance(value, BaseModel):
        if value.model_extra and not isinstance(value, AirbyteStateBlob):
            found += [f"{path}.{key}" for key in value.model_extra]
        for name in type(value).model_fields:
            found += _extras(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _extras(item, f"{path}[{index}]")
    return found


def assert_protocol_messages(messages: list[dict[str, t.Any]]) -> None:
    """Each message is an AirbyteMessage, with no field outside the protocol."""
    for message in messages:
        model = AirbyteMessage.model_validate(message)
        assert not _extras(model, message["type"]), (_extras(model, message["type"]), message)
