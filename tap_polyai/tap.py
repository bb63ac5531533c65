"""The tap: settings, streams, and the Singer message writer."""

from __future__ import annotations

import datetime as dt
import functools
import os
import signal
import sys
import typing as t
from types import FrameType

import click
import jsonschema
import singer_sdk
from singer_sdk import Stream, Tap
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.plugin_base import JSONSchemaValidator, SingerCommand, _ConfigInput
from singer_sdk.tap_base import CliTestOptionValue

from tap_polyai import __version__, process_end, redaction
from tap_polyai.drift import InvalidConversationError
from tap_polyai.errors import PolyAIError
from tap_polyai.output import BufferedMsgSpecWriter
from tap_polyai.preflight import check_projects
from tap_polyai.settings import CONFIG_SCHEMA, SECRET_SETTINGS, Settings, load_settings
from tap_polyai.state import InvalidStateError, check_state
from tap_polyai.streams import (
    ConversationDetailsStream,
    ConversationsStream,
    ConversationTurnsStream,
)

# Errors whose message says all an operator needs: one ERROR line, no traceback (but at DEBUG).
NAMED_ERRORS = (PolyAIError, InvalidStateError, InvalidConversationError, ConfigValidationError)


class TapCommand(SingerCommand):
    """The SDK's command line, with every failure reported as one redacted ERROR line.

    A named error (`NAMED_ERRORS`) is its message; anything else is an unexpected error named by
    its type. Both exit 1; the traceback is logged only at DEBUG (`LOGLEVEL=DEBUG`).
    """

    def main(self, *args: t.Any, **kwargs: t.Any) -> t.Any:
        redaction.install()
        try:
            return super().main(*args, **kwargs)
        except NAMED_ERRORS as exc:
            self.logger.error("%s", _one_line(exc))
            self.logger.debug("Traceback of the error above", exc_info=exc)
        except Exception as exc:
            self.logger.error(
                "Unexpected error (%s): %s. LOGLEVEL=DEBUG shows the traceback.",
                type(exc).__name__,
                redaction.shorten(str(exc), 300),
            )
            self.logger.debug("Traceback of the error above", exc_info=exc)
        sys.exit(1)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, ConfigValidationError) and exc.errors:
        return f"{exc}: " + " ".join(exc.errors)
    return " ".join(str(exc).split()) or type(exc).__name__


@functools.cache
def _sdk_version() -> str | None:
    """The `Version:` of the one `singer_sdk-*.dist-info` beside the imported package.

    Every run logs the SDK's version; `importlib.metadata.version()` imports importlib.metadata
    and the email package's header parser and scans every installed distribution for it, about
    20 ms before the first request. None (the caller asks importlib.metadata) if that directory
    is missing, not alone or unreadable.
    """
    site = os.path.dirname(os.path.dirname(singer_sdk.__file__ or ""))
    try:
        found = [
            n for n in os.listdir(site) if n.startswith("singer_sdk-") and n.endswith(".dist-info")
        ]
        if len(found) != 1:
            return None
        with open(os.path.join(site, found[0], "METADATA"), encoding="utf-8") as file:
            for line in file:
                if line.startswith("Version:"):
                    return line.partition(":")[2].strip() or None
                if not line.strip():  # the end of the headers
                    return None
    except (OSError, UnicodeDecodeError):
        return None
    return None


def _describe_schema_error(error: jsonschema.ValidationError) -> str:
    """Which setting breaks which rule: from the schema, never the value (it may be a secret)."""
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.path).lstrip(".")
    rule = error.validator_value
    words = {
        "type": f"must be of type {rule}",
        "minimum": f"must be at least {rule}",
        "maximum": f"must be at most {rule}",
        "exclusiveMinimum": f"must be more than {rule}",
        "exclusiveMaximum": f"must be less than {rule}",
        "enum": f"must be one of {', '.join(map(str, rule))}" if isinstance(rule, list) else "",
        "format": f"must be a valid {rule}",
    }
    if error.validator == "required":
        return f"Setting '{path or 'config'}': {error.message}."
    what = words.get(str(error.validator)) or f"breaks the schema rule '{error.validator}'"
    return f"Setting '{path or 'config'}' {what} (the value is not shown)."


TEST_HELP = (
    "Pre-flight check: one request per project (limit=1 over the configured range), a "
    "'Pre-flight OK' or 'Pre-flight FAILED' line per project on stderr, nothing on stdout; "
    "exit 0 only if every project passed. --test=schema prints the SCHEMA messages instead."
)


class TapPolyAI(Tap):
    """Singer tap for PolyAI conversations (Conversations API v3)."""

    name = "tap-polyai"
    config_jsonschema = CONFIG_SCHEMA
    # msgspec encodes a conversation several times faster than the default simplejson writer;
    # buffering (flushed at each STATE, see output.py) saves a system call per message.
    message_writer_class = BufferedMsgSpecWriter

    def __init__(self, *args: t.Any, validate_config: bool = True, **kwargs: t.Any) -> None:
        redaction.install()
        # Frozen once: the default `end_date` and the in-progress hold are relative to it.
        self.sync_started_at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        super().__init__(*args, validate_config=validate_config, **kwargs)
        if validate_config:
            _ = self.settings  # bad settings fail here, before any request

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """As the SDK, but secrets are registered for redaction first, and the errors name the
        setting and the rule, never the value (the SDK's messages print it)."""
        redaction.REDACTOR.add_config(self._config, SECRET_SETTINGS)
        schema = self.config_jsonschema
        self.append_builtin_config(schema)
        validator = JSONSchemaValidator(schema)  # the SDK's: it also fills in defaults
        errors = [_describe_schema_error(e) for e in validator.iter_errors(self._config)]
        if errors and raise_errors:
            raise ConfigValidationError("Config validation failed", errors=errors, schema=schema)
        if errors:
            self.logger.warning("Config validation failed")
        return errors

    @classmethod
    def get_plugin_version(cls) -> str:
        """This package's version (a constant: see `tap_polyai.__version__`)."""
        return __version__

    @classmethod
    def get_sdk_version(cls) -> str:
        """singer-sdk's version, read as `importlib.metadata` would but without its imports."""
        return _sdk_version() or super().get_sdk_version()

    @classmethod
    def get_singer_command(cls) -> click.Command:
        """The SDK's command as a TapCommand, with `--test` described as what it does here."""
        command = super().get_singer_command()
        for param in command.params:
            if isinstance(param, click.Option) and param.name == "test":
                param.help = TEST_HELP  # cb_test: the pre-flight check, not the SDK's
        tap_command = TapCommand(
            name=command.name,
            callback=command.callback,
            context_settings=command.context_settings,
            params=command.params,
            logger=cls.logger,
        )
        return tap_command

    @classmethod
    def cb_config(
        cls, ctx: click.Context, param: click.Option, value: tuple[str, ...]
    ) -> _ConfigInput:
        """Config files: one that is not UTF-8 JSON is a named error, not a traceback."""
        redaction.install()
        for path in value:
            if path == "ENV":
                continue
            try:
                with open(path, encoding="utf-8") as file:
                    file.read()
            except UnicodeDecodeError:
                msg = f"Config file {path} is not UTF-8 text: save it as UTF-8 JSON."
                raise PolyAIError(msg) from None
            except OSError as exc:
                msg = f"Config file {path} cannot be read ({exc.strerror})."
                raise PolyAIError(msg) from None
        try:
            return super().cb_config(ctx, param, value)
        except ValueError as exc:  # JSONDecodeError: says where, never shows the text
            msg = f"A config file is not valid JSON ({type(exc).__name__})."
            raise PolyAIError(msg) from None

    @functools.cached_property
    def settings(self) -> Settings:
        settings = load_settings(self.config)
        for level, message in settings.notices:  # once per run: unknown keys, naive dates
            self.logger.log(level, message)
        return settings

    _stopping = False

    def load_state(self, state: dict[str, t.Any]) -> None:
        """Refuse a malformed or foreign state before the SDK reads it or writes any STATE."""
        if state:
            for notice in check_state(state, self.settings, self.sync_started_at):
                self.logger.info("%s", notice)
        super().load_state(state)

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM/SIGINT: the final STATE, once the message being written is complete."""
        writer = self.message_writer
        handle = functools.partial(self._stop_on_signal, signum)
        if isinstance(writer, BufferedMsgSpecWriter):
            writer.defer_signal(handle)
        else:
            handle()

    def _stop_on_signal(self, signum: int) -> None:
        """Write the final STATE, say where each project resumes, exit 128 + signal number.

        Not the SDK's exit 0: cron and orchestrators must see that the sync was interrupted
        (130 for SIGINT, 143 for SIGTERM, as a shell reports them). A second signal while the
        workers finish their last request exits at once: the STATE is already out.
        """
        code = 128 + signum
        if self._stopping:
            os._exit(code)
        self._stopping = True
        self._state_writer.write_state(self.state)  # flushes every record before it
        name = signal.Signals(signum).name
        self.logger.warning("Interrupted by %s: the final STATE is written.", name)
        for line in self.resume_points():
            self.logger.warning("%s", line)
        sys.exit(code)

    def resume_points(self) -> list[str]:
        """Per project, where the next run with this run's final STATE starts reading."""
        stream_state = self.state.get("bookmarks", {}).get("conversations", {})
        marks = {
            (p.get("context") or {}).get("project_id"): p.get("replication_key_value")
            for p in stream_state.get("partitions", [])
            if isinstance(p, dict)
        }
        settings = self.settings
        lines = []
        for project in settings.projects:
            mark = marks.get(project.project_id)
            if mark:
                lines.append(
                    f"Project {project.label}: the next run resumes at {mark} "
                    f"(minus 'lookback_minutes' = {int(settings.lookback.total_seconds() // 60)})."
                )
            else:
                lines.append(
                    f"Project {project.label}: no checkpoint yet; the next run starts at "
                    "'start_date'."
                )
        return lines

    @classmethod
    def cb_test(cls, ctx: click.Context, param: click.Option, value: str) -> None:
        """`--test`: a pre-flight check per project (preflight.py); `--test=schema` as the SDK."""
        if value != CliTestOptionValue.All.value:
            super().cb_test(ctx, param, value)
            return
        config: _ConfigInput = ctx.params.get("config", _ConfigInput())
        tap = cls(
            config=config.config,
            catalog=_catalog_argument(ctx),
            parse_env_config=config.parse_env,
            validate_config=True,
        )
        details = tap.streams["conversation_details"].selected
        passed = check_projects(tap.settings, tap.logger, tap.sync_started_at, details=details)
        ctx.exit(0 if passed else 1)

    def discover_streams(self) -> list[Stream]:
        return [
            ConversationsStream(self),
            ConversationTurnsStream(self),
            ConversationDetailsStream(self),
        ]


def _catalog_argument(ctx: click.Context) -> str | None:
    """The `--catalog` file's path, whether click has parsed it before `--test` or not (it
    parses options in command-line order): `--test` checks what the catalog selects."""
    given = ctx.params.get("catalog")
    if given is not None:
        return str(given.name)
    args = sys.argv[1:]
    for index, arg in enumerate(args):
        if arg == "--catalog" and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith("--catalog="):
            return arg.split("=", 1)[1]
    return None


def main() -> t.NoReturn:
    """`tap-polyai`: the SDK's command line, the process ended without its teardown
    (process_end.py: ~50 ms of a small run)."""
    process_end.run(TapPolyAI.cli)


if __name__ == "__main__":
    main()
