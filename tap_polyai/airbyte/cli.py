"""`source-polyai`: the tap as an Airbyte source (`spec`, `check`, `discover`, `read`).

One engine, two faces: `read` runs `TapPolyAI` in this process with `AirbyteWriter` as its
message writer, so windows, checkpoints, the in-progress hold, drift handling, retries and the
read-ahead are the tap's own; this module only translates what goes in (config, configured
catalog, per-stream state) and reports the outcome (stream statuses, an error TRACE).
Everything goes to stdout as Airbyte messages, logs included; the exit code is 0 on success.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import traceback
import typing as t
from pathlib import Path

from tap_polyai import process_end, redaction
from tap_polyai.airbyte.catalog import catalog, singer_catalog, spec, sync_modes
from tap_polyai.airbyte.failures import InputFileError, failure_message, failure_type
from tap_polyai.airbyte.state import bookmark_owners, per_stream, singer_state
from tap_polyai.airbyte.writer import (
    AirbyteLogHandler,
    AirbyteWriter,
    error_trace,
    stream_status,
)
from tap_polyai.preflight import check_projects
from tap_polyai.settings import CONFIG_SCHEMA, SECRET_SETTINGS
from tap_polyai.tap import TapPolyAI

logger = logging.getLogger("source-polyai")


def _load_json(path: str, option: str) -> t.Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # the text is never shown: it may hold a key
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 JSON"
        raise InputFileError(f"{option} {path}: cannot be read ({reason}).") from None


def _load_config(path: str) -> t.Any:
    """The config, its secrets registered for redaction before anything could log them."""
    config = _load_json(path, "--config")
    redaction.REDACTOR.add_config(config, SECRET_SETTINGS)
    return config


def run_spec(args: argparse.Namespace, writer: AirbyteWriter) -> int:
    writer.emit(spec(CONFIG_SCHEMA))
    return 0


def _tap(config: t.Any, writer: AirbyteWriter, **kwargs: t.Any) -> TapPolyAI:
    """A tap for `spec`/`check`/`discover`: SIGTERM and SIGINT end it at once, as the default.

    The tap's own handler (a final STATE, exit 143) is for reads; PyAirbyte terminates a
    `check` once it has the CONNECTION_STATUS and accepts only exit 0 or death by SIGTERM.
    """
    tap = TapPolyAI(config=config, setup_mapper=False, message_writer=writer, **kwargs)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return tap


def run_check(args: argparse.Namespace, writer: AirbyteWriter) -> int:
    """CONNECTION_STATUS from the tap's pre-flight requests; FAILED names every reason."""
    try:
        tap = _tap(_load_config(args.config), writer)
    except Exception as exc:  # noqa: BLE001 - any unusable config is a FAILED check
        status = {"status": "FAILED", "message": failure_message(exc)}
        writer.emit({"type": "CONNECTION_STATUS", "connectionStatus": status})
        return 0
    reasons = _ErrorCollector()
    check_logger = logging.getLogger("source-polyai.check")
    check_logger.addHandler(reasons)
    try:
        passed = check_projects(tap.settings, check_logger, tap.sync_started_at)
    finally:
        check_logger.removeHandler(reasons)
    status = {"status": "SUCCEEDED"} if passed else {"status": "FAILED"}
    if not passed:
        status["message"] = " ".join(reasons.messages)
    writer.emit({"type": "CONNECTION_STATUS", "connectionStatus": status})
    return 0


def run_discover(args: argparse.Namespace, writer: AirbyteWriter) -> int:
    tap = _tap(_load_config(args.config), writer)
    writer.emit(catalog(tap))
    return 0


def run_read(args: argparse.Namespace, writer: AirbyteWriter) -> int:
    config = _load_config(args.config)
    configured = _load_json(args.catalog, "--catalog")
    incoming = _load_json(args.state, "--state") if args.state else None
    # The tap's streams, without settings checks yet: they are the real tap's, below.
    probe = _tap(config, writer, validate_config=False)
    modes = sync_modes(configured, list(probe.streams))
    owners = bookmark_owners(probe.streams)
    tap = TapPolyAI(config=config, catalog=singer_catalog(probe, modes), message_writer=writer)
    tap.load_state(singer_state(incoming, modes, owners, tap.settings, tap.sync_started_at))
    writer.translate_state = lambda state: per_stream(state, modes, owners)
    for name in modes:
        writer.emit(stream_status(name, "STARTED"))
    try:
        tap.sync_all()
    except BaseException as exc:
        writer.flush()  # the records and STATE before the failure
        for name in modes:
            writer.emit(stream_status(name, "INCOMPLETE"))
        if isinstance(exc, SystemExit) and exc.code:  # a signal: the tap wrote the final STATE
            writer.emit(
                error_trace(f"source-polyai was interrupted (exit {exc.code}).", "transient_error")
            )
        raise
    writer.write_state(tap.state)  # every stream's final STATE, changed since or not
    for name in modes:
        writer.emit(stream_status(name, "COMPLETE"))
    return 0


COMMANDS: dict[str, t.Callable[[argparse.Namespace, AirbyteWriter], int]] = {
    "spec": run_spec,
    "check": run_check,
    "discover": run_discover,
    "read": run_read,
}


class _ErrorCollector(logging.Handler):
    """The pre-flight check's ERROR lines: the reasons a FAILED check gives."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="source-polyai", description="PolyAI conversations as an Airbyte source."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("spec", help="the connector's settings (SPEC)")
    for name, what in (
        ("check", "pre-flight request per project (CONNECTION_STATUS)"),
        ("discover", "the streams (CATALOG)"),
        ("read", "RECORD, STATE and TRACE messages"),
    ):
        command = commands.add_parser(name, help=what)
        command.add_argument("--config", required=True, help="the config JSON file")
        if name == "read":
            command.add_argument("--catalog", required=True, help="the configured catalog")
            command.add_argument("--state", help="the per-stream state to resume from")
    return parser


def main(argv: list[str] | None = None) -> t.NoReturn:
    """`source-polyai`: one command, then the process ends (process_end.py)."""
    args = _parser().parse_args(argv)
    redaction.install()  # every log record, whoever makes it (redaction.py)
    writer = AirbyteWriter()
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(AirbyteLogHandler(writer))
    try:
        code = COMMANDS[args.command](args, writer)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one error TRACE
        kind = failure_type(exc)
        message = failure_message(exc)
        logger.error("%s", message)
        stack = redaction.redact(traceback.format_exc()) if kind == "system_error" else None
        writer.emit(error_trace(message, kind, stack))
        code = 1
    writer.flush()
    process_end.end(code)


if __name__ == "__main__":
    main()
