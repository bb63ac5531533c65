"""Nothing secret or personal in any output, whatever the server says or whoever logs it; a
named error is one ERROR line, its traceback only at DEBUG."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from hostile_server import ACCOUNT, SECRET, Answer, HostileServer, Seen, hostile_config
from tap_runner import TAP_COMMAND, run_cli

from tap_polyai import redaction

OTHER_KEY = "sk-live-other-project-key-4d3c2b"
PHONE = "+447700900123"
TRANSCRIPT = "my card number is the one I told the agent yesterday " * 20


def two_projects(base_url: str) -> dict[str, object]:
    config = hostile_config(base_url)
    del config["account_id"], config["project_id"]
    config["projects"] = [
        {"account_id": ACCOUNT, "project_id": "PROJECT-a"},
        {"account_id": ACCOUNT, "project_id": "PROJECT-b", "api_key": OTHER_KEY},
    ]
    return config


def echo(status: int) -> object:
    def respond(seen: Seen) -> Answer:
        said = f"refused {seen.headers.get('x-api-key')} and {OTHER_KEY} for {PHONE}: {TRANSCRIPT}"
        body = {"error_code": "BAD_REQUEST", "error_id": "eid-7f3a", "error_message": said}
        return status, {}, body

    return respond


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "| ERROR" in line]


@pytest.mark.parametrize("status", [400, 401, 422])
@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_a_server_echoing_keys_phone_numbers_and_text_leaks_none_of_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: int, level: str
) -> None:
    monkeypatch.setenv("LOGLEVEL", level)
    with HostileServer(echo(status)) as api:  # type: ignore[arg-type]
        run = run_cli(two_projects(api.base_url), tmp_path)
    assert run.returncode == 1
    for secret in (SECRET, OTHER_KEY, PHONE, TRANSCRIPT[:300]):
        assert secret not in run.stderr
    (line,) = error_lines(run.stderr)
    assert f"HTTP {status}" in line
    assert "error_code=BAD_REQUEST" in line
    assert "error_id=eid-7f3a" in line
    assert len(line) < 700, "server text is shortened"
    assert ("Traceback" in run.stderr) == (level == "DEBUG")


def test_preflight_leaks_nothing_either(tmp_path: Path) -> None:
    with HostileServer(echo(403)) as api:  # type: ignore[arg-type]
        run = run_cli(two_projects(api.base_url), tmp_path, "--test")
    assert run.returncode == 1
    assert "Pre-flight FAILED" in run.stderr
    for secret in (SECRET, OTHER_KEY, PHONE, TRANSCRIPT[:300]):
        assert secret not in run.stderr


@pytest.mark.parametrize(
    ("override", "setting"),
    [
        ({"api_key": 48151623421}, "'api_key'"),
        ({"projects": [{"account_id": "ws-a", "project_id": "P", "api_key": [SECRET]}]}, "api_key"),
        ({"max_retries": SECRET}, "'max_retries'"),
    ],
)
def test_config_errors_name_the_setting_never_the_value(
    tmp_path: Path, override: dict[str, object], setting: str
) -> None:
    config = {**hostile_config("http://127.0.0.1:9"), **override}
    run = run_cli(config, tmp_path)
    assert run.returncode == 1
    assert setting in run.stderr
    assert "48151623421" not in run.stderr
    assert SECRET not in run.stderr
    assert "Traceback" not in run.stderr


def test_a_config_file_that_is_not_utf8_is_one_named_error(tmp_path: Path) -> None:
    import subprocess

    config = tmp_path / "config.json"
    config.write_bytes(b'{"api_key": "caf\xe9"}')
    proc = subprocess.run(
        [*TAP_COMMAND, "--config", str(config)], capture_output=True, timeout=60, check=False
    )
    stderr = proc.stderr.decode()
    assert proc.returncode == 1
    (line,) = error_lines(stderr)
    assert "not UTF-8" in line
    assert str(config) in line
    assert "Traceback" not in stderr


def test_every_logger_is_redacted_whoever_logs(caplog: pytest.LogCaptureFixture) -> None:
    redaction.install()
    redaction.REDACTOR.add_config({"projects": [{"api_key": OTHER_KEY}]}, {"api_key"})
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3.connectionpool", "singer_sdk.tap_base", ""):
        logging.getLogger(name).debug("sent %s to %s", OTHER_KEY, PHONE)
    try:
        raise ValueError(f"boom {OTHER_KEY}")
    except ValueError:
        logging.getLogger("root").exception("failed")
    text = caplog.text
    assert text.count(redaction.REDACTED) >= 4
    assert OTHER_KEY not in text
    assert PHONE not in text


def test_metric_lines_keep_their_durations_and_stay_json(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A duration such as 2.93817462811 is 12 digits and a dot, which the phone rule cuts: the
    SDK's METRIC line then says `"value":[phone]` and is no longer JSON. In the SDK's metrics
    records the measurement stays a number; a phone number in their tags is still cut, and the
    same decimal as text anywhere else too."""
    from singer_sdk import metrics

    redaction.install()
    caplog.set_level(logging.INFO)
    tags = {"stream": "conversations", "note": f"call {PHONE} or 415.555.0123"}
    metrics.log(
        logging.getLogger(metrics.METRICS_LOGGER_NAME),
        metrics.Point("timer", metrics.Metric.SYNC_DURATION, 2.93817462811, tags=tags),
    )
    logging.getLogger("tap-polyai").info("took %s", 2.93817462811)
    metric, other = (r.getMessage() for r in caplog.records)
    point = json.loads(metric.removeprefix("METRIC: "))
    assert point["value"] == 2.93817462811
    assert point["tags"]["note"] == "call [phone] or [phone]"
    assert other == "took [phone]"


def test_metric_records_keep_their_point_for_the_sdk_s_filter_and_json_formatter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The SDK's MetricExclusionFilter and StructuredFormatter read the Point in a METRIC
    record's `args`; redaction keeps it there (its tags redacted), so both still work."""
    from singer_sdk import metrics
    from singer_sdk.logging import StructuredFormatter

    redaction.install()
    redaction.REDACTOR.add(SECRET)
    caplog.set_level(logging.INFO)
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Keep()
    handler.addFilter(metrics.MetricExclusionFilter(metrics=["record_count"]))
    logger = logging.getLogger(metrics.METRICS_LOGGER_NAME)
    logger.addHandler(handler)
    try:
        tags = {
            metrics.Tag.STREAM: "conversations",
            metrics.Tag.STATUS: metrics.Status.SUCCEEDED,
            "context": {"project_id": f"{SECRET} {PHONE}"},
        }
        metrics.log(logger, metrics.Point("counter", metrics.Metric.RECORD_COUNT, 7, tags=tags))
        metrics.log(logger, metrics.Point("timer", metrics.Metric.SYNC_DURATION, 2.5, tags=tags))
    finally:
        logger.removeHandler(handler)
    (record,) = seen
    line = json.loads(StructuredFormatter().format(record))
    assert line["message"] == "METRIC"
    assert line["metric_info"]["metric"] == "sync_duration"
    assert line["metric_info"]["value"] == 2.5
    assert line["metric_info"]["tags"] == {
        "stream": "conversations",
        "status": "succeeded",
        "context": {"project_id": "[redacted] [phone]"},
    }
    assert SECRET not in record.getMessage()
    assert PHONE not in record.getMessage()


def test_a_malformed_header_s_text_never_reaches_the_log(tmp_path: Path) -> None:
    """urllib3 warns about a header it cannot parse with what it could not parse: text the
    server chose. The warning keeps its first words, never that text."""

    def respond(seen: Seen) -> Answer:
        return 200, {"X-PolyAI-Correlation-Id": f"\n{TRANSCRIPT}{PHONE}"}, {"conversations": []}

    with HostileServer(respond) as api:  # type: ignore[arg-type]
        # The text after the break spoils the response's framing: the read times out.
        run = run_cli(hostile_config(api.base_url, request_timeout_seconds=2), tmp_path)
    warned = [line for line in run.stderr.splitlines() if "Failed to parse headers" in line]
    assert warned, run.stderr[-2000:]
    for line in warned:
        assert len(line) < 400
    for secret in (TRANSCRIPT[:60], PHONE, "my card number"):
        assert secret not in run.stderr
