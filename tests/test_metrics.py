"""The Singer metrics an operator's monitoring reads: one `http_request_duration` per request,
tagged as the SDK's REST streams tag it, beside the SDK's `record_count` and `sync_duration`."""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import pytest
from docs_support import block_after
from hostile_server import (
    ACCOUNT,
    PROJECT,
    SECRET,
    Answer,
    HostileServer,
    Seen,
    conversations,
    hostile_config,
    page,
)
from tap_runner import discover, run_cli, selecting

from tap_polyai.emulator import Emulator
from tests.conftest import KEYS, tap_config


def metric_points(stderr: str, metric: str) -> list[dict[str, t.Any]]:
    points = []
    for line in stderr.splitlines():
        _, marker, text = line.partition("METRIC: ")
        if marker:
            point = json.loads(text)
            if point["metric"] == metric:
                points.append(point)
    return points


def test_each_request_is_one_http_request_duration_line_with_its_status(tmp_path: Path) -> None:
    """A 503 and its retry: two lines, `failed` with 503 then `succeeded` with 200, each tagged
    with the endpoint's template and the project, never the key or the query."""
    answers: list[Answer] = [
        (503, {}, {"error_code": "UNAVAILABLE", "error_id": "eid-1"}),
        (200, {}, page(conversations(3))),
    ]

    def respond(seen: Seen) -> Answer:
        return answers.pop(0)

    with HostileServer(respond) as api:  # type: ignore[arg-type]
        run = run_cli(hostile_config(api.base_url), tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert len(api.requests) == 2
    points = metric_points(run.stderr, "http_request_duration")
    assert [(p["tags"]["http_status_code"], p["tags"]["status"]) for p in points] == [
        (503, "failed"),
        (200, "succeeded"),
    ]
    for point in points:
        assert point["type"] == "timer"
        assert isinstance(point["value"], float)
        assert 0 <= point["value"] < 60
        assert point["tags"]["stream"] == "conversations"
        assert point["tags"]["endpoint"] == "/{api_version}/{account_id}/{project_id}/conversations"
        assert point["tags"]["context"] == {"account_id": ACCOUNT, "project_id": PROJECT}
    assert SECRET not in run.stderr
    (count,) = metric_points(run.stderr, "record_count")
    assert count["value"] == 3


LOG_CONFIG_MARKER = "<!-- the logging config tests/test_metrics.py runs the tap with -->"


def test_the_docs_log_config_drops_a_metric_and_writes_the_others_as_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/scheduling.md's `SINGER_SDK_LOG_CONFIG`, as printed: `record_count` filtered out
    (the SDK's MetricExclusionFilter), the other metrics written by its StructuredFormatter
    with the measurement as an object."""
    log_config = tmp_path / "logging.yml"
    log_config.write_text(block_after("scheduling.md", LOG_CONFIG_MARKER, language="yaml"))
    monkeypatch.setenv("SINGER_SDK_LOG_CONFIG", str(log_config))

    def respond(seen: Seen) -> Answer:
        return 200, {}, page(conversations(3))

    with HostileServer(respond) as api:  # type: ignore[arg-type]
        run = run_cli(hostile_config(api.base_url), tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert len(run.records("conversations")) == 3
    points = [
        json.loads(line)["metric_info"]
        for line in run.stderr.splitlines()
        if line.startswith("{") and '"metric_info"' in line
    ]
    assert sorted(p["metric"] for p in points) == ["http_request_duration", "sync_duration"]
    assert all(isinstance(p["value"], float) for p in points)
    assert "record_count" not in run.stderr
    assert SECRET not in run.stderr


def test_every_request_of_both_endpoints_has_its_line(emulator: Emulator, tmp_path: Path) -> None:
    """A sync of two projects with `conversation_details`: as many lines per stream, status
    and project as the emulator served requests."""
    config = tap_config(emulator)
    catalog_file = tmp_path / "catalog.json"
    catalog = selecting(discover(config), "conversations", "conversation_details")
    catalog_file.write_text(json.dumps(catalog))
    run = run_cli(config, tmp_path, "--catalog", str(catalog_file))
    assert run.returncode == 0, run.stderr[-3000:]

    def served(endpoint: str) -> list[tuple[str, int]]:
        requests = [r for r in emulator.requests if r["endpoint"] == endpoint]
        return sorted((r["project_id"], r["status"]) for r in requests)

    logged = {
        stream: sorted(
            (p["tags"]["context"]["project_id"], p["tags"]["http_status_code"])
            for p in metric_points(run.stderr, "http_request_duration")
            if p["tags"]["stream"] == stream
        )
        for stream in ("conversations", "conversation_details")
    }
    assert logged["conversations"] == served("conversations")
    assert logged["conversation_details"] == served("details")
    assert len(logged["conversation_details"]) > 10
    for key in KEYS.values():
        assert key not in run.stderr
