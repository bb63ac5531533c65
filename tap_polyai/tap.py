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
from singer_sdk import Stream, Tap
from singer_sdk.plugin_base import _ConfigInput
from singer_sdk.tap_base import CliTestOptionValue

from tap_polyai.output import BufferedMsgSpecWriter
from tap_polyai.preflight import check_projects
from tap_polyai.settings import CONFIG_SCHEMA, Settings, load_settings
from tap_polyai.state import InvalidStateError, check_state
from tap_polyai.streams import ConversationsStream, ConversationTurnsStream


class TapPolyAI(Tap):
    """Singer tap for PolyAI conversations (Conversations API v3)."""

    name = "tap-polyai"
    config_jsonschema = CONFIG_SCHEMA
    # msgspec encodes a conversation several times faster than the default simplejson writer;
    # buffering (flushed at each STATE, see output.py) saves a system call per message.
    message_writer_class = BufferedMsgSpecWriter

    def __init__(self, *args: t.Any, validate_config: bool = True, **kwargs: t.Any) -> None:
        # Frozen once: the default `end_date` and the in-progress hold are relative to it.
        self.sync_started_at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        super().__init__(*args, validate_config=validate_config, **kwargs)
        if validate_config:
            _ = self.settings  # bad settings fail here, before any request

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

    @classmethod
    def invoke(cls, *args: t.Any, **kwargs: t.Any) -> None:
        """A refused state is the user's to fix: one clear error line and exit 1, no traceback."""
        try:
            super().invoke(*args, **kwargs)
        except InvalidStateError as exc:
            cls.logger.error("%s", exc)
            sys.exit(1)

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
        tap = cls(config=config.config, parse_env_config=config.parse_env, validate_config=True)
        passed = check_projects(tap.settings, tap.logger, tap.sync_started_at)
        ctx.exit(0 if passed else 1)

    def discover_streams(self) -> list[Stream]:
        return [ConversationsStream(self), ConversationTurnsStream(self)]


if __name__ == "__main__":
    TapPolyAI.cli()
